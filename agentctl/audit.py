"""The audit trail: hash-chain verification, JSON Lines export, and the fallback journal.

Events are appended by :meth:`agentctl.state.StateStore.append_audit`, which
computes the chain inside one serialized transaction. When the state store is
unreachable (a kill during a database outage), the event goes to a local
:class:`AuditJournal` instead, and :func:`import_journal` moves journaled
events into the store on the next run. Nothing is ever lost, and the journal
is tamper-evident with its own local hash chain.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, ClassVar

from agentctl.audit_journal import AuditJournal, read_jsonl
from agentctl.audit_key import chain_key_name
from agentctl.errors import DamagedStateRow, StateError
from agentctl.model import JsonFields
from agentctl.state.records import (
    AUDIT_BATCH_SIZE,
    GENESIS_HASH,
    AuditDraft,
    AuditEvent,
    AuditHead,
)

if TYPE_CHECKING:
    from agentctl.audit_anchor import Anchor, AnchorStore
    from agentctl.audit_key import ChainKey, ChainKeySource
    from agentctl.state.store import StateStore

JOURNAL_IMPORT_ACTION = "audit.journal-import"
SEAL_ACTION = "audit.seal"


@dataclass(frozen=True)
class VerifyResult:
    """What verification found.

    ``ok``: no tampering found in what could be checked. ``keyed``: the MACs
    were checked with the chain key (without it, only the plain hashes were,
    which anyone with write access to the state can recompute). ``unsealed``:
    events of an old unkeyed trail that ``agentctl audit seal`` has yet to seal.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    problem: str | None = None
    keyed: bool = False
    unsealed: int = 0
    macs_seen: int = 0  # events that carry a MAC (checked or not)
    last_seq: int = 0
    anchor_seq: int | None = None
    anchor_where: str | None = None
    # Whether a secret store is configured to hold a chain key (what an
    # unkeyed trail's remedy starts with).
    can_key: bool = True

    json_fields: ClassVar[JsonFields] = (
        "ok",
        ("verdict", "verdict"),
        "checked",
        "first_bad_seq",
        "first_bad_id",
        "problem",
        "keyed",
        "unsealed",
        "last_seq",
        "anchor_seq",
        ("anchor", "anchor_where"),
    )

    @property
    def verdict(self) -> str:
        """intact | tampered | unverifiable | unsealed | unkeyed: what matters first."""
        if not self.ok:
            return "tampered" if self.first_bad_seq is not None else "unverifiable"
        if not self.keyed:
            return "unkeyed"
        if self.unsealed:
            return "unsealed"
        return "intact"


HeadLike = AuditHead | tuple[int, str]


def _until_damaged(events: Iterable[AuditEvent]) -> Iterator[AuditEvent | DamagedStateRow]:
    """``events``, then the DamagedStateRow that ended them, if one did."""
    iterator = iter(events)
    while True:
        try:
            event = next(iterator)
        except StopIteration:
            return
        except DamagedStateRow as exc:
            yield exc
            return
        yield event


def verify_chain(
    events: Iterable[AuditEvent],
    head: HeadLike | None = None,
    *,
    key: ChainKey | None = None,
    head_required: bool = False,
    anchor: Anchor | None = None,
    seq_of_hash: Callable[[str], int | None] | None = None,
) -> VerifyResult:
    """Check the chain link by link, in the order given (seq order), streaming.

    Stops at the first broken link and says how it broke: a gap (deleted
    events), a link to an event that now sits elsewhere (reordered), a link to
    nothing (deleted or replaced), contents that no longer match their hash
    (edited), or, with the chain ``key``, a hash whose MAC does not match
    (edited and re-hashed, inserted, renumbered). Then the ``head`` the
    appenders recorded (``head_required``: its row must exist) and the latest
    external ``anchor`` are checked, so a deleted or replaced tail is found
    too. ``seq_of_hash`` finds where a linked-to event went (diagnosis only).
    Memory stays flat: nothing but the previous link is kept.
    """
    if isinstance(head, tuple):
        head = AuditHead(seq=head[0], hash=head[1])
    expected_seq, prev_hash = 1, GENESIS_HASH
    checked = unsealed = macs_seen = 0
    last: AuditEvent | None = None
    anchored: AuditEvent | None = None

    def bad(seq: int, problem: str, event: AuditEvent | None = None) -> VerifyResult:
        return VerifyResult(
            False,
            checked,
            seq,
            event.id if event is not None and event.seq == seq else None,
            problem,
            keyed=key is not None,
            unsealed=unsealed,
            macs_seen=macs_seen,
            last_seq=last.seq if last else 0,
            anchor_seq=anchor.seq if anchor else None,
            anchor_where=anchor.where if anchor else None,
        )

    for event in _until_damaged(events):
        if isinstance(event, DamagedStateRow):
            # A row that does not even read as an event (a time that is no
            # time, a detail that is not JSON): edited outside agentctl.
            return bad(
                expected_seq,
                f"event seq {expected_seq} was written or rewritten outside agentctl: "
                f"{event.message.rpartition(': ')[2]}",
            )
        broken = _broken_link(event, expected_seq, prev_hash, seq_of_hash)
        if broken is not None:
            return bad(*broken, event)
        if event.mac is not None:
            macs_seen += 1
        if key is not None:
            if event.mac is None and event.seq >= key.keyed_from:
                return bad(
                    event.seq,
                    f"event seq {event.seq} carries no MAC, but the trail is keyed from seq "
                    f"{key.keyed_from}: it was written or rewritten outside agentctl",
                    event,
                )
            if event.mac is None:
                unsealed += 1
            elif not key.matches(key.event_mac(event.hash), event.mac):
                return bad(event.seq, _mac_problem(event, key, head, anchor), event)
        if anchor is not None and event.seq == anchor.seq:
            anchored = event
        expected_seq, prev_hash = event.seq + 1, event.hash
        last = event
        checked += 1
    last_seq = last.seq if last else 0

    if head is None and head_required:
        gone = "the chain head record is gone (its row was deleted)"
        cut = _anchor_finding(anchor, anchored, last_seq, key) if anchor is not None else None
        if cut is not None:
            return bad(cut[0], f"{cut[1]}; the chain head row was deleted too")
        return bad(
            last_seq,
            f"{gone}: without it a cut tail cannot be told from an intact one; the trail "
            f"ends at seq {last_seq}",
        )
    if head is not None:
        finding = _head_finding(head, last, key)
        if finding is not None:
            return bad(*finding, last if last and last.seq == finding[0] else None)
    if anchor is not None:
        finding = _anchor_finding(anchor, anchored, last_seq, key)
        if finding is not None:
            return bad(*finding, anchored if anchored and anchored.seq == finding[0] else None)
    return VerifyResult(
        True,
        checked,
        keyed=key is not None,
        unsealed=unsealed,
        macs_seen=macs_seen,
        last_seq=last_seq,
        anchor_seq=anchor.seq if anchor else None,
        anchor_where=anchor.where if anchor else None,
    )


def _mac_problem(
    event: AuditEvent, key: ChainKey, head: AuditHead | None, anchor: Anchor | None
) -> str:
    problem = (
        f"event seq {event.seq} does not match its MAC: it was changed and its hash "
        "recomputed, or written by someone without the chain key"
    )
    recorded = (anchor.key_id if anchor else None) or (head.key_id if head else None)
    if recorded and recorded != key.key_id:
        problem += (
            f"; the trail was sealed with key id {recorded} but the secret store holds key id "
            f"{key.key_id}: the chain key was replaced"
        )
    return problem


def _head_finding(
    head: AuditHead, last: AuditEvent | None, key: ChainKey | None
) -> tuple[int, str] | None:
    last_seq = last.seq if last else 0
    if (
        key is not None
        and head.seq > 0
        and not key.matches(key.head_mac(head.seq, head.hash), head.mac)
    ):
        return min(head.seq, last_seq + 1), (
            f"the chain head (seq {head.seq}) does not match its MAC: the head row was "
            "rewritten outside agentctl"
        )
    if head.seq > last_seq:
        return last_seq + 1, (
            f"the chain ends at seq {last_seq} but its head records seq {head.seq}: "
            f"the last {head.seq - last_seq} event(s) were deleted"
        )
    if head.seq < last_seq:
        return head.seq + 1, (
            f"events after seq {head.seq} are not covered by the chain head: added outside agentctl"
        )
    if last is not None and head.hash != last.hash:
        return last_seq, (
            f"event seq {last_seq} is not the event recorded as the chain head: it was replaced"
        )
    return None


def _anchor_finding(
    anchor: Anchor, anchored: AuditEvent | None, last_seq: int, key: ChainKey | None
) -> tuple[int, str] | None:
    if key is not None and not key.matches(key.anchor_mac(anchor.signed_fields()), anchor.mac):
        return anchor.seq, (
            f"the latest anchor in {anchor.where} (seq {anchor.seq}) does not match its MAC: "
            "it was not written by agentctl"
        )
    if key is not None and anchor.key_id != key.key_id:
        return anchor.seq, (
            f"the latest anchor in {anchor.where} was written with key id {anchor.key_id}, "
            f"but the secret store holds key id {key.key_id}: the chain key was replaced"
        )
    when = anchor.time
    if anchor.seq > last_seq:
        return last_seq + 1, (
            f"the trail ends at seq {last_seq}, but {anchor.where} anchored seq {anchor.seq} "
            f"at {when}: events {last_seq + 1}-{anchor.seq} were deleted (and the head "
            "rewritten to match)"
        )
    if anchored is None or anchored.hash != anchor.hash or anchored.mac != anchor.event_mac:
        return anchor.seq, (
            f"event seq {anchor.seq} is not the event {anchor.where} anchored at {when}: "
            "the trail was rewritten from there (or before)"
        )
    return None


def _broken_link(
    event: AuditEvent,
    expected_seq: int,
    prev_hash: str,
    seq_of_hash: Callable[[str], int | None] | None,
) -> tuple[int, str] | None:
    """(first bad seq, what happened) if ``event`` does not continue the chain."""
    if event.seq > expected_seq:
        missing = event.seq - expected_seq
        span = f"seq {expected_seq}" if missing == 1 else f"seqs {expected_seq}-{event.seq - 1}"
        return expected_seq, f"{span} missing: {missing} event(s) deleted before seq {event.seq}"
    if event.seq < expected_seq:
        return event.seq, f"seq {event.seq} appears again after seq {expected_seq - 1}"
    if event.prev_hash != prev_hash:
        origin = seq_of_hash(event.prev_hash) if seq_of_hash is not None else None
        if origin is not None and origin != event.seq:
            return event.seq, (
                f"event seq {event.seq} was chained after the event now at seq {origin}, "
                f"not after seq {event.seq - 1}: events were reordered"
            )
        return event.seq, (
            f"event seq {event.seq} does not link to the event before it: "
            "an earlier event was deleted or replaced"
        )
    if event.compute_hash() != event.hash:
        return event.seq, f"event seq {event.seq} does not match its hash: a field was edited"
    return None


# A long trail reports progress once per this many events (a call per event
# would cost a 1,000,000-event verify about a second).
EVENTS_PER_STEP = 1000


def counted(
    events: Iterable[AuditEvent], step: Callable[[str], None] | None
) -> Iterable[AuditEvent]:
    """``events`` as they are; ``step("")`` after each ``EVENTS_PER_STEP`` of them."""
    if step is None:
        return events
    return _counting(events, step)


def _counting(events: Iterable[AuditEvent], step: Callable[[str], None]) -> Iterator[AuditEvent]:
    for n, event in enumerate(events, 1):
        yield event
        if n % EVENTS_PER_STEP == 0:
            step("")


def verify_trail(
    store: StateStore,
    keys: ChainKeySource | None = None,
    anchors: AnchorStore | None = None,
    *,
    batch_size: int = AUDIT_BATCH_SIZE,
    progress: Callable[[str], None] | None = None,
) -> VerifyResult:
    """``audit verify``: the store's whole trail, streamed, against its chain key
    (from the secret store) and its latest anchor. Never raises for a damaged
    trail: every kind of damage is a finding. ``progress``: see ``counted``."""
    with store.audit_trail(batch_size) as (head, stream):
        events = counted(stream, progress)
        trail = head.trail if head is not None else _recover_trail(store, keys, anchors)
        key = keys.current(trail) if keys is not None and trail else None
        anchor = anchors.latest(trail) if anchors is not None and trail else None
        result = verify_chain(
            events,
            head,
            key=key,
            head_required=True,
            anchor=anchor,
            seq_of_hash=store.audit_seq_of_hash,
        )
    if not result.ok or key is not None:
        return result
    keyed_by = head.key_id if head is not None and head.key_id else None
    if keyed_by or result.macs_seen or (anchor is not None and anchor.key_id):
        where = (
            "no secret store is configured"
            if keys is None or not keys.configured
            else (f"the secret store has no key for it ({chain_key_name(trail or '?')})")
        )
        return replace(
            result,
            ok=False,
            problem=f"the trail is keyed{f' (key id {keyed_by})' if keyed_by else ''} but "
            f"{where}: its MACs cannot be checked",
        )
    return result


def _recover_trail(
    store: StateStore, keys: ChainKeySource | None, anchors: AnchorStore | None
) -> str | None:
    """The trail's name when its head row is gone: the anchored trail whose key
    seals this store's events (so the MACs and the anchor still get checked)."""
    if keys is None or anchors is None:
        return None
    for trail in anchors.trails():
        key = keys.current(trail)
        if key is None:
            continue
        event = store.audit_event_at(key.keyed_from)
        if event is not None and key.matches(key.event_mac(event.hash), event.mac):
            return trail
    return None


@dataclass(frozen=True)
class SealResult:
    """``agentctl audit seal``: how many events got their MAC, and the verdict after."""

    sealed: int  # events that got their MAC now
    verified_through: int
    complete: bool  # every event up to the head carries a MAC
    after: VerifyResult

    json_fields: ClassVar[JsonFields] = (
        "sealed",
        "verified_through",
        "complete",
        ("verify", "after"),
    )


def seal_trail(
    store: StateStore,
    keys: ChainKeySource,
    anchors: AnchorStore | None,
    *,
    operator: str,
    proof: Mapping[str, str] | None = None,
) -> SealResult:
    """``audit seal``: verify an old (unkeyed or partly keyed) trail, then MAC its
    unkeyed events, so from now on every event is checked with the key.

    Nothing is sealed unless the plain chain verifies first: sealing vouches
    for what it seals. The seal is recorded as an ``audit.seal`` event (which
    creates the key on first use); then the events before the key's first
    seq get their MACs in one transaction, and the key record in the secret
    store is told the whole trail is keyed (``keyed_from`` 1), so stripped
    MACs can never pass as "older than the key". ``proof`` (Actor.proof) goes
    into the event's detail: the principal that proved who ``operator`` is.
    """
    if not keys.configured:
        raise StateError(
            "cannot seal the audit trail: no secret store is configured to keep its key",
            hint="set secrets.backend in agentctl.yaml (or the encrypted-file passphrase), "
            "then run 'agentctl audit seal' again",
        )
    before = verify_trail(store, keys, anchors)
    if not before.ok:
        which = f" at seq {before.first_bad_seq}" if before.first_bad_seq else ""
        raise StateError(
            f"the audit trail does not verify{which}: {before.problem}",
            hint="sealing would vouch for a damaged trail; investigate with 'agentctl audit "
            "verify' and 'agentctl audit export' first",
        )
    if before.keyed and not before.unsealed:
        return SealResult(0, before.last_seq, True, before)
    store.append_audit(
        AuditDraft(
            actor="agentctl",
            action=SEAL_ACTION,
            target="audit-trail",
            result="success",
            detail={
                "verified_through": before.last_seq,
                "unkeyed": before.unsealed or before.last_seq,
                **(proof or {}),
            },
        ),
        operator=operator,
    )
    head = store.audit_head()
    trail = head.trail if head is not None else None
    key = keys.current(trail) if trail else None
    if key is None:
        raise StateError("the audit chain key was not created", hint="check the secret store")
    through = min(before.last_seq, key.keyed_from - 1)
    sealed = store.seal_audit(key, through)
    complete = through == key.keyed_from - 1
    if complete and key.keyed_from != 1:
        keys.replace(trail or "", replace(key, keyed_from=1))
    return SealResult(sealed, before.last_seq, complete, verify_trail(store, keys, anchors))


def export_jsonl(events: Iterable[AuditEvent], fp: IO[str]) -> int:
    """Write one JSON object per line (the ``audit --output json`` shape); returns the count."""
    count = 0
    for event in events:
        fp.write(json.dumps(event.as_dict(), sort_keys=True, ensure_ascii=False))
        fp.write("\n")
        count += 1
    return count


@dataclass(frozen=True)
class JournalImport:
    """Events moved from the local journal into the state store."""

    imported: int
    skipped: int  # already in the store (an earlier import crashed before truncating)
    problem: str | None  # the journal's own chain or lines were damaged


def import_journal(
    store: StateStore,
    journal: AuditJournal,
    *,
    operator: str | None = None,
    proof: Mapping[str, str] | None = None,
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
                AuditDraft.of(event), operator=event.operator, id=event.id, time=event.time
            )
            imported += 1
        problem = "; ".join(problems) or None
        store.append_audit(
            AuditDraft(
                actor="agentctl",
                action=JOURNAL_IMPORT_ACTION,
                target=str(journal.path),
                result="failed" if problem else "ok",
                detail={
                    "imported": imported,
                    "skipped": skipped,
                    "problem": problem,
                    **(proof or {}),
                },
            ),
            operator=operator or "agentctl",
        )
        handle.truncate(0)
        handle.flush()
        os.fsync(handle.fileno())
    return JournalImport(imported, skipped, problem)
