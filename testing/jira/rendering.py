"""Complete JSON objects, shaped as Atlassian's descriptions require them.

Jira's own answers follow the Jira Cloud platform REST API description; the
organisation admin answers follow the shapes documented for the Atlassian
admin APIs (api-access, user management, organisations v2).

``self`` links use the base URL the request came through: the site URL for
classic tokens, ``/ex/jira/{cloudId}`` on the gateway for scoped ones, as
Jira does.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from testing.jira.world import (
    GLOBAL_PERMISSIONS,
    ISSUE_TYPES,
    PROJECT_PERMISSIONS,
    TRANSITIONS,
    Account,
    ApiToken,
    Comment,
    Grant,
    Group,
    Issue,
    Project,
    Role,
    Scheme,
    Status,
    World,
)

JIRA_VERSION = "1001.0.0-SNAPSHOT"


def jira_time(moment: datetime) -> str:
    """Jira's timestamps with milliseconds.

    Jira itself writes the offset as ``+0000``; the description declares
    ``format: date-time`` (RFC 3339), which needs ``+00:00``. The emulator
    follows the description; agentctl reads both.
    """
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def admin_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def _avatar_urls(base: str, seed: str) -> dict[str, str]:
    return {
        size: f"{base}/secure/useravatar?size={n}&avatarId={zlib.crc32(seed.encode()) % 10000}"
        for size, n in (("48x48", 48), ("24x24", 24), ("16x16", 16), ("32x32", 32))
    }


def _actor_id(*parts: object) -> int:
    return 10000 + zlib.crc32("/".join(map(str, parts)).encode()) % 1_000_000


class Render:
    def __init__(self, world: World, base: str) -> None:
        self.world = world
        self.base = base.rstrip("/")
        self.api = f"{self.base}/rest/api/3"

    # -- errors -----------------------------------------------------------

    @staticmethod
    def errors(messages: Iterable[str], field_errors: Mapping[str, str]) -> dict[str, Any]:
        return {"errorMessages": list(messages), "errors": dict(field_errors)}

    # -- users and groups -------------------------------------------------

    def user(self, account: Account, *, expand: Iterable[str] = ()) -> dict[str, Any]:
        groups = self.world.groups_of(account) if "groups" in expand else []
        roles = (
            [self._application_role()]
            if "applicationRoles" in expand and self._has_jira_access(account)
            else []
        )
        return {
            "self": f"{self.api}/user?accountId={quote(account.account_id)}",
            "accountId": account.account_id,
            "accountType": account.account_type,
            "emailAddress": account.email,
            "avatarUrls": _avatar_urls(self.base, account.account_id),
            "displayName": account.display_name,
            "active": account.active and not account.suspended,
            "timeZone": account.time_zone,
            "locale": "en_US",
            "groups": {"size": len(groups), "items": [self.group_name(g) for g in groups]},
            "applicationRoles": {"size": len(roles), "items": roles},
            "expand": "groups,applicationRoles",
        }

    def _has_jira_access(self, account: Account) -> bool:
        return account.account_type == "app" or any(
            g.name == "jira-software-users" for g in self.world.groups_of(account)
        )

    @staticmethod
    def _application_role() -> dict[str, Any]:
        return {
            "key": "jira-software",
            "name": "Jira",
            "groups": ["jira-software-users"],
            "defaultGroups": ["jira-software-users"],
            "selectedByDefault": False,
            "defined": True,
            "hasUnlimitedSeats": False,
            "platform": False,
        }

    def user_details(self, account: Account) -> dict[str, Any]:
        return {
            "self": f"{self.api}/user?accountId={quote(account.account_id)}",
            "accountId": account.account_id,
            "emailAddress": account.email,
            "avatarUrls": _avatar_urls(self.base, account.account_id),
            "displayName": account.display_name,
            "active": account.active and not account.suspended,
            "timeZone": account.time_zone,
            "accountType": account.account_type,
        }

    def group_name(self, group: Group) -> dict[str, Any]:
        return {
            "name": group.name,
            "groupId": group.group_id,
            "self": f"{self.api}/group?groupId={group.group_id}",
        }

    def group(self, group: Group) -> dict[str, Any]:
        members = [self.world.accounts[a] for a in group.members if a in self.world.accounts]
        shown = members[:50]
        return {
            **self.group_name(group),
            "users": {
                "size": len(members),
                "items": [self.user_details(a) for a in shown],
                "max-results": 50,
                "start-index": 0,
                "end-index": max(len(shown) - 1, 0),
            },
            "expand": "users",
        }

    # -- projects, roles, schemes -----------------------------------------

    def project_details(self, project: Project) -> dict[str, Any]:
        return {
            "self": f"{self.api}/project/{project.id}",
            "id": str(project.id),
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
            "simplified": False,
            "avatarUrls": _avatar_urls(self.base, project.key),
        }

    def project(self, project: Project) -> dict[str, Any]:
        lead = self.world.accounts.get(project.lead)
        body: dict[str, Any] = {
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "self": f"{self.api}/project/{project.id}",
            "id": str(project.id),
            "key": project.key,
            "description": "",
            "components": [],
            "issueTypes": [self.issue_type(ident) for ident in ISSUE_TYPES],
            "assigneeType": "UNASSIGNED",
            "versions": [],
            "name": project.name,
            "roles": self.project_role_links(project),
            "avatarUrls": _avatar_urls(self.base, project.key),
            "projectTypeKey": "software",
            "simplified": False,
            "style": "classic",
            "isPrivate": False,
            "properties": {},
        }
        if lead is not None:
            body["lead"] = self.user(lead)
        return body

    def project_role_links(self, project: Project) -> dict[str, str]:
        return {
            role.name: f"{self.api}/project/{project.id}/role/{role.id}"
            for role in sorted(self.world.roles.values(), key=lambda r: r.id)
        }

    def issue_type(self, ident: str) -> dict[str, Any]:
        return {
            "self": f"{self.api}/issuetype/{ident}",
            "id": ident,
            "description": f"A {ISSUE_TYPES[ident].lower()}.",
            "iconUrl": f"{self.base}/images/icons/issuetypes/{ISSUE_TYPES[ident].lower()}.svg",
            "name": ISSUE_TYPES[ident],
            "subtask": False,
            "hierarchyLevel": 0,
        }

    def role(self, role: Role, project: Project | None = None) -> dict[str, Any]:
        """A project role; with ``project``, its actors in that project."""
        if project is None:
            link, actors = f"{self.api}/role/{role.id}", []
        else:
            link = f"{self.api}/project/{project.id}/role/{role.id}"
            actors = self.role_actors(project, role)
        return {
            "self": link,
            "name": role.name,
            "id": role.id,
            "description": role.description,
            "actors": actors,
            "admin": role.name == "Administrators",
            "default": role.name == "Member",
            "roleConfigurable": True,
            "translatedName": role.name,
        }

    def role_actors(self, project: Project, role: Role) -> list[dict[str, Any]]:
        found = project.actors.get(str(role.id), {})
        actors: list[dict[str, Any]] = []
        for group_id in found.get("groups", []):
            group = self.world.groups.get(group_id)
            if group is None:
                continue
            actors.append(
                {
                    "id": _actor_id(project.id, role.id, "g", group_id),
                    "displayName": group.name,
                    "type": "atlassian-group-role-actor",
                    "name": group.name,
                    "actorGroup": {
                        "displayName": group.name,
                        "name": group.name,
                        "groupId": group.group_id,
                    },
                }
            )
        for account_id in found.get("users", []):
            account = self.world.accounts.get(account_id)
            if account is None:
                continue
            actors.append(
                {
                    "id": _actor_id(project.id, role.id, "u", account_id),
                    "displayName": account.display_name,
                    "type": "atlassian-user-role-actor",
                    "avatarUrl": _avatar_urls(self.base, account_id)["48x48"],
                    "actorUser": {"accountId": account_id},
                }
            )
        return actors

    def scheme(self, scheme: Scheme, *, with_permissions: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "expand": "permissions,user,group,projectRole,field,all",
            "id": scheme.id,
            "self": f"{self.api}/permissionscheme/{scheme.id}",
            "name": scheme.name,
            "description": scheme.description,
        }
        if with_permissions:
            body["permissions"] = [self.grant(g) for g in self.world.grants_of(scheme.id)]
        return body

    def grant(self, grant: Grant) -> dict[str, Any]:
        holder: dict[str, Any] = {"type": grant.holder_type}
        parameter = grant.holder_parameter
        match grant.holder_type:
            case "group":
                group = self.world.groups.get(parameter or "")
                # The group's name is the (deprecated) parameter; value is its id.
                holder.update(parameter=group.name if group else parameter, value=parameter)
                holder["expand"] = "group"
            case "projectRole":
                holder.update(parameter=parameter, value=parameter, expand="projectRole")
            case "user":
                holder.update(parameter=parameter, value=parameter, expand="user")
            case _ if parameter is not None:
                holder.update(parameter=parameter, value=parameter)
        return {
            "id": grant.id,
            "self": f"{self.api}/permissionscheme/permission/{grant.id}",
            "holder": holder,
            "permission": grant.permission,
        }

    def permissions(self, have: Mapping[str, bool]) -> dict[str, Any]:
        table: dict[str, Any] = {}
        for index, (key, held) in enumerate(sorted(have.items())):
            is_global = key in GLOBAL_PERMISSIONS
            name = GLOBAL_PERMISSIONS[key] if is_global else PROJECT_PERMISSIONS[key]
            table[key] = {
                "id": str(index + 1),
                "key": key,
                "name": name,
                "type": "GLOBAL" if is_global else "PROJECT",
                "description": f"Ability to {name.lower()}.",
                "havePermission": held,
            }
        return {"permissions": table}

    # -- issues -----------------------------------------------------------

    def status(self, status: Status) -> dict[str, Any]:
        return {
            "self": f"{self.api}/status/{status.id}",
            "description": "",
            "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": f"{self.api}/statuscategory/{status.category_id}",
                "id": status.category_id,
                "key": status.category_key,
                "colorName": status.color,
                "name": status.category_name,
            },
        }

    def issue(
        self, issue: Issue, *, fields: set[str] | None = None, transitions: bool = False
    ) -> dict[str, Any]:
        world = self.world
        project = world.projects[issue.project_id]

        def person(account_id: str | None) -> dict[str, Any] | None:
            account = world.accounts.get(account_id or "")
            return self.user_details(account) if account else None

        comments = sorted(
            (c for c in world.comments.values() if c.issue_id == issue.id), key=lambda c: c.id
        )
        every: dict[str, Any] = {
            "summary": issue.summary,
            "description": issue.description,
            "status": self.status(world.status(issue.status_id)),
            "issuetype": self.issue_type(issue.issue_type_id),
            "project": self.project_details(project),
            "reporter": person(issue.reporter),
            "assignee": person(issue.assignee),
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
            "labels": list(issue.labels),
            "comment": {
                "comments": [self.comment(c) for c in comments],
                "self": f"{self.api}/issue/{issue.id}/comment",
                "maxResults": len(comments),
                "total": len(comments),
                "startAt": 0,
            },
        }
        chosen = every if not fields else {k: v for k, v in every.items() if k in fields}
        body: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
            "versionedRepresentations",
            "id": str(issue.id),
            "self": f"{self.api}/issue/{issue.id}",
            "key": world.issue_key(issue),
            "fields": chosen,
        }
        if transitions:
            body["transitions"] = self.transitions(issue)["transitions"]
        return body

    def transitions(self, issue: Issue, *, only: str | None = None) -> dict[str, Any]:
        listed = [
            {
                "id": ident,
                "name": target.name,
                "to": self.status(target),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "looped": False,
            }
            for ident, target in TRANSITIONS.items()
            if target.id != issue.status_id and (only is None or only == ident)
        ]
        return {"expand": "transitions", "transitions": listed}

    def comment(self, comment: Comment) -> dict[str, Any]:
        author = self.world.accounts.get(comment.author)
        body: dict[str, Any] = {
            "self": f"{self.api}/issue/{comment.issue_id}/comment/{comment.id}",
            "id": str(comment.id),
            "body": comment.body,
            "created": jira_time(comment.created),
            "updated": jira_time(comment.updated),
            "jsdPublic": True,
        }
        if author is not None:
            body["author"] = self.user_details(author)
            body["updateAuthor"] = self.user_details(author)
        return body

    def comments_page(self, comments: list[Comment], start: int, limit: int) -> dict[str, Any]:
        return {
            "startAt": start,
            "maxResults": limit,
            "total": len(comments),
            "comments": [self.comment(c) for c in comments[start : start + limit]],
        }

    def created_issue(self, issue: Issue) -> dict[str, Any]:
        return {
            "id": str(issue.id),
            "key": self.world.issue_key(issue),
            "self": f"{self.api}/issue/{issue.id}",
        }

    def server_info(self, now: datetime) -> dict[str, Any]:
        return {
            "baseUrl": self.base,
            "version": JIRA_VERSION,
            "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud",
            "buildNumber": 100219,
            "buildDate": "2022-05-02T00:00:00.000+00:00",
            "serverTime": jira_time(now),
            "scmInfo": "0" * 40,
            "serverTitle": "Jira",
        }

    # -- organisation admin APIs ------------------------------------------

    def admin_token(self, token: ApiToken) -> dict[str, Any]:
        account = self.world.accounts[token.account_id]
        body: dict[str, Any] = {
            "id": token.id,
            "label": token.label,
            "status": "ALLOWED",
            "createdAt": admin_time(token.created),
            "expiresAt": admin_time(token.expires),
            "user": {
                "id": account.account_id,
                "orgId": self.world.org_id,
                "name": account.display_name,
                "email": account.email,
            },
            "scopes": list(token.scopes or []),
        }
        if token.last_access is not None:
            body["lastActiveAt"] = admin_time(token.last_access)
        return body

    def directory(self) -> dict[str, Any]:
        return {
            "directoryId": self.world.directory_id,
            "name": f"{self.world.site_name} directory",
            "icon": f"{self.base}/images/directory.svg",
        }

    def directory_user(self, account: Account) -> dict[str, Any]:
        membership = "suspended" if account.suspended else "active"
        status = "deactivated" if not account.active else membership
        return {
            "data": {
                "accountId": account.account_id,
                "accountType": account.account_type,
                "status": status,
                "accountStatus": "active" if account.active else "inactive",
                "membershipStatus": membership,
                "addedToOrg": admin_time(account.created),
                "name": account.display_name,
                "email": account.email,
                "emailVerified": True,
            }
        }
