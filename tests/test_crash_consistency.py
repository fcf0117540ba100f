"""SIGKILL `agentctl apply` at many points of a 50-agent apply; the next apply converges.

Two worlds run side by side on the one moto server, each with its own 50
agents, contracts, SQLite state and journal, each driven through a
:class:`FaultProxy` that counts the IAM writes reaching moto. A crash point is
"after the N-th IAM write, plus a delay": with no delay the process dies after
moto performed the write and before agentctl hears back (the worst moment: the
cloud changed, the state does not know); with a delay it dies while other
workers record state and audit events. Points are request counts, not
wall-clock times, so they land at the same places on a slow or a fast machine.

Each world goes through three phases (see LANES for the 9 kill points):
1. create: 50 new agents (100 writes: CreateRole + PutRolePolicy each);
2. update: 10 grant, 10 owner and 10 purpose changes, 5 expiries (disable);
3. renew: the 5 expired renewed (re-enabled), 10 grants back, 10 mode changes.
Each phase: SIGKILL apply at its point(s) (a second point kills the first
recovering apply too), run apply again until it succeeds, then check
(``cli_helpers.converged``):
- the cloud holds exactly one role per contract and no other role of these
  agents, each exactly as its contract says (tags, grant, trust, boundary;
  expired ones locked);
- state and cloud agree: every agent recorded with its contract hash and
  status, its role's ARN recorded, no recorded role that does not exist;
- the audit chain verifies and, for every agent the phase changed, a
  successful ``apply.*`` event after the phase began records the contract hash
  the agent was left in. That is the guarantee a SIGKILL allows: an event for
  a cloud write the killed process made may be lost with it, but then the next
  apply finds the write unrecorded and records it (``apply.record``): no
  change stands in the cloud without an event saying so;
- one more apply makes no IAM write at all;
and at the end a refreshing `agentctl plan` (which reads every role) finds
nothing to change.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import MotoServer, create_boundary, create_operator
from cli_helpers import (
    Cli,
    CliResult,
    FaultProxy,
    Request,
    audit_head,
    converged,
    create_auditor,
    fault_proxy,
    make_cli,
    sigkill,
)
from contract_helpers import TODAY, s3_read, write_contract

AGENTS = 50
# The design promises that the first apply after a crash converges. moto's
# IAM backend is not thread-safe and may answer an HTML 500 under load (the
# proxies serialise what they forward, which makes it rare); agentctl retries
# such a non-AWS 5xx as transient (a932b8b), so one recovery apply must do.
RECOVERY_ATTEMPTS = 1
TRANSIENT = "did not answer like AWS"


@dataclass(frozen=True)
class CrashPoint:
    writes: int  # SIGKILL once this many IAM writes reached moto ...
    delay: float = 0.0  # ... this many seconds later (0: before agentctl hears back)

    def __str__(self) -> str:
        return f"write {self.writes}" + (f" +{self.delay * 1000:.0f}ms" if self.delay else "")


@dataclass
class World:
    name: str
    cli: Cli
    proxy: FaultProxy
    contracts: Path
    iam: Any
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, message: str) -> None:
        self.log.append(f"{time.monotonic() - self.started:5.1f}s {self.name}: {message}")

    @property
    def prefix(self) -> str:
        return f"{self.name}-"

    def agent(self, index: int) -> str:
        return f"{self.name}-agent-{index:02d}"

    def apply(self) -> CliResult:
        return self.cli.run("apply", str(self.contracts), "--yes", "--output", "json")

    def crash_apply(self, point: CrashPoint) -> CliResult:
        """Start apply and SIGKILL it at ``point``; returns what it printed."""
        writes = 0
        lock = threading.Lock()
        process = self.cli.start("apply", str(self.contracts), "--yes", "--output", "json")

        def after_forward(request: Request) -> None:
            nonlocal writes
            if not request.mutating:
                return
            with lock:
                writes += 1
                reached = writes == point.writes
            if reached:
                if point.delay:
                    threading.Timer(point.delay, sigkill, (process,)).start()
                else:
                    sigkill(process)

        self.proxy.after_forward = after_forward
        started = self.proxy.count()
        try:
            result = self.cli.finish(process)
        finally:
            self.proxy.after_forward = None
        self.note(
            f"killed at {point} (exit {result.code}, "
            f"{len(self.proxy.mutating(started))} writes reached moto)"
        )
        if not point.delay:
            # Killed while moto's answer to a write was on its way: always a crash.
            assert result.code == -signal.SIGKILL, str(result)
        return result

    def recover(self) -> CliResult:
        """Apply until it succeeds (transient moto errors aside, at once)."""
        for attempt in range(1, RECOVERY_ATTEMPTS + 1):
            result = self.apply()
            self.note(f"recovery apply: exit {result.code} in {result.seconds:.1f}s")
            if result.code == 0:
                if attempt > 1:
                    self.note(f"converged on recovery attempt {attempt}")
                return result
            data = result.json() if result.out.startswith("{") else {}
            errors = [a["error"] for a in data.get("agents", []) if not a["ok"]]
            assert data, f"apply failed without a per-agent report:\n{result}"
            assert all(TRANSIENT in (e or "") for e in errors), f"{self.name}: {errors}"
            self.note(f"recovery attempt {attempt} failed: {errors[:3]}")
        raise AssertionError(
            f"{self.name}: no convergence in {RECOVERY_ATTEMPTS} applies:\n{result}"
        )

    def assert_converged(self, *, since_seq: int, changed: list[str] | None = None) -> None:
        problems = converged(
            self.cli, self.iam, self.contracts, self.prefix, since_seq=since_seq, changed=changed
        )
        assert not problems, f"{self.name}: " + "\n".join(problems[:30])

    def assert_idempotent(self) -> None:
        before = self.proxy.count()
        result = self.apply()
        self.note(f"idempotent apply in {result.seconds:.1f}s")
        assert result.code == 0, str(result)
        assert result.json()["summary"]["changed"] == 0, str(result)
        writes = self.proxy.mutating(before)
        assert not writes, f"{self.name}: a converged apply wrote {[w.action for w in writes]}"


def create(world: World) -> list[str]:
    """50 new agents: 100 writes (CreateRole + PutRolePolicy each)."""
    for index in range(AGENTS):
        write_contract(world.contracts, world.agent(index), aws=s3_read(f"{world.name}-data"))
    return [world.agent(i) for i in range(AGENTS)]


def update(world: World) -> list[str]:
    """35 changes, about 60 writes: 10 grants (PutRolePolicy), 10 owners (TagRole),
    10 purposes (TagRole + UpdateRole), 5 expiries (TagRole, the deny, the trust lock)."""
    changed = []
    for index in range(AGENTS):
        name = world.agent(index)
        kind = index % 10
        if kind in (0, 5):
            write_contract(world.contracts, name, aws=s3_read(f"{world.name}-data-b"))
        elif kind in (1, 6):
            write_contract(
                world.contracts, name, aws=s3_read(f"{world.name}-data"), owner="sec@company.com"
            )
        elif kind in (2, 7):
            write_contract(
                world.contracts, name, aws=s3_read(f"{world.name}-data"), purpose="Triage incidents"
            )
        elif kind == 3:
            write_contract(world.contracts, name, aws=s3_read(f"{world.name}-data"), expiry=TODAY)
        else:
            continue
        changed.append(name)
    return changed


def renew(world: World) -> list[str]:
    """Renew the 5 expired agents (trust, deny, tags: re-enabled), move the 10
    changed grants back, switch 10 agents to approval_required: about 45 writes."""
    changed = []
    for index in range(AGENTS):
        name = world.agent(index)
        kind = index % 10
        if kind == 3 or kind in (0, 5):
            write_contract(world.contracts, name, aws=s3_read(f"{world.name}-data"))
        elif kind in (4, 9):
            write_contract(
                world.contracts, name, aws=s3_read(f"{world.name}-data"), mode="approval_required"
            )
        else:
            continue
        changed.append(name)
    return changed


Phase = tuple[Callable[[World], list[str]], tuple[CrashPoint, ...]]

# Each lane is one world going through its phases; each phase is killed at
# each of its points in turn (a crash of the recovering apply, too), then
# applied to convergence and checked. Create makes 100 writes, update about
# 60, renew about 45: the points cover the first write, the middle and the
# tail of each phase (where workers are recording state and audit events).
LANES: dict[str, tuple[Phase, ...]] = {
    "ca": (
        (create, (CrashPoint(1), CrashPoint(23, 0.01))),
        (update, (CrashPoint(9, 0.02),)),
        (renew, (CrashPoint(44, 0.05),)),
    ),
    "cb": (
        (create, (CrashPoint(60), CrashPoint(7))),
        (update, (CrashPoint(50),)),
        (renew, (CrashPoint(17, 0.005),)),
    ),
}


def run_lane(world: World, phases: tuple[Phase, ...]) -> None:
    for change, points in phases:
        marker = audit_head(world.cli)
        changed = change(world)
        for point in points:
            world.crash_apply(point)
        world.recover()
        world.assert_converged(since_seq=marker, changed=changed)
        world.assert_idempotent()
        world.note(f"{change.__name__}: converged, idempotent")
    # agentctl's own view agrees: a refreshing plan reads every role and finds
    # nothing to change (exit 2 would be changes; 1 is a transient read error).
    for _ in range(RECOVERY_ATTEMPTS):
        refreshed = world.cli.run("plan", str(world.contracts), "--detailed-exitcode")
        if refreshed.code != 1 or TRANSIENT not in refreshed.out:
            break
    assert refreshed.code == 0, f"a refreshing plan still sees changes:\n{refreshed}"


@pytest.fixture
def crash_worlds(aws: MotoServer, tmp_path: Path) -> Iterator[dict[str, World]]:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    auditor = create_auditor(aws, tmp_path)
    aws.enforce_iam(0)
    iam = aws.client("iam", auditor.credentials)
    with ExitStack() as stack:
        worlds = {}
        for name in LANES:
            proxy = stack.enter_context(fault_proxy(aws))
            cli = make_cli(tmp_path / name, operator, proxy.url, boundary=boundary)
            worlds[name] = World(name, cli, proxy, tmp_path / name / "contracts", iam)
        yield worlds


@pytest.mark.slow
def test_sigkill_at_any_point_of_apply_converges(crash_worlds: dict[str, World]) -> None:
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=len(LANES)) as pool:
            futures = [
                pool.submit(run_lane, crash_worlds[name], phases) for name, phases in LANES.items()
            ]
            for future in futures:
                future.result()
    finally:
        for world in crash_worlds.values():
            print("\n".join(world.log))
        print(f"crash harness: {time.monotonic() - started:.1f}s")


# -- kill, revive, rotate and credentials (issue 21) -----------------------------------------

COMMAND_AGENTS = 4


def crash_command(world: World, args: tuple[str, ...], when: Callable[[Request], bool]) -> None:
    """Run ``agentctl ARGS`` and SIGKILL it once moto answered the first request
    ``when`` accepts (before agentctl hears back)."""
    process = world.cli.start(*args)
    fired = threading.Event()

    def after_forward(request: Request) -> None:
        if not fired.is_set() and when(request):
            fired.set()
            sigkill(process)

    world.proxy.after_forward = after_forward
    try:
        result = world.cli.finish(process)
    finally:
        world.proxy.after_forward = None
    assert fired.is_set(), f"the crash point was never reached:\n{result}"
    assert result.code == -signal.SIGKILL, str(result)
    world.note(f"{args[0]} killed after {len(world.proxy.since())} requests")


def nth_write(count: int) -> Callable[[Request], bool]:
    seen = 0
    lock = threading.Lock()

    def when(request: Request) -> bool:
        nonlocal seen
        if not request.mutating:
            return False
        with lock:
            seen += 1
            return seen == count

    return when


def audit_actions(world: World, since: int, agent: str) -> list[str]:
    with world.cli.state() as state:
        chain, _ = state.audit_chain()
    return [e.action for e in chain if e.seq > since and agent in (e.actor, e.target)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_during_kill_revive_rotate_credentials_and_exec_converges(
    aws: MotoServer, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Each command SIGKILLed right after its first (and for kill, also its
    second) cloud write reached moto: the next run of the same command succeeds
    at once, cloud, state and audit agree, and a credential minted by a killed
    `agentctl credentials` is in the state (recorded before it was minted)."""
    state_url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    operator = create_operator(aws)
    # rotate verifies the new session with iam:ListRoleTags: the boundary must allow it
    boundary = create_boundary(aws, actions=("s3:*", "iam:ListRoleTags"))
    auditor = create_auditor(aws, tmp_path)
    aws.enforce_iam(0)
    prefix = f"cmd{backend[0]}"
    with fault_proxy(aws) as proxy:
        cli = make_cli(
            tmp_path / prefix, operator, proxy.url, boundary=boundary, state_url=state_url
        )
        world = World(
            prefix,
            cli,
            proxy,
            tmp_path / prefix / "contracts",
            aws.client("iam", auditor.credentials),
        )
        try:
            for index in range(COMMAND_AGENTS):
                write_contract(world.contracts, world.agent(index), aws=s3_read(f"{prefix}-data"))
            assert world.apply().code == 0
            victim, rotated, minted = world.agent(0), world.agent(1), world.agent(2)
            stays_killed = world.agent(3)

            def check(killed: list[str]) -> None:
                problems = converged(
                    cli, world.iam, world.contracts, world.prefix, changed=[], killed=killed
                )
                assert not problems, "\n".join(problems)

            for agent, point in ((victim, 1), (stays_killed, 2)):  # after its 1st / 2nd write
                marker = audit_head(cli)
                kill = ("kill", agent, "--reason", "INC-21", "--yes")
                crash_command(world, kill, nth_write(point))
                again = cli.run(*kill, "--output", "json")
                assert again.code == 0 and again.json()["ok"], str(again)
                assert "kill" in audit_actions(world, marker, agent)
            check([victim, stays_killed])

            marker = audit_head(cli)
            crash_command(world, ("revive", victim, "--reason", "fixed"), nth_write(1))
            again = cli.run("revive", victim, "--reason", "fixed")
            assert again.code == 0, str(again)
            check([stays_killed])
            assert "revive" in audit_actions(world, marker, victim)

            marker = audit_head(cli)
            crash_command(world, ("rotate", rotated), nth_write(1))
            # moto ignores the cut-off's `DateLessThan aws:TokenIssueTime`, so a
            # cut-off the crashed run wrote would deny the new session that AWS
            # allows (it only hits older sessions): lift it as admin, as AWS's
            # evaluation would, before the run that must converge.
            with aws.unenforced():
                iam_admin = aws.client("iam")
                if (
                    "agentctl-revoke-older-sessions"
                    in iam_admin.list_role_policies(RoleName=f"agentctl-{rotated}")["PolicyNames"]
                ):
                    iam_admin.delete_role_policy(
                        RoleName=f"agentctl-{rotated}", PolicyName="agentctl-revoke-older-sessions"
                    )
            again = cli.run("rotate", rotated)
            assert again.code == 0, str(again)
            check([stays_killed])
            assert any(a.startswith("rotate") for a in audit_actions(world, marker, rotated))

            # credentials: killed once STS minted the session, before agentctl heard back.
            crash_command(world, ("credentials", minted), lambda r: r.action == "AssumeRole")
            with cli.state() as state:
                recorded = state.list_credentials(agent=minted)
            assert len(recorded) == 1 and recorded[0].revoked_at is None, recorded
            # ... so kill finds it, and the next credentials run is unaffected.
            again = cli.run("credentials", minted, "--output", "json")
            assert again.code == 0, str(again)

            # exec, killed once STS minted its session: recorded, and the next
            # exec runs its command at once.
            with cli.state() as state:
                before = {c.id for c in state.list_credentials(agent=minted)}
            run_args = ("exec", minted, "--", sys.executable, "-c", "pass")
            crash_command(world, run_args, lambda r: r.action == "AssumeRole")
            with cli.state() as state:
                new = [c for c in state.list_credentials(agent=minted) if c.id not in before]
            assert len(new) == 1 and new[0].revoked_at is None, new
            again = cli.run(*run_args)
            assert again.code == 0, str(again)

            # exec, killed while its command runs (after the grant was audited):
            # the run's credential is recorded and audited; the next exec runs.
            marker = audit_head(cli)
            started = tmp_path / "child-started"
            # The command runs until the test ends it (a fixed sleep could end
            # first on a loaded machine, and exec with it, before the SIGKILL).
            child = (
                "import os, pathlib, time; "
                f"pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(600)"
            )
            process = cli.start("exec", minted, "--", sys.executable, "-c", child)
            for _ in range(2400):
                if (started.exists() and started.read_text()) or process.poll() is not None:
                    break
                time.sleep(0.1)
            assert started.exists(), str(cli.finish(process))
            sigkill(process)
            # exec's SIGKILL leaves its command (its own session) running, holding
            # exec's stdout and stderr open: end it too before reading them.
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(started.read_text()), signal.SIGKILL)
            assert cli.finish(process).code == -signal.SIGKILL
            issued = [a for a in audit_actions(world, marker, minted) if a == "credentials.issue"]
            assert issued, audit_actions(world, marker, minted)
            again = cli.run(*run_args)
            assert again.code == 0, str(again)
            check([stays_killed])
        finally:
            print("\n".join(world.log))


# -- github register (issue 21) ----------------------------------------------------------------
#
# The manifest conversion cannot be repeated: the code works once and its answer
# holds the only copy of the App's private key. `github register` records an
# intent before it; these runs are SIGKILLed around it, and the next run of
# `github register` (or `github rotate-key`) must converge on its first try:
# every App GitHub has is recorded in the state, its registration is in the
# audit trail, no intent is left, and its key (stored, or generated again by a
# person) works.

CONVERSION = "/app-manifests/{code}/conversions"


@dataclass
class GitHubRegistrations:
    world: Any  # github_helpers.GitHubWorld
    state_url: str
    config: Path
    person_token: str
    log: list[str] = field(default_factory=list)

    def env(self, *, signed_in: bool = True) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
        env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "250"})
        if signed_in:  # an organization member's own token (`gh auth token`)
            env["GH_TOKEN"] = self.person_token
        return env

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "agentctl",
            "--config",
            str(self.config),
            "--state",
            self.state_url,
            *args,
        ]

    def run(self, *args: str, signed_in: bool = True) -> CliResult:
        started = time.monotonic()
        done = subprocess.run(
            self.command(*args),
            env=self.env(signed_in=signed_in),
            cwd=self.world.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
        )
        return CliResult(
            args, done.returncode, done.stdout, done.stderr, time.monotonic() - started
        )

    def crash(self, args: tuple[str, ...], when: Callable[[dict[str, Any]], bool]) -> None:
        """Run ``agentctl ARGS`` and SIGKILL it once the emulator served the first
        request ``when`` accepts, before its answer leaves."""
        process = subprocess.Popen(
            self.command(*args),
            env=self.env(),
            cwd=self.world.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        fired = threading.Event()

        def after_request(entry: dict[str, Any]) -> None:
            if not fired.is_set() and when(entry):
                fired.set()
                sigkill(process)

        self.world.emu.after_request = after_request
        try:
            out, err = process.communicate(timeout=240)
        finally:
            self.world.emu.after_request = None
        assert fired.is_set(), f"the crash point was never reached:\n{out}\n{err}"
        assert process.returncode == -signal.SIGKILL, f"{process.returncode}\n{out}\n{err}"

    def redirect_url(self, agent: str, contract: Path) -> str:
        """Step 1, then the person's click on "Create GitHub App": the redirect URL."""
        started = self.run("github", "register", agent, "--contract", str(contract), "-o", "json")
        assert started.code == 0, str(started)
        page = started.json()
        clicked = self.world.http.post(
            page["creation_url"],
            data={"manifest": json.dumps(page["manifest"])},
            follow_redirects=False,
        )
        assert clicked.status_code == 302, clicked.text
        return str(clicked.headers["location"])

    def state(self) -> Any:
        return self.world.open_state(self.state_url)


def github_converged(registrations: GitHubRegistrations, agents: list[str]) -> list[str]:
    """State, GitHub and audit agree: each agent's App exists once on GitHub, is
    recorded with GitHub's id, its registration audited, no intent pending, and
    the stored key is accepted by GitHub for that App."""
    from agentctl.providers.github.lifecycle import app_id_ref, app_key_ref

    world = registrations.world
    problems = []
    apps = {a["slug"]: a for a in world.emu.state()["apps"]}
    state = registrations.state()
    secrets = world.secrets()
    registered = [e for e in state.audit_events(action="github.register") if e.result == "success"]
    for agent in agents:
        slug = f"acme-{agent}"
        app = apps.get(slug)
        record = state.get_resource(agent, "github")
        if app is None:
            problems.append(f"{agent}: GitHub has no App {slug}")
            continue
        if record is None or int(record.resource_id) != app["id"]:
            problems.append(f"{agent}: App {app['id']} on GitHub, state records {record}")
        if not any(e.detail.get("app_id") == app["id"] for e in registered):
            problems.append(f"{agent}: App {app['id']} exists with no github.register event")
        stored_id = secrets.get(app_id_ref(agent))
        if stored_id is None or int(stored_id.reveal()) != app["id"]:
            problems.append(f"{agent}: the secret store holds App id {stored_id}")
        if secrets.get(app_key_ref(agent)) is None:
            problems.append(f"{agent}: no private key stored")
    if state.list_intents():
        problems.append(f"intents left: {state.list_intents()}")
    owned = [a for a in apps.values() if a["slug"].startswith("acme-reg-")]
    if len(owned) != len(agents):
        problems.append(f"GitHub has {len(owned)} Apps for {len(agents)} agents")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_sigkill_during_github_register_converges(
    github_world: Any,
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`github register --code` SIGKILLed (a) at a conversion GitHub refused with a
    503 (code unused), (b) once GitHub converted the code, before agentctl heard
    back (the App exists, its only key is lost), (c) once GitHub accepted the
    stored key, before the state recorded the App. The next run converges at
    once: (a) the same URL registers; (b) register records the App and says how
    to get a key, and rotate-key with the key a person generates completes it,
    also without any register in between, and without a GitHub token
    (--app-id); (c) register step 1 records it."""
    from github_helpers import contract_for

    world = github_world
    state_url = (
        f"sqlite:///{world.root / 'state.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    regs = GitHubRegistrations(
        world, state_url, world.write_config(), world.emu.create_user_token("octo-ops")
    )
    keys = tmp_path_factory.mktemp("operator-keys")
    agents = ["reg-early", "reg-lost", "reg-stored", "reg-rotate", "reg-anon"]
    paths = {name: world.write_contract(contract_for(name, ["issue:write"])) for name in agents}

    def register(agent: str, *extra: str, signed_in: bool = True) -> CliResult:
        return regs.run(
            "github",
            "register",
            agent,
            "--contract",
            str(paths[agent]),
            *extra,
            signed_in=signed_in,
        )

    def conversion(entry: dict[str, Any]) -> bool:
        return bool(entry["route"] == CONVERSION)

    def pending(agent: str) -> bool:
        return regs.state().get_intent(agent, "github", "register") is not None

    def new_key(agent: str) -> Path:
        """The person's "Generate a private key" on the App's settings page."""
        app = next(a for a in world.emu.state()["apps"] if a["slug"] == f"acme-{agent}")
        path = keys / f"{agent}.pem"
        path.write_text(world.emu.generate_app_key(app["id"]), "utf-8")
        return path

    # (a) GitHub answers the conversion with a 503 and the process dies: the
    # code is unused, the same redirect URL registers on the next run.
    url = regs.redirect_url("reg-early", paths["reg-early"])
    world.emu.inject_fault(503, path_prefix="/app-manifests/", count=1)
    regs.crash(
        ("github", "register", "reg-early", "--contract", str(paths["reg-early"]), "--code", url),
        lambda e: conversion(e) and e["fault"],
    )
    assert pending("reg-early")
    again = register("reg-early", "--code", url)
    assert again.code == 0 and "Registered GitHub App acme-reg-early" in again.out, str(again)

    # (b) GitHub converted the code; the answer (with the only key) never arrived.
    for agent in ("reg-lost", "reg-rotate", "reg-anon"):
        url = regs.redirect_url(agent, paths[agent])
        regs.crash(
            ("github", "register", agent, "--contract", str(paths[agent]), "--code", url),
            lambda e: conversion(e) and e["status"] == 201,
        )
        assert pending(agent)
        # A second registration would collide on GitHub's global App name: the
        # next run adopts the App instead.
        if agent == "reg-lost":
            again = register(agent, "--code", url)
            assert again.code == 1, str(again)
            said = again.out + again.err
            assert "was interrupted before agentctl stored the App's private key" in said
            assert "Generate a private key" in said
            assert f"agentctl github rotate-key {agent} --private-key" in said
            assert "/organizations/acme/settings/apps/acme-reg-lost" in said
            assert not pending(agent)
            assert regs.state().get_resource(agent, "github") is not None
            rotated = regs.run("github", "rotate-key", agent, "--private-key", str(new_key(agent)))
            assert rotated.code == 0, str(rotated)
        elif agent == "reg-rotate":
            # The person went straight to rotate-key: it adopts the App by slug.
            rotated = regs.run("github", "rotate-key", agent, "--private-key", str(new_key(agent)))
            assert rotated.code == 0, str(rotated)
            assert "created by the interrupted registration" in rotated.out
        else:
            # No GitHub token: GitHub hides private Apps from anonymous requests,
            # so register cannot confirm it and says both ways forward ...
            again = register(agent, "--code", url, signed_in=False)
            said = again.out + again.err
            assert again.code == 1 and "GH_TOKEN" in said and "--app-id" in said, said
            assert pending(agent) and regs.state().get_resource(agent, "github") is None
            # ... and rotate-key with the App ID from the settings page converges.
            app_id = next(
                a["id"] for a in world.emu.state()["apps"] if a["slug"] == "acme-reg-anon"
            )
            rotated = regs.run(
                "github",
                "rotate-key",
                agent,
                "--private-key",
                str(new_key(agent)),
                "--app-id",
                str(app_id),
                signed_in=False,
            )
            assert rotated.code == 0, str(rotated)
        assert not pending(agent)

    # (c) The key is stored and GitHub accepted it (GET /app); the state never
    # heard. Step 1 of the next registration finishes the interrupted one.
    url = regs.redirect_url("reg-stored", paths["reg-stored"])
    converted = threading.Event()

    def verified(entry: dict[str, Any]) -> bool:
        if conversion(entry):
            converted.set()
        return converted.is_set() and entry["route"] == "/app" and entry["status"] == 200

    regs.crash(
        ("github", "register", "reg-stored", "--contract", str(paths["reg-stored"]), "--code", url),
        verified,
    )
    assert pending("reg-stored")
    again = register("reg-stored")
    assert again.code == 0 and "Registered GitHub App acme-reg-stored" in again.out, str(again)

    problems = github_converged(regs, agents)
    assert not problems, "\n".join(problems)
    # Every App works with its stored key, and the chain is intact.
    for agent in agents:
        status = regs.run("github", "status", agent, "-o", "json")
        assert status.code == 0 and status.json()["app_id"], str(status)
    verify = regs.run("audit", "verify", "-o", "json")
    assert verify.code == 0 and verify.json()["verdict"] == "intact", str(verify)
    events = regs.state().audit_events(action="github.register")
    resumed = {e.actor for e in events if e.result == "success" and e.detail.get("resumed_from")}
    assert resumed == {"reg-early", "reg-lost", "reg-rotate", "reg-anon", "reg-stored"}
