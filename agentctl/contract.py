"""Load and validate access contracts (DESIGN §1).

YAML in, :class:`ValidationReport` out: valid contracts as frozen
:class:`~agentctl.model.Contract` values, and every problem located by file,
line, column and JSON path, with a stable code and a message that says what to
do. Nothing here prints, exits or raises for bad input: malformed, hostile or
huge files become problems.

Pipeline for one file, fast path first (``bench/bench_validate.py`` holds it to
within 1.5x of bare ``yaml`` + ``jsonschema``):

1. read at most :data:`MAX_FILE_BYTES` of a regular file (FIFOs, devices and
   directories are refused before anything blocks), require UTF-8 text;
2. compose the YAML with libyaml (``yaml.CSafeLoader``; the pure-Python
   ``SafeLoader`` when libyaml is missing). Composing builds nodes that carry
   line/column marks and does *no* construction, so nothing of the document is
   executed or expanded;
3. build plain JSON-compatible values from the nodes ourselves: duplicate keys,
   aliases (a node reached twice — which is how a "billion laughs" bomb stays
   cheap: it is refused at its first repeat), non-standard tags and merge keys
   are refused; dates are kept as the text written (the JSON Schema sees
   strings, ``expiry`` is parsed strictly below); depth and node count are
   bounded;
4. validate against the JSON Schema (``schemas/agent-contract.schema.json``,
   the single source of truth for shape) with one cached validator; errors are
   translated to friendly problems only when there are any;
5. semantic checks the schema cannot express (names, owner, dates, kill
   switch, duplicates) and each system's vocabulary via its provider's
   ``check_grant``;
6. positions are looked up in the node tree only for problems found, so a
   valid document pays nothing for them.

Problem codes (severity error unless noted):

- reading: ``not-found``, ``unreadable``, ``no-contracts``, ``file-too-large``,
  ``not-text``, ``empty``
- YAML: ``yaml-syntax``, ``multiple-documents``, ``duplicate-key``,
  ``yaml-alias-not-allowed``, ``yaml-merge-not-allowed``,
  ``yaml-tag-not-allowed``, ``invalid-key``, ``too-deep``, ``too-many-nodes``,
  ``control-char``
- shape (from the JSON Schema): ``unknown-key``, ``misplaced-key``,
  ``missing-key``, ``wrong-type``, ``invalid-enum``, ``invalid-value``,
  ``duplicate-item``
- semantics: ``invalid-name``, ``name-not-ascii``, ``name-control-char``,
  ``name-too-long``, ``reserved-name``, ``duplicate-name``, ``invalid-owner``,
  ``invalid-date``, ``expired``, ``lifetime-too-long``,
  ``kill-switch-mismatch``, ``unknown-system``
- permissions: the provider's codes (``agentctl.providers.github.scopes``,
  ``agentctl.providers.aws.vocabulary``), ``provider-check-failed``, and
  ``not-enforced`` (severity info: a system with no provider is recorded,
  never enforced, never an error — not even under ``--strict``)
- ``too-many-problems`` (info): the rest of a file's problems were left out.

Line and column are 1-based; both are 0 when a problem concerns a path as a
whole (``not-found``, ``unreadable``, ``no-contracts``, ``file-too-large``,
``not-text``, ``empty``).

Expired contracts: a contract past its expiry gets the error ``expired`` (so CI
fails until it is renewed or removed) and is *not* in ``report.contracts``; it
is in ``report.expired`` — even when it has other problems — because apply
must disable it.
"""

from __future__ import annotations

import calendar
import difflib
import json
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import jsonschema
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agentctl.model import Contract, ExecutionMode, Problem, Severity
from agentctl.providers.aws.vocabulary import check_aws_grant
from agentctl.providers.base import GrantFinding
from agentctl.providers.github.scopes import check_github_grant

SCHEMA_FILE = "agent-contract.schema.json"
SCHEMA_ID = "https://agentctl.dev/schemas/agent-contract.schema.json"

MAX_FILE_BYTES = 256 * 1024
# A contract is at most 6 levels deep (permissions.aws[0].actions[0]); anything
# far deeper is an attack on the loader, not a contract.
MAX_DEPTH = 32
MAX_NODES = 20_000
MAX_PROBLEMS_PER_FILE = 100

# Names must fit every provider. AWS: the role "agentctl-<name>" is at most 64
# characters, so 55 for the name. GitHub: an App name is at most 34 characters
# and a dedicated App is named after the agent. The smaller limit wins.
IAM_ROLE_NAME_MAX = 64
IAM_ROLE_PREFIX = "agentctl-"
GITHUB_APP_NAME_MAX = 34
NAME_MAX_LENGTH = min(IAM_ROLE_NAME_MAX - len(IAM_ROLE_PREFIX), GITHUB_APP_NAME_MAX)
NAME_MIN_LENGTH = 2
# Names agentctl's own identities could use: an agent must never be confusable
# with the operator (e.g. role "agentctl-operator").
RESERVED_NAMES = frozenset({"agentctl", "operator", "admin", "root"})

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_LOOSE_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Bidirectional overrides/isolates ("trojan source") are format characters (Cf).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (f"{_TAG}{t}" for t in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _SEQ, _MAP, _MERGE, _VALUE = (
    f"{_TAG}{t}" for t in ("timestamp", "seq", "map", "merge", "value")
)
_SCALAR_CONSTRUCTOR = SafeConstructor()
_EXECUTION_MODES = frozenset(mode.value for mode in ExecutionMode)
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Where each well-known key belongs: "" is the top level, "permissions.aws[]"
# an AWS statement. Used to say "move it there" instead of "unknown key".
_KEY_HOME: dict[str, str] = {
    "agent": "",
    "permissions": "",
    "execution_mode": "",
    "expiry": "",
    "kill_switch": "",
    "name": "agent",
    "owner": "agent",
    "purpose": "agent",
    "github": "permissions",
    "aws": "permissions",
    "repositories": "permissions.github",
    "scopes": "permissions.github",
    "actions": "permissions.aws[]",
    "resources": "permissions.aws[]",
    "sid": "permissions.aws[]",
}
_KEY_HINTS: dict[str, str] = {
    "effect": "every statement is an Allow; remove 'effect' (a Deny cannot be expressed)",
    "condition": "conditions are not supported; narrow 'resources' instead",
    "notaction": "NotAction is not supported: list the allowed actions",
    "notresource": "NotResource is not supported: list the allowed resources",
}
_MISSING_HINTS: dict[str, str] = {
    "agent": "add an 'agent:' mapping with name, owner and purpose",
    "name": "add 'name: <lowercase-dns-label>' under agent",
    "owner": "add 'owner: <e-mail of the accountable person or team>' under agent",
    "purpose": "add 'purpose: <one sentence>' under agent",
    "permissions": "add a 'permissions:' mapping, e.g. 'github: [repo:read]' (or 'permissions: {}')",
    "execution_mode": "add 'execution_mode:' autonomous, approval_required or on_behalf_of_user",
    "expiry": "add 'expiry: YYYY-MM-DD', the date the grant ends",
    "kill_switch": "add 'kill_switch: /agents/<name>/disable'",
    "actions": "add 'actions:' with the IAM actions, e.g. [s3:GetObject]",
    "resources": "add 'resources:' with the ARNs the actions apply to",
    "repositories": "add 'repositories: [owner/name]', or use the list form for all repositories",
    "scopes": "add 'scopes:' with the GitHub scopes, e.g. [repo:read]",
}
_TYPE_HINTS: dict[str, str] = {
    "": "a mapping with agent, permissions, execution_mode, expiry and kill_switch",
    "agent": "a mapping with name, owner and purpose",
    "permissions": "a mapping of system to scopes, e.g. 'github: [repo:read]'",
    "permissions.github": "a list of scopes or a mapping with repositories and scopes",
    "permissions.aws": "a list of statements, each with actions and resources",
    "permissions.aws[]": "a statement: a mapping with actions and resources",
}
_TYPE_NAMES = {
    "string": "text",
    "array": "a list",
    "object": "a mapping",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


class GrantChecker(Protocol):
    """The part of :class:`agentctl.providers.base.Provider` validation needs."""

    @property
    def name(self) -> str: ...

    def check_grant(self, grant: Any) -> list[GrantFinding]: ...


@dataclass(frozen=True)
class VocabularyChecker:
    """A network-free checker built from a vocabulary function: what validate
    uses when no providers are passed, so it never imports an SDK."""

    name: str
    check: Callable[[Any], list[GrantFinding]]

    def check_grant(self, grant: Any) -> list[GrantFinding]:
        return self.check(grant)


DEFAULT_CHECKERS: Mapping[str, GrantChecker] = {
    "github": VocabularyChecker("github", check_github_grant),
    "aws": VocabularyChecker("aws", check_aws_grant),
}


@dataclass(frozen=True)
class ValidationReport:
    """What validation found across all files.

    ``contracts``: valid contracts, none expired. ``expired``: contracts past
    their expiry (each also has an ``expired`` problem), for apply to disable.
    ``files``: every file read, in order.
    """

    contracts: tuple[Contract, ...]
    problems: tuple[Problem, ...]
    files: tuple[str, ...]
    expired: tuple[Contract, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)

    @property
    def notes(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.INFO)

    @property
    def ok(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------- schema


def load_schema() -> dict[str, Any]:
    """The contract JSON Schema: package data when installed (the wheel ships it
    as ``agentctl/schemas/``), else the repository's ``schemas/`` directory."""
    packaged = resources.files("agentctl").joinpath("schemas", SCHEMA_FILE)
    if packaged.is_file():
        text = packaged.read_text(encoding="utf-8")
    else:
        text = (Path(__file__).resolve().parents[1] / "schemas" / SCHEMA_FILE).read_text(
            encoding="utf-8"
        )
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def contract_validator() -> jsonschema.Draft202012Validator:
    # Compiled once per process; check_schema runs in the test-suite, not here.
    return jsonschema.Draft202012Validator(load_schema())


# ---------------------------------------------------------------------- internals


@dataclass
class _Issue:
    """A problem before it is located: ``path`` inside the document; ``key``
    points at the key rather than its value; ``mark`` overrides the lookup."""

    path: tuple[str | int, ...]
    code: str
    message: str
    severity: Severity = Severity.ERROR
    key: bool = False
    mark: tuple[int, int] | None = None
    suggests: str | None = None  # the key an unknown key probably meant


class _Abort(Exception):
    """Stop building a document that must be refused as a whole."""

    def __init__(self, issue: _Issue) -> None:
        super().__init__(issue.code)
        self.issue = issue


@dataclass
class _FileResult:
    file: str
    problems: list[Problem]
    contract: Contract | None = None
    name: str | None = None
    name_position: tuple[int, int] = (0, 0)
    omitted: int = 0  # problems beyond MAX_PROBLEMS_PER_FILE, not located or shown


@dataclass
class _Options:
    today: date
    max_lifetime_days: int
    strict: bool
    checkers: Mapping[str, GrantChecker]


def format_path(path: Iterable[str | int]) -> str:
    """``("permissions", "github", 1)`` -> ``permissions.github[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part[:60])}]"
    return out


def _where(path: Sequence[str | int]) -> str:
    return format_path(path) or "the contract"


def _show(value: Any, limit: int = 80) -> str:
    """A value quoted for a message: repr escapes control and format characters,
    so hostile content cannot drive the terminal; long values are cut."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text[:limit] + ("…" if len(text) > limit else "")


def _did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word[:100].lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[close[0]] if close else None


def _location(path: Sequence[str | int]) -> str:
    """The section a mapping at ``path`` is, in :data:`_KEY_HOME`'s terms."""
    if len(path) == 3 and path[:2] == ("permissions", "aws") and isinstance(path[2], int):
        return "permissions.aws[]"
    return ".".join(str(p) for p in path)


def _describe_location(location: str) -> str:
    if location == "":
        return "at the top level of the contract"
    if location == "permissions.aws[]":
        return "in an AWS statement under permissions.aws"
    return f"under {location}"


def _type_of(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


# ------------------------------------------------------------------ YAML -> values


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Plain values from composed YAML nodes, refusing what contracts must not use."""

    def __init__(self) -> None:
        self.issues: list[_Issue] = []
        self._seen: set[int] = set()
        self._nodes = 0

    def _visit(self, node: Node, path: tuple[str | int, ...], depth: int) -> None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Abort(
                _Issue(
                    path,
                    "too-many-nodes",
                    f"more than {MAX_NODES} YAML nodes: this is not a contract",
                    mark=_mark(node),
                )
            )
        if depth > MAX_DEPTH:
            raise _Abort(
                _Issue(
                    path,
                    "too-deep",
                    f"nested deeper than {MAX_DEPTH} levels: this is not a contract",
                    mark=_mark(node),
                )
            )
        # libyaml composes an alias as the very node its anchor names: a node
        # met twice is an alias. Refusing it here is what keeps a "billion
        # laughs" document from ever being expanded.
        if id(node) in self._seen:
            raise _Abort(
                _Issue(
                    path,
                    "yaml-alias-not-allowed",
                    "YAML anchors and aliases (&name, *name) are not allowed in contracts: write each value out",
                )
            )
        self._seen.add(id(node))

    def build(self, node: Node, path: tuple[str | int, ...] = (), depth: int = 0) -> Any:
        self._visit(node, path, depth)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            self._check_tag(node, _SEQ, path)
            return [self.build(child, (*path, i), depth + 1) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            self._check_tag(node, _MAP, path)
            return self._mapping(node, path, depth)
        raise AssertionError(
            f"unexpected YAML node {type(node).__name__}"
        )  # composer yields only these

    def _check_tag(self, node: Node, expected: str, path: tuple[str | int, ...]) -> None:
        if node.tag != expected:
            self.issues.append(
                _Issue(
                    path,
                    "yaml-tag-not-allowed",
                    f"YAML tag {_show(node.tag)} is not allowed in contracts: remove it",
                    mark=_mark(node),
                )
            )

    def _scalar(self, node: ScalarNode, path: tuple[str | int, ...]) -> Any:
        tag, text = node.tag, node.value
        if tag in (_STR, _VALUE):
            return text
        if tag == _NULL:
            return None
        if tag == _TIMESTAMP:
            return text  # kept as written; `expiry` is parsed strictly later
        try:
            if tag == _BOOL:
                return _SCALAR_CONSTRUCTOR.construct_yaml_bool(node)
            if tag == _INT:
                return _SCALAR_CONSTRUCTOR.construct_yaml_int(node)
            if tag == _FLOAT:
                return _SCALAR_CONSTRUCTOR.construct_yaml_float(node)
        except ValueError:
            # An integer beyond Python's digit limit is still a number, not text.
            try:
                return float(text.replace("_", ""))
            except ValueError:
                return text
        self._check_tag(node, _STR, path)
        return text

    def _mapping(
        self, node: MappingNode, path: tuple[str | int, ...], depth: int
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            self._visit(key_node, path, depth + 1)
            if key_node.tag == _MERGE:
                self.issues.append(
                    _Issue(
                        path,
                        "yaml-merge-not-allowed",
                        "YAML merge keys (<<) are not allowed in contracts: write each key out",
                        mark=_mark(key_node),
                    )
                )
                continue
            if not isinstance(key_node, ScalarNode):
                self.issues.append(
                    _Issue(
                        path,
                        "invalid-key",
                        "keys must be plain words, not lists or mappings",
                        mark=_mark(key_node),
                    )
                )
                continue
            # Keys are taken as written: `on:` stays "on", not YAML 1.1's True.
            key = key_node.value
            if key_node.tag not in (_STR, _NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP, _VALUE):
                self._check_tag(key_node, _STR, path)
            if key in result:
                first = next(
                    k for k, _ in node.value if isinstance(k, ScalarNode) and k.value == key
                )
                self.issues.append(
                    _Issue(
                        (*path, key),
                        "duplicate-key",
                        f"{_show(key)} appears twice in {_where(path)} (first on line "
                        f"{first.start_mark.line + 1}): keep one",
                        mark=_mark(key_node),
                    )
                )
                continue
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result


def _locate(root: Node, path: Sequence[str | int], key: bool) -> tuple[int, int]:
    """1-based line and column of ``path`` in the node tree: the deepest node
    that exists, so a missing key points at the mapping that lacks it."""
    node, key_node = root, None
    for part in path:
        key_node = None
        if isinstance(node, MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if isinstance(k, ScalarNode) and k.value == part:
                    node, key_node = v, k
                    break
            else:
                break
        elif (
            isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value)
        ):
            node = node.value[part]
        else:
            break
    target = key_node if key and key_node is not None else node
    return target.start_mark.line + 1, target.start_mark.column + 1


# ------------------------------------------------------------------- schema issues


def _unknown_key(path: tuple[str | int, ...], key: str, allowed: Iterable[str]) -> _Issue:
    here = _location(path)
    home = _KEY_HOME.get(key)
    if home is not None and home != here:
        return _Issue(
            (*path, key),
            "misplaced-key",
            f"{_show(key)} belongs {_describe_location(home)}, not {_describe_location(here)}: "
            "move it (with everything under it) there",
            key=True,
        )
    allowed = sorted(allowed)
    close = None
    hint = _KEY_HINTS.get(key.lower().replace("_", ""))
    if hint is None:
        close = _did_you_mean(key, allowed)
        hint = (
            f"did you mean {close!r}?"
            if close
            else f"allowed {_describe_location(here)}: {', '.join(allowed)}"
        )
    return _Issue(
        (*path, key),
        "unknown-key",
        f"unknown key {_show(key)} {_describe_location(here)}: {hint}",
        key=True,
        suggests=close,
    )


def _schema_issue(error: jsonschema.ValidationError) -> list[_Issue]:
    path = tuple(error.absolute_path)
    where = _where(path)
    # jsonschema types these loosely; for a given keyword their shape is known.
    kind: Any = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if "propertyNames" in error.absolute_schema_path:
        return [
            _Issue(
                (*path, str(instance)),
                "invalid-key",
                f"system name {_show(instance)} under {where} must be lowercase letters, digits, '_' or '-'",
                key=True,
            )
        ]
    if kind == "additionalProperties":
        allowed = schema.get("properties", {})
        return [_unknown_key(path, k, allowed) for k in instance if k not in allowed]
    if kind == "required":
        # The path names the missing key; it is located at the mapping lacking it.
        return [
            _Issue(
                (*path, k),
                "missing-key",
                f"{_show(k)} is missing {_describe_location(_location(path))}: {_MISSING_HINTS.get(k, 'add it')}",
            )
            for k in value
            if k not in instance
        ]
    if kind == "type":
        expected = _TYPE_HINTS.get(_location(path)) or " or ".join(
            _TYPE_NAMES.get(t, t) for t in ([value] if isinstance(value, str) else value)
        )
        hint = ""
        if value == "array" and isinstance(instance, str):
            shown = "".join(c for c in instance[:40] if c.isprintable())
            hint = f" (write a YAML list: '- {shown}' on its own line, or [{shown}])"
        return [
            _Issue(
                path, "wrong-type", f"{where} must be {expected}, not {_type_of(instance)}{hint}"
            )
        ]
    if kind == "enum":
        options = ", ".join(str(v) for v in value)
        close = (
            _did_you_mean(str(instance), [str(v) for v in value])
            if isinstance(instance, str)
            else None
        )
        hint = f"did you mean {close!r}? " if close else ""
        return [
            _Issue(
                path, "invalid-enum", f"{where} is {_show(instance)}: {hint}use one of {options}"
            )
        ]
    if kind in ("minLength", "minItems", "minProperties"):
        return [
            _Issue(path, "invalid-value", f"{where} must not be empty: fill it in, or remove it")
        ]
    if kind in ("maxLength", "maxItems", "maxProperties"):
        return [
            _Issue(
                path,
                "invalid-value",
                f"{where} is too long: at most {value} {'characters' if kind == 'maxLength' else 'entries'}",
            )
        ]
    if kind == "pattern":
        return [
            _Issue(
                path,
                "invalid-value",
                f"{where} {_show(instance)} does not have the required form {value}",
            )
        ]
    return [_Issue(path, "invalid-value", f"{where}: {error.message[:200]}")]


# ---------------------------------------------------------------- semantic checks


def _unsafe_char(text: str, allow_whitespace: bool) -> tuple[int, str] | None:
    if text.isascii() and text.isprintable():  # the common case, decided in C
        return None
    for index, char in enumerate(text):
        if allow_whitespace and char in "\t\n":
            continue
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            return index, char
    return None


def _describe_char(char: str) -> str:
    # Control characters have no Unicode names; say what they are instead.
    name = (
        unicodedata.name(char, "")
        or f"({unicodedata.category(char)}: a control or unassigned character)"
    )
    return f"U+{ord(char):04X} {name}"


def _name_suggestion(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:NAME_MAX_LENGTH].rstrip("-")
    return f": e.g. {slug!r}" if _NAME.fullmatch(slug) and len(slug) >= NAME_MIN_LENGTH else ""


def _check_name(name: str) -> _Issue | None:
    path = ("agent", "name")
    unsafe = _unsafe_char(name, allow_whitespace=False)
    if unsafe:
        return _Issue(
            path,
            "name-control-char",
            f"agent.name contains the invisible/control character {_describe_char(unsafe[1])} at position "
            f"{unsafe[0] + 1}: names may only use a-z, 0-9 and '-'",
        )
    if not name.isascii():
        index, char = next((i, c) for i, c in enumerate(name) if not c.isascii())
        return _Issue(
            path,
            "name-not-ascii",
            f"agent.name {_show(name)} contains {_describe_char(char)} at position {index + 1}, which may look "
            "like a Latin letter but is not one: names may only use a-z, 0-9 and '-'",
        )
    reason = None
    if len(name) < NAME_MIN_LENGTH:
        reason = f"is too short: at least {NAME_MIN_LENGTH} characters"
    elif any(c.isupper() for c in name):
        reason = "must be lowercase"
    elif any(c in name for c in "/\\."):
        reason = "must not contain '/', '\\' or '.': names become role, App and file names"
    elif not name[0].isalpha():
        reason = "must start with a letter"
    elif name.endswith("-"):
        reason = "must not end with '-'"
    elif "--" in name:
        reason = "must not contain '--'"
    elif not _NAME.fullmatch(name):
        reason = "may only use a-z, 0-9 and single '-'"
    if reason:
        return _Issue(
            path, "invalid-name", f"agent.name {_show(name)} {reason}{_name_suggestion(name)}"
        )
    if len(name) > NAME_MAX_LENGTH:
        return _Issue(
            path,
            "name-too-long",
            f"agent.name is {len(name)} characters; at most {NAME_MAX_LENGTH} fit every provider: GitHub App "
            f"names are limited to {GITHUB_APP_NAME_MAX} characters (the IAM role {IAM_ROLE_PREFIX}<name> to "
            f"{IAM_ROLE_NAME_MAX}). Shorten it",
        )
    if name in RESERVED_NAMES:
        return _Issue(
            path,
            "reserved-name",
            f"agent.name {name!r} is reserved for agentctl's own identities: choose a name that says what the agent does",
        )
    return None


def _normalised_name(name: str) -> str:
    # What counts as "the same name": case, compatibility forms and '_' vs '-'
    # must not let two agents pass as different.
    return unicodedata.normalize("NFKC", name).casefold().replace("_", "-")


def _check_owner(owner: str) -> _Issue | None:
    if len(owner) <= 254 and owner.isascii() and _EMAIL.fullmatch(owner):
        return None
    return _Issue(
        ("agent", "owner"),
        "invalid-owner",
        f"agent.owner {_show(owner)} is not an e-mail address: write the e-mail of the person or team "
        "accountable for this agent, e.g. platform-team@company.com",
    )


def _parse_expiry(value: Any, today: date) -> tuple[date | None, _Issue | None]:
    path = ("expiry",)
    example = (today + timedelta(days=90)).isoformat()
    if not isinstance(value, str):
        what = "empty" if value is None else _show(value)
        return None, _Issue(
            path,
            "invalid-date",
            f"expiry is {what}: write the date the grant ends as YYYY-MM-DD, e.g. {example}",
        )
    exact = _ISO_DATE.fullmatch(value)
    if not exact:
        loose = _LOOSE_DATE.match(value)
        if loose and loose.end() < len(value) and value[loose.end()] in "Tt \t":
            hint = f"write just the date, e.g. {value[: loose.end()]}"
        elif loose and loose.end() == len(value):
            y, m, d = (int(g) for g in loose.groups())
            hint = f"write it as YYYY-MM-DD: {y:04d}-{m:02d}-{d:02d}"
        else:
            hint = f"write YYYY-MM-DD, e.g. {example}"
        return None, _Issue(path, "invalid-date", f"expiry {_show(value)} is not a date: {hint}")
    year, month, day = (int(g) for g in exact.groups())
    try:
        return date(year, month, day), None
    except ValueError:
        if 1 <= month <= 12 and year >= 1:
            days = calendar.monthrange(year, month)[1]
            why = f"{calendar.month_name[month]} {year} has {days} days"
        else:
            why = "there is no such month" if not 1 <= month <= 12 else "there is no year 0"
        return None, _Issue(
            path,
            "invalid-date",
            f"expiry {value} is not a real date ({why}): write a real date, e.g. {example}",
        )


def _check_expiry(expiry: date, today: date, max_days: int) -> _Issue | None:
    latest = today + timedelta(days=max_days)
    if expiry <= today:
        return _Issue(
            ("expiry",),
            "expired",
            f"expired on {expiry.isoformat()}: apply will disable this agent. To renew, set a new expiry "
            f"(at most {latest.isoformat()}) after reviewing its permissions; otherwise delete the contract",
        )
    if expiry > latest:
        return _Issue(
            ("expiry",),
            "lifetime-too-long",
            f"expiry {expiry.isoformat()} is {(expiry - today).days} days away; the maximum lifetime is "
            f"{max_days} days (until {latest.isoformat()}): set an earlier expiry and renew it when it comes "
            "(or raise max_lifetime_days in agentctl.yaml)",
        )
    return None


def _duplicate_items(value: Any, path: tuple[str | int, ...]) -> list[_Issue]:
    """Scopes/actions listed twice: harmless to grant, but a sign of a mistake."""
    issues: list[_Issue] = []
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value) and len(set(value)) == len(value):
            return issues  # the common case: distinct strings
        first: dict[str, int] = {}
        for index, item in enumerate(value):
            if isinstance(item, str):
                if item in first:
                    issues.append(
                        _Issue(
                            (*path, index),
                            "duplicate-item",
                            f"{_show(item)} is listed twice in {_where(path)} (also item {first[item] + 1}): remove one",
                        )
                    )
                else:
                    first[item] = index
            else:
                issues += _duplicate_items(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            issues += _duplicate_items(item, (*path, key))
    return issues


@lru_cache(maxsize=256)
def _close_system(system: str, known: tuple[str, ...]) -> str | None:
    # Cached: every contract declaring e.g. `jira` asks the same question.
    return _did_you_mean(system, known, cutoff=0.75)


def _check_permissions(
    permissions: dict[str, Any],
    checkers: Mapping[str, GrantChecker],
    invalid: set[tuple[str | int, ...]],
) -> list[_Issue]:
    issues: list[_Issue] = []
    for system, grant in permissions.items():
        path = ("permissions", system)
        home = _KEY_HOME.get(system)
        if home is not None and home != "permissions":
            issues.append(_unknown_key(("permissions",), system, ()))
            continue
        issues += _duplicate_items(grant, path)
        checker = checkers.get(system)
        if checker is None:
            close = _close_system(system, tuple(checkers))
            if close:
                issues.append(
                    _Issue(
                        path,
                        "unknown-system",
                        f"no provider is called {_show(system)}: did you mean {close!r}?",
                        key=True,
                    )
                )
            else:
                issues.append(
                    _Issue(
                        path,
                        "not-enforced",
                        f"{_show(system)} is declared, not enforced: no provider for it is installed, so agentctl "
                        "records these scopes but cannot grant or revoke them",
                        Severity.INFO,
                        key=True,
                    )
                )
            continue
        if any(p[: len(path)] == path for p in invalid):
            continue  # fix the shape first; providers get only well-formed grants
        try:
            found = [
                _Issue((*path, *f.path), f.code, f.message, Severity(f.severity))
                for f in checker.check_grant(grant)
            ]
        except Exception as exc:  # a third-party provider's bug must not become a traceback
            issues.append(
                _Issue(
                    path,
                    "provider-check-failed",
                    f"the {system} provider failed to check this grant ({type(exc).__name__}): report it to the provider's authors",
                    key=True,
                )
            )
            continue
        issues += found
    return issues


@dataclass
class _Semantic:
    issues: list[_Issue]
    expiry: date | None = None
    name_ok: bool = False
    # Paths whose schema errors only echo another problem (a kill switch that
    # repeats an invalid name): not reported twice.
    quiet: set[tuple[str | int, ...]] = field(default_factory=set)


def _semantic(
    doc: dict[str, Any], options: _Options, invalid: set[tuple[str | int, ...]]
) -> _Semantic:
    """Checks beyond the schema."""
    issues: list[_Issue] = []
    quiet: set[tuple[str | int, ...]] = set()
    agent = doc.get("agent")
    name_ok = False
    if isinstance(agent, dict):
        name = agent.get("name")
        if isinstance(name, str):
            name_issue = _check_name(name)
            name_ok = name_issue is None
            if name_issue:
                issues.append(name_issue)
        owner = agent.get("owner")
        if isinstance(owner, str):
            owner_issue = _check_owner(owner)
            if owner_issue:
                issues.append(owner_issue)
        purpose = agent.get("purpose")
        unsafe = _unsafe_char(purpose, allow_whitespace=True) if isinstance(purpose, str) else None
        if unsafe:
            issues.append(
                _Issue(
                    ("agent", "purpose"),
                    "control-char",
                    f"agent.purpose contains the invisible/control character {_describe_char(unsafe[1])} at "
                    f"position {unsafe[0] + 1}: remove it",
                )
            )
    permissions = doc.get("permissions")
    if isinstance(permissions, dict):
        issues += _check_permissions(permissions, options.checkers, invalid)
    expiry: date | None = None
    if "expiry" in doc:
        expiry, expiry_issue = _parse_expiry(doc["expiry"], options.today)
        if expiry is not None:
            expiry_issue = _check_expiry(expiry, options.today, options.max_lifetime_days)
        if expiry_issue:
            issues.append(expiry_issue)
    kill_switch = doc.get("kill_switch")
    if (
        isinstance(agent, dict)
        and isinstance(agent.get("name"), str)
        and isinstance(kill_switch, str)
    ):
        expected = f"/agents/{agent['name']}/disable"
        if kill_switch == expected:
            quiet.add(("kill_switch",))
        elif name_ok:
            issues.append(
                _Issue(
                    ("kill_switch",),
                    "kill-switch-mismatch",
                    f"kill_switch {_show(kill_switch)} does not name this agent: use {expected!r}",
                )
            )
    return _Semantic(issues, expiry, name_ok, quiet)


# ----------------------------------------------------------------------- one file


def _file_problem(file: str, code: str, message: str) -> Problem:
    return Problem(file, 0, 0, "", Severity.ERROR, code, message)


def _too_large(file: str) -> Problem:
    return _file_problem(
        file,
        "file-too-large",
        f"larger than {MAX_FILE_BYTES // 1024} KiB: a contract is a few lines; split or fix this file",
    )


def _decode(data: bytes | str, file: str) -> str | Problem:
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            return _too_large(file)
        if b"\x00" in data:
            return _file_problem(
                file,
                "not-text",
                "a binary file (it contains NUL bytes): a contract is UTF-8 YAML text",
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return _file_problem(
                file,
                "not-text",
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): save the file as UTF-8",
            )
    else:
        if len(data) > MAX_FILE_BYTES:
            return _too_large(file)
        if "\x00" in data:
            return _file_problem(
                file,
                "not-text",
                "a binary file (it contains NUL characters): a contract is UTF-8 YAML text",
            )
        text = data.removeprefix("\ufeff")
    if not text.strip():
        return _file_problem(
            file,
            "empty",
            "the file is empty: write a contract (see contracts/pr-review-agent.yaml) or delete it",
        )
    return text


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    row = lines[line - 1] if 0 < line <= len(lines) else ""
    return row[column - 1] if 0 < column <= len(row) else ""


def _yaml_problem(file: str, exc: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = str(getattr(exc, "problem", "") or "")
    context = str(getattr(exc, "context", "") or "")
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml reports a byte offset, pure-Python PyYAML a character index:
        # find the offending character itself instead.
        char = chr(exc.character) if isinstance(exc.character, int) else "?"
        index = text.find(char)
        if index >= 0:
            before = text[:index]
            line, column = before.count("\n") + 1, index - before.rfind("\n")
        code = "control-char"
        message = f"the control character {_describe_char(char)} is not allowed in YAML: remove it"
    elif "nesting depth" in problem:
        code, message = "too-deep", "nested too deeply: this is not a contract"
    elif "single document" in context:
        code = "multiple-documents"
        message = "a second YAML document ('---'): put each contract in its own file"
    elif "alias" in problem or "anchor" in problem:
        code = "yaml-alias-not-allowed"
        message = "YAML anchors and aliases (&name, *name) are not allowed in contracts: write each value out"
    elif "tab" in problem or _char_at(text, line, column) == "\t":
        code, message = "yaml-syntax", "a tab character: YAML indentation must use spaces, not tabs"
    else:
        detail = f"{context} {problem}".strip() if context else problem
        code = "yaml-syntax"
        message = (
            f"not valid YAML: {detail or 'syntax error'}. Check the indentation, and quote values "
            "that contain ': ', ' #', or start with a special character"
        )
    return Problem(file, line, column, "", Severity.ERROR, code, message)


def _first_alias(text: str) -> tuple[int, int] | None:
    """Where the first ``*alias`` is: the composed node only knows its anchor."""
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
            return event.start_mark.line + 1, event.start_mark.column + 1
    return None


def _locate_issues(issues: list[_Issue], root: Node | None, file: str) -> list[Problem]:
    problems = []
    for issue in issues:
        if issue.mark is not None:
            line, column = issue.mark
        elif root is not None and issue.code == "missing-key":
            # Point at the key of the mapping that lacks it ("agent:"), not its first child.
            line, column = _locate(root, issue.path[:-1], key=True)
        elif root is not None:
            line, column = _locate(root, issue.path, issue.key)
        else:
            line, column = 1, 1
        problems.append(
            Problem(
                file,
                line,
                column,
                format_path(issue.path),
                issue.severity,
                issue.code,
                issue.message,
            )
        )
    return problems


def _build_contract(doc: dict[str, Any], semantic: _Semantic, file: str) -> Contract | None:
    """The contract, whenever its fields have usable values — even with other
    problems, so that an expired contract still reaches apply to be disabled."""
    agent = doc.get("agent")
    mode = doc.get("execution_mode")
    if not (
        semantic.name_ok
        and semantic.expiry is not None
        and isinstance(agent, dict)
        and isinstance(agent.get("owner"), str)
        and isinstance(agent.get("purpose"), str)
        and isinstance(mode, str)
        and mode in _EXECUTION_MODES
        and isinstance(doc.get("kill_switch"), str)
        and isinstance(doc.get("permissions"), dict)
    ):
        return None
    return Contract(
        name=agent["name"],
        owner=agent["owner"],
        purpose=agent["purpose"],
        execution_mode=ExecutionMode(mode),
        expiry=semantic.expiry,
        kill_switch=doc["kill_switch"],
        permissions=doc["permissions"],
        source=file,
    )


def _load_one(data: bytes | str, file: str, options: _Options) -> _FileResult:
    text = _decode(data, file)
    if isinstance(text, Problem):
        return _FileResult(file, [text])
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        return _FileResult(file, [_yaml_problem(file, exc, text)])
    except RecursionError:  # only the pure-Python composer recurses; libyaml caps depth itself
        message = "nested too deeply: this is not a contract"
        return _FileResult(file, [Problem(file, 1, 1, "", Severity.ERROR, "too-deep", message)])
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL and not root.value):
        return _FileResult(
            file,
            [
                _file_problem(
                    file,
                    "empty",
                    "the file holds no contract (only comments or '---'): write one or delete it",
                )
            ],
        )
    builder = _Builder()
    try:
        doc = builder.build(root)
    except _Abort as abort:
        if abort.issue.code == "yaml-alias-not-allowed":
            abort.issue.mark = _first_alias(text)
        return _FileResult(file, _locate_issues([*builder.issues, abort.issue], root, file))
    issues = builder.issues
    if not isinstance(doc, dict):
        issues.append(
            _Issue((), "wrong-type", f"a contract must be {_TYPE_HINTS['']}, not {_type_of(doc)}")
        )
        return _FileResult(file, _locate_issues(issues, root, file))

    schema_issues: list[_Issue] = []
    for error in contract_validator().iter_errors(doc):
        schema_issues += _schema_issue(error)
    invalid = {issue.path for issue in schema_issues}
    semantic = _semantic(doc, options, invalid)
    issues += _merge(schema_issues, semantic.issues, semantic.quiet)

    result = _FileResult(file, [], contract=_build_contract(doc, semantic, file))
    agent = doc.get("agent")
    if isinstance(agent, dict) and isinstance(agent.get("name"), str):
        result.name = agent["name"]
        result.name_position = _locate(root, ("agent", "name"), key=False)
    # Cap before locating: a hostile file can produce thousands of issues, and
    # each lookup walks the node tree.
    result.omitted = max(0, len(issues) - MAX_PROBLEMS_PER_FILE)
    result.problems = _locate_issues(issues[:MAX_PROBLEMS_PER_FILE], root, file)
    return result


# Semantic codes that say precisely what the schema's generic error at the same
# path says vaguely ("does not have the required form ^[a-z]...").
_REPLACES_SCHEMA = frozenset(
    {
        "invalid-name",
        "name-not-ascii",
        "name-control-char",
        "name-too-long",
        "invalid-owner",
        "invalid-date",
        "kill-switch-mismatch",
        "control-char",
        "misplaced-key",
    }
)


def _merge(
    schema_issues: list[_Issue], semantic: list[_Issue], quiet: set[tuple[str | int, ...]]
) -> list[_Issue]:
    """Schema and semantic issues without repeats: a specific semantic issue
    replaces the schema's generic one at the same path; a key that is misplaced,
    or misspelt as an unknown key, is not also reported missing."""
    specific = quiet | {issue.path for issue in semantic if issue.code in _REPLACES_SCHEMA}
    everything = [*schema_issues, *semantic]
    misplaced = {issue.path[-1] for issue in everything if issue.code == "misplaced-key"}
    meant = {(*issue.path[:-1], issue.suggests) for issue in everything if issue.suggests}
    merged: list[_Issue] = []
    seen: set[tuple[tuple[str | int, ...], str, str]] = set()
    for issue in schema_issues:
        if issue.path in specific and issue.code != "missing-key":
            continue
        if issue.code == "missing-key" and (issue.path[-1] in misplaced or issue.path in meant):
            continue
        signature = (issue.path, issue.code, issue.message)
        if signature not in seen:
            seen.add(signature)
            merged.append(issue)
    return merged + semantic


# -------------------------------------------------------------------------- files


def _read(path: Path) -> bytes | Problem:
    file = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if path.is_symlink():
            return _file_problem(
                file, "unreadable", "a broken symbolic link: point it at a contract or remove it"
            )
        return _file_problem(file, "not-found", "no such file or directory: check the path")
    except OSError as exc:
        return _file_problem(
            file,
            "unreadable",
            f"cannot be read ({exc.strerror or type(exc).__name__}): check its permissions",
        )
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(info.st_mode)
                else "not a regular file (a FIFO, socket or device)"
            )
            return _file_problem(file, "unreadable", f"{kind}: a contract is a regular YAML file")
        if info.st_size > MAX_FILE_BYTES:
            return _too_large(file)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        return _file_problem(
            file, "unreadable", f"cannot be read ({exc.strerror or type(exc).__name__})"
        )
    finally:
        os.close(fd)


def _unlistable(error: OSError) -> Problem:
    return _file_problem(
        str(error.filename),
        "unreadable",
        f"cannot list this directory ({error.strerror}): check its permissions",
    )


def discover(paths: Sequence[Path | str]) -> tuple[list[Path], list[Problem]]:
    """Files to validate: files as given, directories searched recursively for
    ``*.yaml``/``*.yml`` (hidden directories skipped, symlinked ones not followed)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            files.append(path)  # a missing or odd path is reported when read
            continue
        found: list[Path] = []
        for folder, dirs, names in os.walk(
            path, onerror=lambda error: problems.append(_unlistable(error))
        ):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [
                Path(folder, n) for n in sorted(names) if n.lower().endswith((".yaml", ".yml"))
            ]
        if not found:
            problems.append(
                _file_problem(
                    str(path),
                    "no-contracts",
                    "no *.yaml or *.yml files in this directory: check the path",
                )
            )
        files += found
    unique = list(dict.fromkeys(files))
    return unique, problems


def _finish(
    results: list[_FileResult], extra: list[Problem], options: _Options
) -> ValidationReport:
    # Names must be unique across all files, also after normalisation.
    by_name: dict[str, list[_FileResult]] = {}
    for result in results:
        if result.name is not None:
            by_name.setdefault(_normalised_name(result.name), []).append(result)
    for group in by_name.values():
        for result in group if len(group) > 1 else ():
            other = next(r for r in group if r is not result)
            line, column = result.name_position
            result.problems.append(
                Problem(
                    result.file,
                    line,
                    column,
                    "agent.name",
                    Severity.ERROR,
                    "duplicate-name",
                    f"agent name {_show(result.name)} is also used by {other.file}:{other.name_position[0]} "
                    f"({_show(other.name)}): names must be unique (ignoring case); rename one",
                )
            )
    problems: list[Problem] = list(extra)
    contracts: list[Contract] = []
    expired: list[Contract] = []
    for result in results:
        found = sorted(result.problems, key=lambda p: (p.line, p.column))
        if options.strict:
            found = [
                replace(p, severity=Severity.ERROR) if p.severity is Severity.WARNING else p
                for p in found
            ]
        if result.omitted:
            found.append(
                Problem(
                    result.file,
                    0,
                    0,
                    "",
                    Severity.INFO,
                    "too-many-problems",
                    f"{result.omitted} more problems not shown: fix these first",
                )
            )
        problems += found
        contract = result.contract
        if contract is None:
            continue
        if contract.is_expired(options.today):
            expired.append(contract)
        elif not any(p.severity is Severity.ERROR for p in found):
            contracts.append(contract)
    return ValidationReport(
        contracts=tuple(contracts),
        problems=tuple(problems),
        files=tuple(r.file for r in results),
        expired=tuple(expired),
    )


def _options(
    today: date, max_lifetime_days: int, strict: bool, providers: Mapping[str, GrantChecker] | None
) -> _Options:
    return _Options(
        today, max_lifetime_days, strict, DEFAULT_CHECKERS if providers is None else providers
    )


def load_contract_text(
    text: bytes | str,
    file: str = "<contract>",
    *,
    today: date,
    max_lifetime_days: int = 365,
    strict: bool = False,
    providers: Mapping[str, GrantChecker] | None = None,
) -> ValidationReport:
    """Validate one document given as bytes or text (``file`` names it in problems)."""
    options = _options(today, max_lifetime_days, strict, providers)
    return _finish([_load_one(text, file, options)], [], options)


def load_contracts(
    paths: Sequence[Path | str],
    *,
    today: date,
    max_lifetime_days: int = 365,
    strict: bool = False,
    providers: Mapping[str, GrantChecker] | None = None,
) -> ValidationReport:
    """Validate contract files and directories (see :func:`discover`).

    ``today`` is passed in (never read from a clock here) so that expiry is
    judged against the caller's notion of now. ``providers`` maps a system to
    its checker; None uses the built-in GitHub and AWS vocabularies.
    """
    options = _options(today, max_lifetime_days, strict, providers)
    files, problems = discover(paths)
    results: list[_FileResult] = []
    for path in files:
        data = _read(path)
        results.append(
            _FileResult(str(path), [data])
            if isinstance(data, Problem)
            else _load_one(data, str(path), options)
        )
    return _finish(results, problems, options)
