"""AwsProvider against a real local moto server (see aws_helpers for what moto
enforces and what it does not)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import (
    IAM_MUTATING,
    CallRecorder,
    MotoServer,
    Operator,
    aws_settings,
    create_boundary,
    create_operator,
    frozen_clock,
    generated_policy,
    provider_context,
    record_calls,
    throttling_proxy,
)
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from agentctl.errors import NotOwnedError, ProviderError
from agentctl.model import Contract, ExecutionMode
from agentctl.providers.aws import SPEC as AWS
from agentctl.providers.aws.client import OPERATOR_HINT
from agentctl.providers.aws.grant import parse_aws_grant
from agentctl.providers.aws.lifecycle import AwsProvider
from agentctl.providers.aws.policies import (
    GRANT_POLICY,
    KILL_DOCUMENT,
    KILL_POLICY,
    LOCKED_TRUST,
    REVOKE_OLDER_POLICY,
    _bounded,
    grant_policy,
    normalise_policy,
    role_description,
    session_field,
    tag_value,
)
from agentctl.providers.aws.settings import AwsSettings
from agentctl.providers.base import ActionResult, ChangeKind, Provider, RunContext

BUCKETS = ("bucket-a", "bucket-b")


def contract(
    name: str,
    *,
    statements: list[dict[str, Any]] | None = None,
    owner: str = "platform-team@company.com",
    purpose: str = "Review pull requests for security and code quality",
    mode: ExecutionMode = ExecutionMode.AUTONOMOUS,
    expiry: date = date(2027, 3, 1),
) -> Contract:
    if statements is None:
        statements = [
            {"actions": ["s3:ListAllMyBuckets"], "resources": ["*"]},
            {"actions": ["s3:GetObject"], "resources": [f"arn:aws:s3:::bucket-a/{name}/*"]},
        ]
    return Contract(
        name=name,
        owner=owner,
        purpose=purpose,
        execution_mode=mode,
        expiry=expiry,
        kill_switch=f"/agents/{name}/disable",
        permissions={"aws": statements, "jira": ["issue:read"]},
    )


@dataclass
class World:
    server: MotoServer
    operator: Operator
    boundary: str
    provider: AwsProvider
    iam: CallRecorder
    sts: CallRecorder

    def provider_with(self, **overrides: Any) -> AwsProvider:
        settings = replace(self.provider._settings, **overrides)
        return AwsProvider(
            provider_context(settings, self.operator.credentials, clock=frozen_clock())
        )

    def mutations(self) -> list[tuple[str, str]]:
        return [(name, p.get("RoleName", "")) for name, p in self.iam.calls if name in IAM_MUTATING]


def make_world(server: MotoServer, *, enforce: bool = True, **overrides: Any) -> World:
    """Bootstrap as admin (operator user, boundary, buckets), then switch to
    the operator — whose only permissions are `agentctl policy operator`'s —
    and a separate runtime principal (`agentctl policy runtime`) for sessions."""
    operator = create_operator(server)
    boundary = create_boundary(server)
    s3 = server.client("s3")
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
        for agent in ("a", "b", "pr-review-agent"):
            s3.put_object(Bucket=bucket, Key=f"{agent}/report.txt", Body=b"ok")
    settings = aws_settings(
        server, runtime_principal=operator.runtime_arn, permissions_boundary=boundary, **overrides
    )
    provider = AwsProvider(provider_context(settings, operator.credentials, clock=frozen_clock()))
    world = World(
        server,
        operator,
        boundary,
        provider,
        record_calls(provider.client("iam"), "iam"),
        record_calls(provider.runtime_client("sts"), "sts"),
    )
    if enforce:
        server.enforce_iam(0)
    return world


def converge(
    provider: AwsProvider, c: Contract | None, name: str | None = None, *, expired: bool = False
) -> list[ActionResult]:
    agent = name or (c.name if c else "")
    changes = provider.plan(c, provider.observe(agent), expired=expired)
    return [provider.apply(change) for change in changes if change.mutating]


def run(
    agent: str, on_behalf_of: str | None = None, trigger: str | None = "manual", duration: int = 900
) -> RunContext:
    return RunContext(
        agent=agent,
        on_behalf_of=on_behalf_of,
        trigger=trigger,
        duration_seconds=duration,
        run_id="9f1c2b3a4d5e",
    )


def snapshot(server: MotoServer, role_name: str) -> dict[str, Any]:
    """Everything about a role, read as admin."""
    iam = server.client("iam")
    role = iam.get_role(RoleName=role_name)["Role"]
    role.pop("RoleLastUsed", None)
    policies = {
        name: iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    }
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    return {"role": role, "policies": policies, "attached": attached}


def denied(call: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in {"AccessDenied", "AccessDeniedException"}
    return False


# -- provisioning ----------------------------------------------------------------------


def test_provider_satisfies_the_protocol_and_import_is_cheap() -> None:
    assert isinstance(AwsProvider(provider_context(AwsSettings())), Provider)
    # `agentctl validate` builds providers: that must not import boto3.
    code = (
        "import sys; from agentctl.providers.aws.lifecycle import AwsProvider;"
        "from agentctl.providers.base import ProviderContext; AwsProvider(ProviderContext());"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_apply_creates_exactly_what_the_contract_says(aws: MotoServer) -> None:
    world = make_world(aws)
    c = contract(
        "pr-review-agent",
        purpose="Review PRs; security & quality",
        statements=[
            {"actions": ["s3:ListAllMyBuckets"], "resources": ["*"]},
            {
                "sid": "ReadReports",
                "actions": ["s3:GetObject"],
                "resources": ["arn:aws:s3:::bucket-a/pr-review-agent/*"],
            },
        ],
    )
    results = converge(world.provider, c)
    assert [r.ok for r in results] == [True]
    # GetPolicy/GetPolicyVersion: the boundary, read once per run for the boundary lint.
    assert world.iam.names == [
        "GetRole",
        "GetPolicy",
        "GetPolicyVersion",
        "CreateRole",
        "PutRolePolicy",
    ]
    arn = "arn:aws:iam::123456789012:role/agentctl/agentctl-pr-review-agent"
    assert results[0].resource_id == arn
    assert results[0].attributes["role_name"] == "agentctl-pr-review-agent"

    with aws.unenforced():
        got = snapshot(aws, "agentctl-pr-review-agent")
    role = got["role"]
    assert role["Path"] == "/agentctl/"
    assert role["MaxSessionDuration"] == 3600
    assert role["Description"] == "agentctl agent pr-review-agent: Review PRs; security & quality"
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == world.boundary
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {
        "managed-by": "agentctl",
        "agentctl:agent": "pr-review-agent",
        "agentctl:owner": "platform-team@company.com",
        # ';' and '&' are outside IAM's tag charset.
        "agentctl:purpose": "Review PRs_ security _ quality",
        "agentctl:expiry": "2027-03-01",
        "agentctl:execution-mode": "autonomous",
        "agentctl:contract-hash": c.digest,
        "agentctl:status": "active",
    }
    assert role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AgentctlRuntime",
                "Effect": "Allow",
                "Principal": {"AWS": [world.operator.runtime_arn]},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                # AWS itself refuses the agent from its expiry date on.
                "Condition": UNTIL_EXPIRY,
            }
        ],
    }
    assert got["policies"] == {
        GRANT_POLICY: {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Grant0",
                    "Effect": "Allow",
                    "Action": ["s3:ListAllMyBuckets"],
                    "Resource": ["*"],
                    "Condition": UNTIL_EXPIRY,
                },
                {
                    "Sid": "ReadReports",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": ["arn:aws:s3:::bucket-a/pr-review-agent/*"],
                    "Condition": UNTIL_EXPIRY,
                },
                {
                    # Added by agentctl: rotate's proof that a new session works.
                    "Sid": "AgentctlSessionCheck",
                    "Effect": "Allow",
                    "Action": ["iam:ListRoleTags"],
                    "Resource": ["arn:aws:iam::*:role/agentctl/agentctl-pr-review-agent"],
                    "Condition": UNTIL_EXPIRY,
                },
            ],
        }
    }
    assert got["attached"] == []


UNTIL_EXPIRY = {"DateLessThan": {"aws:CurrentTime": "2027-03-01T00:00:00Z"}}


def test_reapply_makes_zero_mutating_calls(aws: MotoServer) -> None:
    world = make_world(aws)
    contracts = [contract(name) for name in ("a", "b", "pr-review-agent")]
    for c in contracts:
        assert all(r.ok for r in converge(world.provider, c))
    world.iam.clear()
    for c in contracts:
        assert world.provider.plan(c, world.provider.observe(c.name), expired=False) == []
    assert world.mutations() == []
    # What a no-change refresh costs per agent: three reads.
    assert world.iam.names == ["GetRole", "ListRolePolicies", "GetRolePolicy"] * 3


def test_a_changed_contract_updates_only_that_role_and_field(aws: MotoServer) -> None:
    world = make_world(aws)
    a, b = contract("a"), contract("b")
    converge(world.provider, a)
    converge(world.provider, b)
    with aws.unenforced():
        b_before = snapshot(aws, "agentctl-b")

    wider = contract(
        "a", statements=[{"actions": ["s3:ListAllMyBuckets", "s3:GetObject"], "resources": ["*"]}]
    )
    world.iam.clear()
    changes = world.provider.plan(wider, world.provider.observe("a"), expired=False)
    assert [ch.kind for ch in changes] == [ChangeKind.UPDATE]
    assert [f.field for f in changes[0].fields] == ["tags.agentctl:contract-hash", "grant_policy"]
    world.iam.clear()
    assert world.provider.apply(changes[0]).ok
    assert world.mutations() == [("TagRole", "agentctl-a"), ("PutRolePolicy", "agentctl-a")]

    new_owner = replace(wider, owner="security@company.com", purpose="Triage")
    changes = world.provider.plan(new_owner, world.provider.observe("a"), expired=False)
    assert [f.field for f in changes[0].fields] == [
        "tags.agentctl:contract-hash",
        "tags.agentctl:owner",
        "tags.agentctl:purpose",
        "description",
    ]
    world.iam.clear()
    assert world.provider.apply(changes[0]).ok
    assert world.mutations() == [("TagRole", "agentctl-a"), ("UpdateRole", "agentctl-a")]

    # Settings changes reach every role, one field each.
    with aws.unenforced():
        other = create_boundary(aws, "other-boundary")
    moved = world.provider_with(permissions_boundary=other, session_duration_seconds=7200)
    record = record_calls(moved.client("iam"), "iam")
    changes = moved.plan(new_owner, moved.observe("a"), expired=False)
    assert [f.field for f in changes[0].fields] == ["permissions_boundary", "max_session_duration"]
    assert moved.apply(changes[0]).ok
    assert [n for n in record.names if n in IAM_MUTATING] == [
        "PutRolePermissionsBoundary",
        "UpdateRole",
    ]
    # Dropping the boundary from the settings: the operator policy never lets
    # a boundary go (explicit Deny of DeleteRolePermissionsBoundary).
    unbounded = world.provider_with(permissions_boundary=None, session_duration_seconds=7200)
    (change,) = unbounded.plan(new_owner, unbounded.observe("a"), expired=False)
    assert [f.field for f in change.fields] == ["permissions_boundary"]
    refused = unbounded.apply(change)
    assert not refused.ok
    assert "access denied: DeleteRolePermissionsBoundary" in (refused.detail or "")
    assert moved.plan(new_owner, moved.observe("a"), expired=False) == []

    with aws.unenforced():
        assert snapshot(aws, "agentctl-b") == b_before


def test_prune_removes_only_the_orphan(aws: MotoServer) -> None:
    world = make_world(aws)
    converge(world.provider, contract("a"))
    converge(world.provider, contract("b"))
    session = world.provider.issue_credentials(contract("a"), run("a"))
    world.provider.kill("a", "leaving")
    with aws.unenforced():
        iam = aws.client("iam")
        # Someone attached a managed policy and an inline one by hand.
        iam.attach_role_policy(RoleName="agentctl-a", PolicyArn=world.boundary)
        iam.put_role_policy(
            RoleName="agentctl-a",
            PolicyName="by-hand",
            PolicyDocument=json.dumps(
                LOCKED_TRUST
                | {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        b_before = snapshot(aws, "agentctl-b")

    observed = world.provider.observe("a")
    assert observed.drift == ("inline policy by-hand on agentctl-a was not written by agentctl",)
    (change,) = world.provider.plan(None, observed, expired=False)
    assert change.kind is ChangeKind.REMOVE
    world.iam.clear()
    result = world.provider.apply(change)
    assert result.ok, result
    assert world.mutations() == [
        ("DeleteRolePolicy", "agentctl-a"),
        ("DeleteRolePolicy", "agentctl-a"),
        ("DetachRolePolicy", "agentctl-a"),  # the boundary attached by hand
        ("DetachRolePolicy", "agentctl-a"),  # AWSDenyAll, the kill's managed deny
        ("DeleteRolePolicy", "agentctl-a"),
        ("DeleteRole", "agentctl-a"),
    ]
    # The kill denies went last, after every grant.
    assert [p["PolicyName"] for n, p in world.iam.calls if n == "DeleteRolePolicy"][
        -1
    ] == KILL_POLICY
    assert world.provider.observe("a").exists is False
    assert world.provider.apply(change).already
    with aws.unenforced():
        assert snapshot(aws, "agentctl-b") == b_before
    # moto answers a deleted role's sessions with HTTP 500 (hence no retries).
    with pytest.raises(ClientError):
        aws.session_client("s3", session.environment).list_buckets()
    # A contract without an aws grant and no role: AWS is not involved.
    assert (
        world.provider.plan(
            contract("c", statements=[]), world.provider.observe("c"), expired=False
        )
        == []
    )


def test_prune_leaves_instance_profiles_to_their_owner(aws: MotoServer) -> None:
    world = make_world(aws)
    converge(world.provider, contract("a"))
    with aws.unenforced():
        iam = aws.client("iam")
        iam.create_instance_profile(InstanceProfileName="web")
        iam.add_role_to_instance_profile(InstanceProfileName="web", RoleName="agentctl-a")
    (change,) = world.provider.plan(None, world.provider.observe("a"), expired=False)
    world.iam.clear()
    result = world.provider.apply(change)
    assert not result.ok
    assert (
        result.remaining
        == "remove role agentctl-a from instance profile(s) web, then re-run apply --prune"
    )
    assert world.mutations() == []


def test_a_role_agentctl_does_not_own_is_never_touched(aws: MotoServer) -> None:
    world = make_world(aws, enforce=False)
    iam = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": world.operator.arn},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName="agentctl-legacy", AssumeRolePolicyDocument=json.dumps(trust))
    # Tagged by agentctl, but for another agent: still not "ci"'s.
    iam.create_role(
        RoleName="agentctl-ci",
        Path="/agentctl/",
        AssumeRolePolicyDocument=json.dumps(trust),
        Tags=[
            {"Key": "managed-by", "Value": "agentctl"},
            {"Key": "agentctl:agent", "Value": "ci-2"},
        ],
    )
    before = {name: snapshot(aws, name) for name in ("agentctl-legacy", "agentctl-ci")}
    aws.enforce_iam(0)
    world.iam.clear()
    for name in ("legacy", "ci"):
        c = contract(name)
        observed = world.provider.observe(name)
        assert observed.exists and not observed.owned
        (change,) = world.provider.plan(c, observed, expired=False)
        assert change.kind is ChangeKind.CONFLICT and not change.mutating
        assert change.summary == (
            f"role agentctl-{name} exists but is not managed by agentctl (no managed-by=agentctl "
            f"and agentctl:agent={name} tags): rename the agent or remove/tag the role"
        )
        assert world.provider.plan(None, observed, expired=False) == []
        assert world.provider.plan(c, observed, expired=True) == [change]
        killed = world.provider.kill(name, "incident")
        assert not killed.ok and "not managed by agentctl" in killed.detail and killed.remaining
        assert not world.provider.revive(name, "x").ok
        with pytest.raises(NotOwnedError):
            world.provider.rotate(name)
        if name == "ci":
            # The runtime principal reads no IAM: AWS refuses it, as the role's
            # trust policy is not agentctl's. (agentctl-legacy is at another
            # path: the derived ARN names no role; AWS refuses, moto does not.)
            with pytest.raises(ProviderError, match="AWS refused a session of role agentctl-ci"):
                world.provider.issue_credentials(c, run(name))
        # A CREATE planned before someone else took the name: EntityAlreadyExists, not ours.
        create = world.provider.plan(c, replace(observed, exists=False), expired=False)[0]
        result = world.provider.apply(create)
        assert not result.ok and "not managed by agentctl" in result.detail
    assert world.mutations() == [("CreateRole", "agentctl-legacy"), ("CreateRole", "agentctl-ci")]
    with aws.unenforced():
        assert {name: snapshot(aws, name) for name in before} == before


# -- kill, revive, rotate -------------------------------------------------------------


def test_kill_touches_the_exact_name_only_in_four_round_trips(aws: MotoServer) -> None:
    world = make_world(aws)
    for name in ("foo", "foo-bar", "foo2"):
        converge(world.provider, contract(name))
    with aws.unenforced():
        before = {n: snapshot(aws, n) for n in ("agentctl-foo-bar", "agentctl-foo2")}
    world.iam.clear()
    result = world.provider.kill("foo", "incident 4521")
    assert result.ok and not result.already
    # Look up; both denies at once; trust lock and tag at once; read back all three.
    names = world.iam.names
    assert names[0] == "GetRole"
    assert sorted(names[1:3]) == ["AttachRolePolicy", "PutRolePolicy"]
    assert sorted(names[3:5]) == ["TagRole", "UpdateAssumeRolePolicy"]
    assert sorted(names[5:]) == ["GetRole", "GetRolePolicy", "ListAttachedRolePolicies"]
    assert result.verified == (
        "AWSDenyAll attached",
        "inline deny agentctl-kill present",
        "trust policy locked",
    )
    assert {role for _, role in world.mutations()} == {"agentctl-foo"}
    with aws.unenforced():
        assert {n: snapshot(aws, n) for n in before} == before
        killed = snapshot(aws, "agentctl-foo")
    tags = {t["Key"]: t["Value"] for t in killed["role"]["Tags"]}
    assert tags["agentctl:status"] == "killed"
    assert tags["agentctl:killed-reason"] == "incident 4521"
    assert tags["agentctl:killed-at"] == "2026-06-01T12:00:00Z"
    assert killed["policies"][KILL_POLICY] == {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "AgentctlKill", "Effect": "Deny", "Action": "*", "Resource": "*"}],
    }
    assert normalise_policy(killed["role"]["AssumeRolePolicyDocument"]) == normalise_policy(
        LOCKED_TRUST
    )

    world.iam.clear()
    again = world.provider.kill("foo", "again")
    assert again.ok and again.already
    assert again.detail == (
        "already killed: AWSDenyAll attached, inline deny agentctl-kill present, "
        "trust policy locked"
    )
    assert sorted(world.iam.names) == ["GetRole", "GetRolePolicy", "ListAttachedRolePolicies"]
    missing = world.provider.kill("nobody", "x")
    assert missing.ok and missing.detail == "no AWS role"


def test_kill_denies_the_live_session_at_once_and_spares_the_others(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    for name in ("a", "b"):
        converge(p, contract(name))
    sessions = {
        name: aws.session_client("s3", p.issue_credentials(contract(name), run(name)).environment)
        for name in ("a", "b")
    }

    for name, s3 in sessions.items():
        assert s3.get_object(Bucket="bucket-a", Key=f"{name}/report.txt")["Body"].read() == b"ok"
        assert s3.list_buckets()["Buckets"]
        # Beyond the contract: another bucket, another agent's prefix.
        assert denied(s3.get_object, Bucket="bucket-b", Key=f"{name}/report.txt")
    assert denied(sessions["a"].get_object, Bucket="bucket-a", Key="b/report.txt")

    assert p.kill("a", "incident").ok
    # The very same credentials, already issued: denied at once.
    assert denied(sessions["a"].get_object, Bucket="bucket-a", Key="a/report.txt")
    assert denied(sessions["a"].list_buckets)
    assert sessions["b"].get_object(Bucket="bucket-a", Key="b/report.txt")["Body"].read() == b"ok"

    # No new session: AWS refuses AssumeRole on the deny-all trust lock. moto
    # does evaluate trust principals (see the next test) but counts every trust
    # statement as Allow whatever its Effect, so here we check the lock itself
    # and that a session moto lets through anyway can do nothing. (The runtime
    # principal reads no IAM, so the provider cannot refuse it first; the
    # engine refuses a killed agent from its state before asking.)
    with aws.unenforced():
        trust = aws.client("iam").get_role(RoleName="agentctl-a")["Role"][
            "AssumeRolePolicyDocument"
        ]
    assert normalise_policy(trust) == normalise_policy(LOCKED_TRUST)
    late = aws.session_client("s3", p.issue_credentials(contract("a"), run("a")).environment)
    assert denied(late.list_buckets)

    assert p.revive("a", "false alarm").ok
    revived = aws.session_client("s3", p.issue_credentials(contract("a"), run("a")).environment)
    assert revived.get_object(Bucket="bucket-a", Key="a/report.txt")["Body"].read() == b"ok"
    assert p.revive("a", "again").already
    assert p.plan(contract("a"), p.observe("a"), expired=False) == []


def test_trust_policy_admits_only_the_runtime_principal(aws: MotoServer) -> None:
    world = make_world(aws, enforce=False)
    # Same permissions as the operator, but not the configured runtime principal.
    intruder = create_operator(aws, "someone-else")
    converge(world.provider, contract("a"))
    aws.enforce_iam(0)
    role_arn = "arn:aws:iam::123456789012:role/agentctl/agentctl-a"
    assert denied(
        aws.client("sts", intruder.credentials).assume_role,
        RoleArn=role_arn,
        RoleSessionName="probe",
    )
    runtime = world.operator.runtime_credentials
    assert aws.client("sts", runtime).assume_role(RoleArn=role_arn, RoleSessionName="probe")
    # The operator writes the trust policy but may not start an agent session,
    # even if that trust policy named it (an explicit Deny in its own policy).
    assert denied(
        aws.client("sts", world.operator.credentials).assume_role,
        RoleArn=role_arn,
        RoleSessionName="probe",
    )


def test_rotate_verifies_a_new_session_then_revokes_older_ones(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    converge(p, contract("a"))
    old = aws.session_client("s3", p.issue_credentials(contract("a"), run("a")).environment)
    assert old.list_buckets()["Buckets"]
    order = CallRecorder()
    p.client("iam").meta.events.register("provide-client-params.iam.*", order)
    p.runtime_client("sts").meta.events.register("provide-client-params.sts.*", order)

    # The check is a call IAM can deny: without its Allow, rotate revokes nothing.
    with aws.unenforced():
        iam = aws.client("iam")
        grant = iam.get_role_policy(RoleName="agentctl-a", PolicyName=GRANT_POLICY)
        document = grant["PolicyDocument"]
        stripped = {
            **document,
            "Statement": [s for s in document["Statement"] if s["Sid"] != "AgentctlSessionCheck"],
        }
        iam.put_role_policy(
            RoleName="agentctl-a", PolicyName=GRANT_POLICY, PolicyDocument=json.dumps(stripped)
        )
    with pytest.raises(ProviderError, match="was refused iam:ListRoleTags") as refused:
        p.rotate("a")
    assert "nothing revoked" in str(refused.value)
    assert REVOKE_OLDER_POLICY not in p.observe("a").attributes["inline_policies"]
    assert [r.ok for r in converge(p, contract("a"))] == [True]  # apply restores it
    order.clear()

    result = p.rotate("a")
    assert result.ok, result
    assert [n for n in order.names if n != "GetRole"] == ["AssumeRole", "PutRolePolicy"]
    with aws.unenforced():
        policy = aws.client("iam").get_role_policy(
            RoleName="agentctl-a", PolicyName=REVOKE_OLDER_POLICY
        )["PolicyDocument"]
    assert policy["Statement"] == [
        {
            "Sid": "AgentctlRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": result.attributes["rotated_at"]}},
        }
    ]
    assert old is not None and denied(old.list_buckets)
    # moto ignores the DateLessThan condition, so in moto *every* session is now
    # denied; in AWS a session issued after rotated_at works. Apply must keep
    # the revocation policy (it is not part of the contract).
    assert p.plan(contract("a"), p.observe("a"), expired=False) == []
    p.kill("a", "x")
    assert p.rotate("a").already


def test_expired_contract_is_disabled_and_a_renewal_enables_it(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    c = contract("a")
    converge(p, c)
    session = aws.session_client("s3", p.issue_credentials(c, run("a")).environment)
    (change,) = p.plan(c, p.observe("a"), expired=True)
    assert change.kind is ChangeKind.DISABLE
    assert p.apply(change).ok
    assert denied(session.list_buckets)
    observed = p.observe("a")
    assert observed.disabled and not observed.killed
    assert observed.attributes["tags"]["agentctl:killed-reason"] == "expired"
    assert p.plan(c, observed, expired=True) == []
    # AWS refuses a new session (trust locked, and past the trust policy's
    # expiry condition); moto issues one, which can do nothing.
    late = aws.session_client("s3", p.issue_credentials(c, run("a")).environment)
    assert denied(late.list_buckets)
    # An expired contract is never provisioned.
    assert p.plan(contract("new"), p.observe("new"), expired=True) == []

    renewed = replace(c, expiry=date(2027, 6, 1))
    (change,) = p.plan(renewed, observed, expired=False)
    assert {f.field for f in change.fields} >= {
        "tags.agentctl:status",
        "tags.agentctl:expiry",
        "trust_policy",
        "grant_policy",
        "kill_policy",
    }
    # The new expiry reaches both documents AWS enforces it with.
    until = {"DateLessThan": {"aws:CurrentTime": "2027-06-01T00:00:00Z"}}
    fields = {f.field: f.after for f in change.fields}
    assert fields["trust_policy"]["Statement"][0]["Condition"] == until
    assert all(st["Condition"] == until for st in fields["grant_policy"]["Statement"])
    assert p.apply(change).ok
    assert p.plan(renewed, p.observe("a"), expired=False) == []
    assert aws.session_client(
        "s3", p.issue_credentials(renewed, run("a")).environment
    ).list_buckets()


def test_apply_never_revives_a_killed_agent(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    converge(p, contract("a"))
    assert p.kill("a", "incident").ok
    wider = contract("a", statements=[{"actions": ["s3:*"], "resources": ["*"]}])
    (change,) = p.plan(wider, p.observe("a"), expired=False)
    assert [f.field for f in change.fields] == ["tags.agentctl:contract-hash", "grant_policy"]
    assert change.summary.endswith("(stays killed)")
    assert p.apply(change).ok
    observed = p.observe("a")
    assert observed.killed and observed.attributes["kill_policy"]
    assert observed.attributes["trust"] == normalise_policy(LOCKED_TRUST)
    assert p.plan(wider, observed, expired=True) == []  # killed is already disabled


def test_interrupted_runs_converge(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    c = contract("a")
    (create,) = p.plan(c, p.observe("a"), expired=False)
    assert p.apply(create).ok
    # Retried CREATE after a crash: EntityAlreadyExists, ours, nothing to change.
    world.iam.clear()
    assert p.apply(create).ok
    assert world.mutations() == [("CreateRole", "agentctl-a")]
    # Crash between CreateRole and PutRolePolicy.
    with aws.unenforced():
        aws.client("iam").delete_role_policy(RoleName="agentctl-a", PolicyName=GRANT_POLICY)
    (change,) = p.plan(c, p.observe("a"), expired=False)
    assert [f.field for f in change.fields] == ["grant_policy"]
    world.iam.clear()
    assert p.apply(create).ok  # a stale CREATE converges the same way
    assert world.mutations() == [("CreateRole", "agentctl-a"), ("PutRolePolicy", "agentctl-a")]
    # Kill interrupted after its first write (the deny): still killed, and
    # both plan and a second kill complete the lock.
    with aws.unenforced():
        aws.client("iam").put_role_policy(
            RoleName="agentctl-a",
            PolicyName=KILL_POLICY,
            PolicyDocument=json.dumps(KILL_DOCUMENT),
        )
    observed = p.observe("a")
    assert observed.killed
    (change,) = p.plan(c, observed, expired=False)
    assert [f.field for f in change.fields] == ["tags.agentctl:status", "trust_policy", "deny_all"]
    result = p.kill("a", "finish")
    assert result.ok and not result.already
    assert p.plan(c, p.observe("a"), expired=False) == []


def test_concurrent_applies_share_one_provider(aws: MotoServer) -> None:
    world = make_world(aws, enforce=False)
    contracts = [contract(f"agent-{i}") for i in range(24)]
    glitch = "did not answer like AWS"

    def attempt(c: Contract) -> bool:
        # moto's IAM backend is not thread-safe: a role lookup racing a
        # CreateRole now and then answers an HTML 500. Only that may fail here.
        try:
            results = converge(world.provider, c)
        except ProviderError as exc:
            assert glitch in exc.message
            return False
        assert all(r.ok or glitch in r.detail for r in results), results
        return all(r.ok for r in results)

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(pool.map(attempt, contracts))
    assert sum(first) >= len(contracts) - 2
    for c, ok in zip(contracts, first, strict=True):
        if not ok:  # the next apply converges what a failure left behind
            assert all(r.ok for r in converge(world.provider, c))
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert not any(
            pool.map(
                lambda c: world.provider.plan(c, world.provider.observe(c.name), expired=False),
                contracts,
            )
        )


# -- least privilege ---------------------------------------------------------------------


def test_whole_lifecycle_runs_as_the_least_privilege_operator(aws: MotoServer) -> None:
    world = make_world(aws)  # enforcement on from here
    p = world.provider
    operator_iam = aws.client("iam", world.operator.credentials)
    # Enforcement is real: anything outside the policy is refused.
    assert denied(operator_iam.create_user, UserName="mallory")
    assert denied(operator_iam.list_users)
    assert denied(operator_iam.detach_user_policy, UserName="u", PolicyArn=world.boundary)
    # AttachRolePolicy is allowed only for AWSDenyAll (the kill's managed deny)
    # through an ArnEquals condition on iam:PolicyARN, which moto does not
    # evaluate (it treats unknown conditions as met), so it is checked on the
    # document: https://docs.aws.amazon.com/service-authorization/latest/reference/
    # list_awsidentityandaccessmanagementiam.html (AttachRolePolicy: iam:PolicyARN).
    attach = [
        s
        for s in json.loads(generated_policy("operator"))["Statement"]
        if "iam:AttachRolePolicy" in s["Action"]
    ]
    assert [s["Effect"] for s in attach] == ["Allow"]
    assert attach[0]["Condition"] == {
        "ArnEquals": {"iam:PolicyARN": "arn:aws:iam::aws:policy/AWSDenyAll"}
    }

    c = contract("a")
    assert [r.ok for r in converge(p, c)] == [True]
    assert [r.ok for r in converge(p, replace(c, purpose="Triage"))] == [True]
    assert converge(p, replace(c, purpose="Triage")) == []
    credential = p.issue_credentials(c, run("a", on_behalf_of="amit@company.com"))
    assert p.kill("a", "incident").ok
    assert p.revive("a", "resolved").ok
    assert p.rotate("a").ok
    assert [r.ok for r in converge(p, replace(c, purpose="Triage"), expired=True)] == [True]
    assert [r.ok for r in converge(p, replace(c, purpose="Triage"))] == [True]  # renewed
    assert p.revoke_credential("a", credential.credential_id).ok
    assert [r.ok for r in converge(p, None, "a")] == [True]
    assert not p.observe("a").exists


def test_aws_errors_are_actionable_and_never_leak_secrets(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world = make_world(aws, enforce=False)
    powerless_policy = tmp_path / "none.json"
    powerless_policy.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}
                ],
            }
        )
    )
    powerless = create_operator(aws, "powerless", powerless_policy)
    converge(world.provider, contract("a"))
    aws.enforce_iam(0)

    weak = AwsProvider(provider_context(world.provider._settings, powerless.credentials))
    with pytest.raises(ProviderError) as denied_error:
        weak.observe("a")
    assert "access denied: GetRole" in denied_error.value.message
    assert denied_error.value.hint == OPERATOR_HINT
    killed = weak.kill("a", "incident")
    assert not killed.ok
    # Whoever reads it can paste each command (no state here: it cannot
    # tell whether the role exists, so it says so).
    assert killed.undetermined
    assert killed.remaining == (
        "if role agentctl-a exists: "
        "aws iam attach-role-policy --role-name agentctl-a "
        "--policy-arn arn:aws:iam::aws:policy/AWSDenyAll; "
        "aws iam put-role-policy --role-name agentctl-a --policy-name agentctl-kill "
        """--policy-document '{"Version":"2012-10-17","Statement":[{"Sid":"AgentctlKill","""
        """"Effect":"Deny","Action":["*"],"Resource":["*"]}]}'; """
        "aws iam update-assume-role-policy --role-name agentctl-a "
        """--policy-document '{"Version":"2012-10-17","Statement":[{"Sid":"AgentctlKilled","""
        """"Effect":"Deny","Principal":{"AWS":["*"]},"Action":["sts:AssumeRole","""
        """"sts:SetSourceIdentity","sts:TagSession"]}]}' """
        "(or fix the access and run `agentctl kill a` again)"
    )
    assert powerless.secret_access_key not in killed.detail + killed.remaining

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    anonymous = AwsProvider(provider_context(world.provider._settings, credentials={}))
    with pytest.raises(ProviderError) as no_credentials:
        anonymous.observe("a")
    assert "no usable AWS credentials" in no_credentials.value.message
    assert "AWS_PROFILE" in (no_credentials.value.hint or "")

    nowhere = AwsProvider(
        provider_context(
            replace(world.provider._settings, endpoint_url="http://127.0.0.1:9", max_attempts=1),
            world.operator.credentials,
        )
    )
    with pytest.raises(ProviderError) as unreachable:
        nowhere.observe("a")
    assert "AWS_ENDPOINT_URL" in (unreachable.value.hint or "")
    assert world.operator.secret_access_key not in unreachable.value.message

    unconfigured = world.provider_with(runtime_principal=None)
    with pytest.raises(ProviderError, match="runtime_principal is not configured") as missing:
        unconfigured.plan(contract("new"), unconfigured.observe("new"), expired=False)
    assert "agentctl.yaml" in (missing.value.hint or "")


def test_throttling_is_retried_and_persistent_throttling_reported(aws: MotoServer) -> None:
    world = make_world(aws, enforce=False)
    settings = world.provider._settings
    with throttling_proxy(aws, failures=2) as proxy:
        p = AwsProvider(
            provider_context(
                replace(settings, endpoint_url=proxy.url, max_attempts=4),
                world.operator.credentials,
            )
        )
        assert [r.ok for r in converge(p, contract("a"))] == [True]
        assert proxy.throttled == 2
    assert world.provider.plan(contract("a"), world.provider.observe("a"), expired=False) == []

    with throttling_proxy(aws, failures=None) as proxy:
        p = AwsProvider(
            provider_context(
                replace(settings, endpoint_url=proxy.url, max_attempts=2),
                world.operator.credentials,
            )
        )
        with pytest.raises(ProviderError, match="throttled GetRole") as error:
            p.observe("b")
        assert "parallelism" in (error.value.hint or "")
        (create,) = world.provider.plan(contract("b"), world.provider.observe("b"), expired=False)
        result = p.apply(create)
        assert (
            not result.ok
            and "AWS throttled CreateRole" in result.detail
            and "(2 attempts)" in result.detail
        )
        killed = p.kill("a", "incident")
        assert (
            not killed.ok and "aws iam put-role-policy --role-name agentctl-a" in killed.remaining
        )


def test_the_standard_aws_environment_is_used(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(aws, enforce=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    p = world.provider_with(endpoint_url=None, region=None)
    assert [r.ok for r in converge(p, contract("a"))] == [True]
    environment = p.issue_credentials(contract("a"), run("a")).environment
    assert environment["AWS_REGION"] == "eu-west-1"
    assert environment["AWS_ENDPOINT_URL"] == aws.url


# -- credentials -----------------------------------------------------------------------


def test_assume_role_carries_both_sides(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    c = contract("pr-review-agent", mode=ExecutionMode.ON_BEHALF_OF_USER)
    converge(p, c)
    world.sts.clear()
    credential = p.issue_credentials(
        c, run("pr-review-agent", "amit@company.com", "webhook/pr-opened/4521", duration=1800)
    )
    ((name, params),) = world.sts.calls
    assert name == "AssumeRole"
    assert params == {
        "RoleArn": "arn:aws:iam::123456789012:role/agentctl/agentctl-pr-review-agent",
        "RoleSessionName": "agentctl-pr-review-agent-9f1c2b3a",
        "DurationSeconds": 1800,
        "SourceIdentity": "amit@company.com",
        "Tags": [
            {"Key": "agent", "Value": "pr-review-agent"},
            {"Key": "on_behalf_of", "Value": "amit@company.com"},
            {"Key": "trigger", "Value": "webhook/pr-opened/4521"},
        ],
        "TransitiveTagKeys": ["agent", "on_behalf_of", "trigger"],
    }
    environment = {
        k: v if isinstance(v, str) else v.reveal() for k, v in credential.environment.items()
    }
    assert set(environment) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    }
    assert environment["AWS_REGION"] == "us-east-1" and environment["AWS_ENDPOINT_URL"] == aws.url
    assert (
        credential.fingerprint
        == hashlib.sha256(environment["AWS_ACCESS_KEY_ID"].encode()).hexdigest()[:16]
    )
    assert environment["AWS_ACCESS_KEY_ID"] not in credential.credential_id + repr(credential)
    assert environment["AWS_SECRET_ACCESS_KEY"] not in repr(credential)
    assert (credential.expires_at - credential.issued_at).total_seconds() > 0
    revoked = p.revoke_credential("pr-review-agent", credential.credential_id)
    assert revoked.ok and "expires at" in revoked.detail

    # Autonomous: the agent is its own source identity; odd characters are made safe.
    world.sts.clear()
    p.issue_credentials(c, run("pr-review-agent", None, "cron: nightly #7 (retry)"))
    ((_, params),) = world.sts.calls
    assert params["SourceIdentity"] == "pr-review-agent"
    assert params["Tags"][1:] == [
        {"Key": "on_behalf_of", "Value": ""},
        {"Key": "trigger", "Value": "cron: nightly _7 _retry_"},
    ]
    world.sts.clear()
    p.issue_credentials(
        c, run("pr-review-agent", "a.very.long.name+agents@" + "x" * 80 + ".example.com", "t")
    )
    ((_, params),) = world.sts.calls
    assert len(params["SourceIdentity"]) == 64 and params["SourceIdentity"].startswith(
        "a.very.long.name+agents@"
    )


def test_exec_needs_nothing_but_the_runtime_policy(aws: MotoServer) -> None:
    world = make_world(aws)
    p = world.provider
    converge(p, contract("a"))
    world.iam.clear()
    world.sts.clear()
    credential = p.issue_credentials(contract("a"), run("a"))
    # One AssumeRole as the runtime principal (whose only policy is
    # `agentctl policy runtime`), the role ARN derived: no IAM read at all.
    assert world.iam.names == []
    assert world.sts.names == ["AssumeRole"]
    assert world.sts.calls[0][1]["RoleArn"] == (
        "arn:aws:iam::123456789012:role/agentctl/agentctl-a"
    )
    assert aws.session_client("s3", credential.environment).list_buckets()["Buckets"]
    with pytest.raises(ProviderError, match=r"outside 900\.\.3600s"):
        p.issue_credentials(contract("a"), run("a", duration=7200))
    assert world.sts.names == ["AssumeRole"]  # refused before asking AWS

    # A host whose principal the role does not trust: AWS refuses, and the
    # error says what to check, never a traceback or a key.
    with aws.unenforced():
        stranger = create_operator(aws, "stranger")
    elsewhere = AwsProvider(
        provider_context(
            replace(p._settings, runtime_profile=None),
            stranger.runtime_credentials,
            clock=frozen_clock(),
        )
    )
    with pytest.raises(ProviderError, match="AWS refused a session of role agentctl-a") as refused:
        elsewhere.issue_credentials(contract("a"), run("a"))
    assert "aws.runtime_principal" in (refused.value.hint or "")
    assert stranger.runtime_key[1] not in str(refused.value)


# -- value shaping (no server) ----------------------------------------------------------


@given(st.text(max_size=400))
def test_tag_values_always_fit_iam(text: str) -> None:
    value = tag_value(text)
    assert len(value) <= 256
    # IAM's tag charset: [\p{L}\p{Z}\p{N}_.:/=+\-@]
    assert all(ch in "_.:/=+-@" or unicodedata.category(ch)[0] in "LZN" for ch in value)
    assert tag_value(value) == value  # stable: what plan expects is what was written


@given(st.text(max_size=200))
def test_session_fields_always_fit_sts(text: str) -> None:
    value = session_field(text)
    assert 2 <= len(value) <= 64
    assert all(ch.isascii() and (ch.isalnum() or ch in "_+=,.@-") for ch in value)


# ASCII text (nearly every name, owner and purpose) is shaped by a translation
# table; any text must come out exactly as the per-character rules say.
def _shaped_as_the_rules_say(text: str, limit: int) -> None:
    def each(ok: Callable[[str], bool], replacement: str) -> str:
        return "".join(ch if ok(ch) else replacement for ch in text)

    tag_ok = lambda ch: ch in "_.:/=+-@" or unicodedata.category(ch)[0] in "LZN"  # noqa: E731
    assert tag_value(text, limit) == each(tag_ok, "_")[:limit]
    assert tag_value(text) == each(tag_ok, "_")[:256]
    description_ok = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]").fullmatch
    assert role_description(text) == each(description_ok, "?")[:1000]
    session_ok = re.compile(r"[A-Za-z0-9_+=,.@-]").fullmatch
    assert session_field(text) == _bounded(each(session_ok, "_"), 64).ljust(2, "_")
    assert session_field(text, limit) == _bounded(each(session_ok, "_"), limit).ljust(2, "_")


@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=1200) | st.text(max_size=300),
    st.integers(min_value=10, max_value=300),
)
def test_value_shaping_is_the_per_character_rule(text: str, limit: int) -> None:
    _shaped_as_the_rules_say(text, limit)


def test_value_shaping_of_every_latin1_character() -> None:
    every = "".join(map(chr, range(256)))
    for text in [*every, every, every.encode("ascii", "ignore").decode()]:
        _shaped_as_the_rules_say(text, 64)


@given(
    st.lists(
        st.sampled_from(["s3:GetObject", "s3:PutObject", "sqs:SendMessage"]),
        min_size=1,
        unique=True,
    )
)
def test_policy_comparison_ignores_order_and_shorthand(actions: list[str]) -> None:
    forward = {"Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    backward = {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Action": actions[::-1], "Resource": ["*"]},
    }
    assert normalise_policy(forward) == normalise_policy(json.dumps(backward))
    assert normalise_policy(normalise_policy(forward)) == normalise_policy(forward)


def test_the_spec_check_delegates_to_the_vocabulary_with_the_settings() -> None:
    def check(statements: list[dict[str, Any]], settings: AwsSettings) -> list[str]:
        return [f.code for f in AWS.check_grant(parse_aws_grant(statements), settings)]

    readable = [{"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}]
    assert check(readable, AwsSettings()) == []
    assert check(
        [{"actions": ["s3:NoSuchThing"], "resources": ["arn:aws:s3:::b/*"]}], AwsSettings()
    ) == ["unknown-action"]
    own = [{"actions": ["iam:TagRole"], "resources": ["arn:aws:iam::123456789012:role/bots/bot-x"]}]
    assert check(own, AwsSettings()) == []
    assert check(own, AwsSettings(role_prefix="bot-", role_path="/bots/")) == ["self-escalation"]


def test_grant_policy_refuses_what_iam_would() -> None:
    statement = {"actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}
    with pytest.raises(ProviderError, match="repeats a statement sid"):
        grant_policy(
            "a", parse_aws_grant([statement | {"sid": "Read"}, statement | {"sid": "Read"}])
        )
    huge = [
        {
            "actions": ["s3:GetObject"],
            "resources": [f"arn:aws:s3:::bucket-{i:04d}/*" for i in range(400)],
        }
    ]
    with pytest.raises(ProviderError, match="IAM allows 10240 per role"):
        grant_policy("a", parse_aws_grant(huge))
    with pytest.raises(ProviderError, match="needs 'actions' and 'resources'"):
        grant_policy("a", parse_aws_grant([{"actions": ["s3:GetObject"]}]))
    with pytest.raises(ProviderError, match=r"role name agentctl-x+ is 70 characters"):
        AwsProvider(provider_context(AwsSettings())).role_name("x" * 61)


def test_kill_finds_the_role_by_its_tag_when_this_machine_names_roles_otherwise(
    aws: MotoServer,
) -> None:
    """Operator A applied with aws.role_prefix "team-"; B kills with the default
    prefix and no state: the role is found by its agentctl:agent tag, exactly."""
    world = make_world(aws, enforce=False, role_prefix="team-")
    converge(world.provider, contract("a"))
    converge(world.provider, contract("b"))
    aws.client("iam").create_role(  # someone else's role whose name also ends in "a"
        RoleName="data",
        AssumeRolePolicyDocument=json.dumps(LOCKED_TRUST),
        Tags=[{"Key": "agentctl:agent", "Value": "dat"}],
    )
    # (IAM enforcement stays off: the shipped operator policy manages only
    # roles named agentctl-*, so a "team-" prefix needs a wider operator policy.)
    other_machine = AwsProvider(
        provider_context(
            aws_settings(aws, runtime_principal=world.operator.arn),
            world.operator.credentials,
            clock=frozen_clock(),
        )
    )
    result = other_machine.kill("a", "INC-1")
    assert result.ok, result
    assert result.resource_id and result.resource_id.endswith(":role/agentctl/team-a")
    assert result.verified == (
        "AWSDenyAll attached",
        "inline deny agentctl-kill present",
        "trust policy locked",
    )
    assert other_machine.check_killed("a").ok
    assert other_machine.observe("b").exists is False  # b is "team-b": untouched, unknown here
    assert world.provider.observe("b").attributes["tags"]["agentctl:status"] == "active"
    missing = other_machine.kill("nobody", "x")
    assert missing.ok and missing.detail == "no AWS role"
