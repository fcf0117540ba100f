"""Who is acting is verified, never typed (issue 14).

The real CLI in this process against the moto server with IAM enforcement on,
on the real clock (contracts are dated from the real day). The cast:

- alice: an IAM user holding the operator policy; a ``people:`` rule names
  her alice@company.com. She applies, runs agents (the runtime principal) and
  so asks for approvals.
- bob: an IAM user with no permissions at all; his IAM user name is his name.
- carol@company.com: an IAM Identity Center ("SSO") session: an assumed role
  ``AWSReservedSSO_*`` whose session name AWS sets to her e-mail.
- dave: another IAM user, in no contract's approvers.
- an agent: the AWS session ``agentctl credentials`` hands out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_helpers import (
    ACCOUNT,
    RUNTIME_PROFILE,
    MotoServer,
    Operator,
    create_operator,
    create_person,
)
from contract_helpers import s3_read, write_contract
from github_helpers import ORG, GitHubWorld, contract_for

from agentctl.cli.app import run
from agentctl.contract import load_contract_text
from agentctl.identity import (
    Actor,
    IdentityError,
    PersonRule,
    Principal,
    actor_of,
    acts_for_problem,
    agent_of,
    matches_person,
    parse_aws_arn,
    person_of,
    same_caller,
)
from agentctl.model import Contract
from agentctl.state import open_state
from testing.github import GitHubEmulator

SSO_ROLE = "AWSReservedSSO_ReleaseApprovers_0123456789abcdef"


# -- the rules, offline ---------------------------------------------------------------


def test_arns_name_users_sessions_and_federated_users() -> None:
    user = parse_aws_arn(f"arn:aws:iam::{ACCOUNT}:user/team/alice")
    assert (user.kind, user.name, user.account) == ("iam-user", "alice", ACCOUNT)
    sso = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/carol@company.com")
    assert (sso.kind, sso.role, sso.name) == ("assumed-role", SSO_ROLE, "carol@company.com")
    federated = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:federated-user/erin")
    assert (federated.kind, federated.name) == ("federated-user", "erin")
    assert parse_aws_arn(f"arn:aws:iam::{ACCOUNT}:root").kind == "root"
    for bad in ("root", "arn:aws:s3:::bucket", f"arn:aws:iam::{ACCOUNT}:group/admins"):
        with pytest.raises(IdentityError):
            parse_aws_arn(bad)


def test_people_rules_first_then_the_documented_defaults() -> None:
    user = parse_aws_arn(f"arn:aws:iam::{ACCOUNT}:user/alice")
    sso = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/carol@company.com")
    ci = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deployer/anything-i-like")
    rules = (
        PersonRule(f"arn:aws:iam::{ACCOUNT}:user/alice", "alice@company.com", "agentctl.yaml:3"),
        PersonRule(f"arn:aws:sts::{ACCOUNT}:assumed-role/breakglass/*", "{name}"),
    )
    assert person_of(user, rules)[0] == "alice@company.com"
    assert person_of(user, ())[0] == "alice"
    assert person_of(sso, rules) == ("carol@company.com", "IAM Identity Center session name")
    # Whoever assumes an ordinary role chooses its session name: it names nobody.
    assert person_of(ci, rules)[0] == "role:ci-deployer"
    breakglass = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/breakglass/frank")
    assert person_of(breakglass, rules)[0] == "frank"
    with pytest.raises(IdentityError, match="root user"):
        person_of(parse_aws_arn(f"arn:aws:iam::{ACCOUNT}:root"), ())


def test_an_agent_session_is_recognised_by_its_role_and_session_name() -> None:
    session = parse_aws_arn(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/agentctl-reader-agent/agentctl-reader-agent-0a1b2c3d"
    )
    assert agent_of(session, "agentctl-") == "reader-agent"
    # A session of an agent role started by hand is known from the state's agents.
    by_hand = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/agentctl-reader-agent/me")
    assert agent_of(by_hand, "agentctl-") is None
    assert agent_of(by_hand, "agentctl-", lambda name: name == "reader-agent") == "reader-agent"
    operator_role = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/agentctl-operator/alice")
    assert agent_of(operator_role, "agentctl-", lambda name: False) is None


def test_the_same_caller_is_judged_by_what_aws_vouches_for() -> None:
    sso = f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/carol@company.com"
    carol = actor_of(parse_aws_arn(sso), ())
    assert same_caller(sso, carol)
    ci = f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deployer/run-1"
    ci_later = actor_of(parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deployer/run-2"), ())
    assert same_caller(ci, ci_later)  # role:ci-deployer both times
    dave = parse_aws_arn(f"arn:aws:iam::{ACCOUNT}:user/dave")
    labelled = actor_of(dave, (PersonRule(dave.arn, "alice@company.com"),))
    assert labelled.person == "alice@company.com"
    assert not same_caller(f"arn:aws:iam::{ACCOUNT}:user/alice", labelled)
    other_account = "arn:aws:iam::210987654321:user/dave"
    assert not same_caller(other_account, actor_of(dave, ()))


def test_a_federated_users_name_is_its_callers_choice_and_names_nobody() -> None:
    """GetFederationToken's Name is whatever the calling IAM user passes, and
    GetCallerIdentity then answers arn:...:federated-user/<that name> without
    saying which IAM user called it (AWS STS API reference, GetFederationToken,
    "Name"; GetCallerIdentity). So an IAM user allowed GetFederationToken could
    call itself carol@company.com: such a caller is `federated:<name>`, never a
    person by name, so never an approver by name or e-mail glob (moto does not
    answer GetCallerIdentity for federation tokens: checked on the rules)."""
    principal = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:federated-user/carol@company.com")
    actor = actor_of(principal, ())
    assert actor.person == "federated:carol@company.com" and actor.verified_name is None
    assert "GetFederationToken" in actor.via
    assert matches_person(actor, ["carol@company.com", "*@company.com", "*carol*"]) is None
    # The real carol, through IAM Identity Center, is who the approvers name.
    sso = parse_aws_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/carol@company.com")
    assert matches_person(actor_of(sso, ()), ["carol@company.com"]) == "carol@company.com"
    # A team that trusts its federation broker says so with a people: rule (a label).
    broker = PersonRule(f"arn:aws:sts::{ACCOUNT}:federated-user/*", "{name}")
    assert actor_of(principal, (broker,)).person == "carol@company.com"
    assert actor_of(principal, (broker,)).verified_name is None


def test_approvers_match_what_aws_vouches_for_not_people_rules() -> None:
    principal = Principal(f"arn:aws:iam::{ACCOUNT}:user/mallory", "aws", "iam-user", "mallory")
    # mallory's own agentctl.yaml says she is the release lead: a label, not a right.
    spoofed = Actor("release-lead@company.com", principal, "people", verified_name="mallory")
    assert matches_person(spoofed, ["release-lead@company.com"]) is None
    assert matches_person(spoofed, ["mallory"]) == "mallory"
    assert matches_person(spoofed, [f"arn:aws:iam::{ACCOUNT}:user/*"]) is not None
    assert matches_person(spoofed, ["MALLORY"]) == "MALLORY"  # names are case-insensitive


def test_on_behalf_of_is_an_email_the_contract_allows() -> None:
    assert acts_for_problem("amit@company.com", ()) is None
    for word in ("root", "amit", "amit@", "@company.com", "a b@company.com"):
        assert acts_for_problem(word, ()) is not None, word
    assert acts_for_problem("amit@company.com", ["*@company.com"]) is None
    assert "may act only for" in (acts_for_problem("eve@evil.example", ["*@company.com"]) or "")


RELEASE = """\
agent:
  name: release-agent
  owner: release@company.com
  purpose: Cuts releases
permissions: {}
execution_mode: approval_required
expiry: 2027-02-15
kill_switch: /agents/release-agent/disable
"""


def test_approval_required_needs_approvers_located_by_line() -> None:
    report = load_contract_text(RELEASE, "release.yaml", today=date(2026, 12, 1))
    (problem,) = [p for p in report.problems if p.code == "missing-approvers"]
    # Located at execution_mode, the line that asks for approvers.
    assert (problem.file, problem.line, problem.severity.value) == ("release.yaml", 6, "error")
    assert "approvers" in problem.message

    listed = RELEASE + "approvers: [release-lead@company.com, 'arn:aws:iam::123456789012:user/*']\n"
    report = load_contract_text(listed, "release.yaml", today=date(2026, 12, 1))
    assert report.ok, report.problems
    (contract,) = report.contracts
    assert contract.approvers == ("release-lead@company.com", "arn:aws:iam::123456789012:user/*")
    # Recorded with the contract, so exec and approve judge by the applied one.
    assert Contract.from_document(contract.document()).approvers == contract.approvers


def test_acts_for_takes_email_patterns_only() -> None:
    base = RELEASE.replace("approval_required", "on_behalf_of_user")
    good = load_contract_text(
        base + "acts_for: ['*@company.com']\n", "a.yaml", today=date(2026, 12, 1)
    )
    assert good.ok and good.contracts[0].acts_for == ("*@company.com",)
    bad = load_contract_text(base + "acts_for: [root]\n", "a.yaml", today=date(2026, 12, 1))
    (problem,) = bad.problems
    assert (problem.line, problem.code) == (9, "invalid-acts-for")
    assert "'*@company.com'" in problem.message
    # A contract without them keeps the digest it had before the keys existed.
    plain = load_contract_text(base, "a.yaml", today=date(2026, 12, 1)).contracts[0]
    assert "acts_for" not in plain.document() and "approvers" not in plain.document()


# -- the CLI against moto, IAM enforced ----------------------------------------------------


@dataclass
class World:
    server: MotoServer
    root: Path
    contracts: Path
    state_url: str
    people: dict[str, dict[str, str]]  # who -> AWS environment
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    runtime_arn: str = ""  # the runtime principal (aws.runtime_principal)

    def cli(self, who: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            self.monkeypatch.delenv(name, raising=False)
        for name, value in {**self.people.get(who, {}), **(env or {})}.items():
            self.monkeypatch.setenv(name, value)
        self.capsys.readouterr()
        code = run(list(argv))  # the real clock
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err and "internal error" not in err, err
        return code, out, err

    def events(self, action: str | None = None) -> list[Any]:
        with open_state(self.state_url) as state:
            return state.audit_events(action=action)

    def with_new_agent(self) -> Path:
        """The contracts plus one not applied yet: an apply of this folder has
        work to do (an apply with nothing to write verifies nobody, like plan)."""
        folder = self.root / "contracts-next"
        if not folder.exists():
            shutil.copytree(self.contracts, folder)
            today = datetime.now(UTC).date()
            write_contract(
                folder, "next-agent", aws=s3_read("bucket-a"), expiry=today + timedelta(60)
            )
        return folder

    def request_approval(self) -> str:
        code, _, err = self.cli("alice", "exec", "release-agent", "--", "true")
        assert code == 1 and "needs approval" in err, err
        return err.split("agentctl approve ")[1].split("`")[0].strip()


def keys(operator: Operator) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": operator.access_key_id,
        "AWS_SECRET_ACCESS_KEY": operator.secret_access_key,
    }


def sso_session(server: MotoServer, session_name: str) -> tuple[str, dict[str, str]]:
    """An IAM Identity Center permission-set role and a session of it named like
    the one AWS gives a signed-in user (moto: created by the admin)."""
    iam = server.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(
        RoleName=SSO_ROLE,
        Path="/aws-reserved/sso.amazonaws.com/",
        AssumeRolePolicyDocument=json.dumps(trust),
    )["Role"]
    credentials = server.client("sts").assume_role(
        RoleArn=role["Arn"], RoleSessionName=session_name
    )["Credentials"]
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/{session_name}"
    return arn, {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


@pytest.fixture
def world(
    aws: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    alice = create_operator(aws, "alice")
    # exec and credentials start agent sessions as the runtime principal made
    # beside alice (its keys in the RUNTIME_PROFILE profile); the operator
    # policy itself may not start them (issue 16).
    bob = create_person(aws, "bob")
    dave = create_person(aws, "dave")
    _, carol = sso_session(aws, "carol@company.com")
    aws.client("s3").create_bucket(Bucket="bucket-a")
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = {
        "state": state_url,
        "journal": str(tmp_path / "journal.jsonl"),
        "aws": {
            "endpoint_url": aws.url,
            "region": "us-east-1",
            "runtime_principal": alice.runtime_arn,
            "runtime_profile": RUNTIME_PROFILE,
        },
        "people": [{"principal": alice.arn, "person": "alice@company.com"}],
    }
    (tmp_path / "agentctl.yaml").write_text(yaml.safe_dump(config), "utf-8")
    today = datetime.now(UTC).date()
    contracts = tmp_path / "contracts"
    write_contract(contracts, "reader-agent", aws=s3_read("bucket-a"), expiry=today + timedelta(60))
    write_contract(
        contracts,
        "release-agent",
        aws=s3_read("bucket-a"),
        mode="approval_required",
        # alice is listed too: as the requester she still may not approve.
        approvers=["alice", "bob", "carol@company.com"],
        acts_for=["*@company.com"],
        expiry=today + timedelta(60),
    )
    for name in list(__import__("os").environ):
        if name.startswith(("AGENTCTL_", "AWS_", "GH_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AGENTCTL_CONFIG", str(tmp_path / "agentctl.yaml"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    # Only the runtime principal's profile (written by create_operator): every
    # person's own keys come from the environment of their command.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.enforce_iam(0)
    people = {"alice": keys(alice), "bob": keys(bob), "dave": keys(dave), "carol": carol}
    world = World(
        aws, tmp_path, contracts, state_url, people, monkeypatch, capsys, alice.runtime_arn
    )
    code, _, err = world.cli("alice", "apply", str(contracts), "--yes")
    assert code == 0, err
    yield world


def test_two_iam_users_and_an_sso_session_are_three_verified_people(world: World) -> None:
    first, second = world.request_approval(), world.request_approval()

    assert world.cli("carol", "approve", first)[0] == 0
    assert world.cli("bob", "deny", second, "--reason", "not today")[0] == 0

    (request, _) = world.events("approval.request")
    (approved,) = world.events("approval.approve")
    (denied,) = world.events("approval.deny")
    who = {
        (e.operator, e.detail["principal"], e.detail["identified_by"])
        for e in (request, approved, denied)
    }
    assert who == {
        (
            "alice@company.com",
            f"arn:aws:iam::{ACCOUNT}:user/alice",
            f"{world.root / 'agentctl.yaml'}:8 (arn:aws:iam::{ACCOUNT}:user/alice)",
        ),
        (
            "carol@company.com",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/carol@company.com",
            "IAM Identity Center session name",
        ),
        ("bob", f"arn:aws:iam::{ACCOUNT}:user/bob", "IAM user name"),
    }
    # Every event apply wrote names alice and the principal that proved it.
    applied = world.events("apply.create")
    assert applied and {(e.operator, e.detail["principal"]) for e in applied} == {
        ("alice@company.com", f"arn:aws:iam::{ACCOUNT}:user/alice")
    }


def test_the_requester_and_non_approvers_cannot_decide(world: World) -> None:
    approval = world.request_approval()

    code, _, err = world.cli("alice", "approve", approval)
    assert code == 1 and "alice@company.com requested" in err and "cannot also approve" in err
    code, _, err = world.cli("dave", "approve", approval)
    assert code == 1 and "is not an approver of release-agent" in err
    code, _, err = world.cli("dave", "deny", approval)
    assert code == 1 and "is not an approver" in err

    with open_state(world.state_url) as state:
        record = state.get_approval(approval)
    assert record is not None and record.status == "pending"
    refused = world.events("approval.approve") + world.events("approval.deny")
    assert [(e.result, e.operator) for e in refused] == [
        ("denied", "alice@company.com"),
        ("denied", "dave"),
        ("denied", "dave"),
    ]

    # An approval is bound to its requester: bob approves, dave cannot use it.
    assert world.cli("bob", "approve", approval)[0] == 0
    code, _, err = world.cli("dave", "exec", "release-agent", "--approval", approval, "--", "true")
    assert code == 1


def test_an_approval_is_used_only_by_the_principal_that_asked_not_a_borrowed_name(
    world: World,
) -> None:
    """dave's own agentctl.yaml names him alice@company.com (people: labels are
    the caller's file): he still cannot use the approval alice asked for."""
    approval = world.request_approval()
    assert world.cli("bob", "approve", approval)[0] == 0
    config = yaml.safe_load((world.root / "agentctl.yaml").read_text("utf-8"))
    config["people"] = [
        {"principal": f"arn:aws:iam::{ACCOUNT}:user/dave", "person": "alice@company.com"}
    ]
    borrowed = world.root / "dave.yaml"
    borrowed.write_text(yaml.safe_dump(config), "utf-8")

    code, _, err = world.cli(
        "dave", "--config", str(borrowed), "exec", "release-agent", "--approval", approval,
        "--", "true",
    )  # fmt: skip
    assert code == 1 and "was requested by alice@company.com" in err, err
    assert f"arn:aws:iam::{ACCOUNT}:user/dave" in err
    with open_state(world.state_url) as state:
        record = state.get_approval(approval)
    assert record is not None and record.status == "approved"  # not used up by dave
    code, _, err = world.cli("alice", "exec", "release-agent", "--approval", approval, "--", "true")
    assert code == 0, err


def test_an_approval_is_bound_to_the_user_acted_for(world: World) -> None:
    code, _, err = world.cli(
        "alice", "exec", "release-agent", "-u", "amit@company.com", "--", "true"
    )
    assert code == 1 and "needs approval" in err, err
    approval = err.split("agentctl approve ")[1].split("`")[0].strip()
    assert world.cli("bob", "approve", approval)[0] == 0
    code, _, err = world.cli(
        "alice", "exec", "release-agent", "-u", "ceo@company.com", "--approval", approval,
        "--", "true",
    )  # fmt: skip
    assert code == 1 and "different command or user" in err, err
    code, _, err = world.cli(
        "alice", "exec", "release-agent", "-u", "amit@company.com", "--approval", approval,
        "--", "true",
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.reveals_secrets  # `agentctl credentials` prints them: that is its job
def test_an_agents_own_session_is_refused_for_every_mutating_command(world: World) -> None:
    approval = world.request_approval()
    code, out, err = world.cli("alice", "credentials", "reader-agent", "--output", "json")
    assert code == 0, err
    environment = json.loads(out)["environment"]
    world.people["agent"] = {
        k: environment[k]
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }

    attempts = [
        ("approve", approval),
        ("kill", "release-agent", "--yes"),
        ("kill", "reader-agent", "--yes"),
        ("revive", "reader-agent", "--reason", "x"),
        ("apply", str(world.with_new_agent()), "--yes"),
        ("rotate", "reader-agent"),
        ("exec", "reader-agent", "--", "true"),
        ("credentials", "reader-agent"),
    ]
    before = len(world.events())
    for argv in attempts:
        code, out, err = world.cli("agent", *argv)
        assert code == 1, (argv, err)
        assert "an agent never manages agents" in err, (argv, err)
        assert len(err.strip().splitlines()) <= 2, err  # the error and its hint

    refused = world.events("refused")
    assert [e.detail["command"] for e in refused] == [a[0] for a in attempts]
    assert {(e.actor, e.operator, e.result) for e in refused} == {
        ("reader-agent", "agent:reader-agent", "denied")
    }
    assert all(
        e.detail["principal"].startswith(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/agentctl-reader-agent/agentctl-reader-agent-"
        )
        for e in refused
    )
    # Nothing else happened: no kill, no approval, no new credentials.
    assert len(world.events()) == before + len(attempts)
    with open_state(world.state_url) as state:
        assert {a.name: a.status.value for a in state.list_agents()} == {
            "reader-agent": "active",
            "release-agent": "active",
        }
        record = state.get_approval(approval)
        assert record is not None and record.status == "pending"


# What an agent tries from the shell agentctl exec gives it: the real CLI, with
# the agent's own credentials in its environment; "$1" = python, "$2" = the
# agentctl.yaml it found on the host, "$3" = a pending approval, "$4" = the
# contracts folder, "$5" = where each attempt's exit code and error go.
INSIDE_AGENT_SHELL = r"""
try() { py=$1 cfg=$2; shift 5; "$py" -m agentctl --config "$cfg" "$@" >/dev/null 2>>"$OUT.err"; echo $? >>"$OUT"; }
OUT=$5
try "$@" approve "$3"
try "$@" revive release-agent --reason "back to work"
try "$@" apply "$4" --yes
# Claiming to be someone else, and not to be inside an agent run:
AGENTCTL_OPERATOR=bob env -u AGENTCTL_AGENT sh -c 'exec "$0" -m agentctl --config "$1" approve "$2"' "$1" "$2" "$3" >/dev/null 2>>"$OUT.err"
echo $? >>"$OUT"
"""


def test_inside_an_agent_shell_approve_revive_apply_are_refused(world: World) -> None:
    """`agentctl exec reader-agent -- sh`: the shell holds the agent's session.
    Whatever it sets in its environment, AWS names the caller the agent's role
    session, so agentctl refuses and records the agent, never a person."""
    approval = world.request_approval()
    assert world.cli("alice", "kill", "release-agent", "--reason", "INC-7", "--yes")[0] == 0
    before = len(world.events())
    out = world.root / "attempts"
    code, _, err = world.cli(
        "alice",
        "exec",
        "reader-agent",
        "--",
        "sh",
        "-c",
        INSIDE_AGENT_SHELL,
        "sh",  # $0
        sys.executable,
        str(world.root / "agentctl.yaml"),
        approval,
        str(world.with_new_agent()),
        str(out),
    )
    assert code == 0, err
    assert out.read_text().split() == ["1", "1", "1", "1"]
    errors = out.with_suffix(".err").read_text()
    assert errors.count("an agent never manages agents") == 4, errors
    assert "Traceback" not in errors

    refused = world.events("refused")
    assert [e.detail["command"] for e in refused] == ["approve", "revive", "apply", "approve"]
    # AGENTCTL_OPERATOR=bob and an unset AGENTCTL_AGENT changed nothing recorded.
    assert {(e.actor, e.operator) for e in refused} == {("reader-agent", "agent:reader-agent")}
    assert all(
        e.detail["principal"].startswith(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/agentctl-reader-agent/agentctl-reader-agent-"
        )
        for e in refused
    )
    with open_state(world.state_url) as state:
        record = state.get_approval(approval)
        statuses = {a.name: a.status.value for a in state.list_agents()}
    assert record is not None and record.status == "pending"
    assert statuses == {"reader-agent": "active", "release-agent": "killed"}
    # Besides the refusals only the exec run itself was recorded.
    others = {e.action for e in world.events()[before:]} - {"refused"}
    assert not {a for a in others if a.startswith(("approval.", "revive", "apply"))}, others


@pytest.mark.reveals_secrets  # `agentctl credentials` prints them: that is its job
def test_an_apply_with_nothing_to_write_verifies_nobody_and_changes_nothing(world: World) -> None:
    """Nothing to apply and an empty journal: apply only reads, as plan does,
    so it asks STS nothing (a CI re-apply pays no identity round trip) — and
    an agent's session running it changes and records nothing."""
    code, out, err = world.cli("alice", "credentials", "reader-agent", "--output", "json")
    assert code == 0, err
    environment = json.loads(out)["environment"]
    world.people["agent"] = {
        k: environment[k]
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    before = world.events()
    code, out, err = world.cli("agent", "apply", str(world.contracts), "--yes")
    assert code == 0, err
    assert "No changes" in out
    assert world.events() == before
    # With work to do the same session is refused before anything changes.
    code, _, err = world.cli("agent", "apply", str(world.with_new_agent()), "--yes")
    assert code == 1 and "an agent never manages agents" in err, err
    with open_state(world.state_url) as state:
        assert "next-agent" not in {a.name for a in state.list_agents()}


def test_the_runtime_principal_starts_runs_and_manages_nothing(world: World) -> None:
    """A shell inside an agent run that drops the agent's keys falls back to the
    runtime host's profile: that principal may exec (and kill), nothing more."""
    approval = world.request_approval()
    before = len(world.events())
    attempts = [
        ("approve", approval),
        ("revive", "reader-agent", "--reason", "x"),
        ("apply", str(world.with_new_agent()), "--yes"),
        ("rotate", "reader-agent"),
    ]
    for argv in attempts:
        code, _, err = world.cli("", *argv)  # no keys: the runtime profile answers
        assert code == 1 and "is the runtime principal" in err, (argv, err)
    refused = world.events("refused")
    assert [e.detail["command"] for e in refused] == [a[0] for a in attempts]
    assert {e.detail["principal"] for e in refused} == {world.runtime_arn}
    assert len(world.events()) == before + len(attempts)
    with open_state(world.state_url) as state:
        record = state.get_approval(approval)
    assert record is not None and record.status == "pending"
    # What the runtime host is for still works.
    code, _, err = world.cli("", "exec", "reader-agent", "--", "true")
    assert code == 0, err


def test_agentctl_operator_and_agentctl_now_change_nothing(world: World) -> None:
    approval = world.request_approval()
    forged = {"AGENTCTL_OPERATOR": "bob", "AGENTCTL_NOW": "2031-01-01T00:00:00+00:00"}

    # alice asked; saying she is bob does not let her approve.
    code, _, err = world.cli("alice", "approve", approval, env=forged)
    assert code == 1 and "alice@company.com requested" in err
    assert world.cli("alice", "--operator", "bob", "approve", approval)[0] == 2  # no such option

    code, _, err = world.cli("bob", "approve", approval, env=forged)
    assert code == 0, err
    (event,) = [e for e in world.events("approval.approve") if e.result == "success"]
    assert event.operator == "bob"
    # Recorded on the real clock, not the one in the environment.
    assert abs(event.time - datetime.now(UTC)) < timedelta(days=1)
    # Four years on the agent's contract would have expired; it has not.
    assert world.cli("alice", "exec", "reader-agent", "--", "true", env=forged)[0] == 0


def test_on_behalf_of_root_is_refused_and_the_asserting_principal_recorded(world: World) -> None:
    code, _, err = world.cli("alice", "exec", "release-agent", "-u", "root", "--", "true")
    assert code == 1 and "not an e-mail address" in err
    code, _, err = world.cli(
        "alice", "exec", "release-agent", "-u", "eve@evil.example", "--", "true"
    )
    assert code == 1 and "may act only for *@company.com" in err
    code, _, err = world.cli(
        "alice", "exec", "release-agent", "-u", "amit@company.com", "--", "true"
    )
    assert code == 1 and "needs approval" in err  # accepted: now it waits for an approver
    (request,) = world.events("approval.request")
    assert request.on_behalf_of == "amit@company.com"
    assert request.detail["principal"] == f"arn:aws:iam::{ACCOUNT}:user/alice"


def test_an_unverifiable_caller_changes_nothing(world: World) -> None:
    before = len(world.events())
    world.people["nobody"] = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE12",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-key-for-anything-000",
    }
    code, _, err = world.cli("nobody", "kill", "reader-agent", "--yes")
    assert code == 1
    assert "cannot verify who you are: AWS rejected the credentials" in err
    assert len(err.strip().splitlines()) <= 2, err
    # no credentials at all (not even the runtime principal's profile)
    code, _, err = world.cli(
        "", "kill", "reader-agent", "--yes", env={"AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    )
    assert code == 1 and "cannot verify who you are" in err
    assert len(world.events()) == before
    role = world.server.client("iam")
    with world.server.unenforced():
        names = role.list_role_policies(RoleName="agentctl-reader-agent")["PolicyNames"]
    assert names == ["agentctl-grant"]


def test_read_only_commands_need_no_identity(world: World) -> None:
    before = len(world.events())
    for argv in (
        ("status",),
        ("list", "-o", "json"),
        ("approvals",),
        ("audit",),
        ("validate", str(world.contracts)),
        # tables only, no agent, approval or event: verifies nobody (SECURITY.md)
        ("state", "migrate"),
    ):
        code, _, err = world.cli("", *argv)
        assert code == 0, (argv, err)
    assert len(world.events()) == before


# -- GitHub as the verifier where AWS is not configured ---------------------------------------


@pytest.fixture
def github_users() -> Iterator[GitHubEmulator]:
    """The GitHub emulator: GET /user answers a person's own token with its
    login, an installation token with 403, anything else with 401."""
    with GitHubEmulator() as emu:
        yield emu


def test_without_aws_a_github_user_token_names_the_person(
    github_users: GitHubEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(("AGENTCTL_", "AWS_", "GH_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "agentctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": state_url,
                "journal": str(tmp_path / "j.jsonl"),
                "github": {"base_url": github_users.url},
            }
        ),
        "utf-8",
    )
    monkeypatch.setenv("AGENTCTL_CONFIG", str(config))
    expires = datetime.now(UTC) + timedelta(hours=1)
    with open_state(state_url) as state:
        approval = state.create_approval(
            agent="ghost-agent", requester="someone@company.com", command="true", expires_at=expires
        )

    monkeypatch.setenv("GH_TOKEN", "gho_" + "x" * 36)  # no such token
    assert run(["deny", approval.id]) == 1
    assert "cannot verify who you are: GitHub rejected the token" in capsys.readouterr().err

    monkeypatch.setenv("GH_TOKEN", github_users.create_user_token("octo-alice"))
    assert run(["deny", approval.id]) == 1  # verified, but not an approver of ghost-agent
    err = capsys.readouterr().err
    assert "octo-alice (github:user/octo-alice) is not an approver of ghost-agent" in err
    with open_state(state_url) as state:
        (event,) = state.audit_events(action="approval.deny")
    assert (event.operator, event.detail["principal"]) == ("octo-alice", "github:user/octo-alice")


# -- the GitHub emulator: an agent's installation token is no person ------------------------

GITHUB_AGENT_SHELL = r"""
py=$1 cfg=$2 state=$3 approval=$4 out=$5
for attempt in "approve $approval" "deny $approval" "revive pr-review-agent --reason back" \
        "kill pr-review-agent --yes" "rotate pr-review-agent"; do
    # The agent says it is the operator: agentctl asks GitHub instead.
    AGENTCTL_OPERATOR=tester@example.com "$py" -m agentctl --config "$cfg" --state "$state" \
        $attempt >/dev/null 2>>"$out.err"
    echo $? >>"$out"
done
"""


def test_inside_a_github_agents_shell_its_installation_token_is_refused(
    github_world: GitHubWorld, tmp_path: Path
) -> None:
    """`agentctl exec pr-review-agent -- sh` on a host without AWS: the shell
    holds GH_TOKEN = the agent's installation token, which GitHub's GET /user
    (the emulator) refuses as no person; every mutating command is refused."""
    world = github_world
    contract = contract_for("pr-review-agent", {"repositories": [f"{ORG}/api"]})
    world.install(int(world.register(contract)["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    config = world.write_config()
    state = world.open_state()
    approval = state.create_approval(
        agent="pr-review-agent",
        requester="someone@example.com",
        command="true",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    before = {e.id for e in state.audit_events()}
    out = tmp_path / "attempts"
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentctl",
            "--config",
            str(config),
            "--state",
            world.state_url,
            "exec",
            "pr-review-agent",
            "--",
            "sh",
            "-c",
            GITHUB_AGENT_SHELL,
            "sh",
            sys.executable,
            str(config),
            world.state_url,
            approval.id,
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # The operator running exec is verified by moto's STS (the world's IAM
        # user); exec hands the shell none of those AWS variables.
        env={**os.environ, "HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text().split() == ["1"] * 5
    errors = out.with_suffix(".err").read_text()
    assert errors.count("an App installation token is not a person") == 5, errors
    assert "Traceback" not in errors

    state = world.open_state()
    record = state.get_approval(approval.id)
    assert record is not None and record.status == "pending"
    agent = state.get_agent("pr-review-agent")
    assert agent is not None and agent.status.value == "active"
    # Only the exec run itself was recorded, under the verified operator.
    runs = [e for e in state.audit_events() if e.id not in before]
    assert runs and {e.operator for e in runs} == {"tester@example.com"}
    assert not [e for e in runs if e.action.startswith(("approval.", "kill", "revive", "rotate"))]
