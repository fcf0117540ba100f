"""Benchmark: `agentctl credentials NAME` and `agentctl exec NAME -- true` as whole processes, vs. their floor.

Issue 19, row 5. One moto server, a few agents applied by `agentctl apply`
(SQLite state), then, interleaved round by round, each its own process:

- floor (credentials): a minimal boto3 script: ``import boto3``, one STS
  client, ``AssumeRole`` of the agent's role (source identity and session
  tag, as agentctl sends them), print the three ``export`` lines;
- ``agentctl credentials NAME`` (gates, state, audit event, then the same
  AssumeRole);
- floor (exec): the same script, then runs ``true`` with the credentials in
  its environment;
- ``agentctl exec NAME -- true``.

And the same two commands for an agent granted both AWS and GitHub (its own
GitHub App, registered with ``agentctl github register`` on the project's
GitHub emulator, installed on one repository, applied; App key in the
encrypted-file secret store, as on a headless host), against a minimal script
doing the same AssumeRole and the same GitHub token mint: PyJWT signs the App's
JWT with its private key (read from a file) and httpx posts ``POST
/app/installations/{id}/access_tokens`` with the permissions and repository
agentctl asks for. The emulator runs in its own process (``python -m
testing.github``). ``--aws-only`` leaves the GitHub rows out.

Prints medians and the median of per-round ratios. Target: each <= 1.5x its
floor. With ``--vs CHECKOUT`` (a folder holding another version's ``agentctl``
package, e.g. a ``git worktree``), that version's ``credentials`` and ``exec``
run too (PYTHONPATH=CHECKOUT), in the same rounds, with new/before ratios.

    .venv/bin/python bench/bench_cli_exec.py [--runs 5] [--quick] [--vs CHECKOUT] [--aws-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli_apply import RUNTIME_PRINCIPAL
from wholeproc import (
    ADMIN_KEYS,
    AGENTCTL,
    PYTHON,
    REGION,
    ROOT,
    Moto,
    ServerProcess,
    agent_name,
    boundary,
    clean_env,
    console_script,
    interleave,
    load_average,
    ratio,
    row,
    run,
    statements,
    write_contracts,
)

FLOOR = """
import subprocess, sys
import boto3
endpoint, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
c = sts.assume_role(RoleArn=f"arn:aws:iam::123456789012:role/agentctl/agentctl-{name}",
                    RoleSessionName=f"agentctl-{name}", SourceIdentity=name, DurationSeconds=900,
                    Tags=[{"Key": "agent", "Value": name}])["Credentials"]
env = {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
       "AWS_SESSION_TOKEN": c["SessionToken"]}
if mode == "exec":
    sys.exit(subprocess.run(["true"], env=env).returncode)
for k, v in env.items():
    print(f"export {k}={v}")
"""

# The same AssumeRole, then the same GitHub token mint agentctl makes for the
# agent: an App JWT (RS256, PyJWT) and one POST for an installation token
# limited to the contract's permissions and repository (httpx, as githubkit).
FLOOR_GITHUB = """
import json, subprocess, sys, time
import boto3, httpx, jwt
endpoint, name, mode, github = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
c = sts.assume_role(RoleArn=f"arn:aws:iam::123456789012:role/agentctl/agentctl-{name}",
                    RoleSessionName=f"agentctl-{name}", SourceIdentity=name, DurationSeconds=900,
                    Tags=[{"Key": "agent", "Value": name}])["Credentials"]
now = int(time.time())
with open(github["pem"]) as f:
    signed = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(github["app_id"])},
                        f.read(), algorithm="RS256")
minted = httpx.post(
    f"{github['api']}/app/installations/{github['installation']}/access_tokens",
    headers={"Authorization": f"Bearer {signed}", "Accept": "application/vnd.github+json"},
    json={"permissions": github["permissions"], "repositories": github["repositories"]},
)
minted.raise_for_status()
token = minted.json()["token"]
env = {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
       "AWS_SESSION_TOKEN": c["SessionToken"], "GITHUB_TOKEN": token, "GH_TOKEN": token,
       "GITHUB_API_URL": github["api"]}
if mode == "exec":
    sys.exit(subprocess.run(["true"], env=env).returncode)
for k, v in env.items():
    print(f"export {k}={v}")
"""

GITHUB_ORG = "acme"
GITHUB_REPOSITORY = "api"
GITHUB_AGENT = "bench-gh-agent"
PASSPHRASE = {"AGENTCTL_KEYRING_PASSPHRASE": "bench passphrase"}


class GitHubServer(ServerProcess):
    """The project's GitHub emulator in its own process (no GIL shared with a
    client being measured), world built through its control routes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "testing.github", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.close()
            raise SystemExit("the GitHub emulator did not start")

    def control(self, path: str, body: Mapping[str, Any], **params: str) -> Any:
        answer = requests.post(f"{self.url}/_emulator/{path}", json=body, params=params, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def state(self) -> Any:
        answer = requests.get(f"{self.url}/_emulator/state", timeout=60)
        answer.raise_for_status()
        return answer.json()

    def requests_made(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/_emulator/requests", timeout=60)
        answer.raise_for_status()
        made: list[dict[str, Any]] = answer.json()["requests"]
        return made

    def clear_requests(self) -> None:
        requests.delete(f"{self.url}/_emulator/requests", timeout=60).raise_for_status()


@dataclass(frozen=True)
class GitHubAgent:
    env: dict[str, str]  # agentctl's environment for this agent's own config and state
    floor: str  # the floor's JSON argument: API URL, App id, key file, installation, grant
    github_calls: list[str]  # the GitHub requests one `agentctl credentials` makes
    exec_calls: list[str]  # and one `agentctl exec NAME -- true`


def github_agent(work: Path, moto: Moto, github: GitHubServer, env: dict[str, str]) -> GitHubAgent:
    """An agent granted AWS (its bucket) and GitHub (issues on acme/api), with its
    own App registered and installed the way an operator does it."""
    folder = work / "github"
    (folder / "contracts").mkdir(parents=True)
    github.control("orgs", {"login": GITHUB_ORG})
    github.control("repos", {"owner": GITHUB_ORG, "name": GITHUB_REPOSITORY})
    contract = folder / "contracts" / f"{GITHUB_AGENT}.yaml"
    document = {
        "agent": {
            "name": GITHUB_AGENT,
            "owner": "team-gh@company.com",
            "purpose": "Generated agent with an AWS and a GitHub grant for the benchmark",
        },
        "permissions": {
            "aws": statements(1),
            "github": {
                "repositories": [f"{GITHUB_ORG}/{GITHUB_REPOSITORY}"],
                "scopes": ["issue:write"],
            },
        },
        "execution_mode": "autonomous",
        "expiry": date.today() + timedelta(days=180),
        "kill_switch": f"/agents/{GITHUB_AGENT}/disable",
    }
    contract.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")
    config = folder / "agentctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": str(folder / "state.db"),
                "journal": str(folder / "journal.jsonl"),
                "aws": {
                    "endpoint_url": moto.url,
                    "region": REGION,
                    "runtime_principal": RUNTIME_PRINCIPAL,
                    "permissions_boundary": boundary(moto, "agentctl-bench-gh-boundary"),
                },
                "github": {
                    "base_url": github.url,
                    "web_url": github.url,
                    "organization": GITHUB_ORG,
                },
                "secrets": {"backend": "encrypted-file", "path": str(folder / "secrets.enc")},
            }
        ),
        "utf-8",
    )
    gh_env = {**env, "AGENTCTL_CONFIG": str(config), **PASSPHRASE}

    def agentctl(*args: str) -> Any:
        done = run([AGENTCTL, *args], env=gh_env, cwd=folder, capture=True)
        return json.loads(done.stdout) if "--output" in args else None

    # The two steps of `agentctl github register`; the person's click on
    # github.com is the emulator's manifest code.
    started = agentctl(
        "github", "register", GITHUB_AGENT, "--contract", str(contract), "--output", "json"
    )
    code = github.control("manifests", started["manifest"], owner=GITHUB_ORG)["code"]
    registered = agentctl(
        *("github", "register", GITHUB_AGENT, "--contract", str(contract)),
        *("--code", code, "--state", started["state"], "--output", "json"),
    )
    app_id = int(registered["app_id"])
    installation = github.control(
        "installations",
        {"app_id": app_id, "account": GITHUB_ORG, "repositories": [GITHUB_REPOSITORY]},
    )
    agentctl("apply", str(folder / "contracts"), "--yes")
    # The floor reads the App's key from a file, as a minimal script would.
    pem = folder / "app.pem"
    fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            run(
                [PYTHON, "-c", READ_APP_KEY, str(folder / "secrets.enc"), GITHUB_AGENT],
                env=gh_env,
                capture=True,
            ).stdout
        )
    # What agentctl asks GitHub for, so the floor asks for exactly that.
    github.clear_requests()
    agentctl("credentials", GITHUB_AGENT)
    calls = [f"{r['method']} {r['route'] or r['path']}" for r in github.requests_made()]
    github.clear_requests()
    agentctl("exec", GITHUB_AGENT, "--", "true")
    exec_calls = [f"{r['method']} {r['route'] or r['path']}" for r in github.requests_made()]
    minted = github.state()["tokens"][-1]
    floor = json.dumps(
        {
            "api": github.url,
            "app_id": app_id,
            "pem": str(pem),
            "installation": installation["id"],
            "permissions": minted["permissions"],
            "repositories": [GITHUB_REPOSITORY],
        }
    )
    return GitHubAgent(env=gh_env, floor=floor, github_calls=calls, exec_calls=exec_calls)


READ_APP_KEY = """
import sys
from agentctl.config import SecretsSettings
from agentctl.providers.github.lifecycle import app_key_ref
from agentctl.secrets import open_secret_store
store = open_secret_store(SecretsSettings(backend="encrypted-file", path=sys.argv[1]))
print(store.get(app_key_ref(sys.argv[2])).reveal(), end="")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    parser.add_argument(
        "--vs", type=Path, help="another checkout of agentctl to compare with (PYTHONPATH)"
    )
    parser.add_argument(
        "--aws-only", action="store_true", help="leave out the agent with a GitHub grant"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-exec-"))
    name = agent_name(1)
    try:
        with contextlib.ExitStack() as servers:
            moto = servers.enter_context(Moto())
            write_contracts(work / "contracts", 3)
            config = work / "agentctl.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "state": str(work / "state.db"),
                        "journal": str(work / "journal.jsonl"),
                        "aws": {
                            "endpoint_url": moto.url,
                            "region": REGION,
                            "runtime_principal": RUNTIME_PRINCIPAL,
                            "permissions_boundary": boundary(moto),
                        },
                    }
                ),
                "utf-8",
            )
            env = clean_env(
                work / "home",
                **ADMIN_KEYS,
                AGENTCTL_CONFIG=str(config),
                # No AGENTCTL_OPERATOR: who acts is verified (moto names the admin keys\' user).
            )
            run([AGENTCTL, "apply", str(work / "contracts"), "--yes"], env=env, cwd=work)
            print(f"agent {name}; {load_average()}")
            sides = {
                "floor-cred": lambda: run(
                    [PYTHON, "-c", FLOOR, moto.url, name, "credentials"], env=env, capture=True
                ),
                "credentials": lambda: run(
                    [AGENTCTL, "credentials", name], env=env, cwd=work, capture=True
                ),
                "floor-exec": lambda: run(
                    [PYTHON, "-c", FLOOR, moto.url, name, "exec"], env=env, capture=True
                ),
                "exec": lambda: run(
                    [AGENTCTL, "exec", name, "--", "true"], env=env, cwd=work, capture=True
                ),
            }
            if args.vs is not None:
                before = {**env, "PYTHONPATH": str(args.vs.resolve())}
                agentctl_before = console_script(args.vs.resolve())
                sides["credentials-before"] = lambda: run(
                    [*agentctl_before, "credentials", name], env=before, cwd=work, capture=True
                )
                sides["exec-before"] = lambda: run(
                    [*agentctl_before, "exec", name, "--", "true"],
                    env=before,
                    cwd=work,
                    capture=True,
                )
            github_calls: list[str] = []
            if not args.aws_only:
                github = servers.enter_context(GitHubServer())
                agent = github_agent(work, moto, github, env)
                github_calls = agent.github_calls
                print(f"agent {GITHUB_AGENT} (AWS and GitHub); its GitHub requests: {github_calls}")
                print(f"  exec's GitHub requests: {agent.exec_calls}")
                sides["floor-gh-cred"] = lambda: run(
                    [
                        PYTHON,
                        "-c",
                        FLOOR_GITHUB,
                        moto.url,
                        GITHUB_AGENT,
                        "credentials",
                        agent.floor,
                    ],
                    env=env,
                    capture=True,
                )
                sides["gh-credentials"] = lambda: run(
                    [AGENTCTL, "credentials", GITHUB_AGENT], env=agent.env, cwd=work, capture=True
                )
                sides["floor-gh-exec"] = lambda: run(
                    [PYTHON, "-c", FLOOR_GITHUB, moto.url, GITHUB_AGENT, "exec", agent.floor],
                    env=env,
                    capture=True,
                )
                sides["gh-exec"] = lambda: run(
                    [AGENTCTL, "exec", GITHUB_AGENT, "--", "true"],
                    env=agent.env,
                    cwd=work,
                    capture=True,
                )
            samples = interleave(sides, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"medians of {args.runs} interleaved rounds (wall, CPU user+sys, peak RSS)")
    print(row("floor: boto3 AssumeRole script, print exports", samples["floor-cred"]))
    print(row("agentctl credentials NAME", samples["credentials"]))
    print(row("floor: boto3 AssumeRole script, then `true`", samples["floor-exec"]))
    print(row("agentctl exec NAME -- true", samples["exec"]))
    if args.vs is not None:
        print(row(f"before ({args.vs}): credentials NAME", samples["credentials-before"]))
        print(row("before: exec NAME -- true", samples["exec-before"]))
        for label, floor in (("credentials", "floor-cred"), ("exec", "floor-exec")):
            was = ratio(samples[f"{label}-before"], samples[floor])
            now = ratio(samples[label], samples[f"{label}-before"])
            print(f"  before: {label:<12} / floor  {was:5.2f}x   new / before {now:.2f}x wall")
    compared = [("credentials", "floor-cred"), ("exec", "floor-exec")]
    if not args.aws_only:
        print(f"agent with AWS and GitHub grants ({len(github_calls)} GitHub request(s) each)")
        print(row("floor: AssumeRole + GitHub token mint, print exports", samples["floor-gh-cred"]))
        print(row("agentctl credentials NAME (AWS + GitHub)", samples["gh-credentials"]))
        print(row("floor: AssumeRole + GitHub token mint, then `true`", samples["floor-gh-exec"]))
        print(row("agentctl exec NAME -- true (AWS + GitHub)", samples["gh-exec"]))
        compared += [("gh-credentials", "floor-gh-cred"), ("gh-exec", "floor-gh-exec")]
    for label, floor in compared:
        r = ratio(samples[label], samples[floor])
        print(
            f"  {label:<14} / floor  {r:5.2f}x   target <= 1.5x: {'met' if r <= 1.5 else 'NOT met'}"
        )
    print(f"  after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
