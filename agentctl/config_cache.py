"""agentctl.yaml contents that validated clean against the configuration schema.

Every agentctl process reads agentctl.yaml and checked it against the JSON
Schema assembled from the installed providers: the jsonschema import and the
check were ~0.05-0.08 s of every ``agentctl credentials NAME`` a runtime host
runs many times an hour, for the same unchanged file. The result of that check
is a pure function of two things, so it is remembered by their digest:

- the configuration's values as parsed (the plain JSON the schema sees), and
- the schema itself (which carries every provider's settings), plus the
  installed jsonschema's files and agentctl's config_file (size and mtime;
  an upgrade of either checks afresh).

Only clean results are kept; a configuration with a problem is checked (and
reported, by file and line) every time. Everything after the schema check —
the non-finite number refusal, building the settings — runs every time.

Where: ``config-validated.json`` in the user's cache folder (XDG_CACHE_HOME),
read only when it is this user's private file (owner, 0600, not a link: the
same rule as agentctl.contract_cache); anything else is ignored and replaced.
Deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agentctl.contract_cache import read_private

FORMAT = 1
FILENAME = "config-validated.json"
KEEP = 16  # configurations remembered (a host may use a few)


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "agentctl" / FILENAME


def _validator_stamp() -> list[tuple[str, int, int]]:
    """Size and mtime of the installed jsonschema's modules (found, not imported),
    and of agentctl's config_file: how the values are checked (which validator,
    which checks beside it) is its code, so another agentctl checks afresh."""
    import importlib.util

    from agentctl import config_file

    stamp: list[tuple[str, int, int]] = []
    with contextlib.suppress(OSError):
        info = os.stat(config_file.__file__)
        stamp.append((config_file.__file__, info.st_size, info.st_mtime_ns))
    spec = importlib.util.find_spec("jsonschema")
    if spec is None or not spec.origin:
        return stamp
    folder = os.path.dirname(spec.origin)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                path = os.path.join(root, file)
                with contextlib.suppress(OSError):
                    info = os.stat(path)
                    stamp.append((path, info.st_size, info.st_mtime_ns))
    return stamp


def digest(values: Any, schema: Any) -> str:
    """What a clean check of ``values`` against ``schema`` is remembered by."""
    material = [FORMAT, values, schema, _validator_stamp()]
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _remembered(path: Path) -> list[str]:
    try:
        stored = json.loads(read_private(path))
    except (OSError, ValueError):
        return []  # none yet, unreadable, or not this user's private file
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        return []
    clean = stored.get("clean")
    return [d for d in clean if isinstance(d, str)] if isinstance(clean, list) else []


def validated_before(key: str) -> bool:
    return key in _remembered(cache_path())


def remember(key: str) -> None:
    """Add ``key`` (newest first, at most KEEP). A cache that cannot be written
    is no error: the next process checks again."""
    path = cache_path()
    known = [key] + [d for d in _remembered(path) if d != key]
    document = {"format": FORMAT, "clean": known[:KEEP]}
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-validated-", dir=path.parent)  # 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
