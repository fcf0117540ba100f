"""A local Jira Cloud emulator: a real HTTP server for tests and the demo.

One process serves what agentctl talks to on three hosts in the real world:

* the Jira site, ``https://{site}.atlassian.net`` -> ``{url}/rest/api/3/...``;
* the API gateway for scoped tokens,
  ``https://api.atlassian.com/ex/jira/{cloudId}`` -> ``{url}/ex/jira/{cloudId}/rest/api/3/...``;
* the organisation admin APIs, ``https://api.atlassian.com/admin/...`` and
  ``/users/...`` -> the same paths under ``{url}``.

A control API under ``/_emulator/`` (JSON, no auth) and the same operations as
Python methods on :class:`JiraEmulator` build the world (accounts, groups,
projects, roles, grants, issues, tokens, admin API keys), inject faults (5xx,
429 with ``Retry-After``) and expose a request log, so tests can count the
mutating calls a command made.

Run it as a process for the demo::

    python -m testing.jira --port 0 --state-file jira.json

It prints its base URL on the first line of stdout and serves until SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import secrets
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from agentctl.clock import Clock
from testing.jira.rendering import Render
from testing.jira.routes import ROUTES, Call, JiraApi, Reply, Route, Via
from testing.jira.world import (
    DEFAULT_ADMIN_EMAIL,
    AccountType,
    ApiError,
    World,
    wall_clock,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ApiError", "JiraEmulator", "main"]

_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status >= 400)
_JSON = "application/json;charset=UTF-8"


def _rule_path(template: str) -> str:
    """``/role/{id}`` -> werkzeug's ``/role/<int:id>``: numeric ids only match numbers."""

    def convert(match: re.Match[str]) -> str:
        name = match.group(1)
        numeric = name in ("id", "schemeId", "permissionId")
        return f"<int:{name}>" if numeric else f"<{name}>"

    return re.sub(r"\{(\w+)\}", convert, template)


@dataclass
class _Fault:
    status: int
    remaining: int
    path_prefix: str
    method: str | None
    retry_after: int | None

    def matches(self, method: str, paths: Iterable[str]) -> bool:
        return self.method in (None, method) and any(p.startswith(self.path_prefix) for p in paths)


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        """Silenced: the emulator keeps its own request log (``/_emulator/requests``)."""


def _error_body(error: ApiError) -> dict[str, Any]:
    if error.gateway:
        return {"code": error.status, "message": "; ".join(error.messages)}
    return Render.errors(error.messages, error.field_errors)


class JiraEmulator:
    """A Jira Cloud + Atlassian admin API emulator on 127.0.0.1, in a thread.

    Use as a context manager (``with JiraEmulator() as jira: jira.url``) or
    call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = wall_clock,
        state_file: Path | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._clock = clock
        self._state_file = state_file
        self._lock = threading.RLock()
        self._world = World(clock)
        if state_file is not None and state_file.exists():
            self._world.load(json.loads(state_file.read_text()))
        self._api = JiraApi(self._world)
        self._faults: list[_Fault] = []
        self._requests: list[dict[str, Any]] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        rules: list[Rule] = []
        for route in ROUTES:
            path = _rule_path(route.template)
            if route.is_jira:
                rules.append(Rule(path, methods=[route.method], endpoint=(route, "site")))
                rules.append(
                    Rule(
                        "/ex/jira/<cloudId>" + path,
                        methods=[route.method],
                        endpoint=(route, "gateway"),
                    )
                )
            else:
                via = "admin" if route.auth == "admin" else "site"
                rules.append(Rule(path, methods=[route.method], endpoint=(route, via)))
        self._api_map = Map(rules)
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
            raise RuntimeError("JiraEmulator already started")
        server = make_server(
            self._host, self._port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._server = server
        self._base_url = f"http://{self._host}:{server.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="jira-emulator",
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

    @property
    def url(self) -> str:
        """The site's base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._base_url is None:
            raise RuntimeError("JiraEmulator not started")
        return self._base_url

    @property
    def gateway_url(self) -> str:
        """The base URL scoped tokens use: ``{url}/ex/jira/{cloudId}``."""
        return f"{self.url}/ex/jira/{self._world.cloud_id}"

    @property
    def cloud_id(self) -> str:
        return self._world.cloud_id

    @property
    def org_id(self) -> str:
        return self._world.org_id

    @property
    def directory_id(self) -> str:
        return self._world.directory_id

    @property
    def admin_email(self) -> str:
        return DEFAULT_ADMIN_EMAIL

    @property
    def admin_account_id(self) -> str:
        with self._lock:
            account = self._world.account_by_email(DEFAULT_ADMIN_EMAIL)
            assert account is not None
            return account.account_id

    def _save(self) -> None:
        """Write the world to the state file (token digests only, never tokens)."""
        if self._state_file is None:
            return
        partial = self._state_file.with_name(self._state_file.name + ".tmp")
        with self._lock:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(self._world.dump(), handle, indent=1)
            os.replace(partial, self._state_file)

    # -- Python control API -------------------------------------------------

    def create_account(
        self,
        display_name: str,
        email: str,
        *,
        account_type: AccountType = "atlassian",
        groups: Iterable[str] = (),
    ) -> str:
        """Create an account (``atlassian``: a person; ``app``: a service account).

        Returns its account id. ``groups`` are group names to add it to.
        """
        with self._lock:
            account = self._world.create_account(display_name, email, account_type)
            for name in groups:
                self._world.add_to_group(self._world.group_named(name), account)
            self._save()
            return account.account_id

    def create_service_account(self, name: str) -> tuple[str, str]:
        """An Atlassian service account, as an org admin creates one.

        Returns ``(account id, email)``; the email is in the
        ``serviceaccount.atlassian.com`` domain, like Atlassian's.
        """
        email = f"{name}@serviceaccount.atlassian.com"
        return self.create_account(name, email, account_type="app"), email

    def create_group(self, name: str, *, members: Iterable[str] = ()) -> str:
        """Create a group; ``members`` are account ids. Returns the group id."""
        with self._lock:
            group = self._world.create_group(name)
            for account_id in members:
                self._world.add_to_group(group, self._world.account(account_id))
            self._save()
            return group.group_id

    def add_to_group(self, group: str, account_id: str) -> None:
        with self._lock:
            self._world.add_to_group(
                self._world.group_named(group), self._world.account(account_id)
            )
            self._save()

    def create_scheme(self, name: str, *, copy_default: bool = True) -> int:
        """A permission scheme, by default with the default scheme's grants."""
        with self._lock:
            scheme = self._world.create_scheme(name)
            if copy_default:
                for grant in self._world.grants_of(self._world.default_scheme_id):
                    self._world.add_grant(
                        scheme, grant.permission, grant.holder_type, grant.holder_parameter
                    )
            self._save()
            return scheme.id

    def add_grant(
        self,
        permission: str,
        holder_type: str,
        parameter: str | None = None,
        *,
        scheme_id: int | None = None,
    ) -> int:
        """Grant ``permission`` in a scheme (default: the default scheme).

        ``parameter``: a role id, group *name*, or account id, per holder type.
        """
        with self._lock:
            scheme = self._world.schemes[scheme_id or self._world.default_scheme_id]
            if holder_type == "group" and parameter is not None:
                parameter = self._world.group_named(parameter).group_id
            grant = self._world.add_grant(scheme, permission, holder_type, parameter)
            self._save()
            return grant.id

    def create_project(
        self,
        key: str,
        name: str | None = None,
        *,
        lead: str | None = None,
        scheme_id: int | None = None,
    ) -> int:
        """Create a project (lead: an account id, default the site admin). Returns its id."""
        with self._lock:
            lead_account = self._world.account(lead or self.admin_account_id)
            scheme = self._world.schemes[scheme_id] if scheme_id else None
            project = self._world.create_project(key, name or key, lead=lead_account, scheme=scheme)
            self._save()
            return project.id

    def add_role_actor(
        self, project: str, role: str | int, *, user: str | None = None, group: str | None = None
    ) -> None:
        """Make an account (id) or group (name) an actor of a role (id or name) in a project."""
        with self._lock:
            found = self._world.project(project)
            if found is None:
                raise ApiError(404, f"No project could be found with key '{project}'.")
            role_record = (
                self._world.roles.get(role)
                if isinstance(role, int)
                else next((r for r in self._world.roles.values() if r.name == role), None)
            )
            if role_record is None:
                raise ApiError(404, f"No project role {role!r}.")
            groups = [self._world.group_named(group).group_id] if group else []
            self._world.add_actors(found, role_record, [user] if user else [], groups)
            self._save()

    def create_issue(self, project: str, summary: str, *, description: str | None = None) -> str:
        """Create an issue (reported by the site admin); returns its key."""
        with self._lock:
            found = self._world.project(project)
            if found is None:
                raise ApiError(404, f"No project could be found with key '{project}'.")
            document = None
            if description is not None:
                document = {
                    "type": "doc",
                    "version": 1,
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": description}]}
                    ],
                }
            issue = self._world.create_issue(
                found,
                summary,
                description=document,
                reporter=self._world.account(self.admin_account_id),
            )
            self._save()
            return self._world.issue_key(issue)

    def create_token(
        self,
        account_id: str,
        *,
        label: str = "token",
        scopes: Iterable[str] | None = None,
        expires: datetime | None = None,
        days: int = 365,
    ) -> tuple[str, str]:
        """An API token for an account, as its owner or an org admin creates one.

        ``scopes`` None makes a classic token (site URL); a list makes a scoped
        token (gateway only). Returns ``(token id, token value)``.
        """
        with self._lock:
            value, token = self._world.create_token(
                self._world.account(account_id),
                label=label,
                scopes=scopes,
                expires=expires,
                lifetime=timedelta(days=days),
            )
            self._save()
            return token.id, value

    def admin_token(self) -> str:
        """A new classic API token of the seeded site admin."""
        return self.create_token(self.admin_account_id, label="admin")[1]

    def create_admin_key(
        self, *, scopes: Iterable[str] | None = None, days: int = 7
    ) -> tuple[str, str]:
        """An organisation admin API key; ``scopes`` None means every admin scope."""
        with self._lock:
            value, key = self._world.create_admin_key(scopes=scopes, lifetime=timedelta(days=days))
            self._save()
            return key.id, value

    def set_account_state(
        self, account_id: str, *, active: bool | None = None, suspended: bool | None = None
    ) -> None:
        with self._lock:
            account = self._world.account(account_id)
            if active is not None:
                account.active = active
            if suspended is not None:
                account.suspended = suspended
            self._save()

    def state(self) -> dict[str, Any]:
        """The world without secrets: who is where, what is granted, token metadata."""
        with self._lock:
            world = self._world
            return {
                "org_id": world.org_id,
                "cloud_id": world.cloud_id,
                "directory_id": world.directory_id,
                "accounts": {
                    a.account_id: {
                        "displayName": a.display_name,
                        "email": a.email,
                        "accountType": a.account_type,
                        "active": a.active,
                        "suspended": a.suspended,
                        "groups": [g.name for g in world.groups_of(a)],
                    }
                    for a in world.accounts.values()
                },
                "groups": {
                    g.name: {"groupId": g.group_id, "members": list(g.members)}
                    for g in world.groups.values()
                },
                "roles": {str(r.id): r.name for r in world.roles.values()},
                "projects": {
                    p.key: {
                        "id": p.id,
                        "scheme_id": p.scheme_id,
                        "actors": {
                            world.roles[int(role_id)].name: actors
                            for role_id, actors in p.actors.items()
                            if int(role_id) in world.roles
                        },
                    }
                    for p in world.projects.values()
                },
                "grants": [dataclasses.asdict(g) for g in world.grants.values()],
                "issues": {
                    world.issue_key(i): {
                        "status": world.status(i.status_id).name,
                        "summary": i.summary,
                        "comments": sum(1 for c in world.comments.values() if c.issue_id == i.id),
                    }
                    for i in world.issues.values()
                },
                "tokens": [
                    {
                        "id": t.id,
                        "accountId": t.account_id,
                        "label": t.label,
                        "scopes": t.scopes,
                        "created": t.created.isoformat(),
                        "expires": t.expires.isoformat(),
                        "revoked": t.revoked.isoformat() if t.revoked else None,
                    }
                    for t in world.tokens.values()
                ],
            }

    def inject_fault(
        self,
        status: int,
        *,
        count: int = 1,
        path_prefix: str = "/",
        method: str | None = None,
        retry_after: int | None = 1,
    ) -> None:
        """Answer the next ``count`` matching API requests with ``status``.

        ``path_prefix`` matches the request path, or the path without the
        gateway prefix (so ``/rest/api/3/issue`` matches both). A 429 carries
        ``Retry-After`` (unless ``retry_after`` is None) and ``X-RateLimit-Reset``.
        """
        if status not in _ERROR_STATUSES or count < 1:
            raise ApiError(400, "status must be a 4xx/5xx HTTP status and count at least 1")
        with self._lock:
            self._faults.append(
                _Fault(status, count, path_prefix, method.upper() if method else None, retry_after)
            )

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """API requests served so far (control API excluded), oldest first.

        Each: ``method, path, route`` (the template or None), ``operation``
        (the description's operationId), ``via`` (site/gateway/admin),
        ``status, identity, fault, time``.
        """
        with self._lock:
            return [dict(r) for r in self._requests]

    def count_requests(
        self,
        *,
        method: str | None = None,
        operation: str | None = None,
        mutating: bool = False,
        identity: str | None = None,
    ) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r["method"] == method.upper())
            and (operation is None or r["operation"] == operation)
            and (not mutating or r["method"] in _MUTATING_METHODS)
            and (identity is None or r["identity"] == identity)
        )

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- WSGI ---------------------------------------------------------------

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_emulator/"):
            reply = self._serve_control(request)
            headers: dict[str, str] = {}
        else:
            reply, headers = self._serve_api(request)
        headers.update(reply.headers)
        if reply.body is None:
            response = Response(status=reply.status, headers=headers)
        else:
            response = Response(
                json.dumps(reply.body), status=reply.status, headers=headers, content_type=_JSON
            )
        if request.method in _MUTATING_METHODS:
            self._save()
        return response(environ, start_response)

    def _serve_api(self, request: Request) -> tuple[Reply, dict[str, str]]:
        request_id = secrets.token_hex(8)
        headers = {"X-AREQUESTID": request_id, "atl-traceid": secrets.token_hex(16)}
        route: Route | None = None
        via: Via = "site"
        call: Call | None = None
        with self._lock:
            args: Mapping[str, Any] = {}
            try:
                (route, via), args = self._api_map.bind_to_environ(request.environ).match()
            except HTTPException:
                reply = Reply(404, Render.errors(["Not Found"], {}))
            inner_path = re.sub(r"^/ex/jira/[^/]+", "", request.path)
            fault = next(
                (f for f in self._faults if f.matches(request.method, (request.path, inner_path))),
                None,
            )
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                reply = self._fault_reply(fault, gateway=via == "admin")
            elif route is not None:
                if via == "gateway" and args.get("cloudId") != self._world.cloud_id:
                    reply = Reply(404, {"code": 404, "message": "Cloud id not found"})
                else:
                    base = self.url + (
                        f"/ex/jira/{self._world.cloud_id}" if via == "gateway" else ""
                    )
                    call = Call(request, args, via, Render(self._world, base))
                    try:
                        self._api.authenticate(route, call)
                        reply = route.handler(self._api, call)
                    except ApiError as error:
                        reply = Reply(error.status, _error_body(error), dict(error.headers))
            self._requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "route": route.template if route else None,
                    "operation": route.operation_id if route else None,
                    "via": via,
                    "status": reply.status,
                    "identity": call.identity() if call is not None else "anonymous",
                    "fault": fault is not None,
                    "time": self._clock().isoformat(),
                }
            )
        return reply, headers

    def _fault_reply(self, fault: _Fault, *, gateway: bool) -> Reply:
        headers: dict[str, str] = {}
        if fault.status == 429:
            message = "Rate limit exceeded."
            wait = fault.retry_after if fault.retry_after is not None else 60
            reset = self._clock() + timedelta(seconds=wait)
            headers["X-RateLimit-Reset"] = reset.strftime("%Y-%m-%dT%H:%MZ")
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
        else:
            message = HTTPStatus(fault.status).phrase
        error = ApiError(fault.status, message, gateway=gateway, headers=headers)
        return Reply(fault.status, _error_body(error), headers)

    # -- HTTP control API ---------------------------------------------------

    def _control_routes(
        self,
    ) -> Iterator[tuple[str, str, Callable[[Request, Mapping[str, Any]], Reply]]]:
        yield "GET", "/_emulator/info", self._c_info
        yield "POST", "/_emulator/accounts", self._c_create_account
        yield "POST", "/_emulator/service-accounts", self._c_create_service_account
        yield "PATCH", "/_emulator/accounts/<account_id>", self._c_update_account
        yield "POST", "/_emulator/groups", self._c_create_group
        yield "POST", "/_emulator/groups/<name>/members", self._c_add_member
        yield "POST", "/_emulator/schemes", self._c_create_scheme
        yield "POST", "/_emulator/grants", self._c_add_grant
        yield "POST", "/_emulator/projects", self._c_create_project
        yield "POST", "/_emulator/role-actors", self._c_add_role_actor
        yield "POST", "/_emulator/issues", self._c_create_issue
        yield "POST", "/_emulator/tokens", self._c_create_token
        yield "POST", "/_emulator/admin-keys", self._c_create_admin_key
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
            return Reply(error.code or 404, Render.errors([error.name], {}))
        except ApiError as error:
            return Reply(error.status, _error_body(error))
        except (KeyError, TypeError, ValueError) as error:
            # A missing or mistyped argument in a control request.
            return Reply(400, Render.errors([f"Bad control request: {error!r}"], {}))

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.get_data(cache=True)
        body = json.loads(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body

    def _c_info(self, request: Request, args: Mapping[str, Any]) -> Reply:
        return Reply(
            200,
            {
                "url": self.url,
                "gateway_url": self.gateway_url,
                "cloudId": self.cloud_id,
                "orgId": self.org_id,
                "directoryId": self.directory_id,
                "adminEmail": self.admin_email,
                "adminAccountId": self.admin_account_id,
            },
        )

    def _c_create_account(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        account_id = self.create_account(
            body["displayName"],
            body["email"],
            account_type=body.get("accountType", "atlassian"),
            groups=body.get("groups", ()),
        )
        return Reply(201, {"accountId": account_id})

    def _c_create_service_account(self, request: Request, args: Mapping[str, Any]) -> Reply:
        account_id, email = self.create_service_account(self._body(request)["name"])
        return Reply(201, {"accountId": account_id, "email": email})

    def _c_update_account(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        self.set_account_state(
            args["account_id"], active=body.get("active"), suspended=body.get("suspended")
        )
        return Reply(204)

    def _c_create_group(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        group_id = self.create_group(body["name"], members=body.get("members", ()))
        return Reply(201, {"groupId": group_id, "name": body["name"]})

    def _c_add_member(self, request: Request, args: Mapping[str, Any]) -> Reply:
        self.add_to_group(args["name"], self._body(request)["accountId"])
        return Reply(204)

    def _c_create_scheme(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        scheme_id = self.create_scheme(body["name"], copy_default=body.get("copyDefault", True))
        return Reply(201, {"id": scheme_id})

    def _c_add_grant(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        grant_id = self.add_grant(
            body["permission"],
            body["holderType"],
            body.get("parameter"),
            scheme_id=body.get("schemeId"),
        )
        return Reply(201, {"id": grant_id})

    def _c_create_project(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        project_id = self.create_project(
            body["key"], body.get("name"), lead=body.get("lead"), scheme_id=body.get("schemeId")
        )
        return Reply(201, {"id": project_id, "key": body["key"]})

    def _c_add_role_actor(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        self.add_role_actor(
            body["project"], body["role"], user=body.get("accountId"), group=body.get("group")
        )
        return Reply(204)

    def _c_create_issue(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        key = self.create_issue(
            body["project"], body["summary"], description=body.get("description")
        )
        return Reply(201, {"key": key})

    def _c_create_token(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        expires = body.get("expires")
        token_id, value = self.create_token(
            body["accountId"],
            label=body.get("label", "token"),
            scopes=body.get("scopes"),
            expires=datetime.fromisoformat(expires) if expires else None,
            days=body.get("days", 365),
        )
        return Reply(201, {"id": token_id, "token": value})

    def _c_create_admin_key(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        key_id, value = self.create_admin_key(scopes=body.get("scopes"), days=body.get("days", 7))
        return Reply(201, {"id": key_id, "key": value})

    def _c_state(self, request: Request, args: Mapping[str, Any]) -> Reply:
        return Reply(200, self.state())

    def _c_inject_fault(self, request: Request, args: Mapping[str, Any]) -> Reply:
        body = self._body(request)
        self.inject_fault(
            body["status"],
            count=body.get("count", 1),
            path_prefix=body.get("path_prefix", "/"),
            method=body.get("method"),
            retry_after=body.get("retry_after", 1),
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
        prog="python -m testing.jira",
        description="Serve a local Jira Cloud + Atlassian admin API emulator until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="load the world from this JSON file if it exists; save it after each change",
    )
    options = parser.parse_args(argv)
    emulator = JiraEmulator(host=options.host, port=options.port, state_file=options.state_file)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(emulator.start(), flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
