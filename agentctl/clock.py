"""Clocks are passed in, never read from globals, so tests can freeze time.

The installed CLI reads the real clock only: no environment variable, flag or
file moves it, because expiry dates, approval windows and audit timestamps
are security decisions. Code in the same process (tests, the demo) passes a
clock explicitly, e.g. ``agentctl.cli.app.run(argv, clock=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def today(clock: Clock) -> date:
    return clock().date()
