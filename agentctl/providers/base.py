"""The one Protocol every provider implements, and the values it exchanges.

A provider owns one system (``aws``, ``github``, ...): its vocabulary (which
scopes/actions a contract may name), how to observe what exists, how to
converge it to a contract, and how to kill, revive, rotate and mint
short-lived credentials for one agent. Providers never print; they return
these values or raise :class:`agentctl.errors.ProviderError`.

Clients (boto3, githubkit) are created lazily inside the provider so that
constructing one — as ``agentctl validate`` does to check vocabularies — costs
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentctl.clock import Clock, system_clock
from agentctl.config import Config
from agentctl.errors import SecretStoreError, StateError
from agentctl.model import Contract, Severity

if TYPE_CHECKING:
    from agentctl.secrets import Secret, SecretStore
    from agentctl.state import StateStore


@dataclass(frozen=True)
class GrantFinding:
    """A vocabulary problem in one system's grant.

    ``path`` is relative to the grant, e.g. ``(1,)`` for the second scope or
    ``("scopes", 0)``; the contract loader turns it into file/line/column.
    """

    path: tuple[str | int, ...]
    severity: Severity
    code: str
    message: str


@dataclass
class ProviderContext:
    """What a provider may use. Everything is injected so tests pass real local
    servers, temp state and frozen clocks instead of patching internals.

    State and secrets are opened on first use (``context.state`` /
    ``context.secrets``): a provider that never needs the keyring never
    fails for want of one.
    """

    config: Config = field(default_factory=Config)
    clock: Clock = system_clock
    state_factory: Callable[[], StateStore] | None = None
    secrets_factory: Callable[[], SecretStore] | None = None
    operator: str = "unknown"
    # Extra keyword arguments for SDK clients (tests: endpoint, credentials).
    client_options: Mapping[str, Any] = field(default_factory=dict)
    _state: StateStore | None = field(default=None, init=False, repr=False)
    _secrets: SecretStore | None = field(default=None, init=False, repr=False)

    @property
    def state(self) -> StateStore:
        if self._state is None:
            if self.state_factory is None:
                raise StateError("this command has no state store")
            self._state = self.state_factory()
        return self._state

    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            if self.secrets_factory is None:
                raise SecretStoreError("this command has no secret store")
            self._secrets = self.secrets_factory()
        return self._secrets


@dataclass(frozen=True)
class Observed:
    """What the provider sees for one agent right now."""

    provider: str
    agent: str
    exists: bool
    owned: bool = True  # False: a resource with the agent's name agentctl did not create
    resource_id: str | None = None
    killed: bool = False
    disabled: bool = False  # disabled because the contract expired
    # Comparable desired-state fields (e.g. tags, policies, permissions).
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # Human-readable drift beyond the contract that apply does not fix itself.
    drift: tuple[str, ...] = ()


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DISABLE = "disable"  # contract expired: same mechanism as kill, reason "expired"
    REMOVE = "remove"  # orphan, only with --prune
    CONFLICT = "conflict"  # exists but not agentctl's: never touched
    DRIFT = "drift"  # reported, not changed (e.g. GitHub installation wider than contract)
    DECLARED = "declared"  # system with no provider: declared, not enforced


MUTATING_KINDS = frozenset(
    {ChangeKind.CREATE, ChangeKind.UPDATE, ChangeKind.DISABLE, ChangeKind.REMOVE}
)


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    provider: str
    agent: str
    kind: ChangeKind
    summary: str
    fields: tuple[FieldChange, ...] = ()
    # Provider-private payload carried from plan to apply (never secret).
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mutating(self) -> bool:
        return self.kind in MUTATING_KINDS


@dataclass(frozen=True)
class ActionResult:
    """Outcome of one mutating action (apply/kill/revive/rotate) in one provider."""

    provider: str
    agent: str
    action: str
    ok: bool
    detail: str = ""
    resource_id: str | None = None
    # Resource attributes worth recording in state (never secret).
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # When not ok: what is left for a human to do, precisely.
    remaining: str = ""
    already: bool = False  # nothing to do: e.g. "already killed"


@dataclass(frozen=True)
class RunContext:
    """Who a set of short-lived credentials is for."""

    agent: str
    on_behalf_of: str | None
    trigger: str | None
    duration_seconds: int
    run_id: str


@dataclass(frozen=True)
class IssuedCredential:
    """Short-lived credentials for one run, as environment variables.

    Secret values are :class:`Secret` (only ``exec``/``credentials`` unwrap
    them, into the child's environment); plain ``str`` values are not secret
    (region, API URL) and may be shown."""

    provider: str
    credential_id: str
    fingerprint: str
    issued_at: datetime
    expires_at: datetime
    environment: Mapping[str, Secret | str]
    description: str = ""


@runtime_checkable
class Provider(Protocol):
    name: str

    def check_grant(self, grant: Any) -> list[GrantFinding]:
        """Vocabulary and lint checks of this system's grant. No network."""
        ...

    def observe(self, agent: str) -> Observed:
        """Look the agent's resources up by agentctl's own tags/names (exact match)."""
        ...

    def plan(self, contract: Contract | None, observed: Observed, *, expired: bool) -> list[Change]:
        """Changes that converge ``observed`` to ``contract``.

        ``contract`` None means the contract disappeared (orphan: REMOVE).
        ``expired`` asks for DISABLE. Killed agents are never revived by plan.
        An empty list means nothing to do (re-apply makes no mutating call).
        """
        ...

    def apply(self, change: Change) -> ActionResult: ...

    def kill(self, agent: str, reason: str) -> ActionResult:
        """Revoke this agent only: existing sessions/tokens denied at once, no new
        ones. Must work with no contract and no state (discover by tags)."""
        ...

    def revive(self, agent: str, reason: str) -> ActionResult: ...

    def rotate(self, agent: str) -> ActionResult:
        """New credentials verified to work before old ones are revoked."""
        ...

    def issue_credentials(self, contract: Contract, run: RunContext) -> IssuedCredential: ...

    def revoke_credential(self, agent: str, credential_id: str) -> ActionResult:
        """Revoke one credential this provider issued (end of an exec run)."""
        ...
