"""What the engine's apply, expiring and status return (frozen records; the
renderers show them as text or JSON).

They live apart from :mod:`agentctl.engine` because every command builds an
Engine and most never apply or report: `credentials` and `exec` on a runtime
host, `kill` in an incident. Each dataclass costs its import a few hundred
microseconds (Python generates and compiles its methods).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar

from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.providers.base import ActionResult, LongLivedSecret


@dataclass(frozen=True)
class AgentApplyResult:
    """What apply did to one agent."""

    agent: str
    ok: bool
    results: tuple[ActionResult, ...] = ()
    error: str | None = None
    skipped: str | None = None  # e.g. killed meanwhile

    json_fields: ClassVar[JsonFields] = ("agent", "ok", "error", "skipped", ("actions", "results"))


@dataclass(frozen=True)
class ApplyReport:
    """``agentctl apply``: what was done to each agent."""

    agents: tuple[AgentApplyResult, ...]
    notes: tuple[str, ...] = ()  # e.g. whether owners were told (notify.on_expiry)

    json_fields: ClassVar[JsonFields] = ("ok", "agents", "summary", "notes")

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.agents)

    @property
    def summary(self) -> ApplySummary:
        return ApplySummary(
            agents=len(self.agents),
            failed=sum(1 for a in self.agents if not a.ok),
            changed=sum(1 for a in self.agents if a.results),
        )


@dataclass(frozen=True)
class ApplySummary:
    """Counts of an apply: agents, failed, changed."""

    agents: int
    failed: int
    changed: int


@dataclass(frozen=True)
class ExpiringItem:
    """One thing ``expiring`` reports: a contract, credential or secret due."""

    agent: str
    owner: str
    # "contract-expired" | "contract-expiring" | "credential-rotation-due"
    # | "credential-expiring" | "kill-incomplete" | "state-damaged"
    kind: str
    due: date
    days_left: int
    detail: str
    file: str | None = None
    # A long-lived secret's item: which one (JSON ``secret``; absent otherwise).
    secret: LongLivedSecret | None = field(default=None, metadata={"omit_none": True})


@dataclass(frozen=True)
class ExpiringReport:
    """``agentctl expiring``: what is due within ``days``, by owner."""

    days: int
    today: date
    items: tuple[ExpiringItem, ...]

    json_fields: ClassVar[JsonFields] = ("today", "days", "due", "owners")

    @property
    def due(self) -> int:
        return len(self.items)

    def by_owner(self) -> dict[str, list[ExpiringItem]]:
        grouped: dict[str, list[ExpiringItem]] = {}
        for item in sorted(self.items, key=lambda i: (i.owner, i.days_left, i.agent)):
            grouped.setdefault(item.owner, []).append(item)
        return grouped

    @property
    def owners(self) -> tuple[OwnerDue, ...]:
        return tuple(OwnerDue(owner, tuple(items)) for owner, items in self.by_owner().items())


@dataclass(frozen=True)
class OwnerDue:
    """What one owner has to act on."""

    owner: str
    items: tuple[ExpiringItem, ...]


@dataclass(frozen=True)
class SecretAge:
    """One long-lived secret of an agent and its age (``status``)."""

    provider: str
    kind: str
    id: str
    fingerprint: str | None
    created_at: datetime | None  # None: stored before agentctl recorded it
    tracked_since: datetime
    expires_at: datetime | None
    age_days: int | None  # None: unknown
    at_least_days: int  # the age, or at least this when it is unknown

    @classmethod
    def of(cls, secret: LongLivedSecret, now: datetime) -> SecretAge:
        known = secret.created_at is not None
        return cls(
            provider=secret.provider,
            kind=secret.kind,
            id=secret.id,
            fingerprint=secret.fingerprint,
            created_at=secret.created_at,
            tracked_since=secret.tracked_since,
            expires_at=secret.expires_at,
            age_days=secret.min_age_days(now) if known else None,
            at_least_days=secret.min_age_days(now),
        )


@dataclass(frozen=True)
class AgentView:
    """One agent as ``status`` / ``list`` show it."""

    name: str
    owner: str
    execution_mode: str
    expiry: date | None
    status: str  # active | killed | expired | removed | drifted
    providers: tuple[str, ...]
    last_rotated_at: datetime | None
    live_credentials: int
    status_reason: str | None = None
    drift: tuple[str, ...] = ()
    long_lived_secrets: tuple[SecretAge, ...] = ()

    json_fields: ClassVar[JsonFields] = (
        "name",
        "owner",
        "execution_mode",
        "expiry",
        "status",
        "status_reason",
        "providers",
        "last_rotated_at",
        "live_credentials",
        "drift",
        "long_lived_secrets",
    )
