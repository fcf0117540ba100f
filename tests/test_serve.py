"""`agentctl serve` over real HTTP on loopback (uvicorn in a thread), killing real
agents in a moto server with IAM enforcement on, real SQLite state, a real
encrypted-file secret store for signing keys.

Think like each caller: a valid one kills exactly the agent it names; a bad or
replayed signature, a revoked or unknown credential, an unknown name, a path
that tries to escape, an oversized body, a flood — all refused, nothing
changed in AWS or in the state, and every one of them in the audit trail.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aws_helpers import MotoServer, aws_settings, create_boundary, create_operator
from contract_helpers import TODAY, frozen_now, s3_read, write_contract

from agentctl.audit import verify_chain
from agentctl.audit_anchor import LocalAnchorFile, anchor_appended
from agentctl.config import Config, SecretsSettings
from agentctl.contract import load_contracts
from agentctl.engine import Engine
from agentctl.runtime import build_engine
from agentctl.secrets import Secret, SecretStore, open_secret_store
from agentctl.serve import ServeOptions, bind, create_app, uvicorn_server
from agentctl.serve_auth import (
    CALLER_HEADER,
    HMAC,
    TOKEN,
    Authenticator,
    create_caller,
    revoke_caller,
    sign_request,
)
from agentctl.state.records import AuditEvent

AGENTS = ("alpha-agent", "beta-agent", "gamma-agent")
PASSPHRASE = "correct horse battery staple"


@dataclass
class Served:
    url: str
    engine: Engine
    server: MotoServer
    token: Secret
    signing_key: Secret
    secrets: SecretStore
    # The rate limiter's clock: frozen unless a test moves it.
    ticks: list[float]
    anchors: LocalAnchorFile

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **kwargs)

    def bearer(self, token: Secret | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(token or self.token).reveal()}"}

    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
        key: Secret | None = None,
        caller: str = "siem",
    ) -> dict[str, str]:
        headers = sign_request(
            key or self.signing_key,
            method,
            path,
            body,
            timestamp=int(time.time()) if timestamp is None else timestamp,
            nonce=nonce or uuid.uuid4().hex,
        )
        headers[CALLER_HEADER] = caller
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    def killed_roles(self) -> set[str]:
        """Agents whose role carries the kill's deny, as IAM has it."""
        iam = self.server.client("iam")
        killed = set()
        with self.server.unenforced():
            for agent in AGENTS:
                policies = iam.list_role_policies(RoleName=f"agentctl-{agent}")["PolicyNames"]
                if any("kill" in p.lower() or "deny" in p.lower() for p in policies):
                    killed.add(agent)
        return killed

    def statuses(self) -> dict[str, str]:
        return {r.name: r.status.value for r in self.engine.state.list_agents()}

    def audit(self) -> list[AuditEvent]:
        return self.engine.state.audit_chain()[0]


def raw_request(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """One HTTP/1.1 request with the path byte for byte as given."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Content-Length: 0", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def _free_socket() -> socket.socket:
    return bind("127.0.0.1", 0)


@pytest.fixture
def served(aws: MotoServer, tmp_path: Path) -> Iterator[Served]:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    secrets_settings = SecretsSettings(backend="encrypted-file", path=str(tmp_path / "secrets.enc"))
    config = Config(
        provider_settings={
            "aws": aws_settings(
                aws, runtime_principal=operator.runtime_arn, permissions_boundary=boundary
            )
        },
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        journal_path=str(tmp_path / "journal.jsonl"),
        secrets=secrets_settings,
    )

    def secrets() -> SecretStore:
        return open_secret_store(
            secrets_settings, environ={"AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE}
        )

    engine = build_engine(
        config,
        operator="ops@company.com",
        clock=frozen_now,
        client_options=operator.credentials,
        provider_names=["aws"],
        secrets_factory=secrets,
    )
    for name in AGENTS:
        write_contract(tmp_path / "contracts", name, aws=s3_read("bucket-a"))
    aws.enforce_iam(0)
    report = load_contracts([tmp_path / "contracts"], today=TODAY)
    assert engine.apply(engine.plan(report.contracts)).ok

    state = engine.state
    token = create_caller(state, secrets, name="pager", kind=TOKEN, created_by="ops").credential
    key = create_caller(state, secrets, name="siem", kind=HMAC, created_by="ops").credential
    # The real clock: signed requests carry the real time.
    authenticator = Authenticator(state, secrets, window_seconds=300)
    ticks = [1000.0]
    anchors = LocalAnchorFile(tmp_path / "audit-anchors.jsonl")
    app = create_app(
        engine,
        authenticator,
        ServeOptions(requests_per_minute=60, burst=15, max_body_bytes=1024),
        monotonic=lambda: ticks[0],
        after_kill=lambda: anchor_appended(
            engine.state, anchors, engine.state.chain_keys, frozen_now()
        ),
    )
    server = uvicorn_server(app)
    sock = _free_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield Served(url, engine, aws, token, key, secrets(), ticks, anchors)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_each_kill_over_http_anchors_the_audit_head(served: Served) -> None:
    """A long-running server anchors after every kill, not only when it stops."""
    response = served.post("/agents/beta-agent/disable", headers=served.bearer())
    assert response.status_code == 200, response.text
    head = served.engine.state.audit_head()
    assert head is not None and head.trail and head.key_id  # keyed from the secret store
    anchor = served.anchors.latest(head.trail)
    assert anchor is not None and anchor.seq == head.seq and anchor.key_id == head.key_id


def serve_events(served: Served) -> list[AuditEvent]:
    return [e for e in served.audit() if e.action.startswith("serve.")]


def test_a_valid_token_kills_exactly_the_named_agent_and_both_sides_are_audited(
    served: Served,
) -> None:
    before = len(served.audit())
    response = served.post(
        "/agents/beta-agent/disable", headers=served.bearer(), json={"reason": "INC-4521"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent"] == "beta-agent" and body["ok"] is True and body["status"] == "killed"
    assert [p["provider"] for p in body["providers"]] == ["aws"]
    assert served.killed_roles() == {"beta-agent"}
    assert served.statuses() == {
        "alpha-agent": "active",
        "beta-agent": "killed",
        "gamma-agent": "active",
    }
    events = served.audit()[before:]
    kill = next(e for e in events if e.action == "kill")
    assert kill.target == "beta-agent" and kill.trigger == "serve/pager"
    assert "INC-4521" in kill.detail["reason"]
    request = next(e for e in events if e.action == "serve.disable")
    assert request.detail["caller"] == "pager" and request.result == "killed"
    assert request.actor == "serve-caller/pager" and request.target == "beta-agent"
    assert verify_chain(*served.engine.state.audit_chain()).ok

    again = served.post("/agents/beta-agent/disable", headers=served.bearer())
    assert again.status_code == 200 and again.json()["already"] is True

    status = served.get("/agents/beta-agent", headers=served.bearer())
    assert status.status_code == 200
    assert status.json()["status"] == "killed" and "INC-4521" in status.json()["status_reason"]


def test_a_correctly_signed_request_kills_and_its_replay_is_refused(served: Served) -> None:
    path = "/agents/gamma-agent/disable"
    body = json.dumps({"reason": "SIEM rule 17"}).encode()
    headers = served.signed("POST", path, body)
    first = served.post(path, headers=headers, content=body)
    assert first.status_code == 200, first.text
    assert served.killed_roles() == {"gamma-agent"}

    replay = served.post(path, headers=headers, content=body)
    assert replay.status_code == 401 and replay.json() == {"error": "unauthorized"}
    refused = serve_events(served)[-1]
    assert refused.result == "refused" and "replayed" in refused.detail["reason"]
    assert [e.target for e in served.audit() if e.action == "kill"] == ["gamma-agent"]


def test_refused_requests_change_nothing_and_each_is_audited(served: Served) -> None:
    path = "/agents/alpha-agent/disable"
    body = b'{"reason": "x"}'
    now = int(time.time())
    wrong_key = Secret("agentctl_sign_" + "w" * 43)
    attempts: dict[str, tuple[dict[str, str], bytes, str]] = {
        "no credentials": ({}, b"", "no credentials"),
        "unknown token": (
            {"Authorization": "Bearer agentctl_serve_" + "x" * 43},
            b"",
            "unknown bearer token",
        ),
        "not a bearer token": ({"Authorization": "Basic b3BzOm9wcw=="}, b"", "malformed"),
        "wrong key": (served.signed("POST", path, body, key=wrong_key), body, "bad signature"),
        "body swapped after signing": (
            served.signed("POST", path, body),
            b'{"reason": "y"}',
            "bad signature",
        ),
        "signed for another agent": (
            served.signed("POST", "/agents/beta-agent/disable", body),
            body,
            "bad signature",
        ),
        "stale timestamp": (
            served.signed("POST", path, body, timestamp=now - 3600),
            body,
            "timestamp",
        ),
        "future timestamp": (
            served.signed("POST", path, body, timestamp=now + 3600),
            body,
            "timestamp",
        ),
        "unknown caller": (
            served.signed("POST", path, body, caller="nobody"),
            body,
            "unknown signing caller",
        ),
        "token caller signing": (
            served.signed("POST", path, body, caller="pager"),
            body,
            "unknown signing caller",
        ),
    }
    before = len(serve_events(served))
    for label, (headers, content, reason) in attempts.items():
        response = served.post(path, headers=headers, content=content)
        assert response.status_code == 401, (label, response.text)
        assert response.json() == {"error": "unauthorized"}, label
        event = serve_events(served)[-1]
        assert event.result == "refused" and reason in event.detail["reason"], (label, event)
        assert event.detail["status"] == 401 and event.detail["caller"] is None
    assert len(serve_events(served)) == before + len(attempts)
    assert served.killed_roles() == set()
    assert set(served.statuses().values()) == {"active"}
    assert not [e for e in served.audit() if e.action == "kill"]
    leaked = json.dumps([e.as_dict() for e in served.audit()])
    assert served.token.reveal() not in leaked and served.signing_key.reveal() not in leaked


def test_unknown_names_traversal_and_unknown_paths_are_404_and_audited(served: Served) -> None:
    headers = served.bearer()
    for path in (
        "/agents/delta-agent/disable",  # well-formed, not an agent
        "/agents/ALPHA-AGENT/disable",  # names are exact
        "/agents/..%2Fbeta-agent/disable",
        "/agents/alpha-agent%2F..%2Fbeta-agent/disable",
        "/agents/%2e%2e/disable",
        "/agents/alpha-agent/disable/../../beta-agent/disable",
        "/agents/alpha-agent/../beta-agent/disable",
        "/agents/./alpha-agent/disable",
        "/agents//alpha-agent/disable",
        "/agents/alpha-agent%5c..%5cbeta-agent/disable",
        "/admin",
    ):
        # httpx (like curl) would resolve "..": send the path exactly as written.
        status, text = raw_request(served.url, "POST", path, headers)
        assert status == 404, (path, status, text)
        event = serve_events(served)[-1]
        assert event.result == "refused" and event.detail["status"] == 404, path
    wrong_method = served.get("/agents/alpha-agent/disable", headers=headers)
    assert wrong_method.status_code == 405
    assert serve_events(served)[-1].detail["reason"] == "method not allowed"
    assert served.killed_roles() == set()
    assert set(served.statuses().values()) == {"active"}


def test_oversized_bodies_are_refused_before_anything_runs(served: Served) -> None:
    headers = served.bearer()
    big = json.dumps({"reason": "x" * 5000}).encode()
    declared = served.post("/agents/alpha-agent/disable", headers=headers, content=big)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        for _ in range(10):
            yield b"x" * 500

    chunked = served.post("/agents/alpha-agent/disable", headers=headers, content=chunks())
    assert chunked.status_code == 413
    reasons = [e.detail.get("reason", "") for e in serve_events(served)[-2:]]
    assert all("body too large" in r for r in reasons), reasons
    bad = served.post("/agents/alpha-agent/disable", headers=headers, content=b"{not json")
    assert bad.status_code == 400
    extra = served.post("/agents/alpha-agent/disable", headers=headers, json={"reason": 1})
    assert extra.status_code == 400
    assert served.killed_roles() == set()
    assert set(served.statuses().values()) == {"active"}


def test_a_flood_is_rate_limited_and_its_refusals_are_audited_without_a_write_each(
    served: Served,
) -> None:
    before = len(served.audit())
    with httpx.Client(timeout=30) as client:
        codes = [
            client.post(
                f"{served.url}/agents/alpha-agent/disable",
                headers={"Authorization": "Bearer agentctl_serve_" + "f" * 43},
            ).status_code
            for _ in range(60)
        ]
    assert codes.count(401) == 15  # the burst
    assert codes.count(429) == 45
    events = served.audit()[before:]
    assert {e.result for e in events} == {"refused"}
    limited = [e for e in events if e.action == "serve.rate-limited"]
    assert len(limited) == 1  # the first refusal at once, not one write per request
    assert len(events) == 16
    assert "1 request(s)" in limited[0].detail["reason"]

    served.ticks[0] += 0.5  # still empty: refused, counted, not yet audited
    assert served.post("/agents/alpha-agent/disable").status_code == 429
    assert len(served.audit()) == before + 16
    served.ticks[0] += 60.5  # a minute on: the bucket is full again, the summary due
    flood = {"Authorization": "Bearer agentctl_serve_" + "f" * 43}
    again = [
        served.post("/agents/alpha-agent/disable", headers=flood).status_code for _ in range(16)
    ]
    assert again == [401] * 15 + [429]
    summary = serve_events(served)[-1]
    assert summary.action == "serve.rate-limited"
    assert "46 request(s)" in summary.detail["reason"]
    assert served.killed_roles() == set()
    assert served.get("/healthz").status_code == 200  # probes are never limited


def test_a_revoked_caller_is_refused_at_once(served: Served) -> None:
    state = served.engine.state

    def secrets() -> SecretStore:
        return served.secrets

    assert served.get("/agents/alpha-agent", headers=served.bearer()).status_code == 200
    revoke_caller(state, secrets, "pager")
    response = served.get("/agents/alpha-agent", headers=served.bearer())
    assert response.status_code == 401
    assert "revoked" in serve_events(served)[-1].detail["reason"]

    revoke_caller(state, secrets, "siem")
    assert served.secrets.get("serve/caller/siem/signing-key") is None
    signed = served.signed("GET", "/agents/alpha-agent")
    assert served.get("/agents/alpha-agent", headers=signed).status_code == 401


def test_callers_are_stored_hashed_and_never_in_the_state(served: Served) -> None:
    callers = {c.name: c for c in served.engine.state.list_serve_callers()}
    pager = callers["pager"]
    assert pager.token_hash == hashlib.sha256(served.token.reveal().encode()).hexdigest()
    dump = json.dumps([vars(c) for c in callers.values()], default=str)
    assert served.token.reveal() not in dump and served.signing_key.reveal() not in dump
    assert callers["siem"].secret_ref == "serve/caller/siem/signing-key"
    assert served.secrets.get("serve/caller/siem/signing-key") == served.signing_key


def test_health_answers_without_credentials_and_says_nothing_about_agents(
    served: Served,
) -> None:
    before = len(served.audit())
    response = served.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert len(served.audit()) == before


def test_the_readme_shell_recipe_signs_a_request_the_server_accepts(
    served: Served, tmp_path: Path, secret_values: Any
) -> None:
    import re
    import shutil
    import subprocess

    assert shutil.which("openssl") and shutil.which("curl"), "scripts/ci-services.sh installs them"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    recipe = re.search(r"```sh\n(ts=\$\(date.*?)```", readme, re.DOTALL)
    assert recipe, "the README lost its signing recipe"
    script = recipe.group(1).replace("https://agentctl.internal", served.url)
    script = script.replace("/agents/pr-review-agent/", "/agents/alpha-agent/")
    script = script.replace("curl -X POST", "curl -sS -o /dev/null -w '%{http_code}' -X POST")
    (tmp_path / "siem.key").write_text(served.signing_key.reveal(), "utf-8")
    secret_values.exempt(tmp_path / "siem.key")  # the caller's own copy, as the README says
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "200", (done.stdout, done.stderr)
    assert served.killed_roles() == {"alpha-agent"}


def test_the_http_kill_switch_works_when_the_agents_state_row_is_damaged(
    served: Served,
) -> None:
    """A state-database writer damaged the agent's row (a status agentctl does
    not know): the pager's kill still revokes it, and status says what is
    wrong instead of failing the request with a server error."""
    state_path = served.engine.config.state_url.removeprefix("sqlite:///")
    with sqlite3.connect(state_path) as conn:
        conn.execute("UPDATE agents SET status = 'hacked' WHERE name = 'beta-agent'")
    status = served.get("/agents/beta-agent", headers=served.bearer())
    assert status.status_code == 503, status.text
    assert status.json()["error"] == "the state's record of beta-agent is damaged (agents.status)"
    response = served.post("/agents/beta-agent/disable", headers=served.bearer())
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True and response.json()["status"] == "killed"
    assert served.killed_roles() == {"beta-agent"}
    assert served.statuses()["beta-agent"] == "killed"  # recorded over the damaged status
