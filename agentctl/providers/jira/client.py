"""Jira Cloud and the Atlassian admin API over plain httpx, with typed answers.

Why plain httpx and not ``jira`` or ``atlassian-python-api``: agentctl needs
three hosts with three kinds of credential (the site with an administrator's
classic token, the api.atlassian.com gateway with the agent's *scoped* token,
and the organisation admin API with a Bearer API key). Neither library
speaks the gateway or the admin API (token revocation, suspension), both
are untyped and pull requests plus many dependencies into a CLI that must
start fast. The dozen endpoints agentctl uses are small; each answer is
parsed into a frozen dataclass here, so the provider never handles raw JSON.

Every call goes through :meth:`JiraHttp.call`: 5xx and 429 are retried with
exponential backoff (honouring ``Retry-After``, capped) up to
``jira.max_attempts``; anything else becomes a :class:`JiraApiError` naming
what was being done and the status, never an httpx traceback. Secrets travel
only in the Authorization header and never appear in an error.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agentctl.errors import ProviderError
from agentctl.providers.jira import PROVIDER
from agentctl.providers.jira.settings import JiraSettings
from agentctl.secrets import Secret

if TYPE_CHECKING:
    import httpx

HTTP_TIMEOUT_SECONDS = 30.0
API = "/rest/api/3"


class JiraApiError(ProviderError):
    """Jira (or the admin API) answered with an error after retries; ``status``
    is the HTTP status, None when it could not be reached at all."""

    def __init__(self, message: str, *, status: int | None, hint: str | None = None) -> None:
        super().__init__(PROVIDER, message, hint=hint)
        self.status = status


# -- typed answers ---------------------------------------------------------------


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class JiraUser:
    account_id: str
    account_type: str  # atlassian (a person), app (a service account), customer
    email: str | None
    display_name: str
    active: bool

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> JiraUser:
        return cls(
            account_id=str(body["accountId"]),
            account_type=str(body.get("accountType") or "atlassian"),
            email=body.get("emailAddress"),
            display_name=str(body.get("displayName") or ""),
            active=bool(body.get("active", True)),
        )


@dataclass(frozen=True)
class JiraProject:
    id: str
    key: str
    name: str


@dataclass(frozen=True)
class JiraRole:
    id: int
    name: str


@dataclass(frozen=True)
class RoleActors:
    """Who holds a project role in one project."""

    project: str  # key
    role: JiraRole
    users: tuple[str, ...]  # account ids
    groups: tuple[str, ...]  # group ids


@dataclass(frozen=True)
class SchemeGrant:
    id: int
    permission: str
    holder_type: str
    holder: str | None  # role id, group id, account id; None for e.g. anyone


@dataclass(frozen=True)
class JiraGroup:
    group_id: str
    name: str


@dataclass(frozen=True)
class ApiTokenInfo:
    """An API token as the admin API lists it (never its value)."""

    id: str
    account_id: str
    label: str
    created: datetime | None
    expires: datetime | None
    scopes: tuple[str, ...]
    last_active: datetime | None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ApiTokenInfo:
        user = body.get("user") or {}
        return cls(
            id=str(body["id"]),
            account_id=str(user.get("id") or ""),
            label=str(body.get("label") or ""),
            created=parse_time(body.get("createdAt")),
            expires=parse_time(body.get("expiresAt")),
            scopes=tuple(sorted(str(s) for s in body.get("scopes") or ())),
            last_active=parse_time(body.get("lastActiveAt")),
        )


@dataclass(frozen=True)
class DirectoryUser:
    account_id: str
    status: str  # active, suspended, deactivated


# -- HTTP -------------------------------------------------------------------------


def basic(email: str, token: Secret) -> str:
    raw = f"{email}:{token.reveal()}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class JiraHttp:
    """One httpx client, the retry policy, and the calls the provider makes."""

    def __init__(
        self,
        settings: JiraSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _delay(self, attempt: int, wait: float) -> float:
        backoff = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        return min(self._max_backoff, max(wait, backoff * (0.5 + random.random() / 2)))

    def call(
        self,
        doing: str,
        method: str,
        url: str,
        *,
        authorization: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send with retries; statuses in ``accept`` are returned, not raised."""
        import httpx

        attempts = max(1, self._settings.max_attempts)
        headers = {"Authorization": authorization, "Accept": "application/json"}
        for attempt in range(1, attempts + 1):
            try:
                response = self.client.request(
                    method, url, params=params, json=json, headers=headers
                )
            except httpx.HTTPError as exc:
                if attempt < attempts:
                    self._sleep(self._delay(attempt, 0))
                    continue
                raise JiraApiError(
                    f"could not {doing}: Jira is unreachable ({type(exc).__name__})",
                    status=None,
                    hint="check jira.site_url / jira.api_url and the network",
                ) from None
            status = response.status_code
            if status < 400 or status in accept:
                return response
            if (status >= 500 or status == 429) and attempt < attempts:
                retry_after = response.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.isdigit() else 0.0
                self._sleep(self._delay(attempt, wait))
                continue
            raise JiraApiError(
                f"could not {doing}: HTTP {status} {_message(response)}".rstrip(),
                status=status,
                hint=_hint(status),
            )
        raise AssertionError("unreachable")  # pragma: no cover


def _message(response: httpx.Response) -> str:
    """The error's text from Jira's ErrorCollection or the gateway's {code, message}."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(m) for m in body.get("errorMessages") or ()]
    parts += [f"{k}: {v}" for k, v in (body.get("errors") or {}).items()]
    if body.get("message"):
        parts.append(str(body["message"]))
    return ("(" + "; ".join(parts)[:300] + ")") if parts else ""


def _hint(status: int) -> str | None:
    if status == 401:
        return "the token or API key was refused: check it has not expired or been revoked"
    if status == 403:
        return "the administrator account or API key lacks the permission this needs"
    return None


# -- the three surfaces ------------------------------------------------------------


class JiraSite:
    """The Jira REST API as one account sees it (admin at the site, or an agent at the gateway)."""

    def __init__(self, http: JiraHttp, base_url: str, authorization: str) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._auth = authorization

    def _url(self, path: str) -> str:
        return f"{self.base_url}{API}{path}"

    def get(self, doing: str, path: str, **params: Any) -> Any:
        return self._http.call(
            doing, "GET", self._url(path), authorization=self._auth, params=params
        ).json()

    def send(
        self,
        doing: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        return self._http.call(
            doing,
            method,
            self._url(path),
            authorization=self._auth,
            params=params,
            json=json,
            accept=accept,
        )

    # users and groups

    def myself(self) -> JiraUser:
        return JiraUser.of(self.get("identify the token's account", "/myself"))

    def user(self, account_id: str) -> JiraUser | None:
        response = self.send(
            f"look up account {account_id}",
            "GET",
            "/user",
            params={"accountId": account_id},
            accept=(404,),
        )
        return None if response.status_code == 404 else JiraUser.of(response.json())

    def find_users(self, query: str) -> list[JiraUser]:
        found = self.get(f"search accounts named {query!r}", "/user/search", query=query)
        return [JiraUser.of(item) for item in found]

    def groups_of(self, account_id: str) -> list[JiraGroup]:
        response = self.send(
            f"list the groups of {account_id}",
            "GET",
            "/user/groups",
            params={"accountId": account_id},
            accept=(404,),
        )
        if response.status_code == 404:
            return []
        return [JiraGroup(str(g["groupId"]), str(g["name"])) for g in response.json()]

    def remove_from_group(self, group: JiraGroup, account_id: str) -> None:
        self.send(
            f"remove {account_id} from group {group.name}",
            "DELETE",
            "/group/user",
            params={"groupId": group.group_id, "accountId": account_id},
            accept=(404,),
        )

    # projects and roles

    def projects(self, keys: tuple[str, ...] = ()) -> list[JiraProject]:
        found: list[JiraProject] = []
        start = 0
        while True:
            params: dict[str, Any] = {"startAt": start, "maxResults": 50}
            if keys:
                params["keys"] = list(keys)
            page = self.get("list the projects", "/project/search", **params)
            values = page.get("values") or []
            found += [JiraProject(str(p["id"]), str(p["key"]), str(p["name"])) for p in values]
            if page.get("isLast", True) or not values:
                return found
            start += len(values)

    def roles(self) -> list[JiraRole]:
        return [
            JiraRole(int(r["id"]), str(r["name"]))
            for r in self.get("list the project roles", "/role")
        ]

    def create_role(self, name: str, description: str) -> JiraRole:
        body = self.send(
            f"create project role {name}",
            "POST",
            "/role",
            json={"name": name, "description": description},
        ).json()
        return JiraRole(int(body["id"]), str(body["name"]))

    def project_role_ids(self, project: str) -> list[JiraRole]:
        links = self.get(f"list the roles of project {project}", f"/project/{quote(project)}/role")
        return [
            JiraRole(int(str(url).rstrip("/").rsplit("/", 1)[1]), str(name))
            for name, url in links.items()
        ]

    def role_actors(self, project: str, role: JiraRole) -> RoleActors:
        body = self.get(
            f"read role {role.name} of project {project}",
            f"/project/{quote(project)}/role/{role.id}",
        )
        users, groups = [], []
        for actor in body.get("actors") or ():
            if actor.get("actorUser"):
                users.append(str(actor["actorUser"]["accountId"]))
            elif actor.get("actorGroup"):
                groups.append(str(actor["actorGroup"].get("groupId") or ""))
        return RoleActors(project, role, tuple(users), tuple(groups))

    def add_role_user(self, project: str, role: JiraRole, account_id: str) -> None:
        self.send(
            f"add {account_id} to role {role.name} of project {project}",
            "POST",
            f"/project/{quote(project)}/role/{role.id}",
            json={"user": [account_id]},
        )

    def remove_role_user(self, project: str, role: JiraRole, account_id: str) -> None:
        self.send(
            f"remove {account_id} from role {role.name} of project {project}",
            "DELETE",
            f"/project/{quote(project)}/role/{role.id}",
            params={"user": account_id},
            accept=(404,),
        )

    # permission schemes

    def scheme_of(self, project: str) -> int:
        body = self.get(
            f"find the permission scheme of project {project}",
            f"/project/{quote(project)}/permissionscheme",
        )
        return int(body["id"])

    def scheme_grants(self, scheme_id: int) -> list[SchemeGrant]:
        body = self.get(
            f"read permission scheme {scheme_id}", f"/permissionscheme/{scheme_id}/permission"
        )
        grants = []
        for item in body.get("permissions") or ():
            holder = item.get("holder") or {}
            value = holder.get("value") or holder.get("parameter")
            grants.append(
                SchemeGrant(
                    int(item["id"]),
                    str(item["permission"]),
                    str(holder.get("type")),
                    str(value) if value is not None else None,
                )
            )
        return grants

    def add_role_grant(self, scheme_id: int, permission: str, role: JiraRole) -> None:
        self.send(
            f"grant {permission} to role {role.name} in permission scheme {scheme_id}",
            "POST",
            f"/permissionscheme/{scheme_id}/permission",
            json={
                "holder": {"type": "projectRole", "value": str(role.id)},
                "permission": permission,
            },
        )

    def delete_grant(self, scheme_id: int, grant: SchemeGrant) -> None:
        self.send(
            f"remove {grant.permission} from permission scheme {scheme_id}",
            "DELETE",
            f"/permissionscheme/{scheme_id}/permission/{grant.id}",
            accept=(404,),
        )


class AtlassianAdmin:
    """The organisation admin API (Bearer API key): tokens and suspension."""

    def __init__(self, http: JiraHttp, api_url: str, org_id: str, api_key: Secret) -> None:
        self._http = http
        self.api_url = api_url.rstrip("/")
        self.org_id = org_id
        self._auth = f"Bearer {api_key.reveal()}"

    def tokens(self) -> Iterator[ApiTokenInfo]:
        url: str | None = f"{self.api_url}/admin/api-access/v1/orgs/{quote(self.org_id)}/api-tokens"
        while url:
            body = self._http.call(
                "list the organisation's API tokens", "GET", url, authorization=self._auth
            ).json()
            for item in body.get("data") or ():
                yield ApiTokenInfo.of(item)
            url = (body.get("links") or {}).get("next")

    def tokens_of(self, account_id: str) -> list[ApiTokenInfo]:
        return [t for t in self.tokens() if t.account_id == account_id]

    def revoke_token(self, account_id: str, token_id: str) -> bool:
        """True if revoked now, False if it was already gone."""
        response = self._http.call(
            f"revoke API token {token_id}",
            "DELETE",
            f"{self.api_url}/users/{quote(account_id)}/manage/api-tokens/{quote(token_id)}",
            authorization=self._auth,
            accept=(404,),
        )
        return response.status_code != 404

    def _directory(self, account_id: str) -> str | None:
        body = self._http.call(
            "find the account's directory",
            "GET",
            f"{self.api_url}/admin/v2/orgs/{quote(self.org_id)}/directories",
            authorization=self._auth,
            params={"accountId": account_id},
        ).json()
        data = body.get("data") or []
        return str(data[0]["directoryId"]) if data else None

    def _user_url(self, directory: str, account_id: str) -> str:
        return (
            f"{self.api_url}/admin/v2/orgs/{quote(self.org_id)}/directories/"
            f"{quote(directory)}/users/{quote(account_id)}"
        )

    def directory_user(self, account_id: str) -> tuple[str, DirectoryUser] | None:
        directory = self._directory(account_id)
        if directory is None:
            return None
        response = self._http.call(
            f"read account {account_id} in the directory",
            "GET",
            self._user_url(directory, account_id),
            authorization=self._auth,
            accept=(404,),
        )
        if response.status_code == 404:
            return None
        data = response.json().get("data") or {}
        return directory, DirectoryUser(account_id, str(data.get("status") or "active"))

    def set_suspended(self, directory: str, account_id: str, suspended: bool) -> None:
        verb = "suspend" if suspended else "restore"
        self._http.call(
            f"{verb} account {account_id}",
            "POST",
            f"{self._user_url(directory, account_id)}/{verb}",
            authorization=self._auth,
        )
