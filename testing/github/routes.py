"""The GitHub REST API endpoints: authentication, permission checks, handlers, route table.

Each route names its path as the OpenAPI description spells it and the
credential it requires: an App JWT (checked with GitHub's rules), an
installation token (its permissions and repositories enforced exactly as
GitHub does: 404 for a repository the token cannot see, 403 "Resource not
accessible by integration" for a missing permission, 401 for a revoked or
expired token, 403 for a suspended installation), or none.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request

from testing.github.errors import (
    MSG_ARCHIVED,
    MSG_BAD_CREDENTIALS,
    MSG_INTEGRATION_NOT_FOUND,
    MSG_JWT_EXP,
    MSG_JWT_EXP_TOO_FAR,
    MSG_JWT_IAT,
    MSG_JWT_UNDECODABLE,
    MSG_NOT_ACCESSIBLE,
    MSG_NOT_FOUND,
    MSG_REQUIRES_AUTH,
    MSG_SUSPENDED,
    ApiError,
    Reply,
)
from testing.github.rendering import Renderer
from testing.github.validation import (
    ACCESS_TOKEN_FIELDS,
    COMMENT_FIELDS,
    PULL_UPDATE_FIELDS,
    REPO_UPDATE_FIELDS,
    check_permission_levels,
    validate,
)
from testing.github.world import (
    REPO_DEFAULTS,
    Account,
    App,
    Comment,
    Installation,
    Issue,
    RateLimits,
    Repository,
    Token,
    TokenFormat,
    World,
    grants,
    new_private_key,
)

# GitHub's rules for App JWTs: at most 10 minutes of validity, and an `iat`
# up to 60 seconds in the future is tolerated for clock drift.
_JWT_MAX_LIFETIME = 600
_JWT_CLOCK_SKEW = 60


Auth = Literal["app", "installation", "user", "none", "optional"]


def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "Problems parsing JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Body should be a JSON object")
    return body


@dataclass
class Call:
    """One authenticated API request, as handlers see it."""

    request: Request
    args: Mapping[str, Any]
    app: App | None = None
    token: Token | None = None
    user: Account | None = None  # a person's own token (auth "user")

    def json(self) -> dict[str, Any]:
        return json_object(self.request)

    def identity(self) -> str:
        """Whose rate limit this request spends: GitHub counts per installation or App."""
        if self.token is not None:
            return f"installation:{self.token.installation_id}"
        if self.app is not None:
            return f"app:{self.app.id}"
        if self.user is not None:
            return f"user:{self.user.id}"
        return "anonymous"

    def authenticated_app(self) -> App:
        assert self.app is not None, "route declared without app auth"
        return self.app

    def authenticated_token(self) -> Token:
        assert self.token is not None, "route declared without installation auth"
        return self.token


Handler = Callable[["GitHubApi", Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # the path as the OpenAPI description spells it
    auth: Auth
    handler: Handler


def rule_path(template: str) -> str:
    """``/app/installations/{installation_id}`` -> werkzeug's ``<int:installation_id>``."""

    def convert(match: re.Match[str]) -> str:
        name = match.group(1)
        numeric = name.endswith(("_id", "_number"))
        return f"<int:{name}>" if numeric else f"<{name}>"

    return re.sub(r"\{(\w+)\}", convert, template)


class GitHubApi:
    def __init__(self, world: World, render: Renderer, rate_limits: RateLimits) -> None:
        self.world = world
        self.render = render
        self.rate_limits = rate_limits

    # -- authentication ---------------------------------------------------

    def authenticate(self, auth: Auth, call: Call) -> None:
        header = call.request.headers.get("Authorization")
        if auth == "none":
            return
        if auth == "optional":
            if header is None:
                return
            credential = header.partition(" ")[2].strip()
            auth = "installation" if credential.startswith("ghs_") else "app"
        if header is None:
            raise ApiError(401, MSG_REQUIRES_AUTH)
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if auth == "user":
            call.user = self.verify_user_token(scheme, credential)
            return
        if auth == "app":
            if scheme.lower() != "bearer":
                raise ApiError(401, MSG_JWT_UNDECODABLE)
            call.app = self.verify_jwt(credential)
        else:
            call.token = self.verify_token(scheme, credential)
            installation = self.world.installations[call.token.installation_id]
            call.app = self.world.apps[installation.app_id]

    def verify_jwt(self, credential: str) -> App:
        """GitHub's App JWT rules: RS256, known issuer, valid signature, short-lived."""
        try:
            header = jwt.get_unverified_header(credential)
            claims = jwt.decode(credential, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise ApiError(401, MSG_JWT_UNDECODABLE) from None
        if header.get("alg") != "RS256":
            raise ApiError(401, MSG_JWT_UNDECODABLE)
        app = self.world.find_app(claims.get("iss"))
        if app is None:
            raise ApiError(401, MSG_INTEGRATION_NOT_FOUND)
        for pem in app.public_key_pems():  # any key of the App not deleted yet
            public_key = serialization.load_pem_public_key(pem.encode())
            assert isinstance(public_key, rsa.RSAPublicKey)
            try:
                jwt.decode(
                    credential,
                    public_key,
                    algorithms=["RS256"],
                    # Time claims are checked below against the emulator's clock.
                    options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
                )
                break
            except jwt.PyJWTError:
                continue
        else:
            raise ApiError(401, MSG_JWT_UNDECODABLE)
        iat, exp = claims.get("iat"), claims.get("exp")
        now = int(self.world.clock().timestamp())
        if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + _JWT_CLOCK_SKEW:
            raise ApiError(401, MSG_JWT_IAT)
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise ApiError(401, MSG_JWT_EXP)
        if exp - iat > _JWT_MAX_LIFETIME or exp > now + _JWT_MAX_LIFETIME + _JWT_CLOCK_SKEW:
            raise ApiError(401, MSG_JWT_EXP_TOO_FAR)
        return app

    def verify_token(self, scheme: str, credential: str) -> Token:
        if scheme.lower() not in ("token", "bearer"):
            raise ApiError(401, MSG_BAD_CREDENTIALS)
        token = self.world.live_token(credential)
        if token is None:
            raise ApiError(401, MSG_BAD_CREDENTIALS)
        if self.world.installations[token.installation_id].suspended_at is not None:
            raise ApiError(403, MSG_SUSPENDED)
        return token

    def verify_user_token(self, scheme: str, credential: str) -> Account:
        """A person's token. An installation token is valid but is no user:
        GitHub answers GET /user with 403 "Resource not accessible by integration"."""
        if scheme.lower() not in ("token", "bearer"):
            raise ApiError(401, MSG_BAD_CREDENTIALS)
        if self.world.live_token(credential) is not None:
            raise ApiError(403, MSG_NOT_ACCESSIBLE)
        account_id = self.world.user_tokens.get(credential)
        if account_id is None:
            raise ApiError(401, MSG_BAD_CREDENTIALS)
        return self.world.accounts[account_id]

    # -- helpers ----------------------------------------------------------

    def own_installation(self, call: Call) -> Installation:
        """The installation in the path, if it belongs to the authenticated App."""
        installation = self.world.installations.get(call.args["installation_id"])
        if installation is None or installation.app_id != call.authenticated_app().id:
            raise ApiError(404, MSG_NOT_FOUND)
        return installation

    def visible_repo(self, call: Call) -> Repository:
        """The repository in the path; 404 unless the token can see it, as on GitHub."""
        repo = self.world.find_repo(call.args["owner"], call.args["repo"])
        if repo is None or repo.id not in self.world.token_repo_ids(call.authenticated_token()):
            raise ApiError(404, MSG_NOT_FOUND)
        return repo

    @staticmethod
    def require(call: Call, *alternatives: tuple[str, str]) -> None:
        """403 unless the token holds one of ``(permission, level)``."""
        held = call.authenticated_token().permissions
        if any(grants(held, name, level) for name, level in alternatives):
            return
        accepted = ", ".join(f"{name}={level}" for name, level in alternatives)
        raise ApiError(403, MSG_NOT_ACCESSIBLE, headers={"x-accepted-github-permissions": accepted})

    def issue_or_404(self, repo: Repository, number: int) -> Issue:
        issue = self.world.find_issue(repo, number)
        if issue is None:
            raise ApiError(404, MSG_NOT_FOUND)
        return issue

    @staticmethod
    def paginate(call: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """GitHub's ``per_page``/``page`` paging with a ``Link`` header."""

        def int_arg(name: str, default: int, upper: int) -> int:
            raw = call.request.args.get(name, "")
            return min(max(int(raw), 1), upper) if raw.isdigit() else default

        per_page = int_arg("per_page", 30, 100)
        last = max(1, math.ceil(len(items) / per_page))
        page = int_arg("page", 1, sys.maxsize)

        def link(target: int, rel: str) -> str:
            query = {**call.request.args.to_dict(), "per_page": per_page, "page": target}
            return f'<{call.request.base_url}?{urlencode(query)}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(min(page - 1, last), "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    @staticmethod
    def since(call: Call) -> datetime | None:
        raw = call.request.args.get("since")
        if raw is None:
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ApiError(422, f"Invalid request.\n\n{raw!r} is not a valid timestamp.") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # -- App endpoints (JWT) ----------------------------------------------

    def get_app(self, call: Call) -> Reply:
        return Reply(200, self.render.app(call.authenticated_app(), with_installations_count=True))

    def get_app_by_slug(self, call: Call) -> Reply:
        """GET /apps/{app_slug}: a public App to anyone; a private one only to a
        signed-in request (a user or installation token, or an App's JWT) —
        anonymously it is 404, as if it did not exist. A bad credential is 401."""
        header = call.request.headers.get("Authorization")
        signed_in = False
        if header is not None:
            scheme, _, credential = header.partition(" ")
            credential = credential.strip()
            if scheme.lower() == "bearer" and credential.count(".") == 2:
                call.app = self.verify_jwt(credential)
            elif self.world.live_token(credential) is not None:
                call.token = self.verify_token(scheme, credential)
            else:
                call.user = self.verify_user_token(scheme, credential)
            signed_in = True
        app = self.world.find_app_by_slug(call.args["app_slug"])
        if app is None or not (app.public or signed_in):
            raise ApiError(404, MSG_NOT_FOUND)
        return Reply(200, self.render.app(app))

    def list_installations(self, call: Call) -> Reply:
        app = call.authenticated_app()
        since = self.since(call)
        found = [
            i
            for i in self.world.installations.values()
            if i.app_id == app.id and (since is None or i.updated_at >= since)
        ]
        page, headers = self.paginate(call, found)
        return Reply(200, [self.render.installation(i) for i in page], headers)

    def get_installation(self, call: Call) -> Reply:
        return Reply(200, self.render.installation(self.own_installation(call)))

    def delete_installation(self, call: Call) -> Reply:
        # Its tokens die with it: live_token() requires the installation to exist.
        del self.world.installations[self.own_installation(call).id]
        return Reply(204)

    def create_access_token(self, call: Call) -> Reply:
        installation = self.own_installation(call)
        if installation.suspended_at is not None:
            raise ApiError(403, MSG_SUSPENDED)
        body = call.json()
        validate(body, ACCESS_TOKEN_FIELDS)
        permissions = body.get("permissions") or {}
        check_permission_levels(permissions)
        # GitHub's per-request override of the token format; any other value
        # is ignored, as on GitHub.
        override = call.request.headers.get("X-GitHub-Stateless-S2S-Token", "").lower()
        chosen = {"enabled": "stateless", "disabled": "opaque"}.get(override)
        value, token = self.world.mint_token(
            installation,
            permissions=permissions,
            repository_names=body.get("repositories") or [],
            repository_ids=body.get("repository_ids") or [],
            token_format=cast(TokenFormat | None, chosen),
        )
        return Reply(201, self.render.token(value, token))

    def suspend_installation(self, call: Call) -> Reply:
        installation = self.own_installation(call)
        if installation.suspended_at is None:
            installation.suspended_at = installation.updated_at = self.world.clock()
            installation.suspended_by_id = call.authenticated_app().bot_id
        return Reply(204)

    def unsuspend_installation(self, call: Call) -> Reply:
        installation = self.own_installation(call)
        if installation.suspended_at is not None:
            installation.suspended_at = installation.suspended_by_id = None
            installation.updated_at = self.world.clock()
        return Reply(204)

    def get_org_installation(self, call: Call) -> Reply:
        org = self.world.find_account(call.args["org"])
        app = call.authenticated_app()
        found = None
        if org is not None and org.type == "Organization":
            found = next(
                (
                    i
                    for i in self.world.installations.values()
                    if i.app_id == app.id and i.account_id == org.id
                ),
                None,
            )
        if found is None:
            raise ApiError(404, MSG_NOT_FOUND)
        return Reply(200, self.render.installation(found))

    def get_repo_installation(self, call: Call) -> Reply:
        repo = self.world.find_repo(call.args["owner"], call.args["repo"])
        app = call.authenticated_app()
        found = None
        if repo is not None:
            found = next(
                (
                    i
                    for i in self.world.installations.values()
                    if i.app_id == app.id and repo.id in self.world.installation_repo_ids(i)
                ),
                None,
            )
        if found is None:
            raise ApiError(404, MSG_NOT_FOUND)
        return Reply(200, self.render.installation(found))

    # -- manifest flow (no auth: the code is the credential) --------------

    def convert_manifest(self, call: Call) -> Reply:
        entry = self.world.redeem_manifest(call.args["code"])
        if entry is None:
            raise ApiError(404, MSG_NOT_FOUND)
        manifest = entry.manifest
        hook = manifest.get("hook_attributes") or {}
        app = self.world.create_app(
            name=manifest["name"],
            owner=self.world.accounts[entry.owner_id],
            permissions=manifest.get("default_permissions") or {},
            events=manifest.get("default_events") or [],
            description=manifest.get("description"),
            external_url=manifest["url"],
            webhook=bool(hook.get("url")),
            private_key=new_private_key(),
            public=bool(manifest.get("public", False)),
        )
        return Reply(201, self.render.app_credentials(app))

    # -- installation-token endpoints -------------------------------------

    def revoke_token(self, call: Call) -> Reply:
        call.authenticated_token().revoked_at = self.world.clock()
        return Reply(204)

    def list_installation_repos(self, call: Call) -> Reply:
        token = call.authenticated_token()
        repos = [self.world.repos[r] for r in sorted(self.world.token_repo_ids(token))]
        page, headers = self.paginate(call, repos)
        body = {
            "total_count": len(repos),
            "repositories": [self.render.repo(r, token=token) for r in page],
            "repository_selection": token.repository_selection,
        }
        return Reply(200, body, headers)

    def get_repo(self, call: Call) -> Reply:
        # Any token that can see the repository can read its metadata.
        repo = self.visible_repo(call)
        return Reply(200, self.render.repo(repo, full=True, token=call.authenticated_token()))

    def update_repo(self, call: Call) -> Reply:
        repo = self.visible_repo(call)
        self.require(call, ("administration", "write"))
        body = call.json()
        validate(body, REPO_UPDATE_FIELDS)
        new_name = body.get("name")
        if new_name is not None and new_name.lower() != repo.name.lower():
            owner = self.world.accounts[repo.owner_id].login
            if self.world.find_repo(owner, new_name) is not None:
                raise ApiError(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "Repository",
                            "code": "custom",
                            "field": "name",
                            "message": "name already exists on this account",
                        }
                    ],
                )
        if new_name is not None:
            repo.name = new_name
        changes = {k: v for k, v in body.items() if k in REPO_UPDATE_FIELDS and k in REPO_DEFAULTS}
        # `private` and `visibility` are two views of one setting.
        if "visibility" in changes:
            changes["private"] = changes["visibility"] == "private"
        elif "private" in changes:
            changes["visibility"] = "private" if changes["private"] else "public"
        repo.settings.update(changes)
        repo.updated_at = self.world.clock()
        return Reply(200, self.render.repo(repo, full=True, token=call.authenticated_token()))

    def delete_repo(self, call: Call) -> Reply:
        repo = self.visible_repo(call)
        self.require(call, ("administration", "write"))
        self.world.delete_repo(repo)
        return Reply(204)

    def list_comments(self, call: Call) -> Reply:
        repo = self.visible_repo(call)
        self.require(call, ("issues", "read"), ("pull_requests", "read"))
        issue = self.issue_or_404(repo, call.args["issue_number"])
        if not issue.is_pull:
            self.require(call, ("issues", "read"))
        since = self.since(call)
        found = [
            c
            for c in sorted(self.world.comments.values(), key=lambda c: c.id)
            if c.repo_id == repo.id
            and c.issue_number == issue.number
            and (since is None or c.updated_at >= since)
        ]
        page, headers = self.paginate(call, found)
        return Reply(200, [self.render.comment(c) for c in page], headers)

    def create_comment(self, call: Call) -> Reply:
        repo = self.visible_repo(call)
        # Commenting on a pull request needs issues or pull_requests write;
        # on a plain issue, issues write.
        self.require(call, ("issues", "write"), ("pull_requests", "write"))
        issue = self.issue_or_404(repo, call.args["issue_number"])
        if not issue.is_pull:
            self.require(call, ("issues", "write"))
        if repo.settings["archived"]:
            raise ApiError(403, MSG_ARCHIVED)
        body = call.json()
        validate(body, COMMENT_FIELDS, required=("body",))
        app = call.authenticated_app()
        now = self.world.clock()
        # The author is the App's bot: GitHub's audit trail names the agent.
        comment = Comment(
            id=self.world.new_id(),
            repo_id=repo.id,
            issue_number=issue.number,
            body=body["body"],
            user_id=app.bot_id,
            app_id=app.id,
            created_at=now,
            updated_at=now,
        )
        self.world.comments[comment.id] = comment
        issue.updated_at = now
        return Reply(201, self.render.comment(comment))

    def get_pull(self, call: Call) -> Reply:
        repo = self.visible_repo(call)
        self.require(call, ("pull_requests", "read"))
        issue = self.issue_or_404(repo, call.args["pull_number"])
        if not issue.is_pull:
            raise ApiError(404, MSG_NOT_FOUND)
        return Reply(200, self.render.pull(repo, issue))

    def update_pull(self, call: Call) -> Reply:
        repo = self.visible_repo(call)
        self.require(call, ("pull_requests", "write"))
        issue = self.issue_or_404(repo, call.args["pull_number"])
        if not issue.is_pull:
            raise ApiError(404, MSG_NOT_FOUND)
        if repo.settings["archived"]:
            raise ApiError(403, MSG_ARCHIVED)
        body = call.json()
        validate(body, PULL_UPDATE_FIELDS)
        now = self.world.clock()
        issue.title = body.get("title", issue.title)
        issue.body = body.get("body", issue.body)
        issue.base_ref = body.get("base", issue.base_ref)
        issue.maintainer_can_modify = body.get("maintainer_can_modify", issue.maintainer_can_modify)
        if body.get("state", issue.state) != issue.state:
            issue.state = body["state"]
            issue.closed_at = now if issue.state == "closed" else None
        issue.updated_at = now
        return Reply(200, self.render.pull(repo, issue))

    def get_authenticated_user(self, call: Call) -> Reply:
        """GET /user: the public-user fields of the token's person (what
        agentctl reads to verify who is acting is ``login`` and ``type``)."""
        assert call.user is not None, "route declared without user auth"
        created = call.user.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            **self.render.user(call.user),
            "name": None,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": created,
            "updated_at": created,
        }
        return Reply(200, body)

    def rate_limit(self, call: Call) -> Reply:
        core = self.rate_limits.status(call.identity())

        def bucket(limit: int) -> dict[str, int]:
            return {"limit": limit, "remaining": limit, "reset": core["reset"], "used": 0}

        resources = {
            "core": core,
            "search": bucket(30),
            "graphql": bucket(5000),
            "integration_manifest": bucket(5000),
            "code_search": bucket(10),
        }
        return Reply(200, {"resources": resources, "rate": core})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/app", "app", GitHubApi.get_app),
    Route("GET", "/app/installations", "app", GitHubApi.list_installations),
    Route("GET", "/app/installations/{installation_id}", "app", GitHubApi.get_installation),
    Route("DELETE", "/app/installations/{installation_id}", "app", GitHubApi.delete_installation),
    Route(
        "POST",
        "/app/installations/{installation_id}/access_tokens",
        "app",
        GitHubApi.create_access_token,
    ),
    Route(
        "PUT",
        "/app/installations/{installation_id}/suspended",
        "app",
        GitHubApi.suspend_installation,
    ),
    Route(
        "DELETE",
        "/app/installations/{installation_id}/suspended",
        "app",
        GitHubApi.unsuspend_installation,
    ),
    Route("DELETE", "/installation/token", "installation", GitHubApi.revoke_token),
    Route("GET", "/installation/repositories", "installation", GitHubApi.list_installation_repos),
    Route("POST", "/app-manifests/{code}/conversions", "none", GitHubApi.convert_manifest),
    Route("GET", "/apps/{app_slug}", "none", GitHubApi.get_app_by_slug),
    Route("GET", "/orgs/{org}/installation", "app", GitHubApi.get_org_installation),
    Route("GET", "/repos/{owner}/{repo}/installation", "app", GitHubApi.get_repo_installation),
    Route("GET", "/repos/{owner}/{repo}", "installation", GitHubApi.get_repo),
    Route("PATCH", "/repos/{owner}/{repo}", "installation", GitHubApi.update_repo),
    Route("DELETE", "/repos/{owner}/{repo}", "installation", GitHubApi.delete_repo),
    Route(
        "GET",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "installation",
        GitHubApi.list_comments,
    ),
    Route(
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "installation",
        GitHubApi.create_comment,
    ),
    Route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", "installation", GitHubApi.get_pull),
    Route(
        "PATCH",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        "installation",
        GitHubApi.update_pull,
    ),
    Route("GET", "/rate_limit", "optional", GitHubApi.rate_limit),
    Route("GET", "/user", "user", GitHubApi.get_authenticated_user),
)
