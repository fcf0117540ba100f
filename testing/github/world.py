"""The emulated GitHub world: accounts, repositories, Apps, installations, tokens.

Plain records that reference each other by id, so the whole world serialises
to JSON for ``--state-file``, and :class:`World`, the rules that change them
(who can reach which repository, what a token may be down-scoped to). Nothing
here knows about HTTP; :mod:`testing.github.routes` speaks HTTP over it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
import secrets
import string
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentctl.clock import Clock
from testing.github.errors import (
    MSG_PERMISSIONS_NOT_GRANTED,
    MSG_REPOSITORIES_NOT_ACCESSIBLE,
    ApiError,
)
from testing.github.validation import LEVELS, check_manifest

#: The user every world starts with; it owns Apps and authors pull requests
#: unless a test names someone else.
DEFAULT_USER = "octocat"


_TOKEN_LIFETIME = timedelta(hours=1)
# Installation-token formats. github.com mints the stateless one since the
# rollout that began on 27 April 2026: ``ghs_<app id>_<JWT>``, about 520
# characters, the JWT signed by a GitHub-internal issuer (clients must treat it
# as opaque). The opaque 40-character ``ghs_`` + 36 alphanumerics form is what
# GitHub Enterprise Server and earlier tokens use; GitHub lets one request pick
# either with the ``X-GitHub-Stateless-S2S-Token: enabled|disabled`` header.
TokenFormat = Literal["stateless", "opaque"]
TOKEN_FORMATS: tuple[TokenFormat, ...] = ("stateless", "opaque")
_MANIFEST_CODE_LIFETIME = timedelta(hours=1)
_TOKEN_ALPHABET = string.ascii_letters + string.digits
# Primary rate limits per hour: an installation or App gets 5000, anonymous 60.
AUTHENTICATED_LIMIT = 5000
_ANONYMOUS_LIMIT = 60
_RATE_WINDOW = 3600


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@functools.cache
def _token_issuer_key() -> rsa.RSAPrivateKey:
    """The emulator's stand-in for GitHub's internal token issuer (made once per process)."""
    return new_private_key()


def _stateless_token(installation: Installation, issued: datetime, expires: datetime) -> str:
    """``ghs_<app id>_<JWT>``: the JWT names the installation and the App, as GitHub's
    does; its ``jti`` makes every token unique. Judged by digest like any token."""
    claims = {
        "sub": f"installation:{installation.id}",
        "app": installation.app_id,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(8),
    }
    return f"ghs_{installation.app_id}_" + jwt.encode(
        claims, _token_issuer_key(), algorithm="RS256"
    )


def grants(held: Mapping[str, str], name: str, level: str) -> bool:
    """Whether permissions ``held`` include ``name`` at ``level`` or higher."""
    return LEVELS.get(held.get(name, ""), 0) >= LEVELS.get(level, math.inf)


@dataclass
class Account:
    id: int
    login: str
    type: Literal["User", "Organization", "Bot"]
    created_at: datetime


# Repository settings that PATCH /repos/{owner}/{repo} may change, with
# GitHub's defaults for a new repository.
REPO_DEFAULTS: dict[str, Any] = {
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
class Repository:
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
class App:
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
    # Manifest `public`: a private App is shown by slug only to signed-in requests.
    public: bool = False
    # Keys generated later on the App's settings page ("Generate a private key");
    # GitHub accepts a JWT signed by any key of the App until it is deleted.
    more_public_key_pems: list[str] = dataclasses.field(default_factory=list)

    def public_key_pems(self) -> list[str]:
        return [self.public_key_pem, *self.more_public_key_pems]


@dataclass
class Installation:
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
class Token:
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
class Issue:
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
class Comment:
    id: int
    repo_id: int
    issue_number: int
    body: str
    user_id: int
    app_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass
class ManifestCode:
    code: str
    manifest: dict[str, Any]
    owner_id: int
    created_at: datetime


_Record = TypeVar("_Record")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
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
        if item.name not in data and (
            item.default is not dataclasses.MISSING
            or item.default_factory is not dataclasses.MISSING
        ):
            continue  # a field added since the file was written: its default
        raw = data[item.name]
        hint = hints[item.name]
        is_time = hint is datetime or (
            isinstance(hint, types.UnionType) and datetime in typing.get_args(hint)
        )
        values[item.name] = datetime.fromisoformat(raw) if is_time and raw is not None else raw
    return cls(**values)


class World:
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
        self.accounts: dict[int, Account] = {}
        self.repos: dict[int, Repository] = {}
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[int, Token] = {}
        self.issues: dict[int, Issue] = {}
        self.comments: dict[int, Comment] = {}
        self.manifest_codes: dict[str, ManifestCode] = {}
        # What POST .../access_tokens mints unless the request's
        # X-GitHub-Stateless-S2S-Token header picks the other format.
        self.token_format: TokenFormat = "stateless"
        # GitHub's is one hour; tests of long runs shorten it.
        self.token_lifetime: timedelta = _TOKEN_LIFETIME
        # A person's own tokens (what `gh auth token` gives): value -> account id.
        # GET /user answers them; an App installation token is not a person.
        self.user_tokens: dict[str, int] = {}
        self.create_account(DEFAULT_USER, "User")

    # -- persistence ------------------------------------------------------

    _TABLES: typing.ClassVar[dict[str, type[Any]]] = {
        "accounts": Account,
        "repos": Repository,
        "apps": App,
        "installations": Installation,
        "tokens": Token,
        "issues": Issue,
        "comments": Comment,
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
        data["user_tokens"] = dict(self.user_tokens)
        return data

    def load(self, data: Mapping[str, Any]) -> None:
        self.next_id = int(data["next_id"])
        for name, cls in self._TABLES.items():
            rows = [_decode_record(cls, row) for row in data[name]]
            setattr(self, name, {row.id: row for row in rows})
        codes = [_decode_record(ManifestCode, row) for row in data["manifest_codes"]]
        self.manifest_codes = {row.code: row for row in codes}
        self.user_tokens = {str(k): int(v) for k, v in data.get("user_tokens", {}).items()}

    # -- lookups ----------------------------------------------------------

    def new_id(self) -> int:
        ident = self.next_id
        self.next_id += 1
        return ident

    def find_account(self, login: str) -> Account | None:
        wanted = login.lower()
        return next((a for a in self.accounts.values() if a.login.lower() == wanted), None)

    def account(self, login: str) -> Account:
        found = self.find_account(login)
        if found is None or found.type == "Bot":
            raise ApiError(404, f"No such account: {login}")
        return found

    def find_repo(self, owner: str, name: str) -> Repository | None:
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

    def repo(self, owner: str, name: str) -> Repository:
        found = self.find_repo(owner, name)
        if found is None:
            raise ApiError(404, f"No such repository: {owner}/{name}")
        return found

    def full_name(self, repo: Repository) -> str:
        return f"{self.accounts[repo.owner_id].login}/{repo.name}"

    def find_issue(self, repo: Repository, number: int) -> Issue | None:
        return next(
            (i for i in self.issues.values() if i.repo_id == repo.id and i.number == number),
            None,
        )

    def find_app(self, issuer: object) -> App | None:
        """The App a JWT ``iss`` names: its id (int or digits) or its client id."""
        if isinstance(issuer, int) and not isinstance(issuer, bool):
            return self.apps.get(issuer)
        if isinstance(issuer, str):
            if issuer.isdigit():
                return self.apps.get(int(issuer))
            return next((a for a in self.apps.values() if a.client_id == issuer), None)
        return None

    def find_token(self, value: str) -> Token | None:
        digest = _digest(value)
        return next((t for t in self.tokens.values() if t.digest == digest), None)

    def installation_repo_ids(self, installation: Installation) -> set[int]:
        """Repositories an installation can reach now (``all`` follows new repos)."""
        owned = {r.id for r in self.repos.values() if r.owner_id == installation.account_id}
        if installation.repository_selection == "all":
            return owned
        return owned & set(installation.repository_ids)

    def token_repo_ids(self, token: Token) -> set[int]:
        # A token never outlives the installation's own access to a repository.
        reachable = self.installation_repo_ids(self.installations[token.installation_id])
        if token.repository_ids is None:
            return reachable
        return reachable & set(token.repository_ids)

    def live_token(self, value: str) -> Token | None:
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

    def create_account(self, login: str, kind: Literal["User", "Organization"]) -> Account:
        existing = self.find_account(login)
        if existing is not None:
            if existing.type != kind:
                raise ApiError(422, f"{login} already exists as {existing.type}")
            return existing
        if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})", login):
            raise ApiError(422, f"Invalid login: {login!r}")
        account = Account(self.new_id(), login, kind, self.clock())
        self.accounts[account.id] = account
        return account

    def create_user_token(self, login: str) -> str:
        """A user access token for ``login`` (created as a User if new), like the
        ``gho_`` token `gh auth login` stores."""
        account = self.create_account(login, "User")
        value = "gho_" + "".join(
            secrets.choice(string.ascii_letters + string.digits) for _ in range(36)
        )
        self.user_tokens[value] = account.id
        return value

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = False,
        description: str | None = None,
        default_branch: str = "main",
    ) -> Repository:
        account = self.account(owner)
        existing = self.find_repo(owner, name)
        if existing is not None:
            return existing
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
            raise ApiError(422, f"Invalid repository name: {name!r}")
        now = self.clock()
        settings = dict(REPO_DEFAULTS)
        settings.update(
            private=private,
            visibility="private" if private else "public",
            description=description,
            default_branch=default_branch,
        )
        repo = Repository(self.new_id(), account.id, name, settings, now, now, now)
        self.repos[repo.id] = repo
        return repo

    def create_issue(
        self,
        repo: Repository,
        title: str,
        *,
        body: str | None = None,
        author: str = DEFAULT_USER,
        head: str | None = None,
        base: str | None = None,
    ) -> Issue:
        user = self.account(author)
        now = self.clock()
        issue = Issue(
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
        check_manifest(manifest)
        account = self.account(owner or DEFAULT_USER)
        code = secrets.token_hex(10)
        self.manifest_codes[code] = ManifestCode(code, dict(manifest), account.id, self.clock())
        return code

    def redeem_manifest(self, code: str) -> ManifestCode | None:
        """Codes are single-use and expire after an hour, like GitHub's."""
        entry = self.manifest_codes.pop(code, None)
        if entry is None or self.clock() - entry.created_at > _MANIFEST_CODE_LIFETIME:
            return None
        return entry

    def create_app(
        self,
        *,
        name: str,
        owner: Account,
        permissions: Mapping[str, str],
        events: Iterable[str],
        description: str | None,
        external_url: str | None,
        webhook: bool,
        private_key: rsa.RSAPrivateKey,
        public: bool = False,
    ) -> App:
        slug = _slugify(name)
        if not slug or any(a.slug == slug for a in self.apps.values()):
            raise ApiError(422, "Validation Failed", errors=["Name has already been taken"])
        now = self.clock()
        app_id = self.new_id()
        bot = Account(self.new_id(), f"{slug}[bot]", "Bot", now)
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
        app = App(
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
            public=public,
        )
        self.apps[app.id] = app
        return app

    def find_app_by_slug(self, slug: str) -> App | None:
        return next((a for a in self.apps.values() if a.slug == slug), None)

    def install(
        self,
        app: App,
        account: Account,
        *,
        permissions: Mapping[str, str] | None,
        repositories: Iterable[str] | None,
        events: Iterable[str] | None,
    ) -> Installation:
        if any(
            i.app_id == app.id and i.account_id == account.id for i in self.installations.values()
        ):
            raise ApiError(422, f"App {app.slug} is already installed on {account.login}")
        now = self.clock()
        installation = Installation(
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
        self, installation: Installation, account: Account, names: Iterable[str] | None
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
        installation: Installation,
        *,
        permissions: Mapping[str, str],
        repository_names: Iterable[str],
        repository_ids: Iterable[int],
        token_format: TokenFormat | None = None,
    ) -> tuple[str, Token]:
        """Down-scope a new token; anything the installation lacks is a 422."""
        for name, level in permissions.items():
            if not grants(installation.permissions, name, level):
                raise ApiError(422, MSG_PERMISSIONS_NOT_GRANTED)
        reachable = self.installation_repo_ids(installation)
        owner = self.accounts[installation.account_id].login
        wanted: set[int] = set()
        for name in repository_names:
            repo = self.find_repo(owner, name)
            if repo is None or repo.id not in reachable:
                raise ApiError(422, MSG_REPOSITORIES_NOT_ACCESSIBLE)
            wanted.add(repo.id)
        for repo_id in repository_ids:
            if repo_id not in reachable:
                raise ApiError(422, MSG_REPOSITORIES_NOT_ACCESSIBLE)
            wanted.add(repo_id)
        now = self.clock()
        if (token_format or self.token_format) == "opaque":
            value = "ghs_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
        else:
            value = _stateless_token(installation, now, now + self.token_lifetime)
        token = Token(
            id=self.new_id(),
            digest=_digest(value),
            installation_id=installation.id,
            # An empty or absent `permissions` means "everything the installation has".
            permissions=dict(permissions or installation.permissions),
            repository_ids=sorted(wanted) if wanted else None,
            repository_selection="selected" if wanted else installation.repository_selection,
            created_at=now,
            expires_at=now + self.token_lifetime,
        )
        self.tokens[token.id] = token
        return value, token

    def delete_repo(self, repo: Repository) -> None:
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
                    "suspended_at": iso(i.suspended_at) if i.suspended_at else None,
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
                    "created_at": iso(t.created_at),
                    "expires_at": iso(t.expires_at),
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
                    "created_at": iso(c.created_at),
                }
                for c in self.comments.values()
            ],
        }


def new_private_key() -> rsa.RSAPrivateKey:
    """A new App key (2048-bit RSA, as GitHub issues them): slow, so made outside the lock."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class RateLimits:
    """Hourly primary-limit counters per identity, reported in x-ratelimit-* headers
    and enforced (see GitHubEmulator.set_rate_limit: 5000 per App or installation,
    as on github.com)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.authenticated_limit = AUTHENTICATED_LIMIT
        self.anonymous_limit = _ANONYMOUS_LIMIT
        self.enforce_anonymous = False
        self.windows: dict[str, tuple[int, int]] = {}  # identity -> (reset epoch, used)

    def status(self, identity: str) -> dict[str, int]:
        now = int(self.clock().timestamp())
        reset, used = self.windows.get(identity, (0, 0))
        if now >= reset:
            reset, used = now + _RATE_WINDOW, 0
            self.windows[identity] = (reset, used)
        limit = self.anonymous_limit if identity == "anonymous" else self.authenticated_limit
        return {"limit": limit, "remaining": max(limit - used, 0), "reset": reset, "used": used}

    def enforced(self, identity: str) -> bool:
        return identity != "anonymous" or self.enforce_anonymous

    def spend(self, identity: str) -> dict[str, int]:
        self.status(identity)
        reset, used = self.windows[identity]
        self.windows[identity] = (reset, used + 1)
        return self.status(identity)
