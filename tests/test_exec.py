"""`agentctl exec` / `credentials` / approvals end to end: the real CLI, a real
child process, moto with IAM enforcement on, a real SQLite state."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_helpers import (
    RUNTIME_PROFILE,
    MotoServer,
    Operator,
    create_operator,
    create_person,
    record_calls,
)
from cli_helpers import ENTRY
from contract_helpers import NOW, s3_read, write_contract

from agentctl.cli.app import run
from agentctl.config import Config
from agentctl.execution import RunRequest, Runs
from agentctl.providers.aws.settings import AwsSettings
from agentctl.runtime import build_engine
from agentctl.state import open_state

# The child: try an allowed and a forbidden call with the minted credentials,
# report what happened (never the credentials), exit with a chosen code.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    import boto3, botocore.exceptions
    s3 = boto3.client("s3", config=boto3.session.Config(retries={"total_max_attempts": 1}))
    def attempt(bucket):
        try:
            s3.list_objects_v2(Bucket=bucket)
            return "allowed"
        except botocore.exceptions.ClientError as exc:
            return exc.response["Error"]["Code"]
    seen = {
        "bucket-a": attempt("bucket-a"),
        "bucket-b": attempt("bucket-b"),
        "agent": os.environ.get("AGENTCTL_AGENT"),
        "on_behalf_of": os.environ.get("AGENTCTL_ON_BEHALF_OF"),
        "leaked": sorted(k for k in os.environ if k.startswith("AGENTCTL_KEYRING")),
        "operator_key_visible": os.environ.get("AWS_ACCESS_KEY_ID") == os.environ["OPERATOR_KEY_FOR_TEST"],
    }
    with open(sys.argv[1], "w") as out:
        json.dump(seen, out)
    sys.exit(int(sys.argv[2]))
    """
)


@dataclass
class ExecWorld:
    server: MotoServer
    root: Path
    state_url: str
    operator_key: str
    people: dict[str, Operator]  # IAM users, named by e-mail
    monkeypatch: pytest.MonkeyPatch

    def cli(
        self, *argv: str, operator: str = "ops@company.com", now: datetime | None = None
    ) -> int:
        """The CLI in this process, with ``operator``'s AWS keys: who runs it is
        whatever sts:GetCallerIdentity says those keys belong to."""
        person = self.people[operator]
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", person.access_key_id)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", person.secret_access_key)
        return run(list(argv), clock=lambda: now or NOW)

    def child(self, code: int = 0) -> tuple[list[str], Path]:
        script = self.root / "child.py"
        script.write_text(CHILD, encoding="utf-8")
        report = self.root / f"child-{code}.json"
        return [sys.executable, str(script), str(report), str(code)], report

    def audit(self, action: str) -> list[Any]:
        store = open_state(self.state_url)
        try:
            return store.audit_events(action=action)
        finally:
            store.close()


@pytest.fixture
def world(aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExecWorld]:
    # IAM user names may be e-mail addresses: the built-in rule names each person.
    operator = create_operator(aws, "ops@company.com")
    people = {
        "ops@company.com": operator,
        # No permissions at all: approving needs nothing but a verifiable identity.
        "lead@company.com": create_person(aws, "lead@company.com"),
        "dev@company.com": create_person(aws, "dev@company.com"),
        # Another operator (the on-call engineer): the shipped operator policy too.
        "oncall@company.com": create_operator(aws, "oncall@company.com"),
    }
    s3 = aws.client("s3")
    for bucket in ("bucket-a", "bucket-b"):
        s3.create_bucket(Bucket=bucket)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = {
        "state": state_url,
        "journal": str(tmp_path / "journal.jsonl"),
        "aws": {
            "endpoint_url": aws.url,
            "region": "us-east-1",
            "runtime_principal": operator.runtime_arn,
            "runtime_profile": RUNTIME_PROFILE,
        },
    }
    (tmp_path / "agentctl.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    contracts = tmp_path / "contracts"
    write_contract(contracts, "reader-agent", aws=s3_read("bucket-a"))
    write_contract(contracts, "helper-agent", aws=s3_read("bucket-a"), mode="on_behalf_of_user")
    write_contract(contracts, "release-agent", aws=s3_read("bucket-a"), mode="approval_required")
    monkeypatch.setenv("AGENTCTL_CONFIG", str(tmp_path / "agentctl.yaml"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", operator.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", operator.secret_access_key)
    monkeypatch.setenv("OPERATOR_KEY_FOR_TEST", operator.access_key_id)
    monkeypatch.setenv("AGENTCTL_KEYRING_PASSPHRASE", "not-for-the-child")
    aws.enforce_iam(0)
    world = ExecWorld(aws, tmp_path, state_url, operator.access_key_id, people, monkeypatch)
    assert world.cli("apply", str(contracts), "--yes") == 0
    yield world


def test_exec_runs_the_command_with_this_agents_credentials_only(world: ExecWorld) -> None:
    command, report = world.child(code=3)

    code = world.cli("exec", "reader-agent", "--trigger", "schedule/hourly", "--", *command)

    assert code == 3  # the command's exit code is agentctl's
    seen = json.loads(report.read_text())
    assert seen["bucket-a"] == "allowed"
    assert seen["bucket-b"] == "AccessDenied"  # beyond the contract
    assert seen["agent"] == "reader-agent" and seen["on_behalf_of"] is None
    assert seen["leaked"] == [] and seen["operator_key_visible"] is False
    (grant,) = world.audit("credentials.issue")
    assert (grant.actor, grant.on_behalf_of, grant.trigger) == (
        "reader-agent",
        None,
        "schedule/hourly",
    )
    assert "s3:GetObject" in (grant.scope or "")
    (end,) = world.audit("exec.end")
    assert end.detail["exit_code"] == 3 and end.result == "failure"


def test_on_behalf_of_user_carries_both_sides(world: ExecWorld) -> None:
    command, report = world.child()
    code = world.cli(
        "exec",
        "helper-agent",
        "--on-behalf-of",
        "amit@company.com",
        "--trigger",
        "webhook/pr-opened/4521",
        "--",
        *command,
    )
    assert code == 0
    assert json.loads(report.read_text())["on_behalf_of"] == "amit@company.com"
    for action in ("credentials.issue", "exec.end"):
        (event,) = world.audit(action)
        assert event.actor == "helper-agent"
        assert event.on_behalf_of == "amit@company.com"
        assert event.trigger == "webhook/pr-opened/4521"
        assert event.scope


def test_assume_role_request_names_agent_user_and_trigger(world: ExecWorld) -> None:
    """moto drops SourceIdentity and session tags: read them off the request."""
    engine = build_engine(
        Config(
            provider_settings={
                "aws": AwsSettings(
                    endpoint_url=world.server.url,
                    region="us-east-1",
                    runtime_principal="unused",
                    runtime_profile=RUNTIME_PROFILE,
                )
            },
            state_url=world.state_url,
        ),
        clock=lambda: NOW,
        provider_names=["aws"],
    )
    calls = record_calls(engine.providers["aws"].runtime_client("sts"), "sts")  # type: ignore[attr-defined]
    grant = Runs(engine).grant(
        RunRequest(
            agent="helper-agent",
            command=("true",),
            on_behalf_of="amit@company.com",
            trigger="webhook/pr-opened/4521",
        )
    )
    ((_, params),) = [c for c in calls.calls if c[0] == "AssumeRole"]
    assert params["SourceIdentity"] == "amit@company.com"
    assert {t["Key"]: t["Value"] for t in params["Tags"]} == {
        "agent": "helper-agent",
        "on_behalf_of": "amit@company.com",
        "trigger": "webhook/pr-opened/4521",
    }
    assert params["RoleSessionName"].startswith("agentctl-helper-agent-")
    assert params["RoleArn"].endswith(":role/agentctl/agentctl-helper-agent")
    assert grant.run_id[:8] in params["RoleSessionName"]

    calls.calls.clear()
    Runs(engine).grant(RunRequest(agent="reader-agent", command=("true",)))
    ((_, autonomous),) = [c for c in calls.calls if c[0] == "AssumeRole"]
    assert autonomous["SourceIdentity"] == "reader-agent"  # autonomous: the agent itself


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["exec", "ghost-agent", "--", "true"], "never been provisioned"),
        (["exec", "helper-agent", "--", "true"], "--on-behalf-of is required"),
    ],
)
def test_gates_refuse_clearly_and_are_audited(
    world: ExecWorld, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.cli(*argv) == 1
    assert message in capsys.readouterr().err
    (refusal,) = world.audit("exec.refused")
    assert refusal.result == "denied" and message in refusal.detail["reason"]
    assert world.audit("credentials.issue") == []


def test_killed_and_expired_agents_are_refused(
    world: ExecWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.cli("kill", "reader-agent", "--reason", "INC-7", "--yes") == 0
    capsys.readouterr()
    assert world.cli("exec", "reader-agent", "--", "true") == 1
    assert "reader-agent is killed (INC-7)" in capsys.readouterr().err

    contracts = world.root / "contracts"
    write_contract(
        contracts,
        "helper-agent",
        aws=s3_read("bucket-a"),
        mode="on_behalf_of_user",
        expiry=NOW.date(),
    )
    assert world.cli("apply", str(contracts), "--yes") == 0
    capsys.readouterr()
    assert world.cli("exec", "helper-agent", "-u", "amit@company.com", "--", "true") == 1
    assert "expired" in capsys.readouterr().err
    assert len(world.audit("exec.refused")) == 2


def test_approval_required_flow(world: ExecWorld, capsys: pytest.CaptureFixture[str]) -> None:
    command, report = world.child()

    # 1. No approval: a pending request, its id, and the command an owner runs.
    assert world.cli("exec", "release-agent", "--", *command) == 1
    err = capsys.readouterr().err
    assert "needs approval" in err and "agentctl approve apr-" in err
    approval_id = err.split("agentctl approve ")[1].split("`")[0].strip()
    assert not report.exists()

    assert world.cli("approvals", "--output", "json") == 0
    pending = json.loads(capsys.readouterr().out)["pending"]
    assert [p["id"] for p in pending] == [approval_id]

    # 2. The requester cannot approve their own request.
    assert world.cli("approve", approval_id, operator="ops@company.com") == 1
    assert "cannot also approve" in capsys.readouterr().err

    # 3. Someone else approves; the run goes through once.
    assert world.cli("approve", approval_id, operator="lead@company.com") == 0
    assert (
        world.cli(
            "exec",
            "release-agent",
            "--approval",
            approval_id,
            "--",
            *command,
        )
        == 0
    )
    assert json.loads(report.read_text())["bucket-a"] == "allowed"

    # 4. Single use.
    capsys.readouterr()
    assert (
        world.cli(
            "exec",
            "release-agent",
            "--approval",
            approval_id,
            "--",
            *command,
        )
        == 1
    )
    assert "is used" in capsys.readouterr().err

    actions = [e.action for e in world.audit("approval.request")] + [
        e.action for e in world.audit("approval.approve")
    ]
    assert actions == ["approval.request", "approval.approve", "approval.approve"]


def test_an_approval_expires_unused(world: ExecWorld, capsys: pytest.CaptureFixture[str]) -> None:
    """Approved, then not used within approval_ttl_minutes (60): refused, by the
    real clock of the run (here handed in-process; no variable moves it)."""

    assert world.cli("exec", "release-agent", "--", "echo", "release") == 1
    approval_id = capsys.readouterr().err.split("agentctl approve ")[1].split("`")[0].strip()
    assert world.cli("approve", approval_id, operator="lead@company.com") == 0
    capsys.readouterr()
    later = NOW + timedelta(minutes=61)
    argv = ["exec", "release-agent", "--approval", approval_id, "--", "echo", "release"]
    assert world.cli(*argv, now=later) == 1  # the requester, too late
    assert f"approval {approval_id} expired at" in capsys.readouterr().err
    record = world.audit("approval.approve")
    assert record, "the approval was given"
    with open_state(world.state_url) as state:
        approval = state.get_approval(approval_id)
    assert approval is not None and approval.status == "approved"  # never used


def test_an_approval_is_for_one_command_and_can_be_denied(
    world: ExecWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.cli("exec", "release-agent", "--", "echo", "release") == 1
    approval_id = capsys.readouterr().err.split("agentctl approve ")[1].split("`")[0].strip()
    assert world.cli("approve", approval_id, operator="lead@company.com") == 0
    capsys.readouterr()
    assert (
        world.cli(
            "exec",
            "release-agent",
            "--approval",
            approval_id,
            "--",
            "rm",
            "-rf",
            "/tmp/x",
        )
        == 1
    )
    assert "different command" in capsys.readouterr().err

    assert world.cli("exec", "release-agent", "--", "echo", "again") == 1
    second = capsys.readouterr().err.split("agentctl approve ")[1].split("`")[0].strip()
    assert world.cli("deny", second, "--reason", "freeze", operator="lead@company.com") == 0
    capsys.readouterr()
    assert (
        world.cli(
            "exec",
            "release-agent",
            "--approval",
            second,
            "--",
            "echo",
            "again",
        )
        == 1
    )
    assert "is denied" in capsys.readouterr().err


@pytest.mark.reveals_secrets  # `agentctl credentials` prints them: that is its job
def test_credentials_command_uses_the_same_gates(
    world: ExecWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.cli("credentials", "helper-agent") == 1
    assert "--on-behalf-of is required" in capsys.readouterr().err
    assert world.cli("credentials", "reader-agent", "--output", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["agent"] == "reader-agent"
    assert set(data["environment"]) >= {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }
    (grant,) = world.audit("credentials.issue")
    assert grant.actor == "reader-agent"
    assert data["environment"]["AWS_SECRET_ACCESS_KEY"] not in json.dumps(grant.detail)


def test_signals_reach_the_command_and_its_exit_code_is_agentctls(world: ExecWorld) -> None:
    """A real agentctl process: SIGTERM to agentctl is forwarded to the command."""
    import os
    import signal
    import subprocess
    import time

    ready, got = world.root / "ready", world.root / "got"
    child = textwrap.dedent(
        f"""
        import pathlib, signal, sys, time
        def on_term(signum, frame):
            pathlib.Path({str(got)!r}).write_text("TERM")
            sys.exit(42)
        signal.signal(signal.SIGTERM, on_term)
        pathlib.Path({str(ready)!r}).write_text("ready")
        time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,  # the real CLI, its clock pinned in-process
            NOW.isoformat(),
            "exec",
            "reader-agent",
            "--",
            sys.executable,
            "-c",
            child,
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240  # exec starts, mints, starts the child
    while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 42
    assert got.read_text() == "TERM"
    (end,) = world.audit("exec.end")
    assert end.detail["exit_code"] == 42


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for a reaper (it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_kill_ends_the_running_command_and_everything_it_started(world: ExecWorld) -> None:
    """exec watches the state store: another operator's kill ends the command's
    whole process group, SIGTERM first, SIGKILL for what ignores it."""
    import os
    import subprocess
    import time

    pids, ignoring = world.root / "pids", world.root / "ignoring"
    stubborn = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ignoring)!r}).touch(); time.sleep(120)"
    )
    child = textwrap.dedent(
        f"""
        import os, pathlib, subprocess, sys, time
        # A grandchild that ignores SIGTERM: only the group SIGKILL ends it.
        # The pids are written once it says it ignores SIGTERM (a loaded machine
        # may take seconds to start it; a SIGTERM before that would end it).
        stubborn = subprocess.Popen([sys.executable, "-c", {stubborn!r}])
        while not pathlib.Path({str(ignoring)!r}).exists() and stubborn.poll() is None:
            time.sleep(0.05)
        pathlib.Path({str(pids)!r}).write_text(f"{{os.getpid()}} {{stubborn.pid}}")
        time.sleep(120)
        """
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            NOW.isoformat(),
            "exec",
            "reader-agent",
            "--kill-grace",
            "1",
            "--",
            sys.executable,
            "-c",
            child,
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240  # exec starts, mints, starts the child
    # The child creates the file, then writes both pids: wait for the two.
    while (
        len(pids.read_text().split() if pids.exists() else ()) < 2
        and time.monotonic() < deadline
        and process.poll() is None
    ):
        time.sleep(0.05)
    assert pids.exists(), process.stderr.read() if process.stderr else ""
    leader, stubborn = map(int, pids.read_text().split())
    assert not _gone(leader) and not _gone(stubborn)

    # Someone else, elsewhere: the kill is recorded in the shared state store.
    assert (
        world.cli(
            "kill", "reader-agent", "--reason", "INC-11", "--yes", operator="oncall@company.com"
        )
        == 0
    )
    assert process.wait(timeout=60) == 3
    err = process.stderr.read() if process.stderr else ""
    assert "reader-agent was killed" in err and "SIGTERM then SIGKILL" in err
    assert _gone(leader) and _gone(stubborn)
    (killed,) = world.audit("exec.killed")
    assert killed.actor == "reader-agent" and killed.result == "success"
    assert killed.detail["signals"] == ["SIGTERM", "SIGKILL"]
    assert killed.detail["grace_seconds"] == 1.0
    (end,) = world.audit("exec.end")
    assert end.detail["exit_code"] == 3


# A SIGTERM that arrives while exec is starting the command (after the fork,
# before exec has the command's process group): here raised from inside
# Popen, the only way to hit that moment every time. In its own process, so
# that a SIGTERM exec fails to handle ends that process, not the test run.
SIGNAL_WHILE_STARTING = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from agentctl import supervise
    real_popen = subprocess.Popen
    def starting(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_popen(*args, **kwargs)
    subprocess.Popen = starting
    outcome = supervise.run_watched(
        sys.argv[1:], dict(os.environ), is_killed=lambda: False, poll_seconds=0.2
    )
    print(outcome.exit_code)
    """
)


def test_a_signal_while_the_command_starts_reaches_the_command() -> None:
    """Not agentctl dying on it and leaving the command running unwatched."""
    import signal
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SIGNAL_WHILE_STARTING,
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, str(128 + signal.SIGTERM)), done.stderr


def test_a_signal_while_a_command_fails_to_start_is_agentctls_own() -> None:
    import signal
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_WHILE_STARTING, "/nonexistent/agent-command"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGTERM, (done.stdout, done.stderr)


# A command that double-forks a daemon out of its process group (setsid), one
# that ignores SIGTERM; the agent is "killed" once the daemon has written its
# pid. In its own process: exec becomes a child subreaper, which must not
# change the test run itself.
DAEMON_LEAVES_THE_GROUP = textwrap.dedent(
    """
    import json, os, pathlib, sys, time
    from agentctl import supervise
    pid_file = pathlib.Path(sys.argv[1])
    daemon = (
        "import os, pathlib, signal, sys, time\\n"
        "if os.fork(): os._exit(0)\\n"  # the middle process ends: the daemon is an orphan
        "os.setsid()\\n"
        "null = os.open(os.devnull, os.O_RDWR); os.dup2(null, 1); os.dup2(null, 2)\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\\n"
        "time.sleep(300)\\n"
    )
    command = [sys.executable, "-c", f"import subprocess, sys, time; "
               f"subprocess.run([sys.executable, '-c', {daemon!r}]); time.sleep(300)"]
    outcome = supervise.run_watched(
        command, dict(os.environ), is_killed=pid_file.exists, poll_seconds=0.2,
        grace_seconds=0.5,
    )
    daemon_pid = int(pid_file.read_text())
    stat = pathlib.Path(f"/proc/{daemon_pid}/stat")
    alive = stat.exists() and stat.read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    print(json.dumps({"exit": outcome.exit_code, "signals": outcome.signals,
                      "daemon_alive": alive, "daemon": daemon_pid}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreaper is Linux's")
def test_a_kill_also_ends_a_daemon_that_left_the_process_group(tmp_path: Path) -> None:
    """setsid + double fork takes a process out of the command's group; exec
    (a child subreaper) still finds it below itself and ends it: SIGTERM, then
    SIGKILL for a daemon that ignores SIGTERM."""
    import os
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", DAEMON_LEAVES_THE_GROUP, str(tmp_path / "daemon.pid")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    try:
        assert report["exit"] == 3 and report["signals"] == ["SIGTERM", "SIGKILL"], report
        assert not report["daemon_alive"], report
    finally:
        if report["daemon_alive"]:
            os.kill(report["daemon"], 9)


def test_a_command_that_ends_on_sigterm_gets_no_sigkill(world: ExecWorld) -> None:
    import os
    import subprocess
    import time

    ready = world.root / "ready"
    child = f"import pathlib, time; pathlib.Path({str(ready)!r}).write_text('r'); time.sleep(120)"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            NOW.isoformat(),
            "exec",
            "reader-agent",
            "--",
            sys.executable,
            "-c",
            child,
        ],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240  # exec starts, mints, starts the child
    while not ready.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), f"the command never started (exec exit {process.poll()})"
    assert world.cli("kill", "reader-agent", "--reason", "INC-12", "--yes") == 0
    assert process.wait(timeout=60) == 3
    (killed,) = world.audit("exec.killed")
    assert killed.detail["signals"] == ["SIGTERM"]
