"""Running an agent's command under watch: a kill of the agent ends it.

``agentctl exec`` starts the command in its own session (so its process group
holds the command and everything it starts), forwards the usual signals to
that group, and between waits asks whether the agent was killed (the state
store, at most ``poll_seconds`` apart: a kill from any operator's machine is
recorded there). On a kill it sends SIGTERM to the group, waits
``grace_seconds`` for the command to end, then sends SIGKILL to the group.

A process that leaves the group on purpose (``setsid``, a double-forked
daemon) is ended too, on Linux: exec becomes a child subreaper, so such
orphans are re-parented to it rather than to init, and a kill signals every
process below exec that the command started, group or not.

This module starts and signals processes and returns what happened; it never
prints (the CLI renders) and never audits (the caller does, with the run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def _become_subreaper() -> bool:
    """Linux: orphans below this process (a daemon that double-forked out of the
    command's group) are re-parented to it instead of init, so a kill can still
    find them among its descendants. Not inherited by the command."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _descendants(root: int) -> set[int]:
    """Every live process below ``root``, read from /proc (empty without it)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _signal_escaped(pgid: int, before: set[int] | frozenset[int], signum: int) -> bool:
    """Signal what the command started outside its group: processes below exec
    that were not there before the command and are not in the group."""
    sent = False
    for pid in _descendants(os.getpid()) - before:
        try:
            if os.getpgid(pid) == pgid:
                continue  # the group signal reaches it
            os.kill(pid, signum)
            sent = True
        except (ProcessLookupError, PermissionError):
            continue
    return sent


def _reap_orphans(before: set[int] | frozenset[int]) -> None:
    """Collect the exit status of re-parented orphans that ended (no zombies)."""
    for pid in _descendants(os.getpid()) - before:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue


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
    _become_subreaper()
    before = _descendants(os.getpid())  # not the command's: never signalled
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
                return _end_group(
                    child, pgid, grace_seconds, clock, noticed=clock() - started, before=before
                )
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
    before: set[int] | frozenset[int] = frozenset(),
) -> ChildOutcome:
    """SIGTERM to the group (and to what left it); after the grace period,
    SIGKILL to whatever is left."""
    seen = clock()
    termed = _signal_group(pgid, signal.SIGTERM)
    termed = _signal_escaped(pgid, before, signal.SIGTERM) or termed
    sent = ["SIGTERM"] if termed else []
    deadline = seen + grace_seconds
    code: int | None = None
    while clock() < deadline:
        if code is None:
            try:
                code = child.wait(timeout=min(0.05, max(0.0, deadline - clock())))
            except subprocess.TimeoutExpired:
                continue
        # The leader is gone; the group (or what left it) may still hold more.
        _reap_orphans(before)
        if not _group_alive(pgid) and not _escaped_alive(pgid, before):
            break
        time.sleep(0.02)
    killed = _group_alive(pgid) and _signal_group(pgid, signal.SIGKILL)
    killed = _signal_escaped(pgid, before, signal.SIGKILL) or killed
    if killed:
        sent.append("SIGKILL")
    if code is None:
        code = child.wait()
    while (_group_alive(pgid) or _escaped_alive(pgid, before)) and (
        clock() < seen + grace_seconds + 5
    ):
        _reap_orphans(before)
        time.sleep(0.01)  # SIGKILL cannot be ignored: the group is gone within moments
    return ChildOutcome(
        exit_code=EXIT_KILLED,
        killed=True,
        signals=tuple(sent),
        noticed_after=noticed,
        ended_after=clock() - seen,
    )


def _escaped_alive(pgid: int, before: set[int] | frozenset[int]) -> bool:
    """Whether a process the command started outside its group still runs
    (zombies, already ended, do not count)."""
    for pid in _descendants(os.getpid()) - before:
        try:
            if os.getpgid(pid) == pgid:
                continue
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except (OSError, ProcessLookupError):
            continue
        if stat[stat.rfind(b")") + 2 :].split()[:1] != [b"Z"]:
            return True
    return False


def _shell_code(code: int) -> int:
    return 128 - code if code < 0 else code
