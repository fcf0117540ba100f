"""Contracts already validated today, by the exact bytes of their file.

``agentctl apply`` in CI runs on every merge, usually with most contract files
unchanged since the last run; validating 300 of them again (YAML with
positions, the JSON Schema, the providers' checks) was a third of a no-change
apply. A file whose bytes, path and validation context are the same as when it
last validated clean gets the same contract back without being validated
again: its document, rebuilt with :meth:`Contract.from_document` (as exec
rebuilds the contract it applied from the state).

What is "the same context" (any difference: validate again):
- the day (expiry and lifetime checks depend on it), ``max_lifetime_days``,
  ``strict``, the configuration (providers' settings feed their checks), the
  installed providers;
- agentctl's own code: size and mtime of every module of the package and of
  each provider's package (an upgrade or an edit validates afresh).

Only files that validated with no problem at all are kept; a file with a
warning or an error is validated (and reported) every time. The file is still
read through :func:`~agentctl.untrusted_files.read_untrusted` every time, so a
symlink or FIFO swapped in is refused as before.

Where: the user's cache folder (agentctl.user_cache: ``$XDG_CACHE_HOME/agentctl``,
0700), one file per SQLite state, ``contracts-<sha256 of the state file's
absolute path>.json``, 0600. Never beside the state or in a checkout:
agentctl.yaml (which a pull request may change) chooses where the state is,
and a cache file placed there would map a harmless contract file to any
document, so that apply acted on a contract that never validated. An old
``state.db.validated.json`` beside a state (where earlier versions kept it)
is never read. Read only when it is this user's private file in this
user's private folder; anything else is ignored and replaced.

Only for a SQLite state: whoever can write this user's cache can write a state
file this user applies to, which agentctl trusts in the same way (see
``Contract.from_document``). A PostgreSQL state's writers are whoever holds its
credentials, which need not include everything that runs as this user (a
pull request's job on a self-hosted runner): no cache there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from agentctl.model import Contract
from agentctl.user_cache import cache_dir, read_json, write_private

FORMAT = 1


@dataclass(frozen=True)
class Cached:
    """A contract read from the cache, with where its name is in the file."""

    contract: Contract
    name_position: tuple[int, int]


def cache_path_for(state_url: str) -> Path | None:
    """The cache file of the SQLite state at ``state_url``, in the user's cache
    folder (None for any other state, or a state whose folder is missing)."""
    from agentctl.state.room import sqlite_path

    path = sqlite_path(state_url)
    if path is None:
        return None
    try:
        folder = path.parent.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not folder.is_dir():
        return None
    state = str(folder / path.name).encode("utf-8", "surrogateescape")
    return cache_dir() / f"contracts-{hashlib.sha256(state).hexdigest()[:32]}.json"


def _code_stamp(modules: Iterable[str]) -> list[tuple[str, int, int]]:
    """Size and mtime of every .py file of the packages holding ``modules``."""
    stamp: list[tuple[str, int, int]] = []
    folders: set[str] = set()
    for name in modules:
        module = sys.modules.get(name.split(".")[0])
        file = getattr(module, "__file__", None)
        if file:
            folders.add(os.path.dirname(file))
    for folder in sorted(folders):
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for file in sorted(files):
                if file.endswith(".py"):
                    path = os.path.join(root, file)
                    with contextlib.suppress(OSError):
                        info = os.stat(path)
                        stamp.append((path, info.st_size, info.st_mtime_ns))
    return stamp


def context_key(
    *,
    today: date,
    max_lifetime_days: int,
    strict: bool,
    config: object,
    specs: Mapping[str, object],
) -> str:
    """What a validation result depends on besides the file (see module docstring)."""
    # The packages the providers' checks live in (a plugin's too), and the
    # schema validator's (contract imports it): a jsonschema upgrade that
    # judges a file differently must not meet an older verdict.
    modules = ["agentctl", "jsonschema"]
    for spec in specs.values():
        modules.append(str(getattr(spec, "provider", "")).partition(":")[0])
        modules.append(str(getattr(getattr(spec, "check_grant", None), "__module__", "")))
    material = [
        FORMAT,
        today.isoformat(),
        max_lifetime_days,
        strict,
        repr(config),
        sorted(specs),
        [getattr(specs[name], "grant_schema", None) for name in sorted(specs)],
        _code_stamp(m for m in modules if m),
    ]
    return hashlib.sha256(json.dumps(material, default=str).encode()).hexdigest()


class ContractCache:
    """Read once, looked up per file, written back once (only what was seen)."""

    def __init__(self, path: Path, context: str) -> None:
        self.path = path
        self.context = context
        self._old: dict[str, Any] = {}
        self._seen: dict[str, Any] = {}
        self._changed = False
        # None: no cache yet, unreadable or not this user's private file: validate everything
        stored = read_json(path)
        if (
            isinstance(stored, dict)
            and stored.get("format") == FORMAT
            and stored.get("context") == context
            and isinstance(stored.get("files"), dict)
        ):
            self._old = stored["files"]

    @staticmethod
    def _key(file: str, data: bytes | str) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return hashlib.sha256(file.encode("utf-8") + b"\0" + raw).hexdigest()

    def get(self, file: str, data: bytes | str) -> Cached | None:
        key = self._key(file, data)
        entry = self._old.get(key)
        if not isinstance(entry, dict):
            return None
        try:
            contract = Contract.from_document(entry["document"], source=file)
            line, column = entry["name_position"]
        except (KeyError, TypeError, ValueError):
            return None
        self._seen[key] = entry
        return Cached(contract, (int(line), int(column)))

    def put(
        self, file: str, data: bytes | str, contract: Contract, position: tuple[int, int]
    ) -> None:
        self._seen[self._key(file, data)] = {
            "document": contract.document(),
            "name_position": list(position),
        }
        self._changed = True

    def save(self) -> None:
        """Write what this run saw (hits and new entries), atomically, 0600.
        A cache that cannot be written is no error: the next run validates."""
        if not self._changed and self._seen.keys() == self._old.keys():
            return
        write_private(self.path, {"format": FORMAT, "context": self.context, "files": self._seen})
