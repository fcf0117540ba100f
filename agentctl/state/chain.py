"""The audit chain's one append rule, for every writer of a state.

Two code paths write audit events to a state: the SQLAlchemy
:class:`~agentctl.state.store.StateStore` (every backend) and the standard
library's sqlite3 in :mod:`agentctl.state.runstate` (what ``exec`` and
``credentials`` use on SQLite, without the SQLAlchemy import). Both append
through :func:`append_event` here, inside their own write transaction: which
chain key seals the next event, its seq, prev_hash, hash and MAC, the head
that follows it, and the row as stored. Only the SQL that reads and writes
those rows differs, behind :class:`ChainTransaction`.

No SQLAlchemy here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.errors import StateError
from agentctl.secrets import check_no_secrets
from agentctl.state.records import AuditDraft, AuditEvent, AuditHead, audit_event

if TYPE_CHECKING:
    from datetime import datetime

    from agentctl.audit_key import ChainKey, ChainKeySource


def dump(value: Any) -> str:
    """The stored JSON text of a detail, attributes or document column."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def audit_row(event: AuditEvent) -> dict[str, Any]:
    """``event`` as its audit_events row (times and JSON as the exact hashed text)."""
    row = event.hashed_fields()
    row.update(detail=dump(row["detail"]), hash=event.hash, mac=event.mac)
    return row


def event_of_row(row: Mapping[Any, Any], url: str) -> AuditEvent:
    """The stored event (a damaged row: DamagedStateRow, naming its seq and column)."""
    return audit_event(url, row)


def new_event(draft: AuditDraft, *, operator: str, id: str, time: datetime) -> AuditEvent:
    """The unchained event for ``draft``; refused if anything in it looks like a secret."""
    event = draft.event(operator=operator, id=id, time=time)
    check_no_secrets(event.hashed_fields(), "audit event")
    return event


class ChainTransaction(Protocol):
    """One open write transaction of a state, as the append rule needs it."""

    def head(self) -> AuditHead | None:
        """The head row, locked for this transaction (None: it is missing)."""

    def stored(self, id: str) -> AuditEvent | None:
        """The event with this id, if the chain already holds it."""

    def insert(self, row: Mapping[str, Any]) -> None: ...

    def advance(self, seq: int, hash: str, mac: str | None, key_id: str | None) -> None: ...


def append_event(
    tx: ChainTransaction,
    event: AuditEvent,
    *,
    replay: bool,
    chain_keys: ChainKeySource | None,
    url: str,
) -> tuple[AuditEvent, AuditHead, bool]:
    """Chain ``event`` after the head of ``tx`` and store it; returns the event as
    stored, the head it was chained after, and whether it was appended (a
    ``replay`` of an id already in the chain returns the stored event)."""
    head = tx.head()
    if head is None:
        raise StateError(
            f"the audit chain head in {url} is missing: the trail was tampered with",
            hint="run 'agentctl audit verify' and investigate; events go to the "
            "fallback journal meanwhile",
        )
    if replay:
        found = tx.stored(event.id)
        if found is not None:
            return found, head, False
    key = key_for_append(chain_keys, url, head.trail, head.seq + 1, head.key_id)
    event = replace(event, seq=head.seq + 1, prev_hash=head.hash)
    event = replace(event, hash=event.compute_hash())
    if key is not None:
        event = replace(event, mac=key.event_mac(event.hash))
    tx.insert(audit_row(event))
    tx.advance(
        event.seq,
        event.hash,
        key.head_mac(event.seq, event.hash) if key else None,
        key.key_id if key else None,
    )
    return event, head, True


def key_for_append(
    chain_keys: ChainKeySource | None,
    url: str,
    trail: str | None,
    next_seq: int,
    head_key_id: str | None,
) -> ChainKey | None:
    """The chain key to seal the next event with (None: the trail stays unkeyed).

    A trail that is keyed never takes an unkeyed event, nor one sealed with
    another key (another operator's keyring): either would leave an event
    that no longer verifies. The error sends the event to the journal.
    """
    key = None
    if chain_keys is not None and trail:
        key = chain_keys.for_append(trail, next_seq, create=head_key_id is None)
    if head_key_id is not None and key is None:
        where = (
            f"the secret store has no 'audit/chain-key/{trail}'"
            if chain_keys is not None and chain_keys.configured
            else "no secret store is configured to hold its key"
        )
        raise StateError(
            f"the audit trail in {url} is keyed (key id {head_key_id}), but {where}",
            hint="configure the secret store that holds the trail's chain key "
            "(secrets.backend in agentctl.yaml; moved by 'agentctl secrets migrate')",
        )
    if head_key_id is not None and key is not None and key.key_id != head_key_id:
        raise StateError(
            f"the audit trail in {url} is keyed with key id {head_key_id}, but the "
            f"secret store holds key id {key.key_id}",
            hint="use the secret store the trail was started with (a team's shared store, "
            "e.g. aws-secretsmanager, when several operators share one state)",
        )
    return key
