"""``agentctl plan``: what apply would change, per agent and provider."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.commands.contracts import default_paths, load_valid_contracts

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.plan import Plan


def plan(
    session: Session,
    paths: Sequence[Path] | None,
    *,
    refresh: bool = True,
    prune: bool = False,
    parallelism: int = 16,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    """``progress``: called with each agent's name once it is planned."""
    chosen = default_paths(paths)
    report = load_valid_contracts(session, chosen)
    engine = session.engine([str(p) for p in chosen])
    return engine.plan(
        report.contracts,
        report.expired,
        refresh=refresh,
        prune=prune,
        parallelism=parallelism,
        progress=progress,
        # No state file yet (a pull request's CI, a first plan): every agent is
        # new, as the store would say; planning never creates the store.
        recorded=not session.state_file_absent(),
    )
