"""Two applies, apply with kill, kill with kill: real agentctl processes on one state.

Every test runs on a SQLite state and, when ``AGENTCTL_TEST_POSTGRES_URL`` is
set, on PostgreSQL (the ``state_url`` fixture of state_helpers). The processes
reach moto through :class:`cli_helpers.FaultProxy` instances, which hold or
slow chosen requests so that the interleavings under test happen every time,
not by luck of timing:

- two applies: the first one's IAM writes are held (it holds the apply lock
  and has written nothing) until the second says it is waiting for the lock;
- apply with kill: the apply is held exactly at the write that would reopen a
  role the kill locks, and the kill runs then;
- kill with kill: both start together, no lock involved.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import MotoServer, Operator, create_boundary, create_operator
from cli_helpers import (
    Cli,
    CliResult,
    FaultProxy,
    Request,
    converged,
    create_auditor,
    fault_proxy,
    make_cli,
    roles_by_agent,
)
from contract_helpers import s3_read, write_contract

from agentctl.audit import verify_chain
from agentctl.model import AgentStatus
from agentctl.providers.aws.policies import KILL_POLICY, LOCKED_TRUST, normalise_policy


@dataclass
class Setup:
    server: MotoServer
    operator: Operator
    boundary: str
    iam: Any  # read-only client (the auditor)
    root: Path
    state_url: str
    second_principal: str

    def cli(self, name: str, endpoint_url: str, **kwargs: Any) -> Cli:
        """An installation on the shared state (and shared journal: one host)."""
        cli = make_cli(
            self.root / name,
            self.operator,
            endpoint_url,
            boundary=self.boundary,
            state_url=self.state_url,
            **kwargs,
        )
        cli.journal_path = self.root / "journal.jsonl"
        cli.write_config()
        return cli


@pytest.fixture
def setup(aws: MotoServer, tmp_path: Path, state_url: str) -> Iterator[Setup]:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    auditor = create_auditor(aws, tmp_path)
    runtime = aws.client("iam").create_user(UserName="agent-runtime")["User"]["Arn"]
    aws.enforce_iam(0)
    yield Setup(
        aws,
        operator,
        boundary,
        aws.client("iam", auditor.credentials),
        tmp_path,
        state_url,
        runtime,
    )


def write_agents(folder: Path, count: int, prefix: str, **kwargs: Any) -> list[str]:
    names = [f"{prefix}-agent-{i:02d}" for i in range(count)]
    for name in names:
        write_contract(folder, name, **kwargs)
    return names


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Watched:
    """A running process whose output is read as it comes; ``seen`` is set once
    ``needle`` appears on its stderr."""

    def __init__(self, process: subprocess.Popen[str], needle: str) -> None:
        self.process = process
        self.seen = threading.Event()
        self._needle = needle
        self._out: list[str] = []
        self._err: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(process.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, self._err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)
            if into is self._err and self._needle in line:
                self.seen.set()

    def wait(self, timeout: float = 120) -> tuple[int, str, str]:
        code = self.process.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=30)
        return code, "".join(self._out), "".join(self._err)


def apply_ok(cli: Cli, contracts: Path, *extra: str) -> CliResult:
    result = cli.run("apply", str(contracts), "--yes", "--output", "json", *extra)
    assert result.code == 0, str(result)
    return result


def apply_until_converged(cli: Cli, contracts: Path, attempts: int = 3) -> CliResult:
    """A transient moto error may fail one apply; the next must converge."""
    for _ in range(attempts):
        result = cli.run("apply", str(contracts), "--yes", "--output", "json")
        if result.code == 0:
            return result
    raise AssertionError(str(result))


# -- two applies ------------------------------------------------------------------------


@dataclass
class Race:
    a: CliResult
    b_code: int
    b_report: Any
    b_stderr: str


def race(proxy_a: FaultProxy, cli_a: Cli, contracts_a: Path, cli_b: Cli, contracts_b: Path) -> Race:
    """Apply ``contracts_a`` (A) and ``contracts_b`` (B) at once, A first.

    A's IAM writes are all held until B says it waits for the lock: A holds
    the lock and has written nothing yet when B plans, so B's plan is based on
    the state and cloud from before A.
    """
    b_waiting = threading.Event()
    a_writing = threading.Event()

    def hold_writes(request: Request) -> threading.Event | None:
        if request.mutating:
            a_writing.set()
            return b_waiting
        return None

    proxy_a.rule = hold_writes
    before = proxy_a.count()
    started_a = time.monotonic()
    process_a = cli_a.start("apply", str(contracts_a), "--yes", "--output", "json")
    try:
        wait_for(a_writing.is_set, 240, "A's first IAM write (A holds the apply lock)")
        process_b = cli_b.start("apply", str(contracts_b), "--yes", "--output", "json")
        watch = Watched(process_b, "waiting for the lock")
        assert watch.seen.wait(240), "B never said it waits for the lock"
        assert process_a.poll() is None
    finally:
        b_waiting.set()  # let A go on
        proxy_a.rule = None
    result_a = cli_a.finish(process_a, started_a)
    a_done = time.monotonic()
    b_code, b_out, b_err = watch.wait()
    b_done = time.monotonic()
    assert result_a.code == 0, str(result_a)
    assert proxy_a.mutating(before), "A wrote nothing"
    # B said who holds the lock, and was still waiting or applying when A ended.
    assert "waiting for the lock: waiting for the apply lock held by ops@company.com (pid" in b_err
    assert b_done >= a_done
    return Race(result_a, b_code, json.loads(b_out), b_err)


def events_by_contract(cli: Cli, *folders: Path) -> list[list[int]]:
    """Audit seqs of events recording each folder's contract hashes (chain verified)."""
    with cli.state() as state:
        chain, head = state.audit_chain()
    assert verify_chain(chain, head).ok
    seqs = []
    for folder in folders:
        _, digests = _digests(folder)
        seqs.append([e.seq for e in chain if e.detail.get("contract_hash") in digests])
    return seqs


@pytest.mark.slow
def test_two_applies_never_interleave_and_lose_no_update(setup: Setup) -> None:
    """1. The same contracts from two hosts at once: the second waits for the
       lock, then finds every agent already applied and writes nothing.
    2. A changes every owner, B every grant (B's contracts keep the old owners);
       B plans while A holds the lock, so its plan is stale when it gets the
       lock. B must not record its contracts as applied over a cloud A changed
       since (a lost update: A's owners would stay, recorded as B's contracts):
       it reports every agent as changed by another run, writes nothing, and
       its next apply converges."""
    count = 20
    with fault_proxy(setup.server) as proxy_a, fault_proxy(setup.server) as proxy_b:
        cli_a = setup.cli("a", proxy_a.url)
        cli_b = setup.cli("b", proxy_b.url)
        base, contracts_a, contracts_b = (setup.root / d for d in ("base", "ca", "cb"))
        names = write_agents(base, count, "two", aws=s3_read("data"))

        first = race(proxy_a, cli_a, base, cli_b, base)
        assert first.b_code == 0, first.b_report
        assert [a["skipped"] for a in first.b_report["agents"]] == [
            "already applied by another agentctl run"
        ] * count
        assert not proxy_b.mutating()
        problems = converged(cli_a, setup.iam, base, "two-")
        assert not problems, "\n".join(problems[:20])

        write_agents(contracts_a, count, "two", aws=s3_read("data"), owner="sec@company.com")
        write_agents(contracts_b, count, "two", aws=s3_read("data-b"))
        marker = proxy_b.count()
        second = race(proxy_a, cli_a, contracts_a, cli_b, contracts_b)
        assert second.b_code == 1, second.b_report
        assert sorted(a["agent"] for a in second.b_report["agents"]) == names
        for agent in second.b_report["agents"]:
            assert not agent["ok"] and not agent["actions"], agent
            assert "changed by another agentctl run" in agent["error"], agent
        assert not proxy_b.mutating(marker)
        # A's contracts are intact, its events all come before B's.
        problems = converged(cli_a, setup.iam, contracts_a, "two-")
        assert not problems, "\n".join(problems[:20])

        apply_until_converged(cli_b, contracts_b)
        problems = converged(cli_b, setup.iam, contracts_b, "two-")
        assert not problems, "\n".join(problems[:20])
        seqs_a, seqs_b = events_by_contract(cli_b, contracts_a, contracts_b)
        assert len(seqs_a) == count and len(seqs_b) == count
        assert max(seqs_a) < min(seqs_b)
        again = apply_ok(cli_b, contracts_b)
        assert again.json()["summary"]["changed"] == 0


def _digests(folder: Path) -> tuple[dict[str, str], set[str]]:
    from cli_helpers import load

    active, expired = load(folder)
    by_name = {name: c.digest for name, c in {**active, **expired}.items()}
    return by_name, set(by_name.values())


# -- apply with kill ----------------------------------------------------------------------


def role_is_killed(iam: Any, agent: str) -> list[str]:
    roles = roles_by_agent(iam, agent)
    role = roles.get(agent)
    if role is None:
        return [f"{agent}: no role"]
    problems = []
    if role["Tags"].get("agentctl:status") != "killed":
        problems.append(f"status tag {role['Tags'].get('agentctl:status')}")
    if role["Policies"].get(KILL_POLICY) is None:
        problems.append("no deny policy")
    if normalise_policy(role["AssumeRolePolicyDocument"]) != normalise_policy(LOCKED_TRUST):
        problems.append(f"trust reopened: {role['AssumeRolePolicyDocument']}")
    return [f"{agent}: {p}" for p in problems]


@pytest.mark.slow
def test_kill_during_a_long_apply_is_prompt_and_never_undone(setup: Setup) -> None:
    """The apply updates every role (new runtime principal: a new trust policy,
    and a new grant). One agent is killed while the apply is held exactly at
    its trust write, another before the apply reaches it. The kill never waits
    for the apply's lock, and after the apply both agents are still killed."""
    count = 12
    with fault_proxy(setup.server) as proxy, fault_proxy(setup.server) as direct:
        cli = setup.cli("apply", proxy.url)
        killer = setup.cli("kill", direct.url)  # same state and journal
        contracts = setup.root / "contracts"
        names = write_agents(contracts, count, "kwa", aws=s3_read("data"))
        apply_until_converged(cli, contracts)

        write_agents(contracts, count, "kwa", aws=s3_read("data-b"))
        cli.point_at(proxy.url, runtime_principal=setup.second_principal)
        in_flight, last = names[3], names[-1]
        held = threading.Event()
        release = threading.Event()

        def slow_and_hold(request: Request) -> float | threading.Event | None:
            if (
                request.action == "UpdateAssumeRolePolicy"
                and request.role_name == f"agentctl-{in_flight}"
            ):
                held.set()
                return release
            return 0.05  # a long apply: every call takes a while

        proxy.rule = slow_and_hold
        started = time.monotonic()
        process = cli.start("apply", str(contracts), "--yes", "--output", "json", "-p", "1")
        try:
            wait_for(held.is_set, 240, f"the apply's trust write for {in_flight}")
            # Both kills at once, while the apply holds the lock (it is held
            # mid-write and cannot finish before we release it).
            kill_started = time.monotonic()
            running = [
                killer.start("kill", agent, "--reason", "INC-7", "--yes", "--output", "json")
                for agent in (in_flight, last)
            ]
            kills = [killer.finish(p, kill_started) for p in running]
            for kill in kills:
                assert kill.code == 0, str(kill)
                assert kill.json()["ok"] and kill.json()["state_recorded"], str(kill)
            # Prompt = not behind the apply: both kills finished while the apply is
            # still held mid-write with the lock (how fast: bench/bench_kill.py).
            assert process.poll() is None, "the apply should still hold the lock"
        finally:
            release.set()
        result = cli.finish(process, started)
        proxy.rule = None

        report = result.json()
        by_agent = {a["agent"]: a for a in report["agents"]}
        assert result.code == 0, str(result)
        assert by_agent[last]["skipped"] == "killed since the plan was made", by_agent[last]
        # The in-flight agent's trust write reopened the role after the kill
        # locked it: apply noticed the kill and locked it again.
        assert "killed during this apply" in by_agent[in_flight]["skipped"], by_agent[in_flight]
        assert not by_agent[last]["actions"], (
            "apply must not touch an agent killed before it got there"
        )
        for agent in (in_flight, last):
            assert not role_is_killed(setup.iam, agent)
        with cli.state() as state:
            for agent in (in_flight, last):
                record = state.get_agent(agent)
                assert record is not None and record.status == AgentStatus.KILLED, record
            chain, head = state.audit_chain()
            assert verify_chain(chain, head).ok
            kills_audited = [e.target for e in chain if e.action == "kill"]
            assert sorted(kills_audited) == sorted([in_flight, last])

        # Later applies (trusting the state, or refreshing) keep them killed;
        # every other agent is exactly as its contract says.
        for extra in ((), ("--refresh",)):
            apply_until_converged(cli, contracts) if not extra else apply_ok(cli, contracts, *extra)
            for agent in (in_flight, last):
                assert not role_is_killed(setup.iam, agent)
        cli.runtime_principal = setup.second_principal
        problems = converged(cli, setup.iam, contracts, "kwa-", killed=[in_flight, last])
        assert not problems, "\n".join(problems[:20])


# -- kill with kill -----------------------------------------------------------------------


@pytest.mark.slow
def test_two_kills_of_one_agent_both_succeed_once(setup: Setup) -> None:
    with fault_proxy(setup.server) as proxy:
        cli = setup.cli("kk", proxy.url)
        contracts = setup.root / "contracts"
        names = write_agents(contracts, 3, "kk", aws=s3_read("data"))
        apply_until_converged(cli, contracts)
        victim = names[1]
        before = proxy.count()

        processes = [cli.start("kill", victim, "--reason", f"INC-{i}", "--yes") for i in (1, 2)]
        results = [cli.finish(p, time.monotonic()) for p in processes]
        for result in results:
            assert result.code == 0, str(result)

        # Each write happened at most once per kill, and only on the victim.
        writes = proxy.mutating(before)
        assert {w.role_name for w in writes} == {f"agentctl-{victim}"}
        assert sum(1 for w in writes if w.action == "PutRolePolicy") <= 2
        assert not role_is_killed(setup.iam, victim)
        roles = roles_by_agent(setup.iam, "kk-")
        assert sorted(roles[victim]["Policies"]) == sorted(["agentctl-grant", KILL_POLICY])
        for other in set(names) - {victim}:
            assert roles[other]["Tags"]["agentctl:status"] == "active"
            assert sorted(roles[other]["Policies"]) == ["agentctl-grant"]
        with cli.state() as state:
            record = state.get_agent(victim)
            assert record is not None and record.status == AgentStatus.KILLED
            chain, head = state.audit_chain()
        assert verify_chain(chain, head).ok
        kills = [e for e in chain if e.action == "kill"]
        assert [e.target for e in kills] == [victim, victim]
        assert sorted(e.detail["reason"] for e in kills) == ["INC-1", "INC-2"]
        assert {e.result for e in kills} <= {"success", "already-killed"}
