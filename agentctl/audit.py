"""The audit trail: hash-chain verification, JSON Lines export, and the fallback journal.

Events are appended by :meth:`agentctl.state.StateStore.append_audit`, which
computes the chain inside one serialized transaction. When the state store is
unreachable (a kill during a database outage), the event goes to a local
:class:`AuditJournal` instead, and :func:`import_journal` moves journaled
events into the store on the next run. Nothing is ever lost, and the journal
is tamper-evident with its own local hash chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from agentctl.clock import Clock, system_clock
from agentctl.config import Config
from agentctl.errors import StateError
from agentctl.secrets import check_no_secrets
from agentctl.state.records import GENESIS_HASH, AuditEvent
from agentctl.state.store import StateStore, normalize_detail

JOURNAL_IMPORT_ACTION = "audit.journal-import"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_seq": self.first_bad_seq,
            "first_bad_id": self.first_bad_id,
            "problem": self.problem,
        }


def verify_chain(events: Iterable[AuditEvent], head: tuple[int, str] | None = None) -> VerifyResult:
    """Check the chain link by link, in the order given (seq order).

    Stops at the first broken link and says how it broke: a gap (deleted
    events), a link to an event that now sits elsewhere (reordered), a link to
    nothing (deleted or replaced), or contents that no longer match their hash
    (edited). ``head`` is the chain head the appenders recorded; with it, a
    deleted or replaced tail is detected too.
    """
    chain = list(events)
    by_hash = {event.hash: event for event in chain}
    expected_seq, prev_hash = 1, GENESIS_HASH
    for checked, event in enumerate(chain):
        broken = _broken_link(event, expected_seq, prev_hash, by_hash)
        if broken is not None:
            bad_seq, problem = broken
            bad_id = event.id if bad_seq == event.seq else None
            return VerifyResult(False, checked, bad_seq, bad_id, problem)
        expected_seq, prev_hash = event.seq + 1, event.hash
    last_seq = expected_seq - 1
    if head is None or head == (last_seq, prev_hash):
        return VerifyResult(True, len(chain))
    head_seq, _ = head
    if head_seq > last_seq:
        problem = (
            f"the chain ends at seq {last_seq} but its head records seq {head_seq}: "
            f"the last {head_seq - last_seq} event(s) were deleted"
        )
        return VerifyResult(False, len(chain), last_seq + 1, None, problem)
    if head_seq < last_seq:
        problem = (
            f"events after seq {head_seq} are not covered by the chain head: added outside agentctl"
        )
        return VerifyResult(False, head_seq, head_seq + 1, chain[head_seq].id, problem)
    problem = f"event seq {last_seq} is not the event recorded as the chain head: it was replaced"
    return VerifyResult(False, len(chain) - 1, last_seq, chain[-1].id, problem)


def _broken_link(
    event: AuditEvent, expected_seq: int, prev_hash: str, by_hash: Mapping[str, AuditEvent]
) -> tuple[int, str] | None:
    """(first bad seq, what happened) if ``event`` does not continue the chain."""
    if event.seq > expected_seq:
        missing = event.seq - expected_seq
        span = f"seq {expected_seq}" if missing == 1 else f"seqs {expected_seq}-{event.seq - 1}"
        return expected_seq, f"{span} missing: {missing} event(s) deleted before seq {event.seq}"
    if event.seq < expected_seq:
        return event.seq, f"seq {event.seq} appears again after seq {expected_seq - 1}"
    if event.prev_hash != prev_hash:
        origin = by_hash.get(event.prev_hash)
        if origin is not None and origin is not event:
            return event.seq, (
                f"event seq {event.seq} was chained after the event now at seq {origin.seq}, "
                f"not after seq {event.seq - 1}: events were reordered"
            )
        return event.seq, (
            f"event seq {event.seq} does not link to the event before it: "
            "an earlier event was deleted or replaced"
        )
    if event.compute_hash() != event.hash:
        return event.seq, f"event seq {event.seq} does not match its hash: a field was edited"
    return None


def export_jsonl(events: Iterable[AuditEvent], fp: IO[str]) -> int:
    """Write one JSON object per line (the ``audit --output json`` shape); returns the count."""
    count = 0
    for event in events:
        fp.write(json.dumps(event.as_dict(), sort_keys=True, ensure_ascii=False))
        fp.write("\n")
        count += 1
    return count


def read_jsonl(lines: Iterable[str]) -> tuple[list[AuditEvent], list[str]]:
    """Parse exported/journaled events; returns the events and a problem per bad line."""
    events: list[AuditEvent] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(AuditEvent.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            kind = "incomplete (written during a crash?)" if not line.endswith("\n") else "invalid"
            problems.append(f"line {number} is {kind} and was skipped")
    return events, problems


class AuditJournal:
    """A local, append-only JSON Lines file (0600) for events the store could not take.

    Each line is a full :class:`AuditEvent` with a local hash chain, so an
    edited journal is detected at import. Appends and imports hold an
    exclusive ``flock`` on the file: concurrent agentctl processes on the host
    neither interleave lines nor lose events to an import's truncation.
    """

    def __init__(self, path: Path | str, *, clock: Clock = system_clock) -> None:
        self.path = Path(path).expanduser()
        self._clock = clock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot open the audit journal {self.path}: {exc.strerror}",
                hint="make its directory writable, or set 'journal:' in agentctl.yaml",
            ) from None
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield handle  # closing the file releases the lock

    def append(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        result: str,
        operator: str,
        on_behalf_of: str | None = None,
        scope: str | None = None,
        trigger: str | None = None,
        detail: Mapping[str, Any] | None = None,
        time: datetime | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            seq=0,
            id=uuid.uuid4().hex,
            time=time or self._clock(),
            actor=actor,
            on_behalf_of=on_behalf_of,
            action=action,
            scope=scope,
            trigger=trigger,
            target=target,
            result=result,
            operator=operator,
            detail=normalize_detail(detail),
        )
        check_no_secrets(event.hashed_fields(), "audit event")
        with self._locked() as handle:
            handle.seek(0)
            existing, _ = read_jsonl(handle)
            last = existing[-1] if existing else None
            event = replace(
                event,
                seq=last.seq + 1 if last else 1,
                prev_hash=last.hash if last else GENESIS_HASH,
            )
            event = replace(event, hash=event.compute_hash())
            line = json.dumps(event.as_dict(), sort_keys=True, ensure_ascii=False) + "\n"
            size = os.fstat(handle.fileno()).st_size
            if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
                line = "\n" + line  # a crash cut the last line short: do not glue onto it
            # One write of a whole line on an O_APPEND descriptor, then fsync:
            # the event is durable before the caller reports the kill done.
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return event

    def events(self) -> list[AuditEvent]:
        if not self.path.exists():
            return []
        with self._locked() as handle:
            handle.seek(0)
            events, _ = read_jsonl(handle)
        return events


@dataclass(frozen=True)
class JournalImport:
    imported: int
    skipped: int  # already in the store (an earlier import crashed before truncating)
    problem: str | None  # the journal's own chain or lines were damaged


def import_journal(
    store: StateStore, journal: AuditJournal, *, operator: str | None = None
) -> JournalImport:
    """Move journaled events into the store's chain, then empty the journal.

    Idempotent by event id: a crash between appending and truncating only
    means the next import skips what is already there. A damaged journal is
    still imported (nothing is dropped), and the damage is itself recorded as
    a failed ``audit.journal-import`` event in the tamper-evident chain.
    """
    if not journal.path.exists():
        return JournalImport(0, 0, None)
    with journal._locked() as handle:
        handle.seek(0)
        events, problems = read_jsonl(handle)
        if not events and not problems:
            return JournalImport(0, 0, None)
        check = verify_chain(events)
        if not check.ok:
            problems.insert(0, f"journal chain broken: {check.problem}")
        imported = skipped = 0
        for event in events:
            if store.get_audit_event(event.id) is not None:
                skipped += 1
                continue
            store.append_audit(
                id=event.id,
                time=event.time,
                actor=event.actor,
                on_behalf_of=event.on_behalf_of,
                action=event.action,
                scope=event.scope,
                trigger=event.trigger,
                target=event.target,
                result=event.result,
                operator=event.operator,
                detail=event.detail,
            )
            imported += 1
        problem = "; ".join(problems) or None
        store.append_audit(
            actor="agentctl",
            action=JOURNAL_IMPORT_ACTION,
            target=str(journal.path),
            result="failed" if problem else "ok",
            operator=operator or Config().resolved_operator(),
            detail={"imported": imported, "skipped": skipped, "problem": problem},
        )
        handle.truncate(0)
        handle.flush()
        os.fsync(handle.fileno())
    return JournalImport(imported, skipped, problem)
