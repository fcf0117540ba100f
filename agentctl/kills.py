"""Whether a kill still holds: asked of every provider that can tell (``ChecksKill``).

Both ``plan`` (a killed agent's plan reports ``kill-undone``) and the engine's
``status --refresh`` ask; this sits below both so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from agentctl.errors import AgentctlError

if TYPE_CHECKING:
    from agentctl.providers.base import Provider


KILL_UNDONE = "kill-undone"


def kill_undone(providers: Iterable[Provider], agent: str) -> tuple[str, ...]:
    """Ask every provider that can whether the kill of ``agent`` still holds.

    Entries start with ``kill-undone: <provider>:`` when a revocation was
    undone (a deny removed, an installation unsuspended), or name the
    provider and say it ``cannot check``.
    """
    from agentctl.providers.base import ChecksKill

    found: list[str] = []
    for provider in providers:
        if not isinstance(provider, ChecksKill):
            continue
        try:
            result = provider.check_killed(agent)
        except AgentctlError as exc:
            found.append(f"{provider.name}: cannot check ({exc.reason()})")
            continue
        if result.ok:
            continue
        if result.undetermined:
            found.append(f"{provider.name}: {result.detail}")
        else:
            found.append(f"{KILL_UNDONE}: {provider.name}: {result.detail} ({result.remaining})")
    return tuple(found)
