"""Benchmark: provisioning N new agents' IAM roles on a moto server vs. the floor.

The floor is a minimal hand-written boto3 script making the same API calls
agentctl makes for a new agent, with one shared client and the same retry and
connection-pool configuration, at the same concurrency. Two levels are measured,
each next to the floor that makes exactly its calls:

- provider: ``AwsProvider.observe/plan/apply`` directly (no engine, no state):
  GetRole (is it there?), CreateRole (path, trust, boundary, tags, description,
  max session), PutRolePolicy (the grant). Floor: the same three calls.
- engine (what ``agentctl apply --yes`` does after process start): generated
  contract files loaded and validated by ``load_contracts``, ``Engine.plan``
  (default apply: no refresh, so a never-applied agent is not looked up) and
  ``Engine.apply`` with a real SQLite state (resource rows, hash-chained audit
  events, agent rows, all ``synchronous=FULL``). Floor: CreateRole +
  PutRolePolicy. Then the no-change re-apply of the same agents (a fresh
  engine, as a new process would be: load, plan, nothing to apply) and, for
  information, ``apply --refresh`` (every role read back from IAM).

Targets (issue 4): engine apply within 1.3x of its floor, and a no-change
re-apply under 10% of the first apply. moto is reset between runs and runs in
its own process (``python -m moto.server``, with requests reaching its
backends one at a time: see SERIAL_MOTO), so the server does not share the GIL
with the clients being measured; the runs of each side are interleaved so that
drift of a noisy machine hits both alike.

    .venv/bin/python bench/bench_apply_aws.py [--agents 500] [--parallelism 16] [--runs 3]
                                              [--level engine|provider|both] [--plain-moto]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config as BotoConfig
from botocore.parsers import ResponseParserError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentctl.config import Config  # noqa: E402
from agentctl.contract import load_contracts  # noqa: E402
from agentctl.model import Contract, ExecutionMode  # noqa: E402
from agentctl.providers.aws.lifecycle import AwsProvider  # noqa: E402
from agentctl.providers.aws.settings import AwsSettings  # noqa: E402
from agentctl.providers.base import ProviderContext  # noqa: E402
from agentctl.runtime import build_engine  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wholeproc import SERIAL_MOTO, agent_name, statements, write_contracts  # noqa: E402

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
RUNTIME_PRINCIPAL = "arn:aws:iam::123456789012:user/agent-runtime"
BOUNDARY_NAME = "agentctl-bench-boundary"
EXPIRY = date(2027, 3, 1)


# Backend calls serialised (moto's IAM backend is not thread-safe; see
# wholeproc.SERIAL_MOTO), which on a loaded machine otherwise spoils most
# 500-agent runs. ``--plain-moto`` runs the stock server (failed runs discarded).
def start_server(*, serial: bool = True) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = ["-c", SERIAL_MOTO] if serial else ["-m", "moto.server"]
    server = subprocess.Popen(
        [sys.executable, *launch, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.post(f"{url}/moto-api/reset", timeout=1).raise_for_status()
            return url, server
        except requests.RequestException:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto_server did not start")


class MotoGlitch(Exception):
    """moto answered HTTP 500: its IAM backend is not thread-safe (a role lookup
    iterates a dict another request is inserting into). The run is discarded."""


def reset(endpoint: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()


def _iam(endpoint: str, parallelism: int) -> Any:
    # The provider's configuration: standard retries, a pool as wide as the threads.
    config = BotoConfig(
        retries={"mode": "standard", "total_max_attempts": 8},
        max_pool_connections=max(parallelism, 10),
    )
    return boto3.client(
        "iam", endpoint_url=endpoint, region_name=REGION, config=config, **CREDENTIALS
    )


def ensure_boundary(endpoint: str) -> str:
    iam = _iam(endpoint, 1)
    arn = f"arn:aws:iam::123456789012:policy/{BOUNDARY_NAME}"
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.create_policy(PolicyName=BOUNDARY_NAME, PolicyDocument=json.dumps(document))
    return arn


def contract(i: int) -> Contract:
    name = agent_name(i)
    return Contract(
        name=name,
        owner=f"team-{i}@company.com",
        purpose=f"Generated agent number {i} for the benchmark",
        execution_mode=ExecutionMode.AUTONOMOUS,
        expiry=EXPIRY,
        kill_switch=f"/agents/{name}/disable",
        permissions={"aws": statements(i)},
    )


def floor_apply(endpoint: str, n_agents: int, parallelism: int, *, lookup: bool = True) -> float:
    """Seconds for the minimal script to provision ``n_agents`` new roles
    (``lookup``: GetRole first, as a refreshing plan does)."""
    boundary = ensure_boundary(endpoint)
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": RUNTIME_PRINCIPAL},
                    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                }
            ],
        }
    )
    started = time.perf_counter()
    iam = _iam(endpoint, parallelism)

    def one(i: int) -> None:
        name = agent_name(i)
        role = f"agentctl-{name}"
        if lookup:
            with contextlib.suppress(iam.exceptions.NoSuchEntityException):
                iam.get_role(RoleName=role)
        iam.create_role(
            RoleName=role,
            Path="/agentctl/",
            AssumeRolePolicyDocument=trust,
            Description=f"agentctl agent {name}: Generated agent number {i} for the benchmark",
            MaxSessionDuration=3600,
            PermissionsBoundary=boundary,
            Tags=[
                {"Key": "managed-by", "Value": "agentctl"},
                {"Key": "agentctl:agent", "Value": name},
                {"Key": "agentctl:owner", "Value": f"team-{i}@company.com"},
                {
                    "Key": "agentctl:purpose",
                    "Value": f"Generated agent number {i} for the benchmark",
                },
                {"Key": "agentctl:expiry", "Value": EXPIRY.isoformat()},
                {"Key": "agentctl:execution-mode", "Value": "autonomous"},
                {"Key": "agentctl:contract-hash", "Value": "0" * 64},
                {"Key": "agentctl:status", "Value": "active"},
            ],
        )
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": s["sid"],
                    "Effect": "Allow",
                    "Action": s["actions"],
                    "Resource": s["resources"],
                }
                for s in statements(i)
            ],
        }
        iam.put_role_policy(
            RoleName=role, PolicyName="agentctl-grant", PolicyDocument=json.dumps(document)
        )

    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        try:
            list(pool.map(one, range(n_agents)))
        except ResponseParserError as exc:
            raise MotoGlitch(str(exc)[:200]) from None
    return time.perf_counter() - started


def provider_apply(endpoint: str, n_agents: int, parallelism: int) -> dict[str, float]:
    """Seconds for ``AwsProvider`` to observe/plan/apply ``n_agents`` new agents
    ("apply"), then to observe/plan them again with nothing to change ("reapply")."""
    boundary = ensure_boundary(endpoint)
    contracts = [contract(i) for i in range(n_agents)]
    started = time.perf_counter()
    settings = AwsSettings(
        endpoint_url=endpoint,
        region=REGION,
        runtime_principal=RUNTIME_PRINCIPAL,
        permissions_boundary=boundary,
    )
    provider = AwsProvider(
        ProviderContext(
            config=Config(provider_settings={"aws": settings}),
            client_options={**CREDENTIALS, "max_pool_connections": max(parallelism, 10)},
        )
    )

    def converge(c: Contract) -> int:
        changes = provider.plan(c, provider.observe(c.name), expired=False)
        for change in changes:
            result = provider.apply(change)
            if not result.ok:
                glitch = "did not answer like AWS" in result.detail
                raise (MotoGlitch if glitch else RuntimeError)(result.detail)
        return len(changes)

    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        assert sum(pool.map(converge, contracts)) == n_agents
    first = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        assert sum(pool.map(converge, contracts)) == 0
    return {"apply": first, "reapply": time.perf_counter() - started}


def engine_config(endpoint: str, boundary: str, workdir: Path, tag: str) -> Config:
    return Config(
        provider_settings={
            "aws": AwsSettings(
                endpoint_url=endpoint,
                region=REGION,
                runtime_principal=RUNTIME_PRINCIPAL,
                permissions_boundary=boundary,
            )
        },
        state_url=f"sqlite:///{workdir / f'state-{tag}.db'}",
        journal_path=str(workdir / f"journal-{tag}.jsonl"),
    )


def engine_run(
    config: Config, contracts: Path, parallelism: int, *, refresh: bool
) -> tuple[int, dict[str, float]]:
    """One ``agentctl apply --yes [--refresh]`` minus process start and rendering:
    a fresh engine, contracts loaded and validated, plan, apply if anything
    changes. Returns (agents changed, seconds per phase and in total)."""
    started = time.perf_counter()
    engine = build_engine(
        config,
        operator="bench@company.com",
        client_options={**CREDENTIALS, "max_pool_connections": max(parallelism, 10)},
        provider_names=["aws"],
    )
    try:
        report = load_contracts(
            [contracts], today=engine.today(), max_lifetime_days=config.max_lifetime_days
        )
        if report.problems:
            raise RuntimeError(f"contract problems: {report.problems[:3]}")
        loaded = time.perf_counter()
        plan = engine.plan(
            report.contracts, report.expired, refresh=refresh, parallelism=parallelism
        )
        planned = time.perf_counter()
        changed = 0
        if plan.has_changes or plan.has_errors:
            result = engine.apply(plan, parallelism=parallelism)
            if not result.ok:
                errors = [a.error or "" for a in result.agents if not a.ok]
                glitch = any("did not answer like AWS" in e for e in errors)
                raise (MotoGlitch if glitch else RuntimeError)(
                    f"{len(errors)} agents failed: {errors[0][:200]}"
                )
            changed = sum(1 for a in result.agents if a.results)
        done = time.perf_counter()
        return changed, {
            "total": done - started,
            "load": loaded - started,
            "plan": planned - loaded,
            "apply": done - planned,
        }
    finally:
        engine.state.close()


def engine_apply(
    endpoint: str, contracts: Path, n_agents: int, parallelism: int
) -> dict[str, float]:
    """First apply of ``n_agents`` new agents, then the no-change re-apply, then
    a refreshing re-apply; each as a fresh engine on the same SQLite state."""
    boundary = ensure_boundary(endpoint)
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-state-") as workdir:
        config = engine_config(endpoint, boundary, Path(workdir), "apply")
        changed, first = engine_run(config, contracts, parallelism, refresh=False)
        assert changed == n_agents, changed
        changed, again = engine_run(config, contracts, parallelism, refresh=False)
        assert changed == 0, changed
        changed, refreshed = engine_run(config, contracts, parallelism, refresh=True)
        assert changed == 0, changed
    return {
        "apply": first["total"],
        "apply_load": first["load"],
        "apply_plan": first["plan"],
        "apply_apply": first["apply"],
        "reapply": again["total"],
        "refresh": refreshed["total"],
    }


def runs_text(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--level",
        choices=("engine", "provider", "both"),
        default="both",
        help="what to measure (each next to its floor)",
    )
    parser.add_argument("--endpoint", help="an already running moto server (default: start one)")
    parser.add_argument(
        "--plain-moto",
        action="store_true",
        help="stock moto server (concurrent backend calls; runs hit by its HTTP 500s are discarded)",
    )
    args = parser.parse_args()
    levels = ("provider", "engine") if args.level == "both" else (args.level,)

    server = None
    endpoint = args.endpoint
    if endpoint is None:
        endpoint, server = start_server(serial=not args.plain_moto)
    samples: dict[str, list[float]] = {}
    discarded = 0
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-contracts-") as folder:
        contracts = Path(folder)
        # Expiry within the default 365-day maximum lifetime whatever today is.
        write_contracts(contracts, args.agents, date.today() + timedelta(days=180))
        try:
            done = 0
            while done < args.runs:  # interleaved, so drift hits both sides alike
                run: dict[str, float] = {}
                try:
                    if "provider" in levels:
                        reset(endpoint)
                        run["floor_lookup"] = floor_apply(endpoint, args.agents, args.parallelism)
                        reset(endpoint)
                        ours = provider_apply(endpoint, args.agents, args.parallelism)
                        run["provider_apply"] = ours["apply"]
                        run["provider_reapply"] = ours["reapply"]
                    if "engine" in levels:
                        reset(endpoint)
                        run["floor"] = floor_apply(
                            endpoint, args.agents, args.parallelism, lookup=False
                        )
                        reset(endpoint)
                        ours = engine_apply(endpoint, contracts, args.agents, args.parallelism)
                        run["engine_apply"] = ours["apply"]
                        run["engine_load"] = ours["apply_load"]
                        run["engine_plan"] = ours["apply_plan"]
                        run["engine_apply_only"] = ours["apply_apply"]
                        run["engine_reapply"] = ours["reapply"]
                        run["engine_refresh"] = ours["refresh"]
                except MotoGlitch:
                    discarded += 1
                    if discarded > 3 * args.runs:
                        raise
                    continue
                for key, value in run.items():
                    samples.setdefault(key, []).append(value)
                done += 1
                print(
                    f"  run {done}: " + ", ".join(f"{k} {v:.2f}s" for k, v in run.items()),
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)

    med = {key: statistics.median(values) for key, values in samples.items()}

    def row(label: str, key: str) -> None:
        print(f"  {label:<44} {med[key]:7.2f} s   runs {runs_text(samples[key])}")

    print(f"{args.agents} new agents, parallelism {args.parallelism}, medians of {args.runs} runs")
    if "provider" in levels:
        print("provider level (AwsProvider, no engine, no state)")
        row("floor: GetRole+CreateRole+PutRolePolicy", "floor_lookup")
        row("AwsProvider observe/plan/apply", "provider_apply")
        print(f"  {'ratio to floor':<44} {med['provider_apply'] / med['floor_lookup']:7.2f} x")
        row("AwsProvider observe/plan, nothing to do", "provider_reapply")
    if "engine" in levels:
        ratio = med["engine_apply"] / med["floor"]
        share = med["engine_reapply"] / med["engine_apply"]
        print("engine level (agentctl apply: load files, plan, apply, SQLite state + audit)")
        row("floor: CreateRole+PutRolePolicy", "floor")
        row("agentctl apply (first)", "engine_apply")
        row("  of which: load + validate the files", "engine_load")
        row("  of which: Engine.plan", "engine_plan")
        row("  of which: Engine.apply (IAM + state)", "engine_apply_only")
        verdict = "met" if ratio <= 1.3 else "NOT met"
        print(f"  {'ratio to floor':<44} {ratio:7.2f} x   target <= 1.3x: {verdict}")
        row("agentctl apply again, no change", "engine_reapply")
        verdict = "met" if share < 0.10 else "NOT met"
        print(f"  {'re-apply / first apply':<44} {share:7.1%}     target < 10%: {verdict}")
        row("agentctl apply --refresh, no change (info)", "engine_refresh")
    if discarded:
        print(f"  ({discarded} run(s) discarded: moto answered HTTP 500, see MotoGlitch)")


if __name__ == "__main__":
    main()
