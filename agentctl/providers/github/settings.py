"""The ``github:`` section of agentctl.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field


def _about(text: str, **bounds: int) -> dict[str, object]:
    return {"description": text, **bounds}


@dataclass(frozen=True)
class GitHubSettings:
    """agentctl.yaml's ``github:``."""

    mode: str = field(
        default="dedicated",
        metadata=_about("dedicated: one App per agent | shared: one App, down-scoped tokens"),
    )
    base_url: str = field(
        default="https://api.github.com",
        metadata=_about("REST API URL; GitHub Enterprise Server: https://HOST/api/v3"),
    )
    web_url: str = field(default="https://github.com", metadata=_about("GitHub's web URL"))
    organization: str | None = field(
        default=None, metadata=_about("The organization that owns the agents' Apps")
    )
    app_name_template: str = field(
        default="{org}-{name}",
        metadata=_about(
            "Dedicated mode: each App's name, from {org} and {name}; App names are global on "
            "github.com and at most 34 characters"
        ),
    )
    other_apps: int = field(
        default=0,
        metadata=_about(
            "Apps the organization owns that agentctl does not manage: they count toward "
            "GitHub's limit of 100 Apps per organization"
        ),
    )
    app_id: int | None = field(default=None, metadata=_about("Shared mode: the App's id"))
    installation_id: int | None = field(
        default=None, metadata=_about("Shared mode: the App's installation id")
    )
    private_key_file: str | None = field(
        default=None,
        metadata=_about("Shared mode: the App's private key (else the secret store)"),
    )
    token_ttl_seconds: int = field(
        default=3600,
        metadata=_about(
            "Not a GitHub setting: GitHub installation tokens always live 1 hour; agentctl "
            "revokes them when the run ends (exec) or on kill",
            minimum=60,
            maximum=3600,
        ),
    )
    max_attempts: int = field(
        default=5,
        metadata=_about(
            "Attempts per GitHub call after 5xx answers and timeouts (reads only)",
            minimum=1,
            maximum=100,
        ),
    )
    rate_limit_max_wait_seconds: int = field(
        default=900,
        metadata=_about(
            "At most this long in all waiting out GitHub's rate limits in one call "
            "(announced on stderr), then fail saying when to retry",
            minimum=0,
            maximum=86400,
        ),
    )
