"""AWS throttling and 5xx, and a state store that is down during a kill, end to end.

The real CLI runs as a subprocess against moto through a :class:`FaultProxy`
that answers chosen requests with what AWS sends when it is overloaded:
``400 Throttling``, ``503 ServiceUnavailable``, or a bare ``500`` page.
- Transient faults are retried by botocore's standard retry mode (with
  exponential backoff and jitter, ``aws.max_attempts`` attempts): apply
  succeeds as if nothing happened.
- Persistent faults fail only the agents they hit; apply reports each one
  (what failed, what remains to do), exits 1, finishes every other agent, and
  leaves nothing half-done unreported; the next apply converges.
- With the state store unreachable, ``agentctl kill`` still revokes in AWS and
  writes its audit event to the local journal; the next apply imports it.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import MotoServer, Operator, create_boundary, create_operator
from cli_helpers import (
    OPERATOR_NAME,
    Cli,
    CliResult,
    FaultProxy,
    Reply,
    Request,
    converged,
    create_auditor,
    fault_proxy,
    make_cli,
    role_problems,
    roles_by_agent,
)
from contract_helpers import s3_read, write_contract

from agentctl.audit import JOURNAL_IMPORT_ACTION, verify_chain
from agentctl.model import AgentStatus
from agentctl.providers.aws.policies import KILL_POLICY
from agentctl.state import open_state


@dataclass
class World:
    server: MotoServer
    proxy: FaultProxy
    cli: Cli
    contracts: Path
    iam: Any
    names: list[str]

    def apply(self, *extra: str) -> CliResult:
        return self.cli.run("apply", str(self.contracts), "--yes", "--output", "json", *extra)


def make_world(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy, count: int, **cli_options: Any
) -> World:
    operator: Operator = create_operator(aws)
    boundary = create_boundary(aws)
    auditor = create_auditor(aws, tmp_path)
    aws.enforce_iam(0)
    cli = make_cli(tmp_path / "cli", operator, proxy.url, boundary=boundary, **cli_options)
    contracts = tmp_path / "contracts"
    names = [f"flt-agent-{i:02d}" for i in range(count)]
    for name in names:
        write_contract(contracts, name, aws=s3_read("data"))
    return World(aws, proxy, cli, contracts, aws.client("iam", auditor.credentials), names)


@pytest.fixture
def proxy(aws: MotoServer) -> Iterator[FaultProxy]:
    with fault_proxy(aws) as running:
        yield running


def request_key(request: Request) -> tuple[str, ...]:
    """What identifies one API call across its retries."""
    return (request.action, request.role_name or "", request.params.get("PolicyName", ""))


def assert_converged(world: World, **kwargs: Any) -> None:
    problems = converged(world.cli, world.iam, world.contracts, "flt-", **kwargs)
    assert not problems, "\n".join(problems[:20])


# -- transient: retried with backoff ------------------------------------------------------


@pytest.mark.slow
def test_throttling_and_5xx_are_retried_with_backoff(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    world = make_world(aws, tmp_path, proxy, 12, max_attempts=4)
    faults = [
        Reply.throttling(),
        Reply.service_unavailable(),
        Reply.internal_error_html(),
        Reply.werkzeug_500(),  # moto's own HTML 500: once not retried (issue 21)
    ]
    answered: Counter[tuple[str, ...]] = Counter()

    def flaky(request: Request) -> Reply | None:
        # Every call fails at first: a quarter twice with Throttling, a quarter
        # once with 503, a quarter once with a bare 500 page, a quarter once
        # with werkzeug's 500 page; then it goes through.
        key = request_key(request)
        kind = sum(map(ord, "".join(key))) % 4
        if answered[key] < (2 if kind == 0 else 1):
            answered[key] += 1
            return faults[kind]
        return None

    proxy.rule = flaky
    result = world.apply()
    proxy.rule = None

    assert result.code == 0, str(result)
    assert all(a["ok"] for a in result.json()["agents"])
    injected = proxy.injected()
    assert {reply.status for _, reply in injected} == {400, 500, 503}
    assert {reply.body for _, reply in injected} >= {Reply.werkzeug_500().body}
    # Each failed call was retried until it went through, after a backoff: the
    # gap between a fault and its retry is botocore's jittered exponential
    # backoff, not an immediate retry.
    retried = {}
    for request in proxy.since():
        key = request_key(request)
        if key in answered:
            retried.setdefault(key, []).append(request.at)
    assert set(retried) == set(answered)
    gaps = []
    for key, times in retried.items():
        assert len(times) == answered[key] + 1, key  # failures, then one success
        gaps.extend(later - earlier for earlier, later in itertools.pairwise(times))
    assert max(gaps) > 0.05, gaps
    assert_converged(world)


# -- persistent: reported per agent, the rest done, the next apply converges ---------------


def assert_report_accounts_for_the_cloud(world: World, report: dict[str, Any]) -> None:
    """Every agent is either done (ok, its role exactly as its contract says) or
    reported failed with an error and, per failed action, what remains to do;
    a role in the cloud of a failed agent is never left unmentioned."""
    from cli_helpers import load

    active, _ = load(world.contracts)
    by_agent = {a["agent"]: a for a in report["agents"]}
    assert sorted(by_agent) == world.names
    roles = roles_by_agent(world.iam, "flt-")
    for name, agent in by_agent.items():
        if agent["ok"]:
            assert name in roles, f"{name} reported ok but has no role"
            assert not role_problems(roles[name], active[name], world.cli, "active")
            continue
        assert agent["error"], agent
        failed = [a for a in agent["actions"] if not a["ok"]]
        assert failed, f"{name} failed without saying which action: {agent}"
        for action in failed:
            assert action["remaining"], f"{name}: a failed action without what remains: {action}"


@pytest.mark.slow
def test_persistent_faults_fail_only_the_agents_they_hit(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    """Two agents always throttled, one whose grant write always gets 503 (its
    role is created, then the create cannot finish: half-done, and reported)."""
    world = make_world(aws, tmp_path, proxy, 12, max_attempts=2)
    throttled = {"agentctl-flt-agent-03", "agentctl-flt-agent-08"}
    half_done = "agentctl-flt-agent-05"

    def broken(request: Request) -> Reply | None:
        if request.role_name in throttled:
            return Reply.throttling()
        if request.role_name == half_done and request.action == "PutRolePolicy":
            return Reply.service_unavailable()
        return None

    proxy.rule = broken
    result = world.apply()
    # The text rendering too: each failed agent with its error, no traceback.
    text = world.cli.run("apply", str(world.contracts), "--yes")
    proxy.rule = None

    assert result.code == 1, str(result)
    assert text.code == 1, str(text)
    assert "Traceback" not in text.out + text.err
    assert "3 failed, 12 in total" in text.out, text.out
    for name in ("flt-agent-03", "flt-agent-05", "flt-agent-08"):
        # Off a terminal every line about an agent starts with its name: its
        # plan's lines first, then its one plain row of the apply table.
        lines = [line for line in text.out.splitlines() if line.startswith(f"{name} ")]
        assert "+ create" in lines[0], lines
        row = lines[-1]
        assert "failed" in row and "aws create FAILED" in row, row
    report = result.json()
    failed = {a["agent"]: a for a in report["agents"] if not a["ok"]}
    assert sorted(failed) == ["flt-agent-03", "flt-agent-05", "flt-agent-08"]
    assert report["summary"]["failed"] == 3
    for name in ("flt-agent-03", "flt-agent-08"):
        assert "AWS throttled CreateRole" in failed[name]["error"], failed[name]
        assert "(2 attempts)" in failed[name]["error"]
    assert "ServiceUnavailable" in failed["flt-agent-05"]["error"], failed["flt-agent-05"]
    assert_report_accounts_for_the_cloud(world, report)
    # The half-done agent is in the cloud without its grant, and the report
    # says so; nothing in the state claims it is done.
    roles = roles_by_agent(world.iam, "flt-")
    assert "flt-agent-05" in roles and not roles["flt-agent-05"]["Policies"]
    assert "re-run" in failed["flt-agent-05"]["actions"][0]["remaining"]
    with world.cli.state() as state:
        assert state.get_resource("flt-agent-05", "aws") is None
        failures = [e for e in state.audit_events() if e.result == "failure"]
        # One failure event per failed agent and apply (two applies ran).
        assert sorted(e.actor for e in failures) == sorted([*failed, *failed])

    healed = world.apply()
    assert healed.code == 0, str(healed)
    assert_converged(world)
    assert world.apply().json()["summary"]["changed"] == 0


@pytest.mark.slow
def test_an_outage_mid_apply_fails_the_rest_and_keeps_what_was_done(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    """AWS starts answering 503 to everything after the 11th write (between the
    CreateRole and the PutRolePolicy of the 6th agent, one agent at a time)."""
    world = make_world(aws, tmp_path, proxy, 10, max_attempts=2)
    writes = 0

    def outage(request: Request) -> Reply | None:
        nonlocal writes
        if writes >= 11:
            return Reply.service_unavailable()
        if request.mutating:
            writes += 1
        return None

    proxy.rule = outage
    result = world.cli.run("apply", str(world.contracts), "--yes", "--output", "json", "-p", "1")
    proxy.rule = None

    assert result.code == 1, str(result)
    report = result.json()
    ok = [a["agent"] for a in report["agents"] if a["ok"]]
    assert ok == world.names[:5]
    for agent in report["agents"][5:]:
        assert not agent["ok"] and "ServiceUnavailable" in agent["error"], agent
    assert_report_accounts_for_the_cloud(world, report)
    roles = roles_by_agent(world.iam, "flt-")
    assert sorted(roles) == world.names[:6]  # the 6th created, not finished

    assert world.apply().code == 0
    assert_converged(world)


# -- the state store down during a kill -------------------------------------------------------


def test_kill_with_the_state_store_down_revokes_and_journals_then_apply_imports(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    world = make_world(aws, tmp_path, proxy, 3)
    assert world.apply().code == 0
    victim = world.names[1]
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the state's directory should be", "utf-8")
    down = f"sqlite:///{blocked / 'state.db'}"

    world.cli.extra_env["AGENTCTL_STATE"] = down  # the state store is unreachable
    kill = world.cli.run("kill", victim, "--reason", "INC-9 db down", "--yes", "--output", "json")
    del world.cli.extra_env["AGENTCTL_STATE"]

    # AWS is revoked and read back; GitHub is not configured on this machine
    # and, with the state down, nothing here says whether the agent has an
    # App: an honest ✗ (exit 1), never a ✓.
    assert kill.code == 1, str(kill)
    report = kill.json()
    assert not report["ok"] and report["audit_recorded_in"] == "journal"
    by_provider = {p["provider"]: p for p in report["providers"]}
    assert by_provider["aws"]["ok"] and by_provider["aws"]["verified"]
    assert not by_provider["github"]["ok"] and by_provider["github"]["undetermined"]
    assert "github.organization" in by_provider["github"]["remaining"]
    assert not report["state_recorded"]
    assert any("unreachable" in note for note in report["notes"])
    roles = roles_by_agent(world.iam, "flt-")
    assert roles[victim]["Tags"]["agentctl:status"] == "killed"
    assert KILL_POLICY in roles[victim]["Policies"]
    journaled = [json.loads(line) for line in world.cli.journal_path.read_text().splitlines()]
    assert [(e["action"], e["target"]) for e in journaled] == [("kill", victim)]

    # The next apply (nothing to change) imports the journal into the chain,
    # records the kill in the state, and never revives the agent.
    again = world.apply()
    assert again.code == 0, str(again)
    assert world.cli.journal_path.read_text() == ""
    with world.cli.state() as state:
        chain, head = state.audit_chain()
        record = state.get_agent(victim)
    assert verify_chain(chain, head).ok
    kills = [e for e in chain if e.action == "kill"]
    assert [(e.id, e.target, e.detail["reason"]) for e in kills] == [
        (journaled[0]["id"], victim, "INC-9 db down")
    ]
    (imported,) = [e for e in chain if e.action == JOURNAL_IMPORT_ACTION]
    # the import is recorded like any event: the verified person and the
    # principal that proved it (the apply's IAM user)
    apply_events = [e for e in chain if e.action.startswith("apply")]
    assert apply_events, [e.action for e in chain]
    assert imported.operator == apply_events[-1].operator
    assert imported.detail["principal"] == apply_events[-1].detail["principal"]
    assert ":user/" in imported.detail["principal"] and imported.detail["identified_by"]
    assert record is not None and record.status == AgentStatus.KILL_INCOMPLETE, record
    for extra in ((), ("--refresh",)):
        assert world.apply(*extra).code == 0
        assert roles_by_agent(world.iam, victim)[victim]["Tags"]["agentctl:status"] == "killed"
    # With the state back, the state knows the agent and records no GitHub
    # App: kill again finishes the kill.
    finish = world.cli.run("kill", victim, "--reason", "INC-9 finish", "--yes", "--output", "json")
    assert finish.code == 0, str(finish)
    with world.cli.state() as state:
        record = state.get_agent(victim)
    assert record is not None and record.status == AgentStatus.KILLED, record
    assert_converged(world, killed=[victim])


def test_kill_holds_when_the_inline_deny_hits_the_size_quota(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    """A role's inline policies share 10,240 characters (moto does not enforce
    it; https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html,
    "Role policy size"): AWS answers PutRolePolicy with LimitExceeded. The
    managed AWSDenyAll has no such quota and the trust lock is independent,
    so the kill still holds, read back, and says what it could not do."""
    world = make_world(aws, tmp_path, proxy, 2)
    assert world.apply().code == 0
    victim, other = world.names
    quota = Reply(
        409,
        _limit_exceeded("Maximum policy size of 10240 bytes exceeded for role"),
    )
    proxy.rule = lambda r: quota if r.action == "PutRolePolicy" else None
    kill = world.cli.run("kill", victim, "--reason", "INC-10", "--yes", "--output", "json")
    proxy.rule = None
    assert kill.code == 0, str(kill)
    (aws_result,) = [p for p in kill.json()["providers"] if p["provider"] == "aws"]
    assert aws_result["verified"] == ["AWSDenyAll attached", "trust policy locked"]
    assert "LimitExceeded" in aws_result["detail"]
    roles = roles_by_agent(world.iam, "flt-")
    assert KILL_POLICY not in roles[victim]["Policies"]
    assert roles[victim]["Tags"]["agentctl:status"] == "killed"
    assert roles[other]["Tags"]["agentctl:status"] == "active"
    attached = world.iam.list_attached_role_policies(RoleName=f"agentctl-{victim}")
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [
        "arn:aws:iam::aws:policy/AWSDenyAll"
    ]


def test_kill_with_aws_down_is_incomplete_and_the_next_kill_finishes_it(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    world = make_world(aws, tmp_path, proxy, 2, max_attempts=2)
    assert world.apply().code == 0
    victim = world.names[0]
    proxy.rule = lambda r: Reply.service_unavailable()
    kill = world.cli.run("kill", victim, "--reason", "INC-11", "--yes")
    proxy.rule = None
    assert kill.code == 1, str(kill)
    assert "✗ aws" in kill.out and "aws iam attach-role-policy --role-name" in kill.out
    assert "kill-incomplete" in kill.out
    status = world.cli.run("status", victim, "--output", "json")
    assert status.json()["agents"][0]["status"] == "kill-incomplete"

    again = world.cli.run("kill", victim, "--reason", "INC-11", "--yes", "--output", "json")
    assert again.code == 0, str(again)
    status = world.cli.run("status", victim, "--refresh", "--output", "json")
    view = status.json()["agents"][0]
    assert (view["status"], view["drift"]) == ("killed", [])
    # STS was down too during the first kill: nobody could be verified, and
    # the trail says so; the second kill names the verified operator.
    first, second = kill_events(world)
    assert (first.operator, first.detail["principal"]) == (
        "unverified (sts unreachable: ServiceUnavailable)",
        "unverified",
    )
    assert (second.operator, second.detail["principal"]) == (OPERATOR_NAME, world.cli.operator.arn)


def kill_events(world: World) -> list[Any]:
    with open_state(world.cli.state_url) as state:
        return state.audit_events(action="kill")


def sts_down(request: Request) -> Reply | None:
    """Only the identity service is down; IAM answers as usual."""
    return Reply.service_unavailable() if request.action == "GetCallerIdentity" else None


def test_kill_goes_on_when_only_sts_is_down_and_says_nobody_was_verified(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    """Kill is the emergency brake: an unreachable STS does not block it."""
    world = make_world(aws, tmp_path, proxy, 2, max_attempts=2)
    assert world.apply().code == 0
    victim = world.names[0]
    proxy.rule = sts_down
    kill = world.cli.run("kill", victim, "--reason", "INC-12", "--yes")
    proxy.rule = None
    assert kill.code == 0, str(kill)
    assert "operator unverified (sts unreachable: ServiceUnavailable)" in kill.out + kill.err
    assert any(r.action == "GetCallerIdentity" for r, _ in proxy.injected())
    with aws.unenforced():
        attached = world.iam.list_attached_role_policies(RoleName=f"agentctl-{victim}")
    assert "arn:aws:iam::aws:policy/AWSDenyAll" in {
        p["PolicyArn"] for p in attached["AttachedPolicies"]
    }
    (event,) = kill_events(world)
    assert (event.operator, event.result, event.trigger) == (
        "unverified (sts unreachable: ServiceUnavailable)",
        "success",
        "operator/unverified (sts unreachable: ServiceUnavailable)",
    )
    assert event.detail["identified_by"].startswith("not verified")


def test_with_sts_down_only_kill_goes_on(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy
) -> None:
    """revive, apply and approve are not the brake: they refuse, nothing changes.
    Credentials AWS rejects, and a process inside an agent run, get no
    exception for kill either."""
    world = make_world(aws, tmp_path, proxy, 2, max_attempts=2)
    assert world.apply().code == 0
    victim, other = world.names
    assert world.cli.run("kill", victim, "--reason", "INC-13", "--yes").code == 0
    with open_state(world.cli.state_url) as state:
        approval = state.create_approval(
            agent=other,
            requester="someone@company.com",
            command="true",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        before = len(state.audit_chain())

    # An apply with work to do (one new agent): with nothing to write, apply
    # verifies nobody, like plan, and would have nothing to refuse.
    grown = tmp_path / "contracts-grown"
    shutil.copytree(world.contracts, grown)
    write_contract(grown, "flt-agent-new", aws=s3_read("data"))

    proxy.rule = sts_down
    refused = [
        world.cli.run("revive", victim, "--reason", "back"),
        world.cli.run("apply", str(grown), "--yes"),
        world.cli.run("approve", approval.id),
    ]
    # Inside `agentctl exec` (AGENTCTL_AGENT set) an unreachable STS is no excuse.
    world.cli.extra_env["AGENTCTL_AGENT"] = victim
    refused.append(world.cli.run("kill", other, "--reason", "x", "--yes"))
    del world.cli.extra_env["AGENTCTL_AGENT"]
    proxy.rule = None
    for result in refused:
        assert result.code == 1, str(result)
        assert "cannot verify who you are: STS is unavailable (ServiceUnavailable)" in result.err
    # Keys AWS rejects are not "unreachable": kill refuses them too.
    world.cli.extra_env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-of-this-key-000000000000"
    rejected = world.cli.run("kill", other, "--reason", "x", "--yes")
    del world.cli.extra_env["AWS_SECRET_ACCESS_KEY"]
    assert rejected.code == 1 and "AWS rejected the credentials" in rejected.err

    with open_state(world.cli.state_url) as state:
        assert len(state.audit_chain()) == before
        statuses = {a.name: a.status.value for a in state.list_agents()}
        record = state.get_approval(approval.id)
    assert statuses == {victim: "killed", other: "active"}
    assert record is not None and record.status == "pending"


def _limit_exceeded(message: str) -> bytes:
    return (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>Sender</Type><Code>LimitExceeded</Code><Message>{message}</Message>"
        "</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    ).encode()
