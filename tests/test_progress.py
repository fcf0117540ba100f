"""Progress of commands that work through many agents (`plan`, `status --refresh`;
`apply` has its own): shown on a terminal's stderr while the providers answer,
never in a pipe, a file or cron mail (no spinner, no control sequences), and
never on stdout, where the result goes.

Each command runs as a real process, once with stderr on a pseudo-terminal
(stdout piped, as in `agentctl plan | less`) and once with both piped.
"""

from __future__ import annotations

import os
import subprocess
import threading
from typing import TYPE_CHECKING

import pytest
from cli_helpers import BOTH_WAYS

if TYPE_CHECKING:
    from cli_helpers import Cli

AGENTS = ("alpha-agent", "beta-agent", "gamma-agent")


def on_a_terminal(cli: Cli, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout (a pipe) and what the terminal (stdin and stderr) showed."""
    master, terminal = os.openpty()
    process = subprocess.Popen(
        cli.command(*args),
        env={**cli.env, "TERM": "xterm-256color", "COLUMNS": "120"},
        cwd=cli.root,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the process closed its end
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    out, _ = process.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    return process.returncode, out.decode(), b"".join(shown).decode(errors="replace")


@pytest.fixture
def applied(cli: Cli) -> Cli:
    for name in AGENTS:
        cli.write(name)
    assert cli("apply", cli.contracts, "--yes").code == 0
    return cli


@pytest.mark.parametrize("cli", ["subprocess"], indirect=True)
def test_plan_shows_progress_on_a_terminal_only(applied: Cli) -> None:
    cli = applied
    cli.write("delta-agent")  # something to plan besides the three up to date
    code, out, terminal = on_a_terminal(cli, "plan", str(cli.contracts), "--refresh")
    assert code == 0, terminal
    assert "planning" in terminal and "agents" in terminal
    assert "planning" not in out and "\x1b" not in out  # the plan itself, plain
    assert "delta-agent" in out

    piped = cli.run("plan", str(cli.contracts), "--refresh")
    assert piped.code == 0, piped
    assert "planning" not in piped.err and "\x1b" not in piped.err + piped.out
    assert piped.out == out  # the same result either way

    quiet_code, _, quiet_terminal = on_a_terminal(
        cli, "--quiet", "plan", str(cli.contracts), "--refresh"
    )
    assert quiet_code == 0 and "planning" not in quiet_terminal


@pytest.mark.parametrize("cli", ["subprocess"], indirect=True)
def test_status_refresh_shows_progress_on_a_terminal_only(applied: Cli) -> None:
    cli = applied
    code, out, terminal = on_a_terminal(cli, "status", "--refresh", "-o", "json")
    assert code == 0, terminal
    assert "asking the providers" in terminal and "agents" in terminal
    assert out.startswith("{")  # stdout stays JSON: progress never goes there

    piped = cli.run("status", "--refresh")
    assert piped.code == 0, piped
    assert "asking the providers" not in piped.err and "\x1b" not in piped.err + piped.out
    assert [line.split()[0] for line in piped.out.splitlines()[1:]] == list(AGENTS)

    # Without --refresh nothing is slow: no progress, also on a terminal.
    code, _, terminal = on_a_terminal(cli, "status")
    assert code == 0 and "asking the providers" not in terminal


@BOTH_WAYS
def test_status_refresh_reports_what_the_providers_say(applied: Cli) -> None:
    """The progress callback changes nothing of the result: a role deleted
    behind agentctl's back is still drift."""
    cli = applied
    with cli.server.unenforced():
        cli.server.client("iam").delete_role_policy(
            RoleName="agentctl-beta-agent", PolicyName="agentctl-grant"
        )
    agents = {a["name"]: a for a in cli("status", "--refresh", "-o", "json").json()["agents"]}
    assert agents["beta-agent"]["status"] == "drifted"
    assert agents["alpha-agent"]["status"] == "active"


@pytest.mark.parametrize("cli", ["subprocess"], indirect=True)
def test_apply_shows_its_bar_on_a_terminal_only(cli: Cli) -> None:
    for name in AGENTS[:2]:
        cli.write(name)
    code, out, terminal = on_a_terminal(cli, "apply", str(cli.contracts), "--yes")
    assert code == 0, terminal
    assert "applying" in terminal
    assert "applying" not in out and "\x1b" not in out

    cli.write(AGENTS[2])
    cli.write("delta-agent")
    piped = cli.run("apply", str(cli.contracts), "--yes")
    assert piped.code == 0, piped
    assert "applying" not in piped.err and "\x1b" not in piped.err + piped.out


@pytest.mark.parametrize("cli", ["subprocess"], indirect=True)
def test_audit_verify_and_export_show_progress_on_a_terminal_only(applied: Cli) -> None:
    """A long trail takes a while to verify or export (about 20 s per
    1,000,000 events): a line on the terminal's stderr meanwhile."""
    cli = applied
    code, out, terminal = on_a_terminal(cli, "audit", "verify")
    assert "verifying the audit trail" in terminal and "events" in terminal
    assert "verifying" not in out and "\x1b" not in out
    piped = cli.run("audit", "verify")
    assert (piped.code, piped.out) == (code, out)  # the same result either way
    assert "3 events" in out, out
    assert "verifying" not in piped.err and "\x1b" not in piped.err

    exported = cli.root / "trail.jsonl"
    code, out, terminal = on_a_terminal(cli, "audit", "export", "-f", str(exported))
    assert code == 0, terminal
    assert "exporting the audit trail" in terminal
    assert "exporting" not in out and "\x1b" not in out
    piped = cli.run("audit", "export", "-f", str(exported))
    assert piped.code == 0 and "exporting" not in piped.err and "\x1b" not in piped.err
    assert len(exported.read_text().splitlines()) == 3  # one event per agent applied


def test_a_long_trail_reports_progress_once_per_thousand_events() -> None:
    from agentctl.audit import EVENTS_PER_STEP, counted

    steps: list[str] = []
    events = list(range(2 * EVENTS_PER_STEP + 5))
    assert list(counted(events, steps.append)) == events  # type: ignore[arg-type]
    assert steps == ["", ""]
    assert counted(events, None) is events  # type: ignore[arg-type]


@pytest.mark.parametrize("cli", ["subprocess"], indirect=True)
def test_validate_shows_progress_on_a_terminal_only(cli: Cli) -> None:
    """Thousands of contracts take seconds to validate: a line on the
    terminal's stderr meanwhile, the report alone in a pipe."""
    for name in AGENTS:
        cli.write(name)
    code, out, terminal = on_a_terminal(cli, "validate", str(cli.contracts))
    assert code == 0, terminal
    assert "validating" in terminal and "files" in terminal
    assert "validating" not in out and "\x1b" not in out
    piped = cli.run("validate", str(cli.contracts))
    assert (piped.code, piped.out) == (0, out)  # the same report either way
    assert "validating" not in piped.err and "\x1b" not in piped.err
