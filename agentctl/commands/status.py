"""``agentctl status`` / ``list``: every agent and where it stands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.engine import AgentView


@dataclass(frozen=True)
class StatusResult:
    agents: tuple[AgentView, ...]

    json_fields: ClassVar[JsonFields] = ("agents",)


def status(session: Session, name: str | None, *, refresh: bool = False) -> StatusResult:
    return StatusResult(tuple(session.engine().status(name, refresh=refresh)))
