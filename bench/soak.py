"""Soak: the mutating commands in a loop for N minutes, with injected AWS faults.

N agents are provisioned (moto in its own process, the shipped operator and
runtime policies, IAM enforcement on, a real SQLite state), then ONE
long-lived process drives the engine — as `agentctl serve` or a busy cron host
would — through kill / revive / rotate / exec (grant, then finish) / apply on
agents picked round-robin, for ``--minutes``. Every AWS call goes through a
loopback proxy that answers a share of requests (``--fault-rate``) with a 503,
a Throttling error, or a dropped connection, so the retry paths run all the
time. Printed at the end:

- operations per command and their failures (a failure is an operation that
  reported an error; each kind is counted with its first message);
- memory (RSS) and open file descriptors after the warm-up minute and at the
  end: growth means a leak in a long-lived process;
- the state's size (database + WAL) and audit events written;
- the end check: the audit chain verifies, and every agent the state records
  as killed has the deny in place in the cloud (no credential outlives its
  agent's kill); every active agent's role has none.

    .venv/bin/python bench/soak.py [--agents 200] [--minutes 10] [--fault-rate 0.05]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_apply_aws import agent_name, start_server  # noqa: E402
from bench_kill import client, enforce_iam, provision  # noqa: E402

from agentctl.audit import verify_chain  # noqa: E402
from agentctl.contract import load_contracts  # noqa: E402
from agentctl.errors import AgentctlError  # noqa: E402
from agentctl.execution import RunRequest, Runs  # noqa: E402
from agentctl.model import AgentStatus  # noqa: E402
from agentctl.providers.aws.policies import KILL_POLICY, REVOKE_OLDER_POLICY  # noqa: E402
from agentctl.providers.aws.settings import AwsSettings  # noqa: E402
from agentctl.runtime import build_engine  # noqa: E402

THROTTLE = (
    b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender'
    b"</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>0</RequestId></ErrorResponse>"
)
UNAVAILABLE = THROTTLE.replace(b"Sender", b"Receiver").replace(
    b"<Code>Throttling</Code><Message>Rate exceeded", b"<Code>ServiceUnavailable</Code><Message>x"
)


def fault_proxy(target: str, rate: float, injected: Counter[str]) -> tuple[str, Any]:
    """A loopback proxy in front of moto answering ``rate`` of requests with a fault."""
    upstream = urlsplit(target)
    pick = random.Random(21)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                roll = pick.random()
            if roll < rate:
                kind = ("503", "throttling", "reset")[int(roll / rate * 3)]
                with lock:
                    injected[kind] += 1
                if kind == "reset":
                    self.close_connection = True
                    self.connection.shutdown(2)  # the answer never comes
                    return
                status, payload = (503, UNAVAILABLE) if kind == "503" else (400, THROTTLE)
                self._reply(status, [("Content-Type", "text/xml")], payload)
                return
            conn = http.client.HTTPConnection(str(upstream.hostname), upstream.port, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = conn.getresponse()
                payload = response.read()
                kept = [
                    (k, v)
                    for k, v in response.getheaders()
                    if k.lower() not in {"transfer-encoding", "connection", "content-length"}
                ]
                self._reply(response.status, kept, payload)
            finally:
                conn.close()

        def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            try:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    httpd = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}", httpd


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def state_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args()
    endpoint, server = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            soak(endpoint, Path(tmp), args)
    finally:
        server.kill()
        server.wait()


def soak(endpoint: str, workdir: Path, args: argparse.Namespace) -> None:
    print(f"provisioning {args.agents} agents ...", file=sys.stderr)
    world = provision(endpoint, workdir, args.agents, [])
    # rotate verifies the new session with iam:ListRoleTags on its own role.
    enforce_iam(endpoint, False)
    admin = client(endpoint, "iam", {"aws_access_key_id": "x", "aws_secret_access_key": "x"})
    boundary = world.config.provider_settings["aws"].permissions_boundary  # type: ignore[attr-defined]
    admin.create_policy_version(
        PolicyArn=boundary,
        SetAsDefault=True,
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": ["s3:*", "iam:ListRoleTags"], "Resource": "*"}]}',
    )
    enforce_iam(endpoint, True)
    # The runtime principal signs agent sessions through its own profile.
    credentials = workdir / "aws-credentials"
    credentials.write_text(
        "[runtime]\n"
        f"aws_access_key_id = {world.runtime['aws_access_key_id']}\n"
        f"aws_secret_access_key = {world.runtime['aws_secret_access_key']}\n",
        "utf-8",
    )
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials)
    os.environ.pop("AWS_PROFILE", None)
    injected: Counter[str] = Counter()
    proxy_url, proxy = fault_proxy(endpoint, args.fault_rate, injected)
    settings: AwsSettings = world.config.provider_settings["aws"]  # type: ignore[assignment]
    aws = replace(settings, endpoint_url=proxy_url, runtime_profile="runtime")
    config = replace(world.config, provider_settings={"aws": aws})
    engine = build_engine(
        config, operator="soak@company.com", client_options=world.operator, provider_names=["aws"]
    )
    runs = Runs(engine)
    state_path = Path(str(config.state_url).removeprefix("sqlite:///"))
    contracts = load_contracts([workdir / f"contracts-{args.agents}"], today=engine.today())
    events_before = engine.state.audit_head().seq  # type: ignore[union-attr]

    done: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    first_error: dict[str, str] = {}
    killed: set[str] = set()

    def attempt(command: str, call: Any, *call_args: Any) -> Any:
        done[command] += 1
        try:
            return call(*call_args)
        except AgentctlError as exc:
            failed[command] += 1
            first_error.setdefault(command, exc.message[:160])
            return None

    cycle = 0
    started = time.monotonic()
    deadline = started + args.minutes * 60
    warm: tuple[int, int, int] | None = None
    while time.monotonic() < deadline:
        if warm is None and time.monotonic() - started > min(60, args.minutes * 30):
            warm = (rss_kib(), fds(), state_bytes(state_path))
        name = agent_name(cycle % args.agents)
        cycle += 1
        report = attempt("kill", engine.kill, name, "soak")
        if report is not None and not report.ok:
            failed["kill"] += 1
            first_error.setdefault("kill", str([r.detail for r in report.results if not r.ok]))
        killed.add(name)
        report = attempt("revive", engine.revive, name, "soak")
        if report is not None and report.ok:
            killed.discard(name)
        elif report is not None:
            failed["revive"] += 1
            first_error.setdefault("revive", str([r.detail for r in report.results]))
        if name in killed:
            continue
        reports = attempt("rotate", engine.rotate, [name])
        # moto ignores the cut-off's `DateLessThan aws:TokenIssueTime` and would deny
        # every later session, which AWS allows: lift it as AWS's evaluation would.
        enforce_iam(endpoint, False)
        with contextlib.suppress(Exception):
            admin.delete_role_policy(RoleName=f"agentctl-{name}", PolicyName=REVOKE_OLDER_POLICY)
        enforce_iam(endpoint, True)
        if reports is not None and not all(r.ok for r in reports):
            failed["rotate"] += 1
            first_error.setdefault("rotate", str([r.results[0].detail for r in reports]))
            if os.environ.get("SOAK_DEBUG"):
                print(
                    f"rotate {name} cycle {cycle}: {reports[0].results[0].detail}", file=sys.stderr
                )
        request = RunRequest(agent=name, command=("true",), duration_seconds=900)
        grant = attempt("exec", runs.grant, request)
        if grant is not None:
            attempt("exec-finish", runs.finish, grant, 0, ("true",))
        if cycle % 50 == 0:
            plan = engine.plan(contracts.contracts, contracts.expired, refresh=False)
            outcome = attempt("apply", engine.apply, plan)
            if outcome is not None and not outcome.ok:
                failed["apply"] += 1
        if cycle % 25 == 0:
            print(
                f"{time.monotonic() - started:6.0f}s cycle {cycle} rss {rss_kib()} KiB "
                f"fds {fds()} failures {sum(failed.values())}",
                file=sys.stderr,
            )
    seconds = time.monotonic() - started
    end = (rss_kib(), fds(), state_bytes(state_path))
    warm = warm or end

    # The end check: chain intact; the cloud's kill deny where the state says killed.
    proxy.shutdown()
    enforce_iam(endpoint, False)
    chain, head = engine.state.audit_chain()
    verified = verify_chain(chain, head)
    disagree = []
    for record in engine.state.list_agents():
        policies = admin.list_role_policies(RoleName=f"agentctl-{record.name}")["PolicyNames"]
        if record.status.killed != (KILL_POLICY in policies):
            disagree.append(f"{record.name}: state {record.status.value}, cloud {policies}")
    active = sum(1 for r in engine.state.list_agents() if r.status == AgentStatus.ACTIVE)

    print(
        f"\nsoak: {args.agents} agents, {seconds / 60:.1f} min, {cycle} cycles, "
        f"fault rate {args.fault_rate:.0%} of AWS requests"
    )
    print(f"  injected: {dict(injected)}")
    print(f"  {'command':<12} {'runs':>6} {'failed':>7}  first error")
    for command in ("kill", "revive", "rotate", "exec", "exec-finish", "apply"):
        print(
            f"  {command:<12} {done[command]:>6} {failed[command]:>7}  "
            f"{first_error.get(command, '')}"
        )
    print(f"  RSS after warm-up {warm[0]} KiB, at end {end[0]} KiB ({end[0] - warm[0]:+d} KiB)")
    print(f"  open fds after warm-up {warm[1]}, at end {end[1]} ({end[1] - warm[1]:+d})")
    print(
        f"  state {end[2] / 1024:.0f} KiB at end ({(end[2] - warm[2]) / 1024:+.0f} KiB since "
        f"warm-up); {len(chain) - events_before} audit events written"
    )
    print(f"  audit chain: {'intact' if verified.ok else verified.problem}")
    print(f"  active agents {active}; state and cloud disagree on kill for {len(disagree)}")
    for line in disagree[:10]:
        print(f"    {line}")
    if not verified.ok or disagree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
