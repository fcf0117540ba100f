"""Whole-process measuring for the benches of issue 19 (imported by bench_cli_*.py).

Users pay for whole processes: interpreter start, imports, configuration, the
work, rendering, exit. Every figure here is one child process, started with
``subprocess.Popen`` and reaped with ``os.wait4`` so its own resource usage
(user/system CPU, peak RSS) is read from the kernel, never the parent's. A
comparison runs its sides in turn, A B A B ..., so drift of a shared, noisy
machine hits both alike, and reports medians and the median of the per-round
ratios A/B.

Peak RSS caveat: a child's ``ru_maxrss`` starts from what its parent had when
it forked, so the benches keep agentctl out of the measuring process (state
building runs in a child of its own).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
AGENTCTL = str(Path(PYTHON).with_name("agentctl"))
REGION = "us-east-1"
ADMIN_KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def console_script(checkout: Path) -> list[str]:
    """The ``agentctl`` command of another checkout (``--vs``; run it with
    PYTHONPATH=checkout): its own ``[project.scripts]`` entry, as its console
    script would start it. This venv's script names this checkout's entry,
    which an older checkout may not have (agentctl.cli:main is new in 4df0ffe)."""
    import tomllib

    project = tomllib.loads((checkout / "pyproject.toml").read_text("utf-8"))
    module, _, function = project["project"]["scripts"]["agentctl"].partition(":")
    start = f"import sys; from {module} import {function}; sys.argv[0] = 'agentctl'; sys.exit({function}())"
    return [PYTHON, "-c", start]


@dataclass(frozen=True)
class Sample:
    wall: float
    user: float
    sys: float
    rss_mb: float  # the child's own peak resident set (ru_maxrss)
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
    check: bool = True,
) -> Sample:
    """One process, start to exit. Output goes to /dev/null unless ``capture``
    (a pipe read to the end: what a user piping the output pays)."""
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = process.stdout.read() if process.stdout is not None else ""
    stderr = process.stderr.read() if process.stderr is not None else ""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sample = Sample(
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
    )
    if check and sample.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... exited {sample.returncode}:\n{stderr[-3000:]}")
    return sample


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def interleave(
    sides: Mapping[str, Callable[[], Sample]],
    runs: int,
    *,
    before_each: Callable[[str], None] | None = None,
    progress: bool = True,
) -> dict[str, list[Sample]]:
    """``runs`` rounds; each round runs every side once, in order
    (``before_each(label)`` first, untimed)."""
    samples: dict[str, list[Sample]] = {label: [] for label in sides}
    for n in range(runs):
        for label, side in sides.items():
            if before_each is not None:
                before_each(label)
            samples[label].append(side())
        if progress:
            line = ", ".join(f"{k} {v[-1].wall:.2f}s" for k, v in samples.items())
            print(f"  round {n + 1}/{runs}: {line}", file=sys.stderr, flush=True)
    return samples


def ratio(a: Sequence[Sample], b: Sequence[Sample]) -> float:
    """Median of the per-round wall ratios a/b (rounds are interleaved)."""
    return median([x.wall / y.wall for x, y in zip(a, b, strict=True)])


def row(label: str, samples: Sequence[Sample], width: int = 52) -> str:
    walls = ", ".join(f"{s.wall:.2f}" for s in samples)
    return (
        f"  {label:<{width}} {median([s.wall for s in samples]):7.2f} s"
        f"  cpu {median([s.cpu for s in samples]):6.2f} s"
        f"  rss {median([s.rss_mb for s in samples]):5.0f} MB   runs {walls}"
    )


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min), {os.cpu_count()} CPUs"


# -- moto -------------------------------------------------------------------------------


# -- the agents every AWS bench generates (plain YAML: importing agentctl here
# would raise the peak RSS every measured child inherits, see above)


def agent_name(i: int) -> str:
    return f"bench-agent-{i:04d}"


def statements(i: int) -> list[dict[str, Any]]:
    """Agent i's grant: read its own bucket (the floors make the same policy)."""
    return [
        {
            "sid": "ReadBucket",
            "actions": ["s3:GetObject", "s3:ListBucket"],
            "resources": [f"arn:aws:s3:::bench-bucket-{i}", f"arn:aws:s3:::bench-bucket-{i}/*"],
        }
    ]


def write_contracts(folder: Path, n_agents: int, expiry: date | None = None) -> None:
    """One contract file per agent, as an operator would keep them."""
    folder.mkdir(parents=True, exist_ok=True)
    expiry = expiry or date.today() + timedelta(days=180)
    for i in range(n_agents):
        name = agent_name(i)
        document = {
            "agent": {
                "name": name,
                "owner": f"team-{i}@company.com",
                "purpose": f"Generated agent number {i} for the benchmark",
            },
            "permissions": {"aws": statements(i)},
            "execution_mode": "autonomous",
            "expiry": expiry,
            "kill_switch": f"/agents/{name}/disable",
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")


# `python -m moto.server`, except that requests reach moto's backends one at a
# time (HTTP parsing stays threaded): moto's IAM backend is not thread-safe (a
# role lookup iterating the roles while another request creates one answers HTTP
# 500). Both sides of every comparison use the same server.
SERIAL_MOTO = """
import sys, threading
import moto.server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

lock = threading.Lock()
dispatch = DomainDispatcherApplication.__call__

def serialised(self, environ, start_response):
    with lock:
        return list(dispatch(self, environ, start_response))

DomainDispatcherApplication.__call__ = serialised
moto.server.main(sys.argv[1:])
"""


class ServerProcess:
    """A local server the benchmark starts in its own process: stopped on
    leaving its ``with`` block (politely, then for good after 10 s)."""

    process: subprocess.Popen[Any]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Moto(ServerProcess):
    """A moto server in its own process (so it shares no GIL with the clients)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [PYTHON, "-c", SERIAL_MOTO, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.reset()
                return
            except requests.RequestException:
                time.sleep(0.1)
        self.process.kill()
        raise SystemExit("moto server did not start")

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=60).raise_for_status()

    def enforce_iam(self, on: bool) -> None:
        requests.post(
            f"{self.url}/moto-api/reset-auth", data=b"0" if on else b"-1", timeout=30
        ).raise_for_status()

    def client(self, service: str, keys: Mapping[str, str] | None = None) -> Any:
        import boto3

        keys = keys or ADMIN_KEYS
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
        )


ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def iam_user(moto: Moto, name: str, document: str = ALLOW_ALL) -> tuple[str, dict[str, str]]:
    """An IAM user with ``document`` attached and an access key: (arn, env keys)."""
    iam = moto.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    policy = iam.create_policy(PolicyName=f"{name}-policy", PolicyDocument=document)
    iam.attach_user_policy(UserName=name, PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def boundary(moto: Moto, name: str = "agentctl-bench-boundary") -> str:
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
    )
    return moto.client("iam").create_policy(PolicyName=name, PolicyDocument=document)["Policy"][
        "Arn"
    ]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A scrubbed environment: nothing of the developer's AWS or agentctl set-up."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TMPDIR"}}
    home.mkdir(parents=True, exist_ok=True)
    return {
        **keep,
        "HOME": str(home),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "200",
        **extra,
    }
