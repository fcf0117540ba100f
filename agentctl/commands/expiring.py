"""``agentctl expiring``: contracts and credentials that need action soon, by
owner; with ``--notify`` each owner is told directly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from agentctl.commands.contracts import default_paths, load_valid_contracts
from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.notify import Delivery
    from agentctl.reports import ExpiringReport, OwnerDue


def expiring(session: Session, paths: Sequence[Path] | None, *, days: int) -> ExpiringReport:
    chosen = default_paths(paths)
    report = load_valid_contracts(session, chosen)
    engine = session.engine([str(p) for p in chosen])
    # A cron host or CI job with contracts and nothing applied from it: reading
    # agentctl's default store would create it (and import the state store).
    recorded = not session.default_state_absent()
    return engine.expiring(report.contracts, report.expired, days=days, recorded=recorded)


@dataclass(frozen=True)
class NotifyResult:
    """``expiring --notify``: what is due, and whether each owner was told."""

    report: ExpiringReport
    deliveries: tuple[Delivery, ...]
    dry_run: bool

    json_fields: ClassVar[JsonFields] = (
        "today",
        "days",
        "due",
        "owners",
        ("notifications", "deliveries"),
    )

    @property
    def ok(self) -> bool:
        return all(d.problem is None for d in self.deliveries)

    @property
    def today(self) -> date:
        return self.report.today

    @property
    def days(self) -> int:
        return self.report.days

    @property
    def due(self) -> int:
        return self.report.due

    @property
    def owners(self) -> tuple[OwnerDue, ...]:
        return self.report.owners


def notify(session: Session, report: ExpiringReport, *, dry_run: bool = False) -> NotifyResult:
    """Tell each owner with something due, in one message (or say who would be told)."""
    from agentctl.notify import messages_for_expiring, send

    messages = messages_for_expiring(report.items, days=report.days, today=report.today.isoformat())
    deliveries = send(messages, session.config().notify, dry_run=dry_run)
    return NotifyResult(report, tuple(deliveries), dry_run)
