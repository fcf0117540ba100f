"""GitHub's rate limits and lost answers, against the emulator over real HTTP.

Rate limits are waited out as GitHub documents them ("Rate limits for the REST
API", docs.github.com): the primary limit until ``x-ratelimit-reset``; a
secondary limit for ``retry-after`` seconds, else at least a minute, growing
exponentially; all within ``github.rate_limit_max_wait_seconds``, each wait
announced. No test sleeps: the provider's sleeper (and, where the emulator must
see time pass, a shared fake clock) is injected.

Minting a token (``POST /app/installations/{id}/access_tokens``) is recorded
before it is sent and settled after; a lost answer is never retried blindly.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from github_helpers import ORG, GitHubWorld, contract_for, run_for, token_headers

from agentctl.errors import ProviderError
from agentctl.providers.github.client import GitHubApiError, GitHubHttp, token_authorization
from agentctl.providers.github.lifecycle import NOT_MINTED, UNCONFIRMED, GitHubProvider
from agentctl.secrets import Secret
from testing.github import GitHubEmulator

# A wall-clock time as the GitHub client writes it in a message or hint.
_WALL_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")

TOKENS = "/app/installations/{installation_id}/access_tokens"


class Waits:
    """The provider's sleeper and announcements, recorded instead of slept."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.notes: list[str] = []


def setup_agent(world: GitHubWorld, name: str, waits: Waits, **settings: Any) -> Any:
    contract = contract_for(name, ["repo:read"])
    app = world.register(contract)
    installation_id = world.install(int(app["app_id"]))
    provider = world.provider(
        world.config(**settings),
        sleep=waits.sleeps.append,
        notify=waits.notes.append,
        backoff_seconds=0.2,
        max_backoff_seconds=5.0,
    )
    return contract, installation_id, provider


def minted_in_github(world: GitHubWorld, installation_id: int) -> list[dict[str, Any]]:
    return [t for t in world.emu.state()["tokens"] if t["installation_id"] == installation_id]


def test_rate_limits_are_waited_out_as_github_documents(
    github_world: GitHubWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world, emu, waits = github_world, github_world.emu, Waits()
    contract, installation_id, provider = setup_agent(world, "patient-agent", waits)
    endpoint = TOKENS.format(installation_id=installation_id)

    # Secondary with retry-after: exactly what GitHub asked, however long (no cap).
    emu.inject_fault(429, rate_limit="secondary", retry_after=45, path_prefix=endpoint)
    # Primary: until x-ratelimit-reset (plus a second for clock rounding).
    emu.inject_fault(403, rate_limit="primary", reset_in=120, path_prefix=endpoint)
    # Secondary without retry-after (remaining not 0): a minute, then two.
    emu.inject_fault(403, rate_limit="secondary", count=2, path_prefix=endpoint)
    credential = provider.issue_credentials(contract, run_for(contract.name))
    assert waits.sleeps[0] == 45
    assert 115 <= waits.sleeps[1] <= 122
    assert waits.sleeps[2:] == [60, 120]
    assert len(waits.notes) == 4
    assert all(n.startswith("waiting for GitHub's rate limit until ") for n in waits.notes)
    assert "github.rate_limit_max_wait_seconds" in waits.notes[0]
    # Rate-limited requests were refused by GitHub, so retrying minted exactly one.
    assert len(minted_in_github(world, installation_id)) == 1
    token = credential.environment["GITHUB_TOKEN"]
    assert isinstance(token, Secret)
    assert world.http.get(f"/repos/{ORG}/api", headers=token_headers(token.reveal())).is_success

    # A 403 that is not a limit (here: a suspension) is never waited for.
    waits.sleeps.clear()
    emu.inject_fault(403, path_prefix=endpoint)
    with pytest.raises(ProviderError):
        provider.issue_credentials(contract, run_for(contract.name))
    assert waits.sleeps == []

    # Without an injected announcer, the wait is announced on stderr.
    quiet = world.provider(sleep=waits.sleeps.append)
    emu.inject_fault(429, rate_limit="secondary", retry_after=2, path_prefix=endpoint)
    quiet.issue_credentials(contract, run_for(contract.name))
    err = capsys.readouterr().err
    assert "waiting for GitHub's rate limit until " in err and "(2 s; mint a GitHub token" in err


def test_a_wait_beyond_the_budget_fails_at_once_saying_when(github_world: GitHubWorld) -> None:
    world, emu, waits = github_world, github_world.emu, Waits()
    contract, installation_id, provider = setup_agent(
        world, "hurried-agent", waits, rate_limit_max_wait_seconds=300
    )
    endpoint = TOKENS.format(installation_id=installation_id)
    emu.inject_fault(403, rate_limit="primary", reset_in=3000, path_prefix=endpoint)
    with pytest.raises(ProviderError) as refused:
        provider.issue_credentials(contract, run_for(contract.name))
    message = str(refused.value)
    assert "GitHub rate-limited POST " in message and "(403)" in message
    assert "beyond github.rate_limit_max_wait_seconds (300 s)" in message
    assert refused.value.hint and refused.value.hint.startswith("retry after ")
    assert waits.sleeps == []  # never waits part of a wait it cannot finish
    # The intent recorded before the request is settled: nothing was minted.
    (record,) = world.open_state().list_credentials(agent=contract.name)
    assert record.fingerprint == NOT_MINTED and record.revoked_at is not None

    # Persistent secondary limits: waits grow, and stop at the budget.
    waits.sleeps.clear()
    emu.inject_fault(403, rate_limit="secondary", count=10, path_prefix=endpoint)
    with pytest.raises(ProviderError, match=r"beyond github\.rate_limit_max_wait_seconds"):
        provider.issue_credentials(contract, run_for(contract.name))
    assert waits.sleeps == [60, 120]  # a third (240 s) would pass 300 s in all
    emu.reset_faults()


def test_reads_are_retried_on_5xx_but_a_lost_mint_is_recorded_not_retried(
    github_world: GitHubWorld,
) -> None:
    world, emu, waits = github_world, github_world.emu, Waits()
    contract, installation_id, provider = setup_agent(world, "lossy-agent", waits)
    endpoint = TOKENS.format(installation_id=installation_id)

    # Reads are retried with backoff.
    emu.inject_fault(502, count=2, path_prefix="/app/installations", method="GET")
    assert provider.status(contract.name).installation_id == installation_id
    assert len(waits.sleeps) == 2 and 0.1 <= waits.sleeps[0] <= 0.2

    # GitHub minted the token, and the answer was lost on the way back.
    emu.clear_requests()
    emu.inject_fault(502, path_prefix=endpoint, after=True)
    with pytest.raises(ProviderError) as lost:
        provider.issue_credentials(contract, run_for(contract.name))
    message = str(lost.value)
    assert "GitHub answered 502 to POST" in message and "did not retry" in message
    assert "recorded as unconfirmed token" in message and "agentctl kill lossy-agent" in message
    assert emu.count_requests(method="POST", route=TOKENS) == 1  # never blindly again
    (orphan,) = minted_in_github(world, installation_id)
    assert not orphan["revoked"]  # live in GitHub, and nobody has its value
    (record,) = world.open_state().list_credentials(agent=contract.name)
    assert record.fingerprint == UNCONFIRMED and record.revoked_at is None
    assert record.expires_at > datetime.now(UTC) + timedelta(minutes=59)
    assert provider.status(contract.name).live_tokens == 1

    # Kill blocks it the only way GitHub allows: suspending the installation.
    killed = provider.kill(contract.name, "INC-9")
    assert killed.ok, killed
    assert "1 token(s) whose value agentctl never received" in killed.detail
    assert world.installation(installation_id)["suspended_at"] is not None

    # Revive would bring it back: it waits until the token has expired.
    revived = provider.revive(contract.name, "fixed")
    assert not revived.ok and "never received by agentctl" in revived.detail
    assert "after " in revived.remaining
    assert world.installation(installation_id)["suspended_at"] is not None
    later = datetime.now(UTC) + timedelta(minutes=70)
    in_an_hour = world.provider(clock=lambda: later, sleep=waits.sleeps.append)
    assert in_an_hour.revive(contract.name, "fixed").ok
    assert world.installation(installation_id)["suspended_at"] is None


def test_every_token_agentctl_mints_for_itself_is_recorded_and_revoked(
    github_world: GitHubWorld,
) -> None:
    world, emu, waits = github_world, github_world.emu, Waits()
    grant = {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]}
    contract = contract_for("careful-agent", grant)
    app = world.register(contract)
    installation_id = world.install(int(app["app_id"]), repositories=["api"])
    provider = world.provider(sleep=waits.sleeps.append, notify=waits.notes.append)
    state = world.open_state()

    # Observing a "selected" installation lists its repositories with a token.
    assert provider.observe(contract.name).attributes["repositories"] == [f"{ORG}/api"]
    (listing,) = state.list_credentials(agent=contract.name)
    assert listing.trigger == "agentctl:list-installation-repositories"
    assert listing.revoked_at is not None and listing.fingerprint not in (UNCONFIRMED, NOT_MINTED)
    assert world.secrets().get(f"github/token/{listing.id}") is None

    # Rotation's verification token too.
    assert world.engine().apply(world.engine().plan([contract])).ok
    assert provider.rotate(contract.name).ok
    verification = [
        c
        for c in state.list_credentials(agent=contract.name)
        if c.trigger == "agentctl:rotate-verification"
    ]
    assert len(verification) == 1 and verification[0].revoked_at is not None
    assert all(t["revoked"] for t in minted_in_github(world, installation_id))

    # A listing token GitHub would not let agentctl revoke stays recorded, value
    # kept, so kill revokes it. GitHub's updated_at counts whole seconds and
    # observe lists again only when it moved: change the installation in a
    # later second than its install (this test runs in well under one).
    second = datetime.now(UTC).replace(microsecond=0)
    while datetime.now(UTC).replace(microsecond=0) == second:
        time.sleep(0.05)
    emu.update_installation(installation_id, repositories=["api", "web"])
    emu.inject_fault(502, count=50, path_prefix="/installation/token", method="DELETE")
    provider.observe(contract.name)
    emu.reset_faults()
    live = state.list_credentials(agent=contract.name, live_at=datetime.now(UTC))
    assert [c.trigger for c in live] == ["agentctl:list-installation-repositories"]
    killed = provider.kill(contract.name, "INC-10")
    assert killed.ok and "revoked 1 token" in killed.detail, killed
    assert all(t["revoked"] for t in minted_in_github(world, installation_id))


class SharedClock:
    """One fake clock for the emulator and the provider: waiting advances it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clocked_world(github_world: GitHubWorld) -> Iterator[tuple[GitHubWorld, SharedClock]]:
    clock = SharedClock()
    with GitHubEmulator(clock=clock) as emu:
        emu.create_org(ORG)
        emu.create_repo(ORG, "api")
        world = GitHubWorld(
            emu=emu,
            root=github_world.root,
            http=httpx.Client(base_url=emu.url, timeout=10),
            state_url=github_world.state_url,
            secrets_settings=github_world.secrets_settings,
        )
        try:
            yield world, clock
        finally:
            world.close()


def test_the_emulators_enforced_primary_limit_is_waited_out_until_its_reset(
    clocked_world: tuple[GitHubWorld, SharedClock],
) -> None:
    world, clock = clocked_world
    contract = contract_for("busy-agent", ["repo:read"])
    world.register(contract)
    world.emu.set_rate_limit(4)
    notes: list[str] = []
    provider = GitHubProvider(
        world.context(world.config(rate_limit_max_wait_seconds=3700)),
        sleep=clock.sleep,
        now=lambda: clock().timestamp(),
        notify=notes.append,
    )
    for _ in range(3):  # GET /app and GET /app/installations each time
        provider.status(contract.name)
    assert len(clock.slept) == 1 and 3000 < clock.slept[0] <= 3601
    assert notes and "waiting for GitHub's rate limit until " in notes[0]
    limited = [r for r in world.emu.requests if r["status"] == 403]
    assert len(limited) == 1


def test_the_plain_lane_fails_and_retries_exactly_like_githubkit(
    github_world: GitHubWorld,
) -> None:
    """The run path (mint, revoke, read-back) sends with httpx alone
    (GitHubHttp.send) to spare every run githubkit's import; what a user sees
    when GitHub fails must not depend on which lane asked: the same retries and
    waits, the same requests, the same error, status, hint and outcome."""
    world, emu, waits = github_world, github_world.emu, Waits()
    contract, _, provider = setup_agent(world, "two-lane-agent", waits)
    credential = provider.issue_credentials(contract, run_for(contract.name))
    token = credential.environment["GITHUB_TOKEN"]
    assert isinstance(token, Secret)
    read = "/installation/repositories"

    def lanes(settings: Any) -> dict[str, Any]:
        http = GitHubHttp(
            settings,
            sleep=waits.sleeps.append,
            notify=waits.notes.append,
            backoff_seconds=0.01,
            max_backoff_seconds=0.05,
        )
        client = http.as_token(token)  # kept: githubkit's namespaces hold it weakly
        return {
            "githubkit": lambda: client.rest.apps.list_repos_accessible_to_installation(per_page=1),
            "plain": lambda: http.send(
                "GET", read, token_authorization(token), params={"per_page": 1}
            ),
            "http": http,
            "client": client,
        }

    def outcome(
        lane: str, fault: Callable[[], None], settings: Any
    ) -> tuple[tuple[Any, ...], list[datetime]]:
        waits.sleeps.clear()
        waits.notes.clear()
        emu.reset_faults()
        emu.clear_requests()
        fault()
        sent = lanes(settings)
        try:
            answer = sent["http"].call("read the installation", sent[lane])
            result: tuple[Any, ...] = ("ok", answer.json()["total_count"])
            times: list[datetime] = []
        except GitHubApiError as error:
            # The message and hint name the wall-clock time a wait would end; the
            # lanes ask a moment apart, so that time may fall in the next second:
            # compared apart from the words, within a second (below).
            said = f"{error.message}\n{error.hint}"
            times = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S") for t in _WALL_TIME.findall(said)]
            result = (_WALL_TIME.sub("<time>", said), error.status, error.outcome_unknown)
        emu.reset_faults()
        seen = [(r["method"], r["path"].split("?")[0], r["status"]) for r in emu.requests]
        notes = [n.split(" until ")[0] for n in waits.notes]
        return (result, len(waits.sleeps), notes, seen), times

    budget = world.settings(rate_limit_max_wait_seconds=100)
    cases: dict[str, tuple[Callable[[], None], Any]] = {
        "answers": (lambda: None, world.settings()),
        "401": (lambda: emu.inject_fault(401, path_prefix=read), world.settings()),
        "404": (lambda: emu.inject_fault(404, path_prefix=read), world.settings()),
        "503, then an answer": (
            lambda: emu.inject_fault(503, count=2, path_prefix=read),
            world.settings(),
        ),
        "503 every time": (
            lambda: emu.inject_fault(503, count=20, path_prefix=read),
            world.settings(),
        ),
        "secondary limit past the budget": (
            lambda: emu.inject_fault(403, rate_limit="secondary", count=20, path_prefix=read),
            budget,
        ),
        "primary limit, then an answer": (
            lambda: emu.inject_fault(429, rate_limit="primary", reset_in=30, path_prefix=read),
            world.settings(),
        ),
        "connection reset every time": (
            lambda: emu.inject_reset(count=20, path_prefix=read),
            world.settings(),
        ),
        "nobody listening": (lambda: None, world.settings(base_url="http://127.0.0.1:9")),
    }
    for case, (fault, settings) in cases.items():
        kit, kit_times = outcome("githubkit", fault, settings)
        plain, plain_times = outcome("plain", fault, settings)
        assert plain == kit, case
        pairs = zip(plain_times, kit_times, strict=True)
        assert all(timedelta(0) <= p - k <= timedelta(seconds=1) for p, k in pairs), case
        answered = case == "answers" or case.endswith("then an answer")
        assert (kit[0][0] == "ok") is answered, case
        assert bool(kit_times) is (case == "secondary limit past the budget"), case
