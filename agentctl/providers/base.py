"""What a provider is: one :class:`ProviderSpec`, one :class:`Provider`, and the
values they exchange with the core.

A provider owns one system (``aws``, ``github``, ...) and is one package under
``agentctl/providers/`` (or any installed distribution) that exports a
:class:`ProviderSpec` through the ``agentctl.providers`` entry point group. The
spec is what the core knows without importing an SDK: the grant's JSON Schema
fragment and its parser to a frozen typed value, the vocabulary and lint
check, the settings dataclass (the provider's ``agentctl.yaml`` section), hints
for misplaced keys, how a grant reads in the audit trail, and where the
:class:`Provider` lives (imported only when a command needs it).

The :class:`Provider` observes what exists, plans changes that converge it to
a contract (each carrying the provider's own typed payload to ``apply``), and
kills, revives, rotates and mints short-lived credentials for one agent.
Providers never print; they return these values or raise
:class:`agentctl.errors.ProviderError`, which the engine turns into results.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Protocol,
    TypeAlias,
    TypeVar,
    runtime_checkable,
)

from agentctl.clock import Clock, system_clock
from agentctl.config import Config
from agentctl.errors import ConfigError, SecretStoreError, StateError
from agentctl.model import Contract, JsonFields, JsonObject, JsonValue, OutputFormat, Severity

if TYPE_CHECKING:
    from pathlib import Path

    import typer

    from agentctl.secrets import Secret, SecretStore
    from agentctl.state import StateStore
    from agentctl.state.records import AuditDraft, CredentialRecord, LongLivedSecretRecord


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


PayloadT = TypeVar("PayloadT")
PayloadT_co = TypeVar("PayloadT_co", covariant=True)
GrantT = TypeVar("GrantT")
SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class FieldChange:
    """One field of a resource a change sets: its value before and after."""

    field: str
    before: JsonValue
    after: JsonValue


@dataclass(frozen=True)
class Change(Generic[PayloadT_co]):
    """One change a provider's plan makes to one agent's resource (applied by its apply)."""

    provider: str
    agent: str
    kind: ChangeKind
    summary: str
    fields: tuple[FieldChange, ...] = ()
    # The provider's own typed payload, carried from its plan to its apply
    # (never secret; the engine never reads it). None for changes the core
    # makes itself (DECLARED) and for report-only ones that need none.
    payload: PayloadT_co | None = None

    # The payload is the provider's business: it never reaches the output.
    json_fields: ClassVar[JsonFields] = ("provider", "kind", "summary", "fields")

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
    attributes: Mapping[str, JsonValue] = field(default_factory=dict)
    # When not ok: what is left for a human to do, precisely (for a kill: a
    # pasteable command, e.g. `aws iam ...`, or the settings page to use).
    remaining: str = ""
    already: bool = False  # nothing to do: e.g. "already killed"
    # What was read back from the system after the writes (kill: "AWSDenyAll
    # attached", "installation 7 suspended"). A kill says ok only for what is
    # in here, or when the provider verified the agent has nothing to revoke.
    verified: tuple[str, ...] = ()
    # The provider could not tell whether the agent has anything in its system
    # (not configured here, unreachable, and nothing recorded either way). ok
    # is False and remaining says how to find out; the engine does not count
    # it as evidence that the agent exists (so a mistyped name is still
    # "not found" when the state store knows no such agent).
    undetermined: bool = False

    json_fields: ClassVar[JsonFields] = (
        "provider",
        "action",
        "ok",
        "already",
        "detail",
        "resource_id",
        ("remaining", "still_to_do"),
        "verified",
        "undetermined",
    )

    @property
    def still_to_do(self) -> str | None:
        return self.remaining or None

    @classmethod
    def failed(
        cls, provider: str, agent: str, action: str, exc: BaseException, *, remaining: str
    ) -> ActionResult:
        """The one way an error becomes a result. The result names the provider,
        so the detail does not repeat it; an error that is not an AgentctlError
        is a bug whose message may hold data: only its type is shown."""
        from agentctl.errors import AgentctlError

        detail = exc.reason() if isinstance(exc, AgentctlError) else exc.__class__.__name__
        return cls(provider, agent, action, ok=False, detail=detail, remaining=remaining)


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

    # Never the environment: its values are the secrets.
    json_fields: ClassVar[JsonFields] = (
        "provider",
        "credential_id",
        "fingerprint",
        "expires_at",
        "description",
    )


@runtime_checkable
class Provider(Protocol[PayloadT]):
    """One system's lifecycle over typed payloads (``PayloadT``: what its plan
    hands its apply). Constructed by :meth:`ProviderSpec.create`."""

    name: str

    def observe(self, agent: str) -> Observed:
        """Look the agent's resources up by agentctl's own tags/names (exact match)."""
        ...

    def plan(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[PayloadT]]:
        """Changes that converge ``observed`` to ``contract``.

        ``contract`` None means the contract disappeared (orphan: REMOVE).
        ``expired`` asks for DISABLE. Killed agents are never revived by plan.
        An empty list means nothing to do (re-apply makes no mutating call).
        """
        ...

    def apply(self, change: Change[PayloadT]) -> ActionResult: ...

    def kill(self, agent: str, reason: str) -> ActionResult:
        """Revoke this agent only: existing sessions/tokens denied at once, no new
        ones. Must work with no contract and no state (discover by tags).

        The kill contract (every provider): revoke, then read back, and say
        ``ok`` only for what the read-back confirmed (``verified``). A system
        the agent is known or suspected to use that cannot be reached or is
        not configured here is ``ok=False`` with ``remaining`` = the exact
        thing to do (a pasteable command or a settings URL); when nothing at
        all says whether the agent uses it, also ``undetermined=True``.
        ``ok=True`` with no ``resource_id`` means "verified: nothing here".
        Never raises for the system's failures."""
        ...

    def revive(self, agent: str, reason: str) -> ActionResult: ...

    def rotate(self, agent: str) -> ActionResult:
        """New credentials verified to work before old ones are revoked."""
        ...

    def issue_credentials(self, contract: Contract, run: RunContext) -> IssuedCredential: ...

    def revoke_credential(self, agent: str, credential_id: str) -> ActionResult:
        """Revoke one credential this provider issued (end of an exec run)."""
        ...


# The engine holds providers of different payload types side by side and only
# ever hands a provider back its own changes: the payload type is the
# provider's business.
AnyProvider: TypeAlias = "Provider[Any]"
ProviderFactory: TypeAlias = "Callable[[ProviderContext], AnyProvider]"


@dataclass(frozen=True)
class NameLimit:
    """The longest agent name a provider can carry, and why (for the error)."""

    max_length: int
    reason: str  # e.g. "GitHub App names are limited to 34 characters"


@dataclass(frozen=True)
class SchemaHints:
    """What a provider adds to the contract errors about its grant.

    Locations are relative to the grant: ``""`` is the grant itself, ``"[]"``
    one item of it (``"[].actions"`` a key of an item).
    """

    # An unknown key people write by habit (lowercased, '_' dropped) -> what to do.
    unknown_key: Mapping[str, str] = field(default_factory=dict)
    # A required key at a location -> how to add it, e.g. {"[].actions": "add ..."}.
    missing_key: Mapping[str, str] = field(default_factory=dict)
    # A location -> what it must be, said for people, e.g. {"": "a list of scopes"}.
    expected_type: Mapping[str, str] = field(default_factory=dict)


def load_object(target: str, what: str) -> object:
    """``"module:attr"`` imported: how specs name what they load lazily."""
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"{what} {target!r} cannot be loaded ({exc.__class__.__name__})",
            hint="reinstall the package that provides it, or uninstall it",
        ) from None


@dataclass(frozen=True, eq=False)
class ProviderSpec(Generic[GrantT, SettingsT]):
    """Everything the core knows about a provider without importing its SDK.

    A provider package exports one of these as ``SPEC`` and registers it under
    the ``agentctl.providers`` entry point group (``name = "pkg:SPEC"``).
    Importing the package must stay cheap: ``agentctl validate`` loads every
    spec, and only a command that acts on the system calls :meth:`create`.

    - ``grant_schema``: the JSON Schema of ``permissions.<name>`` (Draft
      2020-12), with ``schema_defs`` for the ``#/$defs/...`` it references;
      the contract schema is assembled from these.
    - ``parse_grant``: a schema-valid grant -> the provider's frozen typed value
      (run once, at validation; stored on the contract).
    - ``check_grant``: vocabulary and lint of a parsed grant under the
      settings (no network); findings are located by the contract loader.
    - ``describe_grant``: the grant in one line, for the audit trail's scope.
    - ``settings_type``: the frozen dataclass of its ``agentctl.yaml``
      section (every field defaulted); the config schema is derived from it.
    - ``provider``: ``"module:attr"`` of a :data:`ProviderFactory`.
    - ``commands``: optional ``"module:attr"`` of a :data:`ProviderCommands`
      (called with the CLI's :class:`CommandLine`, returns a Typer app) mounted
      as ``agentctl <name> ...``; a Typer app itself is mounted as it is.
    - ``check_name``: optional check of an agent's name given its (parsed) grant
      and the settings; findings are placed at ``agent.name``.
    """

    name: str
    summary: str
    grant_schema: JsonObject
    parse_grant: Callable[[JsonValue], GrantT]
    check_grant: Callable[[GrantT, SettingsT], Sequence[GrantFinding]]
    describe_grant: Callable[[GrantT], str]
    settings_type: type[SettingsT]
    provider: str
    schema_defs: Mapping[str, JsonObject] = field(default_factory=dict)
    hints: SchemaHints = field(default_factory=SchemaHints)
    name_limit: NameLimit | None = None
    commands: str | None = None
    # Checks of the agent's name under the settings, for an agent this provider
    # serves (e.g. a GitHub App name built from a template must fit GitHub's limit).
    check_name: Callable[[str, GrantT, SettingsT], Sequence[GrantFinding]] | None = None

    def create(self, context: ProviderContext) -> AnyProvider:
        """The provider itself (imports its lifecycle module, and so its SDK's wrapper)."""
        factory = load_object(self.provider, f"the {self.name} provider")
        if not callable(factory):
            raise ConfigError(
                f"the {self.name} provider {self.provider!r} is not a provider factory",
                hint="reinstall the package that provides it, or uninstall it",
            )
        provider: AnyProvider = factory(context)
        return provider


# A spec whose grant and settings types are its own business (the registry's view).
AnySpec: TypeAlias = "ProviderSpec[Any, Any]"


@runtime_checkable
class RotatesInSteps(Protocol):
    """A provider whose ``rotate`` can pause between minting the new
    credentials and revoking the old ones, so running runs of the agent can
    take new credentials first (``rotate``'s overlap; see agentctl.run_supply).

    ``begin_rotate`` mints and verifies the new credentials and fixes which
    old ones go (those issued so far); the returned callable revokes them and
    returns what ``rotate`` would have. Credentials issued in between survive.
    ``rotate(agent)`` stays ``begin_rotate(agent)()``.
    """

    def begin_rotate(self, agent: str) -> Callable[[], ActionResult]: ...


@runtime_checkable
class NotesOnPlan(Protocol):
    """A provider with something to say about the system as a whole, not one
    agent (an organization nearing a limit of the system's): a refreshing
    ``plan`` lists these notes after the agents. Notes are not changes: they
    leave ``plan --detailed-exitcode`` alone."""

    def plan_notes(self) -> tuple[str, ...]: ...


@runtime_checkable
class ChecksKill(Protocol):
    """A provider that can tell, read-only, whether a kill still holds.

    ``status --refresh`` and ``plan`` ask it about every killed agent: someone
    removing a deny or unsuspending an installation behind agentctl's back
    shows as ``kill-undone``.
    """

    def check_killed(self, agent: str) -> ActionResult:
        """action ``"check-kill"``; makes no write. ``ok``: every revocation
        is in place (``verified`` lists them) or the agent has nothing here.
        Not ``ok``: ``detail`` says what is undone, ``remaining`` how to
        restore it (usually ``agentctl kill NAME``); ``undetermined`` when the
        system cannot be asked."""
        ...


@runtime_checkable
class HoldsSecrets(Protocol):
    """A provider that keeps values in the secret store (App keys, live tokens).

    ``agentctl secrets migrate`` asks it which keys to move: keyring backends
    such as the macOS keychain cannot list what they hold.
    """

    def secret_refs(self) -> list[str]:
        """Every secret-store key this provider may hold a value under, from the state."""
        ...


@dataclass(frozen=True)
class LongLivedSecret:
    """A secret an agent keeps across runs that only a person can replace: a
    GitHub App private key (GitHub has no API that makes one), a Jira service
    account's API token (Atlassian mints them only in its admin console).
    Never the value.

    ``created_at``: when the secret was made, or, where the system does not
    say, when agentctl stored it (moments after it was made). None: stored
    before agentctl recorded this; its age is then only known to be at least
    ``now - tracked_since``.
    """

    agent: str
    provider: str
    kind: str  # "app-private-key" | "api-token"
    id: str  # the App id, the token's id
    # Identifies it without revealing it; for a GitHub key, the one GitHub's
    # settings page shows beside it. None: not known (stored before it was recorded).
    fingerprint: str | None
    created_at: datetime | None
    tracked_since: datetime
    expires_at: datetime | None = None

    json_fields: ClassVar[JsonFields] = (
        "provider",
        "kind",
        "id",
        "fingerprint",
        "created_at",
        "tracked_since",
        "expires_at",
    )

    def min_age_days(self, now: datetime) -> int:
        """Days it has existed at least (exactly, when ``created_at`` is known)."""
        return (now - (self.created_at or self.tracked_since)).days


class SecretRows(Protocol):
    """The recorded rows a provider dates long-lived secrets from: the state
    store, or the read-only snapshot ``status`` reads on SQLite
    (agentctl.state.snapshot.StatusSnapshot: live credentials only)."""

    def list_long_lived_secrets(
        self, provider: str | None = None, agent: str | None = None
    ) -> list[LongLivedSecretRecord]: ...

    def list_credentials(
        self,
        agent: str | None = None,
        provider: str | None = None,
        live_at: datetime | None = None,
    ) -> list[CredentialRecord]: ...


@runtime_checkable
class HoldsLongLivedSecrets(Protocol):
    """A provider whose agents hold secrets a person must replace by hand, so
    ``expiring`` reports them by age (``rotation_max_age_days``) and expiry,
    with the steps, and ``status`` shows their age. Both read the state only:
    no call to the provider's system (cron runs ``expiring`` for every agent).
    """

    def long_lived_secrets(self, rows: SecretRows | None = None) -> Sequence[LongLivedSecret]:
        """Every such secret the state records for this provider, current ones
        only (a replaced key or revoked token is not listed). Read from
        ``rows`` when given (credentials: live ones only), else the state store."""
        ...

    def replacement_steps(self, secret: LongLivedSecret) -> str:
        """The exact steps a person takes to replace ``secret`` (where to make the
        new one, the agentctl command that installs it, what to delete after)."""
        ...


# -- a provider's own sub-commands (``agentctl <provider> ...``) ----------------------


class CommandSession(Protocol):
    """What a provider's command runs against (``agentctl.commands.Session``
    is one): the provider, the agent's contract and the audit trail, each
    opened on first use."""

    may_create_state: bool

    @property
    def clock(self) -> Clock:
        """The session's "now" (a test's frozen clock, else the system's)."""
        ...

    def config(self, contract_paths: Sequence[str] = ()) -> Config:
        """agentctl.yaml (found from ``contract_paths`` when not given)."""
        ...

    def require_person(self, command: str, target: str) -> object:
        """The verified person running ``command`` (agentctl.identity.Actor);
        raises before anything changes if nobody is verified or it is an agent.
        Every command that changes something calls it first."""
        ...

    def provider(self, name: str, contract_paths: Sequence[str] = ()) -> AnyProvider: ...

    def contract(
        self,
        name: str,
        path: Path,
        *,
        gets: str,
        system: str | None = None,
        system_title: str | None = None,
    ) -> Contract: ...

    def audit(self, draft: AuditDraft) -> None: ...


class TextOutput(Protocol):
    """Where a text renderer writes (``agentctl.render.Output`` is one)."""

    def line(self, markup: str = "") -> None: ...


ResultT = TypeVar("ResultT")


class CommandLine(Protocol):
    """What agentctl's CLI hands a provider's sub-commands, so a provider package
    never imports the CLI: the session of a command line, the shared
    ``--output`` option, the one renderer and a way to register a text
    rendering for the provider's own results."""

    output_option: Any  # typer's OptionInfo of --output/-o (text|json)

    def session(self, ctx: typer.Context) -> CommandSession: ...

    def complete_agent_name(self, ctx: typer.Context, incomplete: str) -> list[str]:
        """Shell completion of an agent NAME argument (``autocompletion=``)."""
        ...

    def show(self, result: object, output: OutputFormat) -> None: ...

    def text_renderer(
        self, result_type: str
    ) -> Callable[
        [Callable[[ResultT, TextOutput], None]], Callable[[ResultT, TextOutput], None]
    ]: ...


# ``ProviderSpec.commands`` names one of these.
ProviderCommands: TypeAlias = "Callable[[CommandLine], typer.Typer]"
