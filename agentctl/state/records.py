"""The frozen records the state store returns.

Nothing here ever holds a secret value: credentials are described by a
fingerprint and, at most, a reference to the secret store (``secret_ref``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from agentctl.errors import DamagedStateRow
from agentctl.model import AgentStatus

# The schema version this agentctl writes (agentctl.state.schema.LATEST_VERSION,
# kept here too so readers that skip SQLAlchemy can check it).
SCHEMA_VERSION = 8

# Rows per fetch when streaming the audit trail: memory stays flat at any length.
AUDIT_BATCH_SIZE = 2000

# prev_hash of the first event: the chain has to start somewhere fixed, so that
# deleting the first event is as visible as deleting any other.
GENESIS_HASH = "0" * 64


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class AgentRecord:
    """An agent as the state records it: its contract as last applied and its status."""

    name: str
    owner: str
    purpose: str
    execution_mode: str
    expiry: date | None  # None: known only from a provider (e.g. kill without a contract)
    status: AgentStatus
    contract_hash: str | None
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    killed_at: datetime | None = None
    last_rotated_at: datetime | None = None
    document: dict[str, Any] | None = None  # the contract as last applied


@dataclass(frozen=True)
class AgentSummary:
    """The fields of an :class:`AgentRecord` that ``status``/``list`` show: read
    for every agent without the applied contract (JSON) or the bookkeeping
    timestamps (at 10,000 agents decoding those was most of the state read)."""

    name: str
    owner: str
    execution_mode: str
    expiry: date | None
    status: AgentStatus
    status_reason: str | None
    last_rotated_at: datetime | None


@dataclass(frozen=True)
class ResourceRecord:
    """What one provider provisioned for one agent (one row per agent and provider)."""

    agent: str
    provider: str
    resource_id: str
    attributes: dict[str, Any]
    applied_hash: str | None
    updated_at: datetime


@dataclass(frozen=True)
class IntentRecord:
    """A change announced before a call that cannot be repeated, not yet settled:
    a process that died between the call and recording its outcome."""

    agent: str
    provider: str
    action: str
    detail: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class CredentialRecord:
    """Metadata of an issued credential; the value itself lives only in the secret store."""

    id: str
    agent: str
    provider: str
    kind: str
    fingerprint: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    on_behalf_of: str | None = None
    trigger: str | None = None
    secret_ref: str | None = None

    def is_live(self, at: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > at


@dataclass(frozen=True)
class LongLivedSecretRecord:
    """When a secret an agent keeps across runs was made (a GitHub App private
    key): one row per agent, provider and kind, replaced when the secret is.
    ``created_at`` None: stored before agentctl recorded it (state schema 7);
    ``tracked_since`` is then when the state began tracking it."""

    agent: str
    provider: str
    kind: str
    key_id: str
    fingerprint: str | None
    created_at: datetime | None
    tracked_since: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ApprovalRecord:
    """A request to run a ``human-approval`` agent, and who decided it when."""

    id: str
    agent: str
    requester: str
    on_behalf_of: str | None
    trigger: str | None
    command: str
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    used_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ServeCallerRecord:
    """A caller of ``agentctl serve``: never the token or key itself.

    ``token_hash`` is the sha256 of a bearer token; a signing key's value is
    in the secret store under ``secret_ref``.
    """

    name: str
    kind: str  # "token" | "hmac"
    fingerprint: str
    created_at: datetime
    created_by: str
    token_hash: str | None = None
    secret_ref: str | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


def stored_time(value: datetime | None) -> str | None:
    """A timestamp as the store writes it to SQLite (agentctl.state.schema.UTCDateTime
    through SQLAlchemy's DATETIME: UTC, no zone, fixed width), so string order is
    time order. The one rendering the SQLAlchemy-free paths (runstate, snapshot)
    write and compare with; tests/test_fast_path_drift.py holds it to the store's."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("state timestamps must be timezone-aware (UTC)")
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} "
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def read_stored_time(text: str | None) -> datetime | None:
    """The inverse of :func:`stored_time`, for the SQLAlchemy-free readers."""
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def format_time(moment: datetime) -> str:
    """The one textual form of an audit timestamp: UTC, microseconds, fixed width.

    Audit times are stored and hashed as this string, so the hash does not
    depend on how a database driver round-trips timestamps, and string order is
    time order (``--since`` filters compare strings).
    """
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class AuditEvent:
    """One link of the audit hash chain.

    ``hash`` is sha256 over the canonical JSON of every other field, including
    ``seq`` and ``prev_hash``: editing any field, deleting an event or moving
    one breaks the chain at that point. ``mac`` keys the chain: without the
    key from the secret store, a recomputed hash has no MAC to match.
    """

    seq: int
    id: str
    time: datetime
    actor: str
    on_behalf_of: str | None
    action: str
    scope: str | None  # the scopes the actor held, as the caller renders them
    trigger: str | None
    target: str
    result: str
    operator: str
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS_HASH
    hash: str = ""
    # HMAC of ``hash`` under the chain key (agentctl.audit_key); None on events
    # of an unkeyed trail. Not part of ``hash``: sealing an old trail adds MACs
    # without changing a single hash.
    mac: str | None = None

    def hashed_fields(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "time": format_time(self.time),
            "actor": self.actor,
            "on_behalf_of": self.on_behalf_of,
            "action": self.action,
            "scope": self.scope,
            "trigger": self.trigger,
            "target": self.target,
            "result": self.result,
            "operator": self.operator,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(
            self.hashed_fields(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape (``audit --output json``, ``audit export``)."""
        return {**self.hashed_fields(), "hash": self.hash, "mac": self.mac}

    # Its JSON is its wire format (the hash chain covers it), also in `agentctl audit`.
    __json__ = as_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditEvent:
        return cls(
            seq=int(data["seq"]),
            id=str(data["id"]),
            time=datetime.fromisoformat(data["time"]),
            actor=data["actor"],
            on_behalf_of=data.get("on_behalf_of"),
            action=data["action"],
            scope=data.get("scope"),
            trigger=data.get("trigger"),
            target=data["target"],
            result=data["result"],
            operator=data["operator"],
            detail=dict(data.get("detail") or {}),
            prev_hash=data["prev_hash"],
            hash=data["hash"],
            mac=data.get("mac"),
        )


@dataclass(frozen=True)
class AuditDraft:
    """One audit event as the code that acted describes it: who acted, on whose
    behalf, what, on what, with which result and details.

    Built once by the caller and handed down unchanged through every layer
    (``Engine.audit``, ``Session.audit``, ``StateStore.append_audit``, the
    fallback ``AuditJournal``); the sink that records it adds what only it
    knows: the verified operator, the id and time, and its place in the chain.
    """

    actor: str
    action: str
    target: str
    result: str
    on_behalf_of: str | None = None
    scope: str | None = None  # the scopes the actor held, as the caller renders them
    trigger: str | None = None
    detail: Mapping[str, Any] | None = None

    def with_detail(self, **more: Any) -> AuditDraft:
        """The same draft with ``more`` added to its detail (the engine adds who proved the operator)."""
        return replace(self, detail={**dict(self.detail or {}), **more})

    def event(self, *, operator: str, id: str, time: datetime) -> AuditEvent:
        """The event to chain (seq and hashes still unset), its detail exactly as it
        will read back from JSON."""
        return AuditEvent(
            seq=0,
            id=id,
            time=time,
            actor=self.actor,
            on_behalf_of=self.on_behalf_of,
            action=self.action,
            scope=self.scope,
            trigger=self.trigger,
            target=self.target,
            result=self.result,
            operator=operator,
            detail=normalize_detail(self.detail),
        )

    @classmethod
    def of(cls, event: AuditEvent) -> AuditDraft:
        """What ``event`` recorded (replaying a journaled event into the store)."""
        return cls(
            actor=event.actor,
            action=event.action,
            target=event.target,
            result=event.result,
            on_behalf_of=event.on_behalf_of,
            scope=event.scope,
            trigger=event.trigger,
            detail=event.detail,
        )


def normalize_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """``detail`` exactly as it will read back from JSON (tuples become lists, ...).

    The hash must be computed over what is stored, or verify would flag a
    perfectly good event.
    """
    try:
        text = json.dumps(
            dict(detail or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        result: dict[str, Any] = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"audit detail must be plain JSON data: {exc}") from None
    return result


@dataclass(frozen=True)
class AuditHead:
    """The chain head row: the last event's seq and hash, MAC'd under the chain key.

    ``mac``/``key_id`` are None on a trail that was never keyed.
    """

    seq: int
    hash: str
    mac: str | None = None
    key_id: str | None = None
    trail: str | None = None  # the trail's name (its key and anchors are filed under it)


# -- reading stored rows back, checked -------------------------------------------
#
# Every reader of the state (the SQLAlchemy store, and the sqlite3 fast paths
# of exec/credentials and status/plan) turns rows into records here. A value
# agentctl never writes — a status it does not know, a timestamp that is no
# timestamp, a document that is not JSON, NULL or a number where text belongs
# (SQLite keeps anything in any column) — comes from outside agentctl: a bad
# manual edit or restore, or whoever can write the state database. It becomes
# a DamagedStateRow naming the state, the table, the row and the column, and
# never the value (a state writer chooses it: it may look like a secret, or
# hold terminal escapes).


class Unreadable:
    """What a checked column type (agentctl.state.schema) gives for a stored
    value the driver could not read as that type (SQLite keeps any text in a
    DATETIME column). Holds nothing of the value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unreadable stored value>"


UNREADABLE = Unreadable()
StrEnumT = TypeVar("StrEnumT", bound=StrEnum)

# The columns that name a row, per table (shown in the message).
_ROW_KEYS: dict[str, tuple[str, ...]] = {
    "agents": ("name",),
    "resources": ("agent", "provider"),
    "credentials": ("id", "agent"),
    "long_lived_secrets": ("agent", "provider", "kind"),
    "intents": ("agent", "provider", "action"),
    "approvals": ("id", "agent"),
    "audit_events": ("seq",),
}

DAMAGED_ROW_HINT = (
    "the row was changed outside agentctl (a manual edit, a partial restore, or "
    "whoever can write the state database): restore the state database from a "
    "backup or correct that column by hand, and run `agentctl audit verify` to see "
    "whether the audit trail was touched too; `agentctl kill NAME` still revokes an "
    "agent in every system (it finds it by its name and tags)"
)


def shown_key(value: object) -> str:
    """A row's key as a message may show it: quoted and escaped, cut short, and
    never a value that looks like a secret."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return "(unreadable)" if value is None or isinstance(value, Unreadable) else "(not text)"
    from agentctl.secrets import SecretLeakError, check_no_secrets

    try:
        check_no_secrets(value, "key")
    except SecretLeakError:
        return "(a value that looks like a secret)"
    return repr(value if len(value) <= 64 else value[:61] + "...")


class StoredRow:
    """One stored row, read column by column: each accessor returns the
    column's value as agentctl wrote it, or raises DamagedStateRow."""

    __slots__ = ("_table", "_url", "_values")

    def __init__(self, url: str, table: str, values: Mapping[Any, Any]) -> None:
        self._url = url
        self._table = table
        self._values = values

    def damaged(self, column: str, problem: str) -> DamagedStateRow:
        keys = _ROW_KEYS.get(self._table, ())
        label = ", ".join(f"{key} {shown_key(self._values.get(key))}" for key in keys)
        owner = "name" if self._table == "agents" else "agent"
        agent = self._values.get(owner)
        return DamagedStateRow(
            f"state store {self._url}: damaged row in table {self._table} "
            f"({label or 'no key'}): column {column} {problem}",
            hint=DAMAGED_ROW_HINT,
            table=self._table,
            row=label,
            column=column,
            agent=agent if isinstance(agent, str) else None,
        )

    def text(self, column: str) -> str:
        value = self._values[column]
        if isinstance(value, str):
            return value
        raise self.damaged(column, "is empty (NULL)" if value is None else "is not text")

    def optional_text(self, column: str) -> str | None:
        value = self._values[column]
        if value is None or isinstance(value, str):
            return value
        raise self.damaged(column, "is not text")

    def time(self, column: str) -> datetime:
        found = self.optional_time(column)
        if found is None:
            raise self.damaged(column, "is empty (NULL), and it must hold a time")
        return found

    def optional_time(self, column: str) -> datetime | None:
        value = self._values[column]
        if value is None:
            return None
        if isinstance(value, str):  # the sqlite3 readers get the stored text
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                value = UNREADABLE
        if not isinstance(value, datetime):
            raise self.damaged(column, "is not a timestamp")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def day(self, column: str) -> date | None:
        value = self._values[column]
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        elif isinstance(value, date) and not isinstance(value, datetime):
            return value
        raise self.damaged(column, "is not a date (YYYY-MM-DD)")

    def json_object(self, column: str) -> dict[str, Any]:
        found = self.optional_json_object(column)
        if found is None:
            raise self.damaged(column, "is empty, and it must hold a JSON object")
        return found

    def optional_json_object(self, column: str) -> dict[str, Any] | None:
        """A JSON object, or None for NULL or an empty text (how the store reads a document)."""
        value = self._values[column]
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                found = json.loads(value)
            except (ValueError, RecursionError):
                raise self.damaged(column, "is not JSON") from None
            if isinstance(found, dict):
                return found
        raise self.damaged(column, "is not a JSON object")

    def choice(self, column: str, kind: type[StrEnumT]) -> StrEnumT:
        value = self._values[column]
        try:
            return kind(value)
        except ValueError:
            known = ", ".join(member.value for member in kind)
            raise self.damaged(
                column, f"is not a {column} agentctl knows (one of: {known})"
            ) from None


RecordT = TypeVar("RecordT")


def decode_rows(
    decode: Callable[[str, Mapping[Any, Any]], RecordT],
    url: str,
    rows: Iterable[Mapping[Any, Any]],
    damaged: list[DamagedStateRow] | None,
) -> list[RecordT]:
    """Every row decoded; with ``damaged`` (a list), a damaged row is added to
    it and left out instead of ending the read (``status`` shows the healthy
    rows and names the damaged ones)."""
    if damaged is None:
        return [decode(url, row) for row in rows]
    found: list[RecordT] = []
    for row in rows:
        try:
            found.append(decode(url, row))
        except DamagedStateRow as exc:
            damaged.append(exc)
    return found


def audit_event(url: str, values: Mapping[Any, Any]) -> AuditEvent:
    """One stored audit event. Its time and detail are the exact text that was
    hashed; one that does not even parse was written outside agentctl (verify
    reports it as a break of the chain at that seq)."""
    try:
        return AuditEvent.from_dict({**values, "detail": _detail(values["detail"])})
    except (ValueError, TypeError, KeyError, RecursionError):
        pass
    row = StoredRow(url, "audit_events", values)
    if not isinstance(values.get("seq"), int):
        raise row.damaged("seq", "is not a number")
    for column in ("id", "actor", "action", "target", "result", "operator", "prev_hash", "hash"):
        row.text(column)
    for column in ("on_behalf_of", "scope", "trigger", "mac"):
        row.optional_text(column)
    try:
        moment = datetime.fromisoformat(row.text("time"))
    except ValueError:
        raise row.damaged("time", "is not a timestamp") from None
    if moment.tzinfo is None:
        raise row.damaged("time", "is not a timestamp with a time zone")
    row.json_object("detail")
    raise row.damaged("detail", "is not what agentctl writes")


def _detail(text: Any) -> dict[str, Any]:
    found = json.loads(text)
    if not isinstance(found, dict):
        raise TypeError("an audit detail is a JSON object")
    return found


def agent_record(url: str, values: Mapping[Any, Any]) -> AgentRecord:
    row = StoredRow(url, "agents", values)
    return AgentRecord(
        name=row.text("name"),
        owner=row.text("owner"),
        purpose=row.text("purpose"),
        execution_mode=row.text("execution_mode"),
        expiry=row.day("expiry"),
        status=row.choice("status", AgentStatus),
        contract_hash=row.optional_text("contract_hash"),
        status_reason=row.optional_text("status_reason"),
        created_at=row.time("created_at"),
        updated_at=row.time("updated_at"),
        killed_at=row.optional_time("killed_at"),
        last_rotated_at=row.optional_time("last_rotated_at"),
        document=row.optional_json_object("document"),
    )


def agent_summary(url: str, values: Mapping[Any, Any]) -> AgentSummary:
    row = StoredRow(url, "agents", values)
    return AgentSummary(
        name=row.text("name"),
        owner=row.text("owner"),
        execution_mode=row.text("execution_mode"),
        expiry=row.day("expiry"),
        status=row.choice("status", AgentStatus),
        status_reason=row.optional_text("status_reason"),
        last_rotated_at=row.optional_time("last_rotated_at"),
    )


def resource_record(url: str, values: Mapping[Any, Any]) -> ResourceRecord:
    row = StoredRow(url, "resources", values)
    return ResourceRecord(
        agent=row.text("agent"),
        provider=row.text("provider"),
        resource_id=row.text("resource_id"),
        attributes=row.json_object("attributes"),
        applied_hash=row.optional_text("applied_hash"),
        updated_at=row.time("updated_at"),
    )


def credential_record(url: str, values: Mapping[Any, Any]) -> CredentialRecord:
    row = StoredRow(url, "credentials", values)
    return CredentialRecord(
        id=row.text("id"),
        agent=row.text("agent"),
        provider=row.text("provider"),
        kind=row.text("kind"),
        fingerprint=row.text("fingerprint"),
        issued_at=row.time("issued_at"),
        expires_at=row.time("expires_at"),
        revoked_at=row.optional_time("revoked_at"),
        on_behalf_of=row.optional_text("on_behalf_of"),
        trigger=row.optional_text("trigger"),
        secret_ref=row.optional_text("secret_ref"),
    )


def long_lived_secret_record(url: str, values: Mapping[Any, Any]) -> LongLivedSecretRecord:
    row = StoredRow(url, "long_lived_secrets", values)
    return LongLivedSecretRecord(
        agent=row.text("agent"),
        provider=row.text("provider"),
        kind=row.text("kind"),
        key_id=row.text("key_id"),
        fingerprint=row.optional_text("fingerprint"),
        created_at=row.optional_time("created_at"),
        tracked_since=row.time("tracked_since"),
        expires_at=row.optional_time("expires_at"),
    )


def intent_record(url: str, values: Mapping[Any, Any]) -> IntentRecord:
    row = StoredRow(url, "intents", values)
    return IntentRecord(
        agent=row.text("agent"),
        provider=row.text("provider"),
        action=row.text("action"),
        detail=row.json_object("detail"),
        created_at=row.time("created_at"),
    )


def approval_record(url: str, values: Mapping[Any, Any]) -> ApprovalRecord:
    row = StoredRow(url, "approvals", values)
    return ApprovalRecord(
        id=row.text("id"),
        agent=row.text("agent"),
        requester=row.text("requester"),
        on_behalf_of=row.optional_text("on_behalf_of"),
        trigger=row.optional_text("trigger"),
        command=row.text("command"),
        status=row.choice("status", ApprovalStatus),
        created_at=row.time("created_at"),
        expires_at=row.time("expires_at"),
        decided_by=row.optional_text("decided_by"),
        decided_at=row.optional_time("decided_at"),
        used_at=row.optional_time("used_at"),
        reason=row.optional_text("reason"),
    )
