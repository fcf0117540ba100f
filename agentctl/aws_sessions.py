"""boto3 sessions that share botocore's data loader within one process.

A runtime host pays for every ``agentctl exec`` / ``credentials`` / ``kill``
as a new process, and one such process opens two or three boto3 sessions:
the caller's identity check (STS), the provider's clients, the runtime
principal's profile, the secret store's. Each new session brings its own
botocore data loader, which lists every service folder botocore ships
(~400 of them, ~1,800 ``listdir`` calls) and parses the service model and
endpoint rules again: about 0.06 s of CPU per extra session on this machine,
more when the disk cache is cold. The loader only reads botocore's static
data files (keyed here by the session's ``data_path`` setting,
``AWS_DATA_PATH``), so sharing it shares no credentials, profile, region or
configuration: every session still resolves those itself.

The identity check needs its session for one client only; it hands the
session back (:func:`hand_back`) and the next :func:`new_session` asked for
the same profile and region, in the same AWS environment and with the same
AWS config files, gets that session instead of building another (a botocore
session registers ~270 handlers and resolves the credentials again: ~10 ms of
each `credentials` / `exec`, more under load). Only a request made from the
same arguments, environment and files takes it, and only once: a session is
never used by two owners at once, nor handed to anyone in another
environment. (A request for another profile, e.g. the runtime principal's,
leaves it for the provider's own session, which comes after.)
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

_LOCK = threading.Lock()
_LOADERS: dict[str | None, Any] = {}
# At most one session its owner is done with, and what it was made from.
_SPARE: list[tuple[tuple[object, ...], Any]] = []


def _made_from(profile_name: str | None, region_name: str | None) -> tuple[object, ...]:
    """What a session resolves its credentials, region and settings from: the
    arguments, the AWS_* environment (hashed: it holds keys) and the AWS config
    and credentials files as they are now (size and mtime)."""
    environ = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    files: list[tuple[int, int, int] | None] = []
    for variable, default in (
        ("AWS_CONFIG_FILE", "~/.aws/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    ):
        try:
            info = os.stat(os.path.expanduser(os.environ.get(variable) or default))
            files.append((info.st_ino, info.st_size, info.st_mtime_ns))
        except OSError:
            files.append(None)
    digest = hashlib.sha256(repr(environ).encode("utf-8", "surrogateescape")).hexdigest()
    return (profile_name, region_name, digest, tuple(files))


def hand_back(
    session: Any, *, profile_name: str | None = None, region_name: str | None = None
) -> None:
    """``session`` (from :func:`new_session` with these arguments) is no longer
    used by its owner: a later :func:`new_session` made from the same arguments,
    environment and files takes it (see above)."""
    made_from = _made_from(profile_name, region_name)
    with _LOCK:
        _SPARE[:] = [(made_from, session)]


def new_session(*, profile_name: str | None = None, region_name: str | None = None) -> Any:
    """``boto3.session.Session(profile_name=..., region_name=...)``, with the
    process's shared data loader (or the session handed back for these
    arguments in this environment). Raises what boto3 raises for the same
    arguments (e.g. ``ProfileNotFound`` for an unknown profile)."""
    made_from = _made_from(profile_name, region_name)
    with _LOCK:
        if _SPARE and _SPARE[0][0] == made_from:
            return _SPARE.pop()[1]

    import boto3
    import botocore.session
    from botocore.loaders import create_loader

    core = botocore.session.get_session()
    if profile_name is not None:
        # Before data_path is read: a profile may name its own data_path.
        core.set_config_variable("profile", profile_name)
    data_path = core.get_config_variable("data_path")
    with _LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            loader = _LOADERS[data_path] = create_loader(data_path)
        core.register_component("data_loader", loader)
        session = boto3.session.Session(
            botocore_session=core, profile_name=profile_name, region_name=region_name
        )
        # boto3 appends its resource-model folder to the loader's search path
        # for every session it opens: keep one entry, not one per session.
        paths = loader.search_paths
        while len(paths) > 1 and paths[-1] in paths[:-1]:
            paths.pop()
    return session
