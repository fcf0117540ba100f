"""Jira provider: an Atlassian service account per agent, in a dedicated project role.

This package exports :data:`SPEC` (registered as the ``jira`` entry point of
``agentctl.providers``); importing it never imports httpx. Its modules:
``settings`` (agentctl.yaml's ``jira:``), ``grant`` (the grant's schema and
typed value), ``scopes`` (the one table of friendly scopes), ``client``
(HTTP, retries, errors and typed answers), ``lifecycle`` (the Provider) and
``commands`` (what ``agentctl jira ...`` does) and ``cli`` (its command line).
"""

from __future__ import annotations

from agentctl.providers.base import GrantFinding, NameLimit, ProviderSpec, SchemaHints
from agentctl.providers.jira.grant import (
    GRANT_SCHEMA,
    SCHEMA_DEFS,
    JiraGrant,
    describe_jira_grant,
    parse_jira_grant,
)
from agentctl.providers.jira.settings import JiraSettings

PROVIDER = "jira"
# Jira project role names are at most 255 characters; the role is
# "agentctl-<name>", and display names over 60 characters are cut in Jira's UI.
ROLE_NAME_MAX = 60


def _check(grant: JiraGrant, settings: JiraSettings) -> list[GrantFinding]:
    from agentctl.providers.jira.scopes import check_jira_grant

    return check_jira_grant(grant, settings.default_project_keys)


SPEC: ProviderSpec[JiraGrant, JiraSettings] = ProviderSpec(
    name=PROVIDER,
    summary="an Atlassian service account per agent, in a dedicated project role, with a scoped API token",
    grant_schema=GRANT_SCHEMA,
    schema_defs=SCHEMA_DEFS,
    parse_grant=parse_jira_grant,
    check_grant=_check,
    describe_grant=describe_jira_grant,
    settings_type=JiraSettings,
    provider="agentctl.providers.jira.lifecycle:JiraProvider",
    commands="agentctl.providers.jira.cli:build",
    hints=SchemaHints(
        unknown_key={
            "project": "write 'projects:' (a list of project keys)",
            "permissions": "write 'scopes:' (friendly scopes such as issue:read)",
        },
        missing_key={
            "projects": "add 'projects: [KEY]', or use the list form for jira.default_projects",
            "scopes": "add 'scopes:' with the Jira scopes, e.g. [issue:read]",
        },
        expected_type={"": "a list of scopes or a mapping with projects and scopes"},
    ),
    name_limit=NameLimit(
        ROLE_NAME_MAX - len("agentctl-"),
        "the agent's Jira project role is agentctl-<name>, at most 60 characters",
    ),
)
