"""A local GitHub REST API emulator: a real HTTP server for tests and the demo.

It answers the GitHub App endpoints agentctl depends on (the "apps" subset of
GitHub's official OpenAPI description) the way api.github.com does, so that the
GitHub provider and githubkit can be exercised end to end without a network:

* App endpoints (``/app``, ``/app/...``, ``/orgs/{org}/installation``,
  ``/repos/{owner}/{repo}/installation``) require an RS256 JWT signed with the
  App's private key, checked with GitHub's rules.
* Resource endpoints require an installation access token (``ghs_...``) and
  enforce its permissions and repositories exactly as GitHub does: 404 for a
  repository the token cannot see, 403 "Resource not accessible by integration"
  for a missing permission, 401 for a revoked or expired token, 403 for a
  suspended installation.
* Every response body is complete: it validates against the response schema of
  the description, because clients such as githubkit validate what they parse.

A control API under ``/_emulator/`` (JSON, no auth) and the same operations as
Python methods on :class:`GitHubEmulator` build the world (accounts,
repositories, issues, pull requests, Apps, manifest codes, installations),
inject faults (5xx, primary/secondary rate limits) and expose a request log, so
tests can count the mutating calls a command made.

Run it as a process for the demo::

    python -m agentctl.testing.github_emulator --port 0 --state-file emu.json

It prints its base URL on the first line of stdout and serves until SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import math
import os
import re
import secrets
import signal
import string
import sys
import threading
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote, urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from agentctl.clock import Clock

if typing.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ApiError", "GitHubEmulator", "main"]

DOCUMENTATION_URL = "https://docs.github.com/rest"
#: The user every world starts with; it owns Apps and authors pull requests
#: unless a test names someone else.
DEFAULT_USER = "octocat"

# GitHub's rules for App JWTs: at most 10 minutes of validity, and an `iat`
# up to 60 seconds in the future is tolerated for clock drift.
_JWT_MAX_LIFETIME = 600
_JWT_CLOCK_SKEW = 60
_TOKEN_LIFETIME = timedelta(hours=1)
_MANIFEST_CODE_LIFETIME = timedelta(hours=1)
_TOKEN_ALPHABET = string.ascii_letters + string.digits
# Primary rate limits per hour: an installation or App gets 5000, anonymous 60.
_AUTHENTICATED_LIMIT = 5000
_ANONYMOUS_LIMIT = 60
_RATE_WINDOW = 3600
_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status >= 400)

# Permission levels are ordered: holding `write` implies `read`, `admin` implies both.
_LEVELS = {"read": 1, "write": 2, "admin": 3}

_MSG_NOT_FOUND = "Not Found"
_MSG_BAD_CREDENTIALS = "Bad credentials"
_MSG_REQUIRES_AUTH = "Requires authentication"
_MSG_JWT_UNDECODABLE = "A JSON web token could not be decoded"
_MSG_JWT_IAT = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
_MSG_JWT_EXP = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
_MSG_JWT_EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
_MSG_INTEGRATION_NOT_FOUND = "Integration not found"
_MSG_SUSPENDED = "This installation has been suspended"
_MSG_NOT_ACCESSIBLE = "Resource not accessible by integration"
_MSG_PERMISSIONS_NOT_GRANTED = "The permissions requested are not granted to this installation."
_MSG_REPOSITORIES_NOT_ACCESSIBLE = (
    "There is at least one repository that does not exist or is not accessible "
    "to the parent installation."
)
_MSG_ARCHIVED = "Repository was archived so is read-only."


def _wall_clock() -> datetime:
    # Deliberately not agentctl.clock.system_clock: AGENTCTL_NOW pins agentctl's
    # notion of "today", while JWTs are signed with the real time, so the
    # emulator (like GitHub) must judge them against the real time.
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def _fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _grants(held: Mapping[str, str], name: str, level: str) -> bool:
    """Whether permissions ``held`` include ``name`` at ``level`` or higher."""
    return _LEVELS.get(held.get(name, ""), 0) >= _LEVELS.get(level, math.inf)


# --------------------------------------------------------------------------
# The world: plain records that reference each other by id, so the whole
# world serialises to JSON for --state-file.
# --------------------------------------------------------------------------


@dataclass
class _Account:
    id: int
    login: str
    type: Literal["User", "Organization", "Bot"]
    created_at: datetime


# Repository settings that PATCH /repos/{owner}/{repo} may change, with
# GitHub's defaults for a new repository.
_REPO_DEFAULTS: dict[str, Any] = {
    "description": None,
    "homepage": None,
    "private": False,
    "visibility": "public",
    "has_issues": True,
    "has_projects": True,
    "has_wiki": True,
    "has_discussions": False,
    "has_pull_requests": True,
    "pull_request_creation_policy": "all",
    "is_template": False,
    "default_branch": "main",
    "archived": False,
    "allow_squash_merge": True,
    "allow_merge_commit": True,
    "allow_rebase_merge": True,
    "allow_auto_merge": False,
    "delete_branch_on_merge": False,
    "allow_update_branch": False,
    "use_squash_pr_title_as_default": False,
    "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
    "squash_merge_commit_message": "COMMIT_MESSAGES",
    "merge_commit_title": "MERGE_MESSAGE",
    "merge_commit_message": "PR_TITLE",
    "allow_forking": True,
    "web_commit_signoff_required": False,
}


@dataclass
class _Repository:
    id: int
    owner_id: int
    name: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime
    # Issues and pull requests share one number sequence per repository.
    next_number: int = 1


@dataclass
class _App:
    id: int
    slug: str
    name: str
    owner_id: int
    bot_id: int
    description: str | None
    external_url: str
    permissions: dict[str, str]
    events: list[str]
    client_id: str
    client_secret: str
    webhook_secret: str | None
    private_key_pem: str
    public_key_pem: str
    created_at: datetime
    updated_at: datetime


@dataclass
class _Installation:
    id: int
    app_id: int
    account_id: int
    permissions: dict[str, str]
    events: list[str]
    repository_selection: Literal["all", "selected"]
    repository_ids: list[int]
    created_at: datetime
    updated_at: datetime
    suspended_at: datetime | None = None
    suspended_by_id: int | None = None


@dataclass
class _Token:
    """An installation access token. Only its SHA-256 is kept, as GitHub does."""

    id: int
    digest: str
    installation_id: int
    permissions: dict[str, str]
    # None: every repository the installation can access, evaluated at use time.
    repository_ids: list[int] | None
    repository_selection: Literal["all", "selected"]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass
class _Issue:
    """An issue; a pull request is an issue with a head and a base, as on GitHub."""

    id: int
    repo_id: int
    number: int
    title: str
    body: str | None
    user_id: int
    state: Literal["open", "closed"]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    maintainer_can_modify: bool = False

    @property
    def is_pull(self) -> bool:
        return self.head_ref is not None


@dataclass
class _Comment:
    id: int
    repo_id: int
    issue_number: int
    body: str
    user_id: int
    app_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass
class _ManifestCode:
    code: str
    manifest: dict[str, Any]
    owner_id: int
    created_at: datetime


_Record = TypeVar("_Record")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def _decode_record(cls: type[_Record], data: Mapping[str, Any]) -> _Record:
    """Rebuild a record written by :func:`_encode`: only datetimes need help."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw = data[item.name]
        hint = hints[item.name]
        is_time = hint is datetime or (
            isinstance(hint, types.UnionType) and datetime in typing.get_args(hint)
        )
        values[item.name] = datetime.fromisoformat(raw) if is_time and raw is not None else raw
    return cls(**values)


class ApiError(Exception):
    """An error answer in GitHub's shape: ``{"message", "documentation_url", "status"}``.

    Raised while serving a request, and by :class:`GitHubEmulator`'s control
    methods when asked for something impossible (e.g. a repo of an unknown owner).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})

    def reply(self) -> _Reply:
        body: dict[str, Any] = {
            "message": self.message,
            "documentation_url": DOCUMENTATION_URL,
            "status": str(self.status),
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return _Reply(self.status, body, self.headers)


@dataclass
class _Reply:
    status: int
    body: Any = None  # None: no body (204)
    headers: dict[str, str] = field(default_factory=dict)


class _World:
    """All emulated GitHub state and the rules that change it.

    Not thread-safe by itself: :class:`GitHubEmulator` serialises access with
    one lock.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # Ids start at a random base so that two emulators in one process never
        # hand out the same App or installation id: clients cache JWTs and tokens
        # by those ids (githubkit's default cache is process-wide).
        self.next_id = 1000 + secrets.randbelow(1_000_000) * 1000
        self.accounts: dict[int, _Account] = {}
        self.repos: dict[int, _Repository] = {}
        self.apps: dict[int, _App] = {}
        self.installations: dict[int, _Installation] = {}
        self.tokens: dict[int, _Token] = {}
        self.issues: dict[int, _Issue] = {}
        self.comments: dict[int, _Comment] = {}
        self.manifest_codes: dict[str, _ManifestCode] = {}
        self.create_account(DEFAULT_USER, "User")

    # -- persistence ------------------------------------------------------

    _TABLES: typing.ClassVar[dict[str, type[Any]]] = {
        "accounts": _Account,
        "repos": _Repository,
        "apps": _App,
        "installations": _Installation,
        "tokens": _Token,
        "issues": _Issue,
        "comments": _Comment,
    }

    def dump(self) -> dict[str, Any]:
        """Everything, secrets included: only for the emulator's own state file."""
        data: dict[str, Any] = {"next_id": self.next_id}
        for name in self._TABLES:
            table: dict[int, Any] = getattr(self, name)
            data[name] = [_encode(dataclasses.asdict(row)) for row in table.values()]
        data["manifest_codes"] = [
            _encode(dataclasses.asdict(row)) for row in self.manifest_codes.values()
        ]
        return data

    def load(self, data: Mapping[str, Any]) -> None:
        self.next_id = int(data["next_id"])
        for name, cls in self._TABLES.items():
            rows = [_decode_record(cls, row) for row in data[name]]
            setattr(self, name, {row.id: row for row in rows})
        codes = [_decode_record(_ManifestCode, row) for row in data["manifest_codes"]]
        self.manifest_codes = {row.code: row for row in codes}

    # -- lookups ----------------------------------------------------------

    def new_id(self) -> int:
        ident = self.next_id
        self.next_id += 1
        return ident

    def find_account(self, login: str) -> _Account | None:
        wanted = login.lower()
        return next((a for a in self.accounts.values() if a.login.lower() == wanted), None)

    def account(self, login: str) -> _Account:
        found = self.find_account(login)
        if found is None or found.type == "Bot":
            raise ApiError(404, f"No such account: {login}")
        return found

    def find_repo(self, owner: str, name: str) -> _Repository | None:
        account = self.find_account(owner)
        if account is None:
            return None
        wanted = name.lower()
        return next(
            (
                r
                for r in self.repos.values()
                if r.owner_id == account.id and r.name.lower() == wanted
            ),
            None,
        )

    def repo(self, owner: str, name: str) -> _Repository:
        found = self.find_repo(owner, name)
        if found is None:
            raise ApiError(404, f"No such repository: {owner}/{name}")
        return found

    def full_name(self, repo: _Repository) -> str:
        return f"{self.accounts[repo.owner_id].login}/{repo.name}"

    def find_issue(self, repo: _Repository, number: int) -> _Issue | None:
        return next(
            (i for i in self.issues.values() if i.repo_id == repo.id and i.number == number),
            None,
        )

    def find_app(self, issuer: object) -> _App | None:
        """The App a JWT ``iss`` names: its id (int or digits) or its client id."""
        if isinstance(issuer, int) and not isinstance(issuer, bool):
            return self.apps.get(issuer)
        if isinstance(issuer, str):
            if issuer.isdigit():
                return self.apps.get(int(issuer))
            return next((a for a in self.apps.values() if a.client_id == issuer), None)
        return None

    def find_token(self, value: str) -> _Token | None:
        digest = _digest(value)
        return next((t for t in self.tokens.values() if t.digest == digest), None)

    def installation_repo_ids(self, installation: _Installation) -> set[int]:
        """Repositories an installation can reach now (``all`` follows new repos)."""
        owned = {r.id for r in self.repos.values() if r.owner_id == installation.account_id}
        if installation.repository_selection == "all":
            return owned
        return owned & set(installation.repository_ids)

    def token_repo_ids(self, token: _Token) -> set[int]:
        # A token never outlives the installation's own access to a repository.
        reachable = self.installation_repo_ids(self.installations[token.installation_id])
        if token.repository_ids is None:
            return reachable
        return reachable & set(token.repository_ids)

    def live_token(self, value: str) -> _Token | None:
        token = self.find_token(value)
        if (
            token is None
            or token.revoked_at is not None
            or self.clock() >= token.expires_at
            or token.installation_id not in self.installations
        ):
            return None
        return token

    # -- changes ----------------------------------------------------------

    def create_account(self, login: str, kind: Literal["User", "Organization"]) -> _Account:
        existing = self.find_account(login)
        if existing is not None:
            if existing.type != kind:
                raise ApiError(422, f"{login} already exists as {existing.type}")
            return existing
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})", login):
            raise ApiError(422, f"Invalid login: {login!r}")
        account = _Account(self.new_id(), login, kind, self.clock())
        self.accounts[account.id] = account
        return account

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = False,
        description: str | None = None,
        default_branch: str = "main",
    ) -> _Repository:
        account = self.account(owner)
        existing = self.find_repo(owner, name)
        if existing is not None:
            return existing
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
            raise ApiError(422, f"Invalid repository name: {name!r}")
        now = self.clock()
        settings = dict(_REPO_DEFAULTS)
        settings.update(
            private=private,
            visibility="private" if private else "public",
            description=description,
            default_branch=default_branch,
        )
        repo = _Repository(self.new_id(), account.id, name, settings, now, now, now)
        self.repos[repo.id] = repo
        return repo

    def create_issue(
        self,
        repo: _Repository,
        title: str,
        *,
        body: str | None = None,
        author: str = DEFAULT_USER,
        head: str | None = None,
        base: str | None = None,
    ) -> _Issue:
        user = self.account(author)
        now = self.clock()
        issue = _Issue(
            id=self.new_id(),
            repo_id=repo.id,
            number=repo.next_number,
            title=title,
            body=body,
            user_id=user.id,
            state="open",
            created_at=now,
            updated_at=now,
            head_ref=head,
            base_ref=base,
        )
        repo.next_number += 1
        self.issues[issue.id] = issue
        return issue

    def register_manifest(self, manifest: Mapping[str, Any], owner: str | None) -> str:
        _check_manifest(manifest)
        account = self.account(owner or DEFAULT_USER)
        code = secrets.token_hex(10)
        self.manifest_codes[code] = _ManifestCode(code, dict(manifest), account.id, self.clock())
        return code

    def redeem_manifest(self, code: str) -> _ManifestCode | None:
        """Codes are single-use and expire after an hour, like GitHub's."""
        entry = self.manifest_codes.pop(code, None)
        if entry is None or self.clock() - entry.created_at > _MANIFEST_CODE_LIFETIME:
            return None
        return entry

    def create_app(
        self,
        *,
        name: str,
        owner: _Account,
        permissions: Mapping[str, str],
        events: Iterable[str],
        description: str | None,
        external_url: str | None,
        webhook: bool,
        private_key: rsa.RSAPrivateKey,
    ) -> _App:
        slug = _slugify(name)
        if not slug or any(a.slug == slug for a in self.apps.values()):
            raise ApiError(422, "Validation Failed", errors=["Name has already been taken"])
        now = self.clock()
        app_id = self.new_id()
        bot = _Account(self.new_id(), f"{slug}[bot]", "Bot", now)
        self.accounts[bot.id] = bot
        private_pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # GitHub's "BEGIN RSA PRIVATE KEY"
            serialization.NoEncryption(),
        ).decode()
        public_pem = (
            private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        app = _App(
            id=app_id,
            slug=slug,
            name=name,
            owner_id=owner.id,
            bot_id=bot.id,
            description=description,
            external_url=external_url or f"https://example.com/{slug}",
            # Every GitHub App can read repository metadata.
            permissions={"metadata": "read", **permissions},
            events=list(events),
            client_id="Iv23" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(16)),
            client_secret=secrets.token_hex(20),
            webhook_secret=secrets.token_hex(20) if webhook else None,
            private_key_pem=private_pem,
            public_key_pem=public_pem,
            created_at=now,
            updated_at=now,
        )
        self.apps[app.id] = app
        return app

    def install(
        self,
        app: _App,
        account: _Account,
        *,
        permissions: Mapping[str, str] | None,
        repositories: Iterable[str] | None,
        events: Iterable[str] | None,
    ) -> _Installation:
        if any(
            i.app_id == app.id and i.account_id == account.id for i in self.installations.values()
        ):
            raise ApiError(422, f"App {app.slug} is already installed on {account.login}")
        now = self.clock()
        installation = _Installation(
            id=self.new_id(),
            app_id=app.id,
            account_id=account.id,
            permissions=dict(app.permissions if permissions is None else permissions),
            events=list(app.events if events is None else events),
            repository_selection="all",
            repository_ids=[],
            created_at=now,
            updated_at=now,
        )
        self.select_repositories(installation, account, repositories)
        self.installations[installation.id] = installation
        return installation

    def select_repositories(
        self, installation: _Installation, account: _Account, names: Iterable[str] | None
    ) -> None:
        """``None`` means all repositories of the account, now and future."""
        if names is None:
            installation.repository_selection = "all"
            installation.repository_ids = []
            return
        ids = []
        for name in names:
            owner, _, short = name.rpartition("/")
            if owner and owner.lower() != account.login.lower():
                raise ApiError(422, f"{name} is not owned by {account.login}")
            ids.append(self.repo(account.login, short).id)
        installation.repository_selection = "selected"
        installation.repository_ids = sorted(set(ids))

    def mint_token(
        self,
        installation: _Installation,
        *,
        permissions: Mapping[str, str],
        repository_names: Iterable[str],
        repository_ids: Iterable[int],
    ) -> tuple[str, _Token]:
        """Down-scope a new token; anything the installation lacks is a 422."""
        for name, level in permissions.items():
            if not _grants(installation.permissions, name, level):
                raise ApiError(422, _MSG_PERMISSIONS_NOT_GRANTED)
        reachable = self.installation_repo_ids(installation)
        owner = self.accounts[installation.account_id].login
        wanted: set[int] = set()
        for name in repository_names:
            repo = self.find_repo(owner, name)
            if repo is None or repo.id not in reachable:
                raise ApiError(422, _MSG_REPOSITORIES_NOT_ACCESSIBLE)
            wanted.add(repo.id)
        for repo_id in repository_ids:
            if repo_id not in reachable:
                raise ApiError(422, _MSG_REPOSITORIES_NOT_ACCESSIBLE)
            wanted.add(repo_id)
        value = "ghs_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
        now = self.clock()
        token = _Token(
            id=self.new_id(),
            digest=_digest(value),
            installation_id=installation.id,
            # An empty or absent `permissions` means "everything the installation has".
            permissions=dict(permissions or installation.permissions),
            repository_ids=sorted(wanted) if wanted else None,
            repository_selection="selected" if wanted else installation.repository_selection,
            created_at=now,
            expires_at=now + _TOKEN_LIFETIME,
        )
        self.tokens[token.id] = token
        return value, token

    def delete_repo(self, repo: _Repository) -> None:
        del self.repos[repo.id]
        self.issues = {k: v for k, v in self.issues.items() if v.repo_id != repo.id}
        self.comments = {k: v for k, v in self.comments.items() if v.repo_id != repo.id}
        for installation in self.installations.values():
            if repo.id in installation.repository_ids:
                installation.repository_ids.remove(repo.id)

    # -- the control API's view -------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The world without secrets (no keys, client secrets or token digests)."""
        login = {a.id: a.login for a in self.accounts.values()}
        names = {r.id: self.full_name(r) for r in self.repos.values()}
        return {
            "accounts": [
                {"id": a.id, "login": a.login, "type": a.type} for a in self.accounts.values()
            ],
            "repositories": [
                {
                    "id": r.id,
                    "full_name": names[r.id],
                    "private": r.settings["private"],
                    "archived": r.settings["archived"],
                }
                for r in self.repos.values()
            ],
            "apps": [
                {
                    "id": a.id,
                    "slug": a.slug,
                    "name": a.name,
                    "owner": login[a.owner_id],
                    "client_id": a.client_id,
                    "permissions": a.permissions,
                    "events": a.events,
                }
                for a in self.apps.values()
            ],
            "installations": [
                {
                    "id": i.id,
                    "app_id": i.app_id,
                    "account": login[i.account_id],
                    "permissions": i.permissions,
                    "events": i.events,
                    "repository_selection": i.repository_selection,
                    "repositories": sorted(names[r] for r in self.installation_repo_ids(i)),
                    "suspended_at": _iso(i.suspended_at) if i.suspended_at else None,
                }
                for i in self.installations.values()
            ],
            "tokens": [
                {
                    "id": t.id,
                    "installation_id": t.installation_id,
                    "permissions": t.permissions,
                    "repository_selection": t.repository_selection,
                    "repositories": None
                    if t.repository_ids is None
                    else sorted(names[r] for r in t.repository_ids if r in names),
                    "created_at": _iso(t.created_at),
                    "expires_at": _iso(t.expires_at),
                    "revoked": t.revoked_at is not None,
                }
                for t in self.tokens.values()
            ],
            "issues": [
                {
                    "repository": names[i.repo_id],
                    "number": i.number,
                    "title": i.title,
                    "state": i.state,
                    "pull_request": i.is_pull,
                }
                for i in self.issues.values()
            ],
            "comments": [
                {
                    "id": c.id,
                    "repository": names[c.repo_id],
                    "issue_number": c.issue_number,
                    "body": c.body,
                    "user": login[c.user_id],
                    "app_id": c.app_id,
                    "created_at": _iso(c.created_at),
                }
                for c in self.comments.values()
            ],
        }


# --------------------------------------------------------------------------
# Request-body validation, mirroring the description's request schemas.
# GitHub reports these as 422 "Invalid request." with a hint per field.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    kind: Literal["string", "boolean", "integer", "object", "strings", "integers"]
    enum: tuple[str, ...] = ()
    nullable: bool = False


def _kind_matches(kind: str, value: Any) -> bool:
    def is_int(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    match kind:
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "integer":
            return is_int(value)
        case "object":
            return isinstance(value, dict)
        case "strings":
            return isinstance(value, list) and all(isinstance(i, str) for i in value)
        case "integers":
            return isinstance(value, list) and all(is_int(i) for i in value)
    raise AssertionError(kind)


def _validate(
    body: Mapping[str, Any],
    fields: Mapping[str, _Field],
    required: Iterable[str] = (),
    *,
    status: int = 422,
) -> None:
    for name in required:
        if name not in body:
            raise ApiError(status, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
    for name, value in body.items():
        spec = fields.get(name)
        if spec is None or (value is None and spec.nullable):
            continue  # GitHub ignores unknown keys
        if not _kind_matches(spec.kind, value):
            raise ApiError(
                status,
                f"Invalid request.\n\nFor 'properties/{name}', {json.dumps(value)} "
                f"is not a{'n' if spec.kind in ('integer', 'object') else ''} {spec.kind}.",
            )
        if spec.enum and value not in spec.enum:
            raise ApiError(
                status,
                f"Invalid request.\n\nFor 'properties/{name}', {json.dumps(value)} "
                f"is not one of {json.dumps(list(spec.enum))}.",
            )


def _check_permission_levels(permissions: Mapping[str, Any], *, status: int = 422) -> None:
    for name, level in permissions.items():
        if level not in _LEVELS:
            raise ApiError(
                status,
                f"Invalid request.\n\nFor 'permissions/{name}', {json.dumps(level)} "
                f"is not one of {json.dumps(list(_LEVELS))}.",
            )


_ACCESS_TOKEN_FIELDS = {
    "repositories": _Field("strings"),
    "repository_ids": _Field("integers"),
    "permissions": _Field("object"),
}
_COMMENT_FIELDS = {"body": _Field("string")}
_PULL_UPDATE_FIELDS = {
    "title": _Field("string"),
    "body": _Field("string"),
    "state": _Field("string", ("open", "closed")),
    "base": _Field("string"),
    "maintainer_can_modify": _Field("boolean"),
}
_REPO_UPDATE_FIELDS = {
    "name": _Field("string"),
    "description": _Field("string"),
    "homepage": _Field("string"),
    "private": _Field("boolean"),
    "visibility": _Field("string", ("public", "private")),
    # Accepted for compatibility; the emulator does not model security features.
    "security_and_analysis": _Field("object", nullable=True),
    "has_issues": _Field("boolean"),
    "has_projects": _Field("boolean"),
    "has_wiki": _Field("boolean"),
    "has_pull_requests": _Field("boolean"),
    "pull_request_creation_policy": _Field("string", ("all", "collaborators_only")),
    "is_template": _Field("boolean"),
    "default_branch": _Field("string"),
    "allow_squash_merge": _Field("boolean"),
    "allow_merge_commit": _Field("boolean"),
    "allow_rebase_merge": _Field("boolean"),
    "allow_auto_merge": _Field("boolean"),
    "delete_branch_on_merge": _Field("boolean"),
    "allow_update_branch": _Field("boolean"),
    "use_squash_pr_title_as_default": _Field("boolean"),
    "squash_merge_commit_title": _Field("string", ("PR_TITLE", "COMMIT_OR_PR_TITLE")),
    "squash_merge_commit_message": _Field("string", ("PR_BODY", "COMMIT_MESSAGES", "BLANK")),
    "merge_commit_title": _Field("string", ("PR_TITLE", "MERGE_MESSAGE")),
    "merge_commit_message": _Field("string", ("PR_BODY", "PR_TITLE", "BLANK")),
    "archived": _Field("boolean"),
    "allow_forking": _Field("boolean"),
    "web_commit_signoff_required": _Field("boolean"),
}
# The GitHub App manifest (https://docs.github.com/apps/sharing-github-apps/
# registering-a-github-app-from-a-manifest). `url` is required by GitHub; `name`
# is required here because no browser form exists to ask for it.
_MANIFEST_FIELDS = {
    "name": _Field("string"),
    "url": _Field("string"),
    "description": _Field("string", nullable=True),
    "hook_attributes": _Field("object"),
    "default_permissions": _Field("object"),
    "default_events": _Field("strings"),
    "public": _Field("boolean"),
    "redirect_url": _Field("string"),
    "callback_urls": _Field("strings"),
    "setup_url": _Field("string"),
}


def _check_manifest(manifest: Mapping[str, Any]) -> None:
    _validate(manifest, _MANIFEST_FIELDS, required=("name", "url"))
    _check_permission_levels(manifest.get("default_permissions", {}))


# --------------------------------------------------------------------------
# Rendering: complete JSON objects as the description requires them.
# --------------------------------------------------------------------------


class _Render:
    def __init__(self, world: _World, base_url: str) -> None:
        self.world = world
        self.base = base_url
        self.host = base_url.split("://", 1)[1]

    def user(self, account: _Account) -> dict[str, Any]:
        login = quote(account.login)  # "[bot]" must be escaped to be a valid URI
        api = f"{self.base}/users/{login}"
        html = (
            f"{self.base}/apps/{login.removesuffix('%5Bbot%5D')}"
            if account.type == "Bot"
            else f"{self.base}/{login}"
        )
        return {
            "login": account.login,
            "id": account.id,
            "node_id": _node_id(account.type, account.id),
            "avatar_url": f"{self.base}/avatars/u/{account.id}",
            "gravatar_id": "",
            "url": api,
            "html_url": html,
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": account.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def repo(
        self,
        repo: _Repository,
        *,
        full: bool = False,
        token: _Token | None = None,
    ) -> dict[str, Any]:
        """A "repository" object, or with ``full`` a "full-repository" object."""
        owner = self.world.accounts[repo.owner_id]
        full_name = self.world.full_name(repo)
        api = f"{self.base}/repos/{full_name}"
        html = f"{self.base}/{full_name}"
        settings = repo.settings
        body: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": full_name,
            "owner": self.user(owner),
            "private": settings["private"],
            "html_url": html,
            "description": settings["description"],
            "fork": False,
            "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments",
            "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events",
            "forks_url": f"{api}/forks",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"git://{self.host}/{full_name}.git",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}",
            "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages",
            "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "releases_url": f"{api}/releases{{/id}}",
            "ssh_url": f"git@{self.host}:{full_name}.git",
            "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "tags_url": f"{api}/tags",
            "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "clone_url": f"{html}.git",
            "mirror_url": None,
            "hooks_url": f"{api}/hooks",
            "svn_url": html,
            "homepage": settings["homepage"],
            "language": None,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 0,
            "open_issues": self._open_issues(repo),
            "open_issues_count": self._open_issues(repo),
            "topics": [],
            "has_downloads": True,
            "has_pages": False,
            "disabled": False,
            "license": None,
            "pushed_at": _iso(repo.pushed_at),
            "created_at": _iso(repo.created_at),
            "updated_at": _iso(repo.updated_at),
        }
        body.update(settings)
        if full:
            body["network_count"] = 0
            body["subscribers_count"] = 0
            body["organization"] = self.user(owner) if owner.type == "Organization" else None
            body["custom_properties"] = {}
        if token is not None:
            # What this token may do here, in the collaborator vocabulary.
            body["permissions"] = {
                "admin": _grants(token.permissions, "administration", "write"),
                "maintain": False,
                "push": _grants(token.permissions, "contents", "write"),
                "triage": _grants(token.permissions, "issues", "write"),
                "pull": True,
            }
        return body

    def _open_issues(self, repo: _Repository) -> int:
        return sum(
            1 for i in self.world.issues.values() if i.repo_id == repo.id and i.state == "open"
        )

    def app(self, app: _App, *, with_installations_count: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": app.id,
            "slug": app.slug,
            "node_id": _node_id("Integration", app.id),
            "client_id": app.client_id,
            "owner": self.user(self.world.accounts[app.owner_id]),
            "name": app.name,
            "description": app.description,
            "external_url": app.external_url,
            "html_url": f"{self.base}/apps/{app.slug}",
            "created_at": _iso(app.created_at),
            "updated_at": _iso(app.updated_at),
            "permissions": app.permissions,
            "events": app.events,
        }
        if with_installations_count:
            body["installations_count"] = sum(
                1 for i in self.world.installations.values() if i.app_id == app.id
            )
        return body

    def app_credentials(self, app: _App) -> dict[str, Any]:
        """The manifest-conversion shape: the App plus its secrets, shown once."""
        return {
            **self.app(app),
            "client_secret": app.client_secret,
            "webhook_secret": app.webhook_secret,
            "pem": app.private_key_pem,
        }

    def installation(self, installation: _Installation) -> dict[str, Any]:
        account = self.world.accounts[installation.account_id]
        app = self.world.apps[installation.app_id]
        settings_path = (
            f"organizations/{account.login}/settings"
            if account.type == "Organization"
            else "settings"
        )
        suspended_by = (
            None
            if installation.suspended_by_id is None
            else self.user(self.world.accounts[installation.suspended_by_id])
        )
        return {
            "id": installation.id,
            "account": self.installation_account(account),
            "repository_selection": installation.repository_selection,
            "access_tokens_url": f"{self.base}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{self.base}/installation/repositories",
            "html_url": f"{self.base}/{settings_path}/installations/{installation.id}",
            "app_id": app.id,
            "client_id": app.client_id,
            "app_slug": app.slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": installation.permissions,
            "events": installation.events,
            "created_at": _iso(installation.created_at),
            "updated_at": _iso(installation.updated_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": suspended_by,
            "suspended_at": _iso(installation.suspended_at) if installation.suspended_at else None,
            "contact_email": None,
        }

    def installation_account(self, account: _Account) -> dict[str, Any]:
        """An installation's account: a simple user that also has Enterprise's fields.

        The description types ``account`` in ``GET /app/installations`` as
        ``allOf: [Simple User, Enterprise]`` (elsewhere ``anyOf``), so a plain
        user object would not validate. Not used for App owners, whose
        ``oneOf`` must match exactly one of the two.
        """
        return {
            **self.user(account),
            "name": account.login,
            "slug": account.login.lower(),
            "created_at": _iso(account.created_at),
            "updated_at": _iso(account.created_at),
        }

    def token(self, value: str, token: _Token) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token": value,
            "expires_at": _iso(token.expires_at),
            "permissions": token.permissions,
            "repository_selection": token.repository_selection,
        }
        if token.repository_selection == "selected":
            body["repositories"] = [
                self.repo(self.world.repos[r]) for r in sorted(self.world.token_repo_ids(token))
            ]
        return body

    def comment(self, comment: _Comment) -> dict[str, Any]:
        repo = self.world.repos[comment.repo_id]
        full_name = self.world.full_name(repo)
        api = f"{self.base}/repos/{full_name}"
        app = None if comment.app_id is None else self.world.apps.get(comment.app_id)
        return {
            "id": comment.id,
            "node_id": _node_id("IssueComment", comment.id),
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self.base}/{full_name}/issues/{comment.issue_number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self.user(self.world.accounts[comment.user_id]),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.updated_at),
            "issue_url": f"{api}/issues/{comment.issue_number}",
            "author_association": "NONE",
            "performed_via_github_app": None if app is None else self.app(app),
            "reactions": {
                "url": f"{api}/issues/comments/{comment.id}/reactions",
                "total_count": 0,
                **dict.fromkeys(
                    ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket"), 0
                ),
            },
        }

    def pull(self, repo: _Repository, issue: _Issue) -> dict[str, Any]:
        assert issue.head_ref is not None and issue.base_ref is not None
        owner = self.world.accounts[repo.owner_id]
        full_name = self.world.full_name(repo)
        api = f"{self.base}/repos/{full_name}"
        html = f"{self.base}/{full_name}/pull/{issue.number}"
        repo_body = self.repo(repo)
        head_sha = _fake_sha(f"{repo.id}:{issue.head_ref}")

        def side(ref: str) -> dict[str, Any]:
            return {
                "label": f"{owner.login}:{ref}",
                "ref": ref,
                "sha": _fake_sha(f"{repo.id}:{ref}"),
                "user": self.user(owner),
                "repo": repo_body,
            }

        links = {
            "self": f"{api}/pulls/{issue.number}",
            "html": html,
            "issue": f"{api}/issues/{issue.number}",
            "comments": f"{api}/issues/{issue.number}/comments",
            "review_comments": f"{api}/pulls/{issue.number}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{api}/pulls/{issue.number}/commits",
            "statuses": f"{api}/statuses/{head_sha}",
        }
        return {
            "url": links["self"],
            "id": issue.id,
            "node_id": _node_id("PullRequest", issue.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": links["issue"],
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "comments_url": links["comments"],
            "statuses_url": links["statuses"],
            "number": issue.number,
            "state": issue.state,
            "locked": False,
            "title": issue.title,
            "user": self.user(self.world.accounts[issue.user_id]),
            "body": issue.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at) if issue.closed_at else None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(issue.head_ref),
            "base": side(issue.base_ref),
            "_links": {name: {"href": href} for name, href in links.items()},
            "author_association": "NONE",
            "auto_merge": None,
            "draft": False,
            "merged": False,
            "mergeable": True,
            "rebaseable": True,
            "mergeable_state": "clean",
            "merged_by": None,
            "comments": sum(
                1
                for c in self.world.comments.values()
                if c.repo_id == repo.id and c.issue_number == issue.number
            ),
            "review_comments": 0,
            "maintainer_can_modify": issue.maintainer_can_modify,
            "commits": 1,
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
        }


# --------------------------------------------------------------------------
# The GitHub REST API.
# --------------------------------------------------------------------------

_Auth = Literal["app", "installation", "none", "optional"]


def _json_object(request: Request) -> dict[str, Any]:
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
class _Call:
    """One authenticated API request, as handlers see it."""

    request: Request
    args: Mapping[str, Any]
    app: _App | None = None
    token: _Token | None = None

    def json(self) -> dict[str, Any]:
        return _json_object(self.request)

    def identity(self) -> str:
        """Whose rate limit this request spends: GitHub counts per installation or App."""
        if self.token is not None:
            return f"installation:{self.token.installation_id}"
        if self.app is not None:
            return f"app:{self.app.id}"
        return "anonymous"

    def authenticated_app(self) -> _App:
        assert self.app is not None, "route declared without app auth"
        return self.app

    def authenticated_token(self) -> _Token:
        assert self.token is not None, "route declared without installation auth"
        return self.token


_Handler = Callable[["_GitHubApi", _Call], _Reply]


@dataclass(frozen=True)
class _Route:
    method: str
    template: str  # the path as the OpenAPI description spells it
    auth: _Auth
    handler: _Handler


def _rule_path(template: str) -> str:
    """``/app/installations/{installation_id}`` -> werkzeug's ``<int:installation_id>``."""

    def convert(match: re.Match[str]) -> str:
        name = match.group(1)
        numeric = name.endswith(("_id", "_number"))
        return f"<int:{name}>" if numeric else f"<{name}>"

    return re.sub(r"\{(\w+)\}", convert, template)


class _GitHubApi:
    def __init__(self, world: _World, render: _Render, rate_limits: _RateLimits) -> None:
        self.world = world
        self.render = render
        self.rate_limits = rate_limits

    # -- authentication ---------------------------------------------------

    def authenticate(self, auth: _Auth, call: _Call) -> None:
        header = call.request.headers.get("Authorization")
        if auth == "none":
            return
        if auth == "optional":
            if header is None:
                return
            credential = header.partition(" ")[2].strip()
            auth = "installation" if credential.startswith("ghs_") else "app"
        if header is None:
            raise ApiError(401, _MSG_REQUIRES_AUTH)
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if auth == "app":
            if scheme.lower() != "bearer":
                raise ApiError(401, _MSG_JWT_UNDECODABLE)
            call.app = self.verify_jwt(credential)
        else:
            call.token = self.verify_token(scheme, credential)
            installation = self.world.installations[call.token.installation_id]
            call.app = self.world.apps[installation.app_id]

    def verify_jwt(self, credential: str) -> _App:
        """GitHub's App JWT rules: RS256, known issuer, valid signature, short-lived."""
        try:
            header = jwt.get_unverified_header(credential)
            claims = jwt.decode(credential, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise ApiError(401, _MSG_JWT_UNDECODABLE) from None
        if header.get("alg") != "RS256":
            raise ApiError(401, _MSG_JWT_UNDECODABLE)
        app = self.world.find_app(claims.get("iss"))
        if app is None:
            raise ApiError(401, _MSG_INTEGRATION_NOT_FOUND)
        public_key = serialization.load_pem_public_key(app.public_key_pem.encode())
        assert isinstance(public_key, rsa.RSAPublicKey)
        try:
            jwt.decode(
                credential,
                public_key,
                algorithms=["RS256"],
                # Time claims are checked below against the emulator's clock.
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise ApiError(401, _MSG_JWT_UNDECODABLE) from None
        iat, exp = claims.get("iat"), claims.get("exp")
        now = int(self.world.clock().timestamp())
        if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + _JWT_CLOCK_SKEW:
            raise ApiError(401, _MSG_JWT_IAT)
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise ApiError(401, _MSG_JWT_EXP)
        if exp - iat > _JWT_MAX_LIFETIME or exp > now + _JWT_MAX_LIFETIME + _JWT_CLOCK_SKEW:
            raise ApiError(401, _MSG_JWT_EXP_TOO_FAR)
        return app

    def verify_token(self, scheme: str, credential: str) -> _Token:
        if scheme.lower() not in ("token", "bearer"):
            raise ApiError(401, _MSG_BAD_CREDENTIALS)
        token = self.world.live_token(credential)
        if token is None:
            raise ApiError(401, _MSG_BAD_CREDENTIALS)
        if self.world.installations[token.installation_id].suspended_at is not None:
            raise ApiError(403, _MSG_SUSPENDED)
        return token

    # -- helpers ----------------------------------------------------------

    def own_installation(self, call: _Call) -> _Installation:
        """The installation in the path, if it belongs to the authenticated App."""
        installation = self.world.installations.get(call.args["installation_id"])
        if installation is None or installation.app_id != call.authenticated_app().id:
            raise ApiError(404, _MSG_NOT_FOUND)
        return installation

    def visible_repo(self, call: _Call) -> _Repository:
        """The repository in the path; 404 unless the token can see it, as on GitHub."""
        repo = self.world.find_repo(call.args["owner"], call.args["repo"])
        if repo is None or repo.id not in self.world.token_repo_ids(call.authenticated_token()):
            raise ApiError(404, _MSG_NOT_FOUND)
        return repo

    @staticmethod
    def require(call: _Call, *alternatives: tuple[str, str]) -> None:
        """403 unless the token holds one of ``(permission, level)``."""
        held = call.authenticated_token().permissions
        if any(_grants(held, name, level) for name, level in alternatives):
            return
        accepted = ", ".join(f"{name}={level}" for name, level in alternatives)
        raise ApiError(
            403, _MSG_NOT_ACCESSIBLE, headers={"x-accepted-github-permissions": accepted}
        )

    def issue_or_404(self, repo: _Repository, number: int) -> _Issue:
        issue = self.world.find_issue(repo, number)
        if issue is None:
            raise ApiError(404, _MSG_NOT_FOUND)
        return issue

    @staticmethod
    def paginate(call: _Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
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
    def since(call: _Call) -> datetime | None:
        raw = call.request.args.get("since")
        if raw is None:
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ApiError(422, f"Invalid request.\n\n{raw!r} is not a valid timestamp.") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # -- App endpoints (JWT) ----------------------------------------------

    def get_app(self, call: _Call) -> _Reply:
        return _Reply(200, self.render.app(call.authenticated_app(), with_installations_count=True))

    def list_installations(self, call: _Call) -> _Reply:
        app = call.authenticated_app()
        since = self.since(call)
        found = [
            i
            for i in self.world.installations.values()
            if i.app_id == app.id and (since is None or i.updated_at >= since)
        ]
        page, headers = self.paginate(call, found)
        return _Reply(200, [self.render.installation(i) for i in page], headers)

    def get_installation(self, call: _Call) -> _Reply:
        return _Reply(200, self.render.installation(self.own_installation(call)))

    def delete_installation(self, call: _Call) -> _Reply:
        # Its tokens die with it: live_token() requires the installation to exist.
        del self.world.installations[self.own_installation(call).id]
        return _Reply(204)

    def create_access_token(self, call: _Call) -> _Reply:
        installation = self.own_installation(call)
        if installation.suspended_at is not None:
            raise ApiError(403, _MSG_SUSPENDED)
        body = call.json()
        _validate(body, _ACCESS_TOKEN_FIELDS)
        permissions = body.get("permissions") or {}
        _check_permission_levels(permissions)
        value, token = self.world.mint_token(
            installation,
            permissions=permissions,
            repository_names=body.get("repositories") or [],
            repository_ids=body.get("repository_ids") or [],
        )
        return _Reply(201, self.render.token(value, token))

    def suspend_installation(self, call: _Call) -> _Reply:
        installation = self.own_installation(call)
        if installation.suspended_at is None:
            installation.suspended_at = installation.updated_at = self.world.clock()
            installation.suspended_by_id = call.authenticated_app().bot_id
        return _Reply(204)

    def unsuspend_installation(self, call: _Call) -> _Reply:
        installation = self.own_installation(call)
        if installation.suspended_at is not None:
            installation.suspended_at = installation.suspended_by_id = None
            installation.updated_at = self.world.clock()
        return _Reply(204)

    def get_org_installation(self, call: _Call) -> _Reply:
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
            raise ApiError(404, _MSG_NOT_FOUND)
        return _Reply(200, self.render.installation(found))

    def get_repo_installation(self, call: _Call) -> _Reply:
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
            raise ApiError(404, _MSG_NOT_FOUND)
        return _Reply(200, self.render.installation(found))

    # -- manifest flow (no auth: the code is the credential) --------------

    def convert_manifest(self, call: _Call) -> _Reply:
        entry = self.world.redeem_manifest(call.args["code"])
        if entry is None:
            raise ApiError(404, _MSG_NOT_FOUND)
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
            private_key=_new_private_key(),
        )
        return _Reply(201, self.render.app_credentials(app))

    # -- installation-token endpoints -------------------------------------

    def revoke_token(self, call: _Call) -> _Reply:
        call.authenticated_token().revoked_at = self.world.clock()
        return _Reply(204)

    def list_installation_repos(self, call: _Call) -> _Reply:
        token = call.authenticated_token()
        repos = [self.world.repos[r] for r in sorted(self.world.token_repo_ids(token))]
        page, headers = self.paginate(call, repos)
        body = {
            "total_count": len(repos),
            "repositories": [self.render.repo(r, token=token) for r in page],
            "repository_selection": token.repository_selection,
        }
        return _Reply(200, body, headers)

    def get_repo(self, call: _Call) -> _Reply:
        # Any token that can see the repository can read its metadata.
        repo = self.visible_repo(call)
        return _Reply(200, self.render.repo(repo, full=True, token=call.authenticated_token()))

    def update_repo(self, call: _Call) -> _Reply:
        repo = self.visible_repo(call)
        self.require(call, ("administration", "write"))
        body = call.json()
        _validate(body, _REPO_UPDATE_FIELDS)
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
        changes = {
            k: v for k, v in body.items() if k in _REPO_UPDATE_FIELDS and k in _REPO_DEFAULTS
        }
        # `private` and `visibility` are two views of one setting.
        if "visibility" in changes:
            changes["private"] = changes["visibility"] == "private"
        elif "private" in changes:
            changes["visibility"] = "private" if changes["private"] else "public"
        repo.settings.update(changes)
        repo.updated_at = self.world.clock()
        return _Reply(200, self.render.repo(repo, full=True, token=call.authenticated_token()))

    def delete_repo(self, call: _Call) -> _Reply:
        repo = self.visible_repo(call)
        self.require(call, ("administration", "write"))
        self.world.delete_repo(repo)
        return _Reply(204)

    def list_comments(self, call: _Call) -> _Reply:
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
        return _Reply(200, [self.render.comment(c) for c in page], headers)

    def create_comment(self, call: _Call) -> _Reply:
        repo = self.visible_repo(call)
        # Commenting on a pull request needs issues or pull_requests write;
        # on a plain issue, issues write.
        self.require(call, ("issues", "write"), ("pull_requests", "write"))
        issue = self.issue_or_404(repo, call.args["issue_number"])
        if not issue.is_pull:
            self.require(call, ("issues", "write"))
        if repo.settings["archived"]:
            raise ApiError(403, _MSG_ARCHIVED)
        body = call.json()
        _validate(body, _COMMENT_FIELDS, required=("body",))
        app = call.authenticated_app()
        now = self.world.clock()
        # The author is the App's bot: GitHub's audit trail names the agent.
        comment = _Comment(
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
        return _Reply(201, self.render.comment(comment))

    def get_pull(self, call: _Call) -> _Reply:
        repo = self.visible_repo(call)
        self.require(call, ("pull_requests", "read"))
        issue = self.issue_or_404(repo, call.args["pull_number"])
        if not issue.is_pull:
            raise ApiError(404, _MSG_NOT_FOUND)
        return _Reply(200, self.render.pull(repo, issue))

    def update_pull(self, call: _Call) -> _Reply:
        repo = self.visible_repo(call)
        self.require(call, ("pull_requests", "write"))
        issue = self.issue_or_404(repo, call.args["pull_number"])
        if not issue.is_pull:
            raise ApiError(404, _MSG_NOT_FOUND)
        if repo.settings["archived"]:
            raise ApiError(403, _MSG_ARCHIVED)
        body = call.json()
        _validate(body, _PULL_UPDATE_FIELDS)
        now = self.world.clock()
        issue.title = body.get("title", issue.title)
        issue.body = body.get("body", issue.body)
        issue.base_ref = body.get("base", issue.base_ref)
        issue.maintainer_can_modify = body.get("maintainer_can_modify", issue.maintainer_can_modify)
        if body.get("state", issue.state) != issue.state:
            issue.state = body["state"]
            issue.closed_at = now if issue.state == "closed" else None
        issue.updated_at = now
        return _Reply(200, self.render.pull(repo, issue))

    def rate_limit(self, call: _Call) -> _Reply:
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
        return _Reply(200, {"resources": resources, "rate": core})


_ROUTES: tuple[_Route, ...] = (
    _Route("GET", "/app", "app", _GitHubApi.get_app),
    _Route("GET", "/app/installations", "app", _GitHubApi.list_installations),
    _Route("GET", "/app/installations/{installation_id}", "app", _GitHubApi.get_installation),
    _Route("DELETE", "/app/installations/{installation_id}", "app", _GitHubApi.delete_installation),
    _Route(
        "POST",
        "/app/installations/{installation_id}/access_tokens",
        "app",
        _GitHubApi.create_access_token,
    ),
    _Route(
        "PUT",
        "/app/installations/{installation_id}/suspended",
        "app",
        _GitHubApi.suspend_installation,
    ),
    _Route(
        "DELETE",
        "/app/installations/{installation_id}/suspended",
        "app",
        _GitHubApi.unsuspend_installation,
    ),
    _Route("DELETE", "/installation/token", "installation", _GitHubApi.revoke_token),
    _Route("GET", "/installation/repositories", "installation", _GitHubApi.list_installation_repos),
    _Route("POST", "/app-manifests/{code}/conversions", "none", _GitHubApi.convert_manifest),
    _Route("GET", "/orgs/{org}/installation", "app", _GitHubApi.get_org_installation),
    _Route("GET", "/repos/{owner}/{repo}/installation", "app", _GitHubApi.get_repo_installation),
    _Route("GET", "/repos/{owner}/{repo}", "installation", _GitHubApi.get_repo),
    _Route("PATCH", "/repos/{owner}/{repo}", "installation", _GitHubApi.update_repo),
    _Route("DELETE", "/repos/{owner}/{repo}", "installation", _GitHubApi.delete_repo),
    _Route(
        "GET",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "installation",
        _GitHubApi.list_comments,
    ),
    _Route(
        "POST",
        "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        "installation",
        _GitHubApi.create_comment,
    ),
    _Route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", "installation", _GitHubApi.get_pull),
    _Route(
        "PATCH",
        "/repos/{owner}/{repo}/pulls/{pull_number}",
        "installation",
        _GitHubApi.update_pull,
    ),
    _Route("GET", "/rate_limit", "optional", _GitHubApi.rate_limit),
)


def _new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --------------------------------------------------------------------------
# Server-side machinery: faults, rate-limit counters, request log.
# --------------------------------------------------------------------------


@dataclass
class _Fault:
    status: int
    remaining: int
    path_prefix: str
    method: str | None
    rate_limit: bool
    # Seconds; None sends no `retry-after` (GitHub's primary limit), a number
    # sends one (GitHub's secondary limit).
    retry_after: int | None

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and self.method in (None, method)


class _RateLimits:
    """Hourly primary-limit counters per identity, reported in x-ratelimit-* headers.

    The emulator reports usage but never enforces the limit; tests that need a
    limit response inject a fault instead.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.windows: dict[str, tuple[int, int]] = {}  # identity -> (reset epoch, used)

    def status(self, identity: str) -> dict[str, int]:
        now = int(self.clock().timestamp())
        reset, used = self.windows.get(identity, (0, 0))
        if now >= reset:
            reset, used = now + _RATE_WINDOW, 0
            self.windows[identity] = (reset, used)
        limit = _ANONYMOUS_LIMIT if identity == "anonymous" else _AUTHENTICATED_LIMIT
        return {"limit": limit, "remaining": max(limit - used, 0), "reset": reset, "used": used}

    def spend(self, identity: str) -> dict[str, int]:
        self.status(identity)
        reset, used = self.windows[identity]
        self.windows[identity] = (reset, used + 1)
        return self.status(identity)


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


# --------------------------------------------------------------------------
# The emulator: lifecycle, Python control API, HTTP control API.
# --------------------------------------------------------------------------


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
    ) -> None:
        self._host = host
        self._port = port
        self._clock = clock
        self._state_file = state_file
        self._lock = threading.RLock()
        self._world = _World(clock)
        if state_file is not None and state_file.exists():
            self._world.load(json.loads(state_file.read_text()))
        self._faults: list[_Fault] = []
        self._requests: list[dict[str, Any]] = []
        self._rate_limits = _RateLimits(clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._api_map = Map(
            [Rule(_rule_path(r.template), methods=[r.method], endpoint=r) for r in _ROUTES]
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

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._base_url is None:
            raise RuntimeError("GitHubEmulator not started")
        return self._base_url

    def _render(self) -> _Render:
        return _Render(self._world, self.url)

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
        _check_permission_levels(permissions)
        private_key = _new_private_key()  # slow: generated before taking the lock
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
            _check_permission_levels(permissions)
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
            _check_permission_levels(permissions)
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
        rate_limit: bool = False,
        retry_after: int | None = 1,
    ) -> None:
        """Answer the next ``count`` matching API requests with ``status``.

        With ``rate_limit`` (status 403 or 429) the response carries
        ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``, plus
        ``retry-after`` unless ``retry_after`` is None, like GitHub's primary
        and secondary rate limits.
        """
        if status not in _ERROR_STATUSES or count < 1:
            raise ApiError(422, "status must be a 4xx/5xx HTTP status and count at least 1")
        if rate_limit and status not in (403, 429):
            raise ApiError(422, "a rate-limit fault has status 403 or 429")
        with self._lock:
            self._faults.append(
                _Fault(
                    status,
                    count,
                    path_prefix,
                    method.upper() if method else None,
                    rate_limit,
                    retry_after,
                )
            )

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
        else:
            reply, headers = self._serve_api(request)
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

    def _serve_api(self, request: Request) -> tuple[_Reply, dict[str, str]]:
        request_id = ":".join(secrets.token_hex(n).upper() for n in (2, 2, 3, 3, 4))
        headers = {
            "x-github-request-id": request_id,
            "x-github-media-type": "github.v3; format=json",
            "x-github-api-version-selected": request.headers.get(
                "X-GitHub-Api-Version", "2022-11-28"
            ),
        }
        route: _Route | None = None
        call: _Call | None = None
        with self._lock:
            try:
                route, args = self._api_map.bind_to_environ(request.environ).match()
            except HTTPException:  # unknown path, or a method the path lacks: GitHub says 404
                reply = ApiError(404, _MSG_NOT_FOUND).reply()
            fault = next((f for f in self._faults if f.matches(request.method, request.path)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                reply = self._fault_reply(fault)
            elif route is not None:
                call = _Call(request, args)
                try:
                    reply = self._dispatch(route, call)
                except ApiError as error:
                    reply = error.reply()
            identity = call.identity() if call is not None else "anonymous"
            if fault is None or not fault.rate_limit:
                is_rate_limit_call = route is not None and route.template == "/rate_limit"
                limits = self._rate_limits
                status = limits.status(identity) if is_rate_limit_call else limits.spend(identity)
                headers.update(_rate_headers(status))
            self._requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "route": route.template if route else None,
                    "status": reply.status,
                    "identity": identity,
                    "fault": fault is not None,
                    "request_id": request_id,
                    "time": _iso(self._clock()),
                }
            )
        return reply, headers

    def _dispatch(self, route: _Route, call: _Call) -> _Reply:
        api = _GitHubApi(self._world, self._render(), self._rate_limits)
        api.authenticate(route.auth, call)
        return route.handler(api, call)

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if not fault.rate_limit:
            return ApiError(fault.status, HTTPStatus(fault.status).phrase).reply()
        now = int(self._clock().timestamp())
        wait = fault.retry_after if fault.retry_after is not None else 60
        headers = _rate_headers(
            {
                "limit": _AUTHENTICATED_LIMIT,
                "remaining": 0,
                "reset": now + wait,
                "used": _AUTHENTICATED_LIMIT,
            }
        )
        if fault.retry_after is None:
            message = "API rate limit exceeded. Wait for the reset time before retrying."
        else:
            headers["retry-after"] = str(fault.retry_after)
            message = (
                "You have exceeded a secondary rate limit. "
                "Please wait a few minutes before you try again."
            )
        return ApiError(fault.status, message, headers=headers).reply()

    # -- HTTP control API ---------------------------------------------------

    def _control_routes(
        self,
    ) -> Iterator[tuple[str, str, Callable[[Request, Mapping[str, Any]], _Reply]]]:
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

    def _serve_control(self, request: Request) -> _Reply:
        try:
            handler, args = self._control_map.bind_to_environ(request.environ).match()
            reply: _Reply = handler(request, args)
            return reply
        except HTTPException as error:
            return ApiError(error.code or 404, error.name).reply()
        except ApiError as error:
            return error.reply()
        except (KeyError, TypeError) as error:
            # A missing or mistyped argument in a control request.
            return ApiError(400, f"Bad control request: {error}").reply()

    def _c_create_org(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        return _Reply(201, self.create_org(_json_object(request)["login"]))

    def _c_create_user(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        return _Reply(201, self.create_user(_json_object(request)["login"]))

    def _c_create_repo(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        return _Reply(
            201,
            self.create_repo(
                body["owner"],
                body["name"],
                private=bool(body.get("private", False)),
                description=body.get("description"),
                default_branch=body.get("default_branch", "main"),
            ),
        )

    def _c_create_issue(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        number = self.create_issue(
            body["owner"], body["repo"], body["title"], body=body.get("body")
        )
        return _Reply(201, {"number": number})

    def _c_create_pull(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        pull = self.create_pull(
            body["owner"],
            body["repo"],
            body["title"],
            head=body["head"],
            base=body.get("base", "main"),
            body=body.get("body"),
            author=body.get("author", DEFAULT_USER),
        )
        return _Reply(201, pull)

    def _c_create_manifest(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        code = self.create_manifest_code(_json_object(request), owner=request.args.get("owner"))
        return _Reply(201, {"code": code})

    def _c_create_app(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        app = self.create_app(
            body["name"],
            owner=body.get("owner"),
            permissions=body.get("permissions"),
            events=body.get("events", ()),
            description=body.get("description"),
        )
        return _Reply(201, app)

    def _c_install_app(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        installation = self.install_app(
            body["app_id"],
            body["account"],
            permissions=body.get("permissions"),
            repositories=body.get("repositories"),
            events=body.get("events"),
        )
        return _Reply(201, installation)

    def _c_update_installation(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        installation = self.update_installation(
            args["installation_id"],
            permissions=body.get("permissions"),
            repositories=body.get("repositories", "unchanged"),
        )
        return _Reply(200, installation)

    def _c_state(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        return _Reply(200, self.state())

    def _c_inject_fault(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        body = _json_object(request)
        self.inject_fault(
            body["status"],
            count=body.get("count", 1),
            path_prefix=body.get("path_prefix", "/"),
            method=body.get("method"),
            rate_limit=bool(body.get("rate_limit", False)),
            retry_after=body.get("retry_after", 1),
        )
        with self._lock:
            pending = [dataclasses.asdict(f) for f in self._faults]
        return _Reply(201, {"faults": pending})

    def _c_reset_faults(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        self.reset_faults()
        return _Reply(204)

    def _c_requests(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        records = self.requests
        counts = Counter(f"{r['method']} {r['route'] or r['path']}" for r in records)
        return _Reply(
            200,
            {
                "requests": records,
                "counts": dict(counts),
                "total": len(records),
                "mutating": sum(1 for r in records if r["method"] in _MUTATING_METHODS),
            },
        )

    def _c_clear_requests(self, request: Request, args: Mapping[str, Any]) -> _Reply:
        self.clear_requests()
        return _Reply(204)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentctl.testing.github_emulator",
        description="Serve a local GitHub REST API emulator until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="load the world from this JSON file if it exists; save it after each change",
    )
    options = parser.parse_args(argv)
    emulator = GitHubEmulator(host=options.host, port=options.port, state_file=options.state_file)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(emulator.start(), flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
