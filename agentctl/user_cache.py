"""The user's private cache folder, and the one way agentctl reads and writes it.

Two caches live there (agentctl.config_cache, agentctl.contract_cache). Both
let a run skip a check, so what they hold must come from this user's own
earlier runs and from nowhere else: never from a checkout, a folder a pull
request can write, or beside a state file whose location agentctl.yaml (a
file a pull request may change) chooses.

- Where: ``$XDG_CACHE_HOME/agentctl`` (``~/.cache/agentctl``; a relative
  XDG_CACHE_HOME is ignored, as the XDG Base Directory spec says), made 0700.
- Read only when the folder is this user's and writable by nobody else, and
  the file is this user's private file (owner, 0600, not a link, a regular
  file). Anything else is treated as no cache (and replaced on the next write).
- FIFO-safe: a FIFO planted at the path never blocks the read (every command,
  ``kill`` included, reads a cache).
- Written atomically (temporary file + rename), 0600. A cache that cannot be
  written is no error: the next run checks again. Deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/agentctl`` (``~/.cache/agentctl`` when unset or relative)."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "agentctl"


def _private_folder(folder: Path) -> bool:
    """The folder is this user's, a real folder (not a link), and nobody else may write it."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def read_private(path: Path) -> bytes:
    """The cache's bytes, if this user wrote it: in a folder only this user may
    write, owned by us, not a link, a regular file, no access for group or
    others (agentctl writes it 0600). Anything else raises PermissionError
    (or the OSError of opening it): a cache maps inputs to verdicts (or
    documents) that let a run skip a check, so a forged one would skip it."""
    if not _private_folder(path.parent):
        raise PermissionError(f"{path.parent} is not this user's private folder")
    # O_NONBLOCK: a FIFO planted at the path (by the agent running under this
    # user, say) would otherwise block the open forever, and every command
    # reading the cache, `kill` included, with it.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise PermissionError(f"{path} is not this user's private file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """:func:`read_private` parsed as JSON; None when missing, not private or not JSON."""
    try:
        return json.loads(read_private(path))
    except (OSError, ValueError):
        return None


def write_private(path: Path, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` (0600, its folder made 0700),
    atomically. Nothing is written into a folder that is not this user's
    private folder; a failure is no error (the cache is only a shortcut)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    if not _private_folder(path.parent):
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)  # 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # dumps, not dump: json.dump always encodes in pure Python (its C
            # encoder is for one-shot dumps); 300 contracts: ~7.5 -> ~2 ms.
            handle.write(json.dumps(document, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
