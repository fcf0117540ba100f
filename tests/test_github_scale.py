"""An organization at GitHub's limit of 100 Apps: plan's warning, the shared path,
and registering many agents from one page with the codes in one go.

Against the emulator over real HTTP, with real SQLite state and secrets.
"""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from github_helpers import ORG, GitHubWorld, contract_for, run_for, shared_config, token_headers

from agentctl.cli.app import run
from agentctl.config import Config
from agentctl.contract import load_contracts
from agentctl.secrets import Secret

GRANT = {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]}
AGENTS = [f"agent-{i:03d}" for i in range(101)]


def cli(
    world: GitHubWorld, config: Config, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    path = world.write_config(config)
    code = run(["--config", str(path), "--state", world.state_url, *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def click_every_button(world: GitHubWorld, page: str) -> list[str]:
    """What the person does: each form to GitHub, "Create GitHub App", the redirect."""
    redirects = []
    for action, value in re.findall(
        r"action='([^']*)'>\n<input type='hidden' name='manifest' value='([^']*)'", page
    ):
        created = world.http.post(html.unescape(action), data={"manifest": html.unescape(value)})
        assert created.status_code == 302, created.text
        redirects.append(created.headers["location"])
    return redirects


def test_101_agents_in_dedicated_mode_meet_the_limit_and_take_the_shared_path(
    github_world: GitHubWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = github_world
    folder = world.root / "contracts"
    for name in AGENTS:
        world.write_contract(contract_for(name, GRANT))
    contracts = load_contracts(
        [folder], today=contract_for("x", GRANT).expiry.replace(year=2026, month=12, day=1)
    ).contracts
    assert len(contracts) == 101

    # The organization already holds 95 other Apps: plan names the choice.
    crowded = world.config(other_apps=95)
    plan = world.engine(crowded).plan(list(contracts))
    errors = {a.agent: " ".join(a.errors) for a in plan.agents}
    assert "holds 95 of GitHub's 100 Apps per organization" in errors["agent-000"]
    assert "their own identity in GitHub's logs" in errors["agent-000"]
    assert "`mode: shared`" in errors["agent-000"]
    code, out = cli(world, crowded, capsys, "github", "register-pending", str(folder), "-o", "json")
    assert code == 0, out
    offered = json.loads(out)
    assert len(offered["agents"]) == 5 and len(offered["over_limit"]) == 96

    # Room for 100: one page with 100 forms, each its own state.
    config = world.config()
    code, out = cli(world, config, capsys, "github", "register-pending", str(folder), "-o", "json")
    assert code == 0, out
    offered = json.loads(out)
    assert [a["agent"] for a in offered["agents"]] == AGENTS[:100]
    assert offered["agents"][0]["app_name"] == f"{ORG}-agent-000"
    assert offered["over_limit"] == ["agent-100"]
    page = Path(offered["form"]).read_text("utf-8")
    redirects = click_every_button(world, page)
    assert len(redirects) == 100 and len({r.split("state=")[1] for r in redirects}) == 100

    # The codes in one go, in whatever order the person pasted them.
    random.Random(18).shuffle(redirects)
    urls = world.root / "urls.txt"
    urls.write_text("\n".join(redirects) + "\n", encoding="utf-8")
    code, out = cli(
        world,
        config,
        capsys,
        "github",
        "register-pending",
        str(folder),
        "--codes",
        str(urls),
        "-o",
        "json",
    )
    assert code == 0, out
    results = json.loads(out)["results"]
    assert sorted(r["agent"] for r in results) == AGENTS[:100] and all(r["ok"] for r in results)
    state = world.open_state()
    assert len(state.audit_events(action="github.register")) == 100
    assert len(world.emu.state()["apps"]) == 100

    # The 101st: GitHub's limit reached, and plan names the choice.
    provider = world.provider(config)
    assert provider.dedicated_apps() == 100
    plan = world.engine(config).plan(list(contracts))
    (last,) = [a for a in plan.agents if a.agent == "agent-100"]
    assert "holds 100 GitHub Apps, GitHub's limit of 100" in " ".join(last.errors)
    assert "`mode: shared`" in " ".join(last.errors)
    code, out = cli(
        world, config, capsys, "github", "register", "agent-100", "--contract", str(folder)
    )
    assert code != 0 and "GitHub's limit of 100" in out

    # The shared path: the contract says so; tokens from the shared App, down-scoped.
    shared_app = world.emu.create_app("shared-bot", owner=ORG, permissions={"contents": "read"})
    installation = world.emu.install_app(int(shared_app["id"]), ORG)
    mixed = shared_config(world, shared_app, int(installation["id"]))
    mixed = Config(
        **{
            **vars(mixed),
            "provider_settings": {
                "github": world.settings(
                    app_id=int(shared_app["id"]),
                    installation_id=int(installation["id"]),
                    private_key_file=str(world.root / "shared-app.pem"),
                )
            },
        }
    )
    path = folder / "agent-100.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text("utf-8"))
    document["permissions"]["github"]["mode"] = "shared"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    (contract,) = load_contracts(
        [path], today=contracts[0].expiry.replace(year=2026, month=12, day=1)
    ).contracts
    engine = world.engine(mixed)
    plan = engine.plan([contract])
    (agent_plan,) = plan.agents
    assert not agent_plan.errors, agent_plan
    assert "shared App" in agent_plan.changes[0].summary
    assert engine.apply(plan).ok
    credential = world.provider(mixed).issue_credentials(contract, run_for(contract.name))
    token = credential.environment["GITHUB_TOKEN"]
    assert isinstance(token, Secret)
    headers = token_headers(token.reveal())
    assert world.http.get(f"/repos/{ORG}/api", headers=headers).status_code == 200
    assert world.http.get(f"/repos/{ORG}/web", headers=headers).status_code == 404
    assert len(world.emu.state()["apps"]) == 101  # 100 agents' own + the shared one


def test_plan_warns_an_organization_near_the_limit_even_when_every_agent_has_its_app(
    github_world: GitHubWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18: "plan warns as the org nears 100 Apps and names the choice" —
    also for the nightly plan of an organization whose agents are all
    registered (no agent's error carries the warning then). A note, not
    drift: `plan --detailed-exitcode` stays 0."""
    world = github_world
    folder = world.root / "contracts"
    contract = contract_for("agent-000", GRANT)
    world.write_contract(contract)
    app = world.register(contract, world.provider())
    world.install(int(app["app_id"]), repositories=["api"])
    code, out = cli(world, world.config(), capsys, "apply", str(folder), "--yes")
    assert code == 0, out

    code, out = cli(world, world.config(), capsys, "plan", str(folder), "--detailed-exitcode")
    assert code == 0, out
    assert "Apps per organization" not in out, out  # 1 of 100: nothing to say

    near = world.config(other_apps=94)
    code, out = cli(world, near, capsys, "plan", str(folder), "--detailed-exitcode")
    assert code == 0, out
    assert "note github: the organization acme holds 95 of GitHub's 100 Apps per " in out
    assert "(room for 5 more)" in out and "`mode: shared`" in out, out
    assert "their own identity in GitHub's logs" in out, out
    code, out = cli(world, near, capsys, "plan", str(folder), "-o", "json")
    (note,) = json.loads(out)["notes"]
    assert note.startswith("github: the organization acme holds 95 of GitHub's 100"), note

    full = world.config(other_apps=99)
    code, out = cli(world, full, capsys, "plan", str(folder), "--detailed-exitcode")
    assert code == 0, out
    assert "holds 100 GitHub Apps, GitHub's limit of 100: no further agent" in out, out
