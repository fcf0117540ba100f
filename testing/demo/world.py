"""The demo's world: a local AWS (moto, IAM enforced), the GitHub emulator and
the Jira emulator, an operator holding only the shipped least-privilege policy,
the resources the shipped contracts name, an org with repositories and a pull
request, and a Jira site with projects SEC and OPS.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
import yaml
from moto.server import ThreadedMotoServer

from testing.github import GitHubEmulator
from testing.jira import JiraEmulator

REGION = "us-east-1"
FINDINGS_BUCKET = "acme-security-findings"
ORG = "acme"
# The shipped contracts' expiry dates were written on this day; the demo runs
# with the real clock, so it moves them by the days since then.
CONTRACTS_WRITTEN = date(2026, 11, 28)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def shipped_contracts() -> Path:
    return repo_root() / "contracts"


def generated_policy(kind: str, boundary: str) -> str:
    """`agentctl policy KIND` for the demo account: what a real account attaches."""
    from agentctl.providers.aws.access import generate
    from agentctl.providers.aws.settings import AwsSettings

    return json.dumps(generate(kind, AwsSettings(permissions_boundary=boundary)))


def _user(iam: Any, name: str, document: str) -> tuple[str, dict[str, str]]:
    user = iam.create_user(UserName=name)["User"]
    policy = iam.create_policy(PolicyName=name, PolicyDocument=document)
    iam.attach_user_policy(UserName=name, PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return str(user["Arn"]), key


@contextmanager
def local_servers() -> Iterator[tuple[str, GitHubEmulator, JiraEmulator]]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    github = GitHubEmulator()
    github.start()
    jira = JiraEmulator()
    jira.start()
    try:
        yield f"http://{host}:{port}", github, jira
    finally:
        jira.stop()
        github.stop()
        moto.stop()


# The friendly scopes the shipped pr-review-agent contract grants in Jira, as
# the token scopes an organisation admin picks for its service account.
PR_REVIEW_TOKEN_SCOPES = ["read:jira-user", "read:jira-work", "write:jira-work"]


def build_jira(jira: JiraEmulator, workdir: Path, contract_expiry: date) -> dict[str, str]:
    """Projects SEC and OPS with an issue each, and what an organisation admin does by
    hand: a service account for pr-review-agent and its scoped token (in a file)."""
    for key, summary in (("SEC", "Rotate the leaked staging key"), ("OPS", "Resize the db")):
        jira.create_project(key, f"{key} project")
        jira.create_issue(key, summary)
    account_id, _ = jira.create_service_account("pr-review-agent")
    expires = min(
        datetime.now(UTC) + timedelta(days=90),
        datetime.combine(contract_expiry, datetime.min.time(), tzinfo=UTC),
    )
    _, token = jira.create_token(
        account_id, label="pr-review-agent", scopes=PR_REVIEW_TOKEN_SCOPES, expires=expires
    )
    handover = workdir / "handover"
    handover.mkdir(mode=0o700)
    fd = os.open(handover / "pr-review-agent.jira-token", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return {
        "DEMO_JIRA_ACCOUNT_ID": account_id,
        "DEMO_JIRA_TOKEN_FILE": str(handover / "pr-review-agent.jira-token"),
        "AGENTCTL_JIRA_ADMIN_TOKEN": jira.admin_token(),
        "AGENTCTL_JIRA_ADMIN_API_KEY": jira.create_admin_key()[1],
    }


def shift_expiries(folder: Path, by: timedelta) -> None:
    """Move every contract's expiry by ``by``: the story (what is due within 90
    days, what is still valid) stays the same on any real day."""
    for path in folder.glob("*.yaml"):
        text = path.read_text("utf-8")
        path.write_text(
            re.sub(
                r"^expiry: (\d{4}-\d{2}-\d{2})",
                lambda m: f"expiry: {(date.fromisoformat(m.group(1)) + by).isoformat()}",
                text,
                flags=re.MULTILINE,
            ),
            "utf-8",
        )


def build_world(
    aws_url: str, github: GitHubEmulator, jira: JiraEmulator, workdir: Path
) -> dict[str, str]:
    """An operator with only the shipped policy, a boundary, the resources the
    contracts name, an org with repositories; returns the CLI's environment."""
    admin = {"aws_access_key_id": "demo-admin", "aws_secret_access_key": "demo-admin"}
    iam = boto3.client("iam", endpoint_url=aws_url, region_name=REGION, **admin)
    # bob approves release runs: an IAM user with no permissions at all, whose
    # name agentctl verifies with sts:GetCallerIdentity.
    iam.create_user(UserName="bob@company.com")
    bob = iam.create_access_key(UserName="bob@company.com")["AccessKey"]
    boundary = iam.create_policy(
        PolicyName="agentctl-agent-boundary",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "s3:*",
                            "logs:*",
                            "securityhub:Get*",
                            "guardduty:List*",
                            "guardduty:Get*",
                        ],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )["Policy"]["Arn"]
    # The operator (apply, kill, ...) and the runtime principal (exec) are two
    # identities, each holding only its generated policy.
    operator_arn, key = _user(iam, "agentctl-operator", generated_policy("operator", boundary))
    runtime_arn, runtime_key = _user(iam, "agentctl-runtime", generated_policy("runtime", boundary))
    credentials_file = workdir / "aws-credentials"
    credentials_file.write_text(
        f"[agentctl-runtime]\naws_access_key_id = {runtime_key['AccessKeyId']}\n"
        f"aws_secret_access_key = {runtime_key['SecretAccessKey']}\n",
        "utf-8",
    )
    s3 = boto3.client("s3", endpoint_url=aws_url, region_name=REGION, **admin)
    for bucket in ("acme-api-releases", FINDINGS_BUCKET):
        s3.create_bucket(Bucket=bucket)

    github.create_org(ORG)
    for repo in ("api", "security-triage"):
        github.create_repo(ORG, repo)
    pull = github.create_pull(ORG, "api", "Add rate limiting", head="feature/rate-limit")

    config = {
        "state": str(workdir / "state" / "agentctl.db"),
        "journal": str(workdir / "state" / "audit-journal.jsonl"),
        "aws": {
            "endpoint_url": aws_url,
            "region": REGION,
            "runtime_principal": runtime_arn,
            "runtime_profile": "agentctl-runtime",
            "permissions_boundary": boundary,
        },
        "github": {"base_url": github.url, "web_url": github.url, "organization": ORG},
        "jira": {
            "site_url": jira.url,
            "api_url": jira.url,
            "org_id": jira.org_id,
            "admin_email": jira.admin_email,
            "default_projects": "SEC",
        },
        "secrets": {"backend": "encrypted-file", "path": str(workdir / "state" / "secrets.enc")},
        # agentctl verifies who runs it (sts:GetCallerIdentity); this names the operator.
        "people": [{"principal": operator_arn, "person": "alice@company.com"}],
    }
    (workdir / "agentctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    shutil.copytree(shipped_contracts(), workdir / "contracts")
    shift = datetime.now(UTC).date() - CONTRACTS_WRITTEN
    shift_expiries(workdir / "contracts", shift)
    jira_env = build_jira(jira, workdir, date(2027, 3, 1) + shift)
    # From here on the local AWS checks every request against IAM policies.
    requests.post(f"{aws_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCTL_"))}
    env.update(
        {
            "AGENTCTL_CONFIG": str(workdir / "agentctl.yaml"),
            "AGENTCTL_KEYRING_PASSPHRASE": "demo-only-passphrase",
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
            "COLUMNS": "160",
            # `python` in the commands below is this interpreter, with agentctl installed.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            # ... and `python -m testing.demo_agent` finds the test world of this checkout.
            "PYTHONPATH": os.pathsep.join(
                [str(repo_root()), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
    )
    env["DEMO_PULL_NUMBER"] = str(pull["number"])
    env.update(jira_env)
    env["DEMO_BOB_ACCESS_KEY_ID"] = bob["AccessKeyId"]
    env["DEMO_BOB_SECRET_ACCESS_KEY"] = bob["SecretAccessKey"]
    return env
