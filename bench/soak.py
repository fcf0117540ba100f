"""Soak: the mutating commands in a loop for N minutes, with injected AWS and GitHub faults.

N AWS agents are provisioned (moto in its own process, the shipped operator and
runtime policies, IAM enforcement on, a real SQLite state) and G GitHub agents
get their own GitHub App each on the project's emulator (registered through the
manifest flow, installed on acme/api, applied). Then ONE long-lived process
drives the engine — as `agentctl serve` or a busy cron host would — through
kill / revive / rotate / exec (grant, then finish) / apply, alternating an AWS
and a GitHub agent, each round-robin, for ``--minutes``. Every AWS and every
GitHub call goes through a loopback proxy that answers a share of requests
(``--fault-rate``) with a fault, so the retry paths run all the time:

- AWS: a 503, a Throttling error, or a dropped connection;
- GitHub: a 5xx, a secondary rate limit (403 or 429 with ``retry-after`` and the
  real ``x-ratelimit-*`` counters, i.e. remaining not 0; made by the emulator's
  own fault hook, so the headers are GitHub's), a connection reset before the
  request reaches GitHub, or one after GitHub carried it out (the answer lost).

Printed at the end:

- operations per command and their failures (a failure is an operation that
  reported an error; each kind is counted with its first message); a revive
  that waits out a token GitHub may have minted without anyone receiving it
  (its answer lost) is the designed behaviour and counted apart;
- memory (RSS) and open file descriptors after the warm-up minute and at the
  end: growth means a leak in a long-lived process;
- the state's size (database + WAL) and audit events written;
- the end check: the audit chain verifies; every agent the state records as
  killed has the deny in place in the cloud (AWS) or its installation suspended
  on the emulator (GitHub), and no other; after every GitHub kill, no token of
  the agent is usable (revoked, or held by the suspension); and at the end the
  emulator holds no live token the state does not record.

    .venv/bin/python bench/soak.py [--agents 200] [--github-agents 50] [--minutes 10]
                                   [--fault-rate 0.05]
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
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_apply_aws import agent_name, start_server  # noqa: E402
from bench_kill import client, enforce_iam, provision  # noqa: E402

from agentctl.audit import verify_chain  # noqa: E402
from agentctl.config import SecretsSettings  # noqa: E402
from agentctl.contract import load_contracts  # noqa: E402
from agentctl.errors import AgentctlError  # noqa: E402
from agentctl.execution import RunRequest, Runs  # noqa: E402
from agentctl.model import AgentStatus  # noqa: E402
from agentctl.providers.aws.policies import KILL_POLICY, REVOKE_OLDER_POLICY  # noqa: E402
from agentctl.providers.aws.settings import AwsSettings  # noqa: E402
from agentctl.providers.github.settings import GitHubSettings  # noqa: E402
from agentctl.runtime import build_engine  # noqa: E402
from testing.github import GitHubEmulator  # noqa: E402

THROTTLE = (
    b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender'
    b"</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>0</RequestId></ErrorResponse>"
)
UNAVAILABLE = THROTTLE.replace(b"Sender", b"Receiver").replace(
    b"<Code>Throttling</Code><Message>Rate exceeded", b"<Code>ServiceUnavailable</Code><Message>x"
)


AWS_FAULTS = ("503", "throttling", "reset")
GITHUB_FAULTS = ("5xx", "secondary-403", "secondary-429", "reset", "lost")
GITHUB_ORG = "acme"
# How agentctl says a GitHub write's answer was lost after GitHub may have acted.
LOST_ANSWER = "GitHub may have done it anyway"


def fault_proxy(
    target: str,
    rate: list[float],
    injected: Counter[str],
    github: GitHubEmulator | None = None,
) -> tuple[str, Any]:
    """A loopback proxy in front of moto (or the GitHub emulator) answering
    ``rate[0]`` of requests with a fault (``rate`` is a list: setup runs at 0)."""
    upstream = urlsplit(target)
    pick = random.Random(21 if github is None else 22)
    lock = threading.Lock()
    kinds = AWS_FAULTS if github is None else GITHUB_FAULTS

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                roll = pick.random()
            kind = None
            if roll < rate[0]:
                kind = kinds[int(roll / rate[0] * len(kinds))]
                with lock:
                    injected[kind] += 1
            if github is None and kind == "reset":
                self._drop()  # the answer never comes
                return
            if github is None and kind is not None:
                status, payload = (503, UNAVAILABLE) if kind == "503" else (400, THROTTLE)
                self._reply(status, [("Content-Type", "text/xml")], payload)
                return
            if github is not None and kind is not None:
                # The emulator's own fault hooks answer this very request as GitHub
                # would (status, message, x-ratelimit-* and retry-after headers), or
                # drop its connection (before carrying it out, or after: "lost").
                where = {"path_prefix": urlsplit(self.path).path, "method": self.command}
                if kind in ("reset", "lost"):
                    github.inject_reset(after=kind == "lost", **where)
                else:
                    github.inject_fault(
                        {"5xx": pick.choice((500, 502, 503)), "secondary-429": 429}.get(kind, 403),
                        rate_limit=None if kind == "5xx" else "secondary",
                        retry_after=None if kind == "5xx" else 1,
                        **where,
                    )
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
            except OSError:  # the emulator dropped it: so does the proxy
                self._drop()
                return
            finally:
                conn.close()
            self._reply(response.status, kept, payload)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)

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
    parser.add_argument("--agents", type=int, default=200, help="AWS agents")
    parser.add_argument(
        "--github-agents",
        type=int,
        default=50,
        choices=range(0, 101),
        metavar="0..100",
        help="GitHub agents, one App each (GitHub: at most 100 Apps per organization)",
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args()
    endpoint, server = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp, GitHubEmulator() as emu:
            soak(endpoint, emu, Path(tmp), args)
    finally:
        server.kill()
        server.wait()


def github_agent_name(i: int) -> str:
    return f"soak-gh-{i:03d}"


def write_github_contracts(folder: Path, count: int, expiry: Any) -> None:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = github_agent_name(i)
        document = {
            "agent": {
                "name": name,
                "owner": f"team-{i}@company.com",
                "purpose": f"GitHub soak agent number {i}",
            },
            "permissions": {
                "github": {"repositories": [f"{GITHUB_ORG}/api"], "scopes": ["issue:write"]}
            },
            "execution_mode": "autonomous",
            "expiry": expiry,
            "kill_switch": f"/agents/{name}/disable",
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")


def register_github_apps(engine: Any, emu: GitHubEmulator, contracts: list[Any]) -> None:
    """Each agent's own App through the manifest flow (the person's click is the
    emulator's code), installed on acme/api only."""
    provider = engine.providers["github"]
    for contract in contracts:
        manifest = provider.app_manifest(contract)
        form = provider.start_registration(contract.name, manifest)
        code = emu.create_manifest_code(manifest, owner=GITHUB_ORG)
        registered = provider.complete_registration(contract, code, form.state)
        emu.install_app(registered.app_id, GITHUB_ORG, repositories=["api"])


def github_kill_holds(emu: GitHubEmulator, app_id: int) -> tuple[bool, int]:
    """After a kill: whether the agent's installation is suspended, and how many of
    its tokens are neither revoked nor expired (usable only if not suspended)."""
    world = emu.state()
    now = datetime.now(UTC)
    installation = next(i for i in world["installations"] if i["app_id"] == app_id)
    live = [
        t
        for t in world["tokens"]
        if t["installation_id"] == installation["id"]
        and not t["revoked"]
        and datetime.fromisoformat(t["expires_at"]) > now
    ]
    return installation["suspended_at"] is not None, len(live)


def soak(endpoint: str, emu: GitHubEmulator, workdir: Path, args: argparse.Namespace) -> None:
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
    github_injected: Counter[str] = Counter()
    rate = [args.fault_rate]
    github_rate = [0.0]  # no faults while the Apps are registered
    proxy_url, proxy = fault_proxy(endpoint, rate, injected)
    github_url, github_proxy = fault_proxy(emu.url, github_rate, github_injected, github=emu)
    emu.create_org(GITHUB_ORG)
    emu.create_repo(GITHUB_ORG, "api")
    settings: AwsSettings = world.config.provider_settings["aws"]  # type: ignore[assignment]
    aws = replace(settings, endpoint_url=proxy_url, runtime_profile="runtime")
    github = GitHubSettings(base_url=github_url, web_url=emu.url, organization=GITHUB_ORG)
    # The Apps' keys and tokens: an encrypted file, its passphrase in the environment.
    os.environ["AGENTCTL_KEYRING_PASSPHRASE"] = "soak passphrase"
    config = replace(
        world.config,
        provider_settings={"aws": aws, "github": github},
        secrets=SecretsSettings(backend="encrypted-file", path=str(workdir / "secrets.enc")),
    )
    providers = ["aws", "github"] if args.github_agents else ["aws"]
    engine = build_engine(
        config, operator="soak@company.com", client_options=world.operator, provider_names=providers
    )
    runs = Runs(engine)
    state_path = Path(str(config.state_url).removeprefix("sqlite:///"))
    github_folder = workdir / "contracts-github"
    write_github_contracts(github_folder, args.github_agents, engine.today() + timedelta(days=180))
    folders = [workdir / f"contracts-{args.agents}"] + (
        [github_folder] if args.github_agents else []
    )
    contracts = load_contracts(folders, today=engine.today())
    github_names = [github_agent_name(i) for i in range(args.github_agents)]
    if github_names:
        print(f"registering {len(github_names)} GitHub Apps ...", file=sys.stderr)
        mine = [c for c in contracts.contracts if c.name in set(github_names)]
        register_github_apps(engine, emu, mine)
        applied = engine.apply(engine.plan(mine, [], refresh=True))
        if not applied.ok:
            raise SystemExit(f"applying the GitHub agents failed: {applied}")
    app_ids = {
        r.agent: int(r.resource_id) for r in engine.state.list_resources() if r.provider == "github"
    }
    github_rate[0] = args.fault_rate
    events_before = engine.state.audit_head().seq  # type: ignore[union-attr]

    done: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    first_error: dict[str, str] = {}
    killed: set[str] = set()
    held_back: Counter[str] = Counter()  # revives waiting out an unconfirmed GitHub token
    designed: Counter[str] = Counter()  # refused as designed after a lost GitHub answer
    outlived: list[str] = []  # a GitHub token usable after its agent's kill
    held_by_suspension = 0  # live tokens a kill left to the installation's suspension

    def attempt(command: str, call: Any, *call_args: Any) -> Any:
        done[command] += 1
        try:
            return call(*call_args)
        except AgentctlError as exc:
            if LOST_ANSWER in exc.message:
                # Designed: a write whose answer was lost after GitHub may have
                # acted is refused, not retried, and recorded as unconfirmed.
                designed[command] += 1
            else:
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
        on_github = bool(github_names) and cycle % 2 == 1
        if on_github:
            name = github_names[(cycle // 2) % len(github_names)]
        else:
            name = agent_name((cycle // (2 if github_names else 1)) % args.agents)
        cycle += 1
        report = attempt("kill", engine.kill, name, "soak")
        if report is not None and not report.ok:
            failed["kill"] += 1
            first_error.setdefault("kill", str([r.detail for r in report.results if not r.ok]))
        killed.add(name)
        if on_github:
            suspended, live = github_kill_holds(emu, app_ids[name])
            if not suspended and live:
                outlived.append(f"{name}: {live} live token(s), installation not suspended")
            held_by_suspension += live
        report = attempt("revive", engine.revive, name, "soak")
        if report is not None and report.ok:
            killed.discard(name)
        elif report is not None:
            details = " ".join(str(r.detail) + str(r.remaining) for r in report.results)
            if on_github and "expire" in details:
                held_back[name] += 1  # designed: a token nobody received may be live
                designed["revive"] += 1
            else:
                failed["revive"] += 1
                first_error.setdefault("revive", str([r.detail for r in report.results]))
        if name in killed:
            continue
        reports = attempt("rotate", engine.rotate, [name])
        if not on_github:
            # moto ignores the cut-off's `DateLessThan aws:TokenIssueTime` and would deny
            # every later session, which AWS allows: lift it as AWS's evaluation would.
            enforce_iam(endpoint, False)
            with contextlib.suppress(Exception):
                admin.delete_role_policy(
                    RoleName=f"agentctl-{name}", PolicyName=REVOKE_OLDER_POLICY
                )
            enforce_iam(endpoint, True)
        if reports is not None and not all(r.ok for r in reports):
            details = [str(r.detail) for report in reports for r in report.results if not r.ok]
            if details and all(LOST_ANSWER in d for d in details):
                designed["rotate"] += 1  # the verification mint's answer was lost: recorded
            else:
                failed["rotate"] += 1
                first_error.setdefault("rotate", str(details)[:300])
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

    # The end check: chain intact; the cloud's kill deny (AWS) or the installation's
    # suspension (GitHub) where the state says killed; no live token unrecorded.
    proxy.shutdown()
    github_proxy.shutdown()
    enforce_iam(endpoint, False)
    chain, head = engine.state.audit_chain()
    verified = verify_chain(chain, head)
    disagree = []
    world_now = emu.state()
    suspended = {i["app_id"] for i in world_now["installations"] if i["suspended_at"] is not None}
    installation_of = {i["id"]: i["app_id"] for i in world_now["installations"]}
    now = datetime.now(UTC)
    live_on_github: Counter[int] = Counter(
        installation_of[t["installation_id"]]
        for t in world_now["tokens"]
        if not t["revoked"] and datetime.fromisoformat(t["expires_at"]) > now
    )
    unrecorded = []
    for record in engine.state.list_agents():
        if record.name in app_ids:
            app_id = app_ids[record.name]
            if record.status.killed != (app_id in suspended):
                disagree.append(
                    f"{record.name}: state {record.status.value}, installation "
                    f"{'suspended' if app_id in suspended else 'active'}"
                )
            recorded = engine.state.list_credentials(
                agent=record.name, provider="github", live_at=now
            )
            if live_on_github[app_id] > len(recorded):
                unrecorded.append(
                    f"{record.name}: {live_on_github[app_id]} live tokens on GitHub, "
                    f"{len(recorded)} recorded"
                )
            continue
        policies = admin.list_role_policies(RoleName=f"agentctl-{record.name}")["PolicyNames"]
        if record.status.killed != (KILL_POLICY in policies):
            disagree.append(f"{record.name}: state {record.status.value}, cloud {policies}")
    active = sum(1 for r in engine.state.list_agents() if r.status == AgentStatus.ACTIVE)
    github_faults = sum(1 for r in emu.requests if r["fault"])

    print(
        f"\nsoak: {args.agents} AWS + {len(github_names)} GitHub agents, {seconds / 60:.1f} min, "
        f"{cycle} cycles, fault rate {args.fault_rate:.0%} of AWS and of GitHub requests"
    )
    print(f"  injected AWS: {dict(injected)}")
    print(
        f"  injected GitHub: {dict(github_injected)} ({github_faults} fault answers in the "
        f"emulator's log, of {len(emu.requests)} requests)"
    )
    print(f"  {'command':<12} {'runs':>6} {'failed':>7} {'designed':>9}  first error")
    for command in ("kill", "revive", "rotate", "exec", "exec-finish", "apply"):
        print(
            f"  {command:<12} {done[command]:>6} {failed[command]:>7} {designed[command]:>9}  "
            f"{first_error.get(command, '')}"
        )
    print(f"  RSS after warm-up {warm[0]} KiB, at end {end[0]} KiB ({end[0] - warm[0]:+d} KiB)")
    print(f"  open fds after warm-up {warm[1]}, at end {end[1]} ({end[1] - warm[1]:+d})")
    print(
        f"  state {end[2] / 1024:.0f} KiB at end ({(end[2] - warm[2]) / 1024:+.0f} KiB since "
        f"warm-up); {len(chain) - events_before} audit events written"
    )
    print(f"  audit chain: {'intact' if verified.ok else verified.problem}")
    print(
        f"  GitHub revives held back (a token whose answer was lost may be live): "
        f"{sum(held_back.values())} for {len(held_back)} agents; live tokens left to a "
        f"kill's suspension: {held_by_suspension}"
    )
    print(f"  active agents {active}; state and cloud disagree on kill for {len(disagree)}")
    print(f"  GitHub tokens usable after their agent's kill: {len(outlived)}")
    print(f"  agents with live GitHub tokens the state does not record: {len(unrecorded)}")
    for line in (disagree + outlived + unrecorded)[:10]:
        print(f"    {line}")
    if not verified.ok or disagree or outlived or unrecorded:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
