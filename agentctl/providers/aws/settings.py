"""The ``aws:`` section of agentctl.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field


def _about(text: str, **bounds: int) -> dict[str, object]:
    return {"description": text, **bounds}


@dataclass(frozen=True)
class AwsSettings:
    """agentctl.yaml's ``aws:``."""

    role_prefix: str = field(
        default="agentctl-", metadata=_about("Agent roles are named <role_prefix><agent>")
    )
    role_path: str = field(default="/agentctl/", metadata=_about("The IAM path of agent roles"))
    permissions_boundary: str | None = field(
        default=None, metadata=_about("ARN of the policy attached as every agent role's boundary")
    )
    # Principal allowed to assume agent roles (the agent runtime / exec host).
    runtime_principal: str | None = field(
        default=None, metadata=_about("ARN of who may assume agent roles (the exec host)")
    )
    runtime_profile: str | None = field(
        default=None,
        metadata=_about(
            "AWS profile of the runtime principal: exec, credentials and rotate start agent "
            "sessions with it; else the same credentials as everything else"
        ),
    )
    account_id: str | None = field(
        default=None,
        metadata=_about(
            "AWS account of the agent roles; else taken from permissions_boundary, or from "
            "the caller (sts:GetCallerIdentity)"
        ),
    )
    region: str | None = field(
        default=None, metadata=_about("AWS region; else the standard AWS environment")
    )
    profile: str | None = field(
        default=None, metadata=_about("AWS profile; else AWS_PROFILE / the default chain")
    )
    endpoint_url: str | None = field(
        default=None, metadata=_about("AWS endpoint; else AWS_ENDPOINT_URL")
    )
    session_duration_seconds: int = field(
        default=3600,
        metadata=_about("Lifetime of the sessions exec issues", minimum=900, maximum=43_200),
    )
    max_attempts: int = field(
        default=8,
        metadata=_about(
            "Attempts per AWS call (standard retry mode, with backoff)", minimum=1, maximum=100
        ),
    )
    # IAM is eventually consistent: a role agentctl just created or changed may
    # refuse AssumeRole for a few seconds on real AWS.
    propagation_seconds: float = field(
        default=30.0,
        metadata=_about(
            "How long exec retries AssumeRole refused with AccessDenied after agentctl "
            "created or changed the role (IAM propagation); 0 turns the retry off",
            minimum=0,
            maximum=600,
        ),
    )
