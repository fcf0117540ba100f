"""Jira provider: an Atlassian service account per agent, in its own project role.

Creating a service account is an organisation admin's act in Atlassian
Administration (there is no API for it), like clicking "Create GitHub App".
``agentctl jira register NAME --account-id ID`` records it after checking, with
the API, that the account exists, is a service account (``accountType: app``)
and not a person, and installs its API token: a *scoped* token (it works only
through the api.atlassian.com gateway) whose scopes are exactly what the
contract's friendly scopes need and whose expiry is no later than the
contract's. The token lives in the secret store (``jira/agent/<name>/api-token``),
the account id too (``.../account-id``) so kill finds the account with the
state store gone; its metadata (id, expiry, scopes) is a credential record.

``apply`` converges Jira to the contract: the agent's dedicated project role
(``jira.project_role``, default ``agentctl-<name>``) exists; in each of the
contract's projects the service account is an actor of that role, and in no
other project; each of those projects' permission schemes grants that role
exactly the project permissions the scopes map to (``scopes.py``). What
agentctl does not own and that widens access -- the account in another role,
in a group -- is reported as drift.

``kill`` works from the account id alone (state, else the secret store, else
a search for a service account named like the agent): it suspends the
account and revokes every API token it has through the organisation admin
API (when ``jira.org_id`` and an admin API key are configured), removes it
from every role of every project and from every group (found by querying
Jira, not from state), then reads all of it back. What it could not do is
``remaining``, never a silent success.

The administrator's own credentials: a Jira site administrator's classic API
token (``AGENTCTL_JIRA_ADMIN_TOKEN``, else the secret ``jira/admin/api-token``)
for ``jira.admin_email``, and optionally an organisation admin API key
(``AGENTCTL_JIRA_ADMIN_API_KEY``, else ``jira/admin/api-key``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agentctl.errors import (
    AgentctlError,
    DamagedStateRow,
    ProviderError,
    SecretStoreError,
    StateError,
)
from agentctl.model import Contract
from agentctl.providers.base import (
    ActionResult,
    Change,
    ChangeKind,
    FieldChange,
    IssuedCredential,
    LongLivedSecret,
    Observed,
    ProviderContext,
    RunContext,
    SecretRows,
)
from agentctl.providers.jira import PROVIDER, SPEC
from agentctl.providers.jira.client import (
    ApiTokenInfo,
    AtlassianAdmin,
    JiraApiError,
    JiraHttp,
    JiraRole,
    JiraSite,
    JiraUser,
    basic,
)
from agentctl.providers.jira.grant import JiraGrant
from agentctl.providers.jira.scopes import project_permissions, token_scopes
from agentctl.secrets import Secret

if TYPE_CHECKING:
    from agentctl.state.records import CredentialRecord, ResourceRecord

ENV_ADMIN_TOKEN = "AGENTCTL_JIRA_ADMIN_TOKEN"
ENV_ADMIN_API_KEY = "AGENTCTL_JIRA_ADMIN_API_KEY"
ADMIN_TOKEN_REF = "jira/admin/api-token"
ADMIN_API_KEY_REF = "jira/admin/api-key"
TOKEN_KIND = "api-token"
ADMIN_CONSOLE = "https://admin.atlassian.com"


def token_ref(agent: str) -> str:
    return f"jira/agent/{agent}/api-token"


def account_ref(agent: str) -> str:
    # The account id and e-mail as one JSON value: kill finds the account with
    # the state store gone (neither is secret; they sit next to the token).
    return f"jira/agent/{agent}/account"


def _day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).date().isoformat() if moment else "unknown"


@dataclass(frozen=True)
class JiraPlan:
    """What a Jira change carries from plan to apply."""

    account_id: str
    role: str
    add_projects: tuple[str, ...] = ()
    remove_projects: tuple[str, ...] = ()
    # scheme id -> permissions to grant the role there
    grant: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    # scheme id -> grant ids (of the role) to delete there
    revoke: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    projects: tuple[str, ...] = ()  # the contract's projects, to record
    permissions: tuple[str, ...] = ()  # the mapped permissions, to record


@dataclass(frozen=True)
class RegisteredAccount:
    """What ``agentctl jira register`` / ``jira rotate`` report (never the token)."""

    agent: str
    account_id: str
    email: str
    display_name: str
    token_id: str
    token_expires: datetime | None
    token_scopes: tuple[str, ...]
    secret_ref: str
    revoked_tokens: tuple[str, ...] = ()
    # A rotation (the old tokens revoked) rather than a first registration.
    rotated: bool = field(default=False, metadata={"json": False})


_OMIT_NONE = {"omit_none": True}


@dataclass(frozen=True)
class TokenView:
    """One of the agent's API tokens as the state knows it (never its value)."""

    id: str
    fingerprint: str
    issued_at: datetime
    expires_at: datetime
    age_days: int
    live: bool


@dataclass(frozen=True)
class AccountStatus:
    """What ``agentctl jira status`` shows; an unregistered agent has only
    ``agent`` and ``registered``."""

    agent: str
    registered: bool
    account_id: str | None = field(default=None, metadata=_OMIT_NONE)
    email: str | None = field(default=None, metadata=_OMIT_NONE)
    role: str | None = field(default=None, metadata=_OMIT_NONE)
    projects: tuple[str, ...] | None = field(default=None, metadata=_OMIT_NONE)
    permissions: tuple[str, ...] | None = field(default=None, metadata=_OMIT_NONE)
    token_scopes: tuple[str, ...] | None = field(default=None, metadata=_OMIT_NONE)
    tokens: tuple[TokenView, ...] | None = field(default=None, metadata=_OMIT_NONE)


@dataclass
class _Membership:
    """Where an account is a role actor, found by querying every project."""

    ours: set[str] = field(default_factory=set)  # projects where it holds the agent's role
    others: list[tuple[str, JiraRole]] = field(default_factory=list)


class JiraProvider:
    """Service accounts, project roles and scoped tokens; see the module docstring."""

    name = PROVIDER

    def __init__(
        self, context: ProviderContext, *, sleep: Callable[[float], None] | None = None
    ) -> None:
        self._context = context
        self._settings = context.config.settings(SPEC)
        # A test's own sleep also means no backoff wait between retries.
        self._http = (
            JiraHttp(self._settings)
            if sleep is None
            else JiraHttp(self._settings, sleep=sleep, backoff_seconds=0.0)
        )
        self._lock = threading.Lock()
        self._cloud_id: str | None = self._settings.cloud_id
        # One scan of who holds which role where, shared by every agent one
        # plan observes (kill always scans afresh).
        self._actors: dict[str, list[tuple[str, JiraRole]]] | None = None
        self._roles: dict[str, JiraRole] | None = None
        self._schemes: dict[str, int] = {}

    # -- configuration -------------------------------------------------------------

    def configured(self) -> bool:
        return bool(self._settings.site_url and self._settings.admin_email)

    def _not_configured(self) -> ProviderError:
        missing = "jira.site_url" if not self._settings.site_url else "jira.admin_email"
        return ProviderError(
            PROVIDER,
            f"Jira is not configured ({missing} is not set in agentctl.yaml)",
            hint="set jira.site_url and jira.admin_email, and give the administrator's API token "
            f"in {ENV_ADMIN_TOKEN} (see README, 'Jira set-up')",
        )

    def role_name(self, agent: str) -> str:
        return self._settings.project_role.replace("{name}", agent)

    def _secret(self, env: str, ref: str) -> Secret | None:
        value = os.environ.get(env)
        if value:
            return Secret(value)
        try:
            return self._context.secrets.get(ref)
        except SecretStoreError:
            return None

    def admin_site(self) -> JiraSite:
        if not self.configured():
            raise self._not_configured()
        token = self._secret(ENV_ADMIN_TOKEN, ADMIN_TOKEN_REF)
        if token is None:
            raise ProviderError(
                PROVIDER,
                f"no Jira administrator API token ({ENV_ADMIN_TOKEN} is not set and the secret "
                f"store holds no {ADMIN_TOKEN_REF})",
                hint=f"create an API token for {self._settings.admin_email} at "
                "https://id.atlassian.com/manage-profile/security/api-tokens",
            )
        assert self._settings.site_url and self._settings.admin_email
        return JiraSite(
            self._http, self._settings.site_url, basic(self._settings.admin_email, token)
        )

    def admin_api(self) -> AtlassianAdmin | None:
        """The organisation admin API, None when no org id or API key is configured."""
        key = self._secret(ENV_ADMIN_API_KEY, ADMIN_API_KEY_REF)
        if not self._settings.org_id or key is None:
            return None
        return AtlassianAdmin(self._http, self._settings.api_url, self._settings.org_id, key)

    def _no_admin_api(self) -> str:
        return (
            "no organisation admin API (set jira.org_id and an admin API key in "
            f"{ENV_ADMIN_API_KEY})"
        )

    @property
    def gateway_url(self) -> str:
        """Where scoped tokens work: ``{api_url}/ex/jira/{cloudId}``."""
        if self._cloud_id is None:
            if not self._settings.site_url:
                raise self._not_configured()
            body = self._http.call(
                "read the site's cloud id",
                "GET",
                f"{self._settings.site_url.rstrip('/')}/_edge/tenant_info",
                authorization="",
            ).json()
            self._cloud_id = str(body["cloudId"])
        return f"{self._settings.api_url.rstrip('/')}/ex/jira/{self._cloud_id}"

    def agent_site(self, email: str, token: Secret) -> JiraSite:
        return JiraSite(self._http, self.gateway_url, basic(email, token))

    # -- stores --------------------------------------------------------------------

    def secret_refs(self) -> list[str]:
        refs = {ADMIN_TOKEN_REF, ADMIN_API_KEY_REF}
        state = self._context.state
        agents = {r.agent for r in state.list_resources() if r.provider == PROVIDER}
        agents |= {a.name for a in state.list_agents()}
        for agent in agents:
            refs.update((token_ref(agent), account_ref(agent)))
        return sorted(refs)

    def _record(self, agent: str) -> ResourceRecord | None:
        return self._context.state.get_resource(agent, PROVIDER)

    def _killed_in_state(self, agent: str) -> bool:
        try:
            record = self._context.state.get_agent(agent)
        except StateError:
            return False
        return record is not None and record.status.killed

    def _tokens_in_state(self, agent: str, *, live: bool = True) -> list[CredentialRecord]:
        return [
            c
            for c in self._context.state.list_credentials(
                agent=agent,
                provider=PROVIDER,
                live_at=self._context.clock() if live else None,
            )
            if c.kind == TOKEN_KIND
        ]

    def _account_id(self, agent: str, record: ResourceRecord | None) -> str | None:
        """The agent's account: from state; else from the identity kept next to its
        token in the secret store; else the one service account named like the agent."""
        if record is not None and record.attributes.get("account_id"):
            return str(record.attributes["account_id"])
        try:
            stored = self._context.secrets.get(account_ref(agent))
        except SecretStoreError:
            stored = None
        if stored is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return str(json.loads(stored.reveal())["account_id"])
        found = [
            u
            for u in self.admin_site().find_users(agent)
            if u.account_type == "app"
            and (u.display_name == agent or (u.email or "").split("@")[0] == agent)
        ]
        if len(found) > 1:
            # Suspending a guess could stop another team's account and leave the
            # agent running; "none found" would be a false ✓. Say which.
            named = ", ".join(f"{u.account_id} ({u.email or u.display_name})" for u in found)
            raise ProviderError(
                PROVIDER,
                f"{len(found)} service accounts are named like {agent}: {named}; neither the "
                "state nor the secret store records which one is the agent's",
                hint=f"suspend the agent's service account at {ADMIN_CONSOLE}",
            )
        return found[0].account_id if found else None

    # -- scanning Jira ---------------------------------------------------------------

    def _all_roles(self, site: JiraSite, *, fresh: bool = False) -> dict[str, JiraRole]:
        if self._roles is None or fresh:
            self._roles = {r.name: r for r in site.roles()}
        return self._roles

    def _scan(
        self, site: JiraSite, *, fresh: bool = False
    ) -> dict[str, list[tuple[str, JiraRole]]]:
        """Account id -> (project, role) pairs it holds as a user actor, in every project."""
        with self._lock:
            if self._actors is not None and not fresh:
                return self._actors
            index: dict[str, list[tuple[str, JiraRole]]] = {}
            for project in site.projects():
                for role in site.project_role_ids(project.key):
                    actors = site.role_actors(project.key, role)
                    for account_id in actors.users:
                        index.setdefault(account_id, []).append((project.key, role))
            self._actors = index
            return index

    def _membership(
        self, site: JiraSite, agent: str, account_id: str, *, fresh: bool
    ) -> _Membership:
        found = _Membership()
        ours = self.role_name(agent)
        for project, role in self._scan(site, fresh=fresh).get(account_id, []):
            if role.name == ours:
                found.ours.add(project)
            else:
                found.others.append((project, role))
        return found

    def _scheme(self, site: JiraSite, project: str) -> int:
        if project not in self._schemes:
            self._schemes[project] = site.scheme_of(project)
        return self._schemes[project]

    def _forget(self) -> None:
        with self._lock:
            self._actors = None
            self._roles = None
            self._schemes = {}

    # -- observe / plan --------------------------------------------------------------

    def observe(self, agent: str) -> Observed:
        record = self._record(agent)
        if record is None:
            return Observed(PROVIDER, agent, exists=False)
        attrs = dict(record.attributes)
        account_id = str(attrs["account_id"])
        site = self.admin_site()
        drift: list[str] = []
        user = site.user(account_id)
        if user is None:
            drift.append(
                f"service account {account_id} no longer exists in Jira: register a new one "
                f"with `agentctl jira register {agent} --account-id ID`"
            )
        role = self._all_roles(site).get(self.role_name(agent))
        membership = self._membership(site, agent, account_id, fresh=False)
        groups = site.groups_of(account_id) if user is not None else []
        return Observed(
            PROVIDER,
            agent,
            exists=True,
            resource_id=account_id,
            killed=self._killed_in_state(agent),
            disabled=attrs.get("disabled") == "expired",
            attributes={
                "recorded": attrs,
                "account_id": account_id,
                "account_active": user is not None and user.active,
                "role_id": role.id if role is not None else None,
                "projects": sorted(membership.ours),
                "other_roles": sorted(f"{role.name} in {p}" for p, role in membership.others),
                "groups": sorted(g.name for g in groups),
            },
            drift=tuple(drift),
        )

    def _schemes_of(
        self, projects: tuple[str, ...], role_id: int | None
    ) -> tuple[set[str], dict[str, int], dict[int, list[tuple[int, str]]]]:
        """For the contract's projects: which exist, their permission schemes, and
        what each scheme grants the agent's role (grant id, permission)."""
        site = self.admin_site()
        existing = {p.key for p in site.projects(projects)} if projects else set()
        schemes: dict[str, int] = {}
        grants: dict[int, list[tuple[int, str]]] = {}
        for project in sorted(existing):
            scheme = self._scheme(site, project)
            schemes[project] = scheme
            if scheme not in grants:
                grants[scheme] = (
                    [
                        (g.id, g.permission)
                        for g in site.scheme_grants(scheme)
                        if g.holder_type == "projectRole" and g.holder == str(role_id)
                    ]
                    if role_id is not None
                    else []
                )
        return existing, schemes, grants

    def _projects(self, attrs: Mapping[str, Any], grant: JiraGrant | None) -> tuple[str, ...]:
        if grant is not None:
            return (
                grant.projects
                if grant.projects is not None
                else self._settings.default_project_keys
            )
        recorded = attrs.get("projects")
        return tuple(recorded) if recorded else ()

    def plan(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[JiraPlan]]:
        agent = observed.agent
        attrs = observed.attributes
        if contract is None:
            if not observed.exists:
                return []
            return [
                Change(
                    PROVIDER,
                    agent,
                    ChangeKind.REMOVE,
                    f"remove {agent} from every Jira project role and group and revoke its API "
                    "tokens (the service account itself is the organisation admin's to delete)",
                    payload=JiraPlan(str(attrs["account_id"]), self.role_name(agent)),
                )
            ]
        if not observed.exists:
            if expired:
                return []
            if not self.configured():
                raise self._not_configured()
            raise ProviderError(
                PROVIDER,
                f"no Jira service account is registered for {agent}: create one in Atlassian "
                f"Administration, then `agentctl jira register {agent} --account-id ID`",
                hint=f"agentctl jira register {agent} --account-id ID --token-file FILE",
            )
        if observed.killed:
            return []  # killed agents stay killed: only revive brings them back
        account_id = str(attrs["account_id"])
        role_name = self.role_name(agent)
        if expired:
            if attrs.get("projects") or self._tokens_in_state(agent):
                return [
                    Change(
                        PROVIDER,
                        agent,
                        ChangeKind.DISABLE,
                        f"disable {agent} in Jira (contract expired): remove it from its project "
                        "roles and groups and revoke its API tokens",
                        payload=JiraPlan(account_id, role_name),
                    )
                ]
            return []
        grant = contract.grant(SPEC) or JiraGrant(())
        projects = self._projects({}, grant)
        if not projects:
            raise ProviderError(
                PROVIDER,
                f"the jira grant of {agent} names no projects and jira.default_projects is not set",
                hint="write {projects: [KEY], scopes: [...]} or set jira.default_projects",
            )
        permissions = project_permissions(grant.scopes)
        existing, schemes, role_grants = self._schemes_of(projects, attrs.get("role_id"))
        missing = sorted(set(projects) - existing)
        present = tuple(p for p in projects if p in existing)
        held = set(attrs.get("projects") or ())
        add = tuple(sorted(set(present) - held))
        remove = tuple(sorted(held - set(projects)))
        grant_more: dict[int, tuple[str, ...]] = {}
        revoke: dict[int, tuple[int, ...]] = {}
        for scheme in sorted({schemes[p] for p in present if p in schemes}):
            have = role_grants.get(scheme, [])
            have_permissions = {p for _, p in have}
            extra = tuple(gid for gid, p in have if p not in permissions)
            more = tuple(p for p in permissions if p not in have_permissions)
            if more:
                grant_more[scheme] = more
            if extra:
                revoke[scheme] = extra
        recorded = attrs.get("recorded") or {}
        needs_role = attrs.get("role_id") is None
        changes: list[Change[JiraPlan]] = []
        same_record = (
            list(recorded.get("projects") or []) == list(projects)
            and list(recorded.get("permissions") or []) == list(permissions)
            and recorded.get("role") == role_name
        )
        if add or remove or grant_more or revoke or needs_role or not same_record:
            fields = []
            if add or remove:
                fields.append(FieldChange("projects", sorted(held), list(present)))
            if grant_more or revoke:
                fields.append(
                    FieldChange(
                        "permissions",
                        sorted({p for g in role_grants.values() for _, p in g}),
                        list(permissions),
                    )
                )
            parts = []
            if needs_role:
                parts.append(f"create project role {role_name}")
            if add:
                parts.append(f"add {agent} to role {role_name} in {', '.join(add)}")
            if remove:
                parts.append(f"remove {agent} from role {role_name} in {', '.join(remove)}")
            if grant_more or revoke:
                parts.append(f"grant role {role_name} exactly {', '.join(permissions)}")
            first = not recorded.get("projects")
            changes.append(
                Change(
                    PROVIDER,
                    agent,
                    ChangeKind.CREATE if first else ChangeKind.UPDATE,
                    "; ".join(parts) or f"record the Jira grant of {agent} (no change in Jira)",
                    fields=tuple(fields),
                    payload=JiraPlan(
                        account_id,
                        role_name,
                        add,
                        remove,
                        grant_more,
                        revoke,
                        tuple(projects),
                        permissions,
                    ),
                )
            )
        changes.extend(self._drift(agent, attrs, observed, grant, missing))
        return changes

    def _drift(
        self,
        agent: str,
        attrs: Mapping[str, Any],
        observed: Observed,
        grant: JiraGrant,
        missing: list[str],
    ) -> list[Change[JiraPlan]]:
        texts = list(observed.drift)
        for project in missing:
            texts.append(
                f"project {project} does not exist in Jira (or the administrator cannot see it): "
                "nothing granted there"
            )
        for held in attrs.get("other_roles") or ():
            texts.append(
                f"{agent}'s account is also in project role {held}, which agentctl does not "
                "manage: remove it there (it widens access beyond the contract)"
            )
        for group in attrs.get("groups") or ():
            texts.append(
                f"{agent}'s account is in group {group}: groups can widen access beyond the "
                "contract (permission schemes and roles may grant to them); remove it there"
            )
        recorded = attrs.get("recorded") or {}
        held_scopes = set(recorded.get("token_scopes") or ())
        if held_scopes:
            needed = set(token_scopes(grant.scopes))
            if held_scopes - needed:
                texts.append(
                    f"{agent}'s API token carries scopes the contract does not need "
                    f"({', '.join(sorted(held_scopes - needed))}): install one with exactly "
                    f"{', '.join(sorted(needed))} (`agentctl jira rotate {agent} --token-file F`)"
                )
            if needed - held_scopes:
                texts.append(
                    f"{agent}'s API token lacks scopes the contract needs "
                    f"({', '.join(sorted(needed - held_scopes))}): `agentctl jira rotate {agent} "
                    "--token-file F` with a token that has them"
                )
        return [Change(PROVIDER, agent, ChangeKind.DRIFT, text) for text in texts]

    # -- apply ----------------------------------------------------------------------

    # This provider's ActionResult: _result(agent, action, ok=..., detail=..., ...), checked by mypy.
    _result = functools.partial(ActionResult, PROVIDER)

    def apply(self, change: Change[JiraPlan]) -> ActionResult:
        payload = change.payload
        if payload is None:
            return self._result(
                change.agent, change.kind.value, ok=False, detail=f"{change.summary}: no plan"
            )
        try:
            if change.kind in (ChangeKind.CREATE, ChangeKind.UPDATE):
                return self._converge(change.agent, change.kind.value, payload)
            if change.kind in (ChangeKind.DISABLE, ChangeKind.REMOVE):
                return self._shut(change.agent, change.kind.value, suspend=False)
        except AgentctlError as exc:
            return ActionResult.failed(
                PROVIDER,
                change.agent,
                change.kind.value,
                exc,
                remaining=f"re-run `agentctl apply` to {change.kind.value} {change.agent} in Jira",
            )
        return self._result(change.agent, change.kind.value, ok=False, detail=change.summary)

    def _converge(self, agent: str, action: str, plan: JiraPlan) -> ActionResult:
        site = self.admin_site()
        role = self._all_roles(site, fresh=True).get(plan.role)
        if role is None:
            role = site.create_role(
                plan.role, f"agentctl: the project access of agent {agent} (managed by agentctl)"
            )
        for scheme, permissions in plan.grant.items():
            have = {
                g.permission
                for g in site.scheme_grants(scheme)
                if g.holder_type == "projectRole" and g.holder == str(role.id)
            }
            for permission in permissions:
                if permission not in have:
                    site.add_role_grant(scheme, permission, role)
        for scheme, grant_ids in plan.revoke.items():
            for grant in site.scheme_grants(scheme):
                if grant.id in grant_ids:
                    site.delete_grant(scheme, grant)
        for project in plan.add_projects:
            if plan.account_id not in site.role_actors(project, role).users:
                site.add_role_user(project, role, plan.account_id)
        for project in plan.remove_projects:
            site.remove_role_user(project, role, plan.account_id)
        self._forget()
        record = self._record(agent)
        attributes = {
            **(dict(record.attributes) if record is not None else {}),
            "role": plan.role,
            "role_id": role.id,
            "projects": list(plan.projects),
            "permissions": list(plan.permissions),
            "disabled": None,
        }
        parts = []
        if plan.add_projects:
            parts.append(f"added to {role.name} in {', '.join(plan.add_projects)}")
        if plan.remove_projects:
            parts.append(f"removed from {role.name} in {', '.join(plan.remove_projects)}")
        if plan.grant or plan.revoke:
            parts.append(f"{role.name} granted {', '.join(plan.permissions)}")
        return self._result(
            agent,
            action,
            ok=True,
            detail="; ".join(parts) or "recorded (no change in Jira)",
            resource_id=plan.account_id,
            attributes=attributes,
        )

    # -- kill / disable / remove -------------------------------------------------------

    def kill(self, agent: str, reason: str) -> ActionResult:
        """Suspend the account, revoke its tokens, take it out of every role and group,
        read it all back. Never raises for a Jira failure: ``remaining`` says what is left."""
        try:
            return self._shut(agent, "kill", suspend=True)
        except AgentctlError as exc:
            return ActionResult.failed(
                PROVIDER,
                agent,
                "kill",
                exc,
                remaining=f"run `agentctl kill {agent}` again, or suspend {agent}'s service "
                f"account and revoke its API tokens by hand at {ADMIN_CONSOLE}",
            )

    def _stored_identity(self, agent: str) -> bool:
        try:
            return self._context.secrets.get(account_ref(agent)) is not None
        except SecretStoreError:
            return False

    def _agent_known(self, agent: str) -> bool:
        try:
            return self._context.state.get_agent(agent) is not None
        except DamagedStateRow:
            return True  # its row is there, only damaged (its resources still read)
        except StateError:
            return False

    def _not_here(self, agent: str, action: str, record: ResourceRecord | None) -> ActionResult:
        """Jira is not configured on this machine: never a ✓ for an agent that has,
        or may have, a service account."""
        has = record is not None or self._stored_identity(agent)
        if not has and self._agent_known(agent):
            # The state knows this agent and records no Jira account: it records
            # every account agentctl registers (`jira register`).
            return self._result(
                agent,
                action,
                ok=True,
                detail="no Jira service account recorded for it (Jira is not configured here)",
            )
        configure = (
            "set jira.site_url and jira.admin_email in agentctl.yaml (and the administrator's "
            f"token in {ENV_ADMIN_TOKEN}) and run `agentctl {action} {agent}` again"
        )
        if has:
            account = record.resource_id if record is not None else f"of {agent}"
            return self._result(
                agent,
                action,
                ok=False,
                resource_id=record.resource_id if record is not None else None,
                detail=f"Jira is not configured here, so service account {account} could not "
                "be suspended or taken out of its roles",
                remaining=f"{configure}, or suspend service account {account} and revoke its "
                f"API tokens at {ADMIN_CONSOLE} (Directory > Service accounts)",
            )
        return self._result(
            agent,
            action,
            ok=False,
            undetermined=True,
            detail=f"Jira is not configured here and nothing here says whether {agent} has a "
            "Jira service account",
            remaining=f"{configure}; or look for a service account named {agent} at "
            f"{ADMIN_CONSOLE} (Directory > Service accounts), suspend it and revoke its tokens",
        )

    def _shut(self, agent: str, action: str, *, suspend: bool) -> ActionResult:
        """kill (suspend=True), DISABLE and REMOVE: suspension, tokens, then roles and
        groups, each read back. One failure never stops the rest."""
        notes: list[str] = []
        remaining: list[str] = []
        done: list[str] = []
        verified: list[str] = []
        try:
            record = self._record(agent)
        except StateError:
            record = None
            notes.append(
                "state store unreachable: the account was found by the secret store or name"
            )
        if not self.configured():
            return self._not_here(agent, action, record)
        account_id = self._account_id(agent, record)
        if account_id is None:
            return self._result(
                agent,
                action,
                ok=True,
                detail=f"no Jira service account recorded for or named {agent}",
            )
        site = self.admin_site()
        admin = self.admin_api()
        # 1. Suspension: nothing the account holds authenticates any more.
        if suspend:
            self._suspend(admin, account_id, done, remaining, verified)
        # 2. Its API tokens, found by asking the admin API (not only the state).
        self._revoke_tokens(agent, admin, account_id, done, remaining, verified)
        # 3. Every role in every project, and every group: found by querying Jira.
        self._leave_everything(site, agent, account_id, done, remaining, verified)
        self._forget()
        attributes: dict[str, Any] = {}
        if action == "disable" and record is not None:
            attributes = {**record.attributes, "projects": [], "disabled": "expired"}
        already = not done and not remaining
        detail = (
            "; ".join(done)
            if done
            else "already " + ("killed" if action == "kill" else action + "d")
        )
        if verified:
            detail += "; read back: " + ", ".join(verified)
        return self._result(
            agent,
            action,
            ok=not remaining,
            already=already,
            detail="; ".join([detail, *notes]),
            resource_id=account_id,
            attributes=attributes,
            remaining="; ".join(remaining),
            verified=tuple(verified),
        )

    def _suspend(
        self,
        admin: AtlassianAdmin | None,
        account_id: str,
        done: list[str],
        remaining: list[str],
        verified: list[str],
    ) -> None:
        if admin is None:
            remaining.append(
                f"suspend service account {account_id} at {ADMIN_CONSOLE} ({self._no_admin_api()})"
            )
            return
        try:
            found = admin.directory_user(account_id)
            if found is None:
                remaining.append(f"account {account_id} is in no directory of the organisation")
                return
            directory, user = found
            if user.status != "suspended":
                admin.set_suspended(directory, account_id, True)
                done.append("suspended its access")
            after = admin.directory_user(account_id)
        except JiraApiError as exc:
            remaining.append(f"suspend account {account_id} at {ADMIN_CONSOLE} ({exc.reason()})")
            return
        if after is None or after[1].status != "suspended":
            remaining.append(
                f"account {account_id} still reads as not suspended: suspend it at {ADMIN_CONSOLE}"
            )
            return
        verified.append("account suspended")

    def _revoke_tokens(
        self,
        agent: str,
        admin: AtlassianAdmin | None,
        account_id: str,
        done: list[str],
        remaining: list[str],
        verified: list[str],
    ) -> None:
        now = self._context.clock()
        try:
            recorded = self._tokens_in_state(agent)
        except StateError:
            recorded = []
        if admin is None:
            remaining.append(
                f"revoke the API tokens of service account {account_id} at {ADMIN_CONSOLE} "
                f"({self._no_admin_api()})"
            )
            return
        try:
            tokens = admin.tokens_of(account_id)
            revoked = [t.id for t in tokens if admin.revoke_token(account_id, t.id)]
            left = admin.tokens_of(account_id)
        except JiraApiError as exc:
            remaining.append(
                f"revoke the API tokens of {account_id} at {ADMIN_CONSOLE} ({exc.reason()})"
            )
            return
        if left:
            remaining.append(
                f"{len(left)} API token(s) of {account_id} still listed after revocation: "
                f"revoke them at {ADMIN_CONSOLE}"
            )
            return
        verified.append("no API token listed")
        if revoked:
            done.append(f"revoked {len(revoked)} API token{'s' if len(revoked) != 1 else ''}")
        for credential in recorded:
            with contextlib.suppress(StateError):
                self._context.state.mark_credential_revoked(credential.id, now)
        with contextlib.suppress(SecretStoreError):
            self._context.secrets.delete(token_ref(agent))

    def _has_token_value(self, agent: str) -> bool:
        try:
            return self._context.secrets.get(token_ref(agent)) is not None
        except SecretStoreError:
            return False

    def _leave_everything(
        self,
        site: JiraSite,
        agent: str,
        account_id: str,
        done: list[str],
        remaining: list[str],
        verified: list[str],
    ) -> None:
        try:
            held = self._scan(site, fresh=True).get(account_id, [])
            for project, role in held:
                site.remove_role_user(project, role, account_id)
            groups = site.groups_of(account_id)
            for group in groups:
                site.remove_from_group(group, account_id)
            left_roles = self._scan(site, fresh=True).get(account_id, [])
            left_groups = site.groups_of(account_id)
        except JiraApiError as exc:
            remaining.append(
                f"remove {account_id} from its Jira project roles and groups ({exc.reason()})"
            )
            return
        if left_roles or left_groups:
            remaining.append(
                f"{account_id} still holds "
                + ", ".join(
                    [f"role {r.name} in {p}" for p, r in left_roles]
                    + [f"group {g.name}" for g in left_groups]
                )
                + f": remove it in each project's People settings and at {ADMIN_CONSOLE}"
            )
            return
        verified.append("in no project role, in no group")
        if held:
            projects = sorted({p for p, _ in held})
            done.append(f"removed from {len(held)} project role(s) in {', '.join(projects)}")
        if groups:
            done.append(f"removed from group(s) {', '.join(g.name for g in groups)}")

    def check_killed(self, agent: str) -> ActionResult:
        """Read only: is the account still suspended, token-less, in no role and no
        group? (ChecksKill)"""
        action = "check-kill"
        try:
            record = self._record(agent)
        except StateError:
            record = None
        if record is None and not self._stored_identity(agent):
            return self._result(agent, action, ok=True, detail="no Jira service account recorded")
        if not self.configured():
            result = self._not_here(agent, action, record)
            return replace(result, undetermined=True, detail="cannot check: " + result.detail)
        undone: list[str] = []
        verified: list[str] = []
        try:
            account_id = self._account_id(agent, record)
            if account_id is None:
                return self._result(agent, action, ok=True, detail="no Jira service account found")
            site = self.admin_site()
            roles = self._scan(site, fresh=True).get(account_id, [])
            groups = site.groups_of(account_id)
            admin = self.admin_api()
            tokens = admin.tokens_of(account_id) if admin is not None else None
            found = admin.directory_user(account_id) if admin is not None else None
        except ProviderError as exc:  # Jira's answer, or no one account to check
            return self._result(
                agent, action, ok=False, undetermined=True, detail=f"cannot check: {exc.reason()}"
            )
        if roles:
            undone.append("back in " + ", ".join(f"role {r.name} in {p}" for p, r in roles))
        if groups:
            undone.append("back in group(s) " + ", ".join(g.name for g in groups))
        if not roles and not groups:
            verified.append("in no project role, in no group")
        if tokens:
            undone.append(f"{len(tokens)} API token(s) listed again")
        elif tokens is not None:
            verified.append("no API token listed")
        if found is not None and found[1].status != "suspended":
            undone.append("account no longer suspended")
        elif found is not None:
            verified.append("account suspended")
        if undone:
            return self._result(
                agent,
                action,
                ok=False,
                detail="; ".join(undone),
                verified=tuple(verified),
                remaining=f"run `agentctl kill {agent}` to restore the kill",
            )
        return self._result(
            agent, action, ok=True, detail=", ".join(verified), verified=tuple(verified)
        )

    # -- revive / rotate ------------------------------------------------------------------

    def revive(self, agent: str, reason: str) -> ActionResult:
        record = self._record(agent)
        if record is None:
            return self._result(agent, "revive", ok=True, already=True, detail="no Jira account")
        account_id = str(record.attributes["account_id"])
        admin = self.admin_api()
        if admin is None:
            return self._result(
                agent,
                "revive",
                ok=False,
                detail=self._no_admin_api(),
                remaining=f"restore service account {account_id} at {ADMIN_CONSOLE}",
            )
        found = admin.directory_user(account_id)
        restored = False
        if found is not None and found[1].status == "suspended":
            admin.set_suspended(found[0], account_id, False)
            restored = True
        return self._result(
            agent,
            "revive",
            ok=True,
            already=not restored,
            detail=("restored its access" if restored else "not suspended")
            + f"; its API tokens were revoked: give it a new one with `agentctl jira rotate "
            f"{agent} --token-file F`; `agentctl apply` puts back its project roles",
            resource_id=account_id,
        )

    def rotate(self, agent: str) -> ActionResult:
        """Atlassian has no API that mints a service account's token: check the installed
        one still works and say when a new one is due (installed by ``jira rotate``)."""
        record = self._record(agent)
        if record is None:
            return self._result(agent, "rotate", ok=True, already=True, detail="no Jira account")
        attrs = record.attributes
        token = self._context.secrets.get(token_ref(agent))
        how = self._how_to_replace(agent, attrs)
        if token is None:
            return self._result(
                agent, "rotate", ok=False, detail="no API token in the secret store", remaining=how
            )
        self.agent_site(str(attrs.get("email")), token).myself()
        now = self._context.clock()
        live = self._tokens_in_state(agent)
        if not live:
            return self._result(
                agent, "rotate", ok=False, detail="no live API token recorded", remaining=how
            )
        current = live[-1]
        age = (now - current.issued_at).days
        left = (current.expires_at - now).days
        max_age = self._context.config.rotation_max_age_days
        detail = f"API token {current.id} works; {age} days old, expires {_day(current.expires_at)}"
        if age >= max_age or left <= 30:
            return self._result(
                agent,
                "rotate",
                ok=False,
                detail=detail + " (due: Atlassian mints no service account tokens by API)",
                remaining=how,
                resource_id=record.resource_id,
            )
        return self._result(
            agent,
            "rotate",
            ok=True,
            detail=detail
            + f"; not due yet (`agentctl jira rotate {agent} --token-file F` replaces it)",
            resource_id=record.resource_id,
        )

    @staticmethod
    def _how_to_replace(agent: str, attrs: Mapping[str, Any]) -> str:
        return (
            f"create a new API token for {attrs.get('email')} at {ADMIN_CONSOLE} (scopes "
            f"{', '.join(attrs.get('token_scopes') or [])}; expiry no later than the contract's), "
            f"then `agentctl jira rotate {agent} --token-file F`"
        )

    def long_lived_secrets(self, rows: SecretRows | None = None) -> list[LongLivedSecret]:
        """Each agent's live API tokens: Atlassian dates them (created, expiry),
        and only a person can mint the next one."""
        return [
            LongLivedSecret(
                agent=c.agent,
                provider=PROVIDER,
                kind=TOKEN_KIND,
                id=c.id,
                fingerprint=c.fingerprint,
                created_at=c.issued_at,
                tracked_since=c.issued_at,
                expires_at=c.expires_at,
            )
            for c in (self._context.state if rows is None else rows).list_credentials(
                provider=PROVIDER, live_at=self._context.clock()
            )
            if c.kind == TOKEN_KIND
        ]

    def replacement_steps(self, secret: LongLivedSecret) -> str:
        record = self._record(secret.agent)
        attrs = record.attributes if record is not None else {}
        # `jira rotate` revokes the account's other tokens once the new one checks out.
        return self._how_to_replace(secret.agent, attrs) + f", which revokes {secret.id}"

    # -- registration and token installation ------------------------------------------

    def _check_token(
        self,
        contract: Contract,
        user: JiraUser,
        token: Secret,
        *,
        exclude: Iterable[str] = (),
    ) -> ApiTokenInfo:
        """Use the token, then find it in the admin API's list and check its
        scopes and expiry against the contract."""
        agent = contract.name
        email = user.email or ""
        try:
            me = self.agent_site(email, token).myself()
        except JiraApiError as exc:
            raise ProviderError(
                PROVIDER,
                f"the token was refused through the API gateway ({exc.reason()}): it must be a "
                f"scoped API token of {email} (classic tokens are not accepted), not expired",
                hint=f"create a scoped API token for the service account at {ADMIN_CONSOLE}",
            ) from None
        if me.account_id != user.account_id:
            raise ProviderError(
                PROVIDER,
                f"the token belongs to {me.account_id}, not to {user.account_id}",
                hint=f"create the token for {agent}'s own service account",
            )
        admin = self.admin_api()
        if admin is None:
            raise ProviderError(
                PROVIDER,
                f"cannot check the token's scopes and expiry: {self._no_admin_api()}",
                hint="see README, 'Jira set-up'",
            )
        skip = set(exclude)
        candidates = [
            t for t in admin.tokens_of(user.account_id) if t.id not in skip and t.last_active
        ]
        if not candidates:
            raise ProviderError(
                PROVIDER, f"the admin API lists no used API token of {user.account_id}"
            )
        info = max(candidates, key=lambda t: t.last_active or datetime.min.replace(tzinfo=UTC))
        needed = set(token_scopes((contract.grant(SPEC) or JiraGrant(())).scopes))
        held = set(info.scopes)
        if not held:
            raise ProviderError(
                PROVIDER,
                "the token has no scopes: it reaches everything the account can",
                hint=f"create a scoped token with exactly {', '.join(sorted(needed))}",
            )
        if held != needed:
            problems = []
            if needed - held:
                problems.append(f"lacks {', '.join(sorted(needed - held))}")
            if held - needed:
                problems.append(f"also has {', '.join(sorted(held - needed))}")
            raise ProviderError(
                PROVIDER,
                f"the token's scopes do not match the contract: it {' and '.join(problems)}",
                hint=f"create a token with exactly {', '.join(sorted(needed))}",
            )
        if info.expires is None or info.expires.date() > contract.expiry:
            raise ProviderError(
                PROVIDER,
                f"the token expires {_day(info.expires)}, after the contract "
                f"({contract.expiry.isoformat()})",
                hint=f"create a token that expires on or before {contract.expiry.isoformat()}",
            )
        return info

    def register(self, contract: Contract, account_id: str, token: Secret) -> RegisteredAccount:
        agent = contract.name
        state = self._context.state
        existing = state.get_resource(agent, PROVIDER)
        if existing is not None:
            raise ProviderError(
                PROVIDER,
                f"{agent} already has Jira service account {existing.resource_id}: nothing was registered",
                hint=f"`agentctl jira rotate {agent} --token-file F` installs a new token",
            )
        site = self.admin_site()
        user = site.user(account_id)
        if user is None:
            raise ProviderError(
                PROVIDER,
                f"no Jira account {account_id}",
                hint=f"copy the service account's id from {ADMIN_CONSOLE} (Directory > Service accounts)",
            )
        if user.account_type != "app":
            kind = (
                "a person" if user.account_type == "atlassian" else f"a {user.account_type} account"
            )
            raise ProviderError(
                PROVIDER,
                f"account {account_id} ({user.display_name}) is {kind}, not a service account: "
                "an agent never acts as a person",
                hint=f"create a service account for {agent} at {ADMIN_CONSOLE}",
            )
        if not user.active or not user.email:
            raise ProviderError(PROVIDER, f"service account {account_id} is not active")
        info = self._check_token(contract, user, token)
        return self._install(contract, user, token, info, revoke_others=False)

    def rotate_token(self, contract: Contract, token: Secret) -> RegisteredAccount:
        agent = contract.name
        record = self._record(agent)
        if record is None:
            raise ProviderError(
                PROVIDER,
                f"no Jira service account is registered for {agent}",
                hint=f"agentctl jira register {agent} --account-id ID",
            )
        if self._killed_in_state(agent):
            raise ProviderError(
                PROVIDER,
                f"{agent} is killed: no token installed",
                hint=f"`agentctl revive {agent} --reason ...` first",
            )
        user = self.admin_site().user(str(record.attributes["account_id"]))
        if user is None:
            raise ProviderError(PROVIDER, f"service account {record.resource_id} no longer exists")
        old = record.attributes.get("token_id")
        info = self._check_token(contract, user, token, exclude=[str(old)] if old else [])
        return self._install(contract, user, token, info, revoke_others=True)

    def _install(
        self,
        contract: Contract,
        user: JiraUser,
        token: Secret,
        info: ApiTokenInfo,
        *,
        revoke_others: bool,
    ) -> RegisteredAccount:
        agent = contract.name
        state = self._context.state
        secrets = self._context.secrets
        secrets.put(token_ref(agent), token)
        secrets.put(
            account_ref(agent),
            Secret(json.dumps({"account_id": user.account_id, "email": user.email})),
        )
        now = self._context.clock()
        record = state.get_resource(agent, PROVIDER)
        attributes = {
            **(dict(record.attributes) if record is not None else {"projects": None}),
            "account_id": user.account_id,
            "email": user.email,
            "display_name": user.display_name,
            "role": self.role_name(agent),
            "token_id": info.id,
            "token_expires": info.expires.isoformat() if info.expires else None,
            "token_scopes": list(info.scopes),
        }
        state.put_resource(agent, PROVIDER, user.account_id, attributes)
        credential_id = f"jira-{info.id}"
        if not any(c.id == credential_id for c in self._tokens_in_state(agent, live=False)):
            state.add_credential(
                id=credential_id,
                agent=agent,
                provider=PROVIDER,
                kind=TOKEN_KIND,
                fingerprint=token.fingerprint(),
                issued_at=info.created or now,
                expires_at=info.expires or now + timedelta(days=365),
                secret_ref=token_ref(agent),
            )
        revoked: list[str] = []
        if revoke_others:
            admin = self.admin_api()
            assert admin is not None  # _check_token needed it
            for other in admin.tokens_of(user.account_id):
                if other.id != info.id and admin.revoke_token(user.account_id, other.id):
                    revoked.append(other.id)
            for credential in self._tokens_in_state(agent):
                if credential.id != credential_id:
                    state.mark_credential_revoked(credential.id, now)
        return RegisteredAccount(
            agent=agent,
            account_id=user.account_id,
            email=user.email or "",
            display_name=user.display_name,
            token_id=info.id,
            token_expires=info.expires,
            token_scopes=info.scopes,
            secret_ref=token_ref(agent),
            revoked_tokens=tuple(revoked),
            rotated=revoke_others,
        )

    # -- credentials ---------------------------------------------------------------------

    def issue_credentials(self, contract: Contract, run: RunContext) -> IssuedCredential:
        agent = contract.name
        if not contract.grants_to(PROVIDER):
            raise ProviderError(PROVIDER, f"the contract of {agent} grants nothing in Jira")
        if self._killed_in_state(agent):
            raise ProviderError(
                PROVIDER,
                f"{agent} is killed: no Jira token handed out",
                hint=f"`agentctl revive {agent} --reason ...` if it should run again",
            )
        record = self._record(agent)
        if record is None:
            raise ProviderError(
                PROVIDER,
                f"no Jira service account is registered for {agent}",
                hint=f"agentctl jira register {agent} --account-id ID",
            )
        token = self._context.secrets.get(token_ref(agent))
        live = self._tokens_in_state(agent)
        if token is None or not live:
            raise ProviderError(
                PROVIDER,
                f"{agent} has no live Jira API token (revoked or expired)",
                hint=f"agentctl jira rotate {agent} --token-file F",
            )
        current = live[-1]
        grant = contract.grant(SPEC) or JiraGrant(())
        projects = self._projects({}, grant)
        attrs = record.attributes
        return IssuedCredential(
            provider=PROVIDER,
            credential_id=current.id,
            fingerprint=token.fingerprint(),
            issued_at=current.issued_at,
            expires_at=current.expires_at,
            environment={
                # Scoped tokens work only through the gateway; the site URL is
                # for links people open.
                "JIRA_BASE_URL": self.gateway_url,
                "JIRA_SITE_URL": (self._settings.site_url or "").rstrip("/"),
                "JIRA_USER": str(attrs.get("email") or ""),
                "JIRA_API_TOKEN": token,
            },
            description=f"Jira API token of {attrs.get('email')} ({','.join(grant.scopes)} in "
            f"{','.join(projects)}; the token itself expires {_day(current.expires_at)})",
        )

    def revoke_credential(self, agent: str, credential_id: str) -> ActionResult:
        # The service account's token outlives one run: Atlassian has no API
        # that mints a token per run. Kill revokes it.
        return self._result(
            agent,
            "revoke",
            ok=True,
            already=True,
            detail=f"Jira API token {credential_id} is the agent's own and outlives the run "
            f"(`agentctl kill {agent}` revokes it)",
        )

    def status(self, agent: str) -> AccountStatus:
        record = self._record(agent)
        if record is None:
            return AccountStatus(agent=agent, registered=False)
        attrs = record.attributes
        now = self._context.clock()
        tokens = tuple(
            TokenView(
                id=c.id,
                fingerprint=c.fingerprint,
                issued_at=c.issued_at,
                expires_at=c.expires_at,
                age_days=(now - c.issued_at).days,
                live=c.is_live(now),
            )
            for c in self._tokens_in_state(agent, live=False)
        )
        return AccountStatus(
            agent=agent,
            registered=True,
            account_id=attrs.get("account_id"),
            email=attrs.get("email"),
            role=attrs.get("role"),
            projects=tuple(attrs.get("projects") or ()),
            permissions=tuple(attrs.get("permissions") or ()),
            token_scopes=tuple(attrs.get("token_scopes") or ()),
            tokens=tokens,
        )
