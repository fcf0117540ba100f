"""The ``jira:`` section of agentctl.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field


def _about(text: str) -> dict[str, str]:
    return {"description": text}


@dataclass(frozen=True)
class JiraSettings:
    """agentctl.yaml's ``jira:``."""

    site_url: str | None = field(
        default=None, metadata=_about("The Jira Cloud site, e.g. https://acme.atlassian.net")
    )
    api_url: str = field(
        default="https://api.atlassian.com",
        metadata=_about(
            "Atlassian's API gateway (scoped tokens, /ex/jira/{cloudId}) and admin APIs"
        ),
    )
    cloud_id: str | None = field(
        default=None,
        metadata=_about("The site's cloud id; default: read from {site_url}/_edge/tenant_info"),
    )
    org_id: str | None = field(
        default=None,
        metadata=_about(
            "Atlassian organisation id, for the admin API (token revocation, suspension)"
        ),
    )
    admin_email: str | None = field(
        default=None,
        metadata=_about(
            "E-mail of the Jira administrator account agentctl manages roles and schemes as"
        ),
    )
    default_projects: str | None = field(
        default=None,
        metadata=_about(
            "Project keys a grant in list form applies to, comma-separated, e.g. SEC,OPS"
        ),
    )
    project_role: str = field(
        default="agentctl-{name}",
        metadata={
            **_about(
                "The agent's dedicated project role, a name containing {name} (replaced by "
                "the agent's name): apply sets each role's grants to its agent's contract, "
                "so agents sharing one role would get each other's permissions"
            ),
            # Without {name} every agent would share the role (and its grants).
            "pattern": r"\{name\}",
        },
    )
    max_attempts: int = field(
        default=4, metadata=_about("Attempts per Jira call (5xx and 429 are retried)")
    )

    @property
    def default_project_keys(self) -> tuple[str, ...]:
        return tuple(
            key.strip().upper() for key in (self.default_projects or "").split(",") if key.strip()
        )
