"""Lint: grants wider than the permissions boundary.

The AWS provider's plan reads the configured boundary (once per run, as the
least-privilege operator) and reports every granted action the boundary does
not let through as DRIFT: reported, never applied, never a failure.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import (
    MotoServer,
    aws_settings,
    create_boundary,
    create_operator,
    frozen_clock,
    generated_policy,
    provider_context,
    record_calls,
)
from contract_helpers import TODAY, frozen_now, write_contract

from agentctl.config import Config
from agentctl.contract import load_contracts
from agentctl.model import Contract, ExecutionMode
from agentctl.providers.aws.changes import BoundaryUnreadable, GrantWiderThanBoundary
from agentctl.providers.aws.grant import AwsGrant, parse_aws_grant
from agentctl.providers.aws.lifecycle import AwsProvider
from agentctl.providers.aws.policies import boundary_gaps
from agentctl.providers.base import ChangeKind
from agentctl.render import json_data
from agentctl.runtime import build_engine

WRITE = {"actions": ["s3:PutObject"], "resources": ["arn:aws:s3:::bucket-a/*"]}
READ = {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::bucket-a/*"]}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(*actions: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": list(actions), "Resource": "*", **extra}


def deny(*actions: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": list(actions), "Resource": "*", **extra}


def grant(*actions: str) -> AwsGrant:
    return parse_aws_grant([{"actions": list(actions), "resources": ["*"]}])


# -- the rule, offline -------------------------------------------------------------------


def test_an_action_outside_the_allow_patterns_is_a_gap() -> None:
    gaps = boundary_gaps(grant("s3:GetObject", "s3:PutObject"), policy(allow("s3:Get*")))
    assert gaps == [("s3:PutObject", ["s3:PutObject"], False)]


def test_everything_inside_the_boundary_is_no_gap() -> None:
    boundary = policy(allow("s3:Get*", "s3:List*"), allow("dynamodb:Query"))
    assert boundary_gaps(grant("s3:GetObject", "s3:ListBucket", "dynamodb:Query"), boundary) == []
    assert boundary_gaps(grant("S3:getobject"), boundary) == []  # IAM names ignore case
    assert boundary_gaps(grant("s3:GetObject"), policy(allow("*"))) == []


def test_a_wildcard_grant_names_exactly_the_actions_the_boundary_blocks() -> None:
    ((action, blocked, denied),) = boundary_gaps(grant("s3:*"), policy(allow("s3:Get*")))
    assert action == "s3:*" and not denied
    assert "s3:PutObject" in blocked and "s3:DeleteBucket" in blocked
    assert not [a for a in blocked if a.startswith("s3:Get")]


def test_an_explicit_deny_counts_even_when_an_allow_matches() -> None:
    boundary = policy(allow("s3:*"), deny("s3:DeleteObject", "s3:PutBucketPolicy"))
    assert boundary_gaps(grant("s3:GetObject", "s3:DeleteObject"), boundary) == [
        ("s3:DeleteObject", ["s3:DeleteObject"], True)
    ]
    # NotAction: a Deny of everything but reads.
    everything_but_reads = {"Effect": "Deny", "NotAction": ["s3:Get*"], "Resource": "*"}
    assert boundary_gaps(grant("s3:PutObject"), policy(allow("s3:*"), everything_but_reads)) == [
        ("s3:PutObject", ["s3:PutObject"], True)
    ]


def test_only_certain_gaps_are_reported() -> None:
    # A Deny limited by a condition or to some resources may not apply: not counted.
    conditional = deny("s3:PutObject", Condition={"Bool": {"aws:SecureTransport": "false"}})
    scoped = {**deny("s3:PutObject"), "Resource": "arn:aws:s3:::other/*"}
    assert boundary_gaps(grant("s3:PutObject"), policy(allow("s3:*"), conditional, scoped)) == []
    # An Allow limited by resource still lets the action through somewhere.
    narrow = {**allow("s3:PutObject"), "Resource": "arn:aws:s3:::bucket-a/*"}
    assert boundary_gaps(grant("s3:PutObject"), policy(narrow)) == []
    # NotAction in an Allow allows everything it does not name.
    not_iam = {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"}
    assert boundary_gaps(grant("s3:PutObject"), policy(not_iam)) == []
    assert boundary_gaps(grant("iam:GetRole"), policy(not_iam)) == [
        ("iam:GetRole", ["iam:GetRole"], False)
    ]


def test_an_unknown_service_is_compared_as_written() -> None:
    assert boundary_gaps(grant("acme:Frobnicate"), policy(allow("acme:*"))) == []
    assert boundary_gaps(grant("acme:Frobnicate"), policy(allow("s3:*"))) == [
        ("acme:Frobnicate", ["acme:Frobnicate"], False)
    ]


def test_the_boundary_document_may_come_as_iam_returns_it() -> None:
    # Single-statement, single-action shorthand, URL-encoded as raw IAM answers.
    from urllib.parse import quote

    raw = quote(json.dumps({"Version": "2012-10-17", "Statement": allow("s3:Get*")}))
    assert boundary_gaps(grant("s3:PutObject"), raw)[0][0] == "s3:PutObject"  # type: ignore[arg-type]


# -- against moto, as the least-privilege operator ---------------------------------------


def contract(name: str, statements: list[dict[str, Any]]) -> Contract:
    return Contract(
        name=name,
        owner="platform-team@company.com",
        purpose="Boundary lint test",
        execution_mode=ExecutionMode.AUTONOMOUS,
        expiry=date(2027, 3, 1),
        kill_switch=f"/agents/{name}/disable",
        permissions={"aws": statements},
    )


def provider(
    aws: MotoServer, boundary_actions: tuple[str, ...] = ("s3:Get*",), **settings: Any
) -> AwsProvider:
    operator = create_operator(aws)
    boundary = create_boundary(aws, actions=boundary_actions)
    values: dict[str, Any] = {
        "runtime_principal": operator.runtime_arn,
        "permissions_boundary": boundary,
    }
    values.update(settings)
    made = AwsProvider(
        provider_context(aws_settings(aws, **values), operator.credentials, clock=frozen_clock())
    )
    aws.enforce_iam(0)
    return made


def drift(changes: list[Any]) -> list[str]:
    return [c.summary for c in changes if c.kind == ChangeKind.DRIFT]


def test_plan_reports_a_grant_wider_than_the_boundary_and_still_provisions(
    aws: MotoServer,
) -> None:
    p = provider(aws)
    boundary = "arn:aws:iam::123456789012:policy/agentctl-boundary"
    c = contract("writer-agent", [READ, WRITE])

    changes = p.plan(c, p.observe(c.name), expired=False)

    assert [ch.kind for ch in changes] == [ChangeKind.CREATE, ChangeKind.DRIFT]
    assert drift(changes) == [
        "grant wider than the permissions boundary: s3:PutObject is not allowed by "
        f"{boundary}; it would silently have no effect"
    ]
    (finding,) = [ch for ch in changes if ch.kind == ChangeKind.DRIFT]
    assert not finding.mutating
    assert finding.payload == GrantWiderThanBoundary(boundary, "s3:PutObject", ("s3:PutObject",))
    # A finding, not a failure: the role is created with the whole grant (the
    # boundary, not agentctl, is what cuts it), and re-planning reports it again.
    assert all(p.apply(ch).ok for ch in changes if ch.mutating)
    again = p.plan(c, p.observe(c.name), expired=False)
    assert [ch.kind for ch in again] == [ChangeKind.DRIFT]


def test_the_boundary_is_read_once_per_run(aws: MotoServer) -> None:
    p = provider(aws)
    calls = record_calls(p.client("iam"), "iam")
    agents = [contract(f"agent-{i}", [WRITE]) for i in range(3)]
    for c in agents:
        assert len(drift(p.plan(c, p.observe(c.name), expired=False))) == 1
    assert calls.names.count("GetPolicy") == 1
    assert calls.names.count("GetPolicyVersion") == 1


def test_no_boundary_means_no_lint_and_no_reads(aws: MotoServer) -> None:
    p = provider(aws, permissions_boundary=None)
    calls = record_calls(p.client("iam"), "iam")
    c = contract("writer-agent", [WRITE])
    assert drift(p.plan(c, p.observe(c.name), expired=False)) == []
    assert "GetPolicy" not in calls.names


def test_the_lint_is_silent_for_expired_or_empty_grants(aws: MotoServer) -> None:
    p = provider(aws)
    calls = record_calls(p.client("iam"), "iam")
    c = contract("writer-agent", [WRITE])
    assert drift(p.plan(c, p.observe(c.name), expired=True)) == []
    assert drift(p.plan(contract("idle-agent", []), p.observe("idle-agent"), expired=False)) == []
    assert "GetPolicy" not in calls.names


def test_an_explicit_deny_in_the_boundary_is_named(aws: MotoServer) -> None:
    operator = create_operator(aws)
    iam = aws.client("iam")
    document = policy(allow("s3:*"), deny("s3:DeleteObject"))
    boundary = iam.create_policy(
        PolicyName="agentctl-boundary", PolicyDocument=json.dumps(document)
    )["Policy"]["Arn"]
    p = AwsProvider(
        provider_context(
            aws_settings(
                aws, runtime_principal=operator.runtime_arn, permissions_boundary=boundary
            ),
            operator.credentials,
            clock=frozen_clock(),
        )
    )
    aws.enforce_iam(0)
    c = contract("cleaner-agent", [{"actions": ["s3:DeleteObject"], "resources": ["*"]}])
    assert drift(p.plan(c, p.observe(c.name), expired=False)) == [
        "grant wider than the permissions boundary: s3:DeleteObject is denied by "
        f"{boundary}; it would silently have no effect"
    ]


def test_the_default_version_of_the_boundary_is_the_one_checked(aws: MotoServer) -> None:
    p = provider(aws, boundary_actions=("s3:Get*",))
    boundary = p._settings.permissions_boundary
    with aws.unenforced():
        aws.client("iam").create_policy_version(
            PolicyArn=boundary,
            PolicyDocument=json.dumps(policy(allow("s3:Get*", "s3:PutObject"))),
            SetAsDefault=True,
        )
    c = contract("writer-agent", [WRITE])
    assert drift(p.plan(c, p.observe(c.name), expired=False)) == []


def test_an_unreadable_boundary_is_reported_not_fatal(aws: MotoServer, tmp_path: Path) -> None:
    # An operator policy from before the boundary lint: no iam:GetPolicy.
    shipped = json.loads(generated_policy("operator"))
    shipped["Statement"] = [
        s for s in shipped["Statement"] if "iam:GetPolicy" not in json.dumps(s.get("Action"))
    ]
    older = tmp_path / "older-operator-policy.json"
    older.write_text(json.dumps(shipped), encoding="utf-8")
    operator = create_operator(aws, policy_file=older)
    boundary = create_boundary(aws, actions=("s3:Get*",))
    p = AwsProvider(
        provider_context(
            aws_settings(aws, runtime_principal=operator.arn, permissions_boundary=boundary),
            operator.credentials,
            clock=frozen_clock(),
        )
    )
    aws.enforce_iam(0)
    c = contract("writer-agent", [WRITE])
    changes = p.plan(c, p.observe(c.name), expired=False)
    assert [ch.kind for ch in changes] == [ChangeKind.CREATE, ChangeKind.DRIFT]
    (summary,) = drift(changes)
    assert summary.startswith(
        "cannot check the grant against the permissions boundary: aws: access denied: GetPolicy"
    )
    assert changes[1].payload == BoundaryUnreadable(boundary)
    assert all(p.apply(ch).ok for ch in changes if ch.mutating)


def test_the_operator_policy_reads_only_the_configured_boundary() -> None:
    statements = {s["Sid"]: s for s in json.loads(generated_policy("operator"))["Statement"]}
    reads = ["iam:GetPolicy", "iam:GetPolicyVersion"]
    assert statements["ReadTheBoundary"]["Action"] == reads
    assert statements["ReadOnlyTheBoundary"] == {
        "Sid": "ReadOnlyTheBoundary",
        "Effect": "Deny",
        "Action": reads,
        "NotResource": "arn:aws:iam::123456789012:policy/agentctl-boundary",
    }


def test_plan_and_apply_through_the_engine_report_it_and_succeed(
    aws: MotoServer, tmp_path: Path
) -> None:
    operator = create_operator(aws)
    boundary = create_boundary(aws, actions=("s3:Get*", "s3:List*"))
    config = Config(
        provider_settings={
            "aws": aws_settings(
                aws, runtime_principal=operator.runtime_arn, permissions_boundary=boundary
            )
        },
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        journal_path=str(tmp_path / "journal.jsonl"),
    )
    engine = build_engine(
        config,
        operator="ops@company.com",
        clock=frozen_now,
        client_options=operator.credentials,
        provider_names=["aws"],
    )
    aws.enforce_iam(0)
    folder = tmp_path / "contracts"
    write_contract(folder, "reader-agent", aws=[READ])
    write_contract(folder, "writer-agent", aws=[READ, WRITE])
    report = load_contracts([folder], today=TODAY)

    plan = engine.plan(report.contracts, report.expired)
    by_agent = {a.agent: json_data(a)["changes"] for a in plan.agents}
    assert [c["kind"] for c in by_agent["reader-agent"]] == ["create"]
    assert [c["kind"] for c in by_agent["writer-agent"]] == ["create", "drift"]
    assert "s3:PutObject is not allowed by" in by_agent["writer-agent"][1]["summary"]
    assert not plan.has_errors

    applied = engine.apply(plan)
    assert applied.ok, json_data(applied)
    assert {a.agent for a in applied.agents if a.results} == {"reader-agent", "writer-agent"}


@pytest.mark.parametrize("actions", [("s3:*",), ("*",)])
def test_a_boundary_that_allows_the_grant_reports_nothing(
    aws: MotoServer, actions: tuple[str, ...]
) -> None:
    p = provider(aws, boundary_actions=actions)
    c = contract("writer-agent", [READ, WRITE])
    assert drift(p.plan(c, p.observe(c.name), expired=False)) == []
