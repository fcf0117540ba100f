"""The ``aws:`` section of agentctl.yaml."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AwsSettings:
    role_prefix: str = "agentctl-"
    role_path: str = "/agentctl/"
    permissions_boundary: str | None = None
    # Principal allowed to assume agent roles (the agent runtime / exec host).
    runtime_principal: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    session_duration_seconds: int = 3600
    max_attempts: int = 8
