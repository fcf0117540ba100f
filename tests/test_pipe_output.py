"""Issue 19: output off a terminal (pipes, files, cron) is one record per line,
never wrapped or cut, and greppable, for every command that lists records.

The real CLI as a subprocess, its stdout a pipe, with a terminal width far
narrower than any record (COLUMNS=30) and values longer than it: a 34-character
agent name (the longest a contract allows), a long owner address, a long kill
reason. Each record must be one whole line holding every long value in full
(nothing wrapped onto a second line, nothing cut with an ellipsis, no escape
codes), and `agentctl CMD | grep NAME` must find exactly that agent's records.
"""

from __future__ import annotations

import shlex
import subprocess
from datetime import timedelta

import pytest
from cli_helpers import Cli
from contract_helpers import TODAY

# The longest names a contract allows (34 characters), alike up to their last letters.
NAMES = ("pipe-agent-with-a-very-long-name-a", "pipe-agent-with-a-very-long-name-b")
OWNER = "a-team-with-an-unusually-long-mailbox-name@platform.engineering.company.com"
REASON = "INC-4711 the agent pushed to a branch it was never meant to touch, see the ticket"

pytestmark = pytest.mark.parametrize("cli", ["subprocess"], indirect=True)


def piped(cli: Cli, *args: str, code: int = 0) -> list[str]:
    """The command's stdout through a pipe: lines, with no escape codes and
    nothing cut short."""
    result = cli(*args)
    assert result.code == code, result
    assert "\x1b" not in result.out and "…" not in result.out, result
    return result.out.splitlines()


def grep(cli: Cli, pattern: str, *args: str) -> list[str]:
    """`agentctl ARGS | grep -F PATTERN`, through a real shell pipe."""
    done = subprocess.run(
        f"{shlex.join(cli.command(*args))} | grep -F -- {shlex.quote(pattern)}",
        shell=True,
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout.splitlines()


def whole(lines: list[str], *values: str) -> list[str]:
    """The lines holding the first value; each must hold every value in full."""
    found = [line for line in lines if values[0] in line]
    for line in found:
        missing = [v for v in values if v not in line]
        assert not missing, f"{line!r} lacks {missing}: wrapped or cut"
    return found


def test_every_listing_is_one_whole_line_per_record_in_a_pipe(cli: Cli) -> None:
    cli.extra_env["COLUMNS"] = "30"
    a = NAMES[0]
    for name in NAMES:
        cli.write(name, owner=OWNER, expiry=TODAY + timedelta(days=20))
    # A grant wider than it needs: validate warns, located on one line.
    cli.write(
        "pipe-agent-wildcard",
        owner=OWNER,
        aws=[{"actions": ["s3:*"], "resources": ["arn:aws:s3:::bucket-a/*"]}],
    )

    validated = piped(cli, "validate", str(cli.contracts))
    [warning] = whole(validated, "pipe-agent-wildcard.yaml:")
    assert "warning" in warning

    # plan and apply: every line of an agent's changes starts with its name.
    plan = ["plan", str(cli.contracts)]
    lines = piped(cli, *plan)
    for name in NAMES:
        planned = [line for line in lines if line.startswith(f"{name}  ")]
        assert planned == [f"{name}  + create create IAM role agentctl-{name} under /agentctl/"]
        assert grep(cli, name, *plan) == planned
    applied = piped(cli, "apply", str(cli.contracts), "--yes")
    assert [x for x in applied if x.startswith(f"{a}  ")] == [
        f"{a}  + create create IAM role agentctl-{a} under /agentctl/",  # the plan it carries out
        f"{a}  ok      aws create",  # the result, a row of the table
    ]
    assert grep(cli, a, *plan) == []  # applied: nothing left to do

    for args in (["list"], ["status"], ["status", "--refresh"]):
        lines = piped(cli, *args)
        assert len(lines) == 1 + 3  # a header, then one line per agent
        for name in NAMES:
            assert len(whole(lines, name, OWNER, "autonomous", "active")) == 1
            assert grep(cli, name, *args) == whole(lines, name)

    expiring = piped(cli, "expiring", "--days", "30", str(cli.contracts), code=1)
    for name in NAMES:
        [due] = whole(expiring, f"{name}:", OWNER, "contract-expiring", "expires in 20 days")
        assert grep(cli, name, "expiring", "--days", "30", str(cli.contracts)) == [due]

    killed = piped(cli, "kill", a, "--reason", REASON, "--yes")
    whole(killed, "aws: killed role", f"agentctl-{a}", "trust policy locked")

    events = piped(cli, "audit")
    header, *rows = events
    assert header.split("\t")[:6] == ["seq", "time (UTC)", "actor", "for", "action", "target"]
    assert len(rows) == len(cli("audit", "-o", "json").json()["events"])
    assert all(len(row.split("\t")) == len(header.split("\t")) for row in rows)
    assert len(whole(rows, "\tkill\t", a)) == 1
    assert grep(cli, a, "audit") == whole(rows, a)
    assert len(grep(cli, a, "audit")) == 2  # its create and its kill
