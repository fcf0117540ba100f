"""The SQLAlchemy-free fast paths (agentctl.state.runstate for exec and
credentials, agentctl.state.snapshot for plan and status) restate what the
store and its schema say: column lists and the stored text of a timestamp.
These tests hold the restatements to the originals, so a migration that adds
a column or a change of how times are stored fails here, by name, instead of
a fast path silently writing or comparing something the store would not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from agentctl.state import runstate, snapshot
from agentctl.state import schema as s
from agentctl.state.records import stored_time


def _names(listed: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.strip() for n in listed.split(",")) if isinstance(listed, str) else listed


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
    assert stored_time(early) < stored_time(late)
