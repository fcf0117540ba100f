"""`agentctl git-credential NAME` as git's credential helper: a real
`git credential fill`, configured with nothing but the helper, gets a fresh
installation token from the GitHub emulator that reaches exactly what the
contract grants; after `agentctl kill` git gets no token."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from github_helpers import ORG, GitHubWorld, contract_for, token_headers

from agentctl.cli.app import run

GRANT = {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]}


def git_fill(
    world: GitHubWorld, helper_args: str, host: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    config = world.write_config()
    helper = (
        f"!{shlex.quote(sys.executable)} -m agentctl --config {shlex.quote(str(config))} "
        f"--state {shlex.quote(world.state_url)} git-credential {helper_args}"
    )
    home = world.root / "git-home"
    home.mkdir(exist_ok=True)
    env = {
        # The host's own AWS identity stays: agentctl verifies who asks for a token.
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",  # no prompt fallback: a refusal must fail
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        **extra_env,
    }
    return subprocess.run(
        ["git", "-c", f"credential.helper={helper}", "credential", "fill"],
        input=f"protocol=http\nhost={host}\npath={ORG}/api.git\n\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.reveals_secrets  # the helper hands git its token: its job
def test_git_credential_fill_gets_a_scoped_token_and_is_refused_after_kill(
    github_world: GitHubWorld,
) -> None:
    world = github_world
    contract = contract_for("pr-review-agent", GRANT)
    app = world.register(contract)
    world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    host = world.emu.url.split("://", 1)[1]

    filled = git_fill(world, "pr-review-agent", host)
    assert filled.returncode == 0, filled.stderr
    answer = dict(line.split("=", 1) for line in filled.stdout.splitlines() if "=" in line)
    assert answer["username"] == "x-access-token"
    token = answer["password"]
    # The contract's repository, read-only; nothing else.
    headers = token_headers(token)
    assert world.http.get(f"/repos/{ORG}/api", headers=headers).status_code == 200
    assert world.http.get(f"/repos/{ORG}/secret", headers=headers).status_code in (403, 404)
    issued = world.open_state().audit_events(action="credentials.issue")
    assert [[c["provider"] for c in e.detail["credentials"]] for e in issued] == [["github"]]
    assert token not in str([e.detail for e in issued])

    # Another host: no answer, so git would ask its next helper (here: none -> fails).
    other = git_fill(world, "pr-review-agent", "example.com")
    assert other.returncode != 0 and "password=" not in other.stdout
    assert len(world.open_state().audit_events(action="credentials.issue")) == 1

    config = world.write_config()
    killed = run(
        [
            *("--config", str(config), "--state", world.state_url),
            *("kill", "pr-review-agent", "--reason", "INC-22", "--yes"),
        ]
    )
    # This world has no AWS, so the kill reports that part undone (exit 1); GitHub's is done.
    assert killed in (0, 1)
    assert world.http.get(f"/repos/{ORG}/api", headers=headers).status_code == 401
    refused = git_fill(world, "pr-review-agent", host)
    assert refused.returncode != 0
    assert "password=" not in refused.stdout
    assert "killed" in refused.stderr


def test_store_and_erase_accept_and_change_nothing(github_world: GitHubWorld) -> None:
    world = github_world
    config = world.write_config()
    for operation in ("store", "erase"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "agentctl",
                "--config",
                str(config),
                "--state",
                world.state_url,
                "git-credential",
                "pr-review-agent",
                operation,
            ],
            input="protocol=https\nhost=github.com\nusername=x\npassword=y\n\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
    assert Path(world.state_url.removeprefix("sqlite:///")).exists() is False


@pytest.mark.reveals_secrets
def test_each_git_process_is_a_run_and_a_job_can_name_its_run(github_world: GitHubWorld) -> None:
    world = github_world
    contract = contract_for("pr-review-agent", GRANT)
    app = world.register(contract)
    world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    host = world.emu.url.split("://", 1)[1]

    for _ in range(2):
        assert git_fill(world, "pr-review-agent", host).returncode == 0
    first, second = world.open_state().audit_events(action="credentials.issue")
    # git starts the helper through `sh -c`: the run is the git process behind it.
    for event in (first, second):
        assert event.detail["run_id_from"] == "parent process"
        assert event.detail["parent"]["command"] == "git"
        assert event.detail["command"] == "git-credential"
    assert first.detail["run_id"] != second.detail["run_id"]

    # A CI job that pushes several times names its run once, in its environment.
    for _ in range(2):
        assert git_fill(world, "pr-review-agent", host, AGENTCTL_RUN_ID="job-77").returncode == 0
    named = world.open_state().audit_events(action="credentials.issue")[2:]
    assert [e.detail["run_id"] for e in named] == ["job-77", "job-77"]
