"""agentctl.yaml's settings, typed: where state lives, which secret backend,
notify, audit anchor, identity, people, and each provider's settings.

These are plain frozen dataclasses that every layer (providers too) may use;
finding, reading and checking the file against the schema assembled from the
registered providers is :mod:`agentctl.config_file`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from agentctl.identity import IdentitySources, PersonRule
from agentctl.model import JsonObject

SettingsT = TypeVar("SettingsT")
SettingsT_co = TypeVar("SettingsT_co", covariant=True)

CONFIG_FILENAME = "agentctl.yaml"
ENV_CONFIG = "AGENTCTL_CONFIG"
ENV_STATE = "AGENTCTL_STATE"


def default_state_url() -> str:
    from platformdirs import user_state_dir

    return f"sqlite:///{Path(user_state_dir('agentctl')) / 'state.db'}"


@dataclass(frozen=True)
class SecretsSettings:
    """agentctl.yaml's ``secrets:``: where secrets (private keys, the audit chain key) are kept."""

    backend: str | None = field(
        default=None,
        metadata={
            "description": "aws-secretsmanager | secret-service | macos | windows | encrypted-file | keyring:<module.Class> "
            "(see agentctl.secrets); else AGENTCTL_SECRET_BACKEND"
        },
    )
    path: str | None = field(
        default=None,
        metadata={"description": "encrypted-file: where (default: the user data dir)"},
    )
    passphrase_env: str = field(
        default="AGENTCTL_KEYRING_PASSPHRASE",
        metadata={"description": "encrypted-file: the environment variable holding the passphrase"},
    )
    passphrase_file: str | None = field(
        default=None,
        metadata={"description": "encrypted-file: a file holding the passphrase"},
    )
    # aws-secretsmanager (a team's shared store).
    prefix: str = field(
        default="agentctl/",
        metadata={
            "description": "aws-secretsmanager: every secret is named <prefix><key>; the "
            "operator policy's AgentctlSecrets statements grant exactly this prefix"
        },
    )
    kms_key_id: str | None = field(
        default=None,
        metadata={
            "description": "aws-secretsmanager: a customer-managed KMS key id, ARN or alias "
            "(default: the account's aws/secretsmanager key)"
        },
    )
    region: str | None = field(
        default=None,
        metadata={
            "description": "aws-secretsmanager: region (else the standard AWS configuration)"
        },
    )
    profile: str | None = field(
        default=None,
        metadata={"description": "aws-secretsmanager: AWS profile (else the default chain)"},
    )
    endpoint_url: str | None = field(
        default=None,
        metadata={"description": "aws-secretsmanager: endpoint (else AWS_ENDPOINT_URL)"},
    )


@dataclass(frozen=True)
class NotifySettings:
    """Who hears about what `expiring --notify` (and kill, and apply's
    disabling at expiry) finds: Apprise URLs
    (https://github.com/caronc/apprise/wiki) per owner address, per owner
    domain, or for everyone else. ``{owner}`` in a URL becomes the owner's
    address (URL-quoted). The URLs carry credentials: agentctl never prints
    them, only their service."""

    owners: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict,
        metadata={
            "description": "owner address -> Apprise URLs (e.g. slack://…, mailtos://…?to={owner})"
        },
    )
    domains: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict,
        metadata={
            "description": "owner domain (company.com) -> Apprise URLs, for owners not listed"
        },
    )
    default: tuple[str, ...] = field(
        default=(),
        metadata={"description": "Apprise URLs for owners matched by neither owners nor domains"},
    )
    on_kill: bool = field(
        default=False,
        metadata={"description": "Also tell an agent's owner when `agentctl kill` kills it"},
    )
    on_expiry: bool = field(
        default=False,
        metadata={
            "description": "Also tell an agent's owner when `agentctl apply` disables it "
            "because its contract expired"
        },
    )
    timeout_seconds: float = field(
        default=15.0,
        metadata={"description": "How long one notification may take before it counts as failed"},
    )


@dataclass(frozen=True)
class AuditSettings:
    """agentctl.yaml's ``audit:``: where the audit chain's head is anchored."""

    anchor: str = field(
        default="file",
        metadata={
            "description": "Where the audit chain head is anchored after each mutating command: "
            "file (append-only local file), s3 (a bucket under S3 Object Lock) or off",
            "enum": ["file", "s3", "off"],
        },
    )
    anchor_file: str | None = field(
        default=None,
        metadata={
            "description": "file: the anchor file (default: audit-anchors.jsonl in the user "
            "state dir); make it append-only with chattr +a"
        },
    )
    s3_bucket: str | None = field(
        default=None,
        metadata={"description": "s3: the bucket, created with Object Lock enabled"},
    )
    s3_prefix: str = field(
        default="agentctl/audit-anchors/",
        metadata={"description": "s3: key prefix of the anchor objects"},
    )
    s3_retention_days: int | None = field(
        default=None,
        metadata={
            "description": "s3: retain each anchor this many days (default: the bucket's "
            "default retention)"
        },
    )
    s3_retention_mode: str = field(
        default="COMPLIANCE",
        metadata={
            "description": "s3: Object Lock mode with s3_retention_days",
            "enum": ["COMPLIANCE", "GOVERNANCE"],
        },
    )
    s3_region: str | None = field(
        default=None, metadata={"description": "s3: region (else the standard AWS configuration)"}
    )
    s3_profile: str | None = field(
        default=None, metadata={"description": "s3: AWS profile (else the default chain)"}
    )
    s3_endpoint_url: str | None = field(
        default=None, metadata={"description": "s3: endpoint (else AWS_ENDPOINT_URL)"}
    )


@dataclass(frozen=True)
class IdentitySettings:
    """agentctl.yaml's ``identity:``: how the acting person is verified."""

    source: str = field(
        default="auto",
        metadata={
            "description": "Who is acting is verified with: aws (sts:GetCallerIdentity) | github "
            "(GET /user with GH_TOKEN) | auto: aws when AWS is configured, else github"
        },
    )


PEOPLE_SCHEMA: JsonObject = {
    "description": "Who a verified principal is, first match wins (see README, 'Who is acting'). "
    "Without a match: an IAM user's name, an IAM Identity Center session's name, a GitHub login. "
    "Names people in the audit trail and output; approvals never rely on it.",
    "type": ["array", "null"],
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["principal", "person"],
        "properties": {
            "principal": {
                "description": "A glob over the principal: an ARN as sts:GetCallerIdentity "
                "gives it (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION) or github:user/LOGIN",
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
            },
            "person": {
                "description": "The person recorded, e.g. an e-mail; {name} is the principal's "
                "own name (user name, session name or login)",
                "type": "string",
                "minLength": 1,
                "maxLength": 254,
            },
        },
    },
}


class SettingsSpec(Protocol[SettingsT_co]):
    """What names a provider's settings section (a ProviderSpec is one)."""

    @property
    def name(self) -> str: ...

    @property
    def settings_type(self) -> type[SettingsT_co]: ...


def _setting(
    key: str, description: str, *, minimum: float | None = None, maximum: float | None = None
) -> dict[str, Any]:
    bounds = {"minimum": minimum, "maximum": maximum}
    return {"key": key, "description": description} | {
        k: v for k, v in bounds.items() if v is not None
    }


# Fields that are not agentctl.yaml settings of their own.
_NOT_A_SETTING = {"schema": False}


@dataclass(frozen=True)
class Config:
    """agentctl.yaml, parsed: the core's settings, and each provider's settings
    (by provider name; :meth:`settings` gives them typed, by spec)."""

    source: Path | None = field(default=None, metadata=_NOT_A_SETTING)
    state_url: str | None = field(
        default=None,
        metadata=_setting(
            "state",
            "State store: a SQLAlchemy URL (postgresql://...) or a SQLite file path; "
            "default: SQLite in the user state dir",
        ),
    )
    max_lifetime_days: int = field(
        default=365,
        metadata=_setting(
            "max_lifetime_days",
            "Longest allowed time from today to a contract's expiry",
            minimum=1,
            maximum=36_500,
        ),
    )
    rotation_max_age_days: int = field(
        default=90,
        metadata=_setting(
            "rotation_max_age_days",
            "Credentials older than this are reported by `expiring`",
            minimum=1,
            maximum=36_500,
        ),
    )
    approval_ttl_minutes: int = field(
        default=60,
        metadata=_setting(
            "approval_ttl_minutes",
            "How long an approval stays usable",
            minimum=1,
            maximum=7 * 24 * 60,
        ),
    )
    exec_kill_grace_seconds: float = field(
        default=10.0,
        metadata=_setting(
            "exec_kill_grace_seconds",
            "When its agent is killed, exec sends SIGTERM to the command's process group, "
            "then SIGKILL after this many seconds",
        ),
    )
    exec_refresh_margin_seconds: int = field(
        default=1200,
        metadata=_setting(
            "exec_refresh_margin_seconds",
            "exec mints a running command's next AWS session and GitHub token this long before "
            "the current ones expire (the AWS SDKs re-read 15 minutes before expiry)",
            minimum=60,
            maximum=3000,
        ),
    )
    rotation_overlap_seconds: float = field(
        default=30.0,
        metadata=_setting(
            "rotation_overlap_seconds",
            "rotate hands new credentials to the agent's running exec runs and waits up to "
            "this long for them to take them before revoking the old ones (a kill never waits)",
            minimum=0,
            maximum=600,
        ),
    )
    lock_timeout_seconds: float = field(
        default=300.0,
        metadata=_setting(
            "lock_timeout_seconds",
            "How long apply waits for another run's lock before failing",
            minimum=0,
            maximum=24 * 3600,
        ),
    )
    journal_path: str | None = field(
        default=None,
        metadata=_setting(
            "journal", "Audit fallback file while the state store is down; default: user state dir"
        ),
    )
    secrets: SecretsSettings = field(default_factory=SecretsSettings, metadata=_NOT_A_SETTING)
    notify: NotifySettings = field(default_factory=NotifySettings, metadata=_NOT_A_SETTING)
    audit: AuditSettings = field(default_factory=AuditSettings, metadata=_NOT_A_SETTING)
    identity: IdentitySettings = field(default_factory=IdentitySettings, metadata=_NOT_A_SETTING)
    # people: principal pattern -> person (agentctl.identity.PersonRule).
    people: tuple[PersonRule, ...] = field(default=(), metadata=_NOT_A_SETTING)
    # Provider name -> its settings dataclass (the provider spec's settings_type).
    provider_settings: Mapping[str, object] = field(default_factory=dict, metadata=_NOT_A_SETTING)

    def settings(self, spec: SettingsSpec[SettingsT]) -> SettingsT:
        """The settings of ``spec``'s provider: as configured, else its defaults."""
        value = self.provider_settings.get(spec.name)
        if value is None:
            return spec.settings_type()
        if not isinstance(value, spec.settings_type):
            raise TypeError(
                f"settings of {spec.name} are a {type(value).__name__}, "
                f"not a {spec.settings_type.__name__}"
            )
        return value

    def state_is_default(self, override: str | None = None) -> bool:
        """Nobody chose a state store: not --state, AGENTCTL_STATE or `state:`."""
        return not (override or os.environ.get(ENV_STATE) or self.state_url)

    def resolved_state_url(self, override: str | None = None) -> str:
        url = override or os.environ.get(ENV_STATE) or self.state_url or default_state_url()
        if "://" not in url:  # a bare path means a SQLite file
            url = f"sqlite:///{Path(url).expanduser().resolve()}"
        return url

    def identity_sources(self) -> IdentitySources:
        """Where the caller's identity is verified (agentctl.identity)."""
        return IdentitySources(
            source=self.identity.source,
            aws=self.provider_settings.get("aws"),
            github=self.provider_settings.get("github"),
        )


# The core's settings sections: key -> (dataclass, description).
SECTIONS: Mapping[str, tuple[type, str]] = {
    "secrets": (SecretsSettings, "Where agentctl keeps secrets (App keys, live tokens)."),
    "notify": (NotifySettings, "Who is told what `expiring --notify` finds (Apprise URLs)."),
    "audit": (AuditSettings, "The audit trail's external anchor (see README, 'Audit trail')."),
    "identity": (IdentitySettings, "How agentctl verifies who is acting."),
}
