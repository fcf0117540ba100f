"""What a plan compares, read from a SQLite state with the standard library.

A plan without ``--refresh`` needs four facts per agent (name, owner, status,
contract hash) and three per resource (agent, provider, applied hash). Reading
them through :class:`~agentctl.state.store.StateStore` costs the SQLAlchemy
import (~0.3 s) and a migration check: most of a no-change ``apply`` in CI.
This module reads the same rows with :mod:`sqlite3` instead, and gives up
(returns None, and the caller opens the store as before) whenever it cannot be
sure it reads what the store would: not a plain ``sqlite:///`` file URL, no
such file, a schema of another version (the store migrates or refuses it), a
read-only or nearly full filesystem (the store opens it immutable), or any
SQLite error (the store names it properly). It never writes.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agentctl.model import AgentStatus
from agentctl.state.records import SCHEMA_VERSION

_PREFIX = "sqlite:///"


@dataclass(frozen=True)
class RecordedAgent:
    name: str
    owner: str
    status: AgentStatus
    contract_hash: str | None


@dataclass(frozen=True)
class RecordedResource:
    agent: str
    provider: str
    applied_hash: str | None


@dataclass(frozen=True)
class PlanSnapshot:
    """The rows a plan reads, from one read transaction."""

    agents: tuple[RecordedAgent, ...]
    resources: tuple[RecordedResource, ...]

    def list_agents(self) -> tuple[RecordedAgent, ...]:
        return self.agents

    def list_resources(self) -> tuple[RecordedResource, ...]:
        return self.resources


def sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (None for anything else:
    PostgreSQL, a driver or query string, escapes SQLAlchemy would decode)."""
    if not url.startswith(_PREFIX):
        return None
    path = url[len(_PREFIX) :]
    if not path or any(c in path for c in "?%#") or path == ":memory:":
        return None
    return Path(path).expanduser()


# Below this much free space the store's own checks take over (its MIN_FREE_BYTES).
_ROOM = 16 * 1024 * 1024


def _plainly_writable(path: Path) -> bool:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return (
        os.access(path, os.W_OK)
        and os.access(path.parent, os.W_OK)
        and stats.f_bavail * stats.f_frsize >= _ROOM
    )


def read_plan_snapshot(url: str) -> PlanSnapshot | None:
    """The agents and resources recorded at ``url``, or None when only the full
    store can tell (see the module docstring)."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    if not _plainly_writable(path):
        # A read-only or (nearly) full filesystem: reading a WAL database
        # here would create or leave its -shm index, and the store opens such
        # a state immutable only while there is none. The store decides.
        return None
    try:
        # mode=rw: never create a file; reading a WAL database may still need
        # to create its -shm index, which read-only mode could not.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        conn.isolation_level = None
        conn.execute("BEGIN")  # one snapshot for all three reads
        try:
            row = conn.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return None  # no agentctl tables: the store decides (create or refuse)
        if row is None or row[0] != SCHEMA_VERSION:
            return None
        agents = tuple(
            RecordedAgent(name, owner, AgentStatus(status), contract_hash)
            for name, owner, status, contract_hash in conn.execute(
                "SELECT name, owner, status, contract_hash FROM agents ORDER BY name"
            )
        )
        resources = tuple(
            RecordedResource(agent, provider, applied_hash)
            for agent, provider, applied_hash in conn.execute(
                "SELECT agent, provider, applied_hash FROM resources ORDER BY agent, provider"
            )
        )
        conn.execute("COMMIT")
    except (sqlite3.Error, ValueError):
        return None
    finally:
        conn.close()
    return PlanSnapshot(agents, resources)
