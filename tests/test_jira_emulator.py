"""The Jira emulator answers like Jira Cloud: real HTTP, Atlassian's description.

Every case talks to a real server on 127.0.0.1; nothing is patched. Part 1
sends one request per documented answer of every operation the emulator
serves and validates the answer against Atlassian's OpenAPI description of the
Jira Cloud platform REST API (a copy is in tests/data). Part 2 checks the
rules agentctl relies on: who may do what in which project, token scopes and
expiry, suspension, the admin APIs, faults, the request log, restarts.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from testing.jira import JiraEmulator
from testing.jira.routes import ROUTES, SCOPES

DESCRIPTION_PATH = Path(__file__).resolve().parent / "data" / "jira-platform-v3.openapi.json"
AGENT_SCOPES = ["read:jira-work", "write:jira-work"]
ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Looks good."}]}],
}


class FakeClock:
    """A clock tests can move; the emulator judges token expiry by it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


# --------------------------------------------------------------------------
# World building
# --------------------------------------------------------------------------


@dataclass
class World:
    """Projects SEC, OPS and DOC; a service account that reads and transitions in
    SEC (through its own role, as agentctl sets it up) and may only browse DOC.

    ``admin`` is the site admin (classic token, site URL); ``agent`` the
    service account (scoped token, gateway); ``bob`` a person in no group.
    Issues: SEC-1, OPS-1, DOC-1.
    """

    jira: JiraEmulator
    admin: httpx.Client
    agent: httpx.Client
    bob: httpx.Client
    agent_id: str
    agent_email: str
    agent_token: str
    agent_role: int
    bob_id: str
    _names: Iterator[int] = field(default_factory=itertools.count)

    def name(self, prefix: str) -> str:
        return f"{prefix}{next(self._names)}"

    def gateway(self, email: str, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.jira.gateway_url, auth=(email, token), timeout=10)

    def site(self, email: str, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.jira.url, auth=(email, token), timeout=10)

    def new_issue(self, project: str = "SEC") -> str:
        return self.jira.create_issue(project, "A fresh issue")

    def new_role(self) -> int:
        response = self.admin.post("/rest/api/3/role", json={"name": self.name("role-")})
        assert response.status_code == 200, response.text
        role_id: int = response.json()["id"]
        return role_id

    def new_agent(self, scopes: list[str] | None = None) -> tuple[str, str, str]:
        """A service account with a token: (account id, email, token)."""
        account_id, email = self.jira.create_service_account(self.name("agent-"))
        _, token = self.jira.create_token(account_id, scopes=scopes or AGENT_SCOPES)
        return account_id, email, token

    def admin_key(self, scopes: list[str] | None = None) -> dict[str, str]:
        _, key = self.jira.create_admin_key(scopes=scopes)
        return {"Authorization": f"Bearer {key}"}


def build_world(jira: JiraEmulator) -> World:
    for key in ("SEC", "OPS", "DOC"):
        jira.create_project(key, f"{key} project")
        jira.create_issue(key, f"First {key} issue", description="Steps to reproduce")
    admin = httpx.Client(base_url=jira.url, auth=(jira.admin_email, jira.admin_token()), timeout=10)
    agent_id, agent_email = jira.create_service_account("pr-review-agent")
    _, agent_token = jira.create_token(agent_id, label="agentctl", scopes=AGENT_SCOPES)
    # What `agentctl apply` does: a dedicated role, its grants, membership in SEC.
    role = admin.post("/rest/api/3/role", json={"name": "agentctl-pr-review-agent"}).json()["id"]
    for permission in ("BROWSE_PROJECTS", "TRANSITION_ISSUES"):
        grant = admin.post(
            "/rest/api/3/permissionscheme/10000/permission",
            json={"holder": {"type": "projectRole", "value": str(role)}, "permission": permission},
        )
        assert grant.status_code == 201, grant.text
    added = admin.post(f"/rest/api/3/project/SEC/role/{role}", json={"user": [agent_id]})
    assert added.status_code == 200, added.text
    jira.add_role_actor("DOC", "Viewer", user=agent_id)
    bob_id = jira.create_account("Bob Builder", "bob@acme.example")
    _, bob_token = jira.create_token(bob_id, label="bob")
    return World(
        jira=jira,
        admin=admin,
        agent=httpx.Client(base_url=jira.gateway_url, auth=(agent_email, agent_token), timeout=10),
        bob=httpx.Client(base_url=jira.url, auth=("bob@acme.example", bob_token), timeout=10),
        agent_id=agent_id,
        agent_email=agent_email,
        agent_token=agent_token,
        agent_role=role,
        bob_id=bob_id,
    )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One world for the module. Tests that change what others rely on make
    their own projects, issues, roles and agents (``new_*`` helpers)."""
    with JiraEmulator() as jira:
        built = build_world(jira)
        yield built
        for client in (built.admin, built.agent, built.bob):
            client.close()


@pytest.fixture
def faulty_world(world: World) -> Iterator[World]:
    yield world
    world.jira.reset_faults()


# --------------------------------------------------------------------------
# 1. Conformance with Atlassian's OpenAPI description
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    operation_id: str
    status: int
    label: str
    send: Callable[[World], httpx.Response]

    @property
    def id(self) -> str:
        return f"{self.operation_id} {self.status} {self.label}".strip()


CASES: list[Case] = []


def case(
    operation_id: str, status: int, label: str = ""
) -> Callable[[Callable[[World], httpx.Response]], Callable[[World], httpx.Response]]:
    def register(send: Callable[[World], httpx.Response]) -> Callable[[World], httpx.Response]:
        CASES.append(Case(operation_id, status, label, send))
        return send

    return register


@case("getServerInfo", 200, "anonymous")
def _(w: World) -> httpx.Response:
    return httpx.get(f"{w.jira.url}/rest/api/3/serverInfo")


@case("getCurrentUser", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/myself?expand=groups,applicationRoles")


@case("getCurrentUser", 200, "service account, scoped token")
def _(w: World) -> httpx.Response:
    _, email, token = w.new_agent(["read:jira-user"])
    return w.gateway(email, token).get("/rest/api/3/myself")


@case("getCurrentUser", 401, "no credentials")
def _(w: World) -> httpx.Response:
    return httpx.get(f"{w.jira.url}/rest/api/3/myself")


@case("getCurrentUser", 401, "token lacks the scope")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/myself")


@case("getUser", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/user", params={"accountId": w.agent_id, "expand": "groups"})


@case("getUser", 401, "wrong token")
def _(w: World) -> httpx.Response:
    return w.site(w.jira.admin_email, "not-a-token").get(
        "/rest/api/3/user", params={"accountId": w.agent_id}
    )


@case("getUser", 403, "no Browse users and groups")
def _(w: World) -> httpx.Response:
    return w.bob.get("/rest/api/3/user", params={"accountId": w.agent_id})


@case("getUser", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/user", params={"accountId": "712020:nobody"})


@case("findUsers", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/user/search", params={"query": "pr-review-agent"})


@case("findUsers", 200, "no permission: empty")
def _(w: World) -> httpx.Response:
    return w.bob.get("/rest/api/3/user/search", params={"query": "pr-review-agent"})


@case("findUsers", 400, "neither query nor accountId")
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/user/search")


@case("getUserGroups", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/user/groups", params={"accountId": w.jira.admin_account_id})


@case("getUserGroups", 403)
def _(w: World) -> httpx.Response:
    return w.bob.get("/rest/api/3/user/groups", params={"accountId": w.agent_id})


@case("getUserGroups", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/user/groups", params={"accountId": "712020:nobody"})


@case("addUserToGroup", 201)
def _(w: World) -> httpx.Response:
    w.jira.create_group(group := w.name("group-"))
    return w.admin.post(
        "/rest/api/3/group/user", params={"groupname": group}, json={"accountId": w.bob_id}
    )


@case("addUserToGroup", 400, "already a member")
def _(w: World) -> httpx.Response:
    group_id = w.jira.create_group(w.name("group-"), members=[w.bob_id])
    return w.admin.post(
        "/rest/api/3/group/user", params={"groupId": group_id}, json={"accountId": w.bob_id}
    )


@case("addUserToGroup", 403)
def _(w: World) -> httpx.Response:
    group_id = w.jira.create_group(w.name("group-"))
    return w.bob.post(
        "/rest/api/3/group/user", params={"groupId": group_id}, json={"accountId": w.bob_id}
    )


@case("addUserToGroup", 404, "no such group")
def _(w: World) -> httpx.Response:
    return w.admin.post(
        "/rest/api/3/group/user", params={"groupname": "nope"}, json={"accountId": w.bob_id}
    )


@case("removeUserFromGroup", 200)
def _(w: World) -> httpx.Response:
    group_id = w.jira.create_group(w.name("group-"), members=[w.bob_id])
    return w.admin.delete(
        "/rest/api/3/group/user", params={"groupId": group_id, "accountId": w.bob_id}
    )


@case("removeUserFromGroup", 400, "no accountId")
def _(w: World) -> httpx.Response:
    return w.admin.delete("/rest/api/3/group/user", params={"groupname": "site-admins"})


@case("removeUserFromGroup", 403)
def _(w: World) -> httpx.Response:
    group_id = w.jira.create_group(w.name("group-"), members=[w.bob_id])
    return w.bob.delete(
        "/rest/api/3/group/user", params={"groupId": group_id, "accountId": w.bob_id}
    )


@case("removeUserFromGroup", 404, "not a member")
def _(w: World) -> httpx.Response:
    group_id = w.jira.create_group(w.name("group-"))
    return w.admin.delete(
        "/rest/api/3/group/user", params={"groupId": group_id, "accountId": w.bob_id}
    )


@case("searchProjects", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/project/search", params={"maxResults": 2})


@case("searchProjects", 200, "what the agent can browse")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/project/search")


@case("getProject", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/project/SEC")


@case("getProject", 404, "the agent cannot browse OPS")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/project/OPS")


@case("getProjectRoles", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/project/SEC/role")


@case("getProjectRoles", 404, "not an administrator")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/project/SEC/role")


@case("getProjectRole", 200)
def _(w: World) -> httpx.Response:
    w.jira.add_role_actor("OPS", "Member", group="jira-software-users")
    return w.admin.get(f"/rest/api/3/project/SEC/role/{w.agent_role}")


@case("getProjectRole", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/project/SEC/role/1")


@case("addActorUsers", 200)
def _(w: World) -> httpx.Response:
    return w.admin.post(f"/rest/api/3/project/OPS/role/{w.new_role()}", json={"user": [w.bob_id]})


@case("addActorUsers", 400, "no actors")
def _(w: World) -> httpx.Response:
    return w.admin.post(f"/rest/api/3/project/OPS/role/{w.new_role()}", json={})


@case("addActorUsers", 401, "not an administrator")
def _(w: World) -> httpx.Response:
    return w.bob.post(f"/rest/api/3/project/OPS/role/{w.new_role()}", json={"user": [w.bob_id]})


@case("addActorUsers", 404, "no such user")
def _(w: World) -> httpx.Response:
    return w.admin.post(
        f"/rest/api/3/project/OPS/role/{w.new_role()}", json={"user": ["712020:nobody"]}
    )


@case("deleteActor", 204)
def _(w: World) -> httpx.Response:
    role = w.new_role()
    w.admin.post(f"/rest/api/3/project/OPS/role/{role}", json={"user": [w.bob_id]})
    return w.admin.delete(f"/rest/api/3/project/OPS/role/{role}", params={"user": w.bob_id})


@case("deleteActor", 400, "no actor named")
def _(w: World) -> httpx.Response:
    return w.admin.delete(f"/rest/api/3/project/OPS/role/{w.new_role()}")


@case("deleteActor", 404, "not an actor")
def _(w: World) -> httpx.Response:
    return w.admin.delete(f"/rest/api/3/project/OPS/role/{w.new_role()}", params={"user": w.bob_id})


@case("getAllProjectRoles", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/role")


@case("getAllProjectRoles", 403)
def _(w: World) -> httpx.Response:
    return w.bob.get("/rest/api/3/role")


@case("createProjectRole", 200)
def _(w: World) -> httpx.Response:
    return w.admin.post(
        "/rest/api/3/role", json={"name": w.name("agentctl-x"), "description": "agentctl"}
    )


@case("createProjectRole", 400, "no name")
def _(w: World) -> httpx.Response:
    return w.admin.post("/rest/api/3/role", json={"description": "nameless"})


@case("createProjectRole", 403)
def _(w: World) -> httpx.Response:
    return w.bob.post("/rest/api/3/role", json={"name": w.name("bobs-role-")})


@case("createProjectRole", 409, "name taken")
def _(w: World) -> httpx.Response:
    return w.admin.post("/rest/api/3/role", json={"name": "Member"})


@case("getProjectRoleById", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get(f"/rest/api/3/role/{w.agent_role}")


@case("getProjectRoleById", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/role/1")


@case("deleteProjectRole", 204)
def _(w: World) -> httpx.Response:
    return w.admin.delete(f"/rest/api/3/role/{w.new_role()}")


@case("deleteProjectRole", 404)
def _(w: World) -> httpx.Response:
    return w.admin.delete("/rest/api/3/role/1")


@case("deleteProjectRole", 409, "used in a scheme")
def _(w: World) -> httpx.Response:
    return w.admin.delete(f"/rest/api/3/role/{w.agent_role}")


@case("getAssignedPermissionScheme", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/project/SEC/permissionscheme", params={"expand": "permissions"})


@case("getAssignedPermissionScheme", 403, "not an administrator")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/project/SEC/permissionscheme")


@case("getAssignedPermissionScheme", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/project/NOPE/permissionscheme")


@case("getAllPermissionSchemes", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/permissionscheme", params={"expand": "all"})


@case("getPermissionScheme", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/permissionscheme/10000")


@case("getPermissionScheme", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/permissionscheme/1")


@case("getPermissionSchemeGrants", 200)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/permissionscheme/10000/permission")


@case("getPermissionSchemeGrants", 404)
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/permissionscheme/1/permission")


@case("createPermissionGrant", 201)
def _(w: World) -> httpx.Response:
    return w.admin.post(
        "/rest/api/3/permissionscheme/10000/permission",
        json={
            "holder": {"type": "projectRole", "value": str(w.new_role())},
            "permission": "ADD_COMMENTS",
        },
    )


@case("createPermissionGrant", 201, "to a group")
def _(w: World) -> httpx.Response:
    scheme = w.jira.create_scheme(w.name("scheme-"), copy_default=False)
    return w.admin.post(
        f"/rest/api/3/permissionscheme/{scheme}/permission",
        json={
            "holder": {"type": "group", "parameter": "jira-software-users"},
            "permission": "BROWSE_PROJECTS",
        },
    )


@case("createPermissionGrant", 400, "unknown permission")
def _(w: World) -> httpx.Response:
    return w.admin.post(
        "/rest/api/3/permissionscheme/10000/permission",
        json={"holder": {"type": "anyone"}, "permission": "BROWSE_EVERYTHING"},
    )


@case("createPermissionGrant", 403)
def _(w: World) -> httpx.Response:
    return w.bob.post(
        "/rest/api/3/permissionscheme/10000/permission",
        json={"holder": {"type": "anyone"}, "permission": "BROWSE_PROJECTS"},
    )


@case("deletePermissionSchemeEntity", 204)
def _(w: World) -> httpx.Response:
    grant = w.jira.add_grant("LINK_ISSUES", "projectRole", str(w.new_role()))
    return w.admin.delete(f"/rest/api/3/permissionscheme/10000/permission/{grant}")


@case("deletePermissionSchemeEntity", 400, "no such grant")
def _(w: World) -> httpx.Response:
    return w.admin.delete("/rest/api/3/permissionscheme/10000/permission/1")


@case("deletePermissionSchemeEntity", 403)
def _(w: World) -> httpx.Response:
    grant = w.jira.add_grant("LINK_ISSUES", "projectRole", str(w.new_role()))
    return w.bob.delete(f"/rest/api/3/permissionscheme/10000/permission/{grant}")


@case("getMyPermissions", 200)
def _(w: World) -> httpx.Response:
    return w.agent.get(
        "/rest/api/3/mypermissions",
        params={"projectKey": "SEC", "permissions": "BROWSE_PROJECTS,TRANSITION_ISSUES,ADMINISTER"},
    )


@case("getMyPermissions", 400, "no permissions named")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/mypermissions")


@case("getMyPermissions", 401)
def _(w: World) -> httpx.Response:
    return httpx.get(f"{w.jira.url}/rest/api/3/mypermissions?permissions=BROWSE_PROJECTS")


@case("getMyPermissions", 404, "a project the agent cannot see")
def _(w: World) -> httpx.Response:
    return w.agent.get(
        "/rest/api/3/mypermissions", params={"projectKey": "OPS", "permissions": "BROWSE_PROJECTS"}
    )


@case("getIssue", 200)
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/issue/SEC-1", params={"expand": "transitions"})


@case("getIssue", 200, "some fields")
def _(w: World) -> httpx.Response:
    return w.admin.get("/rest/api/3/issue/OPS-1", params={"fields": "summary,status"})


@case("getIssue", 401, "revoked token")
def _(w: World) -> httpx.Response:
    account_id, email, token = w.new_agent()
    token_id = next(t["id"] for t in w.jira.state()["tokens"] if t["accountId"] == account_id)
    revoked = httpx.delete(
        f"{w.jira.url}/users/{account_id}/manage/api-tokens/{token_id}", headers=w.admin_key()
    )
    assert revoked.status_code == 204
    return w.gateway(email, token).get("/rest/api/3/issue/SEC-1")


@case("getIssue", 404, "another project")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/issue/OPS-1")


@case("editIssue", 204)
def _(w: World) -> httpx.Response:
    return w.admin.put(
        f"/rest/api/3/issue/{w.new_issue()}",
        json={"fields": {"summary": "Renamed"}, "update": {"labels": [{"add": "triaged"}]}},
    )


@case("editIssue", 400, "unknown field")
def _(w: World) -> httpx.Response:
    return w.admin.put("/rest/api/3/issue/SEC-1", json={"fields": {"priority": {"id": "1"}}})


@case("editIssue", 403, "no Edit Issues")
def _(w: World) -> httpx.Response:
    return w.agent.put("/rest/api/3/issue/SEC-1", json={"fields": {"summary": "pwned"}})


@case("editIssue", 404)
def _(w: World) -> httpx.Response:
    return w.agent.put("/rest/api/3/issue/OPS-1", json={"fields": {"summary": "pwned"}})


@case("deleteIssue", 204)
def _(w: World) -> httpx.Response:
    return w.admin.delete(f"/rest/api/3/issue/{w.new_issue('OPS')}")


@case("deleteIssue", 403, "no Delete Issues")
def _(w: World) -> httpx.Response:
    return w.agent.delete("/rest/api/3/issue/SEC-1")


@case("deleteIssue", 404)
def _(w: World) -> httpx.Response:
    return w.agent.delete("/rest/api/3/issue/OPS-1")


@case("createIssue", 201)
def _(w: World) -> httpx.Response:
    return w.admin.post(
        "/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "OPS"},
                "summary": "Rotate the keys",
                "issuetype": {"name": "Task"},
                "description": ADF,
                "labels": ["security"],
            }
        },
    )


@case("createIssue", 400, "no Create Issues")
def _(w: World) -> httpx.Response:
    return w.agent.post(
        "/rest/api/3/issue",
        json={"fields": {"project": {"key": "SEC"}, "summary": "x", "issuetype": {"id": "10001"}}},
    )


@case("createIssue", 401)
def _(w: World) -> httpx.Response:
    return httpx.post(f"{w.jira.url}/rest/api/3/issue", json={"fields": {}})


@case("assignIssue", 204)
def _(w: World) -> httpx.Response:
    return w.admin.put(
        f"/rest/api/3/issue/{w.new_issue()}/assignee",
        json={"accountId": w.jira.admin_account_id},
    )


@case("assignIssue", 400, "not assignable")
def _(w: World) -> httpx.Response:
    return w.admin.put(f"/rest/api/3/issue/{w.new_issue()}/assignee", json={"accountId": w.bob_id})


@case("assignIssue", 403, "no Assign Issues")
def _(w: World) -> httpx.Response:
    return w.agent.put("/rest/api/3/issue/SEC-1/assignee", json={"accountId": None})


@case("assignIssue", 404)
def _(w: World) -> httpx.Response:
    return w.agent.put("/rest/api/3/issue/OPS-1/assignee", json={"accountId": None})


@case("getTransitions", 200)
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/issue/SEC-1/transitions")


@case("getTransitions", 200, "browse only: none listed")
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/issue/DOC-1/transitions")


@case("getTransitions", 404)
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/issue/OPS-1/transitions")


@case("doTransition", 204)
def _(w: World) -> httpx.Response:
    return w.agent.post(
        f"/rest/api/3/issue/{w.new_issue()}/transitions", json={"transition": {"id": "21"}}
    )


@case("doTransition", 400, "no Transition Issues")
def _(w: World) -> httpx.Response:
    return w.agent.post("/rest/api/3/issue/DOC-1/transitions", json={"transition": {"id": "21"}})


@case("doTransition", 400, "not a transition of this status")
def _(w: World) -> httpx.Response:
    return w.agent.post("/rest/api/3/issue/SEC-1/transitions", json={"transition": {"id": "99"}})


@case("doTransition", 401, "unknown token")
def _(w: World) -> httpx.Response:
    return w.gateway(w.agent_email, w.agent_token + "x").post(
        "/rest/api/3/issue/SEC-1/transitions", json={"transition": {"id": "21"}}
    )


@case("doTransition", 404)
def _(w: World) -> httpx.Response:
    return w.agent.post("/rest/api/3/issue/OPS-1/transitions", json={"transition": {"id": "21"}})


@case("getComments", 200)
def _(w: World) -> httpx.Response:
    key = w.new_issue()
    w.admin.post(f"/rest/api/3/issue/{key}/comment", json={"body": ADF})
    return w.agent.get(f"/rest/api/3/issue/{key}/comment")


@case("getComments", 404)
def _(w: World) -> httpx.Response:
    return w.agent.get("/rest/api/3/issue/OPS-1/comment")


@case("addComment", 201)
def _(w: World) -> httpx.Response:
    return w.admin.post("/rest/api/3/issue/SEC-1/comment", json={"body": ADF})


@case("addComment", 400, "no Add Comments")
def _(w: World) -> httpx.Response:
    return w.agent.post("/rest/api/3/issue/SEC-1/comment", json={"body": ADF})


@case("addComment", 400, "plain text, not ADF")
def _(w: World) -> httpx.Response:
    return w.admin.post("/rest/api/3/issue/SEC-1/comment", json={"body": "LGTM"})


@case("addComment", 404)
def _(w: World) -> httpx.Response:
    return w.agent.post("/rest/api/3/issue/OPS-1/comment", json={"body": ADF})


@pytest.fixture(scope="module")
def description() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DESCRIPTION_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def operations(description: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        spec["operationId"]: (method.upper(), path, spec)
        for path, item in description["paths"].items()
        for method, spec in item.items()
        if method in ("get", "put", "post", "delete", "patch")
    }


def _schema_validator(schema: dict[str, Any], description: dict[str, Any]) -> OAS30Validator:
    # The bundled format checker ignores "uri"; Jira clients follow these links,
    # so check that they are absolute.
    checker = copy.deepcopy(OAS30Validator.FORMAT_CHECKER)

    @checker.checks("uri")
    def is_uri(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme and parts.netloc)

    wrapped = {**schema, "components": description["components"]}
    return OAS30Validator(wrapped, format_checker=checker)


# The gateway in front of scoped tokens answers in its own shape, which the
# platform description does not cover.
GATEWAY_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "additionalProperties": False,
}


def assert_conforms(
    operation: tuple[str, str, dict[str, Any]],
    response: httpx.Response,
    description: dict[str, Any],
) -> None:
    method, template, spec = operation
    assert response.request.method == method
    path = re.sub(r"^/ex/jira/[^/]+", "", response.request.url.path)
    pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
    assert re.fullmatch(pattern, path), response.request.url
    documented = spec["responses"]
    status = str(response.status_code)
    assert status in documented, f"{status} is not documented for {method} {template}"
    assert response.headers["X-AREQUESTID"]
    if response.status_code == 204:
        assert response.content == b""
        return
    content = documented[status].get("content", {}).get("application/json")
    schema = content.get("schema") if content else None
    if schema in (None, {}):
        if response.status_code < 400:
            # Success without a described body (e.g. removeUserFromGroup's 200).
            assert response.content == b"", response.text
            return
        # The description leaves most error bodies out; Jira sends its
        # ErrorCollection (the gateway its own shape).
        body = response.json()
        schema = (
            GATEWAY_ERROR if "code" in body else {"$ref": "#/components/schemas/ErrorCollection"}
        )
    assert response.headers["content-type"].startswith("application/json")
    validator = _schema_validator(schema, description)
    errors = sorted(validator.iter_errors(response.json()), key=str)
    details = "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
    assert not errors, f"response does not match the description:\n{details}"


@pytest.mark.parametrize("conformance_case", CASES, ids=lambda c: c.id)
def test_response_matches_description(
    conformance_case: Case,
    world: World,
    operations: dict[str, tuple[str, str, dict[str, Any]]],
    description: dict[str, Any],
) -> None:
    response = conformance_case.send(world)
    assert response.status_code == conformance_case.status, response.text
    assert_conforms(operations[conformance_case.operation_id], response, description)


def test_every_served_operation_is_described_and_exercised(
    operations: dict[str, tuple[str, str, dict[str, Any]]],
) -> None:
    served = {r.operation_id: r for r in ROUTES if r.is_jira}
    for operation_id, route in served.items():
        assert operation_id in operations, f"{operation_id} is not in the description"
        method, path, _ = operations[operation_id]
        assert (route.method, route.template) == (method, path), operation_id
    succeeded = {c.operation_id for c in CASES if c.status < 300}
    missing = sorted(set(served) - succeeded)
    assert not missing, f"served operations without a conformance case: {missing}"
    unknown = {c.operation_id for c in CASES} - set(served)
    assert not unknown, f"cases for operations the emulator does not serve: {unknown}"


def test_scope_table_is_the_descriptions(
    operations: dict[str, tuple[str, str, dict[str, Any]]],
) -> None:
    for operation_id, (classic, granular) in SCOPES.items():
        listed = {
            s["state"]: tuple(s["scopes"])
            for s in operations[operation_id][2].get("x-atlassian-oauth2-scopes", [])
        }
        assert classic == listed.get("Current", ()), operation_id
        assert granular == listed.get("Beta", ()), operation_id


# --------------------------------------------------------------------------
# 2. The rules agentctl relies on
# --------------------------------------------------------------------------


def test_role_grants_are_the_agents_whole_access(world: World) -> None:
    """Through its role the agent reads and transitions SEC; nothing else."""
    assert world.agent.get("/rest/api/3/issue/SEC-1").status_code == 200
    key = world.new_issue()
    moved = world.agent.post(
        f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "31"}}
    )
    assert moved.status_code == 204
    assert world.admin.get(f"/rest/api/3/issue/{key}").json()["fields"]["status"]["name"] == "Done"
    comment = world.agent.post(f"/rest/api/3/issue/{key}/comment", json={"body": ADF})
    assert comment.status_code == 400
    assert comment.json()["errorMessages"] == [
        "You do not have the permission to comment on this issue."
    ]
    for path in ("/rest/api/3/issue/OPS-1", "/rest/api/3/project/OPS"):
        assert world.agent.get(path).status_code == 404
    projects = world.agent.get("/rest/api/3/project/search").json()["values"]
    assert sorted(p["key"] for p in projects) == ["DOC", "SEC"]


def test_denied_transition_is_jiras_error(world: World) -> None:
    """Browse-only in DOC: the issue is visible, the transition refused, nothing moves."""
    denied = world.agent.post(
        "/rest/api/3/issue/DOC-1/transitions", json={"transition": {"id": "21"}}
    )
    assert denied.status_code == 400
    assert denied.json() == {
        "errorMessages": ["You do not have permission to transition this issue."],
        "errors": {},
    }
    assert world.admin.get("/rest/api/3/issue/DOC-1").json()["fields"]["status"]["name"] == "To Do"
    listed = world.agent.get("/rest/api/3/issue/DOC-1/transitions").json()
    assert listed["transitions"] == []


def test_role_membership_change_takes_effect_at_once(world: World) -> None:
    account_id, email, token = world.new_agent()
    agent = world.gateway(email, token)
    key = world.new_issue("OPS")
    assert agent.get(f"/rest/api/3/issue/{key}").status_code == 404
    role = world.agent_role
    assert (
        world.admin.post(
            f"/rest/api/3/project/OPS/role/{role}", json={"user": [account_id]}
        ).status_code
        == 200
    )
    assert agent.get(f"/rest/api/3/issue/{key}").status_code == 200
    removed = world.admin.delete(
        f"/rest/api/3/project/OPS/role/{role}", params={"user": account_id}
    )
    assert removed.status_code == 204
    assert agent.get(f"/rest/api/3/issue/{key}").status_code == 404


@pytest.mark.parametrize("holder", ["anyone", "applicationRole", "group"])
def test_wider_grants_widen_access(world: World, holder: str) -> None:
    """Grants to everyone, any logged-in user or a group reach past the role."""
    scheme = world.jira.create_scheme(world.name("wide-"), copy_default=False)
    key = world.name("W").upper()[:6]
    world.jira.create_project(key, scheme_id=scheme)
    issue = world.jira.create_issue(key, "Visible to whom?")
    account_id, email, token = world.new_agent()
    agent = world.gateway(email, token)
    assert agent.get(f"/rest/api/3/issue/{issue}").status_code == 404
    parameter = None
    if holder == "group":
        parameter = world.name("everyone-")
        world.jira.create_group(parameter, members=[account_id])
    world.jira.add_grant("BROWSE_PROJECTS", holder, parameter, scheme_id=scheme)
    assert agent.get(f"/rest/api/3/issue/{issue}").status_code == 200


def test_scoped_tokens_work_through_the_gateway_only_and_classic_ones_at_the_site(
    world: World,
) -> None:
    assert (
        world.site(world.agent_email, world.agent_token).get("/rest/api/3/issue/SEC-1").status_code
        == 401
    )
    classic = world.jira.admin_token()
    gateway_admin = world.gateway(world.jira.admin_email, classic)
    assert gateway_admin.get("/rest/api/3/issue/SEC-1").status_code == 401
    assert (
        world.site(world.jira.admin_email, classic).get("/rest/api/3/issue/SEC-1").status_code
        == 200
    )


def test_a_token_authenticates_only_its_own_account(world: World) -> None:
    response = world.gateway(world.jira.admin_email, world.agent_token).get(
        "/rest/api/3/issue/SEC-1"
    )
    assert response.status_code == 401
    assert response.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"


def test_scopes_are_enforced_per_operation(world: World) -> None:
    _, email, token = world.new_agent(["read:jira-work"])
    reader = world.gateway(email, token)
    refused = reader.post("/rest/api/3/issue/SEC-1/transitions", json={"transition": {"id": "21"}})
    assert refused.status_code == 401
    assert refused.json() == {"code": 401, "message": "Unauthorized; scope does not match"}
    # The granular set serves as well as the classic one.
    account_id, email, token = world.new_agent(list(SCOPES["getTransitions"][1]))
    world.jira.add_role_actor("SEC", "Viewer", user=account_id)
    assert world.gateway(email, token).get("/rest/api/3/issue/SEC-1/transitions").status_code == 200


def test_tokens_expire() -> None:
    clock = FakeClock()
    with JiraEmulator(clock=clock) as jira:
        jira.create_project("SEC")
        key = jira.create_issue("SEC", "x")
        account_id, email = jira.create_service_account("short-lived")
        jira.add_role_actor("SEC", "Viewer", user=account_id)
        _, token = jira.create_token(account_id, scopes=AGENT_SCOPES, days=1)
        agent = httpx.Client(base_url=jira.gateway_url, auth=(email, token))
        assert agent.get(f"/rest/api/3/issue/{key}").status_code == 200
        clock.advance(timedelta(days=1))
        assert agent.get(f"/rest/api/3/issue/{key}").status_code == 401


def test_token_lifetime_is_one_to_365_days(world: World) -> None:
    account_id, _ = world.jira.create_service_account(world.name("lifetime-"))
    for days in (0, 366):
        with pytest.raises(Exception, match="between 1 and 365 days"):
            world.jira.create_token(account_id, days=days)


def test_suspension_stops_every_token_until_restored(world: World) -> None:
    account_id, email, token = world.new_agent()
    world.jira.add_role_actor("SEC", "Viewer", user=account_id)
    agent = world.gateway(email, token)
    admin = world.admin_key()
    org, directory = world.jira.org_id, world.jira.directory_id
    user_url = f"{world.jira.url}/admin/v2/orgs/{org}/directories/{directory}/users/{account_id}"
    assert agent.get("/rest/api/3/issue/SEC-1").status_code == 200
    assert httpx.post(f"{user_url}/suspend", headers=admin).status_code == 204
    details = httpx.get(user_url, headers=admin).json()["data"]
    assert (details["status"], details["membershipStatus"]) == ("suspended", "suspended")
    assert agent.get("/rest/api/3/issue/SEC-1").status_code == 401
    profile = world.admin.get("/rest/api/3/user", params={"accountId": account_id}).json()
    assert profile["active"] is False
    # Jira's user search leaves suspended accounts out, as Atlassian's does.
    found = world.admin.get("/rest/api/3/user/search", params={"query": email}).json()
    assert found == []
    assert httpx.post(f"{user_url}/restore", headers=admin).status_code == 204
    assert agent.get("/rest/api/3/issue/SEC-1").status_code == 200


def test_admin_api_lists_tokens_with_scopes_and_revokes_them(world: World) -> None:
    account_id, email, token = world.new_agent()
    second_id, second = world.jira.create_token(
        account_id, label="second", scopes=["read:jira-work"]
    )
    headers = world.admin_key()
    listed: list[dict[str, Any]] = []
    url: str | None = (
        f"{world.jira.url}/admin/api-access/v1/orgs/{world.jira.org_id}/api-tokens?limit=3"
    )
    while url:
        page = httpx.get(url, headers=headers).json()
        validate_admin(page, TOKEN_PAGE)
        listed += page["data"]
        url = page["links"].get("next")
    mine = [t for t in listed if t["user"]["id"] == account_id]
    assert sorted(t["label"] for t in mine) == ["second", "token"]
    assert next(t for t in mine if t["label"] == "second")["scopes"] == ["read:jira-work"]
    revoke = httpx.delete(
        f"{world.jira.url}/users/{account_id}/manage/api-tokens/{second_id}", headers=headers
    )
    assert revoke.status_code == 204
    assert world.gateway(email, second).get("/rest/api/3/issue/SEC-1").status_code == 401
    again = httpx.delete(
        f"{world.jira.url}/users/{account_id}/manage/api-tokens/{second_id}", headers=headers
    )
    assert again.status_code == 404
    validate_admin(again.json(), ADMIN_ERROR)
    del token


def test_admin_api_needs_a_key_with_the_scope(world: World) -> None:
    org = world.jira.org_id
    url = f"{world.jira.url}/admin/api-access/v1/orgs/{org}/api-tokens"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    narrow = world.admin_key(["read:directories:admin"])
    refused = httpx.get(url, headers=narrow)
    assert refused.status_code == 403
    validate_admin(refused.json(), ADMIN_ERROR)
    other_org = f"{world.jira.url}/admin/api-access/v1/orgs/not-ours/api-tokens"
    assert httpx.get(other_org, headers=world.admin_key()).status_code == 404
    directories = httpx.get(
        f"{world.jira.url}/admin/v2/orgs/{org}/directories",
        params={"accountId": world.agent_id},
        headers=narrow,
    )
    assert directories.status_code == 200
    validate_admin(directories.json(), DIRECTORY_PAGE)
    assert directories.json()["data"][0]["directoryId"] == world.jira.directory_id


def test_role_in_use_cannot_be_deleted_until_its_grants_are(world: World) -> None:
    role = world.new_role()
    grant = world.jira.add_grant("BROWSE_PROJECTS", "projectRole", str(role))
    assert world.admin.delete(f"/rest/api/3/role/{role}").status_code == 409
    assert (
        world.admin.delete(f"/rest/api/3/permissionscheme/10000/permission/{grant}").status_code
        == 204
    )
    assert world.admin.delete(f"/rest/api/3/role/{role}").status_code == 204


def test_server_error_fault_then_success(faulty_world: World) -> None:
    world = faulty_world
    world.jira.inject_fault(503, count=2, path_prefix="/rest/api/3/issue", method="GET")
    first = world.agent.get("/rest/api/3/issue/SEC-1")
    assert first.status_code == 503
    assert first.json() == {"errorMessages": ["Service Unavailable"], "errors": {}}
    assert world.admin.get("/rest/api/3/issue/SEC-1").status_code == 503
    assert world.agent.get("/rest/api/3/issue/SEC-1").status_code == 200
    faults = [r for r in world.jira.requests if r["fault"]]
    assert [r["via"] for r in faults[-2:]] == ["gateway", "site"]


def test_rate_limit_fault_says_when_to_retry(faulty_world: World) -> None:
    world = faulty_world
    world.jira.inject_fault(429, path_prefix="/rest/api/3/project", retry_after=7)
    limited = world.admin.get("/rest/api/3/project/search")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.headers["X-RateLimit-Reset"]
    assert world.admin.get("/rest/api/3/project/search").status_code == 200


def test_request_log_counts_mutating_calls_by_operation(world: World) -> None:
    world.jira.clear_requests()
    role = world.new_role()
    world.admin.get("/rest/api/3/role")
    assert world.jira.count_requests(mutating=True) == 1
    assert world.jira.count_requests(operation="createProjectRole") == 1
    assert world.jira.count_requests(operation="getAllProjectRoles") == 1
    assert world.jira.count_requests(identity=world.jira.admin_account_id) == 2
    del role


def test_control_api_builds_a_world_over_http() -> None:
    with JiraEmulator() as jira, httpx.Client(base_url=jira.url) as http:
        info = http.get("/_emulator/info").json()
        assert info["gateway_url"] == jira.gateway_url
        project = http.post("/_emulator/projects", json={"key": "SEC"}).json()
        assert project["key"] == "SEC"
        issue = http.post("/_emulator/issues", json={"project": "SEC", "summary": "Hi"}).json()
        account = http.post("/_emulator/service-accounts", json={"name": "bot"}).json()
        role = http.post(
            "/_emulator/role-actors",
            json={"project": "SEC", "role": "Viewer", "accountId": account["accountId"]},
        )
        assert role.status_code == 204
        token = http.post(
            "/_emulator/tokens",
            json={"accountId": account["accountId"], "scopes": ["read:jira-work"]},
        ).json()
        bot = httpx.Client(base_url=jira.gateway_url, auth=(account["email"], token["token"]))
        assert bot.get(f"/rest/api/3/issue/{issue['key']}").status_code == 200
        key = http.post("/_emulator/admin-keys", json={}).json()["key"]
        assert key
        state = http.get("/_emulator/state").json()
        assert "SEC" in state["projects"]
        assert token["token"] not in json.dumps(state)
        bad = http.post("/_emulator/projects", json={"key": "lower"})
        assert bad.status_code == 400
        fault = http.post("/_emulator/faults", json={"status": 500, "path_prefix": "/rest"})
        assert fault.status_code == 201
        assert bot.get(f"/rest/api/3/issue/{issue['key']}").status_code == 500
        log = http.get("/_emulator/requests").json()
        assert log["total"] == 2 and log["mutating"] == 0


def test_runs_as_a_process_and_keeps_state_across_restarts(tmp_path: Path) -> None:
    state_file = tmp_path / "jira.json"
    root = Path(__file__).resolve().parents[1]

    def serve() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "testing.jira", "--state-file", str(state_file)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    process, url = serve()
    try:
        http = httpx.Client(base_url=url)
        http.post("/_emulator/projects", json={"key": "SEC"})
        account = http.post("/_emulator/service-accounts", json={"name": "bot"}).json()
        http.post(
            "/_emulator/role-actors",
            json={"project": "SEC", "role": "Viewer", "accountId": account["accountId"]},
        )
        token = http.post(
            "/_emulator/tokens",
            json={"accountId": account["accountId"], "scopes": ["read:jira-work"]},
        ).json()["token"]
        cloud_id = http.get("/_emulator/info").json()["cloudId"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0  # it saves its state first
    assert oct(state_file.stat().st_mode & 0o777) == "0o600"
    assert token not in state_file.read_text()
    process, url = serve()
    try:
        bot = httpx.Client(base_url=f"{url}/ex/jira/{cloud_id}", auth=(account["email"], token))
        assert bot.get("/rest/api/3/project/SEC").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0  # it saves its state first


# Shapes of the organisation admin API answers, as Atlassian documents them
# (api-access "Get all API tokens in an org", organisations v2 directories,
# and their error answers); the platform description does not cover them.
ADMIN_ERROR = GATEWAY_ERROR
TOKEN_PAGE = {
    "type": "object",
    "required": ["data", "links"],
    "additionalProperties": False,
    "properties": {
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "label", "status", "createdAt", "expiresAt", "user", "scopes"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "label": {"type": "string"},
                    "status": {"type": "string", "enum": ["ALLOWED", "BLOCKED"]},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "expiresAt": {"type": "string", "format": "date-time"},
                    "lastActiveAt": {"type": "string", "format": "date-time"},
                    "user": {
                        "type": "object",
                        "required": ["id", "orgId", "name", "email"],
                        "additionalProperties": False,
                        "properties": {
                            k: {"type": "string"} for k in ("id", "orgId", "name", "email")
                        },
                    },
                    "scopes": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "links": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: {"type": "string"} for k in ("self", "next", "prev")},
        },
    },
}
DIRECTORY_PAGE = {
    "type": "object",
    "required": ["data", "links"],
    "properties": {
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: {"type": "string"} for k in ("directoryId", "name", "icon")},
            },
        },
        "links": {"type": "object"},
    },
}


def validate_admin(body: Any, schema: dict[str, Any]) -> None:
    validator = OAS30Validator(schema, format_checker=OAS30Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)
