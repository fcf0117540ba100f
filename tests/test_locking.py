"""The apply lock and concurrent audit appends, across real processes, on both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agentctl.audit import verify_chain
from agentctl.errors import LockTimeout
from agentctl.state import AuditDraft, StateStore, open_state

# The store / state_url fixtures (SQLite and PostgreSQL) live there.


HELPERS = Path(__file__).with_name("state_helpers.py")


def start_worker(name: str, *args: object) -> subprocess.Popen[bytes]:
    """Run ``state_helpers.worker_<name>(*args)`` in a new Python process."""
    return subprocess.Popen(
        [sys.executable, str(HELPERS), name, *map(str, args)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def wait_all(*workers: subprocess.Popen[bytes], timeout: float = 60) -> None:
    for worker in workers:
        assert worker.wait(timeout=timeout) == 0


def test_two_processes_never_interleave_and_lose_no_update(state_url: str) -> None:
    open_state(state_url).close()  # create the schema once, outside the race
    rounds = 10
    workers = [start_worker("locked_counter", state_url, rounds, 0.01) for _ in range(2)]
    wait_all(*workers)

    with open_state(state_url) as state:
        counter = state.get_resource("counter", "test")
        assert counter is not None and counter.attributes["n"] == 2 * rounds  # no lost update
        events = state.audit_events()
        # Inside the lock each round is enter/exit by one process: the two
        # processes' rounds never overlap.
        assert len(events) == 4 * rounds
        for enter, leave in zip(events[::2], events[1::2], strict=True):
            assert (enter.action, leave.action) == ("test.enter", "test.exit")
            assert enter.actor == leave.actor
        assert Counter(e.actor for e in events) == {str(w.pid): 2 * rounds for w in workers}
        chain, head = state.audit_chain()
        assert verify_chain(chain, head).ok


def test_concurrent_appenders_never_fork_the_chain(state_url: str) -> None:
    open_state(state_url).close()
    per_worker = 40
    workers = [start_worker("append", state_url, per_worker) for _ in range(2)]
    wait_all(*workers)

    with open_state(state_url) as state:
        chain, head = state.audit_chain()
    assert [e.seq for e in chain] == list(range(1, 2 * per_worker + 1))
    result = verify_chain(chain, head)
    assert result.ok and result.checked == 2 * per_worker
    for worker in workers:  # each process's events are in its own order
        indexes = [e.detail["index"] for e in chain if e.actor == str(worker.pid)]
        assert indexes == list(range(per_worker))


def test_a_waiting_apply_names_the_holder_times_out_and_nothing_goes_stale(
    store: StateStore, state_url: str, tmp_path: Path
) -> None:

    ready = tmp_path / "ready"
    holder = start_worker("hold_lock", state_url, ready)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert holder.poll() is None, "the lock holder died"
            assert time.monotonic() < deadline
            time.sleep(0.05)

        # Readers, kill's status write and audit appends do not wait for the apply lock:
        # they finish while the holder still holds it (it holds until killed below).
        store.list_agents()
        store.upsert_agent(
            "a", owner="o@x.io", purpose="p", execution_mode="autonomous", expiry=None
        )
        store.append_audit(
            AuditDraft(actor="a", action="kill", target="a", result="ok"), operator="o"
        )
        assert holder.poll() is None, "the holder let go: the test proved nothing"

        messages: list[str] = []
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout) as caught,
            store.apply_lock(timeout=1.5, on_wait=messages.append, poll_interval=0.05),
        ):
            pytest.fail("acquired a lock that another process holds")
        assert time.monotonic() - started >= 1.5  # it waited its timeout before giving up
        assert len(messages) == 1
        for text in (messages[0], str(caught.value)):
            assert f"holder (pid {holder.pid} on " in text and "since" in text
        assert caught.value.hint and "crashed run releases" in caught.value.hint
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
        holder.wait(timeout=10)

    # The dead holder's lock is gone with it.
    with store.apply_lock(timeout=5, poll_interval=0.05, operator="next"):
        pass


def test_the_lock_is_released_on_error_and_reusable(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.apply_lock(timeout=1):
        raise RuntimeError("apply failed")
    with store.apply_lock(timeout=1):
        pass


def test_two_stores_in_one_process_exclude_each_other(state_url: str) -> None:
    with open_state(state_url) as first, open_state(state_url) as second:
        with first.apply_lock(timeout=1, operator="first"):
            messages: list[str] = []
            with (
                pytest.raises(LockTimeout),
                second.apply_lock(timeout=0.3, on_wait=messages.append, poll_interval=0.05),
            ):
                pass
            assert len(messages) == 1 and "held by first (pid" in messages[0]
        with second.apply_lock(timeout=1):
            pass
