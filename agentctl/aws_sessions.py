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
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()
_LOADERS: dict[str | None, Any] = {}


def new_session(*, profile_name: str | None = None, region_name: str | None = None) -> Any:
    """``boto3.session.Session(profile_name=..., region_name=...)``, with the
    process's shared data loader. Raises what boto3 raises for the same
    arguments (e.g. ``ProfileNotFound`` for an unknown profile)."""
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
