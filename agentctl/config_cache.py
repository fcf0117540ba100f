"""agentctl.yaml contents that validated clean against the configuration schema.

Every agentctl process reads agentctl.yaml and checked it against the JSON
Schema assembled from the installed providers: the jsonschema import and the
check were ~0.05-0.08 s of every ``agentctl credentials NAME`` a runtime host
runs many times an hour, for the same unchanged file. The result of that check
is a pure function of two things, so it is remembered by their digest:

- the configuration's values as parsed (the plain JSON the schema sees), and
- the schema itself (which carries every provider's settings), plus the
  installed jsonschema's files (size and mtime; an upgrade checks afresh).

Only clean results are kept; a configuration with a problem is checked (and
reported, by file and line) every time. Everything after the schema check —
the non-finite number refusal, building the settings — runs every time.

Only a verdict is remembered, never values: the values always come from
parsing the file itself (read through read_untrusted every time), so whoever
can write this cache (this user, an agent run as this user) can at most make
a configuration that fails the schema pass it, not change what a
configuration says. (Remembering the parsed values too was tried and dropped:
it let a same-user agent substitute the values of an agentctl.yaml it cannot
write, and lost each people rule's file:line.)

Where: ``config-validated.json`` in the user's cache folder
(``$XDG_CACHE_HOME/agentctl``), read and written by agentctl.user_cache: only
when it is this user's private file in this user's private folder; anything
else is ignored and replaced. Deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from agentctl.user_cache import cache_dir, read_json, write_private

FORMAT = 1
FILENAME = "config-validated.json"
KEEP = 16  # configurations remembered (a host may use a few)


def cache_path() -> Path:
    return cache_dir() / FILENAME


def _package_stamp(name: str) -> list[tuple[str, int, int]]:
    """Size and mtime of an installed package's modules (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        return []
    stamp: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(os.path.dirname(spec.origin)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                stamp.append(_file_stamp(os.path.join(root, file)))
    return stamp


def _file_stamp(path: str) -> tuple[str, int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, info.st_size, info.st_mtime_ns)


def _digest(material: list[Any]) -> str:
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(values: Any, schema: Any) -> str:
    """What a clean check of ``values`` against ``schema`` is remembered by: also
    the installed jsonschema and agentctl's config_file (how the values are
    checked is their code, so another agentctl checks afresh)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return _digest(
        [
            FORMAT,
            "checked",
            values,
            schema,
            _file_stamp(os.path.join(here, "config_file.py")),
            _package_stamp("jsonschema"),
        ]
    )


def _stored(path: Path) -> list[str]:
    """The clean checks' digests, newest first."""
    stored = read_json(path)  # None: none yet, unreadable, or not this user's private file
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        return []
    clean = stored.get("clean")
    return [d for d in clean if isinstance(d, str)] if isinstance(clean, list) else []


def validated_before(key: str) -> bool:
    return key in _stored(cache_path())


def remember(key: str) -> None:
    """Add a clean check's ``key`` (newest first, at most KEEP)."""
    clean = _stored(cache_path())
    _save([key] + [d for d in clean if d != key])


def _save(clean: list[str]) -> None:
    """Write the cache (0600, in a 0700 folder). A cache that cannot be
    written is no error: the next process checks again."""
    write_private(cache_path(), {"format": FORMAT, "clean": clean[:KEEP]})
