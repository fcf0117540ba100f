"""The primitives behind :meth:`StateStore.apply_lock`.

Both are owned by the process, not by a row in the database: when the holder
dies (crash, SIGKILL, lost connection) the operating system or the PostgreSQL
server releases them, so there is never a stale lock to clean up by hand.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agentctl.state.schema import advisory_key


@dataclass(frozen=True)
class LockHolder:
    """Who holds the apply lock, as shown to whoever waits for it."""

    operator: str
    pid: int
    host: str
    since: datetime

    def describe(self) -> str:
        return (
            f"{self.operator} (pid {self.pid} on {self.host}, "
            f"since {self.since:%Y-%m-%d %H:%M:%S} UTC)"
        )


class LockPrimitive(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if free; never blocks."""

    def release(self) -> None:
        """Release (if held) and free the underlying handle."""


class FileLock:
    """``flock`` on ``<database>.lock``: cross-process on one host, as SQLite itself.

    Like SQLite's own locking this is unreliable on network file systems, which
    SQLite state must not be on anyway.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        os.close(self._fd)  # closing the descriptor drops the flock


class AdvisoryLock:
    """A session-level ``pg_try_advisory_lock`` on a connection of its own.

    The connection is in autocommit mode so holding the lock for a long apply
    does not leave a transaction open (which would hold back vacuum).
    """

    def __init__(self, engine: Engine) -> None:
        self._conn: Connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._key = advisory_key(self._conn, "apply")
        self._held = False

    def try_acquire(self) -> bool:
        acquired = self._conn.execute(sa.select(sa.func.pg_try_advisory_lock(self._key)))
        self._held = bool(acquired.scalar_one())
        return self._held

    def release(self) -> None:
        try:
            if self._held:
                self._conn.execute(sa.select(sa.func.pg_advisory_unlock(self._key)))
        except sa.exc.SQLAlchemyError:
            pass  # the connection is gone, and with it the session's lock
        finally:
            # Not back to the pool: end the server session, so the lock cannot
            # outlive this call whatever happened above.
            self._conn.invalidate()
            self._conn.close()
