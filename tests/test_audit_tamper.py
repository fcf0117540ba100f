"""The keyed audit trail against someone who can write the state database.

Every attack below is run on SQLite and on PostgreSQL. The attacker holds SQL
access to the state (and, where said, the anchor file or the secret store);
they recompute plain hashes with agentctl's own function whenever that helps
them. Each attack must be found by ``audit verify`` at the right seq, and
verification must never crash.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from audit_helpers import Trail, key_source, rehash_from, secret_store_at
from state_helpers import StepClock

from agentctl.audit_anchor import LocalAnchorFile
from agentctl.audit_key import ChainKey, chain_key_name
from agentctl.secrets import Secret
from agentctl.state import AuditDraft, AuditEvent, StateStore, open_state
from agentctl.state.records import AuditHead


@dataclass
class Scene:
    trail: Trail
    head_at_5: AuditHead  # a genuine old head row, as a patient attacker would have kept


@pytest.fixture
def scene(state_url: str, tmp_path: Path) -> Iterator[Scene]:
    """Two commands: 5 events (anchored at seq 5), then 3 more (anchored at seq 8)."""
    store = open_state(state_url, clock=StepClock())
    keys = key_source(tmp_path / "secrets.enc")
    store.chain_keys = keys
    trail = Trail(store, state_url, keys, LocalAnchorFile(tmp_path / "anchors.jsonl"), tmp_path)
    trail.command(5)
    head_at_5 = trail.head()
    trail.command(3)
    assert trail.verify().verdict == "intact"
    try:
        yield Scene(trail, head_at_5)
    finally:
        store.close()


def event(scene: Scene, seq: int) -> AuditEvent:
    return next(e for e in scene.trail.rows() if e.seq == seq)


def forged(scene: Scene, seq: int, prev_hash: str, **changes: object) -> AuditEvent:
    """A new event as the attacker writes it: plausible, correctly hashed, no MAC."""
    base = replace(
        event(scene, 2),
        seq=seq,
        id=uuid.uuid4().hex,
        prev_hash=prev_hash,
        action="kill",
        target="deploy-agent",
        mac=None,
    )
    base = replace(base, **changes)  # type: ignore[arg-type]
    return replace(base, hash=base.compute_hash())


def renumber(scene: Scene, first: int, shift: int) -> None:
    """seq += shift for seq >= first, without colliding on the primary key midway."""
    scene.trail.sql(
        f"UPDATE audit_events SET seq = -(seq + {shift}) WHERE seq >= {first}",
        "UPDATE audit_events SET seq = -seq WHERE seq < 0",
    )


# -- the attacks ------------------------------------------------------------------------


def edit_a_field(s: Scene) -> None:
    s.trail.sql("UPDATE audit_events SET result = 'denied' WHERE seq = 3")


def edit_and_recompute_plain_hashes(s: Scene) -> None:
    rows = [replace(e, result="denied") if e.seq == 3 else e for e in s.trail.rows()]
    fixed = rehash_from(rows, 3)
    s.trail.write_events(fixed)
    s.trail.set_head(8, fixed[-1].hash, s.trail.head().mac)


def rewrite_a_time_and_recompute(s: Scene) -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [replace(e, time=moment) if e.seq == 6 else e for e in s.trail.rows()]
    fixed = rehash_from(rows, 6)
    s.trail.write_events(fixed)
    s.trail.set_head(8, fixed[-1].hash, s.trail.head().mac)


def delete_an_event(s: Scene) -> None:
    s.trail.sql("DELETE FROM audit_events WHERE seq = 3")


def delete_renumber_and_recompute(s: Scene) -> None:
    s.trail.sql("DELETE FROM audit_events WHERE seq = 3")
    renumber(s, 4, -1)
    fixed = rehash_from(s.trail.rows(), 3)
    s.trail.write_events(fixed)
    s.trail.set_head(7, fixed[-1].hash)


def reorder(s: Scene) -> None:
    s.trail.sql(
        "UPDATE audit_events SET seq = -1 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = -1",
    )


def reorder_and_recompute(s: Scene) -> None:
    reorder(s)
    fixed = rehash_from(s.trail.rows(), 3)
    s.trail.write_events(fixed)
    s.trail.set_head(8, fixed[-1].hash, s.trail.head().mac)


def insert_in_the_middle(s: Scene) -> None:
    renumber(s, 3, 1)
    s.trail.insert_event(forged(s, 3, prev_hash=event(s, 2).hash))
    fixed = rehash_from(s.trail.rows(), 4)
    s.trail.write_events(fixed)
    s.trail.set_head(9, fixed[-1].hash)


def insert_after_the_head(s: Scene) -> None:
    s.trail.insert_event(forged(s, 9, prev_hash=event(s, 8).hash))


def insert_after_the_head_and_advance_it(s: Scene) -> None:
    extra = forged(s, 9, prev_hash=event(s, 8).hash)
    s.trail.insert_event(extra)
    s.trail.set_head(9, extra.hash, s.trail.head().mac)


def insert_after_the_head_with_a_copied_mac(s: Scene) -> None:
    s.trail.insert_event(forged(s, 9, prev_hash=event(s, 8).hash, mac=event(s, 8).mac))


def leave_a_seq_gap(s: Scene) -> None:
    renumber(s, 5, 1)
    s.trail.set_head(9, s.trail.head().hash, s.trail.head().mac)


def delete_the_head_row(s: Scene) -> None:
    s.trail.sql("DELETE FROM audit_head")


def rewrite_the_head_row(s: Scene) -> None:
    s.trail.set_head(8, "f" * 64, s.trail.head().mac)


def truncate_the_tail(s: Scene) -> None:
    s.trail.sql("DELETE FROM audit_events WHERE seq >= 7")


def cut_the_tail_and_restore_an_old_head(s: Scene) -> None:
    s.trail.sql("DELETE FROM audit_events WHERE seq >= 6")
    s.trail.set_head(s.head_at_5.seq, s.head_at_5.hash, s.head_at_5.mac)


def cut_the_tail_and_delete_the_head(s: Scene) -> None:
    s.trail.sql("DELETE FROM audit_events WHERE seq >= 6", "DELETE FROM audit_head")


def strip_every_mac(s: Scene) -> None:
    s.trail.sql("UPDATE audit_events SET mac = NULL", "UPDATE audit_head SET mac = NULL")
    s.trail.sql("UPDATE audit_head SET key_id = NULL")


def replace_the_whole_trail(s: Scene) -> None:
    """Everything deleted, and a fresh, plausible, correctly hashed trail written."""
    template = event(s, 2)
    s.trail.sql("DELETE FROM audit_events")
    prev = "0" * 64
    for seq in range(1, 9):
        fake = replace(template, seq=seq, id=uuid.uuid4().hex, prev_hash=prev, mac=None)
        fake = replace(fake, hash=fake.compute_hash())
        s.trail.insert_event(fake)
        prev = fake.hash
    s.trail.set_head(8, prev, None)


def swap_the_chain_key(s: Scene) -> None:
    """Someone with the secret store (not the state) puts a key of their own there."""
    trail = s.trail.head().trail
    assert trail is not None
    secret_store_at(s.trail.secrets_path / "secrets.enc").put(
        chain_key_name(trail), Secret(ChainKey.generate(keyed_from=1).record())
    )
    s.trail.keys = key_source(s.trail.secrets_path / "secrets.enc")  # a fresh process


def append_a_forged_anchor(s: Scene) -> None:
    """Someone with the anchor file writes an anchor of their own (no key)."""
    latest = s.trail.anchors.latest(s.trail.head().trail or "")
    assert latest is not None
    fake = replace(latest, seq=12, mac="0" * 64)
    with s.trail.anchors.path.open("a") as handle:
        handle.write(json.dumps(fake.as_dict()) + "\n")


Attack = Callable[[Scene], None]
ATTACKS: list[tuple[Attack, int, str]] = [
    (edit_a_field, 3, "does not match its hash"),
    (edit_and_recompute_plain_hashes, 3, "does not match its MAC"),
    (rewrite_a_time_and_recompute, 6, "does not match its MAC"),
    (delete_an_event, 3, "seq 3 missing"),
    (delete_renumber_and_recompute, 3, "does not match its MAC"),
    (reorder, 3, "reordered"),
    (reorder_and_recompute, 3, "does not match its MAC"),
    (insert_in_the_middle, 3, "carries no MAC"),
    (insert_after_the_head, 9, "carries no MAC"),
    (insert_after_the_head_and_advance_it, 9, "carries no MAC"),
    (insert_after_the_head_with_a_copied_mac, 9, "does not match its MAC"),
    (leave_a_seq_gap, 5, "seq 5 missing"),
    (delete_the_head_row, 8, "head record is gone"),
    (rewrite_the_head_row, 8, "head row was rewritten"),
    (truncate_the_tail, 7, "event(s) were deleted"),
    (cut_the_tail_and_restore_an_old_head, 6, "anchored seq 8"),
    (cut_the_tail_and_delete_the_head, 6, "head row was deleted too"),
    (strip_every_mac, 1, "carries no MAC"),
    (replace_the_whole_trail, 1, "carries no MAC"),
    (swap_the_chain_key, 1, "the chain key was replaced"),
    (append_a_forged_anchor, 12, "not written by agentctl"),
]


@pytest.mark.parametrize(
    ("attack", "first_bad_seq", "said"), ATTACKS, ids=[a.__name__ for a, _, _ in ATTACKS]
)
def test_each_attack_is_found_at_its_seq(
    scene: Scene, attack: Attack, first_bad_seq: int, said: str
) -> None:
    attack(scene)
    result = scene.trail.verify()
    assert not result.ok, result
    assert result.verdict == "tampered"
    assert result.first_bad_seq == first_bad_seq, result
    assert result.problem is not None and said in result.problem, result.problem


def test_at_least_fifteen_distinct_attacks() -> None:
    assert len({attack for attack, _, _ in ATTACKS}) >= 15


def test_a_keyed_trail_with_its_key_gone_cannot_pass(scene: Scene) -> None:
    trail = scene.trail.head().trail
    assert trail is not None
    assert secret_store_at(scene.trail.secrets_path / "secrets.enc").delete(chain_key_name(trail))
    scene.trail.keys = key_source(scene.trail.secrets_path / "secrets.enc")
    result = scene.trail.verify()
    assert result.verdict == "unverifiable" and result.problem is not None
    assert "keyed" in result.problem and "cannot be checked" in result.problem


def test_renaming_the_trail_does_not_escape_the_key(scene: Scene) -> None:
    scene.trail.sql("UPDATE audit_head SET trail = 'attacker', key_id = NULL")
    result = scene.trail.verify()
    assert result.verdict == "unverifiable"


def test_appends_after_verify_keep_a_valid_chain(scene: Scene) -> None:
    scene.trail.command(2)
    result = scene.trail.verify()
    assert result.verdict == "intact" and result.checked == 10 and result.anchor_seq == 10


def test_a_store_without_the_key_refuses_to_append_to_a_keyed_trail(
    scene: Scene, state_url: str
) -> None:
    from agentctl.errors import StateError

    with open_state(state_url) as keyless, pytest.raises(StateError, match="keyed"):
        keyless.append_audit(
            AuditDraft(actor="a", action="x", target="a", result="ok"), operator="o"
        )
    assert scene.trail.verify().verdict == "intact"


def test_a_store_with_another_key_refuses_to_append(
    scene: Scene, state_url: str, tmp_path: Path
) -> None:
    from agentctl.errors import StateError

    with open_state(state_url) as other:
        other.chain_keys = key_source(tmp_path / "someone-elses-keyring.enc")
        other.chain_keys.for_append(scene.trail.head().trail or "", 1)  # a key of its own
        with pytest.raises(StateError, match="key id"):
            other.append_audit(
                AuditDraft(actor="a", action="x", target="a", result="ok"), operator="o"
            )
    assert scene.trail.verify().verdict == "intact"


def test_the_key_never_reaches_the_state(scene: Scene, state_url: str) -> None:
    trail = scene.trail.head().trail or ""
    stored = secret_store_at(scene.trail.secrets_path / "secrets.enc").get(chain_key_name(trail))
    assert stored is not None
    secret = json.loads(stored.reveal())["key"]
    exported = "\n".join(json.dumps(e.as_dict()) for e in scene.trail.rows())
    assert secret not in exported
    if state_url.startswith("sqlite:///"):
        database = Path(state_url.removeprefix("sqlite:///"))
        for path in database.parent.iterdir():
            assert secret.encode() not in path.read_bytes()


def test_concurrent_first_use_creates_one_key(state_url: str, tmp_path: Path) -> None:
    """Two stores (as two processes) start a trail at once: exactly one key wins and
    every event verifies with it."""
    from concurrent.futures import ThreadPoolExecutor

    stores: list[StateStore] = []
    for _ in range(2):
        opened = open_state(state_url)
        opened.chain_keys = key_source(tmp_path / "secrets.enc")
        stores.append(opened)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(
                pool.map(
                    lambda s: [
                        s.append_audit(
                            AuditDraft(actor="a", action="x", target="a", result="ok"), operator="o"
                        )
                        for _ in range(5)
                    ],
                    stores,
                )
            )
        trail = Trail(
            stores[0],
            state_url,
            key_source(tmp_path / "secrets.enc"),
            LocalAnchorFile(tmp_path / "anchors.jsonl"),
            tmp_path,
        )
        result = trail.verify()
        assert result.verdict == "intact" and result.checked == 10, result
    finally:
        for opened in stores:
            opened.close()
