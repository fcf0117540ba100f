"""One duration parser for every option: the forms people type, and a usage
error (exit 2, never an OverflowError) for anything else or out of range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentctl.cli.app import run
from agentctl.durations import MAX_SECONDS, UNIT_SECONDS, parse_duration, parse_since
from agentctl.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("1H30M", 5400),
        ("2d12h", 216000),
        ("1w", 604800),
        ("1h 30m", 5400),
        ("45s", 45),
    ],
)
def test_the_forms_people_type(text: str, seconds: int) -> None:
    assert parse_duration(text, option="--duration") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "1.5h", "-1h", "1x", "1h-30m", "one hour", "1hh"])
def test_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(UsageError, match="is not a duration") as refused:
        parse_duration(text, option="--duration")
    assert refused.value.hint and "1h30m" in refused.value.hint


@given(st.lists(st.tuples(st.integers(0, 10**30), st.sampled_from("wdhms")), min_size=1))
def test_any_sum_is_exact_or_a_clean_range_error(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    total = sum(n * UNIT_SECONDS[u] for n, u in parts)
    try:
        parsed = parse_duration(text, option="--duration", minimum=0)
    except UsageError as refused:
        assert "out of range" in refused.message
        assert total > MAX_SECONDS
    else:
        assert parsed == timedelta(seconds=total) and total <= MAX_SECONDS


def test_since_accepts_compound_durations_and_dates() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_since("1h30m", lambda: now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-01", lambda: now) == datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "--since", "99999999d"],
        ["audit", "--since", "100000000000000000000w"],
        ["exec", "some-agent", "--duration", "100000000000000000000h", "--", "true"],
        ["credentials", "some-agent", "--duration", "1h30x"],
    ],
)
def test_the_cli_answers_overflow_with_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("AGENTCTL_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("AGENTCTL_CONFIG", str(tmp_path / "none.yaml"))
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "internal error" not in err and "Traceback" not in err
    assert "duration" in err or "out of range" in err
