"""``agentctl serve``: the contracts' kill switch over HTTP, for automation.

Endpoints (JSON in and out):

- ``POST /agents/<name>/disable`` — the contract's ``kill_switch`` path: kill
  exactly that agent (the same engine call as ``agentctl kill``). Optional body
  ``{"reason": "..."}``. 200 when every system confirmed the kill, 502 when
  the kill is incomplete (the body says what is left).
- ``GET /agents/<name>`` — the agent's recorded status.
- ``GET /healthz`` — 200 while the state store answers, else 503. No
  credentials, nothing about any agent.

Every request other than a health probe needs a caller's credential (see
:mod:`agentctl.serve_auth`) and is audited with that caller, refused or not:
a request that is malformed, unauthenticated, replayed, oversized, for an
unknown agent or for an unknown path changes nothing and leaves an audit
event. Floods meet a per-client rate limit before anything else runs; each
client's refusals are audited once per minute with their count, so a flood
cannot turn into a flood of database writes.

Only agents the state knows can be killed here (404 otherwise): an HTTP
caller never makes agentctl search the providers for a name it made up.

It speaks plain HTTP on loopback by default; put TLS in front with a reverse
proxy (README, "agentctl serve").
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentctl.errors import AgentctlError, DamagedStateRow, StateError
from agentctl.secrets import SecretLeakError, check_no_secrets
from agentctl.serve_auth import Authenticator
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from types import FrameType

    from agentctl.engine import Engine

_AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
_REASON_MAX = 500


@dataclass(frozen=True)
class ServeOptions:
    max_body_bytes: int = 4096
    # Per client address (before authentication) and per caller (after).
    requests_per_minute: int = 60
    burst: int = 20
    # How far a signed request's timestamp may be from the server's clock.
    signature_window_seconds: int = 300
    # How often a client's rate-limited refusals are audited (with their count).
    refusal_audit_interval_seconds: float = 60.0


class BodyTooLarge(Exception):
    pass


@dataclass
class _Bucket:
    tokens: float
    updated: float
    refused: int = 0
    audited_at: float | None = None


@dataclass
class RateLimiter:
    """A token bucket per key (client address, caller)."""

    per_minute: int
    burst: int
    monotonic: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        now = self.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
            bucket.tokens = min(
                float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_minute / 60
            )
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True
            bucket.refused += 1
            return False

    def refusals_to_audit(self, key: str, interval: float) -> int:
        """The refusals of ``key`` not yet audited, if it is time to audit them
        (the first refusal at once, then at most once per ``interval``)."""
        now = self.monotonic()
        with self._lock:
            bucket = self._buckets[key]
            if bucket.audited_at is not None and now - bucket.audited_at < interval:
                return 0
            count, bucket.refused, bucket.audited_at = bucket.refused, 0, now
            return count

    def pending_refusals(self) -> dict[str, int]:
        with self._lock:
            pending = {k: b.refused for k, b in self._buckets.items() if b.refused}
            for key in pending:
                self._buckets[key].refused = 0
            return pending


def _safe(text: str, limit: int = 200) -> str:
    """Client-supplied text as it may appear in the audit trail."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text[:limit])
    try:
        check_no_secrets(text, "request")
    except SecretLeakError:
        return "<withheld: looks like a credential>"
    return text


class ServeApp:
    """The ASGI application; build it with :func:`create_app`."""

    def __init__(
        self,
        engine: Engine,
        authenticator: Authenticator,
        options: ServeOptions,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        after_kill: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        # Anchors the audit head after each kill (a long-running server would
        # otherwise anchor only when it stops).
        self._after_kill = after_kill
        self.auth = authenticator
        self.options = options
        self.clients = RateLimiter(options.requests_per_minute, options.burst, monotonic)
        self.callers = RateLimiter(options.requests_per_minute, options.burst, monotonic)
        self._health: tuple[float, bool] | None = None
        self._monotonic = monotonic
        self.starlette = Starlette(
            routes=[
                Route("/healthz", self.health, methods=["GET"]),
                Route("/agents/{name}/disable", self.disable, methods=["POST"]),
                Route("/agents/{name}", self.status, methods=["GET"]),
            ],
            exception_handlers={HTTPException: self.http_error},
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(self.flush_refusals)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        if scope["path"] != "/healthz":
            client = _client(scope)
            if not self.clients.allow(f"client:{client}"):
                await self._rate_limited(scope, send, f"client:{client}", caller=None)
                return
            if _ambiguous_path(scope):
                # Dot segments and encoded separators mean one thing to a proxy's
                # path rule and another here: refuse rather than resolve them.
                await self._refuse_raw(scope, send, 404, "no such endpoint", "ambiguous path")
                return
            length = _content_length(scope)
            if length is not None and length > self.options.max_body_bytes:
                await self._refuse_raw(scope, send, 413, "body too large", f"{length} bytes")
                return
        await self.starlette(scope, receive, send)

    # -- endpoints -------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        now = self._monotonic()
        if self._health is None or now - self._health[0] > 2.0:
            self._health = (now, await run_in_threadpool(self._state_answers))
        ok = self._health[1]
        return JSONResponse(
            {"status": "ok" if ok else "state store unreachable"}, 200 if ok else 503
        )

    def _state_answers(self) -> bool:
        try:
            self.engine.state.schema_version()
        except AgentctlError:
            return False
        return True

    async def disable(self, request: Request) -> Response:
        checked = await self._checked(request, "serve.disable")
        if isinstance(checked, Response):
            return checked
        caller, name, body = checked
        reason = f"kill switch called by {caller}"
        if body:
            try:
                document = json.loads(body)
            except ValueError:
                return await self._refuse(request, "serve.disable", 400, "body is not JSON", caller)
            given = document.get("reason") if isinstance(document, dict) else None
            if not isinstance(document, dict) or set(document) - {"reason"}:
                return await self._refuse(
                    request, "serve.disable", 400, 'body must be {"reason": "..."}', caller
                )
            if given is not None:
                if not isinstance(given, str):
                    return await self._refuse(
                        request, "serve.disable", 400, "reason must be a string", caller
                    )
                reason = f"{reason}: {_safe(given, _REASON_MAX)}"
        try:
            report = await run_in_threadpool(
                functools.partial(self.engine.kill, name, reason, trigger=f"serve/{caller}")
            )
        except AgentctlError as exc:
            await self._audit(request, "serve.disable", name, "failure", caller, 500, exc.message)
            return JSONResponse({"error": exc.message}, 500)
        status = "killed" if report.ok else "kill-incomplete"
        code = 200 if report.ok else 502
        await self._audit(request, "serve.disable", name, status, caller, code, None)
        if self._after_kill is not None:
            await run_in_threadpool(self._after_kill)
        return JSONResponse(
            {
                "agent": name,
                "ok": report.ok,
                "status": status,
                "already": report.already,
                "providers": [
                    {
                        "provider": r.provider,
                        "ok": r.ok,
                        "detail": r.detail,
                        "remaining": r.remaining or None,
                    }
                    for r in report.results
                ],
            },
            code,
        )

    async def status(self, request: Request) -> Response:
        checked = await self._checked(request, "serve.status")
        if isinstance(checked, Response):
            return checked
        caller, name, _ = checked
        try:
            views = await run_in_threadpool(self.engine.status, name)
        except DamagedStateRow as exc:
            await self._audit(
                request, "serve.status", name, "unavailable", caller, 503, exc.message
            )
            return JSONResponse(
                {"error": f"the state's record of {name} is damaged ({exc.table}.{exc.column})"},
                503,
            )
        view = views[0]
        await self._audit(request, "serve.status", name, "success", caller, 200, None)
        return JSONResponse(
            {
                "name": view.name,
                "status": view.status,
                "status_reason": view.status_reason,
                "owner": view.owner,
                "expiry": view.expiry.isoformat() if view.expiry else None,
                "providers": list(view.providers),
            }
        )

    # -- the checks every agent request passes -------------------------------------

    async def _checked(self, request: Request, action: str) -> Response | tuple[str, str, bytes]:
        """(caller, agent name, body) of an authenticated request for a known
        agent, or the refusal (already audited)."""
        try:
            body = await _read_limited(request, self.options.max_body_bytes)
        except BodyTooLarge:
            return await self._refuse(request, action, 413, "body too large", None)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            outcome = await run_in_threadpool(
                self.auth.authenticate, request.method, request.url.path, headers, body
            )
        except AgentctlError as exc:
            await self._audit(request, action, "-", "unavailable", None, 503, exc.message)
            return JSONResponse({"error": "state or secret store unavailable"}, 503)
        if not outcome.ok:
            return await self._refuse(
                request, action, 401, outcome.refused or "unauthorized", None, answer="unauthorized"
            )
        caller = outcome.caller
        assert caller is not None
        if not self.callers.allow(f"caller:{caller}"):
            await self._note_rate_limited(request.scope, f"caller:{caller}", caller)
            return JSONResponse({"error": "rate limited"}, 429, headers={"Retry-After": "60"})
        name = str(request.path_params.get("name", ""))
        if not _AGENT_NAME.fullmatch(name):
            return await self._refuse(request, action, 404, "not an agent name", caller)
        try:
            known = await run_in_threadpool(self.engine.state.get_agent, name) is not None
        except DamagedStateRow:
            # Its row is there, only damaged: the kill goes on (it finds the
            # agent by name and tags); status answers what it can.
            known = True
        except StateError as exc:
            await self._audit(request, action, name, "unavailable", caller, 503, exc.message)
            return JSONResponse({"error": "state store unavailable"}, 503)
        if not known:
            return await self._refuse(request, action, 404, "no such agent", caller, target=name)
        return caller, name, body

    # -- refusals and audit -------------------------------------------------------------

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Unknown paths (404) and wrong methods (405): audited like any refusal."""
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        reason = "no such endpoint" if code == 404 else "method not allowed"
        return await self._refuse(request, "serve.request", code, reason, None)

    async def _refuse(
        self,
        request: Request,
        action: str,
        code: int,
        reason: str,
        caller: str | None,
        *,
        answer: str | None = None,
        target: str | None = None,
    ) -> Response:
        await self._audit(request, action, target or "-", "refused", caller, code, reason)
        return JSONResponse({"error": answer or reason}, code)

    async def _refuse_raw(
        self, scope: Scope, send: Send, code: int, reason: str, detail: str
    ) -> None:
        await run_in_threadpool(
            self._audit_sync,
            scope,
            "serve.request",
            "-",
            "refused",
            None,
            code,
            f"{reason} ({detail})",
        )
        await JSONResponse({"error": reason}, code)(scope, _no_body, send)

    async def _rate_limited(self, scope: Scope, send: Send, key: str, caller: str | None) -> None:
        await self._note_rate_limited(scope, key, caller)
        await JSONResponse({"error": "rate limited"}, 429, headers={"Retry-After": "60"})(
            scope, _no_body, send
        )

    async def _note_rate_limited(self, scope: Scope, key: str, caller: str | None) -> None:
        limiter = self.callers if key.startswith("caller:") else self.clients
        count = limiter.refusals_to_audit(key, self.options.refusal_audit_interval_seconds)
        if count:
            await run_in_threadpool(
                self._audit_sync,
                scope,
                "serve.rate-limited",
                "-",
                "refused",
                caller,
                429,
                f"{count} request(s) from {key} refused by the rate limit",
            )

    def flush_refusals(self) -> None:
        """At shutdown: audit the rate-limited refusals not yet audited."""
        for limiter in (self.clients, self.callers):
            for key, count in limiter.pending_refusals().items():
                self.engine.audit(
                    AuditDraft(
                        actor=key,
                        action="serve.rate-limited",
                        target="-",
                        result="refused",
                        trigger="serve",
                        detail={
                            "status": 429,
                            "reason": f"{count} request(s) refused by the rate limit",
                        },
                    ),
                )

    async def _audit(
        self,
        request: Request,
        action: str,
        target: str,
        result: str,
        caller: str | None,
        code: int,
        reason: str | None,
    ) -> None:
        await run_in_threadpool(
            self._audit_sync, request.scope, action, target, result, caller, code, reason
        )

    def _audit_sync(
        self,
        scope: Scope,
        action: str,
        target: str,
        result: str,
        caller: str | None,
        code: int,
        reason: str | None,
    ) -> None:
        detail: dict[str, Any] = {
            "caller": caller,
            "client": _client(scope),
            "method": scope.get("method"),
            "path": _safe(str(scope.get("path", ""))),
            "status": code,
        }
        if reason:
            detail["reason"] = _safe(reason, 300)
        self.engine.audit(
            AuditDraft(
                actor=f"serve-caller/{caller}" if caller else f"client/{_client(scope)}",
                action=action,
                target=_safe(target, 100),
                result=result,
                trigger="serve",
                detail=detail,
            ),
        )


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes whatever Content-Length said
    (a chunked body has none)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


_AMBIGUOUS = re.compile(rb"(^|/)\.{1,2}(/|$)|%2[ef]|%5c|\\|//", re.IGNORECASE)


def _ambiguous_path(scope: Scope) -> bool:
    raw = scope.get("raw_path") or str(scope.get("path", "")).encode()
    return _AMBIGUOUS.search(raw.split(b"?", 1)[0]) is not None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def create_app(
    engine: Engine,
    authenticator: Authenticator,
    options: ServeOptions | None = None,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    after_kill: Callable[[], None] | None = None,
) -> ASGIApp:
    return ServeApp(
        engine, authenticator, options or ServeOptions(), monotonic=monotonic, after_kill=after_kill
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free port), bound before uvicorn runs
    so the address printed is the one listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AgentctlError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another --port, or stop what is using it",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def uvicorn_server(app: ASGIApp, *, forwarded_allow_ips: str | None = None) -> Any:
    """A uvicorn server for ``app``; run it with ``.run(sockets=[bind(...)])``."""
    import uvicorn

    config = uvicorn.Config(
        app,
        # Behind a reverse proxy (TLS), the client address comes from
        # X-Forwarded-For, trusted only from these proxy addresses.
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_level="warning",
        access_log=False,
        # Bounded concurrency and header sizes: a flood of slow connections
        # gets 503s instead of the process's memory.
        limit_concurrency=200,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        lifespan="on",
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # A stop asked for by SIGTERM/SIGINT is a clean exit (0): uvicorn
            # would re-raise the signal once shut down, and a service manager
            # would report the kill switch as crashed.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    return Server(config)
