"""``agentctl kill``, ``revive`` and ``rotate``: one agent (or all) across providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from agentctl.errors import UsageError
from agentctl.model import JsonFields
from agentctl.suggest import did_you_mean

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.engine import LifecycleReport


def kill(session: Session, name: str, reason: str) -> LifecycleReport:
    """Revoke ONE agent everywhere. Works without contracts, with the state
    store empty or unreachable, and with a broken agentctl.yaml (defaults)."""
    engine = session.engine([], tolerate_config_errors=True)
    return engine.kill(name, reason or "no reason given")


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
