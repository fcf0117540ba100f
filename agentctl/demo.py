"""`make demo`: the whole agentctl story against local servers.

Starts a local AWS (moto, IAM enforcement on) and the local GitHub emulator in
this process, sets up a throw-away world (an operator holding only the shipped
least-privilege policy, an org with repositories and a pull request), then runs
the real CLI as a user would — every command is printed before it runs:

    validate → github register → plan → apply → exec on behalf of a user →
    audit → kill one agent: its running credentials are denied while another
    agent keeps working → status → audit verify → expiring

The servers stop when it ends; nothing is left running. ``--summary FILE``
writes the key outcomes as JSON (the end-to-end test reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from importlib import resources
from pathlib import Path
from typing import Any

REGION = "us-east-1"
FINDINGS_BUCKET = "acme-security-findings"
ORG = "acme"
DEMO_NOW = "2026-11-28T12:00:00+00:00"  # the contracts' expiries are judged from here
BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def shipped_contracts() -> Path:
    return _repo_root() / "contracts"


def operator_policy() -> str:
    packaged = resources.files("agentctl").joinpath("policies", "operator-policy.json")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (_repo_root() / "policies" / "operator-policy.json").read_text(encoding="utf-8")


@dataclass
class Demo:
    workdir: Path
    env: dict[str, str]
    color: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(f"\n{BOLD if self.color else ''}## {text}{RESET if self.color else ''}", flush=True)

    def note(self, text: str) -> None:
        print(f"{DIM if self.color else ''}   {text}{RESET if self.color else ''}", flush=True)

    def agentctl(
        self, *args: str, expect: Sequence[int] = (0,), show: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI, show the command and its output, check its exit code.
        ``show=False`` is for the demo's own checks of what happened."""
        if show:
            print(f"\n$ agentctl {shlex.join(args)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "agentctl", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if show:
            sys.stdout.write(result.stdout)
            sys.stdout.write(result.stderr)
            sys.stdout.flush()
        if result.returncode not in expect:
            raise SystemExit(
                f"demo: `agentctl {shlex.join(args)}` exited {result.returncode}, "
                f"expected {' or '.join(map(str, expect))}"
            )
        return result

    def background(self, *args: str) -> subprocess.Popen[str]:
        print(f"\n$ agentctl {shlex.join(args)} &", flush=True)
        return subprocess.Popen(
            [sys.executable, "-m", "agentctl", *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@contextmanager
def local_servers() -> Iterator[tuple[str, Any]]:
    import logging

    from moto.server import ThreadedMotoServer

    from agentctl.testing.github_emulator import GitHubEmulator

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


def build_world(aws_url: str, github: Any, workdir: Path) -> dict[str, str]:
    """An operator with only the shipped policy, a boundary, the resources the
    contracts name, an org with repositories; returns the CLI's environment."""
    import boto3
    import requests

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
    import yaml

    (workdir / "agentctl.yaml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    shutil.copytree(shipped_contracts(), workdir / "contracts")
    # From here on the local AWS checks every request against IAM policies.
    requests.post(f"{aws_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCTL_"))}
    env.update(
        {
            "AGENTCTL_CONFIG": str(workdir / "agentctl.yaml"),
            "AGENTCTL_OPERATOR": "alice@company.com",
            "AGENTCTL_NOW": DEMO_NOW,
            "AGENTCTL_KEYRING_PASSPHRASE": "demo-only-passphrase",
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "COLUMNS": "160",
            # `python` in the commands below is this interpreter, with agentctl installed.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    env["DEMO_PULL_NUMBER"] = str(pull["number"])
    return env


def must_find(pattern: str, text: str, what: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"demo: expected {what} in the output above")
    return match.group(1)


def first_report(process: subprocess.Popen[str]) -> str:
    """The first line a watcher prints about its calls (agentctl's own line aside)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("["):
            return line.rstrip()
    raise SystemExit("demo: an agent stopped before reporting")


def last_report(output: str) -> str:
    return [line for line in output.splitlines() if line.startswith("[")][-1]


def register_app(demo: Demo, github: Any, agent: str, repositories: list[str] | None) -> None:
    """`agentctl github register`, then what a person does in the browser."""
    first = demo.agentctl("github", "register", agent, "--contract", "contracts/")
    page = Path(must_find(r"Open (\S+\.html)", first.stdout, "the manifest page")).read_text(
        "utf-8"
    )
    manifest = json.loads(
        unescape(must_find(r"name='manifest' value='([^']*)'", page, "a manifest"))
    )
    code = github.create_manifest_code(manifest, owner=ORG)
    demo.note(f"(browser) the page posts the manifest to GitHub; you click Create; code={code}")
    second = demo.agentctl("github", "register", agent, "--contract", "contracts/", "--code", code)
    app_id = int(must_find(r"\(id (\d+)\)", second.stdout, "the App id"))
    github.install_app(app_id, ORG, repositories=repositories)
    where = ", ".join(repositories) if repositories else "all repositories"
    demo.note(f"(browser) an {ORG} admin installs the App on {where}")


def run_demo(workdir: Path, color: bool) -> dict[str, Any]:
    with local_servers() as (aws_url, github):
        env = build_world(aws_url, github, workdir)
        demo = Demo(workdir, env, color)
        pull = env["DEMO_PULL_NUMBER"]
        demo.note(f"local AWS (moto, IAM enforced): {aws_url}   local GitHub: {github.url}")
        demo.note(
            f"working directory: {workdir}  (operator: alice@company.com, holding only "
            "policies/operator-policy.json)"
        )

        demo.say("1. Validate the contracts (what CI runs on every pull request)")
        demo.agentctl("validate", "contracts/")

        demo.say("2. Give the agents that use GitHub their own GitHub App")
        register_app(demo, github, "pr-review-agent", None)
        register_app(demo, github, "security-triage-agent", ["security-triage"])
        register_app(demo, github, "release-agent", ["api"])

        demo.say("3. Plan, then apply: one IAM role per agent, Apps recorded")
        demo.agentctl("plan", "contracts/")
        demo.agentctl("apply", "contracts/", "--yes")
        demo.agentctl("apply", "contracts/", "--yes")
        demo.note("a second apply changes nothing")

        demo.say("4. The PR-review agent reviews a pull request for Amit")
        review = demo.agentctl(
            "exec",
            "pr-review-agent",
            "--on-behalf-of",
            "amit@company.com",
            "--trigger",
            f"webhook/pr-opened/{pull}",
            "--",
            "python",
            "-m",
            "agentctl.testing.demo_agent",
            "review",
            f"{ORG}/api",
            pull,
        )
        demo.summary["review_author"] = must_find(
            r" as (\S+) ", review.stdout, "the comment author"
        )

        demo.say("5. The audit trail has both sides: the agent acted, for Amit")
        demo.agentctl("audit", "--agent", "pr-review-agent")
        listing = demo.agentctl(
            "audit", "--agent", "pr-review-agent", "--output", "json", show=False
        )
        grants = [
            e for e in json.loads(listing.stdout)["events"] if e["action"] == "credentials.issue"
        ]
        demo.summary["audit_grant"] = {
            k: grants[-1][k] for k in ("actor", "on_behalf_of", "trigger", "scope")
        }

        demo.say("6. An approval-required agent cannot run without someone else's approval")
        request = demo.agentctl("exec", "release-agent", "--", "true", expect=(1,))
        approval = must_find(r"agentctl approve (apr-\w+)", request.stderr, "an approval id")
        demo.agentctl("approvals")
        demo.env["AGENTCTL_OPERATOR"] = "bob@company.com"
        demo.agentctl("approve", approval)
        demo.env["AGENTCTL_OPERATOR"] = "alice@company.com"
        demo.agentctl("exec", "release-agent", "--approval", approval, "--", "true")

        demo.say("7. Incident: the triage agent misbehaves. Two agents are running right now")
        stop = workdir / "stop-watchers"
        triage = demo.background(
            "exec",
            "security-triage-agent",
            "--trigger",
            "schedule/hourly",
            "--",
            "python",
            "-m",
            "agentctl.testing.demo_agent",
            "watch",
            str(stop),
            "--github",
            f"{ORG}/security-triage",
            "--s3",
            FINDINGS_BUCKET,
        )
        reviewer = demo.background(
            "exec",
            "pr-review-agent",
            "--on-behalf-of",
            "amit@company.com",
            "--trigger",
            f"webhook/pr-synchronize/{pull}",
            "--",
            "python",
            "-m",
            "agentctl.testing.demo_agent",
            "watch",
            str(stop),
            "--github",
            f"{ORG}/api",
        )
        before = [first_report(triage), first_report(reviewer)]
        demo.note("both agents work with their own credentials:")
        for line in before:
            print(f"   {line}")
        started = time.monotonic()
        demo.agentctl(
            "kill",
            "security-triage-agent",
            "--reason",
            "INC-4521: filing hundreds of issues",
            "--yes",
        )
        demo.summary["kill_seconds"] = round(time.monotonic() - started, 2)
        time.sleep(1.5)  # a few more calls each, with the credentials they already hold
        stop.touch()
        triage_out, _ = triage.communicate(timeout=60)
        reviewer_out, _ = reviewer.communicate(timeout=60)
        after = [last_report(triage_out), last_report(reviewer_out)]
        demo.note("after the kill, with the very same credentials:")
        for line in after:
            print(f"   {line}")
        demo.summary["killed_was_ok_before"] = "DENIED" not in before[0]
        demo.summary["killed_denied"] = after[0].count("DENIED") == 2
        demo.summary["other_still_ok"] = "DENIED" not in after[1] and "DENIED" not in reviewer_out

        demo.say("8. A killed agent stays killed: apply does not revive it; exec refuses it")
        demo.agentctl("apply", "contracts/", "--yes")
        demo.agentctl("exec", "security-triage-agent", "--", "true", expect=(1,))
        demo.agentctl("status")

        demo.say("9. Prove the audit trail is intact")
        demo.agentctl("audit", "verify")

        demo.say(
            "10. From cron: what expires soon, grouped by owner (exit 1 when something is due)"
        )
        demo.agentctl("expiring", "--days", "90", "contracts/", expect=(1,))
        demo.summary["ok"] = True
        return demo.summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, help="write the key outcomes as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="agentctl-demo-"))
    try:
        summary = run_demo(workdir, color=sys.stdout.isatty())
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print("\nDemo finished: every agent had its own identity; one was switched off, alone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
