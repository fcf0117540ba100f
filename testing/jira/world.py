"""The emulated Atlassian organisation and Jira site: records and the rules that change them.

Everything is a plain record referring to others by id, so the whole world
serialises to JSON (``--state-file``). Not thread-safe by itself: the server
serialises access with one lock.

What is modelled, because agentctl's promises depend on it:

* accounts: people (``atlassian``), service accounts (``app``) and customers;
  active, or suspended by an organisation admin;
* groups, project roles (global definitions, per-project actors: users and
  groups), permission schemes with grants to roles, groups, users, any
  logged-in user, anyone, the project lead, reporter or assignee;
* projects, issues with the simplified workflow (To Do / In Progress / Done),
  comments;
* API tokens: classic (no scopes, used at the site URL) and scoped (used
  through the ``api.atlassian.com/ex/jira/{cloudId}`` gateway), each with an
  expiry; only their SHA-256 is kept;
* organisation admin API keys (Bearer), with the admin scopes they carry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import types
import typing
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from agentctl.clock import Clock

AccountType = Literal["atlassian", "app", "customer"]

# Project permissions Jira Cloud knows (key -> display name). Grants may name
# only these; the emulator's own rules use a subset.
PROJECT_PERMISSIONS: Mapping[str, str] = {
    "ADD_COMMENTS": "Add Comments",
    "ADMINISTER_PROJECTS": "Administer Projects",
    "ASSIGNABLE_USER": "Assignable User",
    "ASSIGN_ISSUES": "Assign Issues",
    "BROWSE_PROJECTS": "Browse Projects",
    "CLOSE_ISSUES": "Close Issues",
    "CREATE_ATTACHMENTS": "Create Attachments",
    "CREATE_ISSUES": "Create Issues",
    "DELETE_ALL_ATTACHMENTS": "Delete All Attachments",
    "DELETE_ALL_COMMENTS": "Delete All Comments",
    "DELETE_ALL_WORKLOGS": "Delete All Worklogs",
    "DELETE_ISSUES": "Delete Issues",
    "DELETE_OWN_ATTACHMENTS": "Delete Own Attachments",
    "DELETE_OWN_COMMENTS": "Delete Own Comments",
    "DELETE_OWN_WORKLOGS": "Delete Own Worklogs",
    "EDIT_ALL_COMMENTS": "Edit All Comments",
    "EDIT_ALL_WORKLOGS": "Edit All Worklogs",
    "EDIT_ISSUES": "Edit Issues",
    "EDIT_OWN_COMMENTS": "Edit Own Comments",
    "EDIT_OWN_WORKLOGS": "Edit Own Worklogs",
    "LINK_ISSUES": "Link Issues",
    "MANAGE_SPRINTS_PERMISSION": "Manage Sprints",
    "MANAGE_WATCHERS": "Manage Watchers",
    "MODIFY_REPORTER": "Modify Reporter",
    "MOVE_ISSUES": "Move Issues",
    "RESOLVE_ISSUES": "Resolve Issues",
    "SCHEDULE_ISSUES": "Schedule Issues",
    "SET_ISSUE_SECURITY": "Set Issue Security",
    "TRANSITION_ISSUES": "Transition Issues",
    "VIEW_DEV_TOOLS": "View Development Tools",
    "VIEW_READONLY_WORKFLOW": "View Read-Only Workflow",
    "VIEW_VOTERS_AND_WATCHERS": "View Voters and Watchers",
    "WORK_ON_ISSUES": "Work On Issues",
}
GLOBAL_PERMISSIONS: Mapping[str, str] = {
    "ADMINISTER": "Administer Jira",
    "SYSTEM_ADMIN": "Jira System Administrator",
    "USER_PICKER": "Browse users and groups",
    "CREATE_SHARED_OBJECTS": "Share dashboards and filters",
    "BULK_CHANGE": "Make bulk changes",
}
HOLDER_TYPES = frozenset(
    {
        "anyone",
        "applicationRole",
        "group",
        "user",
        "projectRole",
        "projectLead",
        "reporter",
        "assignee",
    }
)

# Every organisation admin API scope the admin endpoints check.
ADMIN_SCOPES = frozenset(
    {
        "read:tokens:admin",
        "delete:tokens:admin",
        "read:directories:admin",
        "write:directories:admin",
    }
)

SITE_ADMINS = "site-admins"
JIRA_ADMINS = "jira-admins"
JIRA_USERS = "jira-software-users"
DEFAULT_ADMIN_EMAIL = "admin@acme.example"


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str
    category_name: str
    color: str


# The simplified workflow every emulated project uses: each status is the
# target of one global transition, as in Jira's team-managed projects.
STATUSES: tuple[Status, ...] = (
    Status("10000", "To Do", 2, "new", "To Do", "blue-gray"),
    Status("3", "In Progress", 4, "indeterminate", "In Progress", "yellow"),
    Status("10001", "Done", 3, "done", "Done", "green"),
)
TRANSITIONS: Mapping[str, Status] = {"11": STATUSES[0], "21": STATUSES[1], "31": STATUSES[2]}
ISSUE_TYPES: Mapping[str, str] = {"10001": "Task", "10002": "Bug"}

# Jira Cloud's default roles, with their usual ids.
DEFAULT_ROLES: tuple[tuple[int, str, str], ...] = (
    (10002, "Administrators", "A project role that represents administrators in a project"),
    (10003, "Member", "A project role that represents members in a project"),
    (10004, "Viewer", "A project role that represents viewers in a project"),
)
_MEMBER_PERMISSIONS = (
    "BROWSE_PROJECTS",
    "CREATE_ISSUES",
    "EDIT_ISSUES",
    "TRANSITION_ISSUES",
    "ADD_COMMENTS",
    "ASSIGN_ISSUES",
    "ASSIGNABLE_USER",
    "RESOLVE_ISSUES",
    "CLOSE_ISSUES",
    "LINK_ISSUES",
    "WORK_ON_ISSUES",
    "EDIT_OWN_COMMENTS",
    "DELETE_OWN_COMMENTS",
)


def wall_clock() -> datetime:
    # Deliberately not agentctl.clock.system_clock: tests pin agentctl's
    # notion of "today", while token expiry is judged, as on Atlassian's side,
    # by the real time.
    return datetime.now(UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_account_id() -> str:
    # The shape of today's Atlassian account ids: a numeric prefix and a UUID.
    return f"712020:{uuid.uuid4()}"


def new_token_value() -> str:
    # Atlassian API tokens are opaque and of varying length; callers must not
    # assume a format. This one is long and unguessable.
    return "ATATT3x" + secrets.token_urlsafe(48)


class ApiError(Exception):
    """An error answer: ``status`` and the message(s) in Jira's ErrorCollection.

    ``field_errors`` fills ErrorCollection.errors (field -> message);
    ``gateway`` marks answers of the api.atlassian.com gateway and the admin
    APIs, which use ``{"code", "message"}`` instead.
    """

    def __init__(
        self,
        status: int,
        *messages: str,
        field_errors: Mapping[str, str] | None = None,
        gateway: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join(messages) or str(dict(field_errors or {})))
        self.status = status
        self.messages = list(messages)
        self.field_errors = dict(field_errors or {})
        self.gateway = gateway
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------


@dataclass
class Account:
    account_id: str
    account_type: AccountType
    display_name: str
    email: str
    created: datetime
    active: bool = True
    # Set by an organisation admin's "suspend access"; the account keeps its
    # groups and roles, but nothing it holds authenticates.
    suspended: bool = False
    time_zone: str = "Etc/UTC"


@dataclass
class Group:
    group_id: str
    name: str
    members: list[str] = field(default_factory=list)  # account ids


@dataclass
class Role:
    id: int
    name: str
    description: str


@dataclass
class Project:
    id: int
    key: str
    name: str
    lead: str  # account id
    scheme_id: int
    created: datetime
    next_number: int = 1
    # role id (as a string: JSON keys) -> {"users": [account ids], "groups": [group ids]}
    actors: dict[str, dict[str, list[str]]] = field(default_factory=dict)


@dataclass
class Scheme:
    id: int
    name: str
    description: str


@dataclass
class Grant:
    id: int
    scheme_id: int
    permission: str
    holder_type: str
    # A role id, group id, account id or application key; None for holders
    # that need none (anyone, projectLead, ...).
    holder_parameter: str | None


@dataclass
class Issue:
    id: int
    project_id: int
    number: int
    summary: str
    description: Any  # Atlassian Document Format, or None
    status_id: str
    issue_type_id: str
    reporter: str | None
    assignee: str | None
    created: datetime
    updated: datetime
    labels: list[str] = field(default_factory=list)


@dataclass
class Comment:
    id: int
    issue_id: int
    author: str
    body: Any  # Atlassian Document Format
    created: datetime
    updated: datetime


@dataclass
class ApiToken:
    """An API token. Only its SHA-256 is kept, as Atlassian does."""

    id: str
    digest: str
    account_id: str
    label: str
    # None: a classic token, with the account's whole access, used at the
    # site URL. A list: a scoped token, used through the gateway only.
    scopes: list[str] | None
    created: datetime
    expires: datetime
    last_access: datetime | None = None
    revoked: datetime | None = None


@dataclass
class AdminKey:
    """An organisation admin API key (Bearer), with the admin scopes it carries."""

    id: str
    digest: str
    scopes: list[str]
    created: datetime
    expires: datetime


_Record = TypeVar("_Record")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def _decode(cls: type[_Record], data: Mapping[str, Any]) -> _Record:
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


# --------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------


class World:
    """One Atlassian organisation with one Jira site, and its rules."""

    _TABLES: typing.ClassVar[dict[str, tuple[type[Any], str]]] = {
        "accounts": (Account, "account_id"),
        "groups": (Group, "group_id"),
        "roles": (Role, "id"),
        "projects": (Project, "id"),
        "schemes": (Scheme, "id"),
        "grants": (Grant, "id"),
        "issues": (Issue, "id"),
        "comments": (Comment, "id"),
        "tokens": (ApiToken, "id"),
        "admin_keys": (AdminKey, "id"),
    }

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.org_id = str(uuid.uuid4())
        self.cloud_id = str(uuid.uuid4())
        self.directory_id = str(uuid.uuid4())
        self.site_name = "acme"
        self.next_id = 10000
        self.accounts: dict[str, Account] = {}
        self.groups: dict[str, Group] = {}
        self.roles: dict[int, Role] = {}
        self.projects: dict[int, Project] = {}
        self.schemes: dict[int, Scheme] = {}
        self.grants: dict[int, Grant] = {}
        self.issues: dict[int, Issue] = {}
        self.comments: dict[int, Comment] = {}
        self.tokens: dict[str, ApiToken] = {}
        self.admin_keys: dict[str, AdminKey] = {}
        # Global permission -> group ids holding it.
        self.global_grants: dict[str, list[str]] = {}
        self.default_scheme_id = 0
        self._seed()

    def _seed(self) -> None:
        """What every Jira Cloud site starts with: admins, default roles and scheme."""
        for name in (SITE_ADMINS, JIRA_ADMINS, JIRA_USERS):
            self.create_group(name)
        admin = self.create_account("Site Admin", DEFAULT_ADMIN_EMAIL, "atlassian")
        for name in (SITE_ADMINS, JIRA_ADMINS, JIRA_USERS):
            self.add_to_group(self.group_named(name), admin)
        admins = self.group_named(JIRA_ADMINS).group_id
        users = self.group_named(JIRA_USERS).group_id
        self.global_grants = {
            "ADMINISTER": [admins],
            "SYSTEM_ADMIN": [admins],
            "USER_PICKER": [admins, users],
            "CREATE_SHARED_OBJECTS": [users],
            "BULK_CHANGE": [users],
        }
        for ident, name, description in DEFAULT_ROLES:
            self.roles[ident] = Role(ident, name, description)
        scheme = self.create_scheme("Default Permission Scheme", "The default permission scheme")
        self.default_scheme_id = scheme.id
        administrators, member, viewer = (str(ident) for ident, _, _ in DEFAULT_ROLES)
        for permission in PROJECT_PERMISSIONS:
            self.add_grant(scheme, permission, "projectRole", administrators)
        for permission in _MEMBER_PERMISSIONS:
            self.add_grant(scheme, permission, "projectRole", member)
        self.add_grant(scheme, "BROWSE_PROJECTS", "projectRole", viewer)

    # -- persistence ------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Everything: only for the emulator's own state file (no token is in it)."""
        data: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "org_id",
                "cloud_id",
                "directory_id",
                "site_name",
                "next_id",
                "global_grants",
                "default_scheme_id",
            )
        }
        for name in self._TABLES:
            table: dict[Any, Any] = getattr(self, name)
            data[name] = [_encode(dataclasses.asdict(row)) for row in table.values()]
        return data

    def load(self, data: Mapping[str, Any]) -> None:
        for name in (
            "org_id",
            "cloud_id",
            "directory_id",
            "site_name",
            "next_id",
            "global_grants",
            "default_scheme_id",
        ):
            setattr(self, name, data[name])
        for name, (cls, key) in self._TABLES.items():
            rows = [_decode(cls, row) for row in data[name]]
            setattr(self, name, {getattr(row, key): row for row in rows})

    # -- ids and lookups --------------------------------------------------

    def new_id(self) -> int:
        ident = self.next_id
        self.next_id += 1
        return ident

    def account(self, account_id: str) -> Account:
        found = self.accounts.get(account_id)
        if found is None:
            raise ApiError(
                404, "Specified user does not exist or you do not have required permissions"
            )
        return found

    def account_by_email(self, email: str) -> Account | None:
        wanted = email.strip().lower()
        return next((a for a in self.accounts.values() if a.email.lower() == wanted), None)

    def group_named(self, name: str) -> Group:
        found = next((g for g in self.groups.values() if g.name.lower() == name.lower()), None)
        if found is None:
            raise ApiError(404, "Specified group does not exist.")
        return found

    def group(self, *, group_id: str | None, name: str | None) -> Group:
        """A group by id or (deprecated, still accepted) by name, as Jira does."""
        if group_id:
            found = self.groups.get(group_id)
            if found is None:
                raise ApiError(404, "Specified group does not exist.")
            return found
        if name:
            return self.group_named(name)
        raise ApiError(400, "Either 'groupname' or 'groupId' must be specified.")

    def groups_of(self, account: Account) -> list[Group]:
        return sorted(
            (g for g in self.groups.values() if account.account_id in g.members),
            key=lambda g: g.name.lower(),
        )

    def project(self, key_or_id: str) -> Project | None:
        if key_or_id.isdigit():
            return self.projects.get(int(key_or_id))
        wanted = key_or_id.upper()
        return next((p for p in self.projects.values() if p.key == wanted), None)

    def role(self, role_id: int) -> Role | None:
        return self.roles.get(role_id)

    def issue(self, key_or_id: str) -> Issue | None:
        if key_or_id.isdigit():
            return self.issues.get(int(key_or_id))
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)-(\d+)", key_or_id)
        if match is None:
            return None
        project = self.project(match.group(1))
        if project is None:
            return None
        number = int(match.group(2))
        return next(
            (i for i in self.issues.values() if i.project_id == project.id and i.number == number),
            None,
        )

    def issue_key(self, issue: Issue) -> str:
        return f"{self.projects[issue.project_id].key}-{issue.number}"

    def status(self, status_id: str) -> Status:
        return next(s for s in STATUSES if s.id == status_id)

    def grants_of(self, scheme_id: int) -> list[Grant]:
        return sorted(
            (g for g in self.grants.values() if g.scheme_id == scheme_id), key=lambda g: g.id
        )

    def find_token(self, value: str) -> ApiToken | None:
        wanted = digest(value)
        return next((t for t in self.tokens.values() if t.digest == wanted), None)

    def live_tokens_of(self, account: Account) -> list[ApiToken]:
        return sorted(
            (
                t
                for t in self.tokens.values()
                if t.account_id == account.account_id and t.revoked is None
            ),
            key=lambda t: t.created,
        )

    def find_admin_key(self, value: str) -> AdminKey | None:
        wanted = digest(value)
        key = next((k for k in self.admin_keys.values() if k.digest == wanted), None)
        if key is None or self.clock() >= key.expires:
            return None
        return key

    # -- permissions ------------------------------------------------------

    def can_authenticate(self, account: Account) -> bool:
        return account.active and not account.suspended

    def in_role(self, account: Account, project: Project, role_id: int) -> bool:
        actors = project.actors.get(str(role_id), {})
        if account.account_id in actors.get("users", []):
            return True
        return any(
            account.account_id in self.groups[g].members
            for g in actors.get("groups", [])
            if g in self.groups
        )

    def holder_matches(
        self, grant: Grant, account: Account | None, project: Project, issue: Issue | None
    ) -> bool:
        holder = grant.holder_type
        if holder == "anyone":
            return True
        if account is None or not self.can_authenticate(account):
            return False
        parameter = grant.holder_parameter
        match holder:
            case "applicationRole":
                # No parameter: any logged-in user. With one: users with
                # access to that app, which the emulator gives through one group.
                return (
                    parameter is None or account.account_id in self.group_named(JIRA_USERS).members
                )
            case "group":
                group = self.groups.get(parameter or "")
                return group is not None and account.account_id in group.members
            case "user":
                return parameter == account.account_id
            case "projectRole":
                return parameter is not None and self.in_role(account, project, int(parameter))
            case "projectLead":
                return project.lead == account.account_id
            case "reporter":
                return issue is not None and issue.reporter == account.account_id
            case "assignee":
                return issue is not None and issue.assignee == account.account_id
        return False

    def has_permission(
        self,
        account: Account | None,
        project: Project,
        permission: str,
        issue: Issue | None = None,
    ) -> bool:
        return any(
            g.permission == permission and self.holder_matches(g, account, project, issue)
            for g in self.grants_of(project.scheme_id)
        )

    def has_global(self, account: Account | None, permission: str) -> bool:
        if account is None or not self.can_authenticate(account):
            return False
        return any(
            account.account_id in self.groups[g].members
            for g in self.global_grants.get(permission, [])
            if g in self.groups
        )

    def is_site_admin(self, account: Account | None) -> bool:
        if account is None or not self.can_authenticate(account):
            return False
        return account.account_id in self.group_named(SITE_ADMINS).members

    def can_administer(self, account: Account | None, project: Project) -> bool:
        return self.has_global(account, "ADMINISTER") or self.has_permission(
            account, project, "ADMINISTER_PROJECTS"
        )

    def can_browse(self, account: Account | None, project: Project) -> bool:
        return self.can_administer(account, project) or self.has_permission(
            account, project, "BROWSE_PROJECTS"
        )

    # -- changes ----------------------------------------------------------

    def create_account(
        self,
        display_name: str,
        email: str,
        account_type: AccountType,
        *,
        account_id: str | None = None,
    ) -> Account:
        if account_type not in ("atlassian", "app", "customer"):
            raise ApiError(400, f"Unknown account type: {account_type!r}")
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise ApiError(400, f"Invalid email address: {email!r}")
        if self.account_by_email(email) is not None:
            raise ApiError(409, f"An account with email {email} already exists.")
        account = Account(
            account_id=account_id or new_account_id(),
            account_type=account_type,
            display_name=display_name,
            email=email,
            created=self.clock(),
        )
        self.accounts[account.account_id] = account
        return account

    def create_group(self, name: str) -> Group:
        if any(g.name.lower() == name.lower() for g in self.groups.values()):
            raise ApiError(400, f"A group with name '{name}' already exists.")
        group = Group(str(uuid.uuid4()), name)
        self.groups[group.group_id] = group
        return group

    def add_to_group(self, group: Group, account: Account) -> None:
        if account.account_id in group.members:
            raise ApiError(400, f"Cannot add user. User is already a member of '{group.name}'")
        group.members.append(account.account_id)

    def remove_from_group(self, group: Group, account: Account) -> None:
        if account.account_id not in group.members:
            raise ApiError(400, f"Cannot remove user. User is not a member of '{group.name}'")
        group.members.remove(account.account_id)

    def create_role(self, name: str, description: str) -> Role:
        if not name.strip():
            raise ApiError(
                400, field_errors={"name": "You must specify a name for the project role."}
            )
        if any(r.name.lower() == name.lower() for r in self.roles.values()):
            raise ApiError(409, f"A project role with name '{name}' already exists.")
        role = Role(self.new_id(), name, description)
        self.roles[role.id] = role
        return role

    def delete_role(self, role: Role) -> None:
        del self.roles[role.id]
        for project in self.projects.values():
            project.actors.pop(str(role.id), None)
        for grant in [g for g in self.grants.values() if g.holder_type == "projectRole"]:
            if grant.holder_parameter == str(role.id):
                del self.grants[grant.id]

    def create_scheme(self, name: str, description: str = "") -> Scheme:
        scheme = Scheme(self.new_id(), name, description)
        self.schemes[scheme.id] = scheme
        return scheme

    def add_grant(
        self, scheme: Scheme, permission: str, holder_type: str, parameter: str | None
    ) -> Grant:
        if permission not in PROJECT_PERMISSIONS:
            raise ApiError(
                400, field_errors={"permission": f"Permission '{permission}' is invalid."}
            )
        if holder_type not in HOLDER_TYPES:
            raise ApiError(400, field_errors={"holder": f"Holder type '{holder_type}' is invalid."})
        needs_parameter = holder_type in ("group", "user", "projectRole")
        if needs_parameter and not parameter:
            raise ApiError(
                400, field_errors={"holder": f"Holder type '{holder_type}' requires a parameter."}
            )
        if holder_type == "projectRole" and (
            not (parameter or "").isdigit() or int(parameter or 0) not in self.roles
        ):
            raise ApiError(
                400, field_errors={"holder": f"Project role '{parameter}' does not exist."}
            )
        if holder_type == "group" and parameter not in self.groups:
            raise ApiError(400, field_errors={"holder": f"Group '{parameter}' does not exist."})
        if holder_type == "user" and parameter not in self.accounts:
            raise ApiError(400, field_errors={"holder": f"User '{parameter}' does not exist."})
        duplicate = next(
            (
                g
                for g in self.grants_of(scheme.id)
                if (g.permission, g.holder_type, g.holder_parameter)
                == (permission, holder_type, parameter)
            ),
            None,
        )
        if duplicate is not None:
            raise ApiError(400, "The permission scheme already contains this grant for the holder.")
        grant = Grant(self.new_id(), scheme.id, permission, holder_type, parameter)
        self.grants[grant.id] = grant
        return grant

    def create_project(
        self, key: str, name: str, *, lead: Account, scheme: Scheme | None = None
    ) -> Project:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{1,9}", key):
            raise ApiError(
                400,
                field_errors={
                    "projectKey": "Project keys must start with an uppercase letter, followed "
                    "by one or more uppercase alphanumeric characters."
                },
            )
        if self.project(key) is not None:
            raise ApiError(
                400, field_errors={"projectKey": f"Project '{key}' uses this project key."}
            )
        project = Project(
            id=self.new_id(),
            key=key,
            name=name,
            lead=lead.account_id,
            scheme_id=(scheme.id if scheme else self.default_scheme_id),
            created=self.clock(),
        )
        # Like Jira, the lead becomes an administrator of a new project.
        project.actors[str(DEFAULT_ROLES[0][0])] = {"users": [lead.account_id], "groups": []}
        self.projects[project.id] = project
        return project

    def add_actors(
        self, project: Project, role: Role, users: Iterable[str], group_ids: Iterable[str]
    ) -> None:
        users, group_ids = list(users), list(group_ids)
        for account_id in users:
            account = self.accounts.get(account_id)
            if account is None or not account.active:
                raise ApiError(
                    404, f"The user with account ID '{account_id}' does not exist or is inactive."
                )
        for group_id in group_ids:
            if group_id not in self.groups:
                raise ApiError(404, f"The group with ID '{group_id}' does not exist.")
        actors = project.actors.setdefault(str(role.id), {"users": [], "groups": []})
        for account_id in users:
            if account_id in actors["users"]:
                raise ApiError(
                    400,
                    f"'{account_id}' is already a member of the project role.",
                )
            actors["users"].append(account_id)
        for group_id in group_ids:
            if group_id in actors["groups"]:
                raise ApiError(400, f"'{group_id}' is already a member of the project role.")
            actors["groups"].append(group_id)

    def remove_actor(
        self, project: Project, role: Role, *, user: str | None, group_id: str | None
    ) -> None:
        actors = project.actors.get(str(role.id), {"users": [], "groups": []})
        if user is not None:
            if user not in actors.get("users", []):
                raise ApiError(404, f"The user with account ID '{user}' is not a role actor.")
            actors["users"].remove(user)
        elif group_id is not None:
            if group_id not in actors.get("groups", []):
                raise ApiError(404, f"The group with ID '{group_id}' is not a role actor.")
            actors["groups"].remove(group_id)
        else:
            raise ApiError(400, "Specify exactly one of 'user', 'group' or 'groupId'.")

    def create_issue(
        self,
        project: Project,
        summary: str,
        *,
        issue_type_id: str = "10001",
        description: Any = None,
        reporter: Account | None = None,
        labels: Iterable[str] = (),
    ) -> Issue:
        now = self.clock()
        issue = Issue(
            id=self.new_id(),
            project_id=project.id,
            number=project.next_number,
            summary=summary,
            description=description,
            status_id=STATUSES[0].id,
            issue_type_id=issue_type_id,
            reporter=reporter.account_id if reporter else None,
            assignee=None,
            created=now,
            updated=now,
            labels=list(labels),
        )
        project.next_number += 1
        self.issues[issue.id] = issue
        return issue

    def add_comment(self, issue: Issue, author: Account, body: Any) -> Comment:
        now = self.clock()
        comment = Comment(self.new_id(), issue.id, author.account_id, body, now, now)
        self.comments[comment.id] = comment
        issue.updated = now
        return comment

    def create_token(
        self,
        account: Account,
        *,
        label: str,
        scopes: Iterable[str] | None,
        expires: datetime | None = None,
        lifetime: timedelta = timedelta(days=365),
    ) -> tuple[str, ApiToken]:
        """Atlassian allows 1 to 365 days; so does the emulator."""
        now = self.clock()
        expiry = expires if expires is not None else now + lifetime
        if (
            not now + timedelta(days=1) - timedelta(minutes=1)
            <= expiry
            <= now + timedelta(days=365, minutes=1)
        ):
            raise ApiError(400, "API tokens expire between 1 and 365 days after creation.")
        value = new_token_value()
        token = ApiToken(
            id=str(uuid.uuid4()),
            digest=digest(value),
            account_id=account.account_id,
            label=label,
            scopes=sorted(set(scopes)) if scopes is not None else None,
            created=now,
            expires=expiry,
        )
        self.tokens[token.id] = token
        return value, token

    def create_admin_key(
        self, *, scopes: Iterable[str] | None = None, lifetime: timedelta = timedelta(days=7)
    ) -> tuple[str, AdminKey]:
        """Atlassian's default admin API key lifetime is one week."""
        chosen = sorted(ADMIN_SCOPES if scopes is None else set(scopes))
        unknown = set(chosen) - ADMIN_SCOPES
        if unknown:
            raise ApiError(400, f"Unknown admin API scopes: {sorted(unknown)}")
        now = self.clock()
        value = "ATCTT3x" + secrets.token_urlsafe(40)
        key = AdminKey(str(uuid.uuid4()), digest(value), chosen, now, now + lifetime)
        self.admin_keys[key.id] = key
        return value, key
