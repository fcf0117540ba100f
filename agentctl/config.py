"""agentctl.yaml: where state lives, which secret backend, provider settings.

Looked up in this order: ``--config`` / ``AGENTCTL_CONFIG``, then an
``agentctl.yaml`` next to the first contracts path given, then the current
directory. Missing file means defaults (every command works without one for a
local SQLite state; providers say what they lack when they are used).

The file is read with the contracts' positioned YAML loader and checked
against a JSON Schema assembled from the core's settings and each registered
provider's settings dataclass (``schemas/agentctl-config.schema.json`` is that
schema for the providers agentctl ships): every error names the file and line,
with a did-you-mean for misspelt settings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import jsonschema
import yaml
from yaml.nodes import Node

from agentctl.errors import ConfigError
from agentctl.identity import IdentitySources, PersonRule
from agentctl.model import JsonObject, JsonValue
from agentctl.suggest import did_you_mean
from agentctl.yamldoc import Abort, Builder, compose, is_empty, locate, show

if TYPE_CHECKING:
    from agentctl.providers.base import AnySpec

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


_SECTIONS: Mapping[str, tuple[type, str]] = {
    "secrets": (SecretsSettings, "Where agentctl keeps secrets (App keys, live tokens)."),
    "notify": (NotifySettings, "Who is told what `expiring --notify` finds (Apprise URLs)."),
    "audit": (AuditSettings, "The audit trail's external anchor (see README, 'Audit trail')."),
    "identity": (IdentitySettings, "How agentctl verifies who is acting."),
}
_SEE = "see README, 'Configuration'"
# JSON Schema types as the settings dataclasses spell them.
_PYTHON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


def config_json_schema(specs: Mapping[str, AnySpec]) -> JsonObject:
    """The agentctl.yaml JSON Schema with ``specs``' sections."""
    from agentctl.schema import config_schema

    schema = config_schema(specs, Config, _SECTIONS)
    properties: Any = schema["properties"]
    properties["identity"]["properties"]["source"]["enum"] = ["auto", "aws", "github"]
    properties["people"] = PEOPLE_SCHEMA
    return schema


@cache
def _validator(specs: tuple[AnySpec, ...]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_json_schema({s.name: s for s in specs}))


def _position(source: Path | None, root: Node | None, path: Sequence[str | int]) -> str:
    if root is None or not path:
        return str(source)
    line, _ = locate(root, path, key=True)
    return f"{source}:{line}"


def _config_error(
    error: jsonschema.ValidationError, source: Path | None, root: Node | None
) -> ConfigError:
    """One schema error as the ConfigError that says where and what to do."""
    path = tuple(str(part) for part in error.absolute_path)
    # jsonschema types these loosely; for a given keyword their shape is known.
    kind: Any = error.validator
    expected: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        key = next(str(k) for k in instance if k not in allowed)
        close = did_you_mean(key, allowed)
        guess = f"did you mean '{close}'? " if close else ""
        # show(): the key comes from the file; quote it escaped and cut short.
        return ConfigError(
            f"{_position(source, root, (*path, key))}: unknown setting {show('.'.join((*path, key)), 60)}",
            hint=f"{guess}valid here: {', '.join(allowed)}",
        )
    if kind == "type" and not path:
        return ConfigError(f"{source}: the configuration must be a YAML mapping")
    if kind == "type" and "object" in expected:
        return ConfigError(
            f"{_position(source, root, path)}: '{'.'.join(path)}' must be a mapping", hint=_SEE
        )
    if kind == "type":
        names = [
            _PYTHON_TYPES.get(t, t)
            for t in ([expected] if isinstance(expected, str) else expected)
            if t != "null"
        ]
        return ConfigError(
            f"{_position(source, root, path)}: '{'.'.join(path)}' must be {' or '.join(names)}, "
            f"not {type(instance).__name__}",
            hint=_SEE,
        )
    return ConfigError(
        f"{_position(source, root, path)}: '{'.'.join(path)}': {error.message[:200]}", hint=_SEE
    )


def parse_config(
    raw: JsonValue,
    source: Path | None = None,
    root: Node | None = None,
    *,
    specs: Mapping[str, AnySpec] | None = None,
) -> Config:
    """A :class:`Config` from agentctl.yaml's plain values, checked against the
    schema assembled from ``specs`` (default: the registered providers);
    ``root`` (the composed YAML) locates errors by line."""
    from agentctl.providers.registry import provider_specs

    specs = provider_specs() if specs is None else specs
    _refuse_non_finite(raw, source, root, ())
    validator = _validator(tuple(specs[name] for name in sorted(specs)))
    errors = list(validator.iter_errors(raw))
    if errors:
        # The first problem in the file, as people read it.
        def where(error: jsonschema.ValidationError) -> tuple[int, int]:
            if root is None:
                return (0, 0)
            path = list(error.absolute_path)
            instance: Any = error.instance
            schema: Any = error.schema
            if error.validator == "additionalProperties":
                path.append(next(k for k in instance if k not in schema.get("properties", {})))
            return locate(root, path, key=True)

        raise _config_error(min(errors, key=where), source, root)
    values: Mapping[str, JsonValue] = raw if isinstance(raw, dict) else {}
    names = {str(f.metadata["key"]): f.name for f in fields(Config) if "key" in f.metadata}
    # Schema-valid, so every value has its field's type.
    top: dict[str, Any] = {names[key]: value for key, value in values.items() if key in names}
    return Config(
        source=source,
        secrets=SecretsSettings(**_section(values, "secrets")),
        notify=NotifySettings(**_section(values, "notify")),
        audit=AuditSettings(**_section(values, "audit")),
        identity=IdentitySettings(**_section(values, "identity")),
        people=_people(values.get("people"), source, root),
        provider_settings={
            name: spec.settings_type(**_section(values, name))
            for name, spec in specs.items()
            if name in values
        },
        **top,
    )


def _refuse_non_finite(
    value: JsonValue, source: Path | None, root: Node | None, path: tuple[str, ...]
) -> None:
    # YAML has .nan and .inf; a NaN passes every minimum/maximum check.
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"{_position(source, root, path)}: '{'.'.join(path)}' must be a finite number, "
            f"not {value}",
            hint=_SEE,
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(item, source, root, (*path, str(key)))


def _people(raw: JsonValue, source: Path | None, root: Node | None) -> tuple[PersonRule, ...]:
    if not isinstance(raw, list):
        return ()
    rules = []
    for index, entry in enumerate(raw):
        assert isinstance(entry, dict)  # schema-valid
        rules.append(
            PersonRule(
                principal=str(entry["principal"]),
                person=str(entry["person"]),
                where=_position(source, root, ("people", index)),
            )
        )
    return tuple(rules)


def _section(values: Mapping[str, JsonValue], key: str) -> dict[str, Any]:
    section = values.get(key)
    return dict(section) if isinstance(section, dict) else {}


MAX_CONFIG_BYTES = 256 * 1024


def find_config_file(explicit: str | None, contract_paths: Sequence[str] = ()) -> Path | None:
    candidate = explicit or os.environ.get(ENV_CONFIG)
    if candidate:
        path = Path(candidate).expanduser()
        if not os.path.lexists(path):
            raise ConfigError(
                f"configuration file {path} does not exist",
                hint="fix --config / AGENTCTL_CONFIG, or remove it to use the defaults",
            )
        return path
    for first in contract_paths[:1]:
        base = Path(first)
        folder = base if base.is_dir() else base.parent
        for directory in (folder, folder.parent):
            if os.path.lexists(directory / CONFIG_FILENAME):
                return directory / CONFIG_FILENAME
    local = Path.cwd() / CONFIG_FILENAME
    return local if os.path.lexists(local) else None


def load_config(explicit: str | None = None, contract_paths: Sequence[str] = ()) -> Config:
    from agentctl.untrusted_files import FileRefused, read_untrusted

    chosen = bool(explicit or os.environ.get(ENV_CONFIG))
    path = find_config_file(explicit, contract_paths)
    if path is None:
        return Config()
    try:
        # One found next to the contracts (or in the working directory) came with
        # them, perhaps from a pull request: it must not lead out of its folder.
        # One named by --config / AGENTCTL_CONFIG is the operator's choice.
        within = Path(path.anchor or "/") if chosen else path.parent
        data = read_untrusted(
            path, limit=MAX_CONFIG_BYTES, within=within, expected="an agentctl.yaml file"
        )
    except FileRefused as refused:
        hint = (
            "fix --config / AGENTCTL_CONFIG, or unset it to use the defaults"
            if chosen
            else f"replace {path} with a regular file, or remove it to use the defaults"
        )
        raise ConfigError(f"configuration file {path}: {refused.message}", hint=hint) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"configuration file {path}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from agentctl.untrusted_files import wide_encoding

        encoding = wide_encoding(data)
        raise ConfigError(
            f"configuration file {path}: "
            + (f"saved as {encoding}, not UTF-8" if encoding else "not UTF-8 text"),
            hint="save it as UTF-8",
        ) from None
    if "\x00" in text:
        from agentctl.untrusted_files import wide_encoding

        encoding = wide_encoding(data)
        raise ConfigError(
            f"configuration file {path}: "
            + (f"saved as {encoding}, not UTF-8" if encoding else "a binary file (NUL bytes)"),
            hint="save it as UTF-8 YAML text",
        )
    return parse_config_text(text, path)


def parse_config_text(text: str, source: Path | None = None) -> Config:
    """agentctl.yaml's text -> :class:`Config`, every error located by line."""
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML", hint="fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply", hint="fix the syntax") from None
    if is_empty(root):
        return Config(source=source)
    assert root is not None
    builder = Builder("agentctl.yaml", aliases=True)
    try:
        raw = builder.build(root)
    except Abort as abort:
        builder.issues.insert(0, abort.issue)
    if builder.issues:
        issue = builder.issues[0]
        line = issue.mark[0] if issue.mark else locate(root, issue.path, key=True)[0]
        raise ConfigError(f"{source}:{line}: {issue.message}", hint="fix the syntax")
    return parse_config(raw, source, root)
