"""``agentctl audit``: list the trail's events, export it, vouch for it, key an old one.

Listing and exporting stream: the results hold the events as an iterator read
once, while the renderer writes them, so any length of trail takes flat memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentctl.errors import UsageError

if TYPE_CHECKING:
    from agentctl.audit import SealResult, VerifyResult
    from agentctl.commands.session import Session
    from agentctl.state import StateStore
    from agentctl.state.records import AuditEvent


@dataclass(frozen=True)
class AuditEvents:
    """``agentctl audit``: the matching events, oldest first, read from the state
    as they are rendered (once)."""

    events: Iterator[AuditEvent] = field(repr=False)


@dataclass(frozen=True)
class AuditTrail:
    """``agentctl audit export`` to stdout: every event with seq, hashes and MACs,
    from one snapshot, read as it is written (once)."""

    events: Iterator[AuditEvent] = field(repr=False)


@dataclass(frozen=True)
class AuditExported:
    """``agentctl audit export --output-file``: how many events went to ``path``."""

    count: int
    path: str  # as the operator gave it


def events(
    session: Session,
    *,
    agent: str | None = None,
    since: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> AuditEvents:
    """The events where ``agent`` is actor or target, from ``since`` (a date, a
    time, or a duration back from now), of ``action``, the latest ``limit``."""
    from agentctl.durations import parse_since

    moment = parse_since(since, session.clock) if since else None
    state = session.state()
    return AuditEvents(
        state.iter_audit_events(agent=agent, since=moment, action=action, limit=limit)
    )


def _whole_trail(state: StateStore) -> Iterator[AuditEvent]:
    with state.audit_trail() as (_, trail):
        yield from trail


def trail(session: Session) -> AuditTrail:
    """The whole trail, streamed from one snapshot of the state."""
    return AuditTrail(_whole_trail(session.state()))


def export(
    session: Session, path: str, progress: Callable[[str], None] | None = None
) -> AuditExported:
    """Write the whole trail to ``path`` as JSON Lines (created 0600: the trail
    says who did what to which agent). ``progress``: agentctl.audit.counted."""
    from agentctl.audit import counted, export_jsonl

    state = session.state()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle, state.audit_trail() as (_, trail):
        count = export_jsonl(counted(trail, progress), handle)
    return AuditExported(count, path)


def verify(session: Session, progress: Callable[[str], None] | None = None) -> VerifyResult:
    """Check the keyed chain, its head and its latest anchor."""
    from agentctl.audit import verify_trail

    keys = session.chain_keys()
    result = verify_trail(session.state(), keys, session.anchors(), progress=progress)
    return dataclasses.replace(result, can_key=keys.configured)


def seal(session: Session) -> SealResult:
    """Verify an old unkeyed trail's hash chain, then MAC every event with the
    chain key from the secret store (created if needed). Safe to re-run."""
    from agentctl.audit import seal_trail

    # Sealing vouches for the whole trail: a verified person does it, as every
    # command that writes to the trail (an agent or the runtime host is refused).
    actor = session.require_person("audit seal", "audit-trail")
    keys = session.chain_keys()
    return seal_trail(
        session.state(), keys, session.anchors(), operator=actor.person, proof=actor.proof()
    )
