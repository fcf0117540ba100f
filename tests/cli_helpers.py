"""The real ``agentctl`` CLI against the test moto server, as an operator runs it:
one driver, :class:`Cli`, in-process or as a subprocess.

Each :class:`Cli` is one installation: an ``agentctl.yaml`` in its folder (state,
journal, audit anchors, ``aws.*`` pointing at the moto server or at a
:class:`FaultProxy` in front of it, and a ``people:`` rule naming the
operator's IAM user ops@company.com), a ``contracts/`` folder and an operator
holding only the shipped least-privilege policy. ``cli(*args)`` runs one
command and returns a :class:`CliResult` (exit code and both output streams,
the user's), asserting that no traceback or internal error reached them:

- in-process (the ``cli`` fixture's default): through
  :func:`agentctl.cli.app.run`, the function behind the ``agentctl`` script,
  with the clock pinned (``run(..., clock=)``; a test moves it with
  ``cli.now = ...``), output captured by pytest's ``capsys`` and the
  environment set by the fixture (``monkeypatch``: a test may change it);
- as a subprocess (``@pytest.mark.parametrize("cli", ["subprocess"],
  indirect=True)``, and every :func:`make_cli` installation): crash,
  concurrency and fault tests need real processes (a SIGKILL, two applies
  racing for the lock, a kill while an apply runs). It runs

      python -c "...; sys.exit(run(ARGS, clock=lambda: NOW))" NOW ARGS

  with a scrubbed environment (:attr:`Cli.env`): the operator's access key in
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AGENTCTL_CONFIG``, a
  private ``HOME`` and no AWS config files, so nothing of the developer's own
  environment reaches agentctl. :meth:`Cli.start` / :meth:`Cli.finish` give
  the process itself.

:class:`FaultProxy` is a small HTTP proxy in front of moto that sees every AWS
request (its IAM/STS ``Action`` and ``RoleName``) and can count it, delay it,
hold it until released, answer it with a throttling error or a 5xx, or run a
callback once moto answered it (e.g. SIGKILL the client: the cloud write
happened, agentctl never heard back).

:func:`converged` checks, independently of agentctl's own planning, that the
cloud, the state and the audit trail agree with a folder of contracts.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from aws_helpers import (
    IAM_MUTATING,
    REGION,
    RUNTIME_PROFILE,
    MotoServer,
    Operator,
    create_boundary,
    create_operator,
)
from contract_helpers import NOW, TODAY, s3_read, write_contract

from agentctl.audit import verify_chain
from agentctl.contract import load_contracts
from agentctl.model import AgentStatus, Contract
from agentctl.providers.aws import SPEC as AWS
from agentctl.providers.aws.policies import (
    GRANT_POLICY,
    KILL_POLICY,
    LOCKED_TRUST,
    REVOKE_OLDER_POLICY,
    grant_policy,
    normalise_policy,
)
from agentctl.state import StateStore, open_state

OPERATOR_NAME = "ops@company.com"
# The test's "now" is the first argument; the CLI gets it as an in-process
# clock (the installed agentctl reads no clock from its environment).
ENTRY = (
    "import sys; from datetime import datetime; from agentctl.cli.app import run; "
    "now = datetime.fromisoformat(sys.argv.pop(1)); sys.exit(run(sys.argv[1:], clock=lambda: now))"
)
# What the in-process fixture clears, so the developer's own settings never reach agentctl.
CLEARED_ENV = (
    "AGENTCTL_STATE",
    "AGENTCTL_AGENT",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "GH_TOKEN",
    "GITHUB_TOKEN",
)

# Read-only IAM access for the tests' own checks, so they never have to turn
# moto's IAM enforcement off while an agentctl subprocess is running.
AUDITOR_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"}],
}


# -- the CLI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    code: int
    out: str
    err: str
    seconds: float = 0.0

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:  # what an assertion message shows
        return (
            f"agentctl {' '.join(self.args)} -> {self.code} in {self.seconds:.1f}s\n"
            f"--- stdout\n{self.out[-4000:]}\n--- stderr\n{self.err[-4000:]}"
        )


@dataclass
class Cli:
    """One agentctl installation: a config file, a state, a journal, an operator."""

    root: Path
    operator: Operator
    runtime_principal: str
    boundary: str | None
    endpoint_url: str
    state_url: str
    journal_path: Path
    max_attempts: int = 3
    lock_timeout_seconds: float = 120.0
    now: datetime = NOW  # what the CLI's clock reads
    extra_env: dict[str, str] = field(default_factory=dict)
    # In-process runs read their output from pytest's capsys; None: subprocesses.
    capsys: pytest.CaptureFixture[str] | None = None
    # The moto server itself (for the test's own look at IAM), when there is one.
    moto: MotoServer | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(exist_ok=True)
        self.contracts.mkdir(exist_ok=True)
        self.write_config()

    @property
    def in_process(self) -> bool:
        return self.capsys is not None

    @property
    def server(self) -> MotoServer:
        assert self.moto is not None, "this installation was made without its moto server"
        return self.moto

    @property
    def config_path(self) -> Path:
        return self.root / "agentctl.yaml"

    @property
    def contracts(self) -> Path:
        return self.root / "contracts"

    @property
    def state_path(self) -> Path:
        """The SQLite state file (a PostgreSQL state has none)."""
        assert self.state_url.startswith("sqlite:///"), self.state_url
        return Path(self.state_url.removeprefix("sqlite:///"))

    def write_config(self, **aws_overrides: Any) -> None:
        aws: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "runtime_principal": self.runtime_principal,
            "runtime_profile": RUNTIME_PROFILE,
            "max_attempts": self.max_attempts,
        }
        if self.boundary:
            aws["permissions_boundary"] = self.boundary
        aws.update(aws_overrides)
        document = {
            "state": self.state_url,
            "journal": str(self.journal_path),
            "lock_timeout_seconds": self.lock_timeout_seconds,
            "audit": {"anchor_file": str(self.root / "audit-anchors.jsonl")},
            "aws": aws,
            # Who runs agentctl is verified (sts:GetCallerIdentity), then named here.
            "people": [{"principal": self.operator.arn, "person": OPERATOR_NAME}],
        }
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False), "utf-8")

    def point_at(self, endpoint_url: str, **aws_overrides: Any) -> None:
        """Send this installation's AWS calls to ``endpoint_url`` from the next run on."""
        self.endpoint_url = endpoint_url
        self.write_config(**aws_overrides)

    def __call__(self, *args: str | Path) -> CliResult:
        """Run one command (in-process or as a subprocess); no traceback may reach the user."""
        argv = [str(a) for a in args]
        if self.capsys is None:
            result = self.run(*argv)
        else:
            from agentctl.cli.app import run

            self.capsys.readouterr()  # drop anything printed before
            now = self.now
            started = time.monotonic()
            code = run(argv, clock=lambda: now)
            out, err = self.capsys.readouterr()
            result = CliResult(tuple(argv), code, out, err, time.monotonic() - started)
        assert "Traceback" not in result.out + result.err, result
        assert "internal error" not in result.err, result
        return result

    # -- as a subprocess

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TMPDIR"}}
        return {
            **keep,
            "HOME": str(self.root / "home"),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "AWS_ACCESS_KEY_ID": self.operator.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.operator.secret_access_key,
            "AWS_CONFIG_FILE": os.devnull,
            # The runtime principal's profile (create_operator writes it there).
            "AWS_SHARED_CREDENTIALS_FILE": os.environ.get(
                "AWS_SHARED_CREDENTIALS_FILE", os.devnull
            ),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AGENTCTL_CONFIG": str(self.config_path),
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "250",
            **self.extra_env,
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", ENTRY, self.now.isoformat(), *args]

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(
        self, process: subprocess.Popen[str], started: float | None = None, timeout: float = 120
    ) -> CliResult:
        """Wait for a process from :meth:`start`; ``started`` is its monotonic start time."""
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"agentctl did not finish in {timeout}s\n{out}\n{err}") from None
        args = tuple(str(a) for a in process.args[4:]) if isinstance(process.args, list) else ()
        seconds = time.monotonic() - started if started is not None else 0.0
        return CliResult(args, process.returncode, out, err, seconds)

    def run(self, *args: str, timeout: float = 120) -> CliResult:
        """One command as a subprocess, whatever the installation's mode."""
        started = time.monotonic()
        return self.finish(self.start(*args), started, timeout)

    # -- the test's own look at the installation

    def write(self, name: str, **kwargs: Any) -> Path:
        kwargs.setdefault("aws", s3_read("bucket-a"))
        return write_contract(self.contracts, name, **kwargs)

    def state(self) -> StateStore:
        """The state store (also a context manager that closes it)."""
        return open_state(self.state_url)

    def role(self, agent: str) -> dict[str, Any] | None:
        """The agent's role as IAM has it (tags as a dict, inline policy names)."""
        iam = self.server.client("iam")
        with self.server.unenforced():
            try:
                found: dict[str, Any] = iam.get_role(RoleName=f"agentctl-{agent}")["Role"]
            except iam.exceptions.NoSuchEntityException:
                return None
            found["Tags"] = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
            found["Policies"] = iam.list_role_policies(RoleName=f"agentctl-{agent}")["PolicyNames"]
        return found

    def roles(self) -> list[str]:
        with self.server.unenforced():
            return sorted(r["RoleName"] for r in self.server.client("iam").list_roles()["Roles"])


def make_cli(
    root: Path,
    operator: Operator,
    endpoint_url: str,
    *,
    boundary: str | None,
    state_url: str | None = None,
    **kwargs: Any,
) -> Cli:
    """An installation whose commands run as subprocesses."""
    return Cli(
        root=root,
        operator=operator,
        runtime_principal=operator.runtime_arn,
        boundary=boundary,
        endpoint_url=endpoint_url,
        state_url=state_url or f"sqlite:///{root / 'state.db'}",
        journal_path=root / "journal.jsonl",
        **kwargs,
    )


# A test that holds in both ways: the CLI as a process behaves as in-process
# (exit codes, both streams, what changed), not only the function behind it.
BOTH_WAYS = pytest.mark.parametrize("cli", ["in-process", "subprocess"], indirect=True)


@pytest.fixture(params=["in-process"])
def cli(
    request: pytest.FixtureRequest,
    aws: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    """One installation in ``tmp_path`` against the session's moto server, IAM
    enforcement on. In-process by default; ``"subprocess"`` through
    ``@pytest.mark.parametrize("cli", [...], indirect=True)``."""
    mode = request.param
    assert mode in ("in-process", "subprocess"), mode
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    installation = make_cli(
        tmp_path,
        operator,
        aws.url,
        boundary=boundary,
        max_attempts=2,
        capsys=capsys if mode == "in-process" else None,
        moto=aws,
    )
    monkeypatch.setenv("AGENTCTL_CONFIG", str(installation.config_path))
    # The user's cache folder (agentctl.user_cache) is the installation's own,
    # as a subprocess's is under its private HOME.
    monkeypatch.setenv("XDG_CACHE_HOME", str(installation.root / "home" / ".cache"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", operator.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", operator.secret_access_key)
    for name in CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    aws.enforce_iam(0)
    yield installation


def create_auditor(server: MotoServer, root: Path) -> Operator:
    """An IAM user that can only read IAM (call before ``enforce_iam``)."""
    policy = root / "auditor-policy.json"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(json.dumps(AUDITOR_POLICY), "utf-8")
    return create_operator(server, "agentctl-test-auditor", policy_file=policy)


def sigkill(process: subprocess.Popen[str]) -> None:
    """SIGKILL exactly this process (one the test started), if still running."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


# -- a fault-injecting proxy in front of moto ------------------------------------------


@dataclass(frozen=True)
class Request:
    """One AWS request the proxy received (query protocol: IAM and STS)."""

    index: int  # 1-based, in arrival order
    action: str
    role_name: str | None
    params: Mapping[str, str]
    at: float = 0.0  # time.monotonic() when it arrived

    @property
    def mutating(self) -> bool:
        return self.action in IAM_MUTATING


@dataclass(frozen=True)
class Reply:
    """An answer the proxy gives instead of forwarding."""

    status: int
    body: bytes
    content_type: str = "text/xml"

    @classmethod
    def throttling(cls) -> Reply:
        return cls(400, _error_xml("Sender", "Throttling", "Rate exceeded"))

    @classmethod
    def service_unavailable(cls) -> Reply:
        return cls(503, _error_xml("Receiver", "ServiceUnavailable", "Service is unavailable"))

    @classmethod
    def werkzeug_500(cls) -> Reply:
        """What moto's threaded server answers when its backend raises (not an AWS
        error document, and not the bare ``<html>`` page botocore knows)."""
        from werkzeug.exceptions import InternalServerError

        return cls(500, InternalServerError().get_body().encode(), "text/html; charset=utf-8")

    @classmethod
    def internal_error_html(cls) -> Reply:
        return cls(
            500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html"
        )


def _error_xml(kind: str, code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    ).encode()


# moto's IAM backend is not thread-safe: a request iterating the roles (every
# authorised call does) while another creates one or changes its tags can fail
# with "dictionary changed size during iteration", answered as an HTML 500.
# That is moto's bug, not a fault these tests inject, so every proxy forwards
# one request at a time (moto is one per process, and in-process: the GIL
# serialises it anyway). agentctl's own concurrency is untouched: its threads
# and processes still race each other for everything up to the wire.
MOTO_LOCK = threading.Lock()

# A rule decides per request: None forwards it, a Reply answers instead, a
# number delays it that many seconds, a threading.Event holds it until set.
Decision = Reply | float | threading.Event | None
Rule = Callable[[Request], Decision]


@dataclass
class FaultProxy:
    url: str
    requests: list[Request] = field(default_factory=list)
    replies: list[tuple[Request, Reply]] = field(default_factory=list)
    rule: Rule | None = None
    # Called with each forwarded request once moto answered it, before the
    # client gets the answer (e.g. SIGKILL the client at an exact point).
    after_forward: Callable[[Request], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, start: int = 0) -> list[Request]:
        with self.lock:
            return list(self.requests[start:])

    def mutating(self, since: int = 0) -> list[Request]:
        return [r for r in self.since(since) if r.mutating]

    def actions(self, since: int = 0) -> Counter[str]:
        return Counter(r.action for r in self.since(since))

    def injected(self) -> list[tuple[Request, Reply]]:
        with self.lock:
            return list(self.replies)


def _describe_request(index: int, body: bytes, query: str) -> Request:
    fields = parse_qs(query) | parse_qs(body.decode("utf-8", "replace"))
    flat = {key: values[0] for key, values in fields.items() if values}
    return Request(index, flat.get("Action", "?"), flat.get("RoleName"), flat, time.monotonic())


@contextmanager
def fault_proxy(server: MotoServer) -> Iterator[FaultProxy]:
    """A proxy in front of ``server``; see :class:`FaultProxy`."""
    target = urlsplit(server.url)
    proxy = FaultProxy(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _reply(self, status: int, headers: Sequence[tuple[str, str]], payload: bytes) -> None:
            try:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client is gone (killed): nothing to answer

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with proxy.lock:
                request = _describe_request(
                    len(proxy.requests) + 1, body, urlsplit(self.path).query
                )
                proxy.requests.append(request)
            rule = proxy.rule
            decision = rule(request) if rule is not None else None
            if isinstance(decision, Reply):
                with proxy.lock:
                    proxy.replies.append((request, decision))
                self._reply(
                    decision.status, [("Content-Type", decision.content_type)], decision.body
                )
                return
            if isinstance(decision, threading.Event):
                # Held until the test lets it go (always, in a finally); the bound
                # only keeps a broken test from hanging (a loaded machine takes
                # long to start the processes a test waits for meanwhile).
                decision.wait(timeout=280)
            elif isinstance(decision, float | int) and decision > 0:
                time.sleep(decision)
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                with MOTO_LOCK:
                    # Host stays as the client sent it: it is part of the SigV4 signature.
                    headers = dict(self.headers.items())
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                status = response.status
                kept = [
                    (k, v)
                    for k, v in response.getheaders()
                    if k.lower() not in {"transfer-encoding", "connection", "content-length"}
                ]
            finally:
                upstream.close()
            hook = proxy.after_forward
            if hook is not None:
                hook(request)
            self._reply(status, kept, payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# -- what "converged" means ------------------------------------------------------------


def load(contracts: Path) -> tuple[dict[str, Contract], dict[str, Contract]]:
    """(active, expired) contracts of a folder, by name; any other problem fails the test."""
    report = load_contracts([contracts], today=TODAY)
    problems = [p for p in report.problems if p.code != "expired"]
    assert not problems, problems
    return {c.name: c for c in report.contracts}, {c.name: c for c in report.expired}


def roles_by_agent(
    iam: Any, agent_prefix: str, role_prefix: str = "agentctl-"
) -> dict[str, dict[str, Any]]:
    """Every IAM role (any path) whose agent name starts with ``agent_prefix``,
    with its tags and its inline policies' documents.

    Read straight from moto, possibly while another test's agentctl writes to
    it: a read moto fails for its own thread-safety (see MOTO_LOCK) is retried.
    """
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    for attempt in range(5):
        try:
            return _roles_by_agent(iam, agent_prefix, role_prefix)
        except (BotoCoreError, ClientError, ResponseParserError):
            if attempt == 4:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _roles_by_agent(iam: Any, agent_prefix: str, role_prefix: str) -> dict[str, dict[str, Any]]:
    def call(operation: str, **params: Any) -> Any:
        with MOTO_LOCK:  # one request at a time, like the proxies
            return getattr(iam, operation)(**params)

    roles: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    while True:
        page = call("list_roles", **params)
        for listed in page["Roles"]:
            name = listed["RoleName"]
            if not name.startswith(role_prefix + agent_prefix):
                continue
            role = dict(call("get_role", RoleName=name)["Role"])
            role["Tags"] = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
            names = call("list_role_policies", RoleName=name)["PolicyNames"]
            role["Policies"] = {
                policy: normalise_policy(
                    call("get_role_policy", RoleName=name, PolicyName=policy)["PolicyDocument"]
                )
                for policy in names
            }
            # IAM role names are unique, so there is never a second role per agent.
            roles[name[len(role_prefix) :]] = role
        if not page.get("IsTruncated"):
            return roles
        params["Marker"] = page["Marker"]


def expected_trust(principal: str, expiry: date | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": "AgentctlRuntime",
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
    }
    if expiry is not None:
        statement["Condition"] = {
            "DateLessThan": {"aws:CurrentTime": f"{expiry.isoformat()}T00:00:00Z"}
        }
    return normalise_policy({"Version": "2012-10-17", "Statement": [statement]})


def role_problems(role: Mapping[str, Any], contract: Contract, cli: Cli, status: str) -> list[str]:
    """How one role differs from its contract (empty: exactly as desired).

    ``status`` is active, killed or expired; killed and expired roles carry the
    deny policy and the deny-all trust on top of the grant.
    """
    problems: list[str] = []
    tags = role["Tags"]
    want = {
        "managed-by": "agentctl",
        "agentctl:agent": contract.name,
        "agentctl:owner": contract.owner,
        "agentctl:expiry": contract.expiry.isoformat(),
        "agentctl:execution-mode": contract.execution_mode.value,
        "agentctl:contract-hash": contract.digest,
        "agentctl:status": status,
    }
    if status == "expired":
        # Disabling an expired agent only locks the role (like a kill); its
        # contract tags stay those of the contract it ran under.
        del want["agentctl:contract-hash"], want["agentctl:expiry"]
    for key, value in want.items():
        if tags.get(key) != value:
            problems.append(f"tag {key}={tags.get(key)!r}, want {value!r}")
    policies = role["Policies"]
    # An expired agent's role keeps the documents (and expiry) it last ran under.
    ran_until = (
        date.fromisoformat(tags["agentctl:expiry"])
        if status == "expired" and "agentctl:expiry" in tags
        else contract.expiry
    )
    grant = grant_policy(
        contract.name,
        contract.grant(AWS),
        ran_until,
        session_check=f"arn:aws:iam::*:role/agentctl/agentctl-{contract.name}",
    )
    if policies.get(GRANT_POLICY) != grant:
        problems.append(f"grant policy {policies.get(GRANT_POLICY)} != {grant}")
    locked = status != "active"
    wanted_policies = {GRANT_POLICY, KILL_POLICY} if locked else {GRANT_POLICY}
    # A rotated role also carries the deny of sessions older than the rotation.
    if set(policies) - {REVOKE_OLDER_POLICY} != wanted_policies:
        problems.append(f"inline policies {sorted(policies)}, want {sorted(wanted_policies)}")
    trust = normalise_policy(role["AssumeRolePolicyDocument"])
    want_trust = (
        normalise_policy(LOCKED_TRUST)
        if locked
        else expected_trust(cli.runtime_principal, contract.expiry)
    )
    if trust != want_trust:
        problems.append(f"trust policy {trust} != {want_trust}")
    boundary = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
    if boundary != cli.boundary:
        problems.append(f"boundary {boundary} != {cli.boundary}")
    return [f"{contract.name}: {p}" for p in problems]


def converged(
    cli: Cli,
    iam: Any,
    contracts: Path,
    agent_prefix: str,
    *,
    since_seq: int = 0,
    changed: Sequence[str] | None = None,
    killed: Sequence[str] = (),
) -> list[str]:
    """Every way cloud, state and audit disagree with ``contracts`` (empty: converged).

    - cloud: exactly one role per contract and no other role of these agents,
      each with exactly the contract's tags, grant, trust and boundary;
    - state: every agent recorded with the contract's hash and the right status,
      its role recorded with that role's ARN and that hash, and no recorded
      role that does not exist;
    - audit: the chain verifies, and every agent in ``changed`` (default: all)
      has a successful ``apply.*`` event after ``since_seq`` that records the
      contract hash it left the agent in.
    """
    active, expired = load(contracts)
    desired = {**active, **expired}
    problems: list[str] = []
    roles = roles_by_agent(iam, agent_prefix)
    provisioned = set(active) | {n for n in expired if n in roles}
    for agent in sorted(set(roles) - provisioned):
        problems.append(f"{agent}: orphaned role {roles[agent]['Arn']}")
    for agent in sorted(set(active) - set(roles)):
        problems.append(f"{agent}: no role")
    for agent in sorted(provisioned & set(roles)):
        status = "killed" if agent in killed else ("expired" if agent in expired else "active")
        problems.extend(role_problems(roles[agent], desired[agent], cli, status))
    with cli.state() as state:
        records = {r.name: r for r in state.list_agents() if r.name.startswith(agent_prefix)}
        for agent, contract in sorted(desired.items()):
            record = records.get(agent)
            want = (
                AgentStatus.KILLED
                if agent in killed
                else AgentStatus.EXPIRED
                if agent in expired
                else AgentStatus.ACTIVE
            )
            if record is None:
                problems.append(f"{agent}: not recorded in the state")
            elif record.status != want or record.contract_hash != contract.digest:
                problems.append(
                    f"{agent}: recorded {record.status.value} {record.contract_hash}, "
                    f"want {want.value} {contract.digest}"
                )
        for agent in sorted(set(records) - set(desired)):
            problems.append(f"{agent}: recorded in the state without a contract")
        resources = {r.agent: r for r in state.list_resources() if r.agent.startswith(agent_prefix)}
        for agent in sorted(provisioned):
            resource = resources.get(agent)
            role = roles.get(agent)
            if resource is None:
                problems.append(f"{agent}: role exists but no resource is recorded")
            elif role is not None and (
                resource.resource_id != role["Arn"]
                or resource.applied_hash != desired[agent].digest
            ):
                problems.append(
                    f"{agent}: recorded {resource.resource_id} @ {resource.applied_hash}, "
                    f"cloud {role['Arn']} @ {desired[agent].digest}"
                )
        for agent in sorted(set(resources) - set(roles)):
            problems.append(
                f"{agent}: recorded resource {resources[agent].resource_id} does not exist"
            )
        chain, head = state.audit_chain()
    check = verify_chain(chain, head)
    if not check.ok:
        problems.append(f"audit chain: {check.problem}")
    recorded: dict[str, set[str]] = {}
    for event in chain:
        if (
            event.seq > since_seq
            and event.action.startswith("apply.")
            and event.result == "success"
        ):
            recorded.setdefault(event.actor, set()).add(str(event.detail.get("contract_hash")))
    for agent in sorted(changed if changed is not None else desired):
        if desired[agent].digest not in recorded.get(agent, set()):
            problems.append(
                f"{agent}: no successful apply event after seq {since_seq} records its "
                f"contract {desired[agent].digest[:12]} (has {sorted(recorded.get(agent, set()))})"
            )
    return problems


def audit_head(cli: Cli) -> int:
    with cli.state() as state:
        return state.audit_chain()[1][0]
