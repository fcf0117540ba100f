"""The emulator as a server: :class:`GitHubEmulator`, its control API, and ``main``.

It serves the API routes on 127.0.0.1 in a background thread, serialises
access to the world with one lock, injects faults (5xx, primary/secondary rate
limits), keeps a request log, and offers a control API under ``/_emulator/``
(JSON, no auth) with the same operations as its Python methods.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from agentctl.clock import Clock
from testing.github.errors import MSG_NOT_FOUND, ApiError, Reply
from testing.github.rendering import Renderer
from testing.github.routes import ROUTES, Call, GitHubApi, Route, json_object, rule_path
from testing.github.validation import check_permission_levels
from testing.github.world import (
    DEFAULT_USER,
    TOKEN_FORMATS,
    RateLimits,
    TokenFormat,
    World,
    iso,
    new_private_key,
)

if typing.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status >= 400)


def _wall_clock() -> datetime:
    # Deliberately not agentctl.clock.system_clock: tests pin agentctl's
    # notion of "today", while JWTs are signed with the real time, so the
    # emulator (like GitHub) must judge them against the real time.
    return datetime.now(UTC)


RateLimitKind = Literal["primary", "secondary"]

# GitHub's wording (docs.github.com, "Rate limits for the REST API").
MSG_PRIMARY_LIMIT = "API rate limit exceeded for {who}."
MSG_SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID {request_id}."
)


@dataclass
class _Fault:
    status: int
    remaining: int
    path_prefix: str
    method: str | None
    rate_limit: RateLimitKind | None
    # Seconds GitHub asks a client to wait (`retry-after`), or None: no header.
    retry_after: int | None
    # Seconds until `x-ratelimit-reset`, sent with `x-ratelimit-remaining: 0`;
    # None (secondary limits only): the real counters, remaining not 0.
    reset_in: int | None
    # Carry the request out, then answer with the fault: a lost response.
    after: bool = False
    # No answer at all: the connection is dropped (a reset on the way).
    reset: bool = False

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and self.method in (None, method)


# The "status" of a fault that answers nothing: the connection is dropped.
_RESET = 0

# github.com's page an organization's App manifest is POSTed to (not the REST API).
_NEW_APP_PAGE = re.compile(r"/organizations/([A-Za-z0-9-]{1,39})/settings/apps/new")


def _who(identity: str) -> str:
    kind, _, ident = identity.partition(":")
    names = {"installation": "installation ID", "app": "integration ID"}
    return f"{names[kind]} {ident}" if kind in names else "127.0.0.1"


def _rate_headers(status: Mapping[str, int]) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(status["limit"]),
        "x-ratelimit-remaining": str(status["remaining"]),
        "x-ratelimit-reset": str(status["reset"]),
        "x-ratelimit-used": str(status["used"]),
        "x-ratelimit-resource": "core",
    }


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        """Silenced: the emulator keeps its own request log (``/_emulator/requests``)."""


class GitHubEmulator:
    """A GitHub REST API emulator serving on 127.0.0.1 in a background thread.

    Use as a context manager (``with GitHubEmulator() as emu: emu.url``) or
    call :meth:`start` / :meth:`stop`. The world-building methods return the
    same JSON objects the API would, so tests can read ids and URLs from them.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = _wall_clock,
        state_file: Path | None = None,
        token_format: TokenFormat = "stateless",
        token_lifetime: timedelta | None = None,
    ) -> None:
        """``token_format``: what installation tokens look like by default,
        ``stateless`` (github.com since April 2026) or ``opaque`` (the 40-character form).
        ``token_lifetime``: how long installation tokens live (GitHub: one hour)."""
        self._host = host
        self._port = port
        self._clock = clock
        self._state_file = state_file
        self._lock = threading.RLock()
        self._world = World(clock)
        self._world.token_format = token_format
        if token_lifetime is not None:
            self._world.token_lifetime = token_lifetime
        if state_file is not None and state_file.exists():
            self._world.load(json.loads(state_file.read_text()))
        self._faults: list[_Fault] = []
        self._requests: list[dict[str, Any]] = []
        # Called with each API request's log entry once it was carried out (or
        # faulted) and before its answer is sent, outside the lock: a test can
        # SIGKILL the client at exactly "GitHub did it, the client never heard".
        self.after_request: Callable[[dict[str, Any]], None] | None = None
        self._rate_limits = RateLimits(clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._api_map = Map(
            [Rule(rule_path(r.template), methods=[r.method], endpoint=r) for r in ROUTES]
        )
        self._control_map = Map(
            [
                Rule(path, methods=[method], endpoint=handler)
                for method, path, handler in self._control_routes()
            ]
        )

    # -- lifecycle --------------------------------------------------------

    def start(self) -> str:
        """Bind, serve in a daemon thread, and return the base URL."""
        if self._server is not None:
            raise RuntimeError("GitHubEmulator already started")
        server = make_server(
            self._host, self._port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._server = server
        self._base_url = f"http://{self._host}:{server.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="github-emulator",
            daemon=True,
        )
        self._thread.start()
        return self._base_url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None
        self._save()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def generate_app_key(self, app_id: int) -> str:
        """What "Generate a private key" on the App's settings page does: a new
        key GitHub accepts beside the others; returns its PEM (the download)."""
        private_key = new_private_key()
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        public = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self._lock:
            self._world.apps[app_id].more_public_key_pems.append(public.decode())
        return pem

    def delete_app_key(self, app_id: int, pem: str) -> None:
        """Delete the App key whose private half is ``pem`` (the settings page's
        "Delete"); GitHub refuses to delete an App's only key."""
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        public = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        with self._lock:
            app = self._world.apps[app_id]
            keys = app.public_key_pems()
            if public not in keys or len(keys) == 1:
                raise ValueError("not a key of this App, or its only key")
            keys.remove(public)
            app.public_key_pem, app.more_public_key_pems = keys[0], keys[1:]

    def set_token_lifetime(self, lifetime: timedelta) -> None:
        """Installation tokens minted from now on live ``lifetime`` (GitHub: one hour)."""
        with self._lock:
            self._world.token_lifetime = lifetime

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._base_url is None:
            raise RuntimeError("GitHubEmulator not started")
        return self._base_url

    def _render(self) -> Renderer:
        return Renderer(self._world, self.url)

    def _save(self) -> None:
        """Write the world to the state file, private to its owner (it holds keys)."""
        if self._state_file is None:
            return
        partial = self._state_file.with_name(self._state_file.name + ".tmp")
        # Under the lock: a consistent world, and one writer of the temporary file.
        with self._lock:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(self._world.dump(), handle, indent=1)
            os.replace(partial, self._state_file)

    # -- Python control API -------------------------------------------------

    def create_org(self, login: str) -> dict[str, Any]:
        """Create (or return) an organization; returns its simple-user object."""
        with self._lock:
            return self._render().user(self._world.create_account(login, "Organization"))

    def create_user(self, login: str) -> dict[str, Any]:
        with self._lock:
            return self._render().user(self._world.create_account(login, "User"))

    def create_user_token(self, login: str) -> str:
        """A person's own GitHub token (``gho_...``) for the user ``login``."""
        with self._lock:
            token = self._world.create_user_token(login)
            self._save()
            return token

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = False,
        description: str | None = None,
        default_branch: str = "main",
    ) -> dict[str, Any]:
        """Create (or return) a repository; returns its full-repository object."""
        with self._lock:
            repo = self._world.create_repo(
                owner, name, private=private, description=description, default_branch=default_branch
            )
            return self._render().repo(repo, full=True)

    def create_issue(self, owner: str, repo: str, title: str, *, body: str | None = None) -> int:
        """Open an issue; returns its number."""
        with self._lock:
            return self._world.create_issue(self._world.repo(owner, repo), title, body=body).number

    def create_pull(
        self,
        owner: str,
        repo: str,
        title: str,
        *,
        head: str,
        base: str = "main",
        body: str | None = None,
        author: str = DEFAULT_USER,
    ) -> dict[str, Any]:
        """Open a pull request; returns its pull-request object."""
        with self._lock:
            target = self._world.repo(owner, repo)
            issue = self._world.create_issue(
                target, title, body=body, author=author, head=head, base=base
            )
            return self._render().pull(target, issue)

    def create_manifest_code(self, manifest: Mapping[str, Any], *, owner: str | None = None) -> str:
        """Stand in for a person submitting an App manifest on github.com.

        Returns the one-time ``code`` that ``POST /app-manifests/{code}/conversions``
        exchanges for the App. ``owner`` (default: the built-in user) owns the App.
        """
        with self._lock:
            return self._world.register_manifest(manifest, owner)

    def create_app(
        self,
        name: str,
        *,
        owner: str | None = None,
        permissions: Mapping[str, str] | None = None,
        events: Iterable[str] = (),
        description: str | None = None,
    ) -> dict[str, Any]:
        """Register an App directly; returns the App with ``pem``, ``client_secret``..."""
        permissions = dict(permissions or {})
        check_permission_levels(permissions)
        private_key = new_private_key()  # slow: generated before taking the lock
        with self._lock:
            app = self._world.create_app(
                name=name,
                owner=self._world.account(owner or DEFAULT_USER),
                permissions=permissions,
                events=events,
                description=description,
                external_url=None,
                webhook=True,
                private_key=private_key,
            )
            return self._render().app_credentials(app)

    def install_app(
        self,
        app_id: int,
        account: str,
        *,
        permissions: Mapping[str, str] | None = None,
        repositories: Iterable[str] | None = None,
        events: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Install an App on an account; returns the installation object.

        ``permissions`` default to the App's (they may differ, e.g. to model an
        installation with more than a contract wants); ``repositories`` are
        names (or ``owner/name``) for a "selected" installation, ``None`` for "all".
        """
        if permissions is not None:
            check_permission_levels(permissions)
        with self._lock:
            app = self._world.apps.get(app_id)
            if app is None:
                raise ApiError(404, f"No such App: {app_id}")
            installation = self._world.install(
                app,
                self._world.account(account),
                permissions=permissions,
                repositories=repositories,
                events=events,
            )
            return self._render().installation(installation)

    def update_installation(
        self,
        installation_id: int,
        *,
        permissions: Mapping[str, str] | None = None,
        repositories: Iterable[str] | Literal["unchanged"] | None = "unchanged",
    ) -> dict[str, Any]:
        """Change what an installation grants, as an org owner would on github.com."""
        if permissions is not None:
            check_permission_levels(permissions)
        with self._lock:
            installation = self._world.installations.get(installation_id)
            if installation is None:
                raise ApiError(404, f"No such installation: {installation_id}")
            if permissions is not None:
                installation.permissions = dict(permissions)
            if repositories != "unchanged":
                account = self._world.accounts[installation.account_id]
                self._world.select_repositories(installation, account, repositories)
            installation.updated_at = self._clock()
            return self._render().installation(installation)

    def state(self) -> dict[str, Any]:
        """The world without secrets: accounts, repos, Apps, installations, tokens, comments."""
        with self._lock:
            return self._world.summary()

    def inject_fault(
        self,
        status: int,
        *,
        count: int = 1,
        path_prefix: str = "/",
        method: str | None = None,
        rate_limit: RateLimitKind | bool | None = None,
        retry_after: int | None = None,
        reset_in: int | None = None,
        after: bool = False,
    ) -> None:
        """Answer the next ``count`` matching API requests with ``status``.

        ``rate_limit`` makes it one of GitHub's rate limits (status 403 or 429),
        with its documented message and headers:

        * ``"primary"``: ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``
          ``reset_in`` seconds away (default 60); ``retry-after`` only if given;
        * ``"secondary"``: the real ``x-ratelimit-*`` counters (remaining not 0),
          ``retry-after`` only if given; with ``reset_in``, remaining 0 until then.

        (``True`` is the older spelling: primary without ``retry_after``, else
        secondary.) ``after``: the request is carried out first and only its
        answer replaced — a response lost on the way back.
        """
        if status not in _ERROR_STATUSES or count < 1:
            raise ApiError(422, "status must be a 4xx/5xx HTTP status and count at least 1")
        kind: RateLimitKind | None
        if rate_limit is True:
            kind = "primary" if retry_after is None else "secondary"
        elif rate_limit in ("primary", "secondary"):
            kind = rate_limit
        elif rate_limit in (None, False):
            kind = None
        else:
            raise ApiError(422, "rate_limit is primary or secondary")
        if kind is not None and status not in (403, 429):
            raise ApiError(422, "a rate-limit fault has status 403 or 429")
        if kind == "primary" and reset_in is None:
            reset_in = 60
        with self._lock:
            self._faults.append(
                _Fault(
                    status,
                    count,
                    path_prefix,
                    method.upper() if method else None,
                    kind,
                    retry_after,
                    reset_in,
                    after,
                )
            )

    def inject_reset(
        self,
        *,
        count: int = 1,
        path_prefix: str = "/",
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Drop the connection of the next ``count`` matching API requests without
        answering: a connection reset. ``after``: the request is carried out first
        (GitHub did it; the answer was lost on the way back)."""
        if count < 1:
            raise ApiError(422, "count must be at least 1")
        with self._lock:
            self._faults.append(
                _Fault(
                    0,
                    count,
                    path_prefix,
                    method.upper() if method else None,
                    None,
                    None,
                    None,
                    after,
                    reset=True,
                )
            )

    def set_rate_limit(self, limit: int, *, anonymous: int | None = None) -> None:
        """The primary limit, per hour: ``limit`` requests for every App and
        installation (GitHub: 5000), ``anonymous`` for unauthenticated requests
        (GitHub: 60 per IP address; reported but not enforced unless set, so a
        long test does not trip on it). Past it: 403, remaining 0, until the reset."""
        with self._lock:
            self._rate_limits.authenticated_limit = limit
            if anonymous is not None:
                self._rate_limits.anonymous_limit = anonymous
                self._rate_limits.enforce_anonymous = True

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """API requests served so far (control API excluded), oldest first.

        Each: ``method, path, route`` (the description's template or None),
        ``status, identity, fault, request_id, time``.
        """
        with self._lock:
            return [dict(r) for r in self._requests]

    def count_requests(
        self, *, method: str | None = None, route: str | None = None, mutating: bool = False
    ) -> int:
        """How many API requests match; ``mutating`` counts POST/PUT/PATCH/DELETE only."""
        return sum(
            1
            for r in self.requests
            if (method is None or r["method"] == method.upper())
            and (route is None or r["route"] == route)
            and (not mutating or r["method"] in _MUTATING_METHODS)
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- WSGI ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        headers: dict[str, str] = {}
        if request.path.startswith("/_emulator/"):
            reply = self._serve_control(request)
        elif _NEW_APP_PAGE.fullmatch(request.path):
            reply = self._serve_new_app(request)
        else:
            reply, headers = self._serve_api(request)
        if reply.status == _RESET:
            if request.method in _MUTATING_METHODS:
                self._save()
            # Close both directions: the client sees the connection reset, no answer.
            with contextlib.suppress(OSError):
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            # werkzeug's server treats a ConnectionError as the client gone: quietly.
            raise ConnectionResetError("the emulator dropped this connection (a reset fault)")
        headers.update(reply.headers)
        if reply.body is None:
            response = Response(status=reply.status, headers=headers)
        else:
            response = Response(
                json.dumps(reply.body),
                status=reply.status,
                headers=headers,
                content_type="application/json; charset=utf-8",
            )
        if request.method in _MUTATING_METHODS:
            self._save()
        return response(environ, start_response)

    def _serve_api(self, request: Request) -> tuple[Reply, dict[str, str]]:
        request_id = ":".join(secrets.token_hex(n).upper() for n in (2, 2, 3, 3, 4))
        headers = {
            "x-github-request-id": request_id,
            "x-github-media-type": "github.v3; format=json",
            "x-github-api-version-selected": request.headers.get(
                "X-GitHub-Api-Version", "2022-11-28"
            ),
        }
        route: Route | None = None
        call: Call | None = None
        with self._lock:
            try:
                route, args = self._api_map.bind_to_environ(request.environ).match()
            except HTTPException:  # unknown path, or a method the path lacks: GitHub says 404
                reply = ApiError(404, MSG_NOT_FOUND).reply()
            fault = next((f for f in self._faults if f.matches(request.method, request.path)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
            if route is not None and (fault is None or fault.after):
                call = Call(request, args)
                try:
                    reply = self._dispatch(route, call)
                except ApiError as error:
                    reply = error.reply()
            identity = call.identity() if call is not None else self._identity(route, request)
            is_rate_limit_call = route is not None and route.template == "/rate_limit"
            limits = self._rate_limits
            status = limits.status(identity) if is_rate_limit_call else limits.spend(identity)
            headers.update(_rate_headers(status))
            if fault is not None:
                reply = self._fault_reply(fault, identity, request_id, status)
            self._requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "route": route.template if route else None,
                    "status": reply.status,
                    "identity": identity,
                    "fault": fault is not None,
                    "request_id": request_id,
                    "time": iso(self._clock()),
                }
            )
            entry = dict(self._requests[-1])
        hook = self.after_request
        if hook is not None:
            hook(entry)
        return reply, headers

    def _dispatch(self, route: Route, call: Call) -> Reply:
        api = GitHubApi(self._world, self._render(), self._rate_limits)
        api.authenticate(route.auth, call)
        if route.template != "/rate_limit":  # GitHub never limits the limit's own endpoint
            current = self._rate_limits.status(call.identity())
            if current["remaining"] == 0 and self._rate_limits.enforced(call.identity()):
                raise ApiError(
                    403,
                    MSG_PRIMARY_LIMIT.format(who=_who(call.identity())),
                    headers=_rate_headers(current),
                )
        return route.handler(api, call)

    def _identity(self, route: Route | None, request: Request) -> str:
        """Whose limit a request spends when it was not dispatched (a fault)."""
        if route is None:
            return "anonymous"
        call = Call(request, {})
        try:
            GitHubApi(self._world, self._render(), self._rate_limits).authenticate(route.auth, call)
        except (ApiError, KeyError):
            return "anonymous"
        return call.identity()

    def _fault_reply(
        self, fault: _Fault, identity: str, request_id: str, counters: Mapping[str, int]
    ) -> Reply:
        if fault.reset:
            return Reply(_RESET)
        if fault.rate_limit is None:
            return ApiError(fault.status, HTTPStatus(fault.status).phrase).reply()
        headers = _rate_headers(counters)
        if fault.reset_in is not None:
            now = int(self._clock().timestamp())
            headers.update(
                _rate_headers(
                    {
                        "limit": counters["limit"],
                        "remaining": 0,
                        "reset": now + fault.reset_in,
                        "used": counters["limit"],
                    }
                )
            )
        if fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        if fault.rate_limit == "primary":
            message = MSG_PRIMARY_LIMIT.format(who=_who(identity))
        else:
            message = MSG_SECONDARY_LIMIT.format(request_id=request_id)
        return ApiError(fault.status, message, headers=headers).reply()

    # -- github.com's "new App" page ------------------------------------------------

    def _serve_new_app(self, request: Request) -> Reply:
        """A person POSTing a manifest form and clicking "Create GitHub App": the App
        is owned by the organization in the path, and GitHub redirects to the
        manifest's ``redirect_url`` with ``?code=...&state=...`` (state as posted)."""
        if request.method != "POST":
            return ApiError(405, "Method Not Allowed").reply()
        match = _NEW_APP_PAGE.fullmatch(request.path)
        assert match is not None
        try:
            manifest = json.loads(request.form.get("manifest", ""))
        except ValueError:
            return ApiError(422, "The manifest is not JSON").reply()
        if not isinstance(manifest, dict) or not manifest.get("redirect_url"):
            return ApiError(422, "The manifest needs a redirect_url to send the code to").reply()
        try:
            code = self.create_manifest_code(manifest, owner=match.group(1))
        except ApiError as error:
            return error.reply()
        query = {"code": code}
        if "state" in request.args:
            query["state"] = request.args["state"]
        separator = "&" if "?" in manifest["redirect_url"] else "?"
        location = f"{manifest['redirect_url']}{separator}{urlencode(query)}"
        return Reply(302, None, {"Location": location})

    # -- HTTP control API ---------------------------------------------------

    def _control_routes(
        self,
    ) -> Iterator[tuple[str, str, Callable[[Request, Mapping[str, Any]], Reply]]]:
        yield "POST", "/_emulator/orgs", self._c_create_org
        yield "POST", "/_emulator/users", self._c_create_user
        yield "POST", "/_emulator/repos", self._c_create_repo
        yield "POST", "/_emulator/issues", self._c_create_issue
        yield "POST", "/_emulator/pulls", self._c_create_pull
        yield "POST", "/_emulator/manifests", self._c_create_manifest
        yield "POST", "/_emulator/apps", self._c_create_app
        yield "POST", "/_emulator/installations", self._c_install_app
        yield "PATCH", "/_emulator/installations/<int:installation_id>", self._c_update_installation
        yield "GET", "/_emulator/state", self._c_state
        yield "POST", "/_emulator/faults", self._c_inject_fault
        yield "DELETE", "/_emulator/faults", self._c_reset_faults
        yield "GET", "/_emulator/requests", self._c_requests
        yield "DELETE", "/_emulator/requests", self._c_clear_requests

    def _serve_control(self, request: Request) -> Reply:
        try:
            handler, args = self._control_map.bind_to_environ(request.environ).match()
            reply: Reply = handler(request, args)
            return reply
        except HTTPException as error:
            return ApiError(error.code or 404, error.name).reply()
        except ApiError as error:
            return error.reply()
        except (KeyError, TypeError) as error:
            # A missing or mistyped argument in a control request.
            return ApiError(400, f"Bad control request: {error}").reply()

    def _c_create_org(self, request: Request, args: Mapping[str, Any]) -> Reply:
        return Reply(201, self.create_org(json_object(request)["login"]))

    def _c_create_user(self, request: Request, args: Mapping[str, Any]) -> Reply:
        return Reply(201, self.create_user(json_object(request)["login"]))

    def _c_create_repo(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        return Reply(
            201,
            self.create_repo(
                body["owner"],
                body["name"],
                private=bool(body.get("private", False)),
                description=body.get("description"),
                default_branch=body.get("default_branch", "main"),
            ),
        )

    def _c_create_issue(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        number = self.create_issue(
            body["owner"], body["repo"], body["title"], body=body.get("body")
        )
        return Reply(201, {"number": number})

    def _c_create_pull(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        pull = self.create_pull(
            body["owner"],
            body["repo"],
            body["title"],
            head=body["head"],
            base=body.get("base", "main"),
            body=body.get("body"),
            author=body.get("author", DEFAULT_USER),
        )
        return Reply(201, pull)

    def _c_create_manifest(self, request: Request, args: Mapping[str, Any]) -> Reply:
        code = self.create_manifest_code(json_object(request), owner=request.args.get("owner"))
        return Reply(201, {"code": code})

    def _c_create_app(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        app = self.create_app(
            body["name"],
            owner=body.get("owner"),
            permissions=body.get("permissions"),
            events=body.get("events", ()),
            description=body.get("description"),
        )
        return Reply(201, app)

    def _c_install_app(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        installation = self.install_app(
            body["app_id"],
            body["account"],
            permissions=body.get("permissions"),
            repositories=body.get("repositories"),
            events=body.get("events"),
        )
        return Reply(201, installation)

    def _c_update_installation(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        installation = self.update_installation(
            args["installation_id"],
            permissions=body.get("permissions"),
            repositories=body.get("repositories", "unchanged"),
        )
        return Reply(200, installation)

    def _c_state(self, request: Request, args: Mapping[str, Any]) -> Reply:
        return Reply(200, self.state())

    def _c_inject_fault(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = json_object(request)
        self.inject_fault(
            body["status"],
            count=body.get("count", 1),
            path_prefix=body.get("path_prefix", "/"),
            method=body.get("method"),
            rate_limit=body.get("rate_limit"),
            retry_after=body.get("retry_after"),
            reset_in=body.get("reset_in"),
            after=bool(body.get("after", False)),
        )
        with self._lock:
            pending = [dataclasses.asdict(f) for f in self._faults]
        return Reply(201, {"faults": pending})

    def _c_reset_faults(self, request: Request, args: Mapping[str, Any]) -> Reply:
        self.reset_faults()
        return Reply(204)

    def _c_requests(self, request: Request, args: Mapping[str, Any]) -> Reply:
        records = self.requests
        counts = Counter(f"{r['method']} {r['route'] or r['path']}" for r in records)
        return Reply(
            200,
            {
                "requests": records,
                "counts": dict(counts),
                "total": len(records),
                "mutating": sum(1 for r in records if r["method"] in _MUTATING_METHODS),
            },
        )

    def _c_clear_requests(self, request: Request, args: Mapping[str, Any]) -> Reply:
        self.clear_requests()
        return Reply(204)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testing.github",
        description="Serve a local GitHub REST API emulator until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="load the world from this JSON file if it exists; save it after each change",
    )
    parser.add_argument(
        "--token-format",
        choices=TOKEN_FORMATS,
        default="stateless",
        help="installation tokens: stateless ghs_<app id>_<JWT> (github.com, default) or "
        "opaque 40-character ghs_ tokens (GitHub Enterprise Server)",
    )
    options = parser.parse_args(argv)
    emulator = GitHubEmulator(
        host=options.host,
        port=options.port,
        state_file=options.state_file,
        token_format=options.token_format,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(emulator.start(), flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
