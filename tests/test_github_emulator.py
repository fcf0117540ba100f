"""The GitHub emulator answers like GitHub: real HTTP, the official description, githubkit.

Every case talks to a real server on 127.0.0.1; nothing is patched.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from githubkit import (
    AppAuthStrategy,
    AppInstallationAuthStrategy,
    GitHub,
    TokenAuthStrategy,
    UnauthAuthStrategy,
)
from githubkit.cache import MemCacheStrategy
from githubkit.exception import (
    PrimaryRateLimitExceeded,
    RequestFailed,
    SecondaryRateLimitExceeded,
)
from githubkit_schemas.latest.models import Integration, PublicUser, SimpleUser
from openapi_schema_validator import OAS30Validator

from testing.github import GitHubEmulator

DESCRIPTION_PATH = Path(
    os.environ.get(
        "AGENTCTL_GITHUB_OPENAPI",
        # A copy of ../shared/reference/github-rest-apps.openapi.json (the official description).
        Path(__file__).resolve().parent / "data" / "github-rest-apps.openapi.json",
    )
)
METHODS = ("get", "put", "post", "patch", "delete")

# The App the world is built around: what a dedicated-mode agent would get.
APP_PERMISSIONS = {
    "issues": "write",
    "pull_requests": "write",
    "administration": "write",
    "contents": "read",
}


# --------------------------------------------------------------------------
# World building
# --------------------------------------------------------------------------


class FakeClock:
    """A clock tests can move; the emulator judges JWTs and tokens by it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey | str, *, algorithm: str = "RS256") -> str:
    # Through PyJWS rather than jwt.encode, which refuses an integer `iss`;
    # GitHub accepts one, and so must the emulator.
    return jwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm=algorithm)


@dataclass
class World:
    """acme/{api,web,secret}; the App installed on acme for api and web only.

    acme/api has issue #1 and pull request #2.
    """

    emu: GitHubEmulator
    http: httpx.Client
    clock: Callable[[], datetime]
    app: dict[str, Any]
    key: rsa.RSAPrivateKey  # the App's key, parsed once: parsing a PEM is slow
    installation_id: int
    _orgs: Iterator[int] = field(default_factory=itertools.count)

    def jwt(self, **claims: Any) -> str:
        now = int(self.clock().timestamp())
        return sign({"iss": self.app["id"], "iat": now - 60, "exp": now + 540, **claims}, self.key)

    def as_app(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.jwt()}"}

    def mint(self, installation_id: int | None = None, **body: Any) -> str:
        response = self.http.post(
            f"/app/installations/{installation_id or self.installation_id}/access_tokens",
            headers=self.as_app(),
            json=body,
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def fresh_installation(self, *repos: str) -> tuple[str, int]:
        """A new org with ``repos``, the App installed on all of them."""
        org = f"org{next(self._orgs)}"
        self.emu.create_org(org)
        for name in repos:
            self.emu.create_repo(org, name)
        return org, self.emu.install_app(self.app["id"], org)["id"]

    def suspend(self, installation_id: int) -> None:
        response = self.http.put(
            f"/app/installations/{installation_id}/suspended", headers=self.as_app()
        )
        assert response.status_code == 204


def token_auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def build_world(emu: GitHubEmulator, clock: Callable[[], datetime]) -> World:
    emu.create_org("acme")
    for name in ("api", "web", "secret"):
        emu.create_repo("acme", name)
    emu.create_issue("acme", "api", "Login fails")
    emu.create_pull("acme", "api", "Fix login", head="fix-login")
    http = httpx.Client(base_url=emu.url, timeout=10)
    # The App comes from the manifest flow, as `agentctl github register` does it.
    code = emu.create_manifest_code(
        {
            "name": "PR Review Agent",
            "url": "https://example.com/agents/pr-review-agent",
            "hook_attributes": {"url": "https://example.com/hook"},
            "default_permissions": APP_PERMISSIONS,
            "default_events": ["pull_request"],
        },
        owner="acme",
    )
    conversion = http.post(f"/app-manifests/{code}/conversions")
    assert conversion.status_code == 201, conversion.text
    app = conversion.json()
    installation = emu.install_app(app["id"], "acme", repositories=["api", "web"])
    key = serialization.load_pem_private_key(app["pem"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return World(emu, http, clock, app, key, installation["id"])


def _serve_world() -> Iterator[World]:
    with GitHubEmulator() as emu:
        built = build_world(emu, lambda: datetime.now(UTC))
        yield built
        built.http.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One world for the module: generating App keys is what makes worlds slow.

    Tests on it must not change what others rely on: to suspend or delete, they
    make their own installation with :meth:`World.fresh_installation`.
    """
    yield from _serve_world()


@pytest.fixture
def faulty_world(world: World) -> Iterator[World]:
    """The module world, with every fault removed afterwards, even on failure."""
    yield world
    world.emu.reset_faults()


@pytest.fixture
def own_world() -> Iterator[World]:
    """A world for tests that change what others rely on (the main installation)."""
    yield from _serve_world()


def githubkit_client(emu: GitHubEmulator, auth: Any) -> GitHub[Any]:
    # No retries (tests assert on the first answer), no HTTP cache, and a
    # private token cache: githubkit's default cache is shared by the process.
    return GitHub(
        auth,
        base_url=emu.url,
        auto_retry=False,
        http_cache=False,
        cache_strategy=MemCacheStrategy(),
    )


# --------------------------------------------------------------------------
# 1. Conformance with the official OpenAPI description
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    operation_id: str
    status: int
    label: str
    send: Callable[[World], httpx.Response]

    @property
    def id(self) -> str:
        return f"{self.operation_id} {self.status} {self.label}".strip()


CASES: list[Case] = []


def case(
    operation_id: str, status: int, label: str = ""
) -> Callable[[Callable[[World], httpx.Response]], Callable[[World], httpx.Response]]:
    def register(send: Callable[[World], httpx.Response]) -> Callable[[World], httpx.Response]:
        CASES.append(Case(operation_id, status, label, send))
        return send

    return register


UNKNOWN_ID = 1  # emulator ids start at 1000 or more


@case("apps/get-authenticated", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/app", headers=w.as_app())


@case("apps/list-installations", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/app/installations", headers=w.as_app())


@case("apps/list-installations", 200, "with a suspended one")
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation()
    w.suspend(installation_id)
    return w.http.get("/app/installations?per_page=100", headers=w.as_app())


@case("apps/get-installation", 200)
def _(w: World) -> httpx.Response:
    return w.http.get(f"/app/installations/{w.installation_id}", headers=w.as_app())


@case("apps/get-installation", 200, "suspended")
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation()
    w.suspend(installation_id)
    return w.http.get(f"/app/installations/{installation_id}", headers=w.as_app())


@case("apps/get-installation", 404)
def _(w: World) -> httpx.Response:
    return w.http.get(f"/app/installations/{UNKNOWN_ID}", headers=w.as_app())


@case("apps/delete-installation", 204)
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation("tmp")
    return w.http.delete(f"/app/installations/{installation_id}", headers=w.as_app())


@case("apps/delete-installation", 404)
def _(w: World) -> httpx.Response:
    return w.http.delete(f"/app/installations/{UNKNOWN_ID}", headers=w.as_app())


@case("apps/create-installation-access-token", 201, "scoped")
def _(w: World) -> httpx.Response:
    return w.http.post(
        f"/app/installations/{w.installation_id}/access_tokens",
        headers=w.as_app(),
        json={"permissions": {"issues": "write"}, "repositories": ["api"]},
    )


@case("apps/create-installation-access-token", 201, "everything")
def _(w: World) -> httpx.Response:
    return w.http.post(f"/app/installations/{w.installation_id}/access_tokens", headers=w.as_app())


@case("apps/create-installation-access-token", 401)
def _(w: World) -> httpx.Response:
    now = int(w.clock().timestamp())
    expired = w.jwt(iat=now - 900, exp=now - 300)
    return w.http.post(
        f"/app/installations/{w.installation_id}/access_tokens",
        headers={"Authorization": f"Bearer {expired}"},
    )


@case("apps/create-installation-access-token", 403, "suspended")
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation("tmp")
    w.suspend(installation_id)
    return w.http.post(f"/app/installations/{installation_id}/access_tokens", headers=w.as_app())


@case("apps/create-installation-access-token", 404)
def _(w: World) -> httpx.Response:
    return w.http.post(f"/app/installations/{UNKNOWN_ID}/access_tokens", headers=w.as_app())


@case("apps/create-installation-access-token", 422, "permission")
def _(w: World) -> httpx.Response:
    return w.http.post(
        f"/app/installations/{w.installation_id}/access_tokens",
        headers=w.as_app(),
        json={"permissions": {"contents": "write"}},
    )


@case("apps/create-installation-access-token", 422, "repository")
def _(w: World) -> httpx.Response:
    return w.http.post(
        f"/app/installations/{w.installation_id}/access_tokens",
        headers=w.as_app(),
        json={"repositories": ["secret"]},
    )


@case("apps/suspend-installation", 204)
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation()
    return w.http.put(f"/app/installations/{installation_id}/suspended", headers=w.as_app())


@case("apps/suspend-installation", 404)
def _(w: World) -> httpx.Response:
    return w.http.put(f"/app/installations/{UNKNOWN_ID}/suspended", headers=w.as_app())


@case("apps/unsuspend-installation", 204)
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation()
    w.suspend(installation_id)
    return w.http.delete(f"/app/installations/{installation_id}/suspended", headers=w.as_app())


@case("apps/unsuspend-installation", 404)
def _(w: World) -> httpx.Response:
    return w.http.delete(f"/app/installations/{UNKNOWN_ID}/suspended", headers=w.as_app())


@case("apps/revoke-installation-access-token", 204)
def _(w: World) -> httpx.Response:
    return w.http.delete("/installation/token", headers=token_auth(w.mint()))


@case("apps/list-repos-accessible-to-installation", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/installation/repositories", headers=token_auth(w.mint()))


@case("apps/list-repos-accessible-to-installation", 401, "revoked token")
def _(w: World) -> httpx.Response:
    token = w.mint()
    assert w.http.delete("/installation/token", headers=token_auth(token)).status_code == 204
    return w.http.get("/installation/repositories", headers=token_auth(token))


@case("apps/list-repos-accessible-to-installation", 403, "suspended")
def _(w: World) -> httpx.Response:
    _, installation_id = w.fresh_installation("tmp")
    token = w.mint(installation_id)
    w.suspend(installation_id)
    return w.http.get("/installation/repositories", headers=token_auth(token))


@case("apps/create-from-manifest", 201)
def _(w: World) -> httpx.Response:
    code = w.emu.create_manifest_code({"name": "Triage Agent", "url": "https://example.com"})
    return w.http.post(f"/app-manifests/{code}/conversions")


@case("apps/create-from-manifest", 404)
def _(w: World) -> httpx.Response:
    return w.http.post("/app-manifests/no-such-code/conversions")


@case("apps/create-from-manifest", 422, "name taken")
def _(w: World) -> httpx.Response:
    code = w.emu.create_manifest_code({"name": w.app["name"], "url": "https://example.com"})
    return w.http.post(f"/app-manifests/{code}/conversions")


@case("apps/get-org-installation", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/orgs/acme/installation", headers=w.as_app())


@case("apps/get-repo-installation", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/api/installation", headers=w.as_app())


@case("apps/get-repo-installation", 404, "repository not selected")
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/secret/installation", headers=w.as_app())


@case("repos/get", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/api", headers=token_auth(w.mint()))


@case("repos/get", 403, "suspended")
def _(w: World) -> httpx.Response:
    org, installation_id = w.fresh_installation("tmp")
    token = w.mint(installation_id)
    w.suspend(installation_id)
    return w.http.get(f"/repos/{org}/tmp", headers=token_auth(token))


@case("repos/get", 404, "not accessible")
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/secret", headers=token_auth(w.mint()))


@case("repos/update", 200)
def _(w: World) -> httpx.Response:
    return w.http.patch(
        "/repos/acme/web",
        headers=token_auth(w.mint()),
        json={"description": "Web front end", "homepage": "https://example.com", "private": True},
    )


@case("repos/update", 403, "no administration")
def _(w: World) -> httpx.Response:
    token = w.mint(permissions={"issues": "write"})
    return w.http.patch("/repos/acme/api", headers=token_auth(token), json={"description": "x"})


@case("repos/update", 404)
def _(w: World) -> httpx.Response:
    return w.http.patch("/repos/acme/secret", headers=token_auth(w.mint()), json={})


@case("repos/update", 422, "bad visibility")
def _(w: World) -> httpx.Response:
    return w.http.patch(
        "/repos/acme/api", headers=token_auth(w.mint()), json={"visibility": "everyone"}
    )


@case("repos/delete", 204)
def _(w: World) -> httpx.Response:
    org, installation_id = w.fresh_installation("doomed")
    return w.http.delete(f"/repos/{org}/doomed", headers=token_auth(w.mint(installation_id)))


@case("repos/delete", 403, "no administration")
def _(w: World) -> httpx.Response:
    token = w.mint(permissions={"issues": "write"})
    return w.http.delete("/repos/acme/api", headers=token_auth(token))


@case("repos/delete", 404)
def _(w: World) -> httpx.Response:
    return w.http.delete("/repos/acme/secret", headers=token_auth(w.mint()))


@case("issues/list-comments", 200)
def _(w: World) -> httpx.Response:
    token = w.mint()
    w.http.post("/repos/acme/api/issues/1/comments", headers=token_auth(token), json={"body": "hi"})
    return w.http.get("/repos/acme/api/issues/1/comments", headers=token_auth(token))


@case("issues/list-comments", 404, "no such issue")
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/api/issues/999/comments", headers=token_auth(w.mint()))


@case("issues/create-comment", 201)
def _(w: World) -> httpx.Response:
    return w.http.post(
        "/repos/acme/api/issues/1/comments", headers=token_auth(w.mint()), json={"body": "LGTM"}
    )


@case("issues/create-comment", 403, "read-only token")
def _(w: World) -> httpx.Response:
    token = w.mint(permissions={"issues": "read"})
    return w.http.post(
        "/repos/acme/api/issues/1/comments", headers=token_auth(token), json={"body": "x"}
    )


@case("issues/create-comment", 404, "no such issue")
def _(w: World) -> httpx.Response:
    return w.http.post(
        "/repos/acme/api/issues/999/comments", headers=token_auth(w.mint()), json={"body": "x"}
    )


@case("issues/create-comment", 422, "no body")
def _(w: World) -> httpx.Response:
    return w.http.post("/repos/acme/api/issues/1/comments", headers=token_auth(w.mint()), json={})


@case("pulls/get", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/api/pulls/2", headers=token_auth(w.mint()))


@case("pulls/get", 404, "an issue, not a pull request")
def _(w: World) -> httpx.Response:
    return w.http.get("/repos/acme/api/pulls/1", headers=token_auth(w.mint()))


@case("pulls/update", 200)
def _(w: World) -> httpx.Response:
    return w.http.patch(
        "/repos/acme/api/pulls/2",
        headers=token_auth(w.mint()),
        json={"title": "Fix login for SSO users", "maintainer_can_modify": True},
    )


@case("pulls/update", 403, "issues-only token")
def _(w: World) -> httpx.Response:
    token = w.mint(permissions={"issues": "write"})
    return w.http.patch("/repos/acme/api/pulls/2", headers=token_auth(token), json={"title": "x"})


@case("pulls/update", 422, "bad state")
def _(w: World) -> httpx.Response:
    return w.http.patch(
        "/repos/acme/api/pulls/2", headers=token_auth(w.mint()), json={"state": "merged"}
    )


@case("rate-limit/get", 200)
def _(w: World) -> httpx.Response:
    return w.http.get("/rate_limit", headers=token_auth(w.mint()))


@pytest.fixture(scope="module")
def description() -> dict[str, Any]:
    if not DESCRIPTION_PATH.exists():
        pytest.skip(f"OpenAPI description not found at {DESCRIPTION_PATH}")
    loaded: dict[str, Any] = json.loads(DESCRIPTION_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def operations(description: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (METHOD, path template, operation)."""
    return {
        operation["operationId"]: (method.upper(), path, operation)
        for path, item in description["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def _schema_validator(schema: dict[str, Any]) -> OAS30Validator:
    # The bundled format checker ignores "uri"; GitHub clients rely on these
    # being absolute URLs, so check that too.
    checker = copy.deepcopy(OAS30Validator.FORMAT_CHECKER)

    @checker.checks("uri")
    def is_uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme and parts.netloc)

    return OAS30Validator(schema, format_checker=checker)


def assert_conforms(operation: tuple[str, str, dict[str, Any]], response: httpx.Response) -> None:
    method, template, spec = operation
    assert response.request.method == method
    path_pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
    assert re.fullmatch(path_pattern, response.request.url.path), response.request.url
    documented = spec["responses"]
    status = str(response.status_code)
    assert status in documented, f"{status} is not documented for {method} {template}"
    assert response.headers["x-github-request-id"]
    assert int(response.headers["x-ratelimit-remaining"]) >= 0
    content = documented[status].get("content")
    if content is None:
        assert response.content == b""
        return
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    schema = content["application/json"]["schema"]
    errors = sorted(_schema_validator(schema).iter_errors(response.json()), key=str)
    details = "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
    assert not errors, f"response does not match the description:\n{details}"


@pytest.mark.parametrize("conformance_case", CASES, ids=lambda c: c.id)
def test_response_matches_description(
    conformance_case: Case,
    world: World,
    operations: dict[str, tuple[str, str, dict[str, Any]]],
) -> None:
    response = conformance_case.send(world)
    assert response.status_code == conformance_case.status, response.text
    assert_conforms(operations[conformance_case.operation_id], response)


def test_every_described_operation_is_exercised(
    operations: dict[str, tuple[str, str, dict[str, Any]]],
) -> None:
    succeeded = {c.operation_id for c in CASES if c.status < 300}
    missing = sorted(
        f"{m} {p} ({op_id})" for op_id, (m, p, _) in operations.items() if op_id not in succeeded
    )
    assert not missing, f"operations without a conformance case: {missing}"
    unknown = {c.operation_id for c in CASES} - operations.keys()
    assert not unknown, f"cases for operations not in the description: {unknown}"


# --------------------------------------------------------------------------
# 2. App JWTs, checked with GitHub's rules
# --------------------------------------------------------------------------

OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _bad_credentials(w: World) -> dict[str, str | None]:
    now = int(w.clock().timestamp())
    app_id = w.app["id"]
    return {
        "expired": sign({"iss": app_id, "iat": now - 700, "exp": now - 100}, w.key),
        "lifetime over 10 minutes": sign({"iss": app_id, "iat": now - 30, "exp": now + 600}, w.key),
        "issued in the future": sign({"iss": app_id, "iat": now + 120, "exp": now + 400}, w.key),
        "no exp": sign({"iss": app_id, "iat": now - 30}, w.key),
        "wrong key": sign({"iss": app_id, "iat": now - 30, "exp": now + 500}, OTHER_KEY),
        "unknown issuer": sign({"iss": UNKNOWN_ID, "iat": now - 30, "exp": now + 500}, w.key),
        "HS256": sign(
            {"iss": app_id, "iat": now - 30, "exp": now + 500}, "x" * 32, algorithm="HS256"
        ),
        "garbage": "not-a-jwt",
        "installation token": w.mint(),
        "missing": None,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "lifetime over 10 minutes",
        "issued in the future",
        "no exp",
        "wrong key",
        "unknown issuer",
        "HS256",
        "garbage",
        "installation token",
        "missing",
    ],
)
def test_app_endpoints_reject_bad_jwts(world: World, kind: str) -> None:
    credential = _bad_credentials(world)[kind]
    headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
    response = world.http.get("/app", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["message"] and body["documentation_url"].startswith("https://docs.github.com")


def test_app_jwt_issuer_may_be_int_string_or_client_id_and_iat_may_drift(world: World) -> None:
    now = int(world.clock().timestamp())
    for issuer in (world.app["id"], str(world.app["id"]), world.app["client_id"]):
        credential = sign({"iss": issuer, "iat": now - 60, "exp": now + 540}, world.key)
        response = world.http.get("/app", headers={"Authorization": f"Bearer {credential}"})
        assert response.status_code == 200, (issuer, response.text)
    # A signer whose clock runs 50 s fast is still accepted (GitHub allows 60 s).
    drifted = sign({"iss": world.app["id"], "iat": now + 50, "exp": now + 590}, world.key)
    assert world.http.get("/app", headers={"Authorization": f"Bearer {drifted}"}).status_code == 200


def test_jwt_on_token_endpoint_and_token_scheme_on_app_endpoint_are_rejected(world: World) -> None:
    assert world.http.get("/repos/acme/api", headers=world.as_app()).status_code == 401
    as_token_scheme = {"Authorization": f"token {world.jwt()}"}
    assert world.http.get("/app", headers=as_token_scheme).status_code == 401


# --------------------------------------------------------------------------
# 3. Installation tokens: down-scoping and enforcement
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"permissions": {"contents": "write"}}, "permissions requested are not granted"),
        ({"permissions": {"workflows": "write"}}, "permissions requested are not granted"),
        ({"permissions": {"issues": "admin"}}, "permissions requested are not granted"),
        ({"repositories": ["secret"]}, "not accessible to the parent installation"),
        ({"repositories": ["api", "nope"]}, "not accessible to the parent installation"),
    ],
)
def test_token_cannot_exceed_installation(world: World, body: dict[str, Any], message: str) -> None:
    response = world.http.post(
        f"/app/installations/{world.installation_id}/access_tokens",
        headers=world.as_app(),
        json=body,
    )
    assert response.status_code == 422
    assert message in response.json()["message"]


def test_token_cannot_name_a_repository_id_outside_installation(world: World) -> None:
    secret_id = world.emu.create_repo("acme", "secret")["id"]
    response = world.http.post(
        f"/app/installations/{world.installation_id}/access_tokens",
        headers=world.as_app(),
        json={"repository_ids": [secret_id]},
    )
    assert response.status_code == 422


def test_token_response_describes_its_scope(world: World) -> None:
    response = world.http.post(
        f"/app/installations/{world.installation_id}/access_tokens",
        headers=world.as_app(),
        json={"permissions": {"issues": "write"}, "repositories": ["api"]},
    )
    body = response.json()
    assert re.fullmatch(STATELESS_TOKEN, body["token"])
    assert body["permissions"] == {"issues": "write"}
    assert body["repository_selection"] == "selected"
    assert [r["full_name"] for r in body["repositories"]] == ["acme/api"]
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)


# GitHub's formats: ghs_<app id>_<JWT> (stateless, github.com since April 2026)
# and the opaque 40-character ghs_ token (GitHub Enterprise Server, earlier tokens).
STATELESS_TOKEN = r"ghs_[0-9]+_eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"
OPAQUE_TOKEN = r"ghs_[A-Za-z0-9]{36}"


@pytest.mark.parametrize(
    ("override", "pattern"),
    [(None, STATELESS_TOKEN), ("enabled", STATELESS_TOKEN), ("disabled", OPAQUE_TOKEN)],
)
def test_tokens_come_in_both_formats_and_both_work(
    world: World, override: str | None, pattern: str
) -> None:
    """The stateless format by default, as github.com mints now; GitHub's
    X-GitHub-Stateless-S2S-Token header picks one per request."""
    headers = world.as_app()
    if override is not None:
        headers["X-GitHub-Stateless-S2S-Token"] = override
    response = world.http.post(
        f"/app/installations/{world.installation_id}/access_tokens",
        headers=headers,
        json={"permissions": {"issues": "write"}, "repositories": ["api"]},
    )
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert re.fullmatch(pattern, token)
    # GitHub's documented pattern for both forms.
    assert re.fullmatch(r"ghs_[A-Za-z0-9\._]{36,}", token.replace("-", "_"))
    if pattern == STATELESS_TOKEN:
        assert token.startswith(f"ghs_{world.app['id']}_")
        assert 450 <= len(token) <= 600  # "~520 characters"
    auth = token_auth(token)
    assert world.http.get("/repos/acme/api", headers=auth).status_code == 200
    assert world.http.delete("/installation/token", headers=auth).status_code == 204
    assert world.http.get("/repos/acme/api", headers=auth).status_code == 401


def test_an_opaque_token_emulator_mints_the_40_character_form() -> None:
    with GitHubEmulator(token_format="opaque") as emu:
        emu.create_org("acme")
        emu.create_repo("acme", "api")
        app = emu.create_app("opaque-app", owner="acme", permissions={"contents": "read"})
        installation = emu.install_app(app["id"], "acme")
        key = serialization.load_pem_private_key(app["pem"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        now = int(time.time())
        bearer = sign({"iss": app["id"], "iat": now - 60, "exp": now + 540}, key)
        response = httpx.post(
            f"{emu.url}/app/installations/{installation['id']}/access_tokens",
            headers={"Authorization": f"Bearer {bearer}"},
            json={},
        )
        assert response.status_code == 201, response.text
        assert re.fullmatch(OPAQUE_TOKEN, response.json()["token"])


def test_issues_write_token_on_one_repo_comments_there_and_nothing_more(world: World) -> None:
    token = world.mint(permissions={"issues": "write"}, repositories=["api"])
    auth = token_auth(token)

    comment = world.http.post(
        "/repos/acme/api/issues/1/comments", headers=auth, json={"body": "Hi"}
    )
    assert comment.status_code == 201
    # GitHub names the agent, not a person.
    assert comment.json()["user"]["login"] == f"{world.app['slug']}[bot]"
    assert comment.json()["user"]["type"] == "Bot"
    assert comment.json()["performed_via_github_app"]["id"] == world.app["id"]

    patch = world.http.patch("/repos/acme/api", headers=auth, json={"description": "pwned"})
    assert patch.status_code == 403
    assert patch.json()["message"] == "Resource not accessible by integration"
    assert patch.headers["x-accepted-github-permissions"] == "administration=write"

    assert world.http.get("/repos/acme/web", headers=auth).status_code == 404
    assert world.http.get("/repos/acme/api", headers=auth).status_code == 200
    assert world.http.get("/repos/acme/api/pulls/2", headers=auth).status_code == 403


def test_get_user_names_a_persons_token_and_refuses_an_installation_token(world: World) -> None:
    """GET /user (what agentctl asks to verify who is acting where AWS is not
    configured). The stored OpenAPI copy covers the Apps paths only, so the body
    is checked with githubkit's PublicUser model (from GitHub's description)."""
    token = world.emu.create_user_token("octo-lead")
    response = world.http.get("/user", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    user = PublicUser.model_validate(response.json())
    assert (user.login, user.type) == ("octo-lead", "User")
    # An App installation token is valid, but it is not a person.
    installation = world.http.get("/user", headers={"Authorization": f"token {world.mint()}"})
    assert installation.status_code == 403
    assert installation.json()["message"] == "Resource not accessible by integration"
    for headers in ({"Authorization": "Bearer gho_not-a-token"}, {}):
        assert world.http.get("/user", headers=headers).status_code == 401


def test_get_app_by_slug_hides_a_private_app_from_anonymous_requests(own_world: World) -> None:
    """GET /apps/{app_slug}: GitHub documents that a private App needs a signed-in
    request (a personal or installation token); anonymously it is 404, as if it
    did not exist, and a bad credential is 401. The body is checked with
    githubkit's Integration model (the stored OpenAPI copy lacks this path)."""
    world = own_world
    manifest = {
        "name": "acme-private-bot",
        "url": "https://example.com",
        "public": False,
        "default_permissions": {"issues": "read"},
    }
    code = world.emu.create_manifest_code(manifest, owner="acme")
    created = world.http.post(f"/app-manifests/{code}/conversions").json()
    slug, person = created["slug"], world.emu.create_user_token("octo-member")
    assert world.http.get(f"/apps/{slug}").status_code == 404
    for credential in (f"Bearer {person}", f"token {world.mint()}", f"Bearer {world.jwt()}"):
        seen = world.http.get(f"/apps/{slug}", headers={"Authorization": credential})
        assert seen.status_code == 200, seen.text
        app = Integration.model_validate(seen.json())
        assert (app.id, app.slug, app.owner.login) == (created["id"], slug, "acme")  # type: ignore[union-attr]
    bad = world.http.get(f"/apps/{slug}", headers={"Authorization": "Bearer gho_not-a-token"})
    assert bad.status_code == 401
    assert (
        world.http.get(
            "/apps/no-such-app", headers={"Authorization": f"Bearer {person}"}
        ).status_code
        == 404
    )
    public = world.emu.create_manifest_code(
        {**manifest, "name": "acme-public-bot", "public": True}, owner="acme"
    )
    public_slug = world.http.post(f"/app-manifests/{public}/conversions").json()["slug"]
    assert world.http.get(f"/apps/{public_slug}").status_code == 200


def test_bearer_scheme_also_carries_installation_tokens(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.mint()}"}
    assert world.http.get("/repos/acme/api", headers=headers).status_code == 200


def test_revoked_token_is_bad_credentials(world: World) -> None:
    token = world.mint()
    assert world.http.delete("/installation/token", headers=token_auth(token)).status_code == 204
    response = world.http.get("/repos/acme/api", headers=token_auth(token))
    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"
    assert world.http.delete("/installation/token", headers=token_auth(token)).status_code == 401
    assert world.emu.state()["tokens"][-1]["revoked"] is True


def test_suspension_blocks_existing_tokens_and_minting_until_unsuspended(world: World) -> None:
    org, installation_id = world.fresh_installation("app")
    token = world.mint(installation_id)
    world.suspend(installation_id)

    response = world.http.get(f"/repos/{org}/app", headers=token_auth(token))
    assert response.status_code == 403
    assert "suspended" in response.json()["message"]
    minting = world.http.post(
        f"/app/installations/{installation_id}/access_tokens", headers=world.as_app()
    )
    assert minting.status_code == 403
    installation = world.http.get(
        f"/app/installations/{installation_id}", headers=world.as_app()
    ).json()
    assert installation["suspended_at"] is not None
    assert installation["suspended_by"]["login"] == f"{world.app['slug']}[bot]"

    unsuspend = world.http.delete(
        f"/app/installations/{installation_id}/suspended", headers=world.as_app()
    )
    assert unsuspend.status_code == 204
    assert world.http.get(f"/repos/{org}/app", headers=token_auth(token)).status_code == 200
    assert world.mint(installation_id)


def test_tokens_expire_after_an_hour() -> None:
    clock = FakeClock()
    with GitHubEmulator(clock=clock) as emu:
        w = build_world(emu, clock)
        token = w.mint()
        clock.advance(timedelta(minutes=59))
        assert w.http.get("/repos/acme/api", headers=token_auth(token)).status_code == 200
        clock.advance(timedelta(minutes=1))
        assert w.http.get("/repos/acme/api", headers=token_auth(token)).status_code == 401
        w.http.close()


def test_deleting_installation_kills_its_tokens(world: World) -> None:
    org, installation_id = world.fresh_installation("app")
    token = world.mint(installation_id)
    deleted = world.http.delete(f"/app/installations/{installation_id}", headers=world.as_app())
    assert deleted.status_code == 204
    assert world.http.get(f"/repos/{org}/app", headers=token_auth(token)).status_code == 401
    assert world.http.get(f"/orgs/{org}/installation", headers=world.as_app()).status_code == 404


def test_all_repositories_installation_follows_new_repositories(world: World) -> None:
    org, installation_id = world.fresh_installation("one")
    token = world.mint(installation_id)
    world.emu.create_repo(org, "two")
    assert world.http.get(f"/repos/{org}/two", headers=token_auth(token)).status_code == 200


def test_an_app_cannot_see_another_apps_installation(world: World) -> None:
    other = world.emu.create_app("Other Agent", owner="acme")
    world.emu.create_org("elsewhere")
    foreign = world.emu.install_app(other["id"], "elsewhere")
    response = world.http.get(f"/app/installations/{foreign['id']}", headers=world.as_app())
    assert response.status_code == 404


def test_commenting_on_a_plain_issue_needs_issues_not_pull_requests(world: World) -> None:
    token = world.mint(permissions={"pull_requests": "write"})
    on_issue = world.http.post(
        "/repos/acme/api/issues/1/comments", headers=token_auth(token), json={"body": "x"}
    )
    on_pull = world.http.post(
        "/repos/acme/api/issues/2/comments", headers=token_auth(token), json={"body": "x"}
    )
    assert (on_issue.status_code, on_pull.status_code) == (403, 201)


# --------------------------------------------------------------------------
# 4. githubkit 0.16.1 against the emulator
# --------------------------------------------------------------------------


def test_githubkit_drives_the_app_and_token_endpoints(own_world: World) -> None:
    emu, app = own_world.emu, own_world.app
    unauthenticated = githubkit_client(emu, UnauthAuthStrategy())
    code = emu.create_manifest_code({"name": "Deploy Agent", "url": "https://example.com"})
    created = unauthenticated.rest.apps.create_from_manifest(code).parsed_data
    assert created.pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert created.client_secret and created.webhook_secret is None

    gh = githubkit_client(emu, AppAuthStrategy(app["id"], app["pem"]))
    authenticated = gh.rest.apps.get_authenticated().parsed_data
    assert authenticated is not None and authenticated.slug == "pr-review-agent"
    installations = gh.rest.apps.list_installations().parsed_data
    assert [i.id for i in installations] == [own_world.installation_id]
    account = gh.rest.apps.get_installation(own_world.installation_id).parsed_data.account
    assert isinstance(account, SimpleUser) and account.login == "acme"
    assert gh.rest.apps.get_org_installation("acme").parsed_data.id == own_world.installation_id
    assert (
        gh.rest.apps.get_repo_installation("acme", "api").parsed_data.id
        == own_world.installation_id
    )

    minted = gh.rest.apps.create_installation_access_token(
        own_world.installation_id,
        permissions={"issues": "write", "pull_requests": "write"},
        repositories=["api"],
    ).parsed_data
    assert minted.repositories and minted.repositories[0].full_name == "acme/api"
    admin = gh.rest.apps.create_installation_access_token(
        own_world.installation_id, data={"permissions": {"administration": "write"}}
    ).parsed_data

    agent = githubkit_client(emu, TokenAuthStrategy(minted.token))
    repos = agent.rest.apps.list_repos_accessible_to_installation().parsed_data
    assert [r.full_name for r in repos.repositories] == ["acme/api"]
    comment = agent.rest.issues.create_comment("acme", "api", 2, body="Looks good").parsed_data
    assert comment.user is not None and comment.user.login == "pr-review-agent[bot]"
    # Any: githubkit's IssuesClient has a method named `list`, which shadows the
    # builtin in its own annotations and confuses type checkers.
    listed: Any = agent.rest.issues.list_comments("acme", "api", 2).parsed_data
    assert len(listed) == 1 and listed[0].id == comment.id
    assert agent.rest.repos.get("acme", "api").parsed_data.full_name == "acme/api"
    pull = agent.rest.pulls.update("acme", "api", 2, state="closed").parsed_data
    assert pull.state == "closed" and pull.closed_at is not None
    assert agent.rest.pulls.get("acme", "api", 2).parsed_data.state == "closed"
    assert agent.rest.rate_limit.get().parsed_data.resources.core.limit == 5000

    admin_agent = githubkit_client(emu, TokenAuthStrategy(admin.token))
    updated = admin_agent.rest.repos.update("acme", "web", description="Front end").parsed_data
    assert updated.description == "Front end"
    assert admin_agent.rest.repos.delete("acme", "web").status_code == 204

    assert gh.rest.apps.suspend_installation(own_world.installation_id).status_code == 204
    with pytest.raises(RequestFailed) as suspended:
        agent.rest.repos.get("acme", "api")
    assert suspended.value.response.status_code == 403
    assert gh.rest.apps.unsuspend_installation(own_world.installation_id).status_code == 204

    assert agent.rest.apps.revoke_installation_access_token().status_code == 204
    with pytest.raises(RequestFailed) as revoked:
        agent.rest.repos.get("acme", "api")
    assert revoked.value.response.status_code == 401
    assert gh.rest.apps.delete_installation(own_world.installation_id).status_code == 204


def test_githubkit_installation_strategy_mints_scoped_tokens(world: World) -> None:
    auth = AppInstallationAuthStrategy(
        world.app["client_id"],  # githubkit sends it as `iss`
        world.app["pem"],
        world.installation_id,
        permissions={"issues": "write"},
        repositories=["api"],
    )
    gh = githubkit_client(world.emu, auth)
    assert gh.rest.issues.create_comment("acme", "api", 1, body="x").status_code == 201
    with pytest.raises(RequestFailed) as denied:
        gh.rest.repos.update("acme", "api", description="x")
    assert denied.value.response.status_code == 403


# --------------------------------------------------------------------------
# 5. Faults and the request log
# --------------------------------------------------------------------------


def test_server_error_fault_then_success(faulty_world: World) -> None:
    faulty_world.emu.clear_requests()
    faulty_world.emu.inject_fault(502, count=3, path_prefix="/app")
    statuses = [
        faulty_world.http.get("/app", headers=faulty_world.as_app()).status_code for _ in range(4)
    ]
    assert statuses == [502, 502, 502, 200]
    log = [r for r in faulty_world.emu.requests if r["route"] == "/app"]
    assert [r["fault"] for r in log] == [True, True, True, False]

    gh = githubkit_client(
        faulty_world.emu, AppAuthStrategy(faulty_world.app["id"], faulty_world.app["pem"])
    )
    faulty_world.emu.inject_fault(503)
    with pytest.raises(RequestFailed) as failed:
        gh.rest.apps.get_authenticated()
    assert failed.value.response.status_code == 503


@pytest.mark.parametrize(
    ("kind", "status", "retry_after", "reset_in", "expected"),
    [
        # Primary: remaining 0 and the reset, no retry-after.
        ("primary", 403, None, None, PrimaryRateLimitExceeded),
        ("primary", 429, None, 120, PrimaryRateLimitExceeded),
        # Secondary: GitHub's message; retry-after when GitHub sends one, the real
        # counters (remaining not 0) unless it also says to wait for the reset.
        ("secondary", 403, 30, None, SecondaryRateLimitExceeded),
        ("secondary", 429, 7, None, SecondaryRateLimitExceeded),
        # githubkit 0.16 does not recognise this documented variant (no retry-after,
        # remaining not 0): a plain RequestFailed. agentctl reads the message itself.
        ("secondary", 403, None, None, RequestFailed),
        ("secondary", 403, None, 90, SecondaryRateLimitExceeded),
    ],
)
def test_rate_limit_faults_look_like_github(
    faulty_world: World,
    operations: dict[str, tuple[str, str, dict[str, Any]]],
    kind: str,
    status: int,
    retry_after: int | None,
    reset_in: int | None,
    expected: type[Exception],
) -> None:
    w = faulty_world
    endpoint = f"/app/installations/{w.installation_id}/access_tokens"
    w.emu.inject_fault(
        status,
        rate_limit=kind,
        count=2,
        retry_after=retry_after,
        reset_in=reset_in,
        path_prefix=endpoint,
    )
    asked_at = int(time.time())
    response = w.http.post(endpoint, headers=w.as_app(), json={})
    answered_at = time.time()
    assert response.status_code == status
    headers = response.headers
    assert headers.get("retry-after") == (None if retry_after is None else str(retry_after))
    message = response.json()["message"]
    if kind == "primary":
        assert message == f"API rate limit exceeded for integration ID {w.app['id']}."
    else:
        assert message.startswith("You have exceeded a secondary rate limit.")
        assert headers["x-github-request-id"] in message
    if kind == "primary" or reset_in is not None:
        assert headers["x-ratelimit-remaining"] == "0"
        # reset_in seconds after the emulator answered (bracketed by the test's
        # clock: no bound on how long a loaded machine takes to answer).
        reset = int(headers["x-ratelimit-reset"])
        assert asked_at + (reset_in or 60) <= reset <= answered_at + (reset_in or 60)
    else:
        assert int(headers["x-ratelimit-remaining"]) > 0
    # The error body is GitHub's "Basic Error", as the description documents it
    # (403 is documented for this operation; 429 shares the same body).
    documented = httpx.Response(403, headers=dict(headers), content=response.content)
    documented.request = response.request
    assert_conforms(operations["apps/create-installation-access-token"], documented)

    gh = githubkit_client(w.emu, AppAuthStrategy(w.app["id"], w.app["pem"]))
    with pytest.raises(expected) as raised:
        gh.rest.apps.create_installation_access_token(w.installation_id)
    assert type(raised.value) is expected
    assert gh.rest.apps.create_installation_access_token(w.installation_id).status_code == 201


def test_the_primary_limit_is_enforced_until_the_reset() -> None:
    clock = FakeClock()
    with GitHubEmulator(clock=clock) as emu:
        emu.create_org("acme")
        emu.create_repo("acme", "api")
        app = emu.create_app("limited-app", owner="acme", permissions={"contents": "read"})
        emu.set_rate_limit(3)
        key = serialization.load_pem_private_key(app["pem"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)

        def get_app() -> httpx.Response:
            now = int(clock().timestamp())
            bearer = sign({"iss": app["id"], "iat": now - 60, "exp": now + 540}, key)
            return httpx.get(f"{emu.url}/app", headers={"Authorization": f"Bearer {bearer}"})

        answers = [get_app() for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 403]
        assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
        limited = answers[3]
        assert (
            limited.json()["message"] == f"API rate limit exceeded for integration ID {app['id']}."
        )
        assert (
            limited.headers["x-ratelimit-remaining"] == "0" and "retry-after" not in limited.headers
        )
        reset = int(limited.headers["x-ratelimit-reset"])
        # /rate_limit itself is never limited and tells the same reset.
        status = httpx.get(f"{emu.url}/rate_limit").json()
        assert status["rate"]["limit"] == 60  # anonymous: counted, not enforced by default
        clock.advance(timedelta(seconds=reset - int(clock().timestamp()) - 1))
        assert get_app().status_code == 403
        clock.advance(timedelta(seconds=1))
        assert get_app().status_code == 200


def test_control_api_builds_a_world_over_http() -> None:
    """The demo runs the emulator as a subprocess: everything must work over HTTP."""
    with GitHubEmulator() as emu, httpx.Client(base_url=emu.url) as http:
        assert http.post("/_emulator/orgs", json={"login": "acme"}).status_code == 201
        assert (
            http.post("/_emulator/repos", json={"owner": "acme", "name": "api"}).status_code == 201
        )
        pull = http.post(
            "/_emulator/pulls", json={"owner": "acme", "repo": "api", "title": "T", "head": "f"}
        )
        assert pull.json()["number"] == 1
        issue = http.post("/_emulator/issues", json={"owner": "acme", "repo": "api", "title": "I"})
        assert issue.json() == {"number": 2}
        code = http.post(
            "/_emulator/manifests?owner=acme",
            json={
                "name": "Ops Agent",
                "url": "https://example.com",
                "default_permissions": {"issues": "write"},
            },
        ).json()["code"]
        app = http.post(f"/app-manifests/{code}/conversions").json()
        assert app["owner"]["login"] == "acme"
        direct = http.post(
            "/_emulator/apps", json={"name": "Direct", "permissions": {"issues": "read"}}
        )
        assert direct.status_code == 201 and "pem" in direct.json()
        installation = http.post(
            "/_emulator/installations",
            json={"app_id": app["id"], "account": "acme", "repositories": ["acme/api"]},
        ).json()
        assert installation["repository_selection"] == "selected"
        widened = http.patch(
            f"/_emulator/installations/{installation['id']}",
            json={"permissions": {"issues": "write", "contents": "write"}, "repositories": None},
        ).json()
        assert widened["repository_selection"] == "all"

        now = int(time.time())
        credential = sign({"iss": app["id"], "iat": now - 60, "exp": now + 540}, app["pem"])
        token = http.post(
            f"/app/installations/{installation['id']}/access_tokens",
            headers={"Authorization": f"Bearer {credential}"},
        ).json()["token"]
        http.post(
            "/repos/acme/api/issues/1/comments", headers=token_auth(token), json={"body": "x"}
        )

        state = http.get("/_emulator/state").json()
        assert state["comments"][0]["user"] == "ops-agent[bot]"
        assert state["installations"][0]["permissions"]["contents"] == "write"
        leaked = json.dumps(state)
        assert (
            token not in leaked
            and "PRIVATE KEY" not in leaked
            and app["client_secret"] not in leaked
        )

        assert (
            http.post("/_emulator/faults", json={"status": 500, "method": "POST"}).status_code
            == 201
        )
        assert http.get("/rate_limit").status_code == 200  # a GET does not match
        assert http.delete("/_emulator/faults").status_code == 204
        assert http.post("/app-manifests/x/conversions").status_code == 404  # fault was reset

        log = http.get("/_emulator/requests").json()
        assert log["counts"]["POST /repos/{owner}/{repo}/issues/{issue_number}/comments"] == 1
        assert log["mutating"] == 4 and log["total"] == 5
        assert emu.count_requests(mutating=True) == 4
        assert http.delete("/_emulator/requests").status_code == 204
        assert emu.requests == []

        assert (
            http.post("/_emulator/repos", json={"owner": "nobody", "name": "x"}).status_code == 404
        )
        assert http.post("/_emulator/repos", json={"owner": "acme"}).status_code == 400
        assert http.post("/_emulator/manifests", json={"url": "https://x"}).status_code == 422
        assert http.get("/_emulator/nope").status_code == 404


def test_protocol_errors_are_github_shaped(world: World) -> None:
    auth = token_auth(world.mint())
    malformed = world.http.post(
        "/repos/acme/api/issues/1/comments", headers=auth, content=b"{not json"
    )
    assert (malformed.status_code, malformed.json()["message"]) == (400, "Problems parsing JSON")
    array = world.http.post("/repos/acme/api/issues/1/comments", headers=auth, json=[1])
    assert array.status_code == 400
    wrong_type = world.http.post(
        "/repos/acme/api/issues/1/comments", headers=auth, json={"body": 5}
    )
    assert wrong_type.status_code == 422 and "Invalid request" in wrong_type.json()["message"]
    for response in (world.http.get("/no/such/path"), world.http.put("/app")):
        assert response.status_code == 404
        assert response.json()["message"] == "Not Found"
        assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert world.http.get("/repos/acme/api").json()["message"] == "Requires authentication"


def test_list_endpoints_paginate_with_link_headers(world: World) -> None:
    world.fresh_installation()
    first = world.http.get("/app/installations?per_page=1", headers=world.as_app())
    assert len(first.json()) == 1 and 'rel="next"' in first.headers["link"]
    second = world.http.get("/app/installations?per_page=1&page=2", headers=world.as_app())
    assert len(second.json()) == 1 and 'rel="prev"' in second.headers["link"]
    assert first.json()[0]["id"] != second.json()[0]["id"]


def test_rate_limit_headers_count_per_identity(world: World) -> None:
    token = world.mint()
    first = world.http.get("/repos/acme/api", headers=token_auth(token))
    second = world.http.get("/repos/acme/api", headers=token_auth(token))
    assert int(first.headers["x-ratelimit-remaining"]) - 1 == int(
        second.headers["x-ratelimit-remaining"]
    )
    assert first.headers["x-ratelimit-limit"] == "5000"
    assert world.http.get("/rate_limit").json()["rate"]["limit"] == 60  # anonymous


def test_runs_as_a_process_and_keeps_state_across_restarts(tmp_path: Path) -> None:
    state_file = tmp_path / "github.json"
    command = [
        sys.executable,
        "-m",
        "testing.github",
        "--state-file",
        str(state_file),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def run() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    def stop(process: subprocess.Popen[str]) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0  # it saves its state first

    process, url = run()
    try:
        assert url.startswith("http://127.0.0.1:")
        httpx.post(f"{url}/_emulator/orgs", json={"login": "acme"}).raise_for_status()
        app = httpx.post(f"{url}/_emulator/apps", json={"name": "Kept", "owner": "acme"}).json()
    finally:
        stop(process)
    assert state_file.stat().st_mode & 0o777 == 0o600  # it holds private keys

    process, url = run()
    try:
        logins = {a["login"] for a in httpx.get(f"{url}/_emulator/state").json()["accounts"]}
        assert "acme" in logins
        now = int(time.time())
        credential = sign({"iss": app["id"], "iat": now - 60, "exp": now + 540}, app["pem"])
        response = httpx.get(f"{url}/app", headers={"Authorization": f"Bearer {credential}"})
        assert response.status_code == 200
    finally:
        stop(process)
