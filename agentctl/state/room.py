"""Which file a SQLite state URL names, and how much room its filesystem has
left (no SQLAlchemy here: the store, the plans' snapshot and the
standard-library run path all ask; `credentials` imports this, not them)."""

from __future__ import annotations

import os
from pathlib import Path

from agentctl.errors import StateError

# A mutating command refuses to start when the SQLite state's filesystem has
# less free space than this: a 1,000-agent apply grows the WAL to its
# checkpoint size (1,000 pages, 4 MiB) and the database by as much again. The
# refusal comes before any cloud write, so nothing is changed half-way.
MIN_FREE_BYTES = 16 * 1024 * 1024
# Below this SQLite cannot even create the WAL index (-shm, 32 KiB) that a
# reader of a WAL database needs: the state is opened immutable instead.
FULL_BYTES = 1024 * 1024

_SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (None for anything else:
    PostgreSQL, a driver or query string, escapes SQLAlchemy would decode)."""
    if not url.startswith(_SQLITE_PREFIX):
        return None
    path = url[len(_SQLITE_PREFIX) :]
    if not path or any(c in path for c in "?%#") or path == ":memory:":
        return None
    return Path(path).expanduser()


def free_bytes(folder: Path) -> int | None:
    """Free space an unprivileged writer may use on ``folder``'s filesystem."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def full_filesystem(folder: Path, floor: int = MIN_FREE_BYTES) -> str | None:
    """Why a write to ``folder`` fails for lack of space, if it does."""
    free = free_bytes(folder)
    if free is None or free >= floor:
        return None
    return f"the filesystem holding {folder} is full ({free // 1024} KiB free)"


def require_room(folder: Path, full: str | None = None) -> None:
    """Refuse a mutating command up front when the SQLite state in ``folder``
    cannot take what it would record (see MIN_FREE_BYTES); ``full``: already
    known to be full (why)."""
    full = full or full_filesystem(folder)
    if full:
        raise StateError(
            f"{full}; agentctl needs {MIN_FREE_BYTES // (1024 * 1024)} MiB there to record "
            "what this command would change, so it changed nothing",
            hint=f"free space there (df -h {folder}) and run the command again",
        )


NOTHING_RECORDED = "nothing was recorded by the failed write"


def sqlite_cause(
    errorname: str, first_line: str, folder: Path, full: str | None = None
) -> tuple[str, str] | None:
    """(message, hint) for a SQLite failure whose real cause we can name — a
    full filesystem, a read-only database — or None. One rule for the store
    and the standard-library run path, so both say the same thing; ``full``:
    already found full when the state was opened."""
    full = full or full_filesystem(folder, FULL_BYTES)
    if full and (
        errorname.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY"))
        or "disk" in first_line
    ):
        return (
            f"{full}: {first_line}",
            f"free space there (df -h {folder}) and run the command again; {NOTHING_RECORDED}",
        )
    if errorname.startswith("SQLITE_READONLY") or "readonly database" in first_line:
        return (
            f"the state database is read-only here ({first_line})",
            f"make {folder} and the database writable for this user, or run the "
            "command where the state is writable; status, list and audit still work",
        )
    return None
