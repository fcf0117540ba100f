"""A real local moto server for AWS tests, and what tests build on it.

One moto server per test process (moto's backends are process-global, so two
servers in one process would share state anyway). Tests get it through the
``aws`` fixture, which resets every backend and turns IAM enforcement off
before and after each test.

IAM enforcement (``MotoServer.enforce_iam``) is moto's
``POST /moto-api/reset-auth`` with the *raw* number as the body (moto does
``float(request.data)``; a JSON object would be rejected): the first N
requests after it are unauthenticated, every later one is checked against the
caller's IAM policies. Bootstrap (operator user, buckets, boundary) therefore
happens first, then ``enforce_iam()`` (N = 0).

What moto enforces (moto 5.2, moto/iam/access_control.py):
- Allow/Deny of identity policies by action and resource (wildcards), for IAM
  users and assumed-role sessions — the kill deny works on live sessions.
- The role trust policy on AssumeRole: the caller's ARN must be a listed AWS
  principal; only ``StringEquals`` on ``sts:ExternalId`` is evaluated.
What it does not:
- Conditions other than that one (``DateLessThan aws:TokenIssueTime`` is
  ignored, so a "revoke older sessions" policy denies every session).
- ``NotResource`` (a statement with it counts as matching, whatever its Effect).
- Trust statements with Effect Deny: any trust statement without ``Resource``
  (all of them) whose principal matches counts as *Allow*. A deny-all trust lock
  therefore does not stop AssumeRole in moto; AWS refuses it.
- Calls naming a role that does not exist yet (CreateRole, GetRole of a missing
  role) are authorised against resource ``*``, not the role ARN.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig

from agentctl.clock import Clock
from agentctl.config import Config
from agentctl.providers.aws.settings import AwsSettings
from agentctl.providers.base import ProviderContext

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# moto accepts any credentials while IAM enforcement is off.
ADMIN_CREDENTIALS: Mapping[str, str] = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
# create_boundary()'s default: the operator policy names it before it exists.
DEFAULT_BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/agentctl-boundary"
# The profile, in the credentials file the ``aws`` fixture points AWS at, of
# the runtime principal create_operator() makes: agent sessions start with it.
RUNTIME_PROFILE = "agentctl-test-runtime"


def generated_policy(kind: str, boundary: str = DEFAULT_BOUNDARY, **overrides: Any) -> str:
    """``agentctl policy KIND`` for the test account: what a real account attaches."""
    from agentctl.providers.aws.access import generate

    return json.dumps(
        generate(
            kind,
            AwsSettings(permissions_boundary=boundary, **overrides),
            secrets_prefix="agentctl/",
        )
    )


@dataclass
class MotoServer:
    """Handle on the running server: URL, reset, IAM enforcement, admin clients."""

    url: str
    _stop: Callable[[], None] = field(repr=False)
    # IAM users made by create_person since the last reset, by name: an access
    # key's secret cannot be read back, so a second ask gets the same keys.
    people: dict[str, Operator] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        """Empty every backend and turn IAM enforcement off."""
        self.people.clear()
        self.enforce_iam(None)
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        install_aws_deny_all()

    def enforce_iam(self, after: int | None = 0) -> None:
        """Check IAM policies on every request after the next ``after`` ones
        (0: from now on); ``None`` turns enforcement off."""
        value = "inf" if after is None else str(after)
        response = requests.post(f"{self.url}/moto-api/reset-auth", data=value.encode(), timeout=10)
        response.raise_for_status()

    @contextmanager
    def unenforced(self) -> Iterator[None]:
        """Admin access for a moment (read back what the operator did), then
        enforcement on again."""
        self.enforce_iam(None)
        try:
            yield
        finally:
            self.enforce_iam(0)

    def client(self, service: str, credentials: Mapping[str, str] = ADMIN_CREDENTIALS) -> Any:
        """A client with no retries: moto answers a deleted role's sessions with
        HTTP 500, which botocore would otherwise retry with backoff."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            config=BotoConfig(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
            **credentials,
        )

    def session_client(self, service: str, environment: Mapping[str, Any]) -> Any:
        """A client using credentials from an ``IssuedCredential.environment``."""
        return self.client(
            service,
            {
                "aws_access_key_id": environment["AWS_ACCESS_KEY_ID"].reveal(),
                "aws_secret_access_key": environment["AWS_SECRET_ACCESS_KEY"].reveal(),
                "aws_session_token": environment["AWS_SESSION_TOKEN"].reveal(),
            },
        )

    def stop(self) -> None:
        self._stop()


_DENY_ALL_DATA: dict[str, Any] = {}


def install_aws_deny_all(account: str = ACCOUNT) -> None:
    """Put the AWS-managed ``AWSDenyAll`` policy into moto's IAM, as in AWS.

    moto loads AWS-managed policies only with MOTO_IAM_LOAD_MANAGED_POLICIES
    (about 1,300 of them, parsed for every account backend), so kill's
    AttachRolePolicy would answer NoSuchEntity. This adds just that one, from
    moto's own copy of AWS's document (``Deny *`` on ``*``), to the in-process
    server's backend; moto then enforces it like any attached policy.
    """
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from moto.iam.models import AWSManagedPolicy, iam_backends

    if not _DENY_ALL_DATA:
        _DENY_ALL_DATA.update(json.loads(aws_managed_policies_data)["AWSDenyAll"])
    backend = iam_backends[account]["aws"]
    policy = AWSManagedPolicy.from_data("AWSDenyAll", account, REGION, _DENY_ALL_DATA)
    backend.managed_policies.setdefault(policy.arn, policy)


def start_moto_server() -> MotoServer:
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO: thousands of lines per test run.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    install_aws_deny_all()
    host, port = server.get_host_and_port()
    return MotoServer(url=f"http://{host}:{port}", _stop=server.stop)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start_moto_server()
    yield server
    server.stop()


@pytest.fixture
def aws(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MotoServer]:
    """The moto server, empty and unenforced for this test (and left that way);
    AWS profiles come from a credentials file of this test's own."""
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    moto_server.reset()
    yield moto_server
    moto_server.reset()


def aws_settings(server: MotoServer, **overrides: Any) -> AwsSettings:
    """Settings pointing at ``server``; ``runtime_principal`` must come in
    ``overrides`` (usually the operator's ARN: the operator also runs exec)."""
    values: dict[str, Any] = {
        "endpoint_url": server.url,
        "region": REGION,
        "max_attempts": 2,
        "runtime_profile": RUNTIME_PROFILE,
    }
    values.update(overrides)
    return AwsSettings(**values)


def provider_context(
    settings: AwsSettings,
    credentials: Mapping[str, str] = ADMIN_CREDENTIALS,
    clock: Clock | None = None,
    **client_options: Any,
) -> ProviderContext:
    """A ProviderContext whose clients use ``credentials`` (explicit, so the
    developer's own AWS environment never leaks into a test)."""
    context = ProviderContext(
        config=Config(provider_settings={"aws": settings}),
        client_options={**credentials, **client_options},
        operator="test-operator",
    )
    if clock is not None:
        context.clock = clock
    return context


@dataclass(frozen=True)
class Operator:
    """The operator user; ``runtime_arn`` is the separate runtime principal
    made with it (its keys are in the ``RUNTIME_PROFILE`` profile)."""

    user_name: str
    arn: str
    access_key_id: str
    secret_access_key: str
    runtime_arn: str = ""
    runtime_key: tuple[str, str] = ("", "")

    @property
    def runtime_credentials(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.runtime_key[0],
            "aws_secret_access_key": self.runtime_key[1],
        }

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }


def _user_with_policy(server: MotoServer, user_name: str, document: str) -> tuple[str, str, str]:
    iam = server.client("iam")
    user = iam.create_user(UserName=user_name)["User"]
    policy_arn = iam.create_policy(PolicyName=f"{user_name}-policy", PolicyDocument=document)[
        "Policy"
    ]["Arn"]
    iam.attach_user_policy(UserName=user_name, PolicyArn=policy_arn)
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return user["Arn"], key["AccessKeyId"], key["SecretAccessKey"]


def create_operator(
    server: MotoServer,
    user_name: str = "agentctl-operator",
    policy_file: Path | None = None,
    boundary: str = DEFAULT_BOUNDARY,
) -> Operator:
    """An IAM user whose only permission is ``policy_file`` (default: the
    generated operator policy for ``boundary``; a managed policy, as the
    operator policy is longer than IAM's inline user limit), and a separate
    runtime user holding only the generated runtime policy, written to the
    credentials file as profile ``RUNTIME_PROFILE``. Call before ``enforce_iam``."""
    document = (
        policy_file.read_text(encoding="utf-8")
        if policy_file is not None
        else generated_policy("operator", boundary)
    )
    arn, key_id, secret = _user_with_policy(server, user_name, document)
    if policy_file is not None:  # an auditor or an older policy: no runtime of its own
        return Operator(user_name, arn, key_id, secret)
    runtime_arn, runtime_id, runtime_secret = _user_with_policy(
        server, f"{user_name}-runtime", generated_policy("runtime", boundary)
    )
    credentials_file = os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
    if credentials_file and credentials_file != os.devnull:
        path = Path(credentials_file)
        if f"[{RUNTIME_PROFILE}]" in (path.read_text("utf-8") if path.exists() else ""):
            # The first operator's runtime is the profile; later ones pass their keys.
            return Operator(
                user_name, arn, key_id, secret, runtime_arn, (runtime_id, runtime_secret)
            )
        with open(credentials_file, "a", encoding="utf-8") as handle:
            handle.write(
                f"[{RUNTIME_PROFILE}]\naws_access_key_id = {runtime_id}\n"
                f"aws_secret_access_key = {runtime_secret}\n"
            )
    return Operator(user_name, arn, key_id, secret, runtime_arn, (runtime_id, runtime_secret))


def create_person(server: MotoServer, user_name: str) -> Operator:
    """An IAM user with an access key and no permissions at all (call before
    ``enforce_iam``): sts:GetCallerIdentity still names it.

    Idempotent within a test: fixtures that each need the same person (the
    jira and github worlds both verify "tester@example.com") share one user."""
    if user_name in server.people:
        return server.people[user_name]
    iam = server.client("iam")
    user = iam.create_user(UserName=user_name)["User"]
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    person = Operator(user_name, user["Arn"], key["AccessKeyId"], key["SecretAccessKey"])
    server.people[user_name] = person
    return person


def create_boundary(
    server: MotoServer, name: str = "agentctl-boundary", actions: tuple[str, ...] = ("s3:*",)
) -> str:
    """A managed policy to use as the agents' permissions boundary; its ARN."""
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
    return str(
        server.client("iam").create_policy(PolicyName=name, PolicyDocument=json.dumps(document))[
            "Policy"
        ]["Arn"]
    )


def frozen_clock(moment: datetime = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)) -> Clock:
    return lambda: moment


@dataclass
class CallRecorder:
    """Operations a botocore client was asked to call, with their API parameters."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, dict(params)))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


def record_calls(client: Any, service: str) -> CallRecorder:
    """Record every operation ``client`` is asked to call, once per call (not
    per retry), with the parameters as passed — moto drops SourceIdentity and
    session tags from its answers, so this is where tests see them."""
    recorder = CallRecorder()
    client.meta.events.register(f"provide-client-params.{service}.*", recorder)
    return recorder


# IAM writes agentctl may make; anything else it calls is a read.
IAM_MUTATING = frozenset(
    {
        "CreateRole",
        "DeleteRole",
        "TagRole",
        "UntagRole",
        "UpdateRole",
        "UpdateAssumeRolePolicy",
        "PutRolePolicy",
        "DeleteRolePolicy",
        "DetachRolePolicy",
        "PutRolePermissionsBoundary",
        "DeleteRolePermissionsBoundary",
    }
)

_THROTTLE_BODY = (
    b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
    b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)


@dataclass
class ThrottlingProxy:
    url: str
    throttled: int = 0
    forwarded: int = 0


@contextmanager
def throttling_proxy(server: MotoServer, failures: int | None) -> Iterator[ThrottlingProxy]:
    """An HTTP proxy in front of moto answering the first ``failures`` requests
    with ``400 Throttling`` (None: every request), forwarding the rest."""
    target = urlsplit(server.url)
    lock = threading.Lock()
    state = ThrottlingProxy(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                throttle = failures is None or state.throttled < failures
                if throttle:
                    state.throttled += 1
                else:
                    state.forwarded += 1
            if throttle:
                self.send_response(400)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(_THROTTLE_BODY)))
                self.end_headers()
                self.wfile.write(_THROTTLE_BODY)
                return
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in {"transfer-encoding", "connection", "content-length"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            upstream.close()

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
