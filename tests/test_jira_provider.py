"""The Jira provider against the local Jira emulator, over real HTTP.

Real SQLite state and a real encrypted-file secret store in the test's tmp
dir; the CLI runs in-process through ``agentctl.cli.app.run``. What the agent
can do is checked by the agent itself: its own token, through the gateway,
against the emulator's project-role permission checks.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from jira_helpers import PR_SCOPES, Agent, JiraWorld, contract_for, run_for

from agentctl.cli.app import run
from agentctl.contract import load_contracts
from agentctl.errors import ProviderError
from agentctl.providers.base import ChangeKind
from agentctl.providers.jira.lifecycle import ADMIN_API_KEY_REF, account_ref, token_ref
from agentctl.providers.jira.scopes import SCOPES, project_permissions, token_scopes
from agentctl.secrets import Secret

SEC_ONLY = {"projects": ["SEC"], "scopes": PR_SCOPES}


class Leaks:
    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.texts: list[str] = []

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        return value

    def seen(self, *items: Any) -> None:
        self.texts.extend(repr(item) for item in items)

    def check(self) -> None:
        joined = "\n".join(self.texts)
        for value in self.secrets:
            assert value not in joined


@pytest.fixture
def leaks() -> Iterator[Leaks]:
    watcher = Leaks()
    yield watcher
    watcher.check()


def cli(
    capsys: pytest.CaptureFixture[str], leaks: Leaks, world: JiraWorld, *args: str
) -> tuple[int, str]:
    config = world.write_config()
    code = run(["--config", str(config), "--state", world.state_url, *args])
    captured = capsys.readouterr()
    leaks.seen(captured.out, captured.err)
    return code, captured.out + captured.err


def register(world: JiraWorld, contract: Any, agent: Agent) -> None:
    world.provider().register(contract, agent.account_id, Secret(agent.token))


def transition(world: JiraWorld, agent: Agent, issue: str, token: str | None = None) -> int:
    with world.agent_http(agent, token) as http:
        return http.post(
            f"/rest/api/3/issue/{issue}/transitions", json={"transition": {"id": "21"}}
        ).status_code


def read(world: JiraWorld, agent: Agent, issue: str, token: str | None = None) -> int:
    with world.agent_http(agent, token) as http:
        return http.get(f"/rest/api/3/issue/{issue}").status_code


def comment(world: JiraWorld, agent: Agent, issue: str) -> int:
    body = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
    }
    with world.agent_http(agent) as http:
        return http.post(f"/rest/api/3/issue/{issue}/comment", json={"body": body}).status_code


# -- grant and validation ------------------------------------------------------------


def test_the_table_maps_every_friendly_scope_to_known_permissions_and_token_scopes() -> None:
    from testing.jira.world import PROJECT_PERMISSIONS

    for name, meaning in SCOPES.items():
        assert set(meaning.permissions) <= set(PROJECT_PERMISSIONS), name
        assert "BROWSE_PROJECTS" in meaning.permissions, name
    assert project_permissions(PR_SCOPES) == ("BROWSE_PROJECTS", "TRANSITION_ISSUES")
    assert token_scopes(["issue:read"]) == ("read:jira-user", "read:jira-work")
    assert token_scopes(PR_SCOPES) == ("read:jira-user", "read:jira-work", "write:jira-work")


def test_validate_suggests_the_scope_meant_and_changes_nothing(tmp_path: Any) -> None:
    path = tmp_path / "agent.yaml"
    expiry = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    path.write_text(
        "name: pr-review-agent\nowner: a@example.com\npurpose: reviews\n"
        "permissions:\n  jira:\n    projects: [SEC]\n    scopes: [issue:raed, TRANSITION_ISSUES]\n"
        f"execution_mode: autonomous\nexpiry: {expiry}\nkill_switch: /agents/x/disable\n",
        encoding="utf-8",
    )
    report = load_contracts([path], today=datetime.now(UTC).date())
    messages = [(f.code, f.message, f.line) for f in report.problems]
    assert (
        "unknown-scope",
        "'issue:raed' is not a Jira scope: did you mean 'issue:read'?",
        7,
    ) in messages
    assert any("'issue:transition'" in m for _, m, _ in messages)
    assert not report.contracts


def test_the_list_form_without_projects_is_a_warning_and_plan_refuses(
    jira_world: JiraWorld,
) -> None:
    contract = contract_for("lister", PR_SCOPES)
    agent = jira_world.service_account("lister")
    register(jira_world, contract, agent)
    provider = jira_world.provider()
    with pytest.raises(ProviderError, match="names no projects"):
        provider.plan(contract, provider.observe("lister"), expired=False)
    # With default projects configured, the list form applies there.
    provider = jira_world.provider(jira_world.config(default_projects="SEC"))
    changes = provider.plan(contract, provider.observe("lister"), expired=False)
    assert [c.kind for c in changes] == [ChangeKind.CREATE]
    assert changes[0].payload is not None and changes[0].payload.add_projects == ("SEC",)


def test_a_project_role_shared_by_every_agent_is_a_config_error(
    jira_world: JiraWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    """`jira.project_role` is the agent's dedicated role: apply sets a role's
    grants to its agent's contract, so a fixed name shared by two agents would
    hand each the other's permissions. A template without {name} is refused
    where it is written; one with it names each agent's own role."""
    world = jira_world
    path = world.write_contract(contract_for("pr-review-agent", SEC_ONLY))
    config = world.write_config(project_role="agentctl-bots")
    code = run(["--config", str(config), "--state", world.state_url, "plan", str(path.parent)])
    out = capsys.readouterr().err
    assert code == 2, out
    assert f"{config}:" in out and "'jira.project_role' is 'agentctl-bots'" in out, out
    assert "containing {name}" in out and "Traceback" not in out, out
    with pytest.raises(FileNotFoundError):
        world.root.joinpath("state.db").stat()  # nothing was recorded

    config = world.write_config(project_role="bots-{name}")
    agent = world.service_account("pr-review-agent")
    leaks.secret(agent.token)
    register(world, contract_for("pr-review-agent", SEC_ONLY), agent)
    code = run(["--config", str(config), "--state", world.state_url, "plan", str(path.parent)])
    out = capsys.readouterr().out
    leaks.seen(out)
    assert code == 0 and "create project role bots-pr-review-agent" in out, out


# -- register ----------------------------------------------------------------------------


def test_register_refuses_a_person_a_classic_token_and_a_wider_or_longer_token(
    jira_world: JiraWorld,
) -> None:
    emu = jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY)
    provider = jira_world.provider()
    person = emu.create_account("Amit", "amit@example.com")
    _, person_token = emu.create_token(person, scopes=list(token_scopes(PR_SCOPES)))
    with pytest.raises(ProviderError, match="is a person, not a service account"):
        provider.register(contract, person, Secret(person_token))
    with pytest.raises(ProviderError, match="no Jira account"):
        provider.register(contract, "712020:nobody", Secret(person_token))

    classic = jira_world.service_account("classic", scopes=None)
    with pytest.raises(ProviderError, match="classic tokens are not accepted"):
        provider.register(contract, classic.account_id, Secret(classic.token))

    wide = jira_world.service_account(
        "wide", scopes=[*token_scopes(PR_SCOPES), "manage:jira-configuration"]
    )
    with pytest.raises(ProviderError, match="also has manage:jira-configuration"):
        provider.register(contract, wide.account_id, Secret(wide.token))

    narrow = jira_world.service_account("narrow", friendly=["issue:read"])
    with pytest.raises(ProviderError, match="lacks write:jira-work"):
        provider.register(contract, narrow.account_id, Secret(narrow.token))

    late = datetime.combine(contract.expiry + timedelta(days=2), time(), tzinfo=UTC)
    long_lived = jira_world.service_account("long", expires=late)
    with pytest.raises(ProviderError, match="after the contract"):
        provider.register(contract, long_lived.account_id, Secret(long_lived.token))

    with jira_world.open_state() as state:
        assert state.get_resource("pr-review-agent", "jira") is None
    assert jira_world.secrets().get(token_ref("pr-review-agent")) is None


def test_register_reads_the_token_from_stdin_never_a_terminal_and_audits_each_outcome(
    jira_world: JiraWorld,
    capsys: pytest.CaptureFixture[str],
    leaks: Leaks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`agentctl jira register NAME --account-id ID` with the token piped in (the
    issue's "or read from stdin"): never waits on a terminal, takes one token on
    one line, and leaves an audit event for a refusal and for the registration,
    neither holding the token."""
    world, emu = jira_world, jira_world.emu
    path = world.write_contract(contract_for("pr-review-agent", SEC_ONLY))
    agent = world.service_account("pr-review-agent")
    leaks.secret(agent.token)
    person = emu.create_account("Amit", "amit@example.com")
    _, person_token = emu.create_token(person, scopes=list(token_scopes(PR_SCOPES)))
    leaks.secret(person_token)

    def register_with_stdin(stdin: Any, account_id: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "stdin", stdin)
        args = ("jira", "register", "pr-review-agent", "--account-id", account_id)
        return cli(capsys, leaks, world, *args, "--contract", str(path))

    # A terminal on stdin: refused at once (a real pty; nothing is read from it).
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "r") as terminal:
        code, out = register_with_stdin(terminal, agent.account_id)
    os.close(primary)
    assert code == 2 and "no token given" in out and "--token-file" in out, out
    code, out = register_with_stdin(io.StringIO(f"{agent.token}\n{agent.token}\n"), "x")
    assert code == 2 and "one API token on one line" in out, out

    # A person's account, piped in: refused and audited.
    code, out = register_with_stdin(io.StringIO(person_token + "\n"), person)
    assert code == 1 and "is a person, not a service account" in out, out
    # The service account's token, piped in: registered and audited.
    code, out = register_with_stdin(io.StringIO(agent.token + "\n"), agent.account_id)
    assert code == 0, out
    assert world.secrets().get(token_ref("pr-review-agent")) == Secret(agent.token)

    with world.open_state() as state:
        events = [e for e in state.audit_events() if e.action == "jira.register"]
        assert state.get_resource("pr-review-agent", "jira") is not None
    assert [(e.result, e.target) for e in events] == [
        ("failure", "jira:pr-review-agent"),
        ("success", f"jira:{agent.account_id}"),
    ]
    assert "is a person" in events[0].detail["error"]
    assert events[1].detail["token_id"] == agent.token_id
    leaks.seen(*events)


# -- the whole story --------------------------------------------------------------------


def test_register_apply_exec_kill_through_the_cli(
    jira_world: JiraWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    world, emu = jira_world, jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY, extra={"pagerduty": ["incident:read"]})
    path = world.write_contract(contract)
    agent = world.service_account("pr-review-agent")
    leaks.secret(agent.token)
    token_file = world.token_file("token", agent.token)

    code, out = cli(
        capsys,
        leaks,
        world,
        "jira",
        "register",
        agent.name,
        "--account-id",
        agent.account_id,
        "--token-file",
        str(token_file),
        "--contract",
        str(path),
        "-o",
        "json",
    )
    assert code == 0, out
    registered = json.loads(out)
    assert registered["account_id"] == agent.account_id
    assert registered["token_id"] == agent.token_id
    assert registered["token_scopes"] == list(token_scopes(PR_SCOPES))

    # Before apply the agent's token authenticates but it sees no project.
    assert read(world, agent, world.issues["SEC"]) == 404

    code, out = cli(capsys, leaks, world, "plan", str(path.parent))
    assert code == 0, out
    assert "create project role agentctl-pr-review-agent" in out
    code, out = cli(capsys, leaks, world, "apply", str(path.parent), "--yes")
    assert code == 0, out

    state = emu.state()
    role = "agentctl-pr-review-agent"
    assert state["projects"]["SEC"]["actors"][role]["users"] == [agent.account_id]
    assert role not in state["projects"]["OPS"]["actors"]
    role_id = next(i for i, n in state["roles"].items() if n == role)
    granted = sorted(
        g["permission"]
        for g in state["grants"]
        if g["holder_type"] == "projectRole" and g["holder_parameter"] == role_id
    )
    assert granted == ["BROWSE_PROJECTS", "TRANSITION_ISSUES"]

    # Re-apply changes nothing in Jira.
    emu.clear_requests()
    code, out = cli(capsys, leaks, world, "apply", str(path.parent), "--yes")
    assert code == 0, out
    assert emu.count_requests(mutating=True) == 0

    # The agent reads and transitions in SEC, and nothing in OPS; no comment.
    assert read(world, agent, world.issues["SEC"]) == 200
    assert transition(world, agent, world.issues["SEC"]) == 204
    assert emu.state()["issues"][world.issues["SEC"]]["status"] == "In Progress"
    assert read(world, agent, world.issues["OPS"]) == 404
    assert transition(world, agent, world.issues["OPS"]) == 404
    assert comment(world, agent, world.issues["SEC"]) in (400, 401, 403)

    # exec hands the agent its own account: base URL, user, token.
    code, out = cli(
        capsys,
        leaks,
        world,
        "exec",
        agent.name,
        "--",
        "python",
        "-c",
        "import os,sys; sys.exit(0 if os.environ['JIRA_USER'] and os.environ['JIRA_API_TOKEN'] and "
        f"os.environ['JIRA_BASE_URL'] == {emu.gateway_url!r} else 3)",
    )
    assert code == 0, out

    # The audit trail names what the run's credentials carry, and only that: the
    # contract's undeclared-provider system is not scope.
    with world.open_state() as store:
        [issued] = [e for e in store.audit_events() if e.action == "credentials.issue"]
    assert issued.scope == "jira:issue:read,issue:transition on SEC"

    # kill: suspended, tokens revoked, out of every role and group — found by query.
    emu.add_role_actor("OPS", "Member", user=agent.account_id)  # added by hand, out of band
    emu.add_to_group("jira-software-users", agent.account_id)
    code, out = cli(capsys, leaks, world, "kill", agent.name, "--reason", "test", "--yes")
    # (AWS is not configured in this test: its line is a ✗, Jira's must be a ✓.)
    assert (
        "✓ jira: suspended its access; revoked 1 API token; removed from 2 project role(s) in OPS, SEC"
        in out
    )
    after = emu.state()
    assert after["accounts"][agent.account_id]["suspended"] is True
    assert after["accounts"][agent.account_id]["groups"] == []
    for project in after["projects"].values():
        for actors in project["actors"].values():
            assert agent.account_id not in actors["users"]
    assert all(t["revoked"] for t in after["tokens"] if t["accountId"] == agent.account_id)
    # Denied with the same token.
    assert read(world, agent, world.issues["SEC"]) == 401
    assert transition(world, agent, world.issues["SEC"]) == 401
    assert world.secrets().get(token_ref(agent.name)) is None
    # exec refuses a killed agent.
    code, out = cli(capsys, leaks, world, "exec", agent.name, "--", "true")
    assert code != 0


def test_kill_works_with_state_and_contracts_gone(jira_world: JiraWorld) -> None:
    world, emu = jira_world, jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")
    register(world, contract, agent)
    world.apply(contract)
    assert read(world, agent, world.issues["SEC"]) == 200

    report = world.engine(state_url=world.empty_state_url()).kill(agent.name, "lost state")
    [result] = report.results
    assert result.ok, result
    assert result.resource_id == agent.account_id
    assert "revoked 1 API token" in result.detail
    assert read(world, agent, world.issues["SEC"]) == 401
    state = emu.state()
    assert (
        agent.account_id
        not in state["projects"]["SEC"]["actors"]["agentctl-pr-review-agent"]["users"]
    )


def test_kill_with_state_and_stored_identity_gone_finds_the_account_by_name_only_if_unique(
    jira_world: JiraWorld,
) -> None:
    """The last fallback ("or its name"): with the state lost and the agents'
    entries gone from the secret store, kill finds the one service account
    named like the agent. Two such accounts: it suspends neither (it cannot
    tell which is the agent's) and says so — a ✗ naming both, never a ✓."""
    world, emu = jira_world, jira_world.emu
    agents = {}
    for name in ("pr-review-agent", "triage-agent"):
        contract = contract_for(name, SEC_ONLY)
        agents[name] = world.service_account(name)
        register(world, contract, agents[name])
        world.apply(contract)
        for ref in (token_ref(name), account_ref(name)):
            world.secrets().delete(ref)
    twin_id = emu.create_account("pr-review-agent", "other@example.com", account_type="app")

    lost = world.engine(state_url=world.empty_state_url())
    [found] = lost.kill("triage-agent", "state and secrets lost").results
    assert found.ok and found.resource_id == agents["triage-agent"].account_id, found
    assert read(world, agents["triage-agent"], world.issues["SEC"]) == 401

    agent = agents["pr-review-agent"]
    [ambiguous] = lost.kill(agent.name, "state and secrets lost").results
    assert not ambiguous.ok, ambiguous
    assert agent.account_id in ambiguous.detail and twin_id in ambiguous.detail, ambiguous
    assert "suspend" in ambiguous.remaining, ambiguous
    assert read(world, agent, world.issues["SEC"]) == 200  # nothing done to either account
    accounts = emu.state()["accounts"]
    assert not accounts[twin_id]["suspended"] and not accounts[agent.account_id]["suspended"]


def test_kill_without_the_admin_api_is_honest_about_what_is_left(jira_world: JiraWorld) -> None:
    world, emu = jira_world, jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")
    register(world, contract, agent)
    world.apply(contract)
    world.secrets().delete(ADMIN_API_KEY_REF)

    [result] = world.engine().kill(agent.name, "incident").results
    assert not result.ok
    assert "revoke the API tokens" in result.remaining
    assert "suspend service account" in result.remaining
    # What it could do, it did: the role is gone, so the live token sees nothing.
    assert read(world, agent, world.issues["SEC"]) == 404
    assert not emu.state()["accounts"][agent.account_id]["suspended"]


def test_plan_reports_drift_and_apply_converges_membership(jira_world: JiraWorld) -> None:
    world, emu = jira_world, jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")
    register(world, contract, agent)
    world.apply(contract)

    role = "agentctl-pr-review-agent"
    emu.add_role_actor("OPS", role, user=agent.account_id)  # an extra project
    emu.add_role_actor("OPS", "Viewer", user=agent.account_id)  # a role agentctl does not own
    emu.create_group("bots", members=[agent.account_id])
    role_id = int(next(i for i, n in emu.state()["roles"].items() if n == role))
    scheme = emu.state()["projects"]["SEC"]["scheme_id"]
    emu.add_grant("ADD_COMMENTS", "projectRole", str(role_id), scheme_id=scheme)

    provider = world.provider()
    changes = provider.plan(contract, provider.observe(agent.name), expired=False)
    kinds = [c.kind for c in changes]
    assert kinds.count(ChangeKind.UPDATE) == 1
    [update] = [c for c in changes if c.kind is ChangeKind.UPDATE]
    assert "remove pr-review-agent from role agentctl-pr-review-agent in OPS" in update.summary
    drift = [c.summary for c in changes if c.kind is ChangeKind.DRIFT]
    assert any("Viewer in OPS" in d for d in drift)
    assert any("group bots" in d for d in drift)

    assert comment(world, agent, world.issues["SEC"]) == 201  # the widened grant works...
    world.apply(contract)
    assert comment(world, agent, world.issues["SEC"]) != 201  # ...until apply converges it
    state = emu.state()
    assert agent.account_id not in state["projects"]["OPS"]["actors"][role]["users"]
    granted = sorted(
        g["permission"]
        for g in state["grants"]
        if g["holder_type"] == "projectRole" and g["holder_parameter"] == str(role_id)
    )
    assert granted == ["BROWSE_PROJECTS", "TRANSITION_ISSUES"]


def test_rotate_installs_a_verified_token_then_revokes_the_old_one(
    jira_world: JiraWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    world, _emu = jira_world, jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY)
    path = world.write_contract(contract)
    agent = world.service_account("pr-review-agent")
    leaks.secret(agent.token)
    register(world, contract, agent)
    world.apply(contract)

    # A wrong token is refused and nothing changes.
    bad_file = world.token_file("bad", "ATATT-not-a-token")
    code, out = cli(
        capsys,
        leaks,
        world,
        "jira",
        "rotate",
        agent.name,
        "--token-file",
        str(bad_file),
        "--contract",
        str(path),
    )
    assert code != 0 and "refused" in out
    assert read(world, agent, world.issues["SEC"]) == 200

    new_id, new_token = world.new_token(agent.account_id, scopes=list(token_scopes(PR_SCOPES)))
    leaks.secret(new_token)
    new_file = world.token_file("new", new_token)
    code, out = cli(
        capsys,
        leaks,
        world,
        "jira",
        "rotate",
        agent.name,
        "--token-file",
        str(new_file),
        "--contract",
        str(path),
        "-o",
        "json",
    )
    assert code == 0, out
    rotated = json.loads(out)
    assert rotated["token_id"] == new_id
    assert rotated["revoked_tokens"] == [agent.token_id]
    assert read(world, agent, world.issues["SEC"]) == 401
    assert read(world, agent, world.issues["SEC"], new_token) == 200
    assert world.secrets().get(token_ref(agent.name)) == Secret(new_token)

    code, out = cli(capsys, leaks, world, "jira", "status", agent.name, "-o", "json")
    assert code == 0, out
    tokens = json.loads(out)["tokens"]
    assert [t["live"] for t in tokens] == [False, True]


def test_issue_credentials_give_the_agent_its_own_account(jira_world: JiraWorld) -> None:
    world = jira_world
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")
    register(world, contract, agent)
    world.apply(contract)
    issued = world.provider().issue_credentials(contract, run_for(agent.name))
    env = issued.environment
    assert env["JIRA_USER"] == agent.email
    assert env["JIRA_BASE_URL"] == world.emu.gateway_url
    token = env["JIRA_API_TOKEN"]
    assert isinstance(token, Secret) and token.reveal() == agent.token
    assert agent.token not in repr(issued)


def test_validate_reads_the_default_projects_from_agentctl_yaml(
    jira_world: JiraWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    path = jira_world.write_contract(contract_for("lister", PR_SCOPES))
    code, out = cli(capsys, leaks, jira_world, "validate", str(path), "-o", "json")
    assert code == 0, out
    assert [p["code"] for p in json.loads(out)["problems"]] == ["no-projects"]
    config = jira_world.write_config(default_projects="SEC")
    code = run(["--config", str(config), "validate", str(path), "-o", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out)["problems"] == []


def test_check_killed_sees_a_kill_undone_behind_agentctls_back(jira_world: JiraWorld) -> None:
    world, emu = jira_world, jira_world.emu
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")
    register(world, contract, agent)
    world.apply(contract)
    [killed] = world.engine().kill(agent.name, "incident").results
    assert killed.ok and set(killed.verified) == {
        "account suspended",
        "no API token listed",
        "in no project role, in no group",
    }

    provider = world.provider()
    held = provider.check_killed(agent.name)
    assert held.ok and held.action == "check-kill", held
    requests = emu.count_requests(mutating=True)
    # Someone puts the account back in a role and restores it.
    emu.add_role_actor("SEC", "Member", user=agent.account_id)
    emu.set_account_state(agent.account_id, suspended=False)
    undone = world.provider().check_killed(agent.name)
    assert not undone.ok
    assert "back in role Member in SEC" in undone.detail
    assert "account no longer suspended" in undone.detail
    assert undone.remaining == f"run `agentctl kill {agent.name}` to restore the kill"
    assert emu.count_requests(mutating=True) == requests  # read only


def test_kill_where_jira_is_not_configured_never_claims_a_tick(jira_world: JiraWorld) -> None:
    world = jira_world
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")
    register(world, contract, agent)
    bare = world.config(site_url=None, admin_email=None)
    recorded = world.provider(bare).kill(agent.name, "incident")
    assert not recorded.ok and not recorded.undetermined
    assert recorded.resource_id == agent.account_id
    assert "admin.atlassian.com" in recorded.remaining
    unknown = world.provider(bare, state_url=world.empty_state_url()).kill("someone-else", "x")
    assert not unknown.ok and unknown.undetermined
    assert "service account named someone-else" in unknown.remaining


def test_expiring_reports_the_tokens_expiry_and_rotate_says_how_to_replace_it(
    jira_world: JiraWorld,
) -> None:
    world = jira_world
    contract = contract_for("pr-review-agent", SEC_ONLY)
    soon = datetime.combine(datetime.now(UTC).date() + timedelta(days=20), time(), tzinfo=UTC)
    agent = world.service_account("pr-review-agent", expires=soon)
    register(world, contract, agent)
    world.apply(contract)
    engine = world.engine()

    report = engine.expiring([contract], [], days=30)
    [item] = [i for i in report.items if i.kind == "credential-expiring"]
    assert (item.agent, item.due, item.days_left) == (agent.name, soon.date(), 20)
    assert f"jira api-token jira-{agent.token_id}" in item.detail
    assert "0 days old" in item.detail
    # The exact steps: Atlassian mints service-account tokens only in its console.
    assert item.secret is not None and item.secret.kind == "api-token"
    assert item.secret.expires_at == soon and item.secret.created_at is not None
    assert "at https://admin.atlassian.com (scopes " in item.detail
    assert (
        f"then `agentctl jira rotate {agent.name} --token-file F`, which revokes "
        f"jira-{agent.token_id}" in item.detail
    )
    [view] = engine.status(agent.name)
    [age] = view.long_lived_secrets
    assert (age.provider, age.kind, age.age_days, age.expires_at) == ("jira", "api-token", 0, soon)
    assert not [
        i for i in engine.expiring([contract], [], days=10).items if i.kind == "credential-expiring"
    ]

    [rotated] = engine.rotate([agent.name])[0].results
    assert not rotated.ok  # due: Atlassian mints no service-account token by API
    assert f"agentctl jira rotate {agent.name} --token-file F" in rotated.remaining
    assert "expires " + soon.date().isoformat() in rotated.detail


def test_expiring_reports_an_old_token_by_age_before_it_expires(jira_world: JiraWorld) -> None:
    from dataclasses import replace

    world = jira_world
    contract = contract_for("pr-review-agent", SEC_ONLY)
    agent = world.service_account("pr-review-agent")  # expires in 90 days
    register(world, contract, agent)
    world.apply(contract)
    engine = replace(world.engine(), config=replace(world.config(), rotation_max_age_days=30))
    later = datetime.now(UTC) + timedelta(days=31)
    report = replace(engine, clock=lambda: later).expiring([contract], [], days=30)
    [item] = [i for i in report.items if i.secret is not None]
    # 59 days of life left (outside the 30-day window) but older than 30 days.
    assert item.kind == "credential-rotation-due"
    assert "31 days old" in item.detail and "older than 30 days" in item.detail
    assert f"agentctl jira rotate {agent.name} --token-file F" in item.detail
    # Reported once: not also by the generic credential check.
    assert len([i for i in report.items if f"jira-{agent.token_id}" in i.detail]) == 1
