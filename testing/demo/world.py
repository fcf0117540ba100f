"""The demo's world: a local AWS (moto, IAM enforced) and the GitHub emulator,
an operator holding only the shipped least-privilege policy, the resources the
shipped contracts name, and an org with repositories and a pull request.
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

import boto3
import requests
import yaml
from moto.server import ThreadedMotoServer

from testing.github import GitHubEmulator

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


def operator_policy() -> str:
    return (repo_root() / "policies" / "operator-policy.json").read_text(encoding="utf-8")


@contextmanager
def local_servers() -> Iterator[tuple[str, GitHubEmulator]]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    github = GitHubEmulator()
    github.start()
    try:
        yield f"http://{host}:{port}", github
    finally:
        github.stop()
        moto.stop()


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


def build_world(aws_url: str, github: GitHubEmulator, workdir: Path) -> dict[str, str]:
    """An operator with only the shipped policy, a boundary, the resources the
    contracts name, an org with repositories; returns the CLI's environment."""
    admin = {"aws_access_key_id": "demo-admin", "aws_secret_access_key": "demo-admin"}
    iam = boto3.client("iam", endpoint_url=aws_url, region_name=REGION, **admin)
    user = iam.create_user(UserName="agentctl-operator")["User"]
    policy = iam.create_policy(PolicyName="agentctl-operator", PolicyDocument=operator_policy())
    iam.attach_user_policy(UserName="agentctl-operator", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="agentctl-operator")["AccessKey"]
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
            "runtime_principal": user["Arn"],
            "permissions_boundary": boundary,
        },
        "github": {"base_url": github.url, "web_url": github.url, "organization": ORG},
        "secrets": {"backend": "encrypted-file", "path": str(workdir / "state" / "secrets.enc")},
    }
    (workdir / "agentctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    shutil.copytree(shipped_contracts(), workdir / "contracts")
    shift_expiries(workdir / "contracts", datetime.now(UTC).date() - CONTRACTS_WRITTEN)
    # From here on the local AWS checks every request against IAM policies.
    requests.post(f"{aws_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCTL_"))}
    env.update(
        {
            "AGENTCTL_CONFIG": str(workdir / "agentctl.yaml"),
            "AGENTCTL_OPERATOR": "alice@company.com",
            "AGENTCTL_KEYRING_PASSPHRASE": "demo-only-passphrase",
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
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
    return env
