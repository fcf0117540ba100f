"""plan / apply / kill / revive through the engine, against a real moto server
and a real SQLite state, as an operator holding only the shipped policy."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import (
    IAM_MUTATING,
    MotoServer,
    aws_settings,
    create_boundary,
    create_operator,
    record_calls,
)
from contract_helpers import TODAY, frozen_now, s3_read, write_contract

from agentctl.audit import verify_chain
from agentctl.config import Config
from agentctl.contract import load_contracts
from agentctl.engine import Engine
from agentctl.model import AgentStatus
from agentctl.plan import Plan
from agentctl.providers import aws, registry
from agentctl.render import json_data
from agentctl.runtime import build_engine


@dataclass
class World:
    server: MotoServer
    contracts: Path
    make_engine: Callable[..., Engine]
    engine: Engine

    def plan(self, **kwargs: Any) -> Plan:
        report = load_contracts([self.contracts], today=TODAY)
        assert not [p for p in report.problems if p.code != "expired"], report.problems
        return self.engine.plan(report.contracts, report.expired, **kwargs)

    def apply(self, **kwargs: Any) -> Any:
        refresh = kwargs.pop("refresh", False)
        prune = kwargs.pop("prune", False)
        return self.engine.apply(self.plan(refresh=refresh, prune=prune), **kwargs)

    def iam(self) -> Any:
        return self.server.client("iam")


@pytest.fixture
def world(aws: MotoServer, tmp_path: Path) -> Iterator[World]:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    settings = aws_settings(
        aws, runtime_principal=operator.runtime_arn, permissions_boundary=boundary
    )
    config = Config(
        provider_settings={"aws": settings},
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        journal_path=str(tmp_path / "journal.jsonl"),
    )

    def make_engine(state_url: str | None = None, providers: tuple[str, ...] = ("aws",)) -> Engine:
        return build_engine(
            config,
            state_url=state_url,
            operator="ops@company.com",
            clock=frozen_now,
            client_options=operator.credentials,
            provider_names=providers,
        )

    aws.enforce_iam(0)
    contracts = tmp_path / "contracts"
    for name in ("alpha-agent", "beta-agent", "gamma-agent"):
        write_contract(contracts, name, aws=s3_read("bucket-a"))
    yield World(aws, contracts, make_engine, make_engine())


def role(world: World, agent: str) -> dict[str, Any] | None:
    with world.server.unenforced():
        try:
            found: dict[str, Any] = world.iam().get_role(RoleName=f"agentctl-{agent}")["Role"]
        except world.iam().exceptions.NoSuchEntityException:
            return None
        found["Tags"] = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
        found["Policies"] = world.iam().list_role_policies(RoleName=f"agentctl-{agent}")[
            "PolicyNames"
        ]
        return found


def test_apply_provisions_each_agent_and_records_it(world: World) -> None:
    report = world.apply()
    assert report.ok, json_data(report)
    for agent in ("alpha-agent", "beta-agent", "gamma-agent"):
        found = role(world, agent)
        assert found is not None
        assert found["Tags"]["agentctl:agent"] == agent
        assert found["Tags"]["managed-by"] == "agentctl"
        assert found["Policies"] == ["agentctl-grant"]
        record = world.engine.state.get_agent(agent)
        assert record is not None and record.status == AgentStatus.ACTIVE
        assert record.document is not None and record.document["agent"]["name"] == agent
    events = world.engine.state.audit_events(action="apply.create")
    assert sorted(e.actor for e in events) == ["alpha-agent", "beta-agent", "gamma-agent"]
    assert all(e.operator == "ops@company.com" and e.result == "success" for e in events)
    assert verify_chain(world.engine.state.audit_events()).ok


def test_second_apply_makes_no_calls_and_refreshing_plan_no_writes(world: World) -> None:
    assert world.apply().ok
    calls = record_calls(world.engine.providers["aws"].client("iam"), "iam")  # type: ignore[attr-defined]
    audit_before = len(world.engine.state.audit_events())

    second = world.apply()

    assert second.ok and all(not a.results for a in second.agents)
    assert calls.names == []  # unchanged contracts: not even a read
    refreshed = world.plan(refresh=True)
    assert not refreshed.has_changes
    assert not IAM_MUTATING & set(calls.names)
    assert len(world.engine.state.audit_events()) == audit_before


def test_changing_one_contract_updates_only_that_role(world: World) -> None:
    assert world.apply().ok
    write_contract(world.contracts, "beta-agent", aws=s3_read("bucket-b"))
    calls = record_calls(world.engine.providers["aws"].client("iam"), "iam")  # type: ignore[attr-defined]

    plan = world.plan()
    assert [(a.agent, [c.kind.value for c in a.mutating]) for a in plan.agents if a.mutating] == [
        ("beta-agent", ["update"])
    ]
    assert world.engine.apply(plan).ok

    touched = {params.get("RoleName") for name, params in calls.calls if name in IAM_MUTATING}
    assert touched == {"agentctl-beta-agent"}
    with world.server.unenforced():
        policy = world.iam().get_role_policy(
            RoleName="agentctl-beta-agent", PolicyName="agentctl-grant"
        )
    assert "bucket-b" in json.dumps(policy["PolicyDocument"])


def test_expired_contract_is_disabled_like_a_kill(world: World) -> None:
    assert world.apply().ok
    write_contract(world.contracts, "gamma-agent", aws=s3_read("bucket-a"), expiry=TODAY)
    report = world.apply()
    assert report.ok, json_data(report)
    found = role(world, "gamma-agent")
    assert found is not None and "agentctl-kill" in found["Policies"]
    assert found["Tags"]["agentctl:status"] == "expired"
    record = world.engine.state.get_agent("gamma-agent")
    assert record is not None and record.status == AgentStatus.EXPIRED
    assert not world.apply().agents[0].results  # idempotent


def test_orphans_are_reported_and_removed_only_with_prune(world: World) -> None:
    assert world.apply().ok
    (world.contracts / "gamma-agent.yaml").unlink()

    plan = world.plan(refresh=True)
    orphan = next(a for a in plan.agents if a.agent == "gamma-agent")
    assert orphan.disposition == "orphan" and orphan.mutating
    assert not plan.applicable(orphan)

    assert world.engine.apply(plan).ok
    assert role(world, "gamma-agent") is not None

    assert world.apply(prune=True).ok
    assert role(world, "gamma-agent") is None
    assert role(world, "alpha-agent") is not None and role(world, "beta-agent") is not None
    record = world.engine.state.get_agent("gamma-agent")
    assert record is not None and record.status == AgentStatus.REMOVED


def test_foreign_role_with_the_same_name_is_left_alone(world: World) -> None:
    with world.server.unenforced():
        world.iam().create_role(
            RoleName="agentctl-delta-agent",
            Path="/agentctl/",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            Tags=[{"Key": "team", "Value": "someone-else"}],
        )
    write_contract(world.contracts, "delta-agent", aws=s3_read("bucket-a"))

    report = world.apply()

    by_agent = {a.agent: a for a in report.agents}
    assert not report.ok
    assert not by_agent["delta-agent"].ok
    assert "not managed by agentctl" in (by_agent["delta-agent"].error or "")
    assert all(by_agent[a].ok for a in ("alpha-agent", "beta-agent", "gamma-agent"))
    found = role(world, "delta-agent")
    assert found is not None and found["Tags"] == {"team": "someone-else"}
    assert found["Policies"] == []


def test_apply_never_revives_a_killed_agent(world: World) -> None:
    assert world.apply().ok
    kill = world.engine.kill("beta-agent", "INC-1")
    assert kill.ok and not kill.already

    for refresh in (False, True):
        assert world.apply(refresh=refresh).ok
        found = role(world, "beta-agent")
        assert found is not None and "agentctl-kill" in found["Policies"]
    record = world.engine.state.get_agent("beta-agent")
    assert record is not None and record.status == AgentStatus.KILLED

    again = world.engine.kill("beta-agent", "INC-1")
    assert again.ok and again.already

    revived = world.engine.revive("beta-agent", "INC-1 resolved")
    assert revived.ok
    found = role(world, "beta-agent")
    assert found is not None and "agentctl-kill" not in found["Policies"]
    actions = [e.action for e in world.engine.state.audit_events(agent="beta-agent")]
    assert actions.count("kill") == 2 and "revive" in actions


def test_kill_touches_only_the_named_agent(world: World) -> None:
    write_contract(world.contracts, "alpha-agent-2", aws=s3_read("bucket-a"))
    assert world.apply().ok
    world.engine.kill("alpha-agent", "INC-2")
    for other in ("alpha-agent-2", "beta-agent", "gamma-agent"):
        found = role(world, other)
        assert found is not None and found["Policies"] == ["agentctl-grant"], other
        assert found["Tags"]["agentctl:status"] == "active"


def test_kill_revokes_everywhere_it_can_when_a_provider_cannot_be_loaded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plug-in whose factory cannot be imported (half installed, its SDK
    # missing): the emergency brake still revokes the agent in AWS, and says
    # which system it could not reach and why.
    assert world.apply().ok
    broken = dataclasses.replace(aws.SPEC, name="pagerduty", provider="no_such_module:make")
    installed = {"aws": aws.SPEC, "pagerduty": broken}
    monkeypatch.setattr(registry, "provider_specs", lambda: installed)
    engine = world.make_engine(providers=("aws", "pagerduty"))

    report = engine.kill("alpha-agent", "INC-9")

    found = role(world, "alpha-agent")
    assert found is not None and "agentctl-kill" in found["Policies"]
    assert found["Tags"]["agentctl:status"] == "killed"
    by_provider = {r.provider: r for r in report.results}
    assert by_provider["aws"].ok
    failed = by_provider["pagerduty"]
    assert not failed.ok and not report.ok
    assert "'no_such_module:make' cannot be loaded (ModuleNotFoundError)" in failed.detail
    assert failed.remaining == (
        "run `agentctl kill alpha-agent` again once the pagerduty provider loads"
    )
    # Recorded as a kill not yet complete: the next kill finishes it.
    record = engine.state.get_agent("alpha-agent")
    assert record is not None and record.status == AgentStatus.KILL_INCOMPLETE


def test_kill_with_no_contracts_and_an_empty_state(world: World, tmp_path: Path) -> None:
    assert world.apply().ok
    shutil.rmtree(world.contracts)
    fresh = world.make_engine(state_url=f"sqlite:///{tmp_path / 'empty.db'}")

    report = fresh.kill("alpha-agent", "state lost during incident")

    assert report.ok
    found = role(world, "alpha-agent")
    assert found is not None and "agentctl-kill" in found["Policies"]
    record = fresh.state.get_agent("alpha-agent")
    assert record is not None and record.status == AgentStatus.KILLED
    assert [e.action for e in fresh.state.audit_events()] == ["kill"]


def test_kill_of_an_unknown_agent_is_a_clear_error(world: World) -> None:
    from agentctl.errors import NotFound

    assert world.apply().ok
    with pytest.raises(NotFound, match="no agent named 'alpha'"):
        world.engine.kill("alpha", "typo")


def test_kill_with_the_state_store_unreachable_uses_the_journal(
    world: World, tmp_path: Path
) -> None:
    assert world.apply().ok
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where a directory should be")
    offline = world.make_engine(state_url=f"sqlite:///{blocked / 'state.db'}")

    report = offline.kill("gamma-agent", "state down")

    assert report.ok and report.audit_recorded_in == "journal" and not report.state_recorded
    found = role(world, "gamma-agent")
    assert found is not None and "agentctl-kill" in found["Policies"]
    # The next apply against the real state imports the journal and keeps the kill.
    assert world.apply().ok
    kills = world.engine.state.audit_events(action="kill")
    assert [e.target for e in kills] == ["gamma-agent"]
    assert verify_chain(world.engine.state.audit_events()).ok


def test_status_refresh_reports_out_of_band_drift(world: World) -> None:
    assert world.apply().ok
    assert {v.status for v in world.engine.status(refresh=True)} == {"active"}
    with world.server.unenforced():
        world.iam().delete_role_policy(RoleName="agentctl-beta-agent", PolicyName="agentctl-grant")

    views = {v.name: v for v in world.engine.status(refresh=True)}

    assert views["beta-agent"].status == "drifted" and views["beta-agent"].drift
    assert views["alpha-agent"].status == "active" and not views["alpha-agent"].drift
    assert world.engine.status("beta-agent")[0].status == "active"  # without refresh: as recorded
