"""The SQLAlchemy-free fast paths (agentctl.state.runstate for exec and
credentials, agentctl.state.snapshot for plan and status) restate what the
store and its schema say: column lists and the stored text of a timestamp.
These tests hold the restatements to the originals, so a migration that adds
a column or a change of how times are stored fails here, by name, instead of
a fast path silently writing or comparing something the store would not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from agentctl.errors import StateError
from agentctl.state import open_state, room, runstate, snapshot
from agentctl.state import schema as s
from agentctl.state.records import SCHEMA_VERSION, stored_time
from agentctl.state.runstate import open_run_state


def _names(listed: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(n.strip() for n in listed.split(",")) if isinstance(listed, str) else tuple(listed)


def test_the_run_paths_columns_are_the_tables_columns() -> None:
    # A column runstate does not name would be left to its default by the run
    # path's INSERT while the store writes it (the schema version is the same
    # constant for both, so the version check does not catch it).
    for listed, table in [
        (runstate._AGENT_COLUMNS, s.agents),
        (runstate._RESOURCE_COLUMNS, s.resources),
        (runstate._AUDIT_COLUMNS, s.audit_events),
        (runstate._CREDENTIAL_COLUMNS, s.credentials),
    ]:
        assert sorted(_names(listed)) == sorted(table.c.keys()), table.name


_UTC_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


@given(_UTC_TIMES)
def test_every_fast_path_stores_a_time_as_the_store_does(moment: datetime) -> None:
    # SQLite compares these as text (expires_at > :now), so the fast paths
    # must render exactly what SQLAlchemy's SQLite DATETIME stores.
    dialect = sqlite.dialect()
    store_renders = s.UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert store_renders is not None
    expected = store_renders(moment)
    assert stored_time(moment) == expected
    assert runstate.stored_time(moment) == expected
    assert snapshot.stored_time(moment) == expected


def test_the_stored_time_sorts_as_time_for_years_before_1000() -> None:
    early, late = datetime(999, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert (stored_time(early) or "") < (stored_time(late) or "")


@pytest.mark.parametrize("free", [512 * 1024, 10 * 1024**3], ids=["full", "room"])
@pytest.mark.parametrize(
    ("errorname", "first_line"),
    [
        ("SQLITE_READONLY", "attempt to write a readonly database"),
        ("SQLITE_READONLY_CANTINIT", "attempt to write a readonly database"),
        ("SQLITE_FULL", "database or disk is full"),
        ("SQLITE_IOERR_WRITE", "disk I/O error"),
        ("SQLITE_BUSY", "database is locked"),
    ],
)
def test_the_run_path_names_a_sqlite_failure_as_the_store_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int, errorname: str, first_line: str
) -> None:
    # The run path restated the store's mapping of SQLite failures to a
    # message and a hint, and had drifted: a READONLY error on a full
    # filesystem was "read-only" there and "full" in the store.
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(url).close()
    store = open_state(url, create=False)
    fast = open_run_state(url, lambda: open_state(url, create=False))
    assert fast is not None
    # The filesystem's free space as statvfs would report it (a full disk
    # can not be made here); everything else is the real code.
    monkeypatch.setattr(room, "free_bytes", lambda folder: free)
    store._engine.info_agentctl.pop("full", None)  # type: ignore[attr-defined]

    def failure() -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError(first_line)
        exc.sqlite_errorname = errorname
        return exc

    with pytest.raises(StateError) as by_store, store._errors():
        orig = failure()
        raise sa.exc.OperationalError("UPDATE x", {}, orig)
    with pytest.raises(StateError) as by_run_path, fast._errors():
        raise failure()
    assert by_run_path.value.message == by_store.value.message
    if room.sqlite_cause(errorname, first_line, tmp_path) is not None:
        assert by_run_path.value.hint == by_store.value.hint
    # (Otherwise the generic hint: the store's also speaks of a server and
    # credentials, which a SQLite file has not.)
    fast.close()
    store.close()


def test_a_schema_moved_since_opening_is_the_stores_to_judge(tmp_path: Path) -> None:
    # RunState checked the schema version once, when opened; a `state
    # migrate` (here: by a newer agentctl) before its write let it write to a
    # schema it does not know. Now the write checks under the write lock and
    # hands over to the store, which refuses a newer schema as it always did.
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(url).close()
    fast = open_run_state(url, lambda: open_state(url, create=False))
    assert fast is not None
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    now = datetime.now(UTC)
    with pytest.raises(StateError, match="newer"):
        fast.add_credential(
            id="c1",
            agent="reader-agent",
            provider="aws",
            kind="aws-session",
            fingerprint="f",
            issued_at=now,
            expires_at=now + timedelta(hours=1),
        )
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("SELECT count(*) FROM credentials").fetchone() == (0,)
    fast.close()
