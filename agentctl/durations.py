"""Durations as people type them: ``90``, ``15m``, ``1h30m``, ``2d12h``, ``1w``.

One parser for every option that takes a duration (``exec --duration``,
``credentials --duration``, ``audit --since``), so they accept the same forms
and refuse the same way: a value that is not a duration, or one outside the
option's range, is a usage error naming the option, the accepted forms and the
range — never an ``OverflowError`` from ``timedelta`` or ``datetime``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agentctl.clock import Clock, system_clock
from agentctl.errors import UsageError

UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([wdhms])")
_WHOLE = re.compile(r"(?:\d+[wdhms])+")
# Longer than any grant could live; also keeps every sum far from timedelta's
# limit (999,999,999 days) and datetime's year 9999.
MAX_SECONDS = 100 * 365 * 86400
FORMS = "e.g. 90 (seconds), 15m, 1h30m, 2d12h, 1w"
# How long one exec run's credentials may live (--duration): exec refuses
# outside this, and rotate looks this far back for runs still going.
MAX_DURATION_SECONDS = 12 * 3600
MIN_DURATION_SECONDS = 900  # STS refuses shorter sessions


def _human(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        size = UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(
    text: str,
    *,
    option: str,
    minimum: int = 1,
    maximum: int = MAX_SECONDS,
    bare_unit: str = "s",
) -> timedelta:
    """``text`` as a timedelta within ``minimum``..``maximum`` seconds.

    ``bare_unit`` is the unit of a bare number (seconds for run durations).
    """
    value = text.strip().lower().replace(" ", "")
    if value.isdigit():
        value += bare_unit
    if not _WHOLE.fullmatch(value):
        raise UsageError(f"{option} {text!r} is not a duration", hint=FORMS)
    seconds = 0
    for number, unit in _PART.findall(value):
        # A huge number is refused before it is multiplied (no big-int work,
        # no overflow later).
        if len(number) > 12:
            seconds = maximum + 1
            break
        seconds += int(number) * UNIT_SECONDS[unit]
    if not minimum <= seconds <= maximum:
        raise UsageError(
            f"{option} {text!r} is out of range",
            hint=f"give between {_human(minimum)} and {_human(maximum)} ({FORMS})",
        )
    return timedelta(seconds=seconds)


# Days ahead or back in date arithmetic (`expiring --days`, max_lifetime_days):
# a century is longer than any contract, credential or audit retention.
MAX_DAYS = 36_500


def check_days(days: int, *, option: str = "--days") -> int:
    """A count of days for date arithmetic: 0 .. a century, else a usage error."""
    if not 0 <= days <= MAX_DAYS:
        raise UsageError(f"{option} {days} is out of range", hint=f"give 0 to {MAX_DAYS} days")
    return days


def parse_since(text: str, clock: Clock = system_clock) -> datetime:
    """A moment given as a duration back from now (``24h``, ``7d``, ``1h30m``,
    ``2w``; a bare number is minutes), or an ISO date (UTC midnight) or time."""
    value = text.strip()
    if value[:1].isdigit() and value[-1:].lower() in UNIT_SECONDS:
        return clock() - parse_duration(value, option="--since", minimum=0, bare_unit="m")
    try:
        moment = datetime.fromisoformat(value)  # a bare date means its midnight
    except ValueError:
        raise UsageError(
            f"--since '{text}' is neither a date, a time nor a duration",
            hint="use 2026-11-01, 2026-11-01T12:00:00Z, or 24h / 7d / 1h30m / 2w",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
