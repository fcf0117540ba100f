"""Running an agent's command under watch: a kill of the agent ends it.

``agentctl exec`` starts the command in its own session (so its process group
holds the command and everything it starts), forwards the usual signals to
that group, and between waits asks whether the agent was killed (the state
store, at most ``poll_seconds`` apart: a kill from any operator's machine is
recorded there). On a kill it sends SIGTERM to the group, waits
``grace_seconds`` for the command to end, then sends SIGKILL to the group.

This module starts and signals processes and returns what happened; it never
prints (the CLI renders) and never audits (the caller does, with the run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# What exec exits with when it ended the command because the agent was killed
# (documented in the README's exit codes).
EXIT_KILLED = 3
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class CommandNotStarted(Exception):
    """The command could not be started; ``exit_code`` is the shell's (126/127)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ChildOutcome:
    """How a watched command ended."""

    exit_code: int  # shell-style: 128+signal when a signal ended it
    killed: bool = False  # ended by agentctl because the agent was killed
    signals: tuple[str, ...] = ()  # what agentctl sent to the group on the kill
    noticed_after: float | None = None  # seconds from start until the kill was seen
    ended_after: float | None = None  # seconds from the kill being seen until the group ended


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_watched(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    is_killed: Callable[[], bool],
    poll_seconds: float = 1.0,
    grace_seconds: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    tick: Callable[[], None] | None = None,
) -> ChildOutcome:
    """Run ``command`` until it ends or the agent is killed (see the module docstring).

    ``is_killed`` is asked at most ``poll_seconds`` apart; an exception from it
    (state store unreachable) is not a kill: the command goes on, and it is
    asked again at the next poll. ``tick`` (exec's credential refresh) runs
    after each poll that found no kill; it handles its own failures.
    """
    # The handlers go in before the command starts: a SIGTERM in between would
    # otherwise end agentctl and leave the command running, unwatched, with its
    # credentials. One that arrives before the group exists is sent to it as
    # soon as it does.
    group: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if group:
            _signal_group(group[0], signum)
        else:
            pending.append(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        try:
            child = subprocess.Popen(list(command), env=dict(env), start_new_session=True)
        except FileNotFoundError:
            raise CommandNotStarted(f"command not found: {command[0]}", 127) from None
        except PermissionError:
            raise CommandNotStarted(f"permission denied: {command[0]}", 126) from None
        pgid = child.pid  # start_new_session: the child leads its own group
        group.append(pgid)
        for signum in pending:  # a handler running from here on forwards by itself
            _signal_group(pgid, signum)
        started = clock()
        while True:
            try:
                code = child.wait(timeout=poll_seconds)
                return ChildOutcome(exit_code=_shell_code(code))
            except subprocess.TimeoutExpired:
                pass
            try:
                killed = is_killed()
            except Exception:  # the state store blinked: not a kill, ask again
                killed = False
            if killed:
                return _end_group(child, pgid, grace_seconds, clock, noticed=clock() - started)
            if tick is not None:
                tick()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if not group:  # the command never started: the signal was agentctl's own
            for signum in pending:
                signal.raise_signal(signum)


def _end_group(
    child: subprocess.Popen[bytes],
    pgid: int,
    grace_seconds: float,
    clock: Callable[[], float],
    *,
    noticed: float,
) -> ChildOutcome:
    """SIGTERM to the group; after the grace period, SIGKILL to whatever is left."""
    seen = clock()
    sent = ["SIGTERM"] if _signal_group(pgid, signal.SIGTERM) else []
    deadline = seen + grace_seconds
    code: int | None = None
    while clock() < deadline:
        if code is None:
            try:
                code = child.wait(timeout=min(0.05, max(0.0, deadline - clock())))
            except subprocess.TimeoutExpired:
                continue
        # The leader is gone; the group may still hold what it started.
        if not _group_alive(pgid):
            break
        time.sleep(0.02)
    if _group_alive(pgid) and _signal_group(pgid, signal.SIGKILL):
        sent.append("SIGKILL")
    if code is None:
        code = child.wait()
    while _group_alive(pgid) and clock() < seen + grace_seconds + 5:
        time.sleep(0.01)  # SIGKILL cannot be ignored: the group is gone within moments
    return ChildOutcome(
        exit_code=EXIT_KILLED,
        killed=True,
        signals=tuple(sent),
        noticed_after=noticed,
        ended_after=clock() - seen,
    )


def _shell_code(code: int) -> int:
    return 128 - code if code < 0 else code
