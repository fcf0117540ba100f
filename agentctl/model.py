"""The typed, frozen data the core passes around.

Contracts are parsed once by :mod:`agentctl.contract`; everything downstream
(plan, engine, providers) works on these values and never on raw YAML.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, Protocol, TypeAlias, TypeVar, cast

# A value as JSON (and the contract loader) knows it: what a grant is before
# its provider parses it. Read-only (Sequence/Mapping), so any list or dict of
# such values is one; JsonObject is a document being built.
# The keys of a result's JSON (agentctl.render.json_data): attribute names, or
# (key, attribute) pairs where the key differs or the attribute is a property.
JsonFields: TypeAlias = tuple[str | tuple[str, str], ...]

JsonValue: TypeAlias = (
    "bool | int | float | str | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)
JsonObject: TypeAlias = "dict[str, JsonValue]"

GrantT_co = TypeVar("GrantT_co", covariant=True)
GrantT = TypeVar("GrantT")


class GrantModel(Protocol[GrantT_co]):
    """What turns one system's grant into its provider's typed value (a
    :class:`agentctl.providers.base.ProviderSpec` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def parse_grant(self) -> Callable[[JsonValue], GrantT_co]: ...


class ExecutionMode(StrEnum):
    AUTONOMOUS = "autonomous"
    APPROVAL_REQUIRED = "approval_required"
    ON_BEHALF_OF_USER = "on_behalf_of_user"


class OutputFormat(StrEnum):
    """``--output``: text for people, JSON (a stable shape) for machines."""

    TEXT = "text"
    JSON = "json"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    # Reported, never fails a run, not raised by --strict: e.g. "declared, not
    # enforced" for a system with no provider.
    INFO = "info"


class AgentStatus(StrEnum):
    ACTIVE = "active"
    KILLED = "killed"
    # Killed, but at least one system did not confirm the revocation: running
    # `agentctl kill` again finishes it (and records KILLED).
    KILL_INCOMPLETE = "kill-incomplete"
    EXPIRED = "expired"
    REMOVED = "removed"

    @property
    def killed(self) -> bool:
        """Killed, confirmed everywhere or not: apply never revives it, exec
        never runs it; only `agentctl revive` brings it back."""
        return self in (AgentStatus.KILLED, AgentStatus.KILL_INCOMPLETE)


@dataclass(frozen=True)
class Problem:
    """One validation finding, located precisely enough to fix without searching."""

    file: str
    line: int
    column: int
    path: str  # dotted JSON path inside the document, e.g. "permissions.github[1]"
    severity: Severity
    code: str  # stable identifier, e.g. "unknown-key", "expired"
    message: str  # says what is wrong *and* what to do


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


@dataclass(frozen=True)
class Contract:
    """One agent's access contract, validated.

    ``permissions`` maps a system name to that system's grant exactly as the
    contract declares it (plain JSON data: what the digest covers and the state
    records). :meth:`grant` gives a provider its grant as the typed value its
    spec parses it to; validation parses every enforced grant once, and stores
    it in ``grants``. Treat both as read-only.
    """

    name: str
    owner: str
    purpose: str
    execution_mode: ExecutionMode
    expiry: date
    kill_switch: str
    permissions: Mapping[str, JsonValue] = field(default_factory=dict)
    source: str = ""
    # Who may approve a run (approval_required), and whom the agent may act for.
    approvers: tuple[str, ...] = ()
    acts_for: tuple[str, ...] = ()
    # system -> the parsed grant (its provider's frozen dataclass). Not part of
    # equality: it is derived from ``permissions``.
    grants: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    def document(self) -> dict[str, Any]:
        """The contract as a plain document (what the hash covers). Optional
        keys appear only when set, so older contracts keep their digests."""
        document: dict[str, Any] = {
            "agent": {"name": self.name, "owner": self.owner, "purpose": self.purpose},
            "permissions": dict(self.permissions),
            "execution_mode": self.execution_mode.value,
            "expiry": self.expiry.isoformat(),
            "kill_switch": self.kill_switch,
        }
        if self.approvers:
            document["approvers"] = list(self.approvers)
        if self.acts_for:
            document["acts_for"] = list(self.acts_for)
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, source: str = "") -> Contract:
        """Rebuild a contract recorded by :meth:`document` (already validated when
        it was applied; the state store is trusted like the operator's host)."""
        agent = document["agent"]
        return cls(
            name=agent["name"],
            owner=agent["owner"],
            purpose=agent["purpose"],
            execution_mode=ExecutionMode(document["execution_mode"]),
            expiry=date.fromisoformat(document["expiry"]),
            kill_switch=document["kill_switch"],
            permissions=dict(document.get("permissions") or {}),
            source=source,
            approvers=tuple(document.get("approvers") or ()),
            acts_for=tuple(document.get("acts_for") or ()),
        )

    @functools.cached_property
    def digest(self) -> str:
        """sha256 of the canonical document: equal digests mean nothing to change.

        Computed once per contract (plan and apply ask ~8 times per agent; each
        was a canonical JSON dump and a hash). A contract is never mutated:
        dataclasses.replace() makes a new one, with a digest of its own."""
        return hashlib.sha256(canonical_json(self.document()).encode()).hexdigest()

    def is_expired(self, on: date) -> bool:
        # The grant ends *on* the expiry date: an agent expiring today may no longer act.
        return on >= self.expiry

    def grants_to(self, system: str) -> bool:
        """Whether the contract declares a grant for ``system``."""
        return system in self.permissions

    def grant(self, model: GrantModel[GrantT]) -> GrantT | None:
        """The typed grant for ``model``'s system, None when the contract has none.

        Parsed at validation; a contract rebuilt from the state store (already
        validated when it was applied) is parsed here on first use.
        """
        if model.name not in self.permissions:
            return None
        parsed = self.grants.get(model.name)
        if parsed is None:
            parsed = model.parse_grant(self.permissions[model.name])
        return cast(GrantT, parsed)
