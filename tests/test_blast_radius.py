"""The kill-one-agent promise, at scale: 50 agents, each running with its own
live AWS session, GitHub token and Jira service-account token; kill one; that
one is denied in all three systems with the credentials it already holds, and
all 49 others still succeed.

Real moto server with IAM enforcement on (the operator holds only the shipped
policy), the real GitHub emulator with dedicated GitHub Apps, the real Jira
emulator with one service account and project role per agent, real SQLite
state and an encrypted-file secret store.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import botocore.exceptions
import httpx
import pytest
from aws_helpers import MotoServer, aws_settings, create_operator
from contract_helpers import TODAY, frozen_now, s3_read, write_contract
from github_helpers import OPERATOR, GitHubWorld
from jira_helpers import PR_SCOPES, JiraWorld

from agentctl.contract import load_contracts
from agentctl.execution import RunGrant, RunRequest, Runs
from agentctl.render import json_data
from agentctl.runtime import build_engine
from agentctl.secrets import Secret

AGENTS = 50
BUCKET = "blast-radius-data"


def probe(
    server: MotoServer, github_url: str, jira_issue: str, grant: RunGrant
) -> tuple[bool, bool, bool]:
    """One AWS, one GitHub and one Jira call with this run's credentials: (aws, github, jira ok)."""
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
        f"{github_url}/repos/acme/api",
        headers={"Authorization": f"Bearer {env['GITHUB_TOKEN']}"},
        timeout=10,
    )
    issue = httpx.get(
        f"{env['JIRA_BASE_URL']}/rest/api/3/issue/{jira_issue}",
        auth=(env["JIRA_USER"], env["JIRA_API_TOKEN"]),
        timeout=10,
    )
    return aws_ok, response.status_code == 200, issue.status_code == 200


@pytest.mark.slow
def test_killing_one_of_fifty_running_agents_touches_no_other(
    aws: MotoServer, github_world: GitHubWorld, jira_world: JiraWorld
) -> None:
    operator = create_operator(aws)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    github_config = github_world.config()
    config = dataclasses.replace(
        github_config,
        provider_settings={
            **github_config.provider_settings,
            "aws": aws_settings(aws, runtime_principal=operator.runtime_arn),
            "jira": jira_world.settings(),
        },
    )
    engine = build_engine(
        config,
        operator=OPERATOR,
        clock=frozen_now,
        client_options=operator.credentials,
        state_factory=lambda: github_world.open_state(),
        secrets_factory=github_world.secrets,
    )
    folder = github_world.root / "contracts"
    names = [f"agent-{i:02d}" for i in range(AGENTS)]
    for name in names:
        write_contract(
            folder,
            name,
            aws=s3_read(BUCKET),
            github={"repositories": ["acme/api"], "scopes": ["repo:read"]},
            extra={"jira": {"projects": ["SEC"], "scopes": PR_SCOPES}},
        )
    report = load_contracts([folder], today=TODAY)
    assert report.ok and len(report.contracts) == AGENTS
    github = engine.providers["github"]
    for contract in report.contracts:  # the manifest flow, then an org admin installs it
        app = github_world.register(contract, provider=github)  # type: ignore[arg-type]
        github_world.install(int(app["app_id"]), repositories=["api"])
    jira = engine.providers["jira"]
    for contract in report.contracts:  # an org admin made a service account and its token
        account = jira_world.service_account(
            contract.name, expires=datetime(2027, 2, 28, tzinfo=UTC)
        )
        jira.register(contract, account.account_id, Secret(account.token))  # type: ignore[attr-defined]
    aws.enforce_iam(0)

    applied = engine.apply(engine.plan(report.contracts))
    assert applied.ok, [a.error for a in applied.agents if not a.ok]

    runs = Runs(engine)
    grants = {name: runs.grant(RunRequest(agent=name, command=("review",))) for name in names}

    def probe_all() -> dict[str, tuple[bool, bool]]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = pool.map(
                lambda n: probe(aws, github_world.emu.url, jira_world.issues["SEC"], grants[n]),
                names,
            )
            return dict(zip(names, results, strict=True))

    assert probe_all() == dict.fromkeys(names, (True, True, True))

    victim = "agent-17"
    killed = engine.kill(victim, "blast-radius test")
    assert killed.ok, json_data(killed)

    after = probe_all()
    # Denied in AWS, GitHub and Jira, with the same credentials.
    assert after.pop(victim) == (False, False, False)
    assert after == dict.fromkeys(set(names) - {victim}, (True, True, True))
    assert {a.name: a.status for a in engine.status()} == {
        name: ("killed" if name == victim else "active") for name in names
    }
