"""Every error a user can cause, caused for real: the exit code is 2 (usage,
config) or 1 (the job could not be done), there is no traceback, and the hint
points the right way for the case, with the words a user needs to act on it.

Each case runs the real CLI (``cli`` fixture: moto with IAM enforcement on,
the operator holding only the generated least-privilege policy, a real SQLite
state) after a world with two applied agents: ``alpha-agent`` (autonomous)
and ``helper-agent`` (on_behalf_of_user).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import yaml
from aws_helpers import create_operator
from cli_helpers import Cli
from contract_helpers import s3_read

from agentctl.cli.common import show
from agentctl.engine import LifecycleReport
from agentctl.providers.aws.client import same_principal
from agentctl.providers.aws.policies import LOCKED_TRUST, normalise_policy
from agentctl.providers.base import ActionResult


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def edit_config(cli: Cli, change: Callable[[dict[str, Any]], None]) -> None:
    document = yaml.safe_load(cli.config_path.read_text("utf-8"))
    change(document)
    cli.config_path.write_text(yaml.safe_dump(document), "utf-8")


def nothing(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    pass


def exec_as_the_operator(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # No runtime profile: sessions would start with the operator's own keys.
    edit_config(cli, lambda c: c["aws"].pop("runtime_profile"))


def new_contract(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.write("beta-agent")


def broken_contract(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    (cli.contracts / "beta-agent.yaml").write_text(
        "agent:\n  name: beta-agent\n  ownr: x@company.com\n", "utf-8"
    )


def killed(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("kill", "alpha-agent", "--yes", "--reason", "INC-1").code == 0


def past_expiry(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.now = cli.now + timedelta(days=200)  # contracts expire 2027-03-01


def config_typo(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_config(cli, lambda c: c["aws"].update(role_prefx="x-"))


def unknown_access_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")


def aws_unreachable(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_config(cli, lambda c: c["aws"].update(endpoint_url=f"http://127.0.0.1:{closed_port()}"))


def powerless_operator(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = cli.config_path.parent / "powerless.json"
    policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}
                ],
            }
        ),
        "utf-8",
    )
    with cli.server.unenforced():
        weak = create_operator(cli.server, "powerless", policy)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", weak.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", weak.secret_access_key)


def approval_agent(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.write("release-agent", mode="approval_required")
    assert cli("apply", cli.contracts, "--yes").code == 0


def no_boundary(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_config(cli, lambda c: c["aws"].pop("permissions_boundary"))


def elsewhere(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    away = cli.config_path.parent / "elsewhere"  # a folder with no contracts/ in it
    away.mkdir()
    monkeypatch.chdir(away)


def runtime_profile_missing(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # A runtime host whose agentctl.yaml names a profile this host does not have.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    edit_config(cli, lambda c: c["aws"].update(runtime_profile="no-such-profile"))


def state_down(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCTL_STATE", f"postgresql://nobody@127.0.0.1:{closed_port()}/x")


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]  # {contracts} and {tmp} are filled in
    code: int
    hint: tuple[str, ...]  # words the `hint:` line must hold
    setup: Callable[[Cli, pytest.MonkeyPatch], None] = nothing
    error: tuple[str, ...] = ()  # words the `error:` line must hold


CASES = [
    # The issue's own examples.
    Case(
        "exec as the operator: the role trusts only the runtime principal",
        ("exec", "alpha-agent", "--", "true"),
        1,
        ("trusts only the runtime principal", "agentctl-operator-runtime", "aws.runtime_profile"),
        exec_as_the_operator,
        error=("are not the runtime principal", "agentctl-operator"),
    ),
    Case(
        "a runtime profile this host does not have is named, with where it is set",
        ("exec", "alpha-agent", "--", "true"),
        1,
        ("aws configure --profile no-such-profile", "aws.runtime_profile"),
        runtime_profile_missing,
        error=("'no-such-profile' is not configured",),
    ),
    Case(
        "apply without a terminal needs --yes",
        ("apply", "{contracts}"),
        2,
        ("--yes", "agentctl plan"),
        new_contract,
    ),
    Case(
        "a --duration of 1h30x names the forms",
        ("exec", "alpha-agent", "--duration", "1h30x", "--", "true"),
        2,
        ("1h30m",),
        error=("--duration", "not a duration"),
    ),
    Case(
        "a --duration outside the range gives it",
        ("exec", "alpha-agent", "--duration", "30s", "--", "true"),
        2,
        ("between 15m and 12h", "1h30m"),
        error=("out of range",),
    ),
    Case(
        "a --state typo is not created",
        ("--state", "sqlite:///{tmp}/stat.db", "status"),
        1,
        ("--state", "AGENTCTL_STATE", "typo"),
        error=("no state database",),
    ),
    Case(
        "a state URL of another kind",
        ("--state", "mysql://db/agentctl", "status"),
        2,
        ("sqlite:///", "postgresql://"),
    ),
    Case(
        "expiring with the state down fails loudly (cron)",
        ("expiring", "--days", "30", "{contracts}"),
        1,
        ("database is running", "AGENTCTL_STATE"),
        state_down,
        error=("state store",),
    ),
    Case(
        "--dry-run without --notify",
        ("expiring", "--dry-run", "{contracts}"),
        2,
        ("--notify",),
    ),
    # Agents in the wrong state.
    Case(
        "status of an agent that does not exist",
        ("status", "alpha"),
        1,
        ("agentctl list",),
    ),
    Case(
        "revive an agent that was never killed",
        ("revive", "alpha-agent", "--reason", "x"),
        1,
        ("revive only undoes", "agentctl kill"),
    ),
    Case(
        "exec of a killed agent",
        ("exec", "alpha-agent", "--", "true"),
        1,
        ("agentctl revive alpha-agent",),
        killed,
    ),
    Case(
        "exec of an agent past its expiry",
        ("exec", "alpha-agent", "--", "true"),
        1,
        ("extend `expiry`", "agentctl apply"),
        past_expiry,
    ),
    Case(
        "exec of an agent with no contract",
        ("exec", "nosuch-agent", "--", "true"),
        1,
        ("agentctl apply",),
    ),
    Case(
        "exec of an on-behalf-of agent without the person",
        ("exec", "helper-agent", "--", "true"),
        1,
        ("--on-behalf-of",),
    ),
    Case(
        "exec without a command",
        ("exec", "alpha-agent"),
        2,
        ("agentctl exec NAME", "--", "COMMAND"),
    ),
    Case(
        "rotate with a misspelt provider",
        ("rotate", "alpha-agent", "--provider", "awz"),
        2,
        ("one of:", "aws"),
        error=("did you mean 'aws'",),
    ),
    Case(
        "approve an approval that does not exist",
        ("approve", "nosuch"),
        1,
        ("agentctl approvals",),
    ),
    Case(
        "audit --since that is no time",
        ("audit", "--since", "yesterdayish"),
        2,
        ("2026-11-01", "1h30m"),
    ),
    # Files.
    Case(
        "a contract error stops plan",
        ("plan", "{contracts}"),
        1,
        ("agentctl validate",),
        broken_contract,
    ),
    Case(
        "a typo in agentctl.yaml",
        ("plan", "{contracts}"),
        2,
        ("role_prefix",),
        config_typo,
        error=("aws.role_prefx",),
    ),
    Case(
        "--config naming a file that is not there",
        ("--config", "{tmp}/agentctl.yml", "status"),
        2,
        ("--config", "AGENTCTL_CONFIG"),
    ),
    # AWS access.
    Case(
        "AWS does not know the access key",
        ("plan", "{contracts}"),
        1,
        ("AWS_PROFILE", "aws configure"),
        unknown_access_key,
        error=("AWS rejected the credentials",),
    ),
    Case(
        "AWS unreachable",
        ("plan", "{contracts}"),
        1,
        ("AWS_ENDPOINT_URL", "aws.endpoint_url"),
        aws_unreachable,
        error=("cannot reach the AWS endpoint",),
    ),
    Case(
        "the operator lacks a permission",
        ("plan", "{contracts}"),
        1,
        ("agentctl policy operator",),
        powerless_operator,
        error=("access denied",),
    ),
    Case(
        "the operator policy needs the boundary",
        ("policy", "operator"),
        2,
        ("agentctl policy boundary", "aws.permissions_boundary"),
        no_boundary,
    ),
    Case(
        "exec of an approval_required agent records a request and says who approves",
        ("exec", "release-agent", "--", "true"),
        1,
        ("agentctl approve", "--approval"),
        approval_agent,
        error=("needs approval to run",),
    ),
    Case(
        "plan with no contracts given where ./contracts is not",
        ("plan",),
        2,
        ("agentctl plan contracts/",),
        elsewhere,
    ),
    Case(
        "revoke a serve caller that does not exist",
        ("serve", "token", "revoke", "pager"),
        1,
        ("agentctl serve token list",),
    ),
    Case(
        "a secret backend that does not exist",
        ("secrets", "migrate", "--from", "encrypted-file", "--to", "vault"),
        1,
        ("aws-secretsmanager", "encrypted-file"),
        error=("unknown secret backend 'vault'",),
    ),
    Case(
        "policy writes to a folder that is not there",
        ("policy", "runtime", "--output", "{tmp}/nowhere/runtime.json"),
        2,
        ("writable --output",),
    ),
    # Other systems, not configured.
    Case(
        "github register with no github settings",
        ("github", "register", "alpha-agent", "--contract", "{contracts}"),
        1,
        ("github.organization",),
    ),
    Case(
        "github register run where no contracts are",
        ("github", "register", "alpha-agent"),
        1,
        ("--contract PATH",),
        elsewhere,
        error=("contracts does not exist here",),
    ),
    Case(
        "github register of a name no contract has",
        ("github", "register", "alpha-agnet", "--contract", "{contracts}"),
        1,
        ("--contract PATH",),
        error=("did you mean 'alpha-agent'",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_user_error_exits_cleanly_with_a_hint_for_its_case(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    cli.write("alpha-agent", aws=s3_read("bucket-a"))
    cli.write("helper-agent", aws=s3_read("bucket-a"), mode="on_behalf_of_user")
    assert cli("apply", cli.contracts, "--yes").code == 0
    case.setup(cli, monkeypatch)
    tmp = cli.config_path.parent
    argv = [
        a.replace("{contracts}", str(cli.contracts)).replace("{tmp}", str(tmp)) for a in case.argv
    ]

    result = cli(*argv)  # the fixture already fails on a traceback or an internal error

    shown = f"agentctl {' '.join(argv)} -> {result.code}\n{result.out}\n{result.err}"
    assert result.code == case.code, shown
    # A command's error: `error: ...` and `hint: ...` on stderr. A plan's
    # per-agent error (the plan itself is shown): `NAME  error aws: ... — hint`.
    hints = [line for line in result.err.splitlines() if line.startswith("hint:")]
    hints += [
        line.partition(" — ")[2]
        for line in result.out.splitlines()
        if "  error " in f"  {line}" and " — " in line
    ]
    assert hints, shown
    assert any(all(word in hint for word in case.hint) for hint in hints), shown
    # The cron rule: whatever the result on stdout, one `error:` line on stderr.
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, shown
    for word in case.error:
        assert word in errors[0], shown
    assert "Traceback" not in result.out + result.err


def test_a_partial_kill_leaves_commands_an_admin_pastes_into_a_shell(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill could not reach AWS: its "still to do" is the exact `aws iam`
    commands (with the JSON). Run as they are, by the real AWS CLI, they kill
    the role: the next `agentctl kill` reads the locks back and has nothing to do."""
    aws_cli = shutil.which("aws")
    if aws_cli is None:
        pytest.skip("the AWS CLI is not installed on this machine")
    cli.write("alpha-agent")
    assert cli("apply", cli.contracts, "--yes").code == 0
    endpoint = cli.server.url
    edit_config(cli, lambda c: c["aws"].update(endpoint_url=f"http://127.0.0.1:{closed_port()}"))

    partial = cli("-q", "kill", "alpha-agent", "--yes", "-o", "json")

    assert partial.code == 1
    # -q and a redirected stdout still leave the reason on stderr
    assert partial.err.startswith("error: alpha-agent only partly killed"), partial.err
    (aws,) = [r for r in partial.json()["providers"] if r["provider"] == "aws"]
    assert not aws["ok"] and aws["remaining"].startswith("aws iam ")
    commands, _, rest = aws["remaining"].partition(" (or ")
    assert "agentctl kill alpha-agent" in rest
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(cli.config_path.parent),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": cli.operator.access_key_id,
        "AWS_SECRET_ACCESS_KEY": cli.operator.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    with cli.server.unenforced():  # an administrator's hands, not the operator's policy
        for command in commands.split("; "):
            done = subprocess.run(
                ["bash", "-c", command], env=environment, capture_output=True, text=True
            )
            assert done.returncode == 0, (command, done.stderr)

    # What the pasted commands did, read from IAM directly:
    role = cli.role("alpha-agent")
    assert role is not None and "agentctl-kill" in role["Policies"]
    assert normalise_policy(role["AssumeRolePolicyDocument"]) == normalise_policy(LOCKED_TRUST)
    with cli.server.unenforced():
        attached = cli.server.client("iam").list_attached_role_policies(
            RoleName="agentctl-alpha-agent"
        )["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AWSDenyAll"]

    edit_config(cli, lambda c: c["aws"].update(endpoint_url=endpoint))
    again = cli("kill", "alpha-agent", "--yes", "-o", "json")
    assert again.code == 0, again.err
    (aws,) = [r for r in again.json()["providers"] if r["provider"] == "aws"]
    assert aws["ok"] and len(aws["verified"]) == 3  # the three locks, read back


def test_a_failed_provider_never_reads_done(capsys: pytest.CaptureFixture[str]) -> None:
    """`✗ github: done` was possible when a provider failed without a detail."""
    report = LifecycleReport(
        agent="alpha-agent",
        action="kill",
        results=(
            ActionResult(provider="github", agent="alpha-agent", action="kill", ok=False),
            ActionResult(provider="aws", agent="alpha-agent", action="kill", ok=True),
        ),
    )
    show(report)
    out = capsys.readouterr().out
    assert "✗ github: failed (no detail given)" in out
    assert "✓ aws: done" in out
    assert "✗ github: done" not in out


@pytest.mark.parametrize(
    ("caller", "configured", "same"),
    [
        ("arn:aws:iam::123456789012:user/runtime", "arn:aws:iam::123456789012:user/runtime", True),
        # a session of the configured role (the runtime host's instance or task role)
        (
            "arn:aws:sts::123456789012:assumed-role/agent-runtime/i-0abc",
            "arn:aws:iam::123456789012:role/hosts/agent-runtime",
            True,
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/agent-runtime/i-0abc",
            "arn:aws:iam::999999999999:role/agent-runtime",
            False,
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/ops-admin/alice",
            "arn:aws:iam::123456789012:role/agent-runtime",
            False,
        ),
        ("arn:aws:iam::123456789012:user/ops", "arn:aws:iam::123456789012:user/runtime", False),
    ],
)
def test_who_counts_as_the_runtime_principal(caller: str, configured: str, same: bool) -> None:
    """The exec hint blames the caller only when it really is another principal."""
    assert same_principal(caller, configured) is same
