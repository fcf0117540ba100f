"""The GitHub provider against the local GitHub emulator, over real HTTP.

Real SQLite state and a real encrypted-file secret store in the test's tmp dir;
the CLI runs in-process through ``agentctl.cli.app.run``. Each test checks
that no private key or token value reaches any output, result or error.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github_helpers import (
    ORG,
    GitHubWorld,
    contract_for,
    run_for,
    shared_config,
    token_headers,
)

from agentctl.cli.app import run
from agentctl.errors import ProviderError
from agentctl.model import AgentStatus
from agentctl.providers.base import ChangeKind, ProviderContext
from agentctl.providers.github.lifecycle import GitHubProvider, app_key_ref
from agentctl.render import json_data
from agentctl.secrets import Secret

PR_GRANT = {"repositories": [f"{ORG}/api"], "scopes": ["repo:read", "pull_request:comment"]}


class Leaks:
    """Everything secret seen in a test, and everything that must not contain it."""

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
        assert "-----BEGIN" not in joined
        for value in self.secrets:
            assert value not in joined


@pytest.fixture
def leaks() -> Iterator[Leaks]:
    watcher = Leaks()
    yield watcher
    watcher.check()


def cli(
    capsys: pytest.CaptureFixture[str], leaks: Leaks, world: GitHubWorld, *args: str
) -> tuple[int, str]:
    config = world.write_config()
    code = run(["--config", str(config), "--state", world.state_url, *args])
    captured = capsys.readouterr()
    leaks.seen(captured.out, captured.err)
    return code, captured.out + captured.err


def mint(world: GitHubWorld, leaks: Leaks, provider: GitHubProvider, contract: Any) -> str:
    credential = provider.issue_credentials(contract, run_for(contract.name))
    leaks.seen(credential)
    environment = credential.environment
    assert environment["GITHUB_API_URL"] == world.emu.url
    token, same = environment["GITHUB_TOKEN"], environment["GH_TOKEN"]
    assert isinstance(token, Secret) and token == same
    return leaks.secret(token.reveal())


# -- dedicated mode: the whole story ------------------------------------------------


def test_register_install_apply_mint_kill(
    github_world: GitHubWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    world, emu, http = github_world, github_world.emu, github_world.http
    contract = contract_for("pr-review-agent", PR_GRANT)
    path = world.write_contract(contract)

    # Step 1: the manifest, exactly the contract's permissions, and the form page.
    code, out = cli(
        capsys,
        leaks,
        world,
        "github",
        "register",
        contract.name,
        "--contract",
        str(path),
        "-o",
        "json",
    )
    assert code == 0, out
    started = json.loads(out)
    manifest = started["manifest"]
    # Named from github.app_name_template ({org}-{name}): App names are global on github.com.
    assert manifest["name"] == f"{ORG}-{contract.name}"
    assert manifest["default_permissions"] == {
        "contents": "read",
        "metadata": "read",
        "pull_requests": "write",
    }
    assert manifest["public"] is False and manifest["default_events"] == []
    assert "hook_attributes" not in manifest
    assert started["creation_url"] == (
        f"{emu.url}/organizations/{ORG}/settings/apps/new?state={started['state']}"
    )
    page = html.unescape(Path(started["form"]).read_text(encoding="utf-8"))
    assert started["creation_url"] in page and "name='manifest'" in page
    assert json.loads(page.split("value='", 1)[1].split("'>", 1)[0]) == manifest

    # Step 2: a person submits the page's form on GitHub and clicks "Create GitHub
    # App"; GitHub redirects with code and state, and the whole URL completes it.
    action = page.split("action='", 1)[1].split("'", 1)[0]
    created = http.post(action, data={"manifest": json.dumps(manifest)})
    assert created.status_code == 302, created.text
    redirect = created.headers["location"]
    assert redirect.startswith(manifest["redirect_url"] + "?code=")
    assert f"state={started['state']}" in redirect
    code, out = cli(
        capsys,
        leaks,
        world,
        "github",
        "register",
        contract.name,
        "--contract",
        str(path),
        "--code",
        redirect,
    )
    assert code == 0, out
    assert "installations/new" in out
    # The page (manifest, state value) does not outlive the registration.
    assert not Path(started["form"]).exists() and not Path(started["form"]).parent.exists()
    state = world.open_state()
    record = state.get_resource(contract.name, "github")
    assert record is not None
    app_id = int(record.attributes["app_id"])
    assert record.attributes["slug"] == f"{ORG}-{contract.name}"
    assert record.attributes["owner"] == ORG
    key = world.secrets().get(app_key_ref(contract.name))
    assert key is not None
    leaks.secret(key.reveal())
    assert [e.result for e in state.audit_events(action="github.register")] == ["success"]

    # Install on every repository: the tokens, not the installation, hold the line.
    installation_id = world.install(app_id)
    engine = world.engine()
    plan = engine.plan([contract])
    (agent_plan,) = plan.agents
    kinds = [c.kind for c in agent_plan.changes]
    assert ChangeKind.UPDATE in kinds, agent_plan
    assert any("covers all repositories" in c.summary for c in agent_plan.changes)
    report = engine.apply(plan)
    assert report.ok, report
    record = state.get_resource(contract.name, "github")
    assert record is not None and record.attributes["installation_id"] == installation_id
    assert record.applied_hash == contract.digest

    # Re-apply: nothing to change, and not a single write to GitHub.
    emu.clear_requests()
    again = engine.plan([contract])
    # Only drift apply cannot repair (the installation covers every repository):
    # --detailed-exitcode still alerts on it, but apply has nothing to do.
    assert not [c for a in again.agents for c in a.mutating]
    assert not again.has_changes and again.needs_attention and again.agents[0].drift
    assert engine.apply(again).ok
    assert emu.count_requests(mutating=True) == 0

    # A token for a run: what the contract allows, nothing more.
    provider = world.provider()
    token = mint(world, leaks, provider, contract)
    pull = emu.create_pull(ORG, "api", "Fix login", head="fix-login")
    comment = http.post(
        f"/repos/{ORG}/api/issues/{pull['number']}/comments",
        headers=token_headers(token),
        json={"body": "Looks good"},
    )
    assert comment.status_code == 201, comment.text
    assert comment.json()["user"]["login"] == f"{ORG}-{contract.name}[bot]"
    assert http.get(f"/repos/{ORG}/web", headers=token_headers(token)).status_code == 404
    denied = http.patch(
        f"/repos/{ORG}/api", headers=token_headers(token), json={"description": "x"}
    )
    assert denied.status_code == 403
    live = state.list_credentials(agent=contract.name, provider="github")
    assert len(live) == 1 and live[0].secret_ref == f"github/token/{live[0].id}"

    # Another agent with its own App, its own token.
    other = contract_for("triage-agent", ["issue:write"])
    other_installation = world.install(int(world.register(other)["app_id"]))
    assert engine.apply(engine.plan([contract, other])).ok
    other_token = mint(world, leaks, provider, other)

    # Kill: the token is refused at once, no new one can be minted, the other works.
    killed = engine.kill(contract.name, "INC-1")
    leaks.seen(json_data(killed))
    assert killed.ok, json_data(killed)
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 401
    assert world.installation(installation_id)["suspended_at"] is not None
    with pytest.raises(ProviderError, match="suspended") as refused:
        provider.issue_credentials(contract, run_for(contract.name))
    leaks.seen(str(refused.value))
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(other_token)).status_code == 200
    issue = emu.create_issue(ORG, "web", "Triage me")
    answered = http.post(
        f"/repos/{ORG}/web/issues/{issue}/comments",
        headers=token_headers(other_token),
        json={"body": "triaged"},
    )
    assert answered.status_code == 201
    assert world.installation(other_installation)["suspended_at"] is None
    assert state.list_credentials(agent=contract.name, live_at=datetime.now(UTC)) == []
    assert world.secrets().get(live[0].secret_ref) is None  # the value went with it

    # Idempotent.
    again_killed = engine.kill(contract.name, "INC-1")
    assert again_killed.already and again_killed.results[0].detail.startswith("already killed")


def suspend_by_hand(world: GitHubWorld, agent: str, app_id: int, installation_id: int) -> None:
    """What an org owner does on GitHub's page: suspend without revoking any token."""
    key = world.secrets().get(app_key_ref(agent))
    assert key is not None
    now = int(datetime.now(UTC).timestamp())
    token = jwt.encode(
        {"iss": str(app_id), "iat": now - 60, "exp": now + 500}, key.reveal(), "RS256"
    )
    response = world.http.put(
        f"/app/installations/{installation_id}/suspended",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 204


def test_a_token_expired_only_by_this_hosts_clock_is_still_revoked(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    """GitHub's expires_at is second-truncated and this host's clock may run
    ahead of GitHub's: a token agentctl believes expired by less than the
    drift margin may still work, so the end of a run revokes it anyway (the
    race that let a just-refreshed token outlive exec)."""
    world, http = github_world, github_world.http
    contract = contract_for("clock-ahead-agent", ["repo:read"])
    provider = world.provider()
    app = world.register(contract, provider)
    world.install(int(app["app_id"]))
    token = mint(world, leaks, provider, contract)
    (credential,) = world.open_state().list_credentials(agent=contract.name)

    # This host's clock, a minute past the recorded expiry; GitHub's says the
    # token is fresh.
    ahead = credential.expires_at + timedelta(minutes=1)
    late = world.provider(clock=lambda: ahead)
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 200
    ended = late.revoke_credential(contract.name, credential.id)
    assert ended.ok and not ended.already, ended
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 401
    assert world.secrets().get(f"github/token/{credential.id}") is None

    # Well past any drift, nothing is asked of GitHub: already expired.
    second = mint(world, leaks, provider, contract)
    (later,) = [
        c for c in world.open_state().list_credentials(agent=contract.name) if c.id != credential.id
    ]
    long_after = later.expires_at + timedelta(hours=1)
    gone = world.provider(clock=lambda: long_after).revoke_credential(contract.name, later.id)
    assert gone.ok and gone.already and gone.detail == "already revoked or expired"
    assert world.secrets().get(f"github/token/{later.id}") is None
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(second)).status_code == 200

    # rotate, a minute past that one's recorded expiry: it still counts as live
    # (GitHub may accept it) and is revoked with the older tokens.
    third = mint(world, leaks, provider, contract)
    (third_record,) = [
        c
        for c in world.open_state().list_credentials(agent=contract.name)
        if c.id not in (credential.id, later.id)
    ]
    past_third = third_record.expires_at + timedelta(minutes=1)
    rotated = world.provider(clock=lambda: past_third).rotate(contract.name)
    leaks.seen(rotated)
    assert rotated.ok and "revoked 1 older token" in rotated.detail, rotated
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(third)).status_code == 401


def test_revive_unsuspends_and_old_tokens_stay_dead(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    world, http = github_world, github_world.http
    contract = contract_for("revived-agent", ["repo:read"])
    provider = world.provider()
    app = world.register(contract, provider)
    installation_id = world.install(int(app["app_id"]))

    # The end of an exec run: that one token is revoked, its value dropped.
    finished = mint(world, leaks, provider, contract)
    (credential,) = world.open_state().list_credentials(agent=contract.name)
    ended = provider.revoke_credential(contract.name, credential.id)
    assert ended.ok and not ended.already, ended
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(finished)).status_code == 401
    assert world.secrets().get(f"github/token/{credential.id}") is None
    assert provider.revoke_credential(contract.name, credential.id).already

    token = mint(world, leaks, provider, contract)
    suspend_by_hand(world, contract.name, int(app["app_id"]), installation_id)

    # GitHub refuses to revoke a suspended installation's token: kill says so and
    # keeps it recorded; revive revokes it before anyone can use it again.
    killed = provider.kill(contract.name, "test")
    leaks.seen(killed)
    assert killed.ok and "1 token(s) refused while suspended" in killed.detail
    assert (
        len(world.open_state().list_credentials(agent=contract.name, live_at=datetime.now(UTC)))
        == 1
    )
    revived = provider.revive(contract.name, "resolved")
    leaks.seen(revived)
    assert revived.ok and "revoked 1 token(s) minted before the kill" in revived.detail
    assert world.installation(installation_id)["suspended_at"] is None
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 401
    fresh = mint(world, leaks, provider, contract)
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(fresh)).status_code == 200

    # Rotate: a new token is verified first, then the older one is revoked.
    rotated = provider.rotate(contract.name)
    leaks.seen(rotated)
    assert rotated.ok and "revoked 1 older token" in rotated.detail
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(fresh)).status_code == 401


# -- drift ------------------------------------------------------------------------------


def test_drift_is_reported_and_reapply_makes_no_writes(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    world, emu = github_world, github_world.emu
    contract = contract_for(
        "drift-agent", {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]}
    )
    app = world.register(contract)
    engine = world.engine()

    (before,) = engine.plan([contract]).agents
    assert any(
        c.kind == ChangeKind.DRIFT
        and "not installed on acme" in c.summary
        and f"{app['html_url']}/installations/new" in c.summary
        for c in before.changes
    ), before

    world.install(
        int(app["app_id"]),
        permissions={"contents": "write", "issues": "write", "metadata": "read"},
        repositories=["api", "web"],
    )
    (agent,) = engine.plan([contract]).agents
    drift = [c for c in agent.changes if c.kind == ChangeKind.DRIFT]
    leaks.seen(json_data(agent))
    texts = " | ".join(c.summary for c in drift)
    assert "contents:write" in texts and "issues:write" in texts
    assert f"{ORG}/web" in texts
    assert {f.field for c in drift for f in c.fields} >= {
        "installation.permissions.contents",
        "installation.permissions.issues",
        f"installation.repositories.{ORG}/web",
    }
    assert engine.apply(engine.plan([contract])).ok

    # Nothing changed since: drift still reported, no write of any kind.
    emu.clear_requests()
    plan = engine.plan([contract])
    assert not plan.agents[0].mutating and not plan.has_changes  # nothing to apply
    assert plan.needs_attention  # but drift: a nightly plan alerts
    assert [c.kind for c in plan.agents[0].changes] == [ChangeKind.DRIFT] * len(drift)
    assert engine.apply(plan).ok
    assert emu.count_requests(mutating=True) == 0

    # The contract now asks more than the App has: GitHub has no API for that.
    wider = contract_for(
        "drift-agent", {"repositories": [f"{ORG}/api"], "scopes": ["repo:read", "issue:read"]}
    )
    (changed,) = engine.plan([wider]).agents
    app_drift = [c for c in changed.changes if "update the App's permissions" in c.summary]
    assert (
        app_drift
        and f"/organizations/{ORG}/settings/apps/{ORG}-drift-agent/permissions"
        in app_drift[0].summary
    )
    assert any(c.kind == ChangeKind.UPDATE for c in changed.changes)


def test_expired_contract_disables_and_renewal_reenables(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    world = github_world
    contract = contract_for("seasonal-agent", ["repo:read"])
    app = world.register(contract)
    installation_id = world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok

    expired = engine.plan([], [contract])
    assert [c.kind for c in expired.agents[0].changes] == [ChangeKind.DISABLE]
    assert engine.apply(expired).ok
    assert world.installation(installation_id)["suspended_at"] is not None
    record = world.open_state().get_resource(contract.name, "github")
    assert record is not None and record.attributes["disabled"] == "expired"
    assert not engine.plan([], [contract]).has_changes

    renewed = engine.plan([contract])
    assert [c.kind for c in renewed.agents[0].changes] == [ChangeKind.UPDATE]
    assert engine.apply(renewed).ok
    assert world.installation(installation_id)["suspended_at"] is None

    # Contract gone, pruned: tokens revoked, installation suspended, App kept.
    token = mint(world, leaks, world.provider(), contract)
    removal = engine.plan([], prune=True)
    assert [c.kind for c in removal.agents[0].changes] == [ChangeKind.REMOVE]
    report = engine.apply(removal)
    leaks.seen(json_data(report))
    assert report.ok and "never deletes an App" in report.agents[0].results[0].detail
    assert world.installation(installation_id)["suspended_at"] is not None
    assert world.http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 401
    assert world.open_state().get_resource(contract.name, "github") is None


# -- shared mode --------------------------------------------------------------------------


def test_shared_mode_down_scopes_and_never_suspends(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    world, emu, http = github_world, github_world.emu, github_world.http
    app = emu.create_app(
        "shared-bot",
        owner=ORG,
        permissions={"contents": "write", "pull_requests": "write", "issues": "write"},
    )
    leaks.secret(app["pem"])
    installation_id = int(emu.install_app(app["id"], ORG)["id"])
    config = shared_config(world, app, installation_id)
    reader = contract_for("reader-agent", {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]})
    commenter = contract_for("commenter-agent", ["issue:write"])
    greedy = contract_for("greedy-agent", ["administration:write"])
    elsewhere = contract_for(
        "elsewhere-agent", {"repositories": [f"{ORG}/nope"], "scopes": ["repo:read"]}
    )

    engine = world.engine(config)
    plan = engine.plan([reader, commenter, greedy, elsewhere])
    kinds = {a.agent: [c.kind for c in a.changes] for a in plan.agents}
    assert kinds["reader-agent"] == [ChangeKind.CREATE]
    assert kinds["commenter-agent"] == [ChangeKind.CREATE]
    assert kinds["greedy-agent"] == [ChangeKind.CONFLICT]
    assert kinds["elsewhere-agent"] == [ChangeKind.CONFLICT]
    emu.clear_requests()
    applied = {a.agent: a for a in engine.apply(plan).agents}
    assert applied["reader-agent"].ok and applied["commenter-agent"].ok
    # A grant the shared installation cannot honour fails that agent only.
    assert "lacks administration:write" in (applied["greedy-agent"].error or "")
    assert f"does not reach {ORG}/nope" in (applied["elsewhere-agent"].error or "")
    assert emu.count_requests(mutating=True) == 0  # recording a grant changes nothing in GitHub
    assert not engine.plan([reader, commenter]).has_changes

    provider = world.provider(config)
    first, second = (mint(world, leaks, provider, reader) for _ in range(2))
    other = mint(world, leaks, provider, commenter)
    issue = emu.create_issue(ORG, "api", "Question")
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(first)).status_code == 200
    assert http.get(f"/repos/{ORG}/web", headers=token_headers(first)).status_code == 404
    refused = http.post(
        f"/repos/{ORG}/api/issues/{issue}/comments",
        headers=token_headers(first),
        json={"body": "x"},
    )
    assert refused.status_code == 403

    killed = engine.kill(reader.name, "INC-2")
    leaks.seen(json_data(killed))
    assert killed.ok and "revoked 2 tokens" in killed.results[0].detail
    for token in (first, second):
        assert http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 401
    answered = http.post(
        f"/repos/{ORG}/api/issues/{issue}/comments",
        headers=token_headers(other),
        json={"body": "ok"},
    )
    assert answered.status_code == 201 and answered.json()["user"]["login"] == "shared-bot[bot]"
    assert world.installation(installation_id)["suspended_at"] is None
    assert emu.count_requests(route="/app/installations/{installation_id}/suspended") == 0
    with pytest.raises(ProviderError, match="killed"):
        provider.issue_credentials(reader, run_for(reader.name))
    assert engine.kill(reader.name, "INC-2").already


# -- kill without state, without configuration ----------------------------------------------


def test_kill_with_the_state_store_emptied(github_world: GitHubWorld, leaks: Leaks) -> None:
    world, http = github_world, github_world.http
    contract = contract_for("lost-agent", ["repo:read"])
    provider = world.provider()
    app = world.register(contract, provider)
    installation_id = world.install(int(app["app_id"]))
    token = mint(world, leaks, provider, contract)
    # A neighbour whose name starts the same must not be touched.
    neighbour = contract_for("lost-agent-2", ["repo:read"])
    neighbour_app = world.register(neighbour, provider)
    neighbour_installation = world.install(int(neighbour_app["app_id"]))

    empty = world.provider(state_url=world.empty_state_url())
    result = empty.kill(contract.name, "state lost")
    leaks.seen(result)
    assert result.ok, result
    assert result.resource_id == str(app["app_id"])
    assert world.installation(installation_id)["suspended_at"] is not None
    assert world.installation(neighbour_installation)["suspended_at"] is None
    # Not revoked (no record of it), but refused: its installation is suspended.
    assert http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code == 403
    assert empty.kill(contract.name, "state lost").already


def test_kill_of_an_agent_without_github(github_world: GitHubWorld) -> None:
    unconfigured = GitHubProvider(
        ProviderContext(
            config=github_world.config(organization=None),
            state_factory=lambda: github_world.open_state(),
            secrets_factory=github_world.secrets,
        )
    )
    # Nothing here says whether "nobody" has a GitHub App: never a ✓.
    result = unconfigured.kill("nobody", "test")
    assert not result.ok and result.undetermined and result.resource_id is None
    assert "github.organization" in result.remaining
    assert not unconfigured.observe("nobody").exists
    with pytest.raises(ProviderError, match="not configured") as error:
        unconfigured.plan(
            contract_for("nobody", ["repo:read"]), unconfigured.observe("nobody"), expired=False
        )
    assert error.value.hint and "github.organization" in error.value.hint

    configured = github_world.provider()
    # The state does not know it and the keyring here is personal: cannot rule an App out.
    result = configured.kill("nobody", "test")
    assert not result.ok and result.undetermined
    assert f"{github_world.emu.url}/organizations/{ORG}/settings/apps" in result.remaining

    # The state knows the agent and records no App and no token: verified, nothing to do.
    github_world.open_state().upsert_agent(
        name="nobody",
        owner="o@example.com",
        purpose="",
        execution_mode="autonomous",
        expiry=None,
        status=AgentStatus.ACTIVE,
        contract_hash=None,
    )
    result = configured.kill("nobody", "test")
    assert result.ok and result.resource_id is None and not result.already
    result = unconfigured.kill("nobody", "test")
    assert result.ok and "GitHub is not configured here" in result.detail
    with pytest.raises(ProviderError, match="github register nobody"):
        configured.plan(
            contract_for("nobody", ["repo:read"]), configured.observe("nobody"), expired=False
        )


# -- retries and failures ----------------------------------------------------------------------


def test_5xx_and_rate_limits_are_retried_then_reported(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    world, emu = github_world, github_world.emu
    contract = contract_for("flaky-agent", ["repo:read"])
    app = world.register(contract)
    installation_id = world.install(int(app["app_id"]))
    sleeps: list[float] = []
    provider = world.provider(sleep=sleeps.append, backoff_seconds=0.2, max_backoff_seconds=5.0)
    # Rate limits and lost mints: tests/test_github_limits.py.
    mint(world, leaks, provider, contract)
    mint(world, leaks, provider, contract)

    endpoint = "/app/installations"
    emu.inject_fault(502, count=50, path_prefix=endpoint, method="GET")
    with pytest.raises(ProviderError) as persistent:
        provider.status(contract.name)
    leaks.seen(str(persistent.value), persistent.value.hint)
    message = str(persistent.value)
    assert f"GitHub answered 502 five times for GET {endpoint}" in message
    assert "retry later" in message and len(sleeps) == 4
    emu.reset_faults()

    emu.inject_fault(503, count=50, path_prefix=f"/app/installations/{installation_id}/suspended")
    failed = provider.kill(contract.name, "INC-3")
    leaks.seen(failed)
    assert not failed.ok
    assert "revoked 2 tokens" in failed.detail  # tokens first: they never wait for the suspension
    assert (
        f"suspend installation {installation_id}" in failed.remaining and "503" in failed.remaining
    )
    emu.reset_faults()
    assert provider.kill(contract.name, "INC-3").ok
    assert world.installation(installation_id)["suspended_at"] is not None


def test_connection_resets_are_retried_on_reads_and_never_hide_a_mint(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    """A reset connection (the emulator drops it without answering) is transient:
    reads are tried again with backoff, and kill verifies; a mint whose answer was
    lost after GitHub carried it out is not retried, and stays recorded as
    unconfirmed until it would expire."""
    world, emu = github_world, github_world.emu
    contract = contract_for("reset-agent", ["repo:read"])
    app = world.register(contract)
    installation_id = world.install(int(app["app_id"]))
    sleeps: list[float] = []
    provider = world.provider(sleep=sleeps.append, backoff_seconds=0.2, max_backoff_seconds=5.0)

    emu.inject_reset(count=2, path_prefix="/app/installations", method="GET")
    assert provider.status(contract.name).installation_id == installation_id
    assert len(sleeps) == 2
    resets = [r for r in emu.requests if r["fault"]]
    assert len(resets) == 2 and {r["status"] for r in resets} == {0}

    emu.inject_reset(count=50, path_prefix="/app/installations", method="GET")
    with pytest.raises(ProviderError) as persistent:
        provider.status(contract.name)
    leaks.seen(str(persistent.value))
    assert "cannot connect to GitHub" in str(persistent.value)
    assert "five times" in str(persistent.value)
    emu.reset_faults()

    # The mint reached GitHub and its answer was lost: not retried, recorded.
    before = len(emu.state()["tokens"])
    emu.inject_reset(path_prefix=f"/app/installations/{installation_id}/access_tokens", after=True)
    with pytest.raises(ProviderError, match="GitHub may have done it anyway") as lost:
        provider.issue_credentials(contract, run_for(contract.name))
    leaks.seen(str(lost.value))
    assert len(emu.state()["tokens"]) == before + 1  # GitHub minted it; nobody holds it
    pending = world.open_state().list_credentials(agent=contract.name, provider="github")
    assert [c.fingerprint for c in pending if c.revoked_at is None] == ["unconfirmed"]

    # Kill's suspension blocks it, and the read-back survives a reset.
    emu.inject_reset(path_prefix=f"/app/installations/{installation_id}", method="GET")
    killed = provider.kill(contract.name, "INC-21")
    assert killed.ok, killed
    assert world.installation(installation_id)["suspended_at"] is not None


def test_unreachable_github_names_the_setting(github_world: GitHubWorld) -> None:
    provider = github_world.provider(github_world.config(base_url="http://127.0.0.1:9"))
    contract = contract_for("offline-agent", ["repo:read"])
    form = provider.start_registration(contract.name, provider.app_manifest(contract))
    with pytest.raises(ProviderError) as error:
        provider.complete_registration(contract, "code", form.state)
    assert "cannot connect to GitHub at http://127.0.0.1:9" in str(error.value)
    assert error.value.hint and "github.base_url" in error.value.hint


def test_registration_refuses_an_app_that_differs_from_the_contract(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    world = github_world
    contract = contract_for("strict-agent", ["repo:read"])
    provider = world.provider()
    with pytest.raises(ProviderError, match="webhook events need a webhook"):
        provider.app_manifest(contract, events=["push"])
    hooked = provider.app_manifest(
        contract, webhook_url="https://hooks.example.com/x", events=["push"]
    )
    assert hooked["hook_attributes"]["url"] == "https://hooks.example.com/x"
    assert hooked["default_events"] == ["push"]
    manifest = provider.app_manifest(contract)
    edited = {
        **manifest,
        "default_permissions": {**manifest["default_permissions"], "issues": "write"},
    }
    form = provider.start_registration(contract.name, manifest)
    with pytest.raises(ProviderError, match="issues:write") as refused:
        provider.complete_registration(
            contract, world.emu.create_manifest_code(edited, owner=ORG), form.state
        )
    leaks.seen(str(refused.value), refused.value.hint)
    assert world.secrets().get(app_key_ref(contract.name)) is None
    assert world.open_state().get_resource(contract.name, "github") is None


def test_registration_checks_the_state_and_the_owner_before_trusting_a_code(
    github_world: GitHubWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    """A code is used only with the state of the registration agentctl started, and
    an App not owned by github.organization is refused (audited, key not stored)."""
    world, emu = github_world, github_world.emu
    contract = contract_for("triage-agent", ["issue:write"])
    path = str(world.write_contract(contract))
    register = ("github", "register", contract.name, "--contract", path)
    conversions = "/app-manifests/{code}/conversions"

    # No registration started: nothing is used.
    manifest = world.provider().app_manifest(contract)
    stray = emu.create_manifest_code(manifest, owner=ORG)
    code, out = cli(capsys, leaks, world, *register, "--code", stray, "--state", "guess")
    assert code != 0 and "no registration of triage-agent is pending" in out

    code, out = cli(capsys, leaks, world, *register, "-o", "json")
    assert code == 0, out
    started = json.loads(out)

    # A bare code without its state is a usage error that names the fix.
    code, out = cli(capsys, leaks, world, *register, "--code", stray)
    assert code == 2 and "--state" in out and "redirect URL" in out

    # Another registration's code (a forged link): refused before the code is used.
    emu.clear_requests()
    forged = f"http://127.0.0.1/agentctl/github/registered?code={stray}&state=forged"
    code, out = cli(capsys, leaks, world, *register, "--code", forged)
    assert code != 0 and "forged link" in out
    assert emu.count_requests(route=conversions) == 0

    # The right state, but the person created the App under their own account.
    emu.create_user("mallory")
    code, out = cli(capsys, leaks, world, *register, "-o", "json")
    state = json.loads(out)["state"]
    assert state != started["state"]  # every registration gets its own
    personal = emu.create_manifest_code(manifest, owner="mallory")
    code, out = cli(capsys, leaks, world, *register, "--code", personal, "--state", state)
    assert code != 0 and "owned by mallory (User), not by the organization acme" in out
    assert "Registered" not in out
    assert world.secrets().get(app_key_ref(contract.name)) is None
    assert world.open_state().get_resource(contract.name, "github") is None
    events = world.open_state().audit_events(action="github.register")
    assert [e.result for e in events] == ["failure"] * 3
    reasons = [e.detail.get("reason") for e in events]
    assert reasons == ["no-pending-registration", "state-mismatch", "foreign-owner"]
    assert events[-1].detail["owner"] == "mallory"
    assert events[-1].detail["expected_owner"] == ORG
    # The code is spent, and so is that registration's state.
    code, out = cli(capsys, leaks, world, *register, "--code", personal, "--state", state)
    assert code != 0 and "no registration of triage-agent is pending" in out


# -- the other CLI commands --------------------------------------------------------------------


def test_rotate_key_and_status(
    github_world: GitHubWorld,
    capsys: pytest.CaptureFixture[str],
    leaks: Leaks,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    world = github_world
    # The operator's key files are input, not output: kept apart from the test's
    # tmp_path, where everything agentctl writes must be free of secrets.
    keys = tmp_path_factory.mktemp("operator-keys")
    contract = contract_for("keyed-agent", ["repo:read"])
    app = world.register(contract)
    world.install(int(app["app_id"]))
    stored = world.secrets().get(app_key_ref(contract.name))
    assert stored is not None
    leaks.secret(stored.reveal())

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = keys / "wrong.pem"
    wrong.write_bytes(
        stranger.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    leaks.secret(wrong.read_text())
    code, out = cli(
        capsys, leaks, world, "github", "rotate-key", contract.name, "--private-key", str(wrong)
    )
    assert code == 1 and "401" in out
    assert world.secrets().get(app_key_ref(contract.name)) == stored

    # GitHub's emulator knows one key per App: re-installing it is the valid rotation here.
    right = keys / "right.pem"
    right.write_text(stored.reveal())
    code, out = cli(
        capsys, leaks, world, "github", "rotate-key", contract.name, "--private-key", str(right)
    )
    assert code == 0 and "accepted the new key" in out, out
    events = world.open_state().audit_events(action="github.rotate-key")
    assert [e.result for e in events] == ["failure", "success"]

    provider = world.provider()
    mint(world, leaks, provider, contract)
    code, out = cli(capsys, leaks, world, "github", "status", contract.name, "-o", "json")
    assert code == 0, out
    status = json.loads(out)
    assert status["app_id"] == app["app_id"] and status["live_tokens"] == 1
    assert status["installation_id"] is not None and status["suspended"] is False


def test_constructing_the_provider_imports_no_github_client() -> None:
    # `agentctl validate` constructs every provider: it must not pay for githubkit.
    code = (
        "import sys\n"
        "from agentctl.providers.base import ProviderContext\n"
        "from agentctl.providers.github.lifecycle import GitHubProvider\n"
        "provider = GitHubProvider(ProviderContext())\n"
        "from agentctl.providers.github import SPEC\n"
        "grant = SPEC.parse_grant({'repositories': ['acme/api'], 'scopes': ['repo:read']})\n"
        "assert SPEC.check_grant(grant, provider._settings) == []\n"
        "loaded = {'githubkit', 'httpx', 'jwt'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1]
    )


# -- App names: github.app_name_template ----------------------------------------------------


def test_app_names_come_from_the_template_and_are_checked_at_validate_time() -> None:
    from agentctl.config import Config
    from agentctl.contract import load_contract_text
    from agentctl.providers.github.settings import GitHubSettings

    def problems(name: str, grant_mode: str = "", **settings: Any) -> list[tuple[str, str, str]]:
        mode = f", mode: {grant_mode}" if grant_mode else ""
        text = (
            f"agent: {{name: {name}, owner: a@example.com, purpose: test}}\n"
            f"permissions: {{github: {{repositories: [acme/api], scopes: [repo:read]{mode}}}}}\n"
            f"execution_mode: autonomous\nexpiry: 2027-01-01\nkill_switch: /agents/{name}/disable\n"
        )
        config = Config(provider_settings={"github": GitHubSettings(**settings)})
        report = load_contract_text(
            text, "contract.yaml", today=datetime(2026, 12, 1).date(), config=config
        )
        return [(p.path, p.code, p.message) for p in report.problems]

    # 34 characters with the organization's prefix fit; 35 do not.
    assert problems("a" * 29, organization="acme") == []
    ((path, code, message),) = problems("a" * 30, organization="acme")
    assert (path, code) == ("agent.name", "github-app-name")
    assert f"'acme-{'a' * 30}' (35 characters" in message and "GitHub allows 34" in message
    assert "github.app_name_template" in message
    assert problems("a" * 30, organization="acme", app_name_template="{name}") == []
    ((_, code, message),) = problems("x-agent", app_name_template="agents-{team}")
    assert code == "github-app-name" and "only {org} and {name}" in message
    ((_, _, message),) = problems("x-agent", app_name_template="agentctl")
    assert "has no {name}" in message
    # Shared mode registers no App per agent: nothing to name.
    assert problems("a" * 30, organization="acme", mode="shared") == []
    assert problems("a" * 30, "shared", organization="acme") == []
    assert problems("a" * 30, "dedicated", organization="acme", mode="shared") != []


def test_a_lost_state_finds_the_app_again_by_its_slug(github_world: GitHubWorld) -> None:
    world = github_world
    contract = contract_for("durable-agent", PR_GRANT)
    app = world.register(contract)
    assert app["slug"] == f"{ORG}-durable-agent" == world.provider().app_slug(contract.name)
    world.install(int(app["app_id"]), repositories=["api"])
    assert world.engine().apply(world.engine().plan([contract])).ok

    # A new, empty state: the secret store's App is confirmed by GitHub and recorded.
    empty = world.empty_state_url()
    engine = world.engine(state_url=empty)
    plan = engine.plan([contract])
    (agent_plan,) = plan.agents
    (change,) = [c for c in agent_plan.changes if c.kind == ChangeKind.UPDATE]
    assert f"record GitHub App {ORG}-durable-agent" in change.summary
    assert engine.apply(plan).ok
    record = world.open_state(empty).get_resource(contract.name, "github")
    assert record is not None and record.attributes["slug"] == f"{ORG}-durable-agent"
    assert not engine.plan([contract]).has_changes

    # A key for some other App under this agent's name is never adopted.
    other = world.emu.create_app("someone-else", owner=ORG, permissions={"contents": "read"})
    world.secrets().put(f"github/app/{contract.name}/app-id", Secret(str(other["id"])))
    world.secrets().put(app_key_ref(contract.name), Secret(other["pem"]))
    with pytest.raises(ProviderError, match="does not adopt it"):
        world.provider(state_url=world.empty_state_url()).observe(contract.name)


def test_register_pending_matches_codes_by_state_and_refuses_a_stranger(
    github_world: GitHubWorld, capsys: pytest.CaptureFixture[str], leaks: Leaks
) -> None:
    world = github_world
    for name in ("first-agent", "second-agent"):
        world.write_contract(contract_for(name, PR_GRANT))
    folder = str(world.root / "contracts")
    code, out = cli(capsys, leaks, world, "github", "register-pending", folder, "-o", "json")
    assert code == 0, out
    page = Path(json.loads(out)["form"]).read_text("utf-8")
    forms = page.split("<form ")[1:]
    assert len(forms) == 2 and all("target='_blank'" in f for f in forms)
    redirects = []
    for form in forms:
        action = html.unescape(form.split("action='", 1)[1].split("'", 1)[0])
        manifest = html.unescape(form.split("value='", 1)[1].split("'>", 1)[0])
        created = world.http.post(action, data={"manifest": manifest})
        redirects.append(created.headers["location"])
    stranger = world.emu.create_manifest_code(json.loads(manifest), owner=ORG)
    forged = f"http://127.0.0.1/agentctl/github/registered?code={stranger}&state=forged"
    args = ["--code", redirects[1], "--code", forged, "--code", redirects[0]]
    code, out = cli(capsys, leaks, world, "github", "register-pending", folder, *args)
    assert code == 1, out
    assert "second-agent: registered acme-second-agent" in out
    assert "first-agent: registered acme-first-agent" in out
    assert "no pending registration has this state" in out
    events = world.open_state().audit_events(action="github.register")
    assert sorted(e.result for e in events) == ["failure", "success", "success"]
    # Nothing left to register.
    code, out = cli(capsys, leaks, world, "github", "register-pending", folder)
    assert code == 0 and "already has its GitHub App" in out


# -- the App's private key: dated, reported by age, replaced by a person -------------------


def github_fingerprint(pem: str) -> str:
    """What GitHub's settings page shows for a key (GitHub docs, "Verifying private
    keys"): `openssl rsa -pubout -outform DER | openssl sha256 -binary | openssl base64`."""
    import base64
    import hashlib

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_the_app_key_is_dated_reported_when_old_and_rotated_by_a_person(
    github_world: GitHubWorld,
    capsys: pytest.CaptureFixture[str],
    leaks: Leaks,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from dataclasses import replace
    from datetime import timedelta

    world = github_world
    keys = tmp_path_factory.mktemp("operator-keys")
    contract = contract_for("keyed-agent", ["repo:read"])
    path = world.write_contract(contract)
    app = world.register(contract)
    app_id = int(app["app_id"])
    world.install(app_id)
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    first = world.secrets().get(app_key_ref(contract.name))
    assert first is not None
    leaks.secret(first.reveal())
    settings_page = f"{world.emu.url}/organizations/{ORG}/settings/apps/{app['slug']}"

    def key_items(days_later: int) -> list[Any]:
        later = datetime.now(UTC) + timedelta(days=days_later)
        report = replace(engine, clock=lambda: later).expiring([contract], [], days=30)
        leaks.seen(report)
        return [i for i in report.items if i.secret is not None]

    # Registration dated the key GitHub made in the manifest conversion.
    assert key_items(0) == [] and key_items(89) == []  # rotation_max_age_days: 90
    [due] = key_items(91)
    assert due.kind == "credential-rotation-due" and due.agent == contract.name
    assert due.owner == contract.owner and due.days_left == -1
    assert (due.secret.provider, due.secret.kind) == ("github", "app-private-key")
    assert due.secret.id == str(app_id)
    assert due.secret.fingerprint == github_fingerprint(first.reveal())
    # The exact steps: where to generate it, the command, and which key to delete after.
    assert f"generate a new private key at {settings_page} " in due.detail
    assert f"agentctl github rotate-key {contract.name} --private-key FILE" in due.detail
    assert f"delete the old key ({github_fingerprint(first.reveal())})" in due.detail
    assert "91 days old" in due.detail and "older than 90 days" in due.detail

    # The CLI, as cron runs it: exit 1, one whole record per line, JSON carries the key.
    code, out = cli(capsys, leaks, world, "expiring", "--days", "30", str(path))
    assert code == 0 and out == ""  # today: nothing due
    code, out = cli(capsys, leaks, world, "status", contract.name, "-o", "json")
    assert code == 0, out
    [secret] = json.loads(out)["agents"][0]["long_lived_secrets"]
    assert secret["kind"] == "app-private-key" and secret["age_days"] == 0
    assert secret["fingerprint"] == github_fingerprint(first.reveal())
    code, out = cli(capsys, leaks, world, "status")
    assert code == 0 and "github app-private-key 0d" in out
    code, out = cli(capsys, leaks, world, "github", "status", contract.name)
    assert code == 0 and f"private key: {github_fingerprint(first.reveal())}, 0 days old" in out

    # A person follows the steps: a new key from the settings page, then rotate-key.
    new_pem = leaks.secret(world.emu.generate_app_key(app_id))
    downloaded = keys / "new.pem"
    downloaded.write_text(new_pem)
    later = datetime.now(UTC) + timedelta(days=91)
    config = world.write_config()
    code = run(
        [
            "--config",
            str(config),
            "--state",
            world.state_url,
            "github",
            "rotate-key",
            contract.name,
            "--private-key",
            str(downloaded),
        ],
        clock=lambda: later,
    )
    captured = capsys.readouterr()
    leaks.seen(captured.out, captured.err)
    assert code == 0, captured.err
    assert f"key fingerprint {github_fingerprint(new_pem)}" in captured.out
    # GitHub still accepts the old key until it is deleted on the page (the last step).
    world.emu.delete_app_key(app_id, first.reveal())
    mint(world, leaks, world.provider(), contract)
    events = world.open_state().audit_events(action="github.rotate-key")
    assert events[-1].detail["key_fingerprint"] == github_fingerprint(new_pem)

    # Its age starts when it was stored: not due 91 days after registration any more,
    # due again 91 days after the rotation.
    assert key_items(91) == []
    [again] = key_items(91 + 91)
    assert again.secret.fingerprint == github_fingerprint(new_pem)
    assert f"delete the old key ({github_fingerprint(new_pem)})" in again.detail

    # From cron, off a terminal: the key's whole record on one greppable line.
    code = run(
        ["--config", str(config), "--state", world.state_url, "expiring", str(path)],
        clock=lambda: later + timedelta(days=91),
    )
    captured = capsys.readouterr()
    leaks.seen(captured.out, captured.err)
    assert code == 1
    [line] = [x for x in captured.out.splitlines() if "app-private-key" in x]
    assert line.startswith(f"{contract.owner}  {contract.name}: credential-rotation-due: ")
    assert settings_page in line and "rotate-key" in line
    code = run(
        ["--config", str(config), "--state", world.state_url, "expiring", "-o", "json", str(path)],
        clock=lambda: later + timedelta(days=91),
    )
    report = json.loads(capsys.readouterr().out)
    [item] = [i for o in report["owners"] for i in o["items"] if "secret" in i]
    assert item["secret"]["fingerprint"] == github_fingerprint(new_pem)
    assert item["secret"]["created_at"] == later.isoformat()


def test_a_key_stored_before_keys_were_dated_is_due_once_certainly_old(
    github_world: GitHubWorld, leaks: Leaks
) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from agentctl.state.records import LongLivedSecretRecord

    world = github_world
    contract = contract_for("old-agent", ["repo:read"])
    app = world.register(contract)
    world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    # What the state migration leaves for an App registered before (tests/test_state.py
    # checks the migration itself): no creation time, tracked from the upgrade.
    upgraded = datetime.now(UTC)
    world.open_state().put_long_lived_secret(
        LongLivedSecretRecord(
            agent=contract.name,
            provider="github",
            kind="app-private-key",
            key_id=str(app["app_id"]),
            fingerprint=None,
            created_at=None,
            tracked_since=upgraded,
        )
    )

    def key_items(days_later: int) -> list[Any]:
        later = upgraded + timedelta(days=days_later)
        report = replace(engine, clock=lambda: later).expiring([contract], [], days=30)
        leaks.seen(report)
        return [i for i in report.items if i.secret is not None]

    assert key_items(30) == []  # its age is unknown, not known to be over 90 days
    [due] = key_items(90)
    assert "age unknown: stored before agentctl recorded key ages, tracked since " in due.detail
    assert f"{upgraded.date().isoformat()}, so at least 90 days old" in due.detail
    assert "delete the old key on the same page" in due.detail
    [view] = replace(engine, clock=lambda: upgraded + timedelta(days=3)).status(contract.name)
    [age] = view.long_lived_secrets
    assert age.age_days is None and age.at_least_days == 3
