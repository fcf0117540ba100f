"""``agentctl kill``, ``revive`` and ``rotate``: one agent (or all) across providers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from agentctl.errors import UsageError
from agentctl.model import JsonFields
from agentctl.suggest import did_you_mean

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.engine import Engine, LifecycleReport


def kill(session: Session, name: str, reason: str) -> LifecycleReport:
    """Revoke ONE agent everywhere. Works without contracts, with the state
    store empty or unreachable, and with a broken agentctl.yaml (defaults)."""
    engine = session.engine([], tolerate_config_errors=True)
    report = engine.kill(name, reason or "no reason given")
    if engine.config.notify.on_kill and not report.already:
        # After the revocation, never before it: telling the owner must not
        # delay the kill, and a notification that fails does not undo it.
        report = replace(report, notes=(*report.notes, _tell_owner(engine, report, reason)))
    return report


def _tell_owner(engine: Engine, report: LifecycleReport, reason: str) -> str:
    from agentctl.errors import AgentctlError
    from agentctl.notify import kill_message, tell_owners

    try:
        record = engine.state.get_agent(report.agent)
    except AgentctlError:
        record = None
    if record is None:
        return "owner not told: the state store does not name the agent's owner"
    (note,) = tell_owners(
        [kill_message(report.agent, record.owner, reason, ok=report.ok)], engine.config.notify
    )
    return note


def revive(session: Session, name: str, reason: str) -> LifecycleReport:
    return session.engine().revive(name, reason)


@dataclass(frozen=True)
class RotateResult:
    reports: tuple[LifecycleReport, ...]

    json_fields: ClassVar[JsonFields] = ("ok", ("agents", "reports"))

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


def rotate(
    session: Session, name: str | None, *, all_agents: bool = False, provider: str | None = None
) -> RotateResult:
    if bool(name) == all_agents:
        raise UsageError("give an agent name or --all (not both)")
    engine = session.engine()
    if provider and provider not in engine.providers:
        meant = did_you_mean(provider, engine.providers)
        raise UsageError(
            f"unknown provider {provider!r}" + (f" (did you mean {meant!r}?)" if meant else ""),
            hint=f"one of: {', '.join(engine.providers)}",
        )
    return RotateResult(tuple(engine.rotate([name] if name else None, provider)))
