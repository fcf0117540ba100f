"""The ``github:`` section of agentctl.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GitHubSettings:
    mode: str = "dedicated"  # dedicated | shared
    base_url: str = "https://api.github.com"
    web_url: str = "https://github.com"
    # Where apps are created / installed (dedicated mode: the org owning the Apps).
    organization: str | None = None
    # Shared mode: one App for every agent.
    app_id: int | None = None
    installation_id: int | None = None
    private_key_file: str | None = None
    token_ttl_seconds: int = 3600
    max_attempts: int = 5
