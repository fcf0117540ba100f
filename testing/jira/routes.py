"""The HTTP surface: Jira's REST API v3 (site and gateway) and the admin APIs.

Each route names the operation of Atlassian's description it serves, how it
authenticates and, for Jira operations, the OAuth 2.0 scopes the description
lists for it (classic and granular): a scoped API token must carry every scope
of one of the two sets, as on api.atlassian.com. A test checks these tables
against the description.

Authentication, as Atlassian does it:

* ``jira``: HTTP basic with an account's email and API token. A classic token
  (no scopes) works at the site URL only; a scoped token only through the
  gateway, ``/ex/jira/{cloudId}``, where its scopes are checked. An expired,
  revoked or unknown token, or a suspended or deactivated account, is 401.
* ``admin``: ``Authorization: Bearer`` with an organisation admin API key;
  each admin route needs one admin scope.
* ``none``: public (server info, tenant info).

Project permissions are then enforced the way Jira does: an issue in a project
the caller cannot browse does not exist (404); a missing permission for the
action is the error the description documents for it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from werkzeug.wrappers import Request

from testing.jira.rendering import Render
from testing.jira.world import (
    GLOBAL_PERMISSIONS,
    ISSUE_TYPES,
    PROJECT_PERMISSIONS,
    TRANSITIONS,
    Account,
    AdminKey,
    ApiError,
    ApiToken,
    Issue,
    Project,
    Role,
    World,
)

Auth = Literal["jira", "admin", "none"]
Via = Literal["site", "gateway", "admin"]

MSG_NOT_AUTHENTICATED = "Client must be authenticated to access this resource."
MSG_ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
MSG_SCOPE_MISMATCH = "Unauthorized; scope does not match"


@dataclass
class Reply:
    status: int
    body: Any = None  # None: no body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One request, as handlers see it."""

    request: Request
    args: Mapping[str, Any]
    via: Via
    render: Render
    account: Account | None = None
    token: ApiToken | None = None
    admin_key: AdminKey | None = None

    def json(self) -> dict[str, Any]:
        raw = self.request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "Unexpected character in the request body.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    def query(self, name: str) -> str | None:
        value = self.request.args.get(name)
        return value if value not in (None, "") else None

    def int_query(self, name: str, default: int, upper: int) -> int:
        raw = self.request.args.get(name, "")
        if not raw:
            return default
        if not raw.lstrip("-").isdigit():
            raise ApiError(400, f"The '{name}' parameter must be a number.")
        return max(0, min(int(raw), upper))

    def caller(self) -> Account:
        assert self.account is not None, "route declared without jira auth"
        return self.account

    def identity(self) -> str:
        if self.admin_key is not None:
            return f"admin-key:{self.admin_key.id}"
        if self.account is not None:
            return self.account.account_id
        return "anonymous"


Handler = Callable[["JiraApi", Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # the path as the description spells it
    operation_id: str
    auth: Auth
    handler: Handler
    # Scopes a scoped token needs: every scope of one of these sets (the
    # description's "Current" classic scopes, then its granular ones).
    classic_scopes: tuple[str, ...] = ()
    granular_scopes: tuple[str, ...] = ()
    admin_scope: str | None = None

    @property
    def is_jira(self) -> bool:
        return self.template.startswith("/rest/api/3/")


def _adf_ok(value: Any) -> bool:
    """Whether ``value`` is an Atlassian Document Format document (top level)."""
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
    )


def _comma_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class JiraApi:
    def __init__(self, world: World) -> None:
        self.world = world

    # -- authentication ---------------------------------------------------

    def authenticate(self, route: Route, call: Call) -> None:
        header = call.request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if route.auth == "none":
            return
        if route.auth == "admin":
            self._authenticate_admin(route, call, scheme, credential.strip())
            return
        if not header:
            raise ApiError(401, MSG_NOT_AUTHENTICATED, headers=_LOGIN_FAILED)
        if scheme.lower() != "basic":
            raise ApiError(401, MSG_NOT_AUTHENTICATED, headers=_LOGIN_FAILED)
        try:
            email, _, secret = base64.b64decode(credential.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, MSG_NOT_AUTHENTICATED, headers=_LOGIN_FAILED) from None
        account = self.world.account_by_email(email)
        token = self.world.find_token(secret)
        now = self.world.clock()
        if (
            account is None
            or token is None
            or token.account_id != account.account_id
            or token.revoked is not None
            or now >= token.expires
            or not self.world.can_authenticate(account)
        ):
            raise ApiError(401, MSG_NOT_AUTHENTICATED, headers=_LOGIN_FAILED)
        # Classic tokens are for the site URL; scoped ones for the gateway only.
        if (token.scopes is None) != (call.via == "site"):
            raise ApiError(401, MSG_NOT_AUTHENTICATED, headers=_LOGIN_FAILED)
        if token.scopes is not None and not _scopes_allow(route, set(token.scopes)):
            raise ApiError(401, MSG_SCOPE_MISMATCH, gateway=True)
        token.last_access = now
        call.account, call.token = account, token

    def _authenticate_admin(self, route: Route, call: Call, scheme: str, credential: str) -> None:
        if scheme.lower() != "bearer" or not credential:
            raise ApiError(401, "Unauthorized", gateway=True)
        key = self.world.find_admin_key(credential)
        if key is None:
            raise ApiError(401, "Unauthorized", gateway=True)
        if route.admin_scope is not None and route.admin_scope not in key.scopes:
            raise ApiError(
                403,
                f"The API key does not have the required scope: {route.admin_scope}",
                gateway=True,
            )
        org_id = call.args.get("orgId")
        if org_id is not None and org_id != self.world.org_id:
            raise ApiError(404, f"Organization {org_id} not found", gateway=True)
        call.admin_key = key

    # -- lookups with Jira's visibility rules -----------------------------

    def visible_issue(self, call: Call) -> tuple[Issue, Project]:
        issue = self.world.issue(call.args["issueIdOrKey"])
        if issue is None:
            raise ApiError(404, MSG_ISSUE_NOT_FOUND)
        project = self.world.projects[issue.project_id]
        if not self.world.has_permission(call.account, project, "BROWSE_PROJECTS", issue):
            raise ApiError(404, MSG_ISSUE_NOT_FOUND)
        return issue, project

    def project_arg(self, call: Call, name: str = "projectIdOrKey") -> Project:
        key = call.args[name]
        project = self.world.project(key)
        if project is None or not self.world.can_browse(call.account, project):
            raise ApiError(404, f"No project could be found with key '{key}'.")
        return project

    def administered_project(
        self, call: Call, *, denied: int, name: str = "projectIdOrKey"
    ) -> Project:
        key = call.args[name]
        project = self.world.project(key)
        if project is None:
            raise ApiError(404, f"No project could be found with key '{key}'.")
        if not self.world.can_administer(call.account, project):
            raise ApiError(denied, "You cannot edit the configuration of this project.")
        return project

    def role_arg(self, call: Call) -> Role:
        role = self.world.role(int(call.args["id"]))
        if role is None:
            raise ApiError(404, f"Project role with ID {call.args['id']} does not exist.")
        return role

    def require_global(self, call: Call, permission: str, *, status: int = 403) -> None:
        if not self.world.has_global(call.account, permission):
            raise ApiError(
                status,
                f"You do not have the permission: {GLOBAL_PERMISSIONS[permission]}.",
            )

    def require_site_admin(self, call: Call) -> None:
        if not self.world.is_site_admin(call.account):
            raise ApiError(403, "You do not have the permission to manage groups.")

    # -- server -------------------------------------------------------------

    def server_info(self, call: Call) -> Reply:
        return Reply(200, call.render.server_info(self.world.clock()))

    def tenant_info(self, call: Call) -> Reply:
        return Reply(200, {"cloudId": self.world.cloud_id})

    # -- users and groups -----------------------------------------------------

    def myself(self, call: Call) -> Reply:
        expand = _comma_list(call.query("expand"))
        return Reply(200, call.render.user(call.caller(), expand=expand))

    def get_user(self, call: Call) -> Reply:
        self.require_global(call, "USER_PICKER")
        account = self.world.accounts.get(call.query("accountId") or "")
        if account is None:
            raise ApiError(
                404, "Specified user does not exist or you do not have required permissions"
            )
        return Reply(200, call.render.user(account, expand=_comma_list(call.query("expand"))))

    def find_users(self, call: Call) -> Reply:
        query, account_id = call.query("query"), call.query("accountId")
        if (query is None) == (account_id is None):
            raise ApiError(400, "One of 'query' or 'accountId' must be provided, not both.")
        if not self.world.has_global(call.account, "USER_PICKER"):
            return Reply(200, [])
        start = call.int_query("startAt", 0, 10**6)
        limit = call.int_query("maxResults", 50, 1000)
        # Like Jira: active users only (suspended or deactivated are not listed).
        candidates = [a for a in self.world.accounts.values() if self.world.can_authenticate(a)]
        if account_id is not None:
            found = [a for a in candidates if a.account_id == account_id]
        else:
            wanted = (query or "").lower()
            found = [
                a
                for a in candidates
                if a.email.lower().startswith(wanted)
                or any(word.startswith(wanted) for word in a.display_name.lower().split())
                or a.display_name.lower().startswith(wanted)
            ]
        found.sort(key=lambda a: (a.display_name.lower(), a.account_id))
        return Reply(200, [call.render.user(a) for a in found[start : start + limit]])

    def user_groups(self, call: Call) -> Reply:
        self.require_global(call, "USER_PICKER")
        account = self.world.accounts.get(call.query("accountId") or "")
        if account is None:
            raise ApiError(
                404, "Specified user does not exist or you do not have required permissions"
            )
        return Reply(200, [call.render.group_name(g) for g in self.world.groups_of(account)])

    def add_user_to_group(self, call: Call) -> Reply:
        self.require_site_admin(call)
        group = self.world.group(group_id=call.query("groupId"), name=call.query("groupname"))
        account_id = call.json().get("accountId")
        if not isinstance(account_id, str) or not account_id:
            raise ApiError(400, "'accountId' must be specified.")
        account = self.world.accounts.get(account_id)
        if account is None:
            raise ApiError(404, f"The user with account ID '{account_id}' does not exist.")
        self.world.add_to_group(group, account)
        return Reply(201, call.render.group(group))

    def remove_user_from_group(self, call: Call) -> Reply:
        account_id = call.query("accountId")
        if account_id is None:
            raise ApiError(400, "'accountId' must be specified.")
        self.require_site_admin(call)
        group = self.world.group(group_id=call.query("groupId"), name=call.query("groupname"))
        account = self.world.accounts.get(account_id)
        if account is None:
            raise ApiError(404, f"The user with account ID '{account_id}' does not exist.")
        if account_id not in group.members:
            raise ApiError(404, f"The user is not a member of '{group.name}'.")
        self.world.remove_from_group(group, account)
        return Reply(200)

    # -- projects -------------------------------------------------------------

    def search_projects(self, call: Call) -> Reply:
        start = call.int_query("startAt", 0, 10**6)
        limit = call.int_query("maxResults", 50, 100) or 50
        keys = {k.upper() for k in call.request.args.getlist("keys")}
        query = (call.query("query") or "").lower()
        found = [
            p
            for p in sorted(self.world.projects.values(), key=lambda p: p.key)
            if self.world.can_browse(call.account, p)
            and (not keys or p.key in keys)
            and (not query or query in p.key.lower() or query in p.name.lower())
        ]
        page = found[start : start + limit]
        is_last = start + limit >= len(found)
        link = f"{call.render.api}/project/search?startAt={start}&maxResults={limit}"
        body: dict[str, Any] = {
            "self": link,
            "maxResults": limit,
            "startAt": start,
            "total": len(found),
            "isLast": is_last,
            "values": [call.render.project(p) for p in page],
        }
        if not is_last:
            body["nextPage"] = (
                f"{call.render.api}/project/search?startAt={start + limit}&maxResults={limit}"
            )
        return Reply(200, body)

    def get_project(self, call: Call) -> Reply:
        return Reply(200, call.render.project(self.project_arg(call)))

    def project_roles(self, call: Call) -> Reply:
        project = self.administered_project(call, denied=404)
        return Reply(200, call.render.project_role_links(project))

    def project_role(self, call: Call) -> Reply:
        project = self.administered_project(call, denied=404)
        return Reply(200, call.render.role(self.role_arg(call), project))

    def add_actors(self, call: Call) -> Reply:
        project = self.administered_project(call, denied=401)
        role = self.role_arg(call)
        body = call.json()
        users, groups, group_ids = (body.get(k) or [] for k in ("user", "group", "groupId"))
        for value in (users, groups, group_ids):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApiError(400, "'user', 'group' and 'groupId' must be lists of strings.")
        if not (users or groups or group_ids):
            raise ApiError(400, "You must specify at least one actor.")
        ids = list(group_ids) + [self.world.group_named(name).group_id for name in groups]
        self.world.add_actors(project, role, users, ids)
        return Reply(200, call.render.role(role, project))

    def delete_actor(self, call: Call) -> Reply:
        project = self.administered_project(call, denied=404)
        role = self.role_arg(call)
        user, group_name, group_id = (call.query(k) for k in ("user", "group", "groupId"))
        if sum(v is not None for v in (user, group_name, group_id)) != 1:
            raise ApiError(400, "Specify exactly one of 'user', 'group' or 'groupId'.")
        if group_name is not None:
            group_id = self.world.group_named(group_name).group_id
        self.world.remove_actor(project, role, user=user, group_id=group_id)
        return Reply(204)

    # -- roles ------------------------------------------------------------------

    def all_roles(self, call: Call) -> Reply:
        self.require_global(call, "ADMINISTER")
        roles = sorted(self.world.roles.values(), key=lambda r: r.id)
        return Reply(200, [call.render.role(r) for r in roles])

    def create_role(self, call: Call) -> Reply:
        self.require_global(call, "ADMINISTER")
        body = call.json()
        name, description = body.get("name"), body.get("description") or ""
        if not isinstance(name, str) or not isinstance(description, str):
            raise ApiError(
                400, field_errors={"name": "You must specify a name for the project role."}
            )
        return Reply(200, call.render.role(self.world.create_role(name, description)))

    def get_role(self, call: Call) -> Reply:
        self.require_global(call, "ADMINISTER")
        return Reply(200, call.render.role(self.role_arg(call)))

    def delete_role(self, call: Call) -> Reply:
        self.require_global(call, "ADMINISTER")
        role = self.role_arg(call)
        if call.query("swap") is not None:
            raise ApiError(400, "The emulator does not swap project roles.")
        in_use = any(
            g.holder_type == "projectRole" and g.holder_parameter == str(role.id)
            for g in self.world.grants.values()
        )
        if in_use:
            raise ApiError(
                409,
                f"The project role '{role.name}' is used in permission schemes; "
                "remove those grants or give a role to swap.",
            )
        self.world.delete_role(role)
        return Reply(204)

    # -- permission schemes -------------------------------------------------------

    def assigned_scheme(self, call: Call) -> Reply:
        project = self.administered_project(call, denied=403, name="projectKeyOrId")
        expand = _comma_list(call.query("expand"))
        scheme = self.world.schemes[project.scheme_id]
        return Reply(200, call.render.scheme(scheme, with_permissions=_wants_grants(expand)))

    def all_schemes(self, call: Call) -> Reply:
        expand = _comma_list(call.query("expand"))
        schemes = sorted(self.world.schemes.values(), key=lambda s: s.id)
        return Reply(
            200,
            {
                "permissionSchemes": [
                    call.render.scheme(s, with_permissions=_wants_grants(expand)) for s in schemes
                ]
            },
        )

    def scheme_arg(self, call: Call) -> Any:
        scheme = self.world.schemes.get(int(call.args["schemeId"]))
        if scheme is None:
            raise ApiError(
                404, f"Permission scheme with ID {call.args['schemeId']} does not exist."
            )
        return scheme

    def get_scheme(self, call: Call) -> Reply:
        expand = _comma_list(call.query("expand"))
        scheme = self.scheme_arg(call)
        return Reply(200, call.render.scheme(scheme, with_permissions=_wants_grants(expand)))

    def scheme_grants(self, call: Call) -> Reply:
        scheme = self.scheme_arg(call)
        grants = [call.render.grant(g) for g in self.world.grants_of(scheme.id)]
        return Reply(200, {"permissions": grants, "expand": "user,group,projectRole,field,all"})

    def create_grant(self, call: Call) -> Reply:
        self.require_global(call, "ADMINISTER")
        scheme = self.world.schemes.get(int(call.args["schemeId"]))
        if scheme is None:
            raise ApiError(
                400, f"Permission scheme with ID {call.args['schemeId']} does not exist."
            )
        body = call.json()
        holder, permission = body.get("holder"), body.get("permission")
        if not isinstance(holder, dict) or not isinstance(holder.get("type"), str):
            raise ApiError(400, field_errors={"holder": "A holder with a type is required."})
        if not isinstance(permission, str):
            raise ApiError(400, field_errors={"permission": "A permission is required."})
        holder_type = holder["type"]
        parameter = holder.get("value") or holder.get("parameter")
        if holder_type == "group" and parameter and parameter not in self.world.groups:
            # A group may be named by its (deprecated) name.
            parameter = self.world.group_named(parameter).group_id
        grant = self.world.add_grant(scheme, permission, holder_type, parameter)
        return Reply(201, call.render.grant(grant))

    def delete_grant(self, call: Call) -> Reply:
        self.require_global(call, "ADMINISTER")
        grant = self.world.grants.get(int(call.args["permissionId"]))
        if grant is None or grant.scheme_id != int(call.args["schemeId"]):
            raise ApiError(400, f"Permission grant with ID {call.args['permissionId']} not found.")
        del self.world.grants[grant.id]
        return Reply(204)

    def my_permissions(self, call: Call) -> Reply:
        wanted = _comma_list(call.query("permissions"))
        if not wanted:
            raise ApiError(400, "The 'permissions' query parameter is required.")
        unknown = [
            k for k in wanted if k not in PROJECT_PERMISSIONS and k not in GLOBAL_PERMISSIONS
        ]
        if unknown:
            raise ApiError(400, f"Unrecognized permission key(s): {', '.join(unknown)}")
        issue: Issue | None = None
        projects: list[Project]
        if call.query("issueKey") or call.query("issueId"):
            found = self.world.issue(call.query("issueKey") or call.query("issueId") or "")
            if found is None or not self.world.can_browse(
                call.account, self.world.projects[found.project_id]
            ):
                raise ApiError(404, MSG_ISSUE_NOT_FOUND)
            issue, projects = found, [self.world.projects[found.project_id]]
        elif call.query("projectKey") or call.query("projectId"):
            key = call.query("projectKey") or call.query("projectId") or ""
            project = self.world.project(key)
            if project is None or not self.world.can_browse(call.account, project):
                raise ApiError(404, f"No project could be found with key '{key}'.")
            projects = [project]
        else:
            # No context: a project permission counts if held in any project.
            projects = list(self.world.projects.values())
        have = {
            key: (
                self.world.has_global(call.account, key)
                if key in GLOBAL_PERMISSIONS
                else any(self.world.has_permission(call.account, p, key, issue) for p in projects)
            )
            for key in wanted
        }
        return Reply(200, call.render.permissions(have))

    # -- issues -------------------------------------------------------------------

    def get_issue(self, call: Call) -> Reply:
        issue, _ = self.visible_issue(call)
        fields = set(_comma_list(call.query("fields"))) - {"*all", "*navigable"}
        expand = _comma_list(call.query("expand"))
        return Reply(
            200,
            call.render.issue(issue, fields=fields or None, transitions="transitions" in expand),
        )

    def _apply_fields(self, issue: Issue, fields: Mapping[str, Any], *, creating: bool) -> None:
        settable = {"summary", "description", "labels"} | (
            {"project", "issuetype"} if creating else set()
        )
        errors = {
            name: f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            for name in fields
            if name not in settable
        }
        if errors:
            raise ApiError(400, field_errors=errors)
        if "summary" in fields:
            summary = fields["summary"]
            if not isinstance(summary, str) or not summary.strip():
                raise ApiError(
                    400, field_errors={"summary": "You must specify a summary of the issue."}
                )
            issue.summary = summary
        if "description" in fields:
            description = fields["description"]
            if description is not None and not _adf_ok(description):
                raise ApiError(
                    400,
                    field_errors={
                        "description": "Operation value must be an Atlassian Document "
                        "(see the Atlassian Document Format)"
                    },
                )
            issue.description = description
        if "labels" in fields:
            labels = fields["labels"]
            if not isinstance(labels, list) or not all(
                isinstance(x, str) and x and " " not in x for x in labels
            ):
                raise ApiError(400, field_errors={"labels": "Labels must be a list of words."})
            issue.labels = list(labels)

    def edit_issue(self, call: Call) -> Reply:
        issue, project = self.visible_issue(call)
        if not self.world.has_permission(call.account, project, "EDIT_ISSUES", issue):
            raise ApiError(403, "You do not have permission to edit issues in this project.")
        body = call.json()
        fields = body.get("fields") or {}
        update = body.get("update") or {}
        if not isinstance(fields, dict) or not isinstance(update, dict):
            raise ApiError(400, "'fields' and 'update' must be objects.")
        overlap = set(fields) & set(update)
        if overlap:
            raise ApiError(
                400,
                field_errors={name: "Field is in both 'fields' and 'update'." for name in overlap},
            )
        merged = dict(fields)
        for name, operations in update.items():
            if name != "labels" or not isinstance(operations, list):
                merged[name] = operations  # rejected below as not settable
                continue
            labels = list(issue.labels)
            for operation in operations:
                if not isinstance(operation, dict):
                    raise ApiError(400, field_errors={"labels": "Invalid update operation."})
                for verb, value in operation.items():
                    if verb == "add" and value not in labels:
                        labels.append(value)
                    elif verb == "remove" and value in labels:
                        labels.remove(value)
                    elif verb == "set":
                        labels = list(value)
            merged["labels"] = labels
        self._apply_fields(issue, merged, creating=False)
        issue.updated = self.world.clock()
        return Reply(204)

    def delete_issue(self, call: Call) -> Reply:
        issue, project = self.visible_issue(call)
        if not self.world.has_permission(call.account, project, "DELETE_ISSUES", issue):
            raise ApiError(403, "You do not have permission to delete issues in this project.")
        for comment in [c for c in self.world.comments.values() if c.issue_id == issue.id]:
            del self.world.comments[comment.id]
        del self.world.issues[issue.id]
        return Reply(204)

    def create_issue(self, call: Call) -> Reply:
        fields = call.json().get("fields")
        if not isinstance(fields, dict):
            raise ApiError(400, "'fields' must be an object.")
        reference = fields.get("project")
        key = None
        if isinstance(reference, dict):
            key = reference.get("key") or reference.get("id")
        project = self.world.project(str(key)) if key else None
        if project is None or not self.world.can_browse(call.account, project):
            raise ApiError(400, field_errors={"project": "Specify a valid project ID or key"})
        if not self.world.has_permission(call.account, project, "CREATE_ISSUES"):
            raise ApiError(
                400,
                field_errors={
                    "project": "You do not have permission to create issues in this project."
                },
            )
        issue_type = fields.get("issuetype")
        type_id = None
        if isinstance(issue_type, dict):
            type_id = issue_type.get("id") or next(
                (i for i, n in ISSUE_TYPES.items() if n == issue_type.get("name")), None
            )
        if type_id not in ISSUE_TYPES:
            raise ApiError(400, field_errors={"issuetype": "Specify an issue type"})
        if not isinstance(fields.get("summary"), str) or not fields["summary"].strip():
            raise ApiError(
                400, field_errors={"summary": "You must specify a summary of the issue."}
            )
        issue = self.world.create_issue(
            project, fields["summary"], issue_type_id=str(type_id), reporter=call.caller()
        )
        try:
            self._apply_fields(issue, fields, creating=True)
        except ApiError:
            del self.world.issues[issue.id]
            project.next_number -= 1
            raise
        return Reply(201, call.render.created_issue(issue))

    def assign_issue(self, call: Call) -> Reply:
        issue, project = self.visible_issue(call)
        if not self.world.has_permission(call.account, project, "ASSIGN_ISSUES", issue):
            raise ApiError(403, "You do not have permission to assign issues.")
        body = call.json()
        if "accountId" not in body:
            raise ApiError(400, "'accountId' must be specified.")
        account_id = body["accountId"]
        if account_id in (None, "-1"):
            issue.assignee = None
        else:
            assignee = self.world.accounts.get(str(account_id))
            if assignee is None:
                raise ApiError(
                    400, field_errors={"assignee": f"User '{account_id}' does not exist."}
                )
            if not self.world.has_permission(assignee, project, "ASSIGNABLE_USER", issue):
                raise ApiError(
                    400,
                    field_errors={
                        "assignee": f"User '{assignee.display_name}' cannot be assigned issues."
                    },
                )
            issue.assignee = assignee.account_id
        issue.updated = self.world.clock()
        return Reply(204)

    def get_transitions(self, call: Call) -> Reply:
        issue, project = self.visible_issue(call)
        if not self.world.has_permission(call.account, project, "TRANSITION_ISSUES", issue):
            return Reply(200, {"expand": "transitions", "transitions": []})
        return Reply(200, call.render.transitions(issue, only=call.query("transitionId")))

    def do_transition(self, call: Call) -> Reply:
        issue, project = self.visible_issue(call)
        body = call.json()
        transition = body.get("transition")
        ident = transition.get("id") if isinstance(transition, dict) else None
        if not ident:
            raise ApiError(400, "Missing 'transition' identifier")
        if not self.world.has_permission(call.account, project, "TRANSITION_ISSUES", issue):
            raise ApiError(400, "You do not have permission to transition this issue.")
        target = TRANSITIONS.get(str(ident))
        if target is None or target.id == issue.status_id:
            raise ApiError(400, f"Transition id '{ident}' is not valid for this issue.")
        extra = {**(body.get("fields") or {}), **(body.get("update") or {})}
        if extra:
            raise ApiError(
                400,
                field_errors={
                    name: f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
                    for name in extra
                },
            )
        issue.status_id = target.id
        issue.updated = self.world.clock()
        return Reply(204)

    def get_comments(self, call: Call) -> Reply:
        issue, _ = self.visible_issue(call)
        start = call.int_query("startAt", 0, 10**6)
        limit = call.int_query("maxResults", 5000, 5000)
        comments = sorted(
            (c for c in self.world.comments.values() if c.issue_id == issue.id),
            key=lambda c: (c.created, c.id),
            reverse=call.query("orderBy") == "-created",
        )
        return Reply(200, call.render.comments_page(comments, start, limit))

    def add_comment(self, call: Call) -> Reply:
        issue, project = self.visible_issue(call)
        if not self.world.has_permission(call.account, project, "ADD_COMMENTS", issue):
            raise ApiError(400, "You do not have the permission to comment on this issue.")
        body = call.json().get("body")
        if body is None:
            raise ApiError(400, field_errors={"comment": "Comment body can not be empty!"})
        if not _adf_ok(body):
            raise ApiError(
                400,
                field_errors={
                    "comment": "Operation value must be an Atlassian Document "
                    "(see the Atlassian Document Format)"
                },
            )
        comment = self.world.add_comment(issue, call.caller(), body)
        return Reply(201, call.render.comment(comment))

    # -- organisation admin APIs -----------------------------------------------

    def admin_list_tokens(self, call: Call) -> Reply:
        limit = call.int_query("limit", 100, 100) or 100
        cursor = call.query("cursor")
        start = 0
        if cursor is not None:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise ApiError(400, "Invalid cursor", gateway=True) from None
        tokens = sorted(
            (t for t in self.world.tokens.values() if t.revoked is None),
            key=lambda t: (t.created, t.id),
        )
        page = tokens[start : start + limit]
        base = f"{call.render.base}/admin/api-access/v1/orgs/{self.world.org_id}/api-tokens"
        links: dict[str, str] = {"self": base}
        if start + limit < len(tokens):
            following = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            links["next"] = f"{base}?cursor={following}&limit={limit}"
        return Reply(200, {"data": [call.render.admin_token(t) for t in page], "links": links})

    def admin_delete_token(self, call: Call) -> Reply:
        account = self.world.accounts.get(call.args["account_id"])
        token = self.world.tokens.get(call.args["tokenId"])
        if account is None:
            raise ApiError(404, "User not found", gateway=True)
        if token is None or token.account_id != account.account_id or token.revoked is not None:
            raise ApiError(404, "API token not found", gateway=True)
        token.revoked = self.world.clock()
        return Reply(204)

    def admin_directories(self, call: Call) -> Reply:
        account_id = call.query("accountId")
        listed = account_id is None or account_id in self.world.accounts
        data = [call.render.directory()] if listed else []
        return Reply(200, {"data": data, "links": {}})

    def _directory_user(self, call: Call) -> Account:
        if call.args["directoryId"] != self.world.directory_id:
            raise ApiError(404, "Directory not found", gateway=True)
        account = self.world.accounts.get(call.args["accountId"])
        if account is None:
            raise ApiError(404, "User not found in directory", gateway=True)
        return account

    def admin_directory_user(self, call: Call) -> Reply:
        return Reply(200, call.render.directory_user(self._directory_user(call)))

    def admin_suspend(self, call: Call) -> Reply:
        self._directory_user(call).suspended = True
        return Reply(204)

    def admin_restore(self, call: Call) -> Reply:
        self._directory_user(call).suspended = False
        return Reply(204)


_LOGIN_FAILED = {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}


def _wants_grants(expand: list[str]) -> bool:
    return "permissions" in expand or "all" in expand


def _scopes_allow(route: Route, held: set[str]) -> bool:
    """A scoped token needs all classic scopes or all granular ones of the route."""
    if not route.classic_scopes:  # the description asks for none
        return True
    if set(route.classic_scopes) <= held:
        return True
    return bool(route.granular_scopes) and set(route.granular_scopes) <= held


# The OAuth 2.0 scopes the description lists per operation: (classic, granular).
SCOPES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "getServerInfo": ((), ()),
    "getCurrentUser": (
        ("read:jira-user",),
        ("read:application-role:jira", "read:group:jira", "read:user:jira", "read:avatar:jira"),
    ),
    "getUser": (
        ("read:jira-user",),
        ("read:application-role:jira", "read:group:jira", "read:user:jira", "read:avatar:jira"),
    ),
    "findUsers": (
        ("read:jira-user",),
        (
            "read:user:jira",
            "read:user.property:jira",
            "read:application-role:jira",
            "read:avatar:jira",
            "read:group:jira",
        ),
    ),
    "getUserGroups": (("read:jira-user",), ("read:group:jira",)),
    "addUserToGroup": (
        ("manage:jira-configuration",),
        ("write:group:jira", "read:avatar:jira", "read:group:jira", "read:user:jira"),
    ),
    "removeUserFromGroup": (("manage:jira-configuration",), ("write:group:jira",)),
    "searchProjects": (
        ("read:jira-work",),
        (
            "read:issue-type:jira",
            "read:project:jira",
            "read:project.property:jira",
            "read:user:jira",
            "read:application-role:jira",
            "read:avatar:jira",
            "read:group:jira",
            "read:issue-type-hierarchy:jira",
            "read:project-category:jira",
            "read:project-version:jira",
            "read:project.component:jira",
        ),
    ),
    "getProject": (
        ("read:jira-work",),
        (
            "read:issue-type:jira",
            "read:project:jira",
            "read:project.property:jira",
            "read:user:jira",
            "read:application-role:jira",
            "read:avatar:jira",
            "read:group:jira",
            "read:issue-type-hierarchy:jira",
            "read:project-category:jira",
            "read:project-version:jira",
            "read:project.component:jira",
        ),
    ),
    "getProjectRoles": (("read:jira-work",), ("read:project-role:jira",)),
    "getProjectRole": (
        ("read:jira-work",),
        (
            "read:user:jira",
            "read:group:jira",
            "read:project-role:jira",
            "read:project:jira",
            "read:avatar:jira",
            "read:project-category:jira",
        ),
    ),
    "addActorUsers": (
        ("manage:jira-configuration",),
        (
            "read:user:jira",
            "read:group:jira",
            "read:project-role:jira",
            "read:project:jira",
            "write:project-role:jira",
            "read:avatar:jira",
            "read:project-category:jira",
        ),
    ),
    "deleteActor": (("manage:jira-project",), ("delete:project-role:jira",)),
    "getAllProjectRoles": (
        ("manage:jira-configuration",),
        (
            "read:user:jira",
            "read:group:jira",
            "read:project-role:jira",
            "read:project:jira",
            "read:avatar:jira",
            "read:project-category:jira",
        ),
    ),
    "createProjectRole": (
        ("manage:jira-configuration",),
        (
            "read:user:jira",
            "read:group:jira",
            "read:project:jira",
            "write:project-role:jira",
            "read:avatar:jira",
            "read:project-category:jira",
            "read:project-role:jira",
        ),
    ),
    "getProjectRoleById": (
        ("manage:jira-configuration",),
        (
            "read:user:jira",
            "read:group:jira",
            "read:project-role:jira",
            "read:project:jira",
            "read:avatar:jira",
            "read:project-category:jira",
        ),
    ),
    "deleteProjectRole": (("manage:jira-configuration",), ("delete:project-role:jira",)),
    "getAssignedPermissionScheme": (
        ("read:jira-work",),
        (
            "read:application-role:jira",
            "read:field:jira",
            "read:group:jira",
            "read:permission-scheme:jira",
            "read:permission:jira",
            "read:project-role:jira",
            "read:user:jira",
            "read:avatar:jira",
            "read:project-category:jira",
            "read:project:jira",
        ),
    ),
    "getAllPermissionSchemes": (
        ("read:jira-work",),
        (
            "read:application-role:jira",
            "read:field:jira",
            "read:group:jira",
            "read:permission-scheme:jira",
            "read:permission:jira",
            "read:project-role:jira",
            "read:user:jira",
            "read:avatar:jira",
            "read:project-category:jira",
            "read:project:jira",
        ),
    ),
    "getPermissionScheme": (
        ("read:jira-work",),
        (
            "read:application-role:jira",
            "read:field:jira",
            "read:group:jira",
            "read:permission-scheme:jira",
            "read:permission:jira",
            "read:project-role:jira",
            "read:user:jira",
            "read:avatar:jira",
            "read:project-category:jira",
            "read:project:jira",
        ),
    ),
    "getPermissionSchemeGrants": (
        ("read:jira-work",),
        (
            "read:application-role:jira",
            "read:field:jira",
            "read:group:jira",
            "read:permission:jira",
            "read:project-role:jira",
            "read:user:jira",
        ),
    ),
    "createPermissionGrant": (
        ("manage:jira-configuration",),
        (
            "read:application-role:jira",
            "read:field:jira",
            "read:group:jira",
            "read:permission:jira",
            "read:project-role:jira",
            "read:user:jira",
            "write:permission:jira",
        ),
    ),
    "deletePermissionSchemeEntity": (("manage:jira-configuration",), ("delete:permission:jira",)),
    "getMyPermissions": ((), ("read:permission:jira",)),
    "getIssue": (
        ("read:jira-work",),
        (
            "read:issue-meta:jira",
            "read:issue-security-level:jira",
            "read:issue.vote:jira",
            "read:issue.changelog:jira",
            "read:avatar:jira",
            "read:issue:jira",
            "read:status:jira",
            "read:user:jira",
            "read:field-configuration:jira",
        ),
    ),
    "editIssue": (("write:jira-work",), ("write:issue:jira",)),
    "deleteIssue": (("write:jira-work",), ("delete:issue:jira",)),
    "createIssue": (
        ("write:jira-work",),
        (
            "write:issue:jira",
            "write:comment:jira",
            "write:comment.property:jira",
            "write:attachment:jira",
            "read:issue:jira",
        ),
    ),
    "assignIssue": (("write:jira-work",), ("write:issue:jira",)),
    "getTransitions": (
        ("read:jira-work",),
        ("read:issue.transition:jira", "read:status:jira", "read:field-configuration:jira"),
    ),
    "doTransition": (("write:jira-work",), ("write:issue:jira", "write:issue.property:jira")),
    "getComments": (
        ("read:jira-work",),
        (
            "read:comment:jira",
            "read:comment.property:jira",
            "read:group:jira",
            "read:project:jira",
            "read:project-role:jira",
            "read:user:jira",
            "read:avatar:jira",
        ),
    ),
    "addComment": (
        ("write:jira-work",),
        (
            "read:comment:jira",
            "read:comment.property:jira",
            "read:group:jira",
            "read:project:jira",
            "read:project-role:jira",
            "read:user:jira",
            "write:comment:jira",
            "read:avatar:jira",
        ),
    ),
}


def _jira(method: str, template: str, operation_id: str, auth: Auth, handler: Handler) -> Route:
    classic, granular = SCOPES[operation_id]
    return Route(method, template, operation_id, auth, handler, classic, granular)


_R = JiraApi

ROUTES: tuple[Route, ...] = (
    _jira("GET", "/rest/api/3/serverInfo", "getServerInfo", "none", _R.server_info),
    _jira("GET", "/rest/api/3/myself", "getCurrentUser", "jira", _R.myself),
    _jira("GET", "/rest/api/3/user", "getUser", "jira", _R.get_user),
    _jira("GET", "/rest/api/3/user/search", "findUsers", "jira", _R.find_users),
    _jira("GET", "/rest/api/3/user/groups", "getUserGroups", "jira", _R.user_groups),
    _jira("POST", "/rest/api/3/group/user", "addUserToGroup", "jira", _R.add_user_to_group),
    _jira(
        "DELETE", "/rest/api/3/group/user", "removeUserFromGroup", "jira", _R.remove_user_from_group
    ),
    _jira("GET", "/rest/api/3/project/search", "searchProjects", "jira", _R.search_projects),
    _jira("GET", "/rest/api/3/project/{projectIdOrKey}", "getProject", "jira", _R.get_project),
    _jira(
        "GET",
        "/rest/api/3/project/{projectIdOrKey}/role",
        "getProjectRoles",
        "jira",
        _R.project_roles,
    ),
    _jira(
        "GET",
        "/rest/api/3/project/{projectIdOrKey}/role/{id}",
        "getProjectRole",
        "jira",
        _R.project_role,
    ),
    _jira(
        "POST",
        "/rest/api/3/project/{projectIdOrKey}/role/{id}",
        "addActorUsers",
        "jira",
        _R.add_actors,
    ),
    _jira(
        "DELETE",
        "/rest/api/3/project/{projectIdOrKey}/role/{id}",
        "deleteActor",
        "jira",
        _R.delete_actor,
    ),
    _jira("GET", "/rest/api/3/role", "getAllProjectRoles", "jira", _R.all_roles),
    _jira("POST", "/rest/api/3/role", "createProjectRole", "jira", _R.create_role),
    _jira("GET", "/rest/api/3/role/{id}", "getProjectRoleById", "jira", _R.get_role),
    _jira("DELETE", "/rest/api/3/role/{id}", "deleteProjectRole", "jira", _R.delete_role),
    _jira(
        "GET",
        "/rest/api/3/project/{projectKeyOrId}/permissionscheme",
        "getAssignedPermissionScheme",
        "jira",
        _R.assigned_scheme,
    ),
    _jira("GET", "/rest/api/3/permissionscheme", "getAllPermissionSchemes", "jira", _R.all_schemes),
    _jira(
        "GET",
        "/rest/api/3/permissionscheme/{schemeId}",
        "getPermissionScheme",
        "jira",
        _R.get_scheme,
    ),
    _jira(
        "GET",
        "/rest/api/3/permissionscheme/{schemeId}/permission",
        "getPermissionSchemeGrants",
        "jira",
        _R.scheme_grants,
    ),
    _jira(
        "POST",
        "/rest/api/3/permissionscheme/{schemeId}/permission",
        "createPermissionGrant",
        "jira",
        _R.create_grant,
    ),
    _jira(
        "DELETE",
        "/rest/api/3/permissionscheme/{schemeId}/permission/{permissionId}",
        "deletePermissionSchemeEntity",
        "jira",
        _R.delete_grant,
    ),
    _jira("GET", "/rest/api/3/mypermissions", "getMyPermissions", "jira", _R.my_permissions),
    _jira("GET", "/rest/api/3/issue/{issueIdOrKey}", "getIssue", "jira", _R.get_issue),
    _jira("PUT", "/rest/api/3/issue/{issueIdOrKey}", "editIssue", "jira", _R.edit_issue),
    _jira("DELETE", "/rest/api/3/issue/{issueIdOrKey}", "deleteIssue", "jira", _R.delete_issue),
    _jira("POST", "/rest/api/3/issue", "createIssue", "jira", _R.create_issue),
    _jira(
        "PUT", "/rest/api/3/issue/{issueIdOrKey}/assignee", "assignIssue", "jira", _R.assign_issue
    ),
    _jira(
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}/transitions",
        "getTransitions",
        "jira",
        _R.get_transitions,
    ),
    _jira(
        "POST",
        "/rest/api/3/issue/{issueIdOrKey}/transitions",
        "doTransition",
        "jira",
        _R.do_transition,
    ),
    _jira(
        "GET", "/rest/api/3/issue/{issueIdOrKey}/comment", "getComments", "jira", _R.get_comments
    ),
    _jira("POST", "/rest/api/3/issue/{issueIdOrKey}/comment", "addComment", "jira", _R.add_comment),
    # Not in the platform description: the site's tenant information, which
    # gives the cloud id that gateway URLs need.
    Route("GET", "/_edge/tenant_info", "tenantInfo", "none", _R.tenant_info),
    # Organisation admin APIs on api.atlassian.com (Bearer admin API key).
    Route(
        "GET",
        "/admin/api-access/v1/orgs/{orgId}/api-tokens",
        "getApiTokens",
        "admin",
        _R.admin_list_tokens,
        admin_scope="read:tokens:admin",
    ),
    Route(
        "DELETE",
        "/users/{account_id}/manage/api-tokens/{tokenId}",
        "deleteApiToken",
        "admin",
        _R.admin_delete_token,
        admin_scope="delete:tokens:admin",
    ),
    Route(
        "GET",
        "/admin/v2/orgs/{orgId}/directories",
        "getDirectoriesForOrg",
        "admin",
        _R.admin_directories,
        admin_scope="read:directories:admin",
    ),
    Route(
        "GET",
        "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}",
        "getDirectoryUserDetails",
        "admin",
        _R.admin_directory_user,
        admin_scope="read:directories:admin",
    ),
    Route(
        "POST",
        "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/suspend",
        "suspendDirectoryUser",
        "admin",
        _R.admin_suspend,
        admin_scope="write:directories:admin",
    ),
    Route(
        "POST",
        "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/{accountId}/restore",
        "restoreDirectoryUser",
        "admin",
        _R.admin_restore,
        admin_scope="write:directories:admin",
    ),
)
