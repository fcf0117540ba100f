"""``agentctl apply``: provision and update agents, disable expired ones
(and, with ``notify.on_expiry``, tell their owners).

Two steps, so the caller can show the plan and ask before anything changes:
:func:`prepare` plans, :func:`execute` applies exactly that plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from agentctl.commands.contracts import default_paths, load_valid_contracts
from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.engine import Engine
    from agentctl.notify import Disabled
    from agentctl.plan import Plan
    from agentctl.reports import AgentApplyResult, ApplyReport


@dataclass(frozen=True)
class Prepared:
    """A plan to apply and the engine that made it."""

    plan: Plan
    engine: Engine

    @property
    def needs_apply(self) -> bool:
        return self.plan.has_changes or self.plan.has_errors

    @property
    def todo(self) -> int:
        """Agents apply will work on."""
        return sum(1 for a in self.plan.agents if self.plan.applicable(a) or a.failed_to_plan)


@dataclass(frozen=True)
class NothingToApply:
    """Every agent already matches its contract."""

    agents: int

    json_fields: ClassVar[JsonFields] = ("ok", ("agents", "changed_agents"), "summary")

    ok: ClassVar[bool] = True
    changed_agents: ClassVar[tuple[str, ...]] = ()

    @property
    def summary(self) -> dict[str, int]:
        return {"agents": self.agents, "failed": 0, "changed": 0}


def prepare(
    session: Session,
    paths: Sequence[Path] | None,
    *,
    refresh: bool = False,
    prune: bool = False,
    parallelism: int = 16,
) -> Prepared:
    chosen = default_paths(paths)
    report = load_valid_contracts(session, chosen)
    session.may_create_state = True  # apply is what creates a new state store
    engine = session.engine([str(p) for p in chosen])
    plan = engine.plan(
        report.contracts, report.expired, refresh=refresh, prune=prune, parallelism=parallelism
    )
    return Prepared(plan, engine)


def nothing_to_apply(prepared: Prepared) -> NothingToApply:
    """Nothing to apply, but audit events a kill journaled while the state
    store was down still go into the chain (and the kill into the state)."""
    prepared.engine.import_journal()
    return NothingToApply(agents=len(prepared.plan.agents))


def execute(
    prepared: Prepared,
    *,
    parallelism: int = 16,
    progress: Callable[[AgentApplyResult], None] | None = None,
    on_lock_wait: Callable[[str], None] | None = None,
) -> ApplyReport:
    report = prepared.engine.apply(
        prepared.plan, parallelism=parallelism, progress=progress, on_lock_wait=on_lock_wait
    )
    if prepared.engine.config.notify.on_expiry:
        # After the disabling, never before it: a notification that fails
        # does not undo it (the note says who was not told).
        notes = tell_owners_disabled(prepared.plan, report, prepared.engine)
        if notes:
            report = replace(report, notes=(*report.notes, *notes))
    return report


def disabled_at_expiry(plan: Plan, report: ApplyReport) -> list[Disabled]:
    """The agents this apply disabled because their contract expired: live
    (recorded active) when the plan was made, expired in it, and applied
    (not skipped). An agent already recorded expired is not disabled again,
    so its owner is told once."""
    from agentctl.model import AgentStatus
    from agentctl.notify import Disabled
    from agentctl.plan import AgentDisposition

    outcomes = {a.agent: a for a in report.agents}
    disabled = []
    for agent_plan in plan.agents:
        outcome = outcomes.get(agent_plan.agent)
        if (
            agent_plan.disposition != AgentDisposition.EXPIRED
            or agent_plan.contract is None
            or agent_plan.basis is None
            or agent_plan.basis[0] != AgentStatus.ACTIVE.value
            or outcome is None
            or outcome.skipped
        ):
            continue
        disabled.append(
            Disabled(
                agent=agent_plan.agent,
                owner=agent_plan.contract.owner,
                expiry=agent_plan.contract.expiry,
                ok=outcome.ok,
            )
        )
    return disabled


def tell_owners_disabled(plan: Plan, report: ApplyReport, engine: Engine) -> tuple[str, ...]:
    from agentctl.notify import expiry_messages, tell_owners

    return tell_owners(expiry_messages(disabled_at_expiry(plan, report)), engine.config.notify)
