"""The one table: friendly Jira scopes -> Jira project permissions and API token scopes.

A friendly scope says what an agent may do to issues. Enforcement has two
layers, and the table drives both:

* **project permissions**: apply grants the agent's dedicated project role
  exactly these permissions in each project's permission scheme, and makes
  the agent's service account the role's only actor in the contract's
  projects;
* **token scopes**: the service account's API token must be scoped (Jira
  Cloud "API token with scopes", used through the api.atlassian.com gateway)
  to exactly what the friendly scopes need, so a token copied off the agent
  cannot reach Jira APIs its contract never asked for. ``read:jira-user`` is
  always needed: agentctl verifies a token with ``GET /myself``.

Token scopes are Atlassian's classic OAuth 2.0 scopes for Jira (the ones its
REST API description lists first for every operation).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentctl.model import Severity
from agentctl.providers.base import GrantFinding
from agentctl.providers.jira.grant import JiraGrant
from agentctl.suggest import did_you_mean


@dataclass(frozen=True)
class ScopeMeaning:
    description: str
    permissions: tuple[str, ...]
    token_scopes: tuple[str, ...]


_READ = ("read:jira-work",)
_WRITE = ("read:jira-work", "write:jira-work")

SCOPES: dict[str, ScopeMeaning] = {
    "issue:read": ScopeMeaning(
        "See the project's issues and their comments", ("BROWSE_PROJECTS",), _READ
    ),
    "issue:comment": ScopeMeaning(
        "Add comments to issues", ("BROWSE_PROJECTS", "ADD_COMMENTS"), _WRITE
    ),
    "issue:transition": ScopeMeaning(
        "Move issues through the workflow", ("BROWSE_PROJECTS", "TRANSITION_ISSUES"), _WRITE
    ),
    "issue:create": ScopeMeaning("Create issues", ("BROWSE_PROJECTS", "CREATE_ISSUES"), _WRITE),
    "issue:edit": ScopeMeaning(
        "Edit issues' summary, description and labels", ("BROWSE_PROJECTS", "EDIT_ISSUES"), _WRITE
    ),
    "issue:assign": ScopeMeaning(
        "Assign issues to people", ("BROWSE_PROJECTS", "ASSIGN_ISSUES"), _WRITE
    ),
    "issue:link": ScopeMeaning(
        "Link issues to each other", ("BROWSE_PROJECTS", "LINK_ISSUES"), _WRITE
    ),
    "issue:resolve": ScopeMeaning(
        "Resolve and close issues", ("BROWSE_PROJECTS", "RESOLVE_ISSUES", "CLOSE_ISSUES"), _WRITE
    ),
    "issue:delete": ScopeMeaning("Delete issues", ("BROWSE_PROJECTS", "DELETE_ISSUES"), _WRITE),
    "attachment:create": ScopeMeaning(
        "Attach files to issues", ("BROWSE_PROJECTS", "CREATE_ATTACHMENTS"), _WRITE
    ),
    "worklog:write": ScopeMeaning(
        "Log work on issues", ("BROWSE_PROJECTS", "WORK_ON_ISSUES"), _WRITE
    ),
}

# Every token needs this: agentctl verifies a token with GET /myself.
VERIFY_SCOPE = "read:jira-user"

# A Jira permission key people write instead of the friendly scope.
_BY_PERMISSION = {
    permission: name
    for name, meaning in reversed(list(SCOPES.items()))
    for permission in meaning.permissions
    if permission != "BROWSE_PROJECTS"
} | {"BROWSE_PROJECTS": "issue:read"}


def project_permissions(scopes: Iterable[str]) -> tuple[str, ...]:
    """The Jira project permissions the friendly ``scopes`` map to (sorted, distinct)."""
    return tuple(sorted({p for s in scopes if s in SCOPES for p in SCOPES[s].permissions}))


def token_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The API token scopes the friendly ``scopes`` need (sorted, distinct)."""
    needed = {VERIFY_SCOPE}
    for scope in scopes:
        if scope in SCOPES:
            needed.update(SCOPES[scope].token_scopes)
    return tuple(sorted(needed))


def check_jira_grant(grant: JiraGrant, default_projects: tuple[str, ...]) -> list[GrantFinding]:
    """Unknown scopes (with did-you-mean), and a list form with no projects to apply to."""
    findings: list[GrantFinding] = []
    for index, scope in enumerate(grant.scopes):
        if scope in SCOPES:
            continue
        path: tuple[str | int, ...] = (*grant.scope_path, index)
        known = _BY_PERMISSION.get(scope.upper().replace("-", "_").replace(" ", "_"))
        close = known or did_you_mean(scope, SCOPES)
        hint = f"did you mean {close!r}?" if close else f"the Jira scopes are {', '.join(SCOPES)}"
        findings.append(
            GrantFinding(
                path, Severity.ERROR, "unknown-scope", f"{scope!r} is not a Jira scope: {hint}"
            )
        )
    if grant.projects is None and not default_projects:
        findings.append(
            GrantFinding(
                (),
                # A note, not a warning: validation in CI may run without the
                # agentctl.yaml that names the default projects.
                Severity.INFO,
                "no-projects",
                "this grant names no Jira projects and jira.default_projects is not set in "
                "agentctl.yaml: apply would grant nothing; write {projects: [KEY], scopes: [...]} "
                "or set jira.default_projects",
            )
        )
    return findings
