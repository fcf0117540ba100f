"""``agentctl serve token create|list|revoke``: the callers of ``agentctl serve``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from agentctl.model import JsonFields
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.state.records import ServeCallerRecord


@dataclass(frozen=True)
class IssuedCaller:
    """A new caller and its credential, revealed this once: only its hash
    (token) or the secret store (signing key) keeps it."""

    name: str
    kind: str
    fingerprint: str
    credential: str


def create(session: Session, name: str, *, hmac: bool = False) -> IssuedCaller:
    from agentctl.serve_auth import HMAC, TOKEN, create_caller

    session.may_create_state = True  # a first caller may come before the first apply
    engine = session.engine()
    engine.require_person("serve token create", name)
    issued = create_caller(
        session.state(),
        session.secrets,
        name=name,
        kind=HMAC if hmac else TOKEN,
        created_by=engine.operator,
        clock=session.clock,
    )
    record = issued.record
    engine.audit(
        AuditDraft(
            actor=engine.operator,
            action="serve.caller.create",
            target=record.name,
            result="success",
            trigger=f"operator/{engine.operator}",
            detail={"kind": record.kind, "fingerprint": record.fingerprint},
        ),
    )
    return IssuedCaller(record.name, record.kind, record.fingerprint, issued.credential.reveal())


@dataclass(frozen=True)
class CallerView:
    """One caller as listed (never its credential); times to the second."""

    name: str
    kind: str
    status: str  # live | revoked
    fingerprint: str
    created_at: str
    created_by: str
    last_used_at: str | None
    revoked_at: str | None

    @classmethod
    def of(cls, caller: ServeCallerRecord) -> CallerView:
        def stamp(moment: datetime | None) -> str | None:
            return moment.isoformat(timespec="seconds") if moment is not None else None

        return cls(
            name=caller.name,
            kind=caller.kind,
            status="live" if caller.live else "revoked",
            fingerprint=caller.fingerprint,
            created_at=caller.created_at.isoformat(timespec="seconds"),
            created_by=caller.created_by,
            last_used_at=stamp(caller.last_used_at),
            revoked_at=stamp(caller.revoked_at),
        )


@dataclass(frozen=True)
class Callers:
    callers: tuple[CallerView, ...]

    json_fields: ClassVar[JsonFields] = ("callers",)


def callers(session: Session) -> Callers:
    return Callers(tuple(CallerView.of(c) for c in session.state().list_serve_callers()))


@dataclass(frozen=True)
class RevokedCaller:
    name: str
    status: str = "revoked"


def revoke(session: Session, name: str) -> RevokedCaller:
    from agentctl.serve_auth import revoke_caller

    engine = session.engine()
    engine.require_person("serve token revoke", name)
    record = revoke_caller(session.state(), session.secrets, name, clock=session.clock)
    engine.audit(
        AuditDraft(
            actor=engine.operator,
            action="serve.caller.revoke",
            target=record.name,
            result="success",
            trigger=f"operator/{engine.operator}",
            detail={"kind": record.kind, "fingerprint": record.fingerprint},
        ),
    )
    return RevokedCaller(record.name)
