"""A keyed audit trail on a real store, a real keyring backend and a real anchor file,
and the tools of an attacker who holds write access to the state database.

The chain key lives in agentctl's encrypted-file keyring backend (a real
``keyring`` backend, AES-GCM file, scrypt): the attacker of these tests never
reads it; they only have SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agentctl.audit import VerifyResult, verify_trail
from agentctl.audit_anchor import LocalAnchorFile, anchor_appended
from agentctl.audit_key import ChainKeySource
from agentctl.config import SecretsSettings
from agentctl.runtime import once
from agentctl.secrets import SecretStore, open_secret_store
from agentctl.state import AuditDraft, AuditEvent, StateStore, create_state_engine
from agentctl.state.records import AuditHead

PASSPHRASE = "audit-test-passphrase"
NOW = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def secret_store_at(path: Path) -> SecretStore:
    settings = SecretsSettings(backend="encrypted-file", path=str(path))
    return open_secret_store(settings, environ={"AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE})


def key_source(path: Path) -> ChainKeySource:
    return ChainKeySource(once(lambda: secret_store_at(path)), configured=True)


def append(store: StateStore, count: int, *, start: int = 0) -> None:
    for index in range(start, start + count):
        store.append_audit(
            AuditDraft(
                actor="pr-review-agent",
                on_behalf_of="amit@company.com",
                action="exec.start" if index % 2 else "credentials.issue",
                scope="github:repo:read",
                trigger=f"webhook/pr-opened/{4521 + index}",
                target="pr-review-agent",
                result="success",
                detail={"run": index},
            ),
            operator="ci-bot",
        )


@dataclass
class Trail:
    """One keyed, anchored trail and its outside parts (key, anchors)."""

    store: StateStore
    url: str
    keys: ChainKeySource
    anchors: LocalAnchorFile
    secrets_path: Path

    def command(self, events: int) -> None:
        """What one mutating command does: append events, then anchor the head."""
        start = self.store.audit_head()
        append(self.store, events, start=start.seq if start else 0)
        anchor_appended(self.store, self.anchors, self.keys, NOW)

    def verify(self) -> VerifyResult:
        return verify_trail(self.store, self.keys, self.anchors)

    # -- the attacker: SQL on the state database, nothing else ----------------------

    def sql(self, *statements: str, **params: Any) -> None:
        engine = create_state_engine(self.url)
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), params)
        engine.dispose()

    def rows(self) -> list[AuditEvent]:
        return self.store.audit_events()

    def head(self) -> AuditHead:
        head = self.store.audit_head()
        assert head is not None
        return head

    def write_events(self, events: Sequence[AuditEvent]) -> None:
        """Replace these events' rows (matched by id) with the attacker's version."""
        engine = create_state_engine(self.url)
        with engine.begin() as conn:
            for event in events:
                row = event.as_dict()
                row["detail"] = _canonical(row["detail"])
                conn.execute(
                    sa.text(
                        "UPDATE audit_events SET seq = :seq, time = :time, actor = :actor, "
                        "on_behalf_of = :on_behalf_of, action = :action, scope = :scope, "
                        "trigger = :trigger, target = :target, result = :result, "
                        "operator = :operator, detail = :detail, prev_hash = :prev_hash, "
                        "hash = :hash, mac = :mac WHERE id = :id"
                    ),
                    row,
                )
        engine.dispose()

    def insert_event(self, event: AuditEvent) -> None:
        row = event.as_dict()
        row["detail"] = _canonical(row["detail"])
        columns = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        self.sql(f"INSERT INTO audit_events ({columns}) VALUES ({values})", **row)

    def set_head(self, seq: int, hash_: str, mac: str | None = None) -> None:
        self.sql(
            "UPDATE audit_head SET seq = :seq, hash = :hash, mac = :mac WHERE id = 1",
            seq=seq,
            hash=hash_,
            mac=mac,
        )


def _canonical(detail: Any) -> str:
    import json

    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def rehash_from(events: Sequence[AuditEvent], start_seq: int) -> list[AuditEvent]:
    """The attacker's repair: recompute plain hashes (the project's own function) from
    ``start_seq`` on, keeping each event's old MAC (they cannot compute a new one)."""
    fixed: list[AuditEvent] = []
    prev = None
    for event in events:
        if event.seq >= start_seq:
            event = replace(event, prev_hash=prev.hash if prev else event.prev_hash)
            event = replace(event, hash=event.compute_hash())
            fixed.append(event)
        prev = event
    return fixed
