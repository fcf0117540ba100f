"""Clocks are passed in, never read from globals, so tests can freeze time."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, timezone-aware UTC.

    ``AGENTCTL_NOW`` (ISO 8601) pins the clock for a whole process: cron
    rehearsals and end-to-end tests of a real subprocess need it, because they
    cannot pass a clock object.
    """
    pinned = os.environ.get("AGENTCTL_NOW")
    if pinned:
        moment = datetime.fromisoformat(pinned)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def today(clock: Clock) -> date:
    return clock().date()
