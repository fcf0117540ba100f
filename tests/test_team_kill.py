"""A kill that holds for a team (issue 15), end to end.

Two operator "machines": A and B each have their own HOME (so their own
keyring, which holds nothing here), their own agentctl.yaml and their own AWS
identity (IAM users holding only the shipped operator policy, IAM enforcement
on). They share a PostgreSQL state store and the team secret store (AWS
Secrets Manager in moto). A registers the agents' GitHub Apps (the real
emulator), applies, and runs them with live credentials. B, who never saw any
of it, kills one with the real CLI: the agent's existing AWS session and
GitHub token are denied, its installation is suspended, nothing else moves.

Then the edges: C (B without a `github:` section) gets an actionable ✗ and
exit 1, never a ✓, and the agent is `kill-incomplete` until a kill from a
configured machine finishes it; a kill undone behind agentctl's back (deny
removed, trust reopened, installation unsuspended) is `kill-undone` in
`status --refresh` and exits 2 from `plan --detailed-exitcode`; kill again
restores it, and so does the next apply.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
import yaml
from aws_helpers import (
    REGION,
    MotoServer,
    aws_settings,
    create_operator,
    generated_policy,
)
from contract_helpers import TODAY, frozen_now, s3_read, write_contract
from github_helpers import ORG, GitHubWorld
from state_helpers import postgres_url  # noqa: F401  (fixture)
from test_secrets_manager import client_factory

from agentctl.cli.app import run
from agentctl.config import SecretsSettings
from agentctl.contract import load_contracts
from agentctl.execution import RunGrant, RunRequest, Runs
from agentctl.runtime import build_engine
from agentctl.secrets import SecretsManagerStore

BUCKET = "team-data"
AGENTS = ("triage-agent", "review-agent", "other-agent")


def probe(server: MotoServer, github_url: str, grant: RunGrant) -> tuple[bool, int]:
    """(the AWS session works, the HTTP status GitHub gives the token)."""
    env = grant.child_environment()
    s3 = server.client(
        "s3",
        {
            "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": env["AWS_SESSION_TOKEN"],
        },
    )
    try:
        s3.list_objects_v2(Bucket=BUCKET, MaxKeys=1)
        aws_ok = True
    except botocore.exceptions.ClientError:
        aws_ok = False
    response = httpx.get(
        f"{github_url}/repos/{ORG}/api",
        headers={"Authorization": f"Bearer {env['GITHUB_TOKEN']}"},
        timeout=10,
    )
    return aws_ok, response.status_code


def moto_secrets_resource_star(aws: MotoServer, user_name: str) -> None:
    """The operator policy's Secrets Manager statements, on resource ``*``.

    moto authorises Secrets Manager calls against resource ``*`` (its
    secretsmanager responses name no resource), so the shipped statements,
    scoped to ``secret:agentctl/*``, never match there. Which ARNs they cover
    is checked on the document in test_secrets_manager.py; here the same
    actions are allowed on ``*`` so the rest of the operator policy is
    enforced live.
    """
    statements = json.loads(generated_policy("operator"))["Statement"]
    actions = sorted(
        {a for s in statements if s["Sid"].startswith("AgentctlSecrets") for a in s["Action"]}
    )
    aws.client("iam").put_user_policy(
        UserName=user_name,
        PolicyName="moto-secrets-on-resource-star",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
        ),
    )


def machine_config(
    root: Path, aws: MotoServer, runtime_principal: str, state: str, github: dict[str, Any] | None
) -> Path:
    """One operator's agentctl.yaml: shared state and team secret store (and the
    team's runtime principal: the host that runs the agents)."""
    document: dict[str, Any] = {
        "state": state,
        "journal": str(root / "journal.jsonl"),
        "secrets": {
            "backend": "aws-secretsmanager",
            "endpoint_url": aws.url,
            "region": REGION,
        },
        "aws": {"endpoint_url": aws.url, "region": REGION, "runtime_principal": runtime_principal},
    }
    if github is not None:
        document["github"] = github
    root.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    path = root / "agentctl.yaml"
    path.write_text(yaml.safe_dump(document), "utf-8")
    return path


@dataclasses.dataclass
class Machine:
    """An operator's machine: its HOME, its config, its AWS identity."""

    name: str
    root: Path
    config: Path
    credentials: dict[str, str]
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def cli(self, *argv: str) -> tuple[int, str]:
        with self.monkeypatch.context() as env:
            env.setenv("HOME", str(self.root / "home"))
            env.setenv("AGENTCTL_CONFIG", str(self.config))
            env.setenv("AWS_ACCESS_KEY_ID", self.credentials["aws_access_key_id"])
            env.setenv("AWS_SECRET_ACCESS_KEY", self.credentials["aws_secret_access_key"])
            env.delenv("AGENTCTL_KEYRING_PASSPHRASE", raising=False)
            self.capsys.readouterr()
            code = run(list(argv), clock=frozen_now)  # who: the IAM user behind the keys
            return code, self.capsys.readouterr().out


@pytest.mark.postgres
def test_any_operator_kills_an_agent_another_applied_verified_in_every_system(
    aws: MotoServer,
    github_world: GitHubWorld,
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    operator_a = create_operator(aws, "operator-a")
    operator_b = create_operator(aws, "operator-b")
    for operator in (operator_a, operator_b):
        moto_secrets_resource_star(aws, operator.user_name)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    github = {
        "base_url": github_world.emu.url,
        "web_url": github_world.emu.url,
        "organization": ORG,
    }

    # -- machine A: registers, applies, runs -------------------------------------
    config_a = dataclasses.replace(
        github_world.config(),
        provider_settings={
            "github": github_world.settings(),
            "aws": aws_settings(aws, runtime_principal=operator_a.runtime_arn),
        },
        secrets=SecretsSettings(backend="aws-secretsmanager", endpoint_url=aws.url, region=REGION),
        state_url=postgres_url,
    )
    team_secrets_a = SecretsManagerStore(client_factory(aws, operator_a.credentials))
    engine_a = build_engine(
        config_a,
        operator="operator-a",
        clock=frozen_now,
        client_options=operator_a.credentials,
        secrets_factory=lambda: team_secrets_a,
    )
    folder = tmp_path / "contracts"
    for name in AGENTS:
        write_contract(
            folder,
            name,
            aws=s3_read(BUCKET),
            github={"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]},
        )
    report = load_contracts([folder], today=TODAY)
    assert report.ok
    installations = {}
    for contract in report.contracts:
        app = github_world.register(contract, provider=engine_a.providers["github"])  # type: ignore[arg-type]
        installations[contract.name] = github_world.install(
            int(app["app_id"]), repositories=["api"]
        )
    aws.enforce_iam(0)
    applied = engine_a.apply(engine_a.plan(report.contracts))
    assert applied.ok, [a.error for a in applied.agents]
    runs = Runs(engine_a)
    grants = {name: runs.grant(RunRequest(agent=name, command=("work",))) for name in AGENTS}
    for name in AGENTS:
        assert probe(aws, github_world.emu.url, grants[name]) == (True, 200)
    # Nothing of it lives on B's machine: the App keys and token values are in
    # the team store, the records in the shared state.
    machine_b = Machine(
        "operator-b",
        tmp_path / "b",
        machine_config(tmp_path / "b", aws, operator_a.runtime_arn, postgres_url, github),
        operator_b.credentials,
        monkeypatch,
        capsys,
    )
    assert not any((tmp_path / "b" / "home").iterdir())

    # -- B kills triage-agent: verified in AWS and GitHub ------------------------
    code, out = machine_b.cli("kill", "triage-agent", "--yes", "--reason", "INC-15", "-o", "json")
    assert code == 0, out
    killed = json.loads(out)
    by_provider = {p["provider"]: p for p in killed["providers"]}
    assert by_provider["aws"]["verified"] == [
        "AWSDenyAll attached",
        "inline deny agentctl-kill present",
        "trust policy locked",
    ]
    assert by_provider["github"]["ok"]
    assert (
        f"installation {installations['triage-agent']} suspended"
        in by_provider["github"]["verified"]
    )
    # The credentials the agent already holds: denied in AWS, 401 at GitHub.
    assert probe(aws, github_world.emu.url, grants["triage-agent"]) == (False, 401)
    assert github_world.installation(installations["triage-agent"])["suspended_at"] is not None
    for other in ("review-agent", "other-agent"):
        assert probe(aws, github_world.emu.url, grants[other]) == (True, 200)
        assert github_world.installation(installations[other])["suspended_at"] is None

    # -- C: B's machine without a github section ---------------------------------
    machine_c = Machine(
        "operator-c",
        tmp_path / "c",
        machine_config(tmp_path / "c", aws, operator_a.runtime_arn, postgres_url, None),
        operator_b.credentials,
        monkeypatch,
        capsys,
    )
    code, out = machine_c.cli("kill", "review-agent", "--yes", "--reason", "INC-16")
    assert code == 1, out
    assert "✓ github" not in out and "✗ github" in out
    review_installation = github_world.installation(installations["review-agent"])
    assert f"settings/installations/{installations['review-agent']}" in out
    assert "set github.organization: acme" in out and "kill-incomplete" in out
    assert review_installation["suspended_at"] is None  # C could not, and said so
    code, out = machine_c.cli("status", "review-agent", "-o", "json")
    assert json.loads(out)["agents"][0]["status"] == "kill-incomplete"
    code, out = machine_c.cli("expiring", str(folder), "-o", "json")
    kinds = {
        (item["agent"], item["kind"])
        for owner in json.loads(out)["owners"]
        for item in owner["items"]
    }
    assert ("review-agent", "kill-incomplete") in kinds
    # A configured machine finishes the kill.
    code, out = machine_b.cli("kill", "review-agent", "--yes", "--reason", "INC-16")
    assert code == 0, out
    assert github_world.installation(installations["review-agent"])["suspended_at"] is not None
    code, out = machine_b.cli("status", "review-agent", "-o", "json")
    assert json.loads(out)["agents"][0]["status"] == "killed"
    assert probe(aws, github_world.emu.url, grants["review-agent"]) == (False, 401)

    # -- someone undoes triage-agent's kill behind agentctl's back ----------------
    with aws.unenforced():
        iam = aws.client("iam")
        role = "agentctl-triage-agent"
        iam.delete_role_policy(RoleName=role, PolicyName="agentctl-kill")
        iam.detach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AWSDenyAll")
    with github_world.emu._lock:  # an org owner clicks "Unsuspend"
        github_world.emu._world.installations[installations["triage-agent"]].suspended_at = None
    code, out = machine_b.cli("status", "--refresh", "-o", "json")
    views = {a["name"]: a for a in json.loads(out)["agents"]}
    assert views["triage-agent"]["status"] == "kill-undone"
    undone = views["triage-agent"]["drift"]
    assert any(d.startswith("kill-undone: aws: ") for d in undone), undone
    assert any(d.startswith("kill-undone: github: ") for d in undone), undone
    assert views["review-agent"]["status"] == "killed" and views["review-agent"]["drift"] == []
    assert views["other-agent"]["status"] == "active", views["other-agent"]["drift"]
    code, out = machine_b.cli("plan", str(folder), "--detailed-exitcode", "-o", "json")
    assert code == 2
    plans = {a["agent"]: a for a in json.loads(out)["agents"]}
    assert plans["triage-agent"]["kill_undone"] and not plans["review-agent"]["kill_undone"]
    # kill again restores it, verified.
    code, out = machine_b.cli("kill", "triage-agent", "--yes", "--reason", "INC-15 again")
    assert code == 0, out
    code, out = machine_b.cli("status", "triage-agent", "--refresh", "-o", "json")
    view = json.loads(out)["agents"][0]
    assert (view["status"], view["drift"]) == ("killed", [])
    assert probe(aws, github_world.emu.url, grants["triage-agent"])[0] is False
    assert probe(aws, github_world.emu.url, grants["other-agent"]) == (True, 200)

    # Undone once more: a refreshing apply restores it too (its plan sees it, it re-kills).
    with github_world.emu._lock:
        github_world.emu._world.installations[installations["triage-agent"]].suspended_at = None
    code, out = machine_b.cli("apply", str(folder), "--refresh", "--yes", "-o", "json")
    assert code == 0, out
    assert github_world.installation(installations["triage-agent"])["suspended_at"] is not None
    code, out = machine_b.cli("status", "triage-agent", "--refresh", "-o", "json")
    view = json.loads(out)["agents"][0]
    assert (view["status"], view["drift"]) == ("killed", [])
    code, out = machine_b.cli("audit", "-o", "json")
    triggers = [e["trigger"] for e in json.loads(out)["events"] if e["action"] == "kill"]
    assert triggers[-1] == "apply/operator-b", triggers
