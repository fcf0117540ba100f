"""exec keeps a long-running command supplied: GitHub tokens that outlive
several token lifetimes (shortened in the emulator), through the token file and
git's credential helper exec configures; every refresh is gated and audited with
the run id; a killed agent's refresh is refused and the files are gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from github_helpers import ORG, GitHubWorld, contract_for, token_headers

from agentctl.errors import GateRefused
from agentctl.execution import RunGrant, RunRequest, Runs

GRANT = {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]}
LIFETIME = timedelta(seconds=6)  # GitHub's hour, shortened: refresh every ~3 s

# The child: read the token file and ask git for a credential every half
# second for a while; write what it saw (for the test to check) to argv[1].
CHILD = textwrap.dedent(
    """
    import json, os, stat, subprocess, sys, time
    path = os.environ["AGENTCTL_GITHUB_TOKEN_FILE"]
    host = sys.argv[2]
    seen = {"file": [], "git": [], "modes": set(), "aws_keys": "AWS_ACCESS_KEY_ID" in os.environ}
    end = time.monotonic() + float(sys.argv[3])
    while time.monotonic() < end:
        with open(path) as handle:
            token = handle.read()
        if token not in seen["file"]:
            seen["file"].append(token)
        seen["modes"].add(oct(stat.S_IMODE(os.stat(path).st_mode)))
        seen["modes"].add(oct(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)))
        fill = subprocess.run(
            ["git", "credential", "fill"], input=f"protocol=http\\nhost={host}\\n\\n",
            capture_output=True, text=True, check=True,
        )
        answer = dict(l.split("=", 1) for l in fill.stdout.splitlines() if "=" in l)
        if answer["password"] not in seen["git"]:
            seen["git"].append(answer["password"])
        time.sleep(0.5)
    seen["modes"] = sorted(seen["modes"])
    seen["dir"] = os.path.dirname(path)
    with open(sys.argv[1], "w") as out:
        json.dump(seen, out)
    """
)


def _env(world: GitHubWorld) -> dict[str, str]:
    home = world.root / "git-home"
    home.mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AWS_"))},
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        # No AWS here: whoever runs exec is verified by GitHub's GET /user with
        # their own user token (the emulator's); exec hands the child none of it.
        "GH_TOKEN": world.emu.create_user_token("octo-runner"),
    }


def _applied(world: GitHubWorld) -> None:
    contract = contract_for("pr-review-agent", GRANT)
    app = world.register(contract)
    world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok


@pytest.mark.reveals_secrets  # the child reports the tokens it saw, for the test to try
def test_a_run_spanning_several_token_lifetimes_keeps_working(github_world: GitHubWorld) -> None:
    world = github_world
    _applied(world)
    world.emu.set_token_lifetime(LIFETIME)
    host = world.emu.url.split("://", 1)[1]
    config = world.write_config()
    report = world.root / "seen.json"
    script = world.root / "child.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "agentctl", "--config", str(config)),
            *("--state", world.state_url, "exec", "pr-review-agent", "--"),
            *(sys.executable, str(script), str(report), host, "14"),
        ],
        capture_output=True,
        text=True,
        env=_env(world),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(report.read_text())
    # Several tokens over the run, each read from the file and through git's helper.
    assert len(seen["file"]) >= 3, seen["file"]
    assert set(seen["git"]) <= set(seen["file"]) and len(seen["git"]) >= 2
    assert seen["modes"] == ["0o600", "0o700"]
    assert not seen["aws_keys"]
    assert not Path(seen["dir"]).exists()  # removed at exit
    # Every token was a real one for the contract's repository; all are dead now.
    # (Statuses, not tokens, in a failure message: CI logs are read by many.)
    statuses = [
        world.http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code
        for token in seen["file"]
    ]
    assert statuses == [401] * len(seen["file"])
    state = world.open_state()
    (start,) = state.audit_events(action="credentials.issue")
    run_id = start.detail["run_id"]
    refreshes = state.audit_events(action="credentials.refresh")
    assert len(refreshes) >= 2
    assert {e.detail["run_id"] for e in refreshes} == {run_id}
    (end,) = state.audit_events(action="exec.end")
    assert end.detail["run_id"] == run_id
    trail = json.dumps([e.detail for e in state.audit_events()])
    assert not any(token in trail for token in seen["file"])


@pytest.mark.reveals_secrets
def test_a_killed_agents_refresh_is_refused_and_audited_with_the_run(
    github_world: GitHubWorld,
) -> None:
    """The refresh path itself (exec also ends the command on a kill): after a
    kill, a running run's refresh is refused, with its run id in the audit."""
    from agentctl.run_supply import RunSupply

    world = github_world
    _applied(world)
    runs = Runs(world.engine())
    grant: RunGrant = runs.grant(RunRequest(agent="pr-review-agent", command=("review",)))
    supply = RunSupply(agent="pr-review-agent", github_host=None, margin=timedelta(minutes=20))
    try:
        supply.child_environment(grant.credentials, {})
        supply.hold(grant.credentials)
        token_file = supply.directory / "github-token"
        assert token_file.read_text()
        (fresh,) = runs.refresh(grant, ("review",), ("github",), duration_seconds=3600)
        supply.hold((fresh,))
        assert fresh.credential_id != grant.credentials[0].credential_id

        world.engine().kill("pr-review-agent", reason="INC-22")
        with pytest.raises(GateRefused, match="killed"):
            runs.refresh(grant, ("review",), ("github",), duration_seconds=3600)
        supply.cut_off("pr-review-agent is killed")
        assert not token_file.exists()
        assert "killed" in (supply.directory / "refused").read_text()
    finally:
        supply.close()
    assert not supply.directory.exists()
    state = world.open_state()
    (refused,) = state.audit_events(action="exec.refused")
    assert refused.detail["run_id"] == grant.run_id
    (refreshed,) = state.audit_events(action="credentials.refresh")
    assert refreshed.detail["run_id"] == grant.run_id


@pytest.mark.reveals_secrets  # the test reads the run's token file to try it
def test_rotate_hands_a_running_run_the_new_token_before_revoking_the_old(
    github_world: GitHubWorld,
) -> None:
    """`rotate` during a run: the run continues on a new token (taken through
    exec's refresh before the old ones went), the old token is 401."""
    import time

    world = github_world
    _applied(world)
    config = world.write_config()
    ready, stop = world.root / "ready", world.root / "stop"
    child = textwrap.dedent(
        f"""
        import os, time
        path = os.environ["AGENTCTL_GITHUB_TOKEN_FILE"]
        with open({str(ready)!r}, "w") as out:
            out.write(path)
        while not os.path.exists({str(stop)!r}):
            time.sleep(0.2)
        """
    )
    running = subprocess.Popen(
        [
            *(sys.executable, "-m", "agentctl", "--config", str(config)),
            *("--state", world.state_url, "exec", "pr-review-agent", "--"),
            *(sys.executable, "-c", child),
        ],
        env=_env(world),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if ready.exists() and ready.read_text():
                break
            assert running.poll() is None, running.communicate()
            time.sleep(0.1)
        token_file = Path(ready.read_text())
        first = token_file.read_text()
        assert world.http.get(f"/repos/{ORG}/api", headers=token_headers(first)).status_code == 200

        (report,) = world.engine().rotate(["pr-review-agent"])
        assert report.ok, report
        current = token_file.read_text()
        assert current != first
        assert world.http.get(f"/repos/{ORG}/api", headers=token_headers(first)).status_code == 401
        assert (
            world.http.get(f"/repos/{ORG}/api", headers=token_headers(current)).status_code == 200
        )
        state = world.open_state()
        (start,) = state.audit_events(action="credentials.issue")
        run_id = start.detail["run_id"]
        assert any(run_id in note and "took the new credentials" in note for note in report.notes)
        (handoff,) = state.audit_events(action="rotate.handoff")
        (took,) = state.audit_events(action="credentials.refresh")
        assert took.detail["handoff"] == handoff.detail["handoff"]
        assert took.detail["run_id"] == run_id
        (rotated,) = state.audit_events(action="rotate")
        assert rotated.detail["runs_handed_over"] == [run_id]
    finally:
        stop.write_text("")
        _out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err


def test_rotate_names_a_run_that_did_not_take_new_credentials(github_world: GitHubWorld) -> None:
    """A run that never answers (here: started, never ended, nothing refreshing
    it, like a crashed exec) is named; its old token is revoked after the overlap."""
    import dataclasses

    world = github_world
    _applied(world)
    runs = Runs(world.engine())
    grant = runs.grant(RunRequest(agent="pr-review-agent", command=("review",)))
    token = grant.child_environment()["GITHUB_TOKEN"]
    config = dataclasses.replace(world.config(), rotation_overlap_seconds=0.5)
    (report,) = world.engine(config).rotate(["pr-review-agent"])
    assert any(
        grant.run_id in note and "did not take new credentials" in note for note in report.notes
    ), report.notes
    assert world.http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 401
    (rotated,) = world.open_state().audit_events(action="rotate")
    assert rotated.detail["runs_not_handed_over"] == [grant.run_id]
