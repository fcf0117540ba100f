"""``agentctl status`` / ``list``: every agent and where it stands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.errors import DamagedStateRow
    from agentctl.reports import AgentView


@dataclass(frozen=True)
class DamagedRow:
    """An agent row ``status`` could not show: what is wrong, never the value."""

    table: str
    row: str
    column: str
    agent: str | None
    error: str
    hint: str | None


@dataclass(frozen=True)
class StatusResult:
    agents: tuple[AgentView, ...]
    # Agent rows holding what agentctl never writes (None: there were none, and
    # the JSON has no such key). The command then exits 1.
    damaged_rows: tuple[DamagedRow, ...] | None = field(default=None, metadata={"omit_none": True})

    json_fields: ClassVar[JsonFields] = ("agents", "damaged_rows")


def status(
    session: Session,
    name: str | None,
    *,
    refresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> StatusResult:
    """``progress``: called with each agent's name once ``refresh`` asked its providers."""
    engine = session.engine()
    damaged: list[DamagedStateRow] = []
    views = engine.status(name, refresh=refresh, progress=progress, damaged=damaged)
    rows = tuple(
        DamagedRow(exc.table, exc.row, exc.column, exc.agent, exc.message, exc.hint)
        for exc in damaged
    )
    return StatusResult(tuple(views), rows or None)
