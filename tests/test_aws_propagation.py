"""IAM eventual consistency: right after agentctl creates, changes or revives a
role, AWS may refuse AssumeRole for a few seconds
(https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
exec retries that refusal — AccessDenied only, only within aws.propagation_seconds
of a change agentctl recorded in its state — and nothing else.

A proxy in front of moto answers the first AssumeRole requests with AWS's
AccessDenied, as a role still propagating does; everything else is real.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import MotoServer, aws_settings, create_boundary, create_operator
from cli_helpers import FaultProxy, Reply, Request, _error_xml, fault_proxy
from contract_helpers import NOW, frozen_now, s3_read, write_contract

from agentctl.config import Config
from agentctl.contract import load_contracts
from agentctl.engine import Engine
from agentctl.errors import GateRefused
from agentctl.execution import RunRequest, Runs
from agentctl.runtime import build_engine

DENIED = Reply(
    403,
    _error_xml(
        "Sender",
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/agentctl-operator-runtime is not authorized to "
        "perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/agentctl/agentctl-prop-agent",
    ),
)


def refuse_first(count: int, code: Reply = DENIED) -> Callable[[Request], Reply | None]:
    seen = {"n": 0}

    def rule(request: Request) -> Reply | None:
        if request.action != "AssumeRole":
            return None
        seen["n"] += 1
        return code if seen["n"] <= count else None

    return rule


def assume_requests(proxy: FaultProxy) -> int:
    return sum(1 for r in proxy.requests if r.action == "AssumeRole")


def world(
    aws: MotoServer, tmp_path: Path, proxy: FaultProxy, **settings: Any
) -> Callable[..., Engine]:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    config = Config(
        provider_settings={
            "aws": aws_settings(
                aws,
                endpoint_url=proxy.url,
                runtime_principal=operator.runtime_arn,
                permissions_boundary=boundary,
                **settings,
            )
        },
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        journal_path=str(tmp_path / "journal.jsonl"),
    )
    aws.enforce_iam(0)
    write_contract(tmp_path / "contracts", "prop-agent", aws=s3_read("bucket-a"))

    def make(clock: Callable[[], Any] = frozen_now) -> Engine:
        return build_engine(
            config,
            operator="ops@company.com",
            clock=clock,
            client_options=operator.credentials,
            provider_names=["aws"],
        )

    engine = make()
    report = load_contracts([tmp_path / "contracts"], today=NOW.date())
    assert engine.apply(engine.plan(report.contracts, report.expired)).ok
    return make


def grant(engine: Engine) -> Any:
    return Runs(engine).grant(RunRequest(agent="prop-agent", command=("true",)))


def test_a_refusal_right_after_create_is_retried_until_iam_catches_up(
    aws: MotoServer, tmp_path: Path
) -> None:
    with fault_proxy(aws) as proxy:
        make = world(aws, tmp_path, proxy)
        engine = make()
        record = engine.state.get_resource("prop-agent", "aws")
        assert (
            record is not None and record.attributes["access_changed_at"] == "2026-11-28T12:00:00Z"
        )
        proxy.rule = refuse_first(2)
        issued = grant(engine)
        assert issued.credentials  # the third try went through
        assert assume_requests(proxy) == 3


def test_no_retry_once_the_window_has_passed_or_when_turned_off(
    aws: MotoServer, tmp_path: Path
) -> None:
    with fault_proxy(aws) as proxy:
        make = world(aws, tmp_path, proxy)
        # An hour after the change: a refusal is a refusal, at once.
        later = make(clock=lambda: NOW + timedelta(hours=1))
        proxy.rule = refuse_first(1)
        with pytest.raises(
            GateRefused, match="AWS refused a session of role agentctl-prop-agent"
        ) as refused:
            grant(later)
        assert "attempts" not in str(refused.value)
        assert assume_requests(proxy) == 1


def test_only_access_denied_is_retried(aws: MotoServer, tmp_path: Path) -> None:
    with fault_proxy(aws) as proxy:
        make = world(aws, tmp_path, proxy)
        invalid = Reply(
            400,
            _error_xml(
                "Sender", "ValidationError", "DurationSeconds exceeds the MaxSessionDuration"
            ),
        )
        proxy.rule = refuse_first(1, invalid)
        with pytest.raises(GateRefused, match="AWS refused the session parameters"):
            grant(make())
        assert assume_requests(proxy) == 1


def test_the_window_is_configurable_and_zero_turns_it_off(aws: MotoServer, tmp_path: Path) -> None:
    with fault_proxy(aws) as proxy:
        make = world(aws, tmp_path, proxy, propagation_seconds=0)
        proxy.rule = refuse_first(1)
        with pytest.raises(GateRefused, match="AWS refused a session"):
            grant(make())
        assert assume_requests(proxy) == 1


def test_revive_records_the_change_too(aws: MotoServer, tmp_path: Path) -> None:
    with fault_proxy(aws) as proxy:
        make = world(aws, tmp_path, proxy)
        later = make(clock=lambda: NOW + timedelta(hours=1))
        assert later.kill("prop-agent", "incident").ok
        assert later.revive("prop-agent", "false alarm").ok
        record = later.state.get_resource("prop-agent", "aws")
        assert (
            record is not None and record.attributes["access_changed_at"] == "2026-11-28T13:00:00Z"
        )
        proxy.rule = refuse_first(1)
        assert grant(later).credentials
        assert assume_requests(proxy) == 2
