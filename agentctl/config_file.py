"""Finding, reading and checking agentctl.yaml.

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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.config import (
    CONFIG_FILENAME,
    ENV_CONFIG,
    AuditSettings,
    Config,
    IdentitySettings,
    NotifySettings,
    SecretsSettings,
)
from agentctl.errors import ConfigError
from agentctl.identity import PersonRule
from agentctl.model import JsonObject, JsonValue
from agentctl.schema import config_json_schema
from agentctl.suggest import did_you_mean

if TYPE_CHECKING:
    import jsonschema
    from yaml.nodes import Node

    from agentctl.providers.base import AnySpec

_SEE = "see README, 'Configuration'"
# JSON Schema types as the settings dataclasses spell them.
_PYTHON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


@cache
def _schema(specs: tuple[AnySpec, ...]) -> JsonObject:
    return config_json_schema({s.name: s for s in specs})


@cache
def _validator(specs: tuple[AnySpec, ...]) -> jsonschema.Draft202012Validator:
    # Imported here: a configuration checked clean before is not checked again
    # (agentctl.config_cache), and jsonschema is most of what checking costs.
    import jsonschema

    return jsonschema.Draft202012Validator(_schema(specs))


def _position(source: Path | None, root: Node | None, path: Sequence[str | int]) -> str:
    from agentctl.yamldoc import locate

    if root is None or not path:
        return str(source)
    line, _ = locate(root, path, key=True)
    return f"{source}:{line}"


def _config_error(
    error: jsonschema.ValidationError, source: Path | None, root: Node | None
) -> ConfigError:
    """One schema error as the ConfigError that says where and what to do."""
    from agentctl.yamldoc import show

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
    if kind == "pattern":
        # The field's description says what the value must hold.
        return ConfigError(
            f"{_position(source, root, path)}: '{'.'.join(path)}' is {show(str(instance), 60)}, "
            f"which does not fit: {schema.get('description', expected)}",
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
    remember: bool = False,
) -> Config:
    """A :class:`Config` from agentctl.yaml's plain values, checked against the
    schema assembled from ``specs`` (default: the registered providers);
    ``root`` (the composed YAML) locates errors by line. ``remember``: skip
    the schema check for values that passed it before (agentctl.config_cache)."""
    from agentctl.providers.registry import provider_specs

    specs = provider_specs() if specs is None else specs
    _refuse_non_finite(raw, source, root, ())
    ordered = tuple(specs[name] for name in sorted(specs))
    key = None
    if remember:
        from agentctl import config_cache

        try:
            key = config_cache.digest(raw, _schema(ordered))
        except (TypeError, ValueError):  # not strict JSON: checked every time
            key = None
        if key is not None and config_cache.validated_before(key):
            return _config(raw, source, root, specs)
    errors = list(_validator(ordered).iter_errors(raw))
    if errors:
        # The first problem in the file, as people read it.
        def where(error: jsonschema.ValidationError) -> tuple[int, int]:
            from agentctl.yamldoc import locate

            if root is None:
                return (0, 0)
            path = list(error.absolute_path)
            instance: Any = error.instance
            schema: Any = error.schema
            if error.validator == "additionalProperties":
                path.append(next(k for k in instance if k not in schema.get("properties", {})))
            return locate(root, path, key=True)

        raise _config_error(min(errors, key=where), source, root)
    if key is not None:
        from agentctl import config_cache

        config_cache.remember(key)
    return _config(raw, source, root, specs)


def _config(
    raw: JsonValue, source: Path | None, root: Node | None, specs: Mapping[str, AnySpec]
) -> Config:
    """The Config of schema-valid ``raw``."""
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
    if isinstance(value, list):
        # In a list too: the remembered-clean digest (agentctl.config_cache)
        # is strict JSON, so a NaN there was an internal error, not this one.
        for index, item in enumerate(value):
            _refuse_non_finite(item, source, root, (*path, str(index)))


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


def load_config(
    explicit: str | None = None,
    contract_paths: Sequence[str] = (),
    *,
    specs: Mapping[str, AnySpec] | None = None,
    ignored: Collection[str] = (),
) -> Config:
    """The agentctl.yaml in effect (see :func:`find_config_file`), or the defaults.
    ``specs``/``ignored``: as :func:`parse_config_text`."""
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
    return parse_config_text(text, path, remember=True, specs=specs, ignored=ignored)


def parse_config_text(
    text: str,
    source: Path | None = None,
    *,
    remember: bool = False,
    specs: Mapping[str, AnySpec] | None = None,
    ignored: Collection[str] = (),
) -> Config:
    """agentctl.yaml's text -> :class:`Config`, every error located by line.
    ``specs``: the providers whose sections it may hold (default: every
    registered one); ``ignored``: top-level sections left unread (kill's: the
    sections of plug-ins that cannot be loaded, whose schema is unknown)."""
    import yaml

    from agentctl.yamldoc import Abort, Builder, compose, is_empty, locate

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
    if ignored and isinstance(raw, dict):
        raw = {key: value for key, value in raw.items() if key not in ignored}
    return parse_config(raw, source, root, specs=specs, remember=remember)
