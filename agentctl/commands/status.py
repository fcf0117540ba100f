"""``agentctl status`` / ``list``: every agent and where it stands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.reports import AgentView


@dataclass(frozen=True)
class StatusResult:
    agents: tuple[AgentView, ...]

    json_fields: ClassVar[JsonFields] = ("agents",)


def status(
    session: Session,
    name: str | None,
    *,
    refresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> StatusResult:
    """``progress``: called with each agent's name once ``refresh`` asked its providers."""
    engine = session.engine()
    return StatusResult(tuple(engine.status(name, refresh=refresh, progress=progress)))
