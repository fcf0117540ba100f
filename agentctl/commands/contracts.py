"""The contracts a lifecycle command acts on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.errors import ContractError, UsageError

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.contract import ValidationReport

DEFAULT_CONTRACTS = Path("contracts")
SHOWN_PROBLEMS = 20


def default_paths(paths: Sequence[Path] | None) -> list[Path]:
    if paths:
        return list(paths)
    if DEFAULT_CONTRACTS.is_dir():
        return [DEFAULT_CONTRACTS]
    raise UsageError(
        "no contracts given and ./contracts does not exist",
        hint="pass the contracts folder, e.g. `agentctl plan contracts/`",
    )


def load_valid_contracts(session: Session, paths: Sequence[Path]) -> ValidationReport:
    """Contracts for plan/apply/expiring; raises if any problem blocks
    (:attr:`ValidationReport.blocking`), with the first 20 attached."""
    from agentctl.contract import load_contracts
    from agentctl.contract_cache import cache_path_for

    config = session.config([str(p) for p in paths])
    report = load_contracts(
        paths,
        today=session.clock().date(),
        max_lifetime_days=config.max_lifetime_days,
        config=config,
        # Files unchanged since they last validated clean today are not
        # validated again (a SQLite state only; the cache is in the user's cache
        # folder, never beside the state: see contract_cache).
        cache_file=cache_path_for(config.resolved_state_url(session.state_url)),
    )
    blocking = report.blocking
    if blocking:
        more = (
            f" (showing {SHOWN_PROBLEMS} of {len(blocking)})"
            if len(blocking) > SHOWN_PROBLEMS
            else ""
        )
        raise ContractError(
            f"{len(blocking)} contract error(s){more}: nothing was planned or changed",
            hint="fix them (`agentctl validate` shows all), then run again",
            problems=blocking[:SHOWN_PROBLEMS],
        )
    return report
