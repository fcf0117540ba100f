"""The contract and agentctl.yaml JSON Schemas, assembled from the registered providers.

The core owns the shape of everything but ``permissions.<system>`` and the
provider sections of agentctl.yaml; each :class:`ProviderSpec` contributes its
grant's fragment (and ``$defs``) and its settings dataclass. The schemas in
``schemas/`` are this module's output for the providers agentctl ships (a
test keeps them current)::

    python -m agentctl.schema --write     # regenerate schemas/*.json
    python -m agentctl.schema --check     # exit 1 when they are stale

:class:`SchemaGuide` is what the contract loader needs to turn schema errors
into advice (where a misplaced key belongs, what a value must be), derived
from the assembled schema and the specs' hints rather than kept by hand.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from agentctl.config import PEOPLE_SCHEMA, SECTIONS, Config
from agentctl.model import ExecutionMode, JsonObject, JsonValue

if TYPE_CHECKING:
    from agentctl.providers.base import AnySpec

# Bumped when a contract that validated before stops validating (a key removed,
# a value narrowed); new optional keys keep it. `agentctl --version` prints it.
SCHEMA_VERSION = "1"
CONTRACT_SCHEMA_FILE = "agent-contract.schema.json"
CONTRACT_SCHEMA_ID = "https://agentctl.dev/schemas/agent-contract.schema.json"
CONFIG_SCHEMA_FILE = "agentctl-config.schema.json"
CONFIG_SCHEMA_ID = "https://agentctl.dev/schemas/agentctl-config.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# A DNS label is at most 63 characters; providers may need fewer (NameLimit).
NAME_MAX_DNS_LABEL = 63
NAME_MIN_LENGTH = 2

# Where a hand-written key belongs, for the keys of the core's own sections.
CORE_MISSING_HINTS: Mapping[str, str] = {
    "agent": "add an 'agent:' mapping with name, owner and purpose",
    "agent.name": "add 'name: <lowercase-dns-label>' under agent",
    "agent.owner": "add 'owner: <e-mail of the accountable person or team>' under agent",
    "agent.purpose": "add 'purpose: <one sentence>' under agent",
    "permissions": "add a 'permissions:' mapping, e.g. 'github: [repo:read]' (or 'permissions: {}')",
    "execution_mode": "add 'execution_mode:' autonomous, approval_required or on_behalf_of_user",
    "expiry": "add 'expiry: YYYY-MM-DD', the date the grant ends",
    "kill_switch": "add 'kill_switch: /agents/<name>/disable'",
}
CORE_TYPE_HINTS: Mapping[str, str] = {
    "": "a mapping with agent, permissions, execution_mode, expiry and kill_switch",
    "agent": "a mapping with name, owner and purpose",
    "permissions": "a mapping of system to scopes, e.g. 'github: [repo:read]'",
}


# ------------------------------------------------------------------ the contract


def name_limit(specs: Mapping[str, AnySpec]) -> tuple[int, list[tuple[int, str]]]:
    """The longest agent name every provider can carry, and each provider's
    limit with its reason (tightest first)."""
    limits = sorted(
        (spec.name_limit.max_length, spec.name_limit.reason)
        for spec in specs.values()
        if spec.name_limit is not None
    )
    return min([NAME_MAX_DNS_LABEL, *(length for length, _ in limits)]), limits


def _name_description(specs: Mapping[str, AnySpec]) -> str:
    longest, limits = name_limit(specs)
    why = f" ({'; '.join(reason for _, reason in limits)})" if limits else ""
    return (
        "Unique agent name, a lowercase DNS label: a-z, 0-9 and single hyphens, starting "
        f"with a letter, {NAME_MIN_LENGTH}-{longest} characters, so that it fits every "
        f"provider's naming limits{why}. Appears in audit logs and in the names of the "
        "agent's identities."
    )


def contract_schema(specs: Mapping[str, AnySpec]) -> JsonObject:
    """The contract JSON Schema (Draft 2020-12) with ``specs``' grants."""
    systems = sorted(specs)
    named = [f"`{s}`" for s in systems]
    listed = " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    enforced = (
        f"{listed} {'is' if len(systems) == 1 else 'are'} enforced by their providers; any other system"
        if systems
        else "No provider is installed: every system"
    )
    defs: dict[str, JsonValue] = {
        "scopes": {
            "description": "A list of scope names, each at most once.",
            "type": "array",
            "minItems": 1,
            "maxItems": 256,
            "items": {
                "description": "One scope name, e.g. issue:read.",
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
            },
        }
    }
    grants: dict[str, JsonValue] = {}
    for system in systems:
        spec = specs[system]
        grants[system] = copy.deepcopy(spec.grant_schema)
        for key, value in spec.schema_defs.items():
            if key in defs and defs[key] != value:
                raise ValueError(f"provider {system} redefines $defs/{key}")
            defs[key] = copy.deepcopy(value)
    longest, _ = name_limit(specs)
    return {
        "$schema": DRAFT,
        "$id": CONTRACT_SCHEMA_ID,
        "title": "agentctl access contract",
        "description": "One AI agent's access contract: who it is, who owns it, what it may do, how it runs, when its grant ends and how to turn it off. One YAML file per agent; validate with `agentctl validate`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["agent", "permissions", "execution_mode", "expiry", "kill_switch"],
        "properties": {
            "agent": {
                "description": "The agent's identity: the name that appears in every log, its accountable owner and its purpose.",
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "owner", "purpose"],
                "properties": {
                    "name": {
                        "description": _name_description(specs),
                        "type": "string",
                        "minLength": NAME_MIN_LENGTH,
                        "maxLength": longest,
                        "pattern": "^[a-z][a-z0-9]*(-[a-z0-9]+)*$",
                        "examples": ["pr-review-agent"],
                    },
                    "owner": {
                        "description": "E-mail address of the person or team accountable for the agent; paged when it misbehaves.",
                        "type": "string",
                        "format": "email",
                        "minLength": 3,
                        "maxLength": 254,
                        "examples": ["platform-team@company.com"],
                    },
                    "purpose": {
                        "description": "One sentence saying what the agent is for (at most 256 characters: it is recorded as a cloud tag).",
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 256,
                    },
                },
            },
            "permissions": {
                "description": f"What the agent may do, per system. {enforced} (e.g. `pagerduty`, with no provider installed) is a list of scope names that is recorded and reported as declared, not enforced.",
                "type": "object",
                "maxProperties": 32,
                "propertyNames": {
                    "description": "A system name: lowercase letters, digits, '_' and '-'.",
                    "pattern": "^[a-z][a-z0-9_-]{0,62}$",
                },
                "properties": grants,
                "additionalProperties": {"$ref": "#/$defs/scopes"},
            },
            "execution_mode": {
                "description": "How the agent acts: autonomous (on its own, in its assigned job), approval_required (a person approves each run), on_behalf_of_user (only for a named user, who is recorded with every action).",
                "type": "string",
                "enum": [mode.value for mode in ExecutionMode],
            },
            "expiry": {
                "description": "The date the grant ends (YYYY-MM-DD). From that day the agent is expired: apply disables it. At most the configured maximum lifetime (default 365 days) ahead.",
                "type": "string",
                "format": "date",
                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                "examples": ["2027-03-01"],
            },
            "approvers": {
                "description": "Who may approve a run of an approval_required agent (required in that mode): people by the name agentctl verifies (an IAM user name, an IAM Identity Center session name such as an e-mail, a GitHub login; `*` globs allowed, e.g. `*@company.com`) or principal patterns (`arn:aws:iam::123456789012:user/alice`, `github:user/octocat`). Never the person who asked for the run.",
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {
                    "description": "A person, an e-mail, a glob, or a principal pattern.",
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 256,
                    "pattern": "^[^\\s]+$",
                },
                "examples": [["release-lead@company.com", "arn:aws:iam::123456789012:user/alice"]],
            },
            "acts_for": {
                "description": "Who the agent may act for (--on-behalf-of): e-mail patterns such as `*@company.com`. Default: any e-mail address; a bare word like `root` is never accepted.",
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": {
                    "description": "An e-mail address or a glob over e-mail addresses.",
                    "type": "string",
                    "minLength": 3,
                    "maxLength": 254,
                    "pattern": "^[^\\s@]*@[^\\s@]+$",
                },
                "examples": [["*@company.com"]],
            },
            "kill_switch": {
                "description": "The kill switch of this agent: /agents/<name>/disable, with this contract's agent name. `agentctl kill <name>` revokes this agent only.",
                "type": "string",
                "pattern": "^/agents/[a-z][a-z0-9-]*/disable$",
                "examples": ["/agents/pr-review-agent/disable"],
            },
        },
        "$defs": defs,
    }


# ------------------------------------------------------------- the advice tables


def location(path: Sequence[str | int]) -> str:
    """A path as a section: ``("permissions", "aws", 0)`` -> ``permissions.aws[]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class SchemaGuide:
    """Advice derived from an assembled contract schema and its specs' hints."""

    # key -> every section it belongs to ("" is the top level).
    homes: Mapping[str, frozenset[str]]
    # "section.key" -> how to add that required key.
    missing: Mapping[str, str]
    # section -> what a value there must be, said for people.
    expected: Mapping[str, str]
    # section -> its schema's title (e.g. "AWS statement").
    titles: Mapping[str, str]
    # unknown key (lowercased, '_' dropped) -> what to do instead.
    unknown: Mapping[str, str]

    def describe(self, section: str) -> str:
        """``permissions.aws[]`` -> "in an AWS statement under permissions.aws"."""
        if section == "":
            return "at the top level of the contract"
        title = self.titles.get(section)
        if title and section.endswith("[]"):
            article = "an" if title[0].lower() in "aeiou" else "a"
            return f"in {article} {title} under {section[:-2]}"
        return f"under {section}"


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target: Mapping[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _sections(
    schema: Mapping[str, Any], node: Mapping[str, Any], here: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every object section of the schema with its location (variants included)."""
    node = _resolve(schema, node)
    yield here, node
    for variant in (node.get(k) for k in ("then", "else")):
        if isinstance(variant, Mapping):
            yield from _sections(schema, variant, here)
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from _sections(schema, items, f"{here}[]")
    for key, child in (node.get("properties") or {}).items():
        yield from _sections(schema, child, f"{here}.{key}" if here else key)


def schema_guide(schema: Mapping[str, Any], specs: Mapping[str, AnySpec]) -> SchemaGuide:
    homes: dict[str, set[str]] = {}
    titles: dict[str, str] = {}
    for section, node in _sections(schema, schema, ""):
        if isinstance(node.get("title"), str) and section:
            titles[section] = node["title"]
        if node.get("type") == "object" or "properties" in node:
            for key in node.get("properties") or {}:
                homes.setdefault(key, set()).add(section)
    missing = dict(CORE_MISSING_HINTS)
    expected = dict(CORE_TYPE_HINTS)
    unknown: dict[str, str] = {}
    for name, spec in specs.items():
        base = f"permissions.{name}"
        for where_, hint in spec.hints.missing_key.items():
            missing[base + ("" if where_.startswith("[]") else ".") + where_] = hint
        for where_, hint in spec.hints.expected_type.items():
            expected[base + where_] = hint
        unknown.update(spec.hints.unknown_key)
    return SchemaGuide(
        homes={key: frozenset(sections) for key, sections in homes.items()},
        missing=missing,
        expected=expected,
        titles=titles,
        unknown=unknown,
    )


# ------------------------------------------------------------------ agentctl.yaml


_JSON_TYPES: Mapping[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _container_schema(hint: Any) -> dict[str, JsonValue] | None:
    """``tuple[str, ...]`` -> an array of strings; ``Mapping[str, tuple[str, ...]]``
    -> an object whose values are such arrays (settings such as notification
    routes by owner). Other hints are not containers (None)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] is str:
        return {"type": "array", "items": {"type": "string"}}
    if origin in (Mapping, dict, collections.abc.Mapping) and len(args) == 2 and args[0] is str:
        values = _container_schema(args[1])
        if values is not None:
            return {"type": "object", "additionalProperties": values}
    return None


def dataclass_schema(cls: type, *, description: str | None = None) -> JsonObject:
    """The JSON Schema of a settings dataclass: its fields, their simple types
    (``str``, ``int``, ``float``, ``bool``, optional ones nullable), their
    defaults, and each field's ``metadata["description"]``."""
    hints = typing.get_type_hints(cls)
    properties: dict[str, JsonValue] = {}
    for item in dataclasses.fields(cls):
        if not item.init or item.metadata.get("schema", True) is False:
            continue
        kinds: list[JsonValue] = []
        hint = hints[item.name]
        members = (
            typing.get_args(hint)
            if typing.get_origin(hint) in (Union, types.UnionType)
            else (hint,)
        )
        prop: dict[str, JsonValue] = {}
        if item.metadata.get("description"):
            prop["description"] = str(item.metadata["description"])
        nested = _container_schema(hint)
        if nested is not None:
            prop.update(nested)
            properties[str(item.metadata.get("key", item.name))] = prop
            continue
        for member in members:
            kind = _JSON_TYPES.get(member)
            if kind is None:
                raise TypeError(f"{cls.__name__}.{item.name}: {member!r} is not a settings type")
            kinds.append(kind)
        prop["type"] = kinds[0] if len(kinds) == 1 else kinds
        # A range for every number a person types: out of it, a clear error here
        # instead of an overflow deep in date arithmetic.
        for bound in ("minimum", "maximum"):
            if bound in item.metadata:
                prop[bound] = item.metadata[bound]
        if item.metadata.get("enum"):
            prop["enum"] = list(item.metadata["enum"])
        if item.metadata.get("pattern"):
            prop["pattern"] = str(item.metadata["pattern"])
        if item.default is not dataclasses.MISSING and item.default is not None:
            prop["default"] = item.default
        properties[str(item.metadata.get("key", item.name))] = prop
    schema: dict[str, JsonValue] = {}
    if description:
        schema["description"] = description
    schema.update(
        {"type": ["object", "null"], "additionalProperties": False, "properties": properties}
    )
    return schema


def config_schema(
    specs: Mapping[str, AnySpec], top_level: type, sections: Mapping[str, tuple[type, str]]
) -> JsonObject:
    """The agentctl.yaml schema: ``top_level``'s fields (``metadata["key"]``
    names them in YAML), the core ``sections`` and one section per provider."""
    schema = dataclass_schema(top_level)
    properties = schema["properties"]
    assert isinstance(properties, dict)
    for key, (cls, description) in sections.items():
        properties[key] = dataclass_schema(cls, description=description)
    for name in sorted(specs):
        spec = specs[name]
        if name in properties:
            raise ValueError(f"provider {name} would shadow the agentctl.yaml setting {name!r}")
        properties[name] = dataclass_schema(
            spec.settings_type, description=f"The {name} provider: {spec.summary}."
        )
    return {
        "$schema": DRAFT,
        "$id": CONFIG_SCHEMA_ID,
        "title": "agentctl.yaml",
        "description": "agentctl's configuration: where state lives, which secret backend, and each provider's settings. Every setting has a default.",
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": properties,
    }


# ------------------------------------------------------------------- generator


def _render(schema: JsonObject) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def config_json_schema(specs: Mapping[str, AnySpec]) -> JsonObject:
    """The agentctl.yaml JSON Schema with ``specs``' sections."""
    schema = config_schema(specs, Config, SECTIONS)
    properties: Any = schema["properties"]
    properties["identity"]["properties"]["source"]["enum"] = ["auto", "aws", "github"]
    properties["people"] = PEOPLE_SCHEMA
    return schema


def generated(specs: Mapping[str, AnySpec] | None = None) -> dict[str, str]:
    """File name in ``schemas/`` -> its text, for the registered providers."""
    from agentctl.providers.registry import provider_specs

    chosen = provider_specs() if specs is None else specs
    return {
        CONTRACT_SCHEMA_FILE: _render(contract_schema(chosen)),
        CONFIG_SCHEMA_FILE: _render(config_json_schema(chosen)),
    }


def write_schemas(folder: Path) -> list[Path]:
    """Write the schemas of the registered providers into ``folder`` (created if
    missing), for editors that need a local path; the written files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated().items():
        target = folder / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def main(argv: Sequence[str]) -> int:
    folder = Path(__file__).resolve().parents[1] / "schemas"
    files = generated()
    if "--write" in argv:
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return 0
    if "--check" in argv:
        stale = [
            n
            for n, text in files.items()
            if not (folder / n).is_file() or (folder / n).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(
                f"schemas/{name} is stale: run python -m agentctl.schema --write", file=sys.stderr
            )
        return 1 if stale else 0
    sys.stdout.write(files[CONTRACT_SCHEMA_FILE])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
