"""Benchmark: provisioning N new agents' IAM roles on a moto server vs. the floor.

The floor is a minimal hand-written boto3 script making the same API calls
agentctl's AWS provider makes for a new agent — GetRole (is it there?),
CreateRole (path, trust, boundary, tags, description, max session) and
PutRolePolicy (the grant) — with one shared client and the same retry and
connection-pool configuration, at the same concurrency. ``provider_apply``
measures ``AwsProvider.observe/plan/apply`` directly (no engine, no state);
the engine-level run is measured separately. Targets (issue 4): within 1.3x
of the floor, and a no-change re-apply under 10% of the first apply.

moto runs in its own process, so the server does not share the GIL with the
clients being measured.

    .venv/bin/python bench/bench_apply_aws.py [--agents 500] [--parallelism 16] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config as BotoConfig
from botocore.parsers import ResponseParserError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentctl.config import AwsSettings, Config  # noqa: E402
from agentctl.model import Contract, ExecutionMode  # noqa: E402
from agentctl.providers.aws import AwsProvider  # noqa: E402
from agentctl.providers.base import ProviderContext  # noqa: E402

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
RUNTIME_PRINCIPAL = "arn:aws:iam::123456789012:user/agent-runtime"
BOUNDARY_NAME = "agentctl-bench-boundary"
EXPIRY = date(2027, 3, 1)


def start_server() -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
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


def agent_name(i: int) -> str:
    return f"bench-agent-{i:04d}"


def statements(i: int) -> list[dict[str, Any]]:
    return [
        {
            "sid": "ReadBucket",
            "actions": ["s3:GetObject", "s3:ListBucket"],
            "resources": [f"arn:aws:s3:::bench-bucket-{i}", f"arn:aws:s3:::bench-bucket-{i}/*"],
        }
    ]


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


def floor_apply(endpoint: str, n_agents: int, parallelism: int) -> float:
    """Seconds for the minimal script to provision ``n_agents`` new roles."""
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
            config=Config(aws=settings),
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


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--endpoint", help="an already running moto server (default: start one)")
    args = parser.parse_args()

    server = None
    endpoint = args.endpoint
    if endpoint is None:
        endpoint, server = start_server()
    try:
        floors: list[float] = []
        applies: list[float] = []
        reapplies: list[float] = []
        discarded = 0
        while len(floors) < args.runs:  # interleaved, so drift hits both sides alike
            try:
                reset(endpoint)
                floor = floor_apply(endpoint, args.agents, args.parallelism)
                reset(endpoint)
                ours = provider_apply(endpoint, args.agents, args.parallelism)
            except MotoGlitch:
                discarded += 1
                if discarded > 3 * args.runs:
                    raise
                continue
            floors.append(floor)
            applies.append(ours["apply"])
            reapplies.append(ours["reapply"])
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)

    floor = statistics.median(floors)
    apply = statistics.median(applies)
    reapply = statistics.median(reapplies)
    print(f"{args.agents} new agents, parallelism {args.parallelism}, {args.runs} runs (medians)")
    print(
        f"  floor (boto3 script)      {floor:7.2f} s   runs {', '.join(f'{v:.2f}' for v in floors)}"
    )
    print(
        f"  AwsProvider apply         {apply:7.2f} s   runs {', '.join(f'{v:.2f}' for v in applies)}"
    )
    print(f"  ratio to floor            {apply / floor:7.2f} x   (target <= 1.3)")
    print(
        f"  no-change re-apply        {reapply:7.2f} s   runs {', '.join(f'{v:.2f}' for v in reapplies)}"
    )
    print(f"  re-apply / first apply    {reapply / apply:7.1%}     (target < 10%)")
    if discarded:
        print(f"  ({discarded} run(s) discarded: moto answered HTTP 500, see MotoGlitch)")


if __name__ == "__main__":
    main()
