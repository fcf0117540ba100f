"""One run id for all the fetches of one credential-helper session.

Outside ``exec`` the ordinary tools ask agentctl for credentials whenever they
need them: an AWS SDK runs ``agentctl credentials NAME --format aws-process``
(its ``credential_process``) again before each session expires, git runs
``agentctl git-credential NAME get`` for each push. Every fetch is its own
gated, audited issue; what a reader of the audit trail needs on top is which
fetches belong together: the twelve refreshes of one service's SDK session
are one run, not twelve unrelated ones.

The run id of a fetch, first match wins (``run_id_from`` in the audit detail):

* ``--run-id ID``: the caller names the run (a profile line shared by a
  host's services, a CI job's id);
* ``AGENTCTL_RUN_ID`` in the environment: set by whatever starts the tool (a
  service unit, a CI job; ``exec`` sets it for its own command too);
* the process that started agentctl (Linux): the SDK process for
  ``credential_process`` (botocore starts it directly), the git process for a
  helper (git starts it through ``sh -c``, so one shell is looked through).
  The id is a digest of the host's boot, that process's pid and its start
  time, so it is the same for every fetch of that process and never reused by
  a later process with the same pid;
* otherwise a new id per fetch.

The detail also names the host and the starting process (pid and executable
name only: its arguments may hold secrets).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.errors import UsageError

RUN_ID_ENV = "AGENTCTL_RUN_ID"
# Set (in agentctl's own environment) while `credentials` / `git-credential`
# fetch, so agentctl's own AWS lookups and any copy of agentctl they start know
# they are inside a fetch (agentctl.cli.runs, agentctl.identity).
FETCHING_ENV = "AGENTCTL_FETCHING_CREDENTIALS"
# Letters, digits and . _ - : it lands in AWS role session names and audit lines.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})


@dataclass(frozen=True)
class HelperRun:
    """The run id of one fetch and where it came from (for the audit detail)."""

    run_id: str | None  # None: a new id for this fetch
    run_id_from: str  # "--run-id" | "AGENTCTL_RUN_ID" | "parent process" | "new"
    host: str
    parent_pid: int | None = None
    parent_command: str | None = None

    def audit_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"run_id_from": self.run_id_from, "host": self.host}
        if self.parent_pid is not None:
            detail["parent"] = {"pid": self.parent_pid, "command": self.parent_command}
        return detail


def checked_run_id(value: str, where: str) -> str:
    if not _RUN_ID.fullmatch(value):
        raise UsageError(
            f"{where} {value!r} is not a run id",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(e.g. a CI job id or the service's name)",
        )
    return value


def helper_run(
    explicit: str | None,
    environ: Mapping[str, str] | None = None,
    *,
    parent_pid: int | None = None,
    proc: Path = Path("/proc"),
) -> HelperRun:
    """The run id for one fetch of ``credentials`` / ``git-credential``."""
    environ = os.environ if environ is None else environ
    host = socket.gethostname()
    if explicit is not None:
        return HelperRun(checked_run_id(explicit, "--run-id"), "--run-id", host)
    from_env = environ.get(RUN_ID_ENV)
    if from_env:
        return HelperRun(checked_run_id(from_env, RUN_ID_ENV), RUN_ID_ENV, host)
    parent = os.getppid() if parent_pid is None else parent_pid
    # Started by init (pid 1): no process of the tool's own to tell sessions apart.
    started_by = _starting_process(parent, proc) if parent > 1 else None
    if started_by is None:
        return HelperRun(None, "new", host)
    pid, command, started = started_by
    boot = _read(proc / "sys" / "kernel" / "random" / "boot_id") or host
    digest = hashlib.sha256(f"{boot.strip()}:{pid}:{started}".encode()).hexdigest()
    return HelperRun("p" + digest[:11], "parent process", host, pid, command)


def _starting_process(pid: int, proc: Path) -> tuple[int, str, str] | None:
    """(pid, executable name, start time in clock ticks since boot) of the
    process that started agentctl, looking through one shell; None where
    /proc cannot say (not Linux, or the process is gone)."""
    found = _stat(pid, proc)
    if found is not None and found[0] in _SHELLS:
        grandparent = _stat(int(found[2]), proc)
        if grandparent is not None and int(found[2]) > 1:
            pid, found = int(found[2]), grandparent
    if found is None:
        return None
    command, started, _ = found
    return pid, command, started


def _stat(pid: int, proc: Path) -> tuple[str, str, str] | None:
    """(comm, starttime, ppid) from /proc/PID/stat (proc(5): the command name is in
    parentheses and may itself hold ')' and spaces; starttime is field 22)."""
    text = _read(proc / str(pid) / "stat")
    if text is None or ")" not in text:
        return None
    command = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 1 :].split()
    if len(fields) < 20:
        return None
    return command, fields[19], fields[1]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
