"""State-store fixtures: one suite, both real backends.

``state_url`` is parametrized over a SQLite file in the test's tmp dir and a
fresh schema on the PostgreSQL server named by ``AGENTCTL_TEST_POSTGRES_URL``
(``scripts/ci-services.sh`` starts one and prints that variable). Each
PostgreSQL test gets its own schema, selected through ``search_path`` in the
URL, so tests are isolated and child processes given the URL see the same
schema. Without the variable the postgres cases are skipped, saying why.

Load it as a plugin, in tests/conftest.py or a test module::

    pytest_plugins = ["state_helpers"]

Also runnable as ``python state_helpers.py WORKER ARGS...``: the workers that
the concurrency tests (test_locking.py) start as separate processes.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentctl.state import AuditDraft, StateStore, open_state

ENV_POSTGRES = "AGENTCTL_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class StepClock:
    """A clock that starts at ``start`` and moves ``step`` forward per reading."""

    def __init__(
        self,
        start: datetime = datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        step: timedelta = timedelta(seconds=1),
    ) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


def _fresh_postgres_schema() -> Iterator[str]:
    base = os.environ.get(ENV_POSTGRES)
    if not base:
        pytest.skip(
            f"{ENV_POSTGRES} is not set (scripts/ci-services.sh starts a server and sets it)"
        )
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin_url = base.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A state URL on the test PostgreSQL server, in a schema of its own."""
    yield from _fresh_postgres_schema()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A state URL for a SQLite file in a not yet existing directory."""
    return f"sqlite:///{tmp_path / 'state' / 'state.db'}"


@pytest.fixture(params=BACKENDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.db'}"
    else:
        yield from _fresh_postgres_schema()


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    """An open store on ``state_url`` with a deterministic clock (1 s per reading)."""
    opened = open_state(state_url, clock=StepClock())
    try:
        yield opened
    finally:
        opened.close()


# -- workers for the multi-process tests ---------------------------------------------


def worker_locked_counter(url: str, rounds: int, hold_seconds: float) -> None:
    """Under the apply lock: audit "enter", read-modify-write the counter, audit "exit"."""
    pid = str(os.getpid())
    with open_state(url) as state:
        for _ in range(rounds):
            with state.apply_lock(timeout=60, operator=f"worker-{pid}"):
                state.append_audit(
                    AuditDraft(actor=pid, action="test.enter", target="counter", result="ok"),
                    operator=pid,
                )
                current = state.get_resource("counter", "test")
                value = int(current.attributes["n"]) if current else 0
                time.sleep(hold_seconds)  # widen the window a lost update would need
                state.put_resource("counter", "test", "counter", {"n": value + 1})
                state.append_audit(
                    AuditDraft(actor=pid, action="test.exit", target="counter", result="ok"),
                    operator=pid,
                )


def worker_append(url: str, count: int) -> None:
    """Append ``count`` audit events as fast as possible, no apply lock."""
    pid = str(os.getpid())
    with open_state(url) as state:
        for index in range(count):
            state.append_audit(
                AuditDraft(
                    actor=pid,
                    action="test.append",
                    target="chain",
                    result="ok",
                    detail={"index": index},
                ),
                operator=pid,
            )


def worker_hold_lock(url: str, ready_file: str) -> None:
    """Take the apply lock, say so through ``ready_file``, then hold it until killed."""
    with open_state(url) as state, state.apply_lock(timeout=10, operator="holder"):
        Path(ready_file).write_text("locked", encoding="utf-8")
        time.sleep(120)


if __name__ == "__main__":
    worker_name, *worker_args = sys.argv[1:]
    if worker_name == "locked_counter":
        worker_locked_counter(worker_args[0], int(worker_args[1]), float(worker_args[2]))
    elif worker_name == "append":
        worker_append(worker_args[0], int(worker_args[1]))
    elif worker_name == "hold_lock":
        worker_hold_lock(worker_args[0], worker_args[1])
    else:
        raise SystemExit(f"unknown worker {worker_name}")
