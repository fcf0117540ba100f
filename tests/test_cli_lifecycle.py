"""The CLI of plan, apply, kill, revive and rotate: exit codes, JSON shapes,
messages, and what changed in IAM — through ``agentctl.cli.app.run`` against
the moto server with IAM enforcement on (fixture ``cli``, tests/cli_helpers.py).

Exit codes: 0 ok; 1 failure or findings that need action; 2 usage error
(``plan --detailed-exitcode``: 2 means "there are changes").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cli_helpers import BOTH_WAYS
from contract_helpers import s3_read

from agentctl.model import AgentStatus

if TYPE_CHECKING:
    from cli_helpers import Cli  # the `cli` fixture is a conftest plugin

ACTION_KEYS = {
    "provider",
    "action",
    "ok",
    "already",
    "detail",
    "resource_id",
    "remaining",
    "verified",
    "undetermined",
}
LIFECYCLE_KEYS = {
    "agent",
    "action",
    "ok",
    "already",
    "providers",
    "state_recorded",
    "audit_recorded_in",
    "notes",
}


def arn(agent: str) -> str:
    return f"arn:aws:iam::123456789012:role/agentctl/agentctl-{agent}"


def provisioned(cli: Cli, *names: str) -> None:
    for name in names:
        cli.write(name)
    result = cli("apply", cli.contracts, "--yes")
    assert result.code == 0, result.err


def aws_entry(report: dict[str, Any]) -> dict[str, Any]:
    for entry in report["providers"]:
        assert set(entry) == ACTION_KEYS
    (entry,) = [e for e in report["providers"] if e["provider"] == "aws"]
    return entry


# -- plan ---------------------------------------------------------------------------------


def test_plan_json_and_detailed_exitcode(cli: Cli) -> None:
    cli.write("alpha-agent")
    cli.write("beta-agent", extra={"pagerduty": ["incident:read"]})

    result = cli("plan", cli.contracts, "--output", "json")

    assert result.code == 0, result.err
    plan = result.json()
    assert set(plan) == {"agents", "summary", "prune", "refreshed", "notes"}
    assert plan["summary"] == {"agents": 2, "changes": {"create": 2}, "orphans": 0, "errors": 0}
    assert (plan["prune"], plan["refreshed"], plan["notes"]) == (False, True, [])
    alpha, beta = plan["agents"]
    assert set(alpha) == {
        "agent",
        "disposition",
        "owner",
        "changes",
        "declared_not_enforced",
        "errors",
        "record",  # nothing to change in providers, but the state must record the agent
        "kill_undone",
    }
    assert alpha["record"] is False
    assert (alpha["agent"], alpha["disposition"], alpha["owner"]) == (
        "alpha-agent",
        "active",
        "platform-team@company.com",
    )
    assert [(c["provider"], c["kind"]) for c in alpha["changes"]] == [("aws", "create")]
    assert set(alpha["changes"][0]) == {"provider", "kind", "summary", "fields"}
    assert "agentctl-alpha-agent" in alpha["changes"][0]["summary"]
    # A system with no provider is reported, never silently dropped.
    assert beta["declared_not_enforced"] == ["pagerduty"]
    assert [(c["provider"], c["kind"]) for c in beta["changes"]] == [
        ("aws", "create"),
        ("pagerduty", "declared"),
    ]

    assert cli("plan", cli.contracts, "--detailed-exitcode").code == 2
    assert cli.roles() == []  # planning changes nothing

    provisioned(cli)
    result = cli("plan", cli.contracts, "--detailed-exitcode")
    assert result.code == 0
    assert "2 agents: no changes" in result.out
    assert cli("plan", cli.contracts, "-o", "json").json()["summary"]["changes"] == {}


def test_plan_shows_the_changed_fields_of_an_update(cli: Cli) -> None:
    provisioned(cli, "alpha-agent")
    cli.write("alpha-agent", owner="data-team@company.com")

    result = cli("plan", cli.contracts, "--detailed-exitcode")

    assert result.code == 2
    assert "alpha-agent" in result.out and "update" in result.out
    assert "data-team@company.com" in result.out
    changes = cli("plan", cli.contracts, "-o", "json").json()["agents"][0]["changes"]
    assert [c["kind"] for c in changes] == ["update"]
    assert {
        "field": "tags.agentctl:owner",
        "before": "platform-team@company.com",
        "after": "data-team@company.com",
    } in changes[0]["fields"]


@pytest.mark.parametrize("command", [["plan"], ["apply", "--yes"]])
def test_a_contract_error_blocks_everything(cli: Cli, command: list[str]) -> None:
    cli.write("alpha-agent")
    (cli.contracts / "broken.yaml").write_text(
        "agent:\n  name: broken-agent\n  owner: a@company.com\n  purpose: x\n  colour: red\n",
        "utf-8",
    )

    result = cli(*command, cli.contracts)

    assert result.code == 1
    assert "broken.yaml" in result.err
    assert "nothing was planned or changed" in result.err
    assert cli.roles() == []
    with cli.state() as state:
        assert state.list_agents() == [] and state.audit_events() == []


# -- apply --------------------------------------------------------------------------------


def test_apply_without_yes_and_without_a_terminal_is_a_usage_error(cli: Cli) -> None:
    cli.write("alpha-agent")

    result = cli("apply", cli.contracts)

    assert result.code == 2
    assert "--yes" in result.err
    assert cli.roles() == []


@BOTH_WAYS
def test_apply_json_shape_and_second_apply(cli: Cli) -> None:
    cli.write("alpha-agent")
    cli.write("beta-agent")

    result = cli("apply", cli.contracts, "--yes", "-o", "json")

    assert result.code == 0, result.err
    report = result.json()
    assert report["ok"] is True
    assert report["summary"] == {"agents": 2, "failed": 0, "changed": 2}
    for agent, name in zip(report["agents"], ("alpha-agent", "beta-agent"), strict=True):
        assert set(agent) == {"agent", "ok", "error", "skipped", "actions"}
        assert (agent["agent"], agent["ok"], agent["error"], agent["skipped"]) == (
            name,
            True,
            None,
            None,
        )
        (action,) = agent["actions"]
        assert action == {
            "provider": "aws",
            "action": "create",
            "ok": True,
            "already": False,
            "detail": f"created role agentctl-{name}",
            "resource_id": arn(name),
            "remaining": None,
            "verified": [],
            "undetermined": False,
        }
    assert cli.roles() == ["agentctl-alpha-agent", "agentctl-beta-agent"]

    again = cli("apply", cli.contracts, "--yes", "-o", "json")
    assert again.code == 0
    assert again.json() == {
        "ok": True,
        "agents": [],
        "summary": {"agents": 2, "failed": 0, "changed": 0},
    }
    text = cli("apply", cli.contracts, "--yes")
    assert text.code == 0 and "No changes." in text.out


def test_apply_exits_1_when_one_agent_fails_and_the_others_complete(cli: Cli) -> None:
    with cli.server.unenforced():
        cli.server.client("iam").create_role(
            RoleName="agentctl-gamma-agent",
            Path="/agentctl/",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            Tags=[{"Key": "team", "Value": "someone-else"}],
        )
    for name in ("alpha-agent", "beta-agent", "gamma-agent"):
        cli.write(name)

    result = cli("apply", cli.contracts, "--yes", "-o", "json")

    assert result.code == 1
    report = result.json()
    assert report["ok"] is False
    assert report["summary"] == {"agents": 3, "failed": 1, "changed": 3}
    by_name = {a["agent"]: a for a in report["agents"]}
    assert by_name["alpha-agent"]["ok"] and by_name["beta-agent"]["ok"]
    assert not by_name["gamma-agent"]["ok"]
    assert "not managed by agentctl" in by_name["gamma-agent"]["error"]
    for name in ("alpha-agent", "beta-agent"):
        role = cli.role(name)
        assert role is not None and role["Policies"] == ["agentctl-grant"]
    foreign = cli.role("gamma-agent")
    assert foreign is not None and foreign["Tags"] == {"team": "someone-else"}
    assert foreign["Policies"] == []

    # Text: the failure is in the table; the exit code still says so next time.
    text = cli("apply", cli.contracts, "--yes")
    assert text.code == 1
    assert "gamma-agent" in text.out and "failed" in text.out


# -- kill ---------------------------------------------------------------------------------


@BOTH_WAYS
def test_kill_json_shape_and_only_the_named_agent(cli: Cli) -> None:
    provisioned(cli, "alpha-agent", "alpha-agent-2", "beta-agent")

    result = cli("kill", "alpha-agent", "--yes", "--reason", "INC-7", "-o", "json")

    assert result.code == 0, result.err
    report = result.json()
    assert set(report) == LIFECYCLE_KEYS
    assert {k: report[k] for k in LIFECYCLE_KEYS - {"providers"}} == {
        "agent": "alpha-agent",
        "action": "kill",
        "ok": True,
        "already": False,
        "state_recorded": True,
        "audit_recorded_in": "state",
        "notes": [],
    }
    assert aws_entry(report) == {
        "provider": "aws",
        "action": "kill",
        "ok": True,
        "already": False,
        "detail": "killed role agentctl-alpha-agent, read back: AWSDenyAll attached, "
        "inline deny agentctl-kill present, trust policy locked",
        "resource_id": arn("alpha-agent"),
        "remaining": None,
        "verified": [
            "AWSDenyAll attached",
            "inline deny agentctl-kill present",
            "trust policy locked",
        ],
        "undetermined": False,
    }
    assert all(entry["ok"] for entry in report["providers"])

    killed = cli.role("alpha-agent")
    assert killed is not None and "agentctl-kill" in killed["Policies"]
    assert killed["Tags"]["agentctl:status"] == "killed"
    for other in ("alpha-agent-2", "beta-agent"):  # never a prefix match
        role = cli.role(other)
        assert role is not None and role["Policies"] == ["agentctl-grant"], other
        assert role["Tags"]["agentctl:status"] == "active"
    with cli.state() as state:
        record = state.get_agent("alpha-agent")
        assert record is not None and record.status == AgentStatus.KILLED
        assert record.status_reason == "INC-7"
        (event,) = state.audit_events(action="kill")
        assert (event.target, event.operator, event.result) == (
            "alpha-agent",
            "ops@company.com",
            "success",
        )

    again = cli("kill", "alpha-agent", "--yes")
    assert again.code == 0
    assert "alpha-agent was already killed." in again.out
    assert cli("kill", "alpha-agent", "--yes", "-o", "json").json()["already"] is True


@BOTH_WAYS
def test_kill_text_output(cli: Cli) -> None:
    provisioned(cli, "alpha-agent")
    result = cli("kill", "alpha-agent", "--yes", "--reason", "INC-8")
    assert result.code == 0
    assert "aws: killed role agentctl-alpha-agent" in result.out
    assert result.out.rstrip().endswith("alpha-agent killed.")


@pytest.mark.parametrize("name", ["nope", "alpha"])  # unknown, and a mere prefix
def test_kill_of_an_unknown_agent_is_a_clear_error(cli: Cli, name: str) -> None:
    provisioned(cli, "alpha-agent")

    result = cli("kill", name, "--yes")

    assert result.code == 1
    assert result.out == ""
    assert f"error: no agent named '{name}'" in result.err
    assert "agentctl list" in result.err  # the hint
    role = cli.role("alpha-agent")
    assert role is not None and role["Policies"] == ["agentctl-grant"]


@pytest.mark.parametrize("cli", ["subprocess"], indirect=True)
def test_a_broken_plugin_does_not_stop_a_kill(cli: Cli, tmp_path: Path) -> None:
    """A provider plug-in that cannot be loaded (half installed, its import
    failing) stops plan, apply and status, naming it. It must not stop the
    emergency brake: kill revokes the agent everywhere else, keeps the
    operator's settings (its section of agentctl.yaml is left unread, not the
    whole file), and reports that system's part as not done."""
    provisioned(cli, "alpha-agent", "beta-agent")
    plugins = tmp_path / "plugins"
    info = plugins / "pagerduty_agentctl-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pagerduty-agentctl\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[agentctl.providers]\npagerduty = pd_spec:SPEC\n")
    (plugins / "pd_spec.py").write_text("raise ImportError('half installed')\n")
    cli.extra_env["PYTHONPATH"] = os.pathsep.join([str(plugins), cli.env["PYTHONPATH"]])
    settings = cli.config_path.read_text("utf-8")
    cli.config_path.write_text(settings + "pagerduty:\n  service: P123\n", "utf-8")
    named = "provider 'pagerduty' (pd_spec:SPEC from pagerduty-agentctl) cannot be loaded"

    status = cli("status")
    assert status.code == 2 and named in status.err
    assert "reinstall pagerduty-agentctl, or uninstall it" in status.err

    result = cli("kill", "alpha-agent", "--yes", "--reason", "INC-9", "-o", "json")

    assert result.code == 1, result
    assert "default settings" not in result.err  # agentctl.yaml was read
    report = result.json()
    assert report["ok"] is False and aws_entry(report)["ok"] is True
    (pagerduty,) = [e for e in report["providers"] if e["provider"] == "pagerduty"]
    assert pagerduty["ok"] is False and named in pagerduty["detail"]
    assert pagerduty["remaining"] == (
        "run `agentctl kill alpha-agent` again once the pagerduty provider loads"
    )
    killed = cli.role("alpha-agent")
    assert killed is not None and "agentctl-kill" in killed["Policies"]
    other = cli.role("beta-agent")
    assert other is not None and other["Policies"] == ["agentctl-grant"]
    with cli.state() as state:  # the configured state, the verified operator
        record = state.get_agent("alpha-agent")
        assert record is not None and record.status == AgentStatus.KILL_INCOMPLETE
        (event,) = state.audit_events(action="kill")
        assert (event.target, event.operator) == ("alpha-agent", "ops@company.com")

    # The plug-in mended (here: uninstalled, its section gone): the next kill
    # finishes what the first left.
    del cli.extra_env["PYTHONPATH"]
    cli.config_path.write_text(settings, "utf-8")
    again = cli("kill", "alpha-agent", "--yes")
    assert again.code == 0, again
    with cli.state() as state:
        record = state.get_agent("alpha-agent")
        assert record is not None and record.status == AgentStatus.KILLED


# -- revive -------------------------------------------------------------------------------


def test_revive_requires_a_reason_and_undoes_the_kill(cli: Cli) -> None:
    provisioned(cli, "alpha-agent")
    assert cli("kill", "alpha-agent", "--yes").code == 0

    missing = cli("revive", "alpha-agent")
    assert missing.code == 2
    assert "--reason" in missing.err
    role = cli.role("alpha-agent")
    assert role is not None and "agentctl-kill" in role["Policies"]

    result = cli("revive", "alpha-agent", "--reason", "INC-7 resolved", "-o", "json")

    assert result.code == 0, result.err
    report = result.json()
    assert set(report) == LIFECYCLE_KEYS
    assert (report["agent"], report["action"], report["ok"]) == ("alpha-agent", "revive", True)
    assert aws_entry(report)["ok"]
    role = cli.role("alpha-agent")
    assert role is not None and role["Policies"] == ["agentctl-grant"]
    assert role["Tags"]["agentctl:status"] == "active"
    with cli.state() as state:
        record = state.get_agent("alpha-agent")
        assert record is not None and record.status == AgentStatus.ACTIVE
        (event,) = state.audit_events(action="revive")
        assert event.detail["reason"] == "INC-7 resolved"

    not_killed = cli("revive", "alpha-agent", "--reason", "again")
    assert not_killed.code == 1
    assert "not killed" in not_killed.err
    # and apply keeps it as it is now
    assert cli("apply", cli.contracts, "--yes").code == 0


# -- rotate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [[], ["alpha-agent", "--all"], ["alpha-agent", "--provider", "nope"]],
    ids=["nothing", "both", "unknown-provider"],
)
def test_rotate_usage_errors(cli: Cli, args: list[str]) -> None:
    provisioned(cli, "alpha-agent")
    result = cli("rotate", *args)
    assert result.code == 2
    assert result.err and result.out == ""


def lift_revocation(cli: Cli, agent: str) -> None:
    with cli.server.unenforced():
        cli.server.client("iam").delete_role_policy(
            RoleName=f"agentctl-{agent}", PolicyName="agentctl-revoke-older-sessions"
        )


def test_rotate_one_agent_or_all(cli: Cli) -> None:
    provisioned(cli, "alpha-agent", "beta-agent", "gamma-agent")
    assert cli("kill", "gamma-agent", "--yes").code == 0

    result = cli("rotate", "alpha-agent", "-o", "json")

    assert result.code == 0, result.err
    report = result.json()
    assert set(report) == {"ok", "agents"} and report["ok"] is True
    (alpha,) = report["agents"]
    assert set(alpha) == LIFECYCLE_KEYS
    assert (alpha["agent"], alpha["action"], alpha["ok"]) == ("alpha-agent", "rotate", True)
    assert [p["provider"] for p in alpha["providers"]] == ["aws"]
    assert "a new session was verified first" in alpha["providers"][0]["detail"]
    role = cli.role("alpha-agent")
    assert role is not None
    assert sorted(role["Policies"]) == ["agentctl-grant", "agentctl-revoke-older-sessions"]
    with cli.state() as state:
        rotated = {a.name: a.last_rotated_at for a in state.list_agents()}
    assert rotated["alpha-agent"] is not None and rotated["beta-agent"] is None

    # rotate proves the new session with a call IAM evaluates against the
    # role's policies. In AWS the new session is issued after the previous
    # cut-off (DateLessThan aws:TokenIssueTime) and passes; moto ignores that
    # condition and denies every session of a rotated role, so the previous
    # cut-off is lifted (as admin) before rotating the same agent again.
    lift_revocation(cli, "alpha-agent")
    everything = cli("rotate", "--all", "-o", "json")
    assert everything.code == 0, everything.err
    # every ACTIVE agent; the killed one is not rotated
    assert [a["agent"] for a in everything.json()["agents"]] == ["alpha-agent", "beta-agent"]

    lift_revocation(cli, "beta-agent")
    text = cli("rotate", "beta-agent")
    assert text.code == 0
    assert "beta-agent" in text.out and "rotated" in text.out

    unknown = cli("rotate", "nope")
    assert unknown.code == 1 and "no agent named 'nope'" in unknown.err
    killed = cli("rotate", "gamma-agent")
    assert killed.code == 1 and "only active agents are rotated" in killed.err


def test_plan_agrees_with_apply_after_kill_and_revive(cli: Cli) -> None:
    """A nightly `plan --detailed-exitcode` must be 0 right after an apply that
    said "No changes" — after a kill and revive too — or it alerts forever."""
    cli.write("alpha-agent")
    cli.write("beta-agent")
    assert cli("apply", cli.contracts, "--yes").code == 0
    quiet = cli("plan", cli.contracts, "--detailed-exitcode")
    assert quiet.code == 0, quiet.out
    assert cli("kill", "alpha-agent", "--yes", "--reason", "INC-1").code == 0
    assert cli("revive", "alpha-agent", "--reason", "INC-1 closed").code == 0
    applied = cli("apply", cli.contracts, "--yes")
    assert applied.code == 0, applied.err
    planned = cli("plan", cli.contracts, "--detailed-exitcode", "--output", "json")
    assert planned.code == 0, planned.out


def test_a_boundary_that_cuts_a_grant_is_drift_a_nightly_plan_reports(cli: Cli) -> None:
    # The test boundary allows s3:* only: the sqs grant can never take effect.
    cli.write(
        "queue-agent",
        aws=[
            {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::bucket-a/*"]},
            {"actions": ["sqs:SendMessage"], "resources": ["arn:aws:sqs:us-east-1:123456789012:q"]},
        ],
    )
    assert cli("apply", cli.contracts, "--yes").code == 0
    planned = cli("plan", cli.contracts, "--detailed-exitcode")
    assert planned.code == 2, planned.out + planned.err
    assert "sqs:SendMessage" in planned.out


@BOTH_WAYS
def test_quiet_prints_only_what_went_wrong(cli: Cli) -> None:
    cli.write("alpha-agent")
    applied = cli("-q", "apply", cli.contracts, "--yes")
    assert (applied.code, applied.out) == (0, "")
    assert cli("-q", "status").out == ""
    # data a script asked for still prints
    listed = cli("-q", "status", "--output", "json")
    assert [a["name"] for a in listed.json()["agents"]] == ["alpha-agent"]
    # and errors still reach stderr
    unknown = cli("-q", "kill", "no-such-agent", "--yes")
    assert unknown.code != 0 and unknown.out == "" and "no-such-agent" in unknown.err


@BOTH_WAYS
def test_kill_without_a_terminal_needs_no_yes_but_apply_does(cli: Cli) -> None:
    cli.write("alpha-agent")
    refused = cli("apply", cli.contracts)  # tests have no terminal
    assert refused.code == 2 and "--yes" in refused.err
    assert cli("apply", cli.contracts, "--yes").code == 0
    killed = cli("kill", "alpha-agent", "--reason", "automation")
    assert killed.code == 0, killed.err
    assert cli.state().get_agent("alpha-agent").status == AgentStatus.KILLED


def test_plan_names_every_kill_exception_on_every_run(cli: Cli) -> None:
    """A grant that mints credentials a kill cannot reach (role chaining) is
    accepted only as a named exception, and every plan says so, also when
    nothing else changes: the nightly plan keeps it in sight (issue 16)."""
    release = "arn:aws:iam::123456789012:role/release-deployer"
    cli.write(
        "deploy-agent",
        aws=[
            *s3_read("bucket-a"),
            {
                "sid": "DeployViaRelease",
                "actions": ["sts:AssumeRole"],
                "resources": [release],
                "exception": "deploys through the release role; 15-minute sessions",
            },
        ],
    )
    for before_and_after_apply in (False, True):
        if before_and_after_apply:
            provisioned(cli)
        result = cli("plan", cli.contracts)
        assert result.code == 0, result.err
        assert "exception DeployViaRelease: sts:AssumeRole on " + release in result.out
        assert "outlive `agentctl kill deploy-agent`" in result.out, result.out
        assert "15-minute sessions" in result.out
        (agent,) = cli("plan", cli.contracts, "-o", "json").json()["agents"]
        declared = [c for c in agent["changes"] if c["kind"] == "declared"]
        assert [c["provider"] for c in declared] == ["aws"], agent["changes"]
    # Declared, never a change apply would make (nor counted as one), and
    # never labelled "not enforced": the grant is enforced, only the kill
    # cannot reach what it mints.
    after = cli("plan", cli.contracts, "-o", "json").json()
    assert after["summary"]["changes"] == {}
    line = next(x for x in result.out.splitlines() if "DeployViaRelease" in x)
    assert "not enforced" not in line, line
    # Without its name the same grant is refused before anything is planned.
    cli.write(
        "deploy-agent",
        aws=[{"actions": ["sts:AssumeRole"], "resources": [release]}],
    )
    refused = cli("plan", cli.contracts)
    assert refused.code != 0 and "role chaining" in refused.out + refused.err
