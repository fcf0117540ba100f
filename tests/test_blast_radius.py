"""The kill-one-agent promise, at scale: 50 agents, each running with its own
live AWS session and GitHub token; kill one; that one is denied in both systems
with the credentials it already holds, and all 49 others still succeed.

Real moto server with IAM enforcement on (the operator holds only the shipped
policy), the real GitHub emulator, dedicated GitHub Apps, real SQLite state and
an encrypted-file secret store.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import botocore.exceptions
import httpx
import pytest
from aws_helpers import MotoServer, aws_settings, create_operator
from contract_helpers import TODAY, frozen_now, s3_read, write_contract
from github_helpers import OPERATOR, GitHubWorld

from agentctl.contract import load_contracts
from agentctl.execution import RunGrant, RunRequest, Runs
from agentctl.render import json_data
from agentctl.runtime import build_engine

AGENTS = 50
BUCKET = "blast-radius-data"


def probe(server: MotoServer, github_url: str, grant: RunGrant) -> tuple[bool, bool]:
    """One AWS call and one GitHub call with this run's credentials: (aws ok, github ok)."""
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
    return aws_ok, response.status_code == 200


@pytest.mark.slow
def test_killing_one_of_fifty_running_agents_touches_no_other(
    aws: MotoServer, github_world: GitHubWorld
) -> None:
    operator = create_operator(aws)
    aws.client("s3").create_bucket(Bucket=BUCKET)
    github_config = github_world.config()
    config = dataclasses.replace(
        github_config,
        provider_settings={
            **github_config.provider_settings,
            "aws": aws_settings(aws, runtime_principal=operator.arn),
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
        )
    report = load_contracts([folder], today=TODAY)
    assert report.ok and len(report.contracts) == AGENTS
    github = engine.providers["github"]
    for contract in report.contracts:  # the manifest flow, then an org admin installs it
        app = github_world.register(contract, provider=github)  # type: ignore[arg-type]
        github_world.install(int(app["app_id"]), repositories=["api"])
    aws.enforce_iam(0)

    applied = engine.apply(engine.plan(report.contracts))
    assert applied.ok, [a.error for a in applied.agents if not a.ok]

    runs = Runs(engine)
    grants = {name: runs.grant(RunRequest(agent=name, command=("review",))) for name in names}

    def probe_all() -> dict[str, tuple[bool, bool]]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = pool.map(lambda n: probe(aws, github_world.emu.url, grants[n]), names)
            return dict(zip(names, results, strict=True))

    assert probe_all() == dict.fromkeys(names, (True, True))

    victim = "agent-17"
    killed = engine.kill(victim, "blast-radius test")
    assert killed.ok, json_data(killed)

    after = probe_all()
    assert after.pop(victim) == (False, False)  # denied in AWS and in GitHub, same credentials
    assert after == dict.fromkeys(set(names) - {victim}, (True, True))
    assert {a.name: a.status for a in engine.status()} == {
        name: ("killed" if name == victim else "active") for name in names
    }
