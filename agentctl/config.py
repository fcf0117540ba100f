"""agentctl.yaml: where state lives, which secret backend, provider settings.

Looked up in this order: ``--config`` / ``AGENTCTL_CONFIG``, then an
``agentctl.yaml`` next to the first contracts path given, then the current
directory. Missing file means defaults (every command works without one for a
local SQLite state; providers say what they lack when they are used).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentctl.errors import ConfigError
from agentctl.providers.aws.settings import AwsSettings
from agentctl.providers.github.settings import GitHubSettings

CONFIG_FILENAME = "agentctl.yaml"
ENV_CONFIG = "AGENTCTL_CONFIG"
ENV_STATE = "AGENTCTL_STATE"
ENV_OPERATOR = "AGENTCTL_OPERATOR"


def default_state_url() -> str:
    from platformdirs import user_state_dir

    return f"sqlite:///{Path(user_state_dir('agentctl')) / 'state.db'}"


@dataclass(frozen=True)
class SecretsSettings:
    backend: str | None = None  # see agentctl.secrets for the names
    path: str | None = None
    passphrase_env: str = "AGENTCTL_KEYRING_PASSPHRASE"
    passphrase_file: str | None = None


@dataclass(frozen=True)
class Config:
    source: Path | None = None
    state_url: str | None = None
    operator: str | None = None
    max_lifetime_days: int = 365
    rotation_max_age_days: int = 90
    approval_ttl_minutes: int = 60
    lock_timeout_seconds: float = 300.0
    journal_path: str | None = None
    aws: AwsSettings = field(default_factory=AwsSettings)
    github: GitHubSettings = field(default_factory=GitHubSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def resolved_state_url(self, override: str | None = None) -> str:
        url = override or os.environ.get(ENV_STATE) or self.state_url or default_state_url()
        if "://" not in url:  # a bare path means a SQLite file
            url = f"sqlite:///{Path(url).expanduser().resolve()}"
        return url

    def resolved_operator(self, override: str | None = None) -> str:
        import getpass

        if override:
            return override
        env = os.environ.get(ENV_OPERATOR)
        if env:
            return env
        if self.operator:
            return self.operator
        try:
            return getpass.getuser()
        except (OSError, KeyError):
            return "unknown"


def _where(source: Path | None, text: str | None, *keys: str) -> str:
    """``file:line`` of a setting, for messages (the line when the text is known)."""
    if text is None:
        return str(source)
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return str(source)
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == key), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return f"{source}:{line}" if line else str(source)


def _unknown(
    source: Path | None, text: str | None, path: tuple[str, ...], allowed: set[str]
) -> ConfigError:
    import difflib

    name = ".".join(path)
    close = difflib.get_close_matches(path[-1], sorted(allowed), n=1)
    guess = f"did you mean '{close[0]}'? " if close else ""
    return ConfigError(
        f"{_where(source, text, *path)}: unknown setting '{name}'",
        hint=f"{guess}valid here: {', '.join(sorted(allowed))}",
    )


def _section(
    raw: Mapping[str, Any], key: str, cls: Any, source: Path | None, text: str | None
) -> Any:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{_where(source, text, key)}: '{key}' must be a mapping",
            hint="see README, 'Configuration'",
        )
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(value) - known)
    if unknown:
        raise _unknown(source, text, (key, unknown[0]), known)
    _check_types(cls, value, source, text, key)
    return cls(**value)


def _check_types(
    cls: Any, values: Mapping[str, Any], source: Path | None, text: str | None, *prefix: str
) -> None:
    """A wrong type is reported where it is written, not as a crash later."""
    import typing

    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        expected = hints.get(name)
        allowed = typing.get_args(expected) or (expected,)
        if value is None and type(None) in allowed:
            continue
        simple = tuple(t for t in allowed if t in (str, int, float, bool))
        if not simple:
            continue
        ok = isinstance(value, simple) and not (isinstance(value, bool) and bool not in simple)
        if float in simple and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            wanted = " or ".join(t.__name__ for t in simple)
            path = ".".join((*prefix, name))
            raise ConfigError(
                f"{_where(source, text, *prefix, name)}: '{path}' must be {wanted}, "
                f"not {type(value).__name__}",
                hint="see README, 'Configuration'",
            )


_TOP_LEVEL = {
    "state": "state_url",
    "operator": "operator",
    "max_lifetime_days": "max_lifetime_days",
    "rotation_max_age_days": "rotation_max_age_days",
    "approval_ttl_minutes": "approval_ttl_minutes",
    "lock_timeout_seconds": "lock_timeout_seconds",
    "journal": "journal_path",
}
_SECTIONS = {"aws": AwsSettings, "github": GitHubSettings, "secrets": SecretsSettings}


def parse_config(raw: Any, source: Path | None = None, text: str | None = None) -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the configuration must be a YAML mapping")
    allowed = set(_TOP_LEVEL) | set(_SECTIONS) | {"providers"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _unknown(source, text, (unknown[0],), allowed)
    kwargs: dict[str, Any] = {_TOP_LEVEL[k]: v for k, v in raw.items() if k in _TOP_LEVEL}
    for key, value in raw.items():
        if key in _TOP_LEVEL:
            _check_types(Config, {_TOP_LEVEL[key]: value}, source, text)
    for key, cls in _SECTIONS.items():
        kwargs[key] = _section(raw, key, cls, source, text)
    providers = raw.get("providers") or {}
    if not isinstance(providers, Mapping):
        raise ConfigError(f"{source}: 'providers' must be a mapping of provider name to settings")
    try:
        return Config(source=source, providers=providers, **kwargs)
    except TypeError as exc:  # a wrong type for a known field
        raise ConfigError(f"{source}: {exc}") from None


def find_config_file(explicit: str | None, contract_paths: Sequence[str] = ()) -> Path | None:
    candidate = explicit or os.environ.get(ENV_CONFIG)
    if candidate:
        path = Path(candidate).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"configuration file {path} does not exist",
                hint="fix --config / AGENTCTL_CONFIG, or remove it to use the defaults",
            )
        return path
    for first in contract_paths[:1]:
        base = Path(first)
        folder = base if base.is_dir() else base.parent
        for directory in (folder, folder.parent):
            if (directory / CONFIG_FILENAME).is_file():
                return directory / CONFIG_FILENAME
    local = Path.cwd() / CONFIG_FILENAME
    return local if local.is_file() else None


def load_config(explicit: str | None = None, contract_paths: Sequence[str] = ()) -> Config:
    path = find_config_file(explicit, contract_paths)
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc.__class__.__name__}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML", hint="fix the syntax") from None
    return parse_config(raw, path, text)
