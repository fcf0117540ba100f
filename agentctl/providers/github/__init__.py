"""GitHub provider: a GitHub App per agent, scoped installation tokens.

This package exports :data:`SPEC` (registered as the ``github`` entry point of
``agentctl.providers``); importing it never imports githubkit. Its modules:
``settings`` (agentctl.yaml's ``github:``), ``grant`` (the grant's schema and
typed value), ``scopes`` (the scope table and lint), ``client`` (HTTP, retries
and errors), ``manifest`` (the App manifest flow), ``lifecycle`` (the
Provider), ``commands`` (what ``agentctl github ...`` does) and ``cli`` (its
command line).
"""

from __future__ import annotations

from agentctl.providers.base import GrantFinding, NameLimit, ProviderSpec, SchemaHints
from agentctl.providers.github.grant import (
    GRANT_SCHEMA,
    SCHEMA_DEFS,
    GitHubGrant,
    describe_github_grant,
    parse_github_grant,
)
from agentctl.providers.github.settings import GitHubSettings

PROVIDER = "github"
# github.com limits App names to 34 characters; a dedicated App's name contains
# its agent's (github.app_name_template, checked per contract by _check_name).
APP_NAME_MAX = 34


def _check(grant: GitHubGrant, settings: GitHubSettings) -> list[GrantFinding]:
    from agentctl.providers.github.scopes import check_github_grant

    return check_github_grant(grant)


def _check_name(agent: str, grant: GitHubGrant, settings: GitHubSettings) -> list[GrantFinding]:
    """Dedicated mode: the App name the template gives this agent must fit GitHub."""
    from agentctl.model import Severity
    from agentctl.providers.github.naming import name_problem

    if (grant.mode or settings.mode) != "dedicated":
        return []
    problem = name_problem(settings.app_name_template, settings.organization, agent)
    if problem is None:
        return []
    return [GrantFinding((), Severity.ERROR, "github-app-name", problem)]


SPEC: ProviderSpec[GitHubGrant, GitHubSettings] = ProviderSpec(
    name=PROVIDER,
    summary="a GitHub App per agent (or one shared App), down-scoped installation tokens",
    grant_schema=GRANT_SCHEMA,
    schema_defs=SCHEMA_DEFS,
    parse_grant=parse_github_grant,
    check_grant=_check,
    describe_grant=describe_github_grant,
    settings_type=GitHubSettings,
    provider="agentctl.providers.github.lifecycle:GitHubProvider",
    hints=SchemaHints(
        missing_key={
            "repositories": "add 'repositories: [owner/name]', or use the list form for all repositories",
            "scopes": "add 'scopes:' with the GitHub scopes, e.g. [repo:read]",
        },
        expected_type={"": "a list of scopes or a mapping with repositories and scopes"},
    ),
    name_limit=NameLimit(
        APP_NAME_MAX, f"GitHub App names are limited to {APP_NAME_MAX} characters"
    ),
    check_name=_check_name,
    commands="agentctl.providers.github.cli:build",
)
