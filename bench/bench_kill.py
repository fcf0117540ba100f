"""Benchmark: from `agentctl kill` to the victim's first denied call.

N agents are provisioned through the engine (real SQLite state) on a moto
server running in its own process (``python -m moto.server``), as an operator
holding only the shipped least-privilege policy. The victim has a live AWS
session (``sts:AssumeRole`` as the runtime principal, like ``agentctl exec``)
and a thread polls an action its grant allows (``s3:ListBucket`` on its
bucket) every few milliseconds with those EXISTING credentials, with moto's
IAM enforcement on. Measured: the time from the start of the kill to the
response of the first call that is denied, for

- ``engine``: ``build_engine`` + ``Engine.kill`` in this process (what the CLI
  does after start-up);
- ``cli``: the real command ``agentctl kill NAME --yes`` as a subprocess, so
  interpreter start-up, imports and configuration loading are included.

Each run kills a different agent (a kill is not undone); the same is measured
with 50 agents provisioned (on a second moto server, kills of both sizes
interleaved), to show the time does not depend on the number of agents.
Target (issue 6): under 2 s on the local servers.

    .venv/bin/python bench/bench_kill.py [--agents 500] [--baseline-agents 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
import yaml
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from bench_apply_aws import (  # noqa: E402
    CREDENTIALS,
    REGION,
    agent_name,
    reset,
    start_server,
    write_contracts,
)

from agentctl.config import Config  # noqa: E402
from agentctl.contract import load_contracts  # noqa: E402
from agentctl.providers.aws.settings import AwsSettings  # noqa: E402
from agentctl.runtime import build_engine  # noqa: E402

AGENTCTL = Path(sys.executable).parent / "agentctl"
POLL_INTERVAL = 0.002  # seconds between the victim's calls


@dataclass(frozen=True)
class World:
    endpoint: str
    workdir: Path
    config: Config
    config_file: Path
    operator: dict[str, str]  # aws_access_key_id / aws_secret_access_key
    operator_arn: str
    agents: int
    runtime: dict[str, str]  # the runtime principal's keys: it starts agent sessions


def client(endpoint: str, service: str, credentials: dict[str, str]) -> Any:
    # No retries: a denied call must be seen as denied, once.
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        config=BotoConfig(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
        **credentials,
    )


def enforce_iam(endpoint: str, on: bool) -> None:
    # moto reads the raw number of requests to let through before enforcing.
    body = b"0" if on else b"inf"
    requests.post(f"{endpoint}/moto-api/reset-auth", data=body, timeout=10).raise_for_status()


def bucket(i: int) -> str:
    return f"bench-bucket-{i}"


def _policy(kind: str, boundary: str) -> str:
    from agentctl.providers.aws.access import generate

    return json.dumps(generate(kind, AwsSettings(permissions_boundary=boundary)))


def _user(iam: Any, name: str, document: str) -> tuple[dict[str, Any], dict[str, str]]:
    user = iam.create_user(UserName=name)["User"]
    policy = iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"]
    iam.attach_user_policy(UserName=name, PolicyArn=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return user, {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def provision(endpoint: str, workdir: Path, n_agents: int, victims: list[int]) -> World:
    """A fresh moto and state: operator, boundary, victims' buckets, N agents applied."""
    reset(endpoint)
    enforce_iam(endpoint, False)
    admin = CREDENTIALS
    iam = client(endpoint, "iam", admin)
    boundary = iam.create_policy(
        PolicyName="agentctl-boundary",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    # The operator and the runtime principal, each with only its generated policy.
    user, operator = _user(iam, "agentctl-operator", _policy("operator", boundary))
    runtime_user, runtime = _user(iam, "agentctl-runtime", _policy("runtime", boundary))
    s3 = client(endpoint, "s3", admin)
    for i in victims:
        s3.create_bucket(Bucket=bucket(i))

    workdir.mkdir(parents=True, exist_ok=True)
    folder = workdir / f"contracts-{n_agents}"
    if not folder.exists():
        write_contracts(folder, n_agents, date.today() + timedelta(days=180))
    state = workdir / f"state-{n_agents}.db"
    state.unlink(missing_ok=True)
    settings = {
        "endpoint_url": endpoint,
        "region": REGION,
        "runtime_principal": runtime_user["Arn"],
        "permissions_boundary": boundary,
    }
    config = Config(
        provider_settings={"aws": AwsSettings(**settings)},
        state_url=f"sqlite:///{state}",
        journal_path=str(workdir / "journal.jsonl"),
    )
    config_file = workdir / f"agentctl-{n_agents}.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {"aws": settings, "state": str(state), "journal": str(workdir / "journal.jsonl")}
        ),
        "utf-8",
    )
    engine = build_engine(
        config, operator="bench@company.com", client_options=operator, provider_names=["aws"]
    )
    report = load_contracts([folder], today=engine.today())
    for _attempt in range(3):  # moto's IAM backend is not thread-safe: apply again, like a user
        plan = engine.plan(report.contracts, report.expired, refresh=False)
        result = engine.apply(plan)
        if result.ok:
            break
    else:
        failed = [a for a in result.agents if not a.ok]
        raise SystemExit(f"provisioning failed for {len(failed)} agents: {failed[0].error}")
    engine.state.close()
    enforce_iam(endpoint, True)
    return World(endpoint, workdir, config, config_file, operator, user["Arn"], n_agents, runtime)


def victim_session(world: World, i: int) -> Any:
    """An S3 client with a live session of agent ``i``'s role, as exec would issue it."""
    sts = client(world.endpoint, "sts", world.runtime)
    name = agent_name(i)
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::123456789012:role/agentctl/agentctl-{name}",
        RoleSessionName=f"bench-{name}",
        SourceIdentity=name,
        Tags=[{"Key": "agent", "Value": name}],
    )["Credentials"]
    s3 = client(
        world.endpoint,
        "s3",
        {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        },
    )
    s3.list_objects_v2(Bucket=bucket(i))  # works before the kill
    try:  # and the grant is what allows it: another bucket is denied
        s3.list_objects_v2(Bucket=bucket(-1))
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in {"AccessDenied", "NoSuchBucket"}, exc
    return s3


class Poller(threading.Thread):
    """Calls ListBucket with the victim's existing credentials until one is denied."""

    def __init__(self, s3: Any, bucket_name: str) -> None:
        super().__init__(daemon=True)
        self.s3 = s3
        self.bucket = bucket_name
        self.calls = 0
        self.glitches = 0
        self.denied_at: float | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.s3.list_objects_v2(Bucket=self.bucket)
                except ClientError as exc:
                    if exc.response["Error"]["Code"] == "AccessDenied":
                        self.denied_at = time.perf_counter()
                        return
                    if exc.response["ResponseMetadata"].get("HTTPStatusCode", 0) < 500:
                        raise
                    self.glitches += 1  # moto's HTTP 500 under load: not a denial
                finally:
                    self.calls += 1
                time.sleep(POLL_INTERVAL)
        except BaseException as exc:  # reported by the measuring thread
            self.error = exc


@dataclass(frozen=True)
class Sample:
    denied: float  # kill start -> first denied response
    done: float  # kill start -> kill returned / process exited
    calls: int
    cpu: float = 0.0  # the kill process's user + system seconds (cli modes)


# --vs: another `agentctl` to measure interleaved with this one (mode "vs"), e.g.
# "env PYTHONPATH=/tmp/base .venv/bin/agentctl" for the code of another commit.
VS_COMMAND: list[str] = []


def measure(world: World, i: int, mode: str) -> Sample:
    s3 = victim_session(world, i)
    poller = Poller(s3, bucket(i))
    poller.start()
    time.sleep(0.05)  # the poller is in its steady rhythm
    if poller.denied_at is not None or poller.error is not None:
        raise SystemExit(f"victim {agent_name(i)} denied before the kill: {poller.error}")
    name = agent_name(i)
    started = time.perf_counter()
    cpu = 0.0
    if mode == "engine":
        engine = build_engine(
            world.config,
            operator="bench@company.com",
            client_options=world.operator,
            provider_names=["aws"],
        )
        report = engine.kill(name, "bench")
        done = time.perf_counter() - started
        engine.state.close()
        if not report.ok:
            raise SystemExit(f"kill failed: {report}")
    else:
        env = {
            **os.environ,
            "AGENTCTL_CONFIG": str(world.config_file),
            "AWS_ACCESS_KEY_ID": world.operator["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": world.operator["aws_secret_access_key"],
        }
        env.pop("AWS_PROFILE", None)
        command = VS_COMMAND if mode == "vs" else [str(AGENTCTL)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = subprocess.run(
            [*command, "kill", name, "--yes", "--reason", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        done = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if process.returncode != 0:
            poller.stop.set()
            raise SystemExit(
                f"`agentctl kill {name}` exited {process.returncode}:\n{process.stderr.strip()}"
            )
    poller.join(timeout=10)
    poller.stop.set()
    if poller.error is not None:
        raise SystemExit(f"the victim's poller failed: {poller.error!r}")
    if poller.denied_at is None:
        raise SystemExit(f"{name}'s existing session was still allowed 10 s after the kill")
    return Sample(
        denied=poller.denied_at - started,
        done=done,
        calls=poller.calls,
        cpu=cpu if mode != "engine" else 0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--baseline-agents", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5, help="kills per mode and size")
    parser.add_argument("--modes", default="engine,cli", help="engine,cli,vs (comma-separated)")
    parser.add_argument(
        "--vs",
        default="",
        help="mode vs runs this command line instead of this tree's agentctl (a baseline)",
    )
    parser.add_argument(
        "--endpoint",
        help="an already running moto server (only with one size; default: start one per size)",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    VS_COMMAND[:] = shlex.split(args.vs)
    if "vs" in modes and not VS_COMMAND:
        raise SystemExit("mode vs needs --vs COMMAND")
    sizes = sorted({args.baseline_agents, args.agents})
    # Victims spread over the agents (first, last, middle ...), different for every kill.
    needed = args.runs * len(modes)
    if needed > min(sizes):
        raise SystemExit(f"{needed} kills need at least that many agents")
    step = max(1, min(sizes) // needed)
    victims = [k * step for k in range(needed)]

    # One moto server per size, both provisioned first, then the kills
    # interleaved (size by size, mode by mode), so that a machine getting busier
    # or quieter meanwhile hits every row alike.
    servers: list[subprocess.Popen[bytes]] = []
    worlds: dict[int, World] = {}
    results: dict[tuple[int, str], list[Sample]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="agentctl-bench-kill-") as folder:
            for size in sizes:
                if args.endpoint and len(sizes) == 1:
                    endpoint = args.endpoint
                else:
                    endpoint, server = start_server()
                    servers.append(server)
                started = time.perf_counter()
                worlds[size] = provision(endpoint, Path(folder) / str(size), size, victims)
                print(
                    f"  {size} agents provisioned in {time.perf_counter() - started:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            pending = {size: list(victims) for size in sizes}
            for _ in range(args.runs):
                for size in sizes:
                    for mode in modes:
                        sample = measure(worlds[size], pending[size].pop(0), mode)
                        results.setdefault((size, mode), []).append(sample)
                        print(
                            f"  {size} agents, {mode}: denied after {sample.denied:.3f} s "
                            f"(kill returned {sample.done:.3f} s, {sample.calls} calls)",
                            file=sys.stderr,
                            flush=True,
                        )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)

    print(f"kill -> first denied call with existing credentials, medians of {args.runs} kills")
    print(
        f"  {'agents':>6}  {'mode':<28} {'denied':>8} {'returned':>9} {'cpu':>6}   denied in each run"
    )
    labels = {
        "engine": "Engine.kill (in process)",
        "cli": "agentctl kill NAME --yes",
        "vs": "--vs kill NAME --yes",
    }
    for size in sizes:
        for mode in modes:
            samples = results[(size, mode)]
            denied = statistics.median(s.denied for s in samples)
            done = statistics.median(s.done for s in samples)
            cpu = statistics.median(s.cpu for s in samples)
            verdict = "met" if denied < 2.0 else "NOT met"
            runs = ", ".join(f"{s.denied:.3f}" for s in samples)
            print(
                f"  {size:>6}  {labels[mode]:<28} {denied:7.3f}s {done:8.3f}s {cpu:5.2f}s   {runs}"
                f"   (target < 2 s: {verdict})"
            )
    if len(sizes) == 2:
        for mode in modes:
            small, large = (statistics.median(s.denied for s in results[(n, mode)]) for n in sizes)
            print(f"  {mode}: {sizes[1]} vs {sizes[0]} agents: {large / small:.2f}x")
    if "vs" in modes and "cli" in modes:
        for size in sizes:
            pairs = zip(results[(size, "cli")], results[(size, "vs")], strict=True)
            ratio = statistics.median(a.denied / b.denied for a, b in pairs)
            print(f"  {size} agents: cli / vs, first denial, median of paired ratios: {ratio:.2f}x")
    print(f"  load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(
        f"  (the victim polls every {POLL_INTERVAL * 1000:.0f} ms plus the call's own time; "
        "'returned' is when Engine.kill returned / the process exited)"
    )


if __name__ == "__main__":
    main()
