"""Load and validate access contracts.

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
- permissions: each provider's own codes (its spec's ``check_grant``; the
  vocabulary module of each provider package lists them),
  ``provider-check-failed``, and
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
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import Node

from agentctl.errors import NotFound
from agentctl.model import Contract, ExecutionMode, JsonValue, Problem, Severity
from agentctl.schema import (
    CONTRACT_SCHEMA_FILE,
    CONTRACT_SCHEMA_ID,
    NAME_MIN_LENGTH,
    SchemaGuide,
    contract_schema,
    location,
    name_limit,
    schema_guide,
)
from agentctl.suggest import did_you_mean
from agentctl.untrusted_files import FileRefused, read_untrusted, wide_encoding
from agentctl.yamldoc import (
    Abort,
    Builder,
    Issue,
    char_at,
    compose,
    describe_char,
    first_alias,
    format_path,
    is_empty,
    locate,
    show,
    where,
)

if TYPE_CHECKING:
    import jsonschema

    from agentctl.config import Config
    from agentctl.providers.base import AnySpec

SCHEMA_FILE = CONTRACT_SCHEMA_FILE
SCHEMA_ID = CONTRACT_SCHEMA_ID

MAX_FILE_BYTES = 256 * 1024
MAX_PROBLEMS_PER_FILE = 100
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
# Bidirectional overrides/isolates ("trojan source") are format characters (Cf).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})

_EXECUTION_MODES = frozenset(mode.value for mode in ExecutionMode)


_TYPE_NAMES = {
    "string": "text",
    "array": "a list",
    "object": "a mapping",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
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

    @property
    def blocking(self) -> tuple[Problem, ...]:
        """Errors that stop plan, apply and expiring: every error but "expired"
        (an expired contract is still acted on: apply disables its agent). A
        half-valid folder must not prune agents whose files merely broke."""
        return tuple(p for p in self.errors if p.code != "expired")

    def not_found(self, name: str, path: Path) -> NotFound:
        """No valid contract named ``name`` here (read from ``path``): say why, and
        what to run (`github register` and `jira register` name one agent's contract)."""
        if self.blocking:
            # Perhaps it is one of the broken files.
            return NotFound(
                f"no valid contract named {name!r} in {path} ({len(self.blocking)} error(s) there)",
                hint=f"`agentctl validate {path}` shows every contract and what is wrong with it",
            )
        names = sorted(c.name for c in (*self.contracts, *self.expired))
        meant = did_you_mean(name, names)
        return NotFound(
            f"no contract named {name!r} in {path}"
            + (
                f" (did you mean {meant!r}?)"
                if meant
                else f" ({len(names)} other contract(s) there)"
            ),
            hint="pass --contract PATH (the agent's contract file, or the folder holding it)",
        )


# --------------------------------------------------------------------------- schema


def load_schema(specs: Mapping[str, AnySpec] | None = None) -> dict[str, Any]:
    """The contract JSON Schema, assembled from ``specs`` (default: the registered
    providers). ``schemas/agent-contract.schema.json`` is this for the
    providers agentctl ships (a test keeps it current)."""
    return contract_schema(_specs(specs))


def _specs(specs: Mapping[str, AnySpec] | None) -> Mapping[str, AnySpec]:
    if specs is not None:
        return specs
    from agentctl.providers.registry import provider_specs

    return provider_specs()


@dataclass(frozen=True)
class _Compiled:
    """The contract schema compiled for a set of providers, and what names may be."""

    validator: jsonschema.Draft202012Validator
    guide: SchemaGuide
    name_max: int
    name_reasons: tuple[str, ...]


@cache
def _compiled(specs: tuple[AnySpec, ...]) -> _Compiled:
    # Once per process and set of providers; check_schema runs in the test-suite, not here.
    # jsonschema is imported here, not with the module: a no-change apply whose
    # contracts all met the validation cache never needs it (~65 ms).
    import jsonschema

    chosen = {spec.name: spec for spec in specs}
    schema = contract_schema(chosen)
    longest, limits = name_limit(chosen)
    return _Compiled(
        jsonschema.Draft202012Validator(_inline_refs(schema)),
        schema_guide(schema, chosen),
        longest,
        tuple(reason for _, reason in limits),
    )


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``{"$ref": "#/$defs/X"}`` replaced by a copy of X
    (``allOf: [X]`` beside sibling keywords): the same verdicts and errors,
    without jsonschema resolving a reference (a lookup, a new resource and an
    evolved validator) for every grant statement of every contract: ~20 % of
    validating one. A recursive definition keeps its ``$ref``; ``$defs``
    stays for any reference left."""
    defs = schema.get("$defs", {})

    def inline(node: Any, through: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, through) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = (
            ref[len("#/$defs/") :] if isinstance(ref, str) and ref.startswith("#/$defs/") else None
        )
        if name is not None and name in defs and name not in through:
            target = inline(defs[name], (*through, name))
            rest = {k: inline(v, through) for k, v in node.items() if k != "$ref"}
            return {"allOf": [target], **rest} if rest else target
        return {k: v if k == "$defs" else inline(v, through) for k, v in node.items()}

    inlined: dict[str, Any] = inline(schema, ())
    return inlined


def _compile(specs: Mapping[str, AnySpec]) -> _Compiled:
    return _compiled(tuple(specs[name] for name in sorted(specs)))


def contract_validator(
    specs: Mapping[str, AnySpec] | None = None,
) -> jsonschema.Draft202012Validator:
    return _compile(_specs(specs)).validator


def name_max_length(specs: Mapping[str, AnySpec] | None = None) -> int:
    """The longest agent name every provider can carry."""
    return _compile(_specs(specs)).name_max


# ---------------------------------------------------------------------- internals


@dataclass
class _FileResult:
    """One contract file validated: its problems, and its contract when it has one."""

    file: str
    problems: list[Problem]
    contract: Contract | None = None
    name: str | None = None
    name_position: tuple[int, int] = (0, 0)
    omitted: int = 0  # problems beyond MAX_PROBLEMS_PER_FILE, not located or shown


@dataclass
class _Options:
    """What validation judges every file of one run against."""

    today: date
    max_lifetime_days: int
    strict: bool
    specs: Mapping[str, AnySpec]
    config: Config | None

    @cached_property
    def compiled(self) -> _Compiled:
        # On first use: a run whose files all come from the cache compiles nothing.
        return _compile(self.specs)


def _type_of(value: object) -> str:
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


# ------------------------------------------------------------------- schema issues


def _unknown_key(
    path: tuple[str | int, ...], key: str, allowed: Iterable[str], guide: SchemaGuide
) -> Issue:
    here = location(path)
    homes = guide.homes.get(key, frozenset())
    if homes and here not in homes:
        home = " or ".join(guide.describe(h) for h in sorted(homes))
        return Issue(
            (*path, key),
            "misplaced-key",
            f"{show(key)} belongs {home}, not {guide.describe(here)}: "
            "move it (with everything under it) there",
            key=True,
        )
    allowed = sorted(allowed)
    close = None
    hint = guide.unknown.get(key.lower().replace("_", ""))
    if hint is None:
        close = did_you_mean(key, allowed)
        hint = (
            f"did you mean {close!r}?"
            if close
            else f"allowed {guide.describe(here)}: {', '.join(allowed)}"
        )
    return Issue(
        (*path, key),
        "unknown-key",
        f"unknown key {show(key)} {guide.describe(here)}: {hint}",
        key=True,
        suggests=close,
    )


def _schema_issue(error: jsonschema.ValidationError, guide: SchemaGuide) -> list[Issue]:
    path = tuple(error.absolute_path)
    at = where(path)
    # jsonschema types these loosely; for a given keyword their shape is known.
    kind: Any = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if "propertyNames" in error.absolute_schema_path:
        return [
            Issue(
                (*path, str(instance)),
                "invalid-key",
                f"system name {show(instance)} under {at} must be lowercase letters, digits, '_' or '-'",
                key=True,
            )
        ]
    if kind == "additionalProperties":
        allowed = schema.get("properties", {})
        return [_unknown_key(path, k, allowed, guide) for k in instance if k not in allowed]
    if kind == "required":
        # The path names the missing key; it is located at the mapping lacking it.
        return [
            Issue(
                (*path, k),
                "missing-key",
                f"{show(k)} is missing {guide.describe(location(path))}: "
                f"{guide.missing.get(f'{location(path)}.{k}'.lstrip('.'), 'add it')}",
            )
            for k in value
            if k not in instance
        ]
    if kind == "type":
        expected = guide.expected.get(location(path)) or " or ".join(
            _TYPE_NAMES.get(t, t) for t in ([value] if isinstance(value, str) else value)
        )
        hint = ""
        if value == "array" and isinstance(instance, str):
            shown = "".join(c for c in instance[:40] if c.isprintable())
            hint = f" (write a YAML list: '- {shown}' on its own line, or [{shown}])"
        return [
            Issue(path, "wrong-type", f"{at} must be {expected}, not {_type_of(instance)}{hint}")
        ]
    if kind == "enum":
        options = ", ".join(str(v) for v in value)
        close = (
            did_you_mean(str(instance), [str(v) for v in value])
            if isinstance(instance, str)
            else None
        )
        hint = f"did you mean {close!r}? " if close else ""
        return [
            Issue(path, "invalid-enum", f"{at} is {show(instance)}: {hint}use one of {options}")
        ]
    if kind in ("minLength", "minItems", "minProperties"):
        return [Issue(path, "invalid-value", f"{at} must not be empty: fill it in, or remove it")]
    if kind in ("maxLength", "maxItems", "maxProperties"):
        return [
            Issue(
                path,
                "invalid-value",
                f"{at} is too long: at most {value} {'characters' if kind == 'maxLength' else 'entries'}",
            )
        ]
    if kind == "pattern":
        return [
            Issue(
                path,
                "invalid-value",
                f"{at} {show(instance)} does not have the required form {value}",
            )
        ]
    return [Issue(path, "invalid-value", f"{at}: {error.message[:200]}")]


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


def _name_suggestion(name: str, longest: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:longest].rstrip("-")
    return f": e.g. {slug!r}" if _NAME.fullmatch(slug) and len(slug) >= NAME_MIN_LENGTH else ""


def _check_name(name: str, compiled: _Compiled) -> Issue | None:
    path = ("agent", "name")
    unsafe = _unsafe_char(name, allow_whitespace=False)
    if unsafe:
        return Issue(
            path,
            "name-control-char",
            f"agent.name contains the invisible/control character {describe_char(unsafe[1])} at position "
            f"{unsafe[0] + 1}: names may only use a-z, 0-9 and '-'",
        )
    if not name.isascii():
        index, char = next((i, c) for i, c in enumerate(name) if not c.isascii())
        return Issue(
            path,
            "name-not-ascii",
            f"agent.name {show(name)} contains {describe_char(char)} at position {index + 1}, which may look "
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
        return Issue(
            path,
            "invalid-name",
            f"agent.name {show(name)} {reason}{_name_suggestion(name, compiled.name_max)}",
        )
    if len(name) > compiled.name_max:
        first, *others = compiled.name_reasons or ("a DNS label is at most 63 characters",)
        also = f" ({'; '.join(others)})" if others else ""
        return Issue(
            path,
            "name-too-long",
            f"agent.name is {len(name)} characters; at most {compiled.name_max} fit every "
            f"provider: {first}{also}. Shorten it",
        )
    if name in RESERVED_NAMES:
        return Issue(
            path,
            "reserved-name",
            f"agent.name {name!r} is reserved for agentctl's own identities: choose a name that says what the agent does",
        )
    return None


def _normalised_name(name: str) -> str:
    # What counts as "the same name": case, compatibility forms and '_' vs '-'
    # must not let two agents pass as different.
    return unicodedata.normalize("NFKC", name).casefold().replace("_", "-")


def _check_owner(owner: str) -> Issue | None:
    if len(owner) <= 254 and owner.isascii() and _EMAIL.fullmatch(owner):
        return None
    return Issue(
        ("agent", "owner"),
        "invalid-owner",
        f"agent.owner {show(owner)} is not an e-mail address: write the e-mail of the person or team "
        "accountable for this agent, e.g. platform-team@company.com",
    )


def _parse_expiry(value: object, today: date) -> tuple[date | None, Issue | None]:
    path = ("expiry",)
    example = (today + timedelta(days=90)).isoformat()
    if not isinstance(value, str):
        what = "empty" if value is None else show(value)
        return None, Issue(
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
        return None, Issue(path, "invalid-date", f"expiry {show(value)} is not a date: {hint}")
    year, month, day = (int(g) for g in exact.groups())
    try:
        return date(year, month, day), None
    except ValueError:
        if 1 <= month <= 12 and year >= 1:
            days = calendar.monthrange(year, month)[1]
            why = f"{calendar.month_name[month]} {year} has {days} days"
        else:
            why = "there is no such month" if not 1 <= month <= 12 else "there is no year 0"
        return None, Issue(
            path,
            "invalid-date",
            f"expiry {value} is not a real date ({why}): write a real date, e.g. {example}",
        )


def _check_expiry(expiry: date, today: date, max_days: int) -> Issue | None:
    latest = today + timedelta(days=max_days)
    if expiry <= today:
        return Issue(
            ("expiry",),
            "expired",
            f"expired on {expiry.isoformat()}: apply will disable this agent. To renew, set a new expiry "
            f"(at most {latest.isoformat()}) after reviewing its permissions; otherwise delete the contract",
        )
    if expiry > latest:
        return Issue(
            ("expiry",),
            "lifetime-too-long",
            f"expiry {expiry.isoformat()} is {(expiry - today).days} days away; the maximum lifetime is "
            f"{max_days} days (until {latest.isoformat()}): set an earlier expiry and renew it when it comes "
            "(or raise max_lifetime_days in agentctl.yaml)",
        )
    return None


def _duplicate_items(value: object, path: tuple[str | int, ...]) -> list[Issue]:
    """Scopes/actions listed twice: harmless to grant, but a sign of a mistake."""
    issues: list[Issue] = []
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value) and len(set(value)) == len(value):
            return issues  # the common case: distinct strings
        first: dict[str, int] = {}
        for index, item in enumerate(value):
            if isinstance(item, str):
                if item in first:
                    issues.append(
                        Issue(
                            (*path, index),
                            "duplicate-item",
                            f"{show(item)} is listed twice in {where(path)} (also item {first[item] + 1}): remove one",
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
    return did_you_mean(system, known, cutoff=0.75)


def _check_permissions(
    permissions: dict[str, JsonValue],
    options: _Options,
    invalid: set[tuple[str | int, ...]],
    parsed: dict[str, object],
) -> list[Issue]:
    """Each system's grant: unknown systems noted, enforced ones parsed by their
    provider's spec (into ``parsed``) and checked against its vocabulary."""
    issues: list[Issue] = []
    guide = options.compiled.guide
    for system, grant in permissions.items():
        path = ("permissions", system)
        homes = guide.homes.get(system, frozenset())
        if homes and "permissions" not in homes:
            issues.append(_unknown_key(("permissions",), system, (), guide))
            continue
        issues += _duplicate_items(grant, path)
        spec = options.specs.get(system)
        if spec is None:
            close = _close_system(system, tuple(options.specs))
            if close:
                issues.append(
                    Issue(
                        path,
                        "unknown-system",
                        f"no provider is called {show(system)}: did you mean {close!r}?",
                        key=True,
                    )
                )
            else:
                issues.append(
                    Issue(
                        path,
                        "not-enforced",
                        f"{show(system)} is declared, not enforced: no provider for it is installed, so agentctl "
                        "records these scopes but cannot grant or revoke them",
                        Severity.INFO,
                        key=True,
                    )
                )
            continue
        if any(p[: len(path)] == path for p in invalid):
            continue  # fix the shape first; providers get only well-formed grants
        settings = (
            options.config.settings(spec) if options.config is not None else spec.settings_type()
        )
        try:
            value = spec.parse_grant(grant)
            found = [
                Issue((*path, *f.path), f.code, f.message, Severity(f.severity))
                for f in spec.check_grant(value, settings)
            ]
        except Exception as exc:  # a third-party provider's bug must not become a traceback
            issues.append(
                Issue(
                    path,
                    "provider-check-failed",
                    f"the {system} provider failed to check this grant ({type(exc).__name__}): report it to the provider's authors",
                    key=True,
                )
            )
            continue
        parsed[system] = value
        issues += found
    return issues


def _check_name_for_providers(
    name: str, grants: dict[str, object], options: _Options
) -> list[Issue]:
    """Each granting provider's own rules for the agent's name (``check_name``)."""
    issues: list[Issue] = []
    for system in grants:
        spec = options.specs.get(system)
        if spec is None or spec.check_name is None:
            continue
        settings = (
            options.config.settings(spec) if options.config is not None else spec.settings_type()
        )
        try:
            found = spec.check_name(name, grants[system], settings)
        except Exception as exc:  # a third-party provider's bug must not become a traceback
            issues.append(
                Issue(
                    ("agent", "name"),
                    "provider-check-failed",
                    f"the {system} provider failed to check the name ({type(exc).__name__}): "
                    "report it to the provider's authors",
                )
            )
            continue
        issues += [
            Issue(("agent", "name", *f.path), f.code, f.message, Severity(f.severity))
            for f in found
        ]
    return issues


@dataclass
class _Semantic:
    """The checks beyond the schema, and the values they parsed."""

    issues: list[Issue]
    expiry: date | None = None
    name_ok: bool = False
    # system -> its grant as the provider's typed value.
    grants: dict[str, object] = field(default_factory=dict)
    # Paths whose schema errors only echo another problem (a kill switch that
    # repeats an invalid name): not reported twice.
    quiet: set[tuple[str | int, ...]] = field(default_factory=set)


def _semantic(
    doc: dict[str, Any], options: _Options, invalid: set[tuple[str | int, ...]]
) -> _Semantic:
    """Checks beyond the schema."""
    issues: list[Issue] = []
    grants: dict[str, object] = {}
    quiet: set[tuple[str | int, ...]] = set()
    agent = doc.get("agent")
    name_ok = False
    if isinstance(agent, dict):
        name = agent.get("name")
        if isinstance(name, str):
            name_issue = _check_name(name, options.compiled)
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
                Issue(
                    ("agent", "purpose"),
                    "control-char",
                    f"agent.purpose contains the invisible/control character {describe_char(unsafe[1])} at "
                    f"position {unsafe[0] + 1}: remove it",
                )
            )
    permissions = doc.get("permissions")
    if isinstance(permissions, dict):
        issues += _check_permissions(permissions, options, invalid, grants)
        if name_ok and isinstance(agent, dict):
            issues += _check_name_for_providers(str(agent["name"]), grants, options)
    expiry: date | None = None
    if "expiry" in doc:
        expiry, expiry_issue = _parse_expiry(doc["expiry"], options.today)
        if expiry is not None:
            expiry_issue = _check_expiry(expiry, options.today, options.max_lifetime_days)
        if expiry_issue:
            issues.append(expiry_issue)
    if doc.get("execution_mode") == ExecutionMode.APPROVAL_REQUIRED.value and not doc.get(
        "approvers"
    ):
        issues.append(
            Issue(
                ("execution_mode",),
                "missing-approvers",
                "execution_mode is approval_required but the contract names no approvers: add "
                "`approvers:` with the people who may approve its runs, e.g. "
                "[release-lead@company.com]",
            )
        )
    acts_for = doc.get("acts_for")
    for index, pattern in enumerate(acts_for if isinstance(acts_for, list) else ()):
        if isinstance(pattern, str) and not _ACTS_FOR.fullmatch(pattern):
            issues.append(
                Issue(
                    ("acts_for", index),
                    "invalid-acts-for",
                    f"acts_for[{index}] {show(pattern)} is not an e-mail address or pattern: the "
                    "agent acts for people, e.g. '*@company.com' or 'amit@company.com'",
                )
            )
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
                Issue(
                    ("kill_switch",),
                    "kill-switch-mismatch",
                    f"kill_switch {show(kill_switch)} does not name this agent: use {expected!r}",
                )
            )
    return _Semantic(issues, expiry, name_ok, grants, quiet)


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
        encoding = wide_encoding(data)
        if encoding is not None:
            return _file_problem(
                file,
                "not-text",
                f"saved as {encoding}: a contract is UTF-8 YAML text. Save the file as UTF-8 "
                "(e.g. `iconv -f UTF-16 -t UTF-8`, or 'UTF-8' in your editor's save dialog)",
            )
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
        message = f"the control character {describe_char(char)} is not allowed in YAML: remove it"
    elif "nesting depth" in problem:
        code, message = "too-deep", "nested too deeply: this is not a contract"
    elif "single document" in context:
        code = "multiple-documents"
        message = "a second YAML document ('---'): put each contract in its own file"
    elif "alias" in problem or "anchor" in problem:
        code = "yaml-alias-not-allowed"
        message = "YAML anchors and aliases (&name, *name) are not allowed in contracts: write each value out"
    elif "tab" in problem or char_at(text, line, column) == "\t":
        code, message = "yaml-syntax", "a tab character: YAML indentation must use spaces, not tabs"
    else:
        detail = f"{context} {problem}".strip() if context else problem
        code = "yaml-syntax"
        message = (
            f"not valid YAML: {detail or 'syntax error'}. Check the indentation, and quote values "
            "that contain ': ', ' #', or start with a special character"
        )
    return Problem(file, line, column, "", Severity.ERROR, code, message)


def _locate_issues(issues: list[Issue], root: Node | None, file: str) -> list[Problem]:
    problems = []
    for issue in issues:
        if issue.mark is not None:
            line, column = issue.mark
        elif root is not None and issue.code == "missing-key":
            # Point at the key of the mapping that lacks it ("agent:"), not its first child.
            line, column = locate(root, issue.path[:-1], key=True)
        elif root is not None:
            line, column = locate(root, issue.path, issue.key)
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
        grants=semantic.grants,
        approvers=_strings(doc.get("approvers")),
        acts_for=_strings(doc.get("acts_for")),
    )


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _load_one(data: bytes | str, file: str, options: _Options) -> _FileResult:
    text = _decode(data, file)
    if isinstance(text, Problem):
        return _FileResult(file, [text])
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        return _FileResult(file, [_yaml_problem(file, exc, text)])
    except RecursionError:  # only the pure-Python composer recurses; libyaml caps depth itself
        message = "nested too deeply: this is not a contract"
        return _FileResult(file, [Problem(file, 1, 1, "", Severity.ERROR, "too-deep", message)])
    if is_empty(root):
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
    assert root is not None  # is_empty() said so
    builder = Builder()
    try:
        doc = builder.build(root)
    except Abort as abort:
        if abort.issue.code == "yaml-alias-not-allowed":
            abort.issue.mark = first_alias(text)
        return _FileResult(file, _locate_issues([*builder.issues, abort.issue], root, file))
    issues = builder.issues
    if not isinstance(doc, dict):
        issues.append(
            Issue(
                (),
                "wrong-type",
                f"a contract must be {options.compiled.guide.expected['']}, not {_type_of(doc)}",
            )
        )
        return _FileResult(file, _locate_issues(issues, root, file))

    schema_issues: list[Issue] = []
    for error in options.compiled.validator.iter_errors(doc):
        schema_issues += _schema_issue(error, options.compiled.guide)
    stranger = None if issues else _not_a_contract(doc, schema_issues, options)
    if stranger is not None:
        return _FileResult(file, _locate_issues([stranger], root, file))
    invalid = {issue.path for issue in schema_issues}
    semantic = _semantic(doc, options, invalid)
    issues += _merge(schema_issues, semantic.issues, semantic.quiet)

    result = _FileResult(file, [], contract=_build_contract(doc, semantic, file))
    agent = doc.get("agent")
    name = agent.get("name") if isinstance(agent, dict) else None
    if isinstance(name, str):
        result.name = name
        result.name_position = locate(root, ("agent", "name"), key=False)
    # Cap before locating: a hostile file can produce thousands of issues, and
    # each lookup walks the node tree.
    result.omitted = max(0, len(issues) - MAX_PROBLEMS_PER_FILE)
    result.problems = _locate_issues(issues[:MAX_PROBLEMS_PER_FILE], root, file)
    return result


def _not_a_contract(doc: dict[str, Any], issues: list[Issue], options: _Options) -> Issue | None:
    """One problem for a mapping that shares no key with a contract (a password
    file, a CI config): listing each of its keys would copy the file into the
    output, so only its first key is quoted, cut short."""
    schema: Any = options.compiled.validator.schema
    allowed = schema.get("properties", {})
    if not doc or any(str(key) in allowed for key in doc):
        return None
    unknown = {issue.path for issue in issues if issue.code == "unknown-key" and not issue.suggests}
    if any((key,) not in unknown for key in doc):
        return None  # a misspelt or misplaced key: a contract gone wrong, reported key by key
    first = next(iter(doc))
    return Issue(
        (first,),
        "not-a-contract",
        "not an access contract: none of its top-level keys is one of "
        f"{', '.join(sorted(allowed))} (the first is {show(str(first), 24)}). "
        "Is this the right file? Move it out of the contracts folder, or write a contract",
        key=True,
    )


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
        "invalid-acts-for",
    }
)
# An e-mail address, or a glob over them: one @, a domain part, no spaces.
_ACTS_FOR = re.compile(r"^[^\s@]*@[^\s@]+$")


def _merge(
    schema_issues: list[Issue], semantic: list[Issue], quiet: set[tuple[str | int, ...]]
) -> list[Issue]:
    """Schema and semantic issues without repeats: a specific semantic issue
    replaces the schema's generic one at the same path; a key that is misplaced,
    or misspelt as an unknown key, is not also reported missing."""
    specific = quiet | {issue.path for issue in semantic if issue.code in _REPLACES_SCHEMA}
    everything = [*schema_issues, *semantic]
    misplaced = {issue.path[-1] for issue in everything if issue.code == "misplaced-key"}
    meant = {(*issue.path[:-1], issue.suggests) for issue in everything if issue.suggests}
    merged: list[Issue] = []
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


def _read(path: Path, folder: Path | None) -> bytes | Problem:
    """The file's bytes, or why it was refused without being read (see
    :mod:`agentctl.untrusted_files`): a contract's folder comes from a pull request."""
    try:
        return read_untrusted(
            path, limit=MAX_FILE_BYTES, within=folder, expected="a regular YAML file"
        )
    except FileRefused as refused:
        if refused.code == "file-too-large":
            return _too_large(str(path))
        return _file_problem(str(path), refused.code, refused.message)


def _unlistable(error: OSError) -> Problem:
    return _file_problem(
        str(error.filename),
        "unreadable",
        f"cannot list this directory ({error.strerror}): check its permissions",
    )


def discover(paths: Sequence[Path | str]) -> tuple[list[Path], list[Problem]]:
    """Files to validate: files as given, directories searched recursively for
    ``*.yaml``/``*.yml`` (hidden directories skipped, symlinked ones not followed)."""
    found_in, problems = _discover(paths)
    return list(found_in), problems


def _discover(paths: Sequence[Path | str]) -> tuple[dict[Path, Path | None], list[Problem]]:
    # Each file with the folder it must stay inside: the directory it was found
    # under, or None (its own directory) for a file named on the command line.
    files: dict[Path, Path | None] = {}
    problems: list[Problem] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            files.setdefault(path, None)  # a missing or odd path is reported when read
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
        for file in found:
            files.setdefault(file, path)
    return files, problems


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
                    f"agent name {show(result.name)} is also used by {other.file}:{other.name_position[0]} "
                    f"({show(other.name)}): names must be unique (ignoring case); rename one",
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
    today: date,
    max_lifetime_days: int,
    strict: bool,
    providers: Mapping[str, AnySpec] | None,
    config: Config | None,
) -> _Options:
    specs = _specs(providers)
    return _Options(today, max_lifetime_days, strict, specs, config)


def load_contract_text(
    text: bytes | str,
    file: str = "<contract>",
    *,
    today: date,
    max_lifetime_days: int = 365,
    strict: bool = False,
    providers: Mapping[str, AnySpec] | None = None,
    config: Config | None = None,
) -> ValidationReport:
    """Validate one document given as bytes or text (``file`` names it in problems)."""
    options = _options(today, max_lifetime_days, strict, providers, config)
    return _finish([_load_one(text, file, options)], [], options)


def load_contracts(
    paths: Sequence[Path | str],
    *,
    today: date,
    max_lifetime_days: int = 365,
    strict: bool = False,
    providers: Mapping[str, AnySpec] | None = None,
    config: Config | None = None,
    cache_file: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Validate contract files and directories (see :func:`discover`).

    ``today`` is passed in (never read from a clock here) so that expiry is
    judged against the caller's notion of now. ``providers`` maps a system to
    its provider's spec (default: every registered provider); ``config``
    gives the providers' settings to their checks (default: their defaults).
    ``cache_file``: files that validated clean in the same context before are
    not validated again (agentctl.contract_cache; plan and apply use it).
    ``progress`` is called with each file's path as it is taken up.
    """
    options = _options(today, max_lifetime_days, strict, providers, config)
    files, problems = _discover(paths)
    cache = None
    if cache_file is not None:
        from agentctl.contract_cache import ContractCache, context_key

        context = context_key(
            today=today,
            max_lifetime_days=max_lifetime_days,
            strict=strict,
            config=config,
            specs=options.specs,
        )
        cache = ContractCache(cache_file, context)
    results: list[_FileResult] = []
    for path, folder in files.items():
        if progress is not None:
            progress(str(path))
        data = _read(path, folder)
        if isinstance(data, Problem):
            results.append(_FileResult(str(path), [data]))
            continue
        hit = cache.get(str(path), data) if cache is not None else None
        if hit is not None:
            results.append(
                _FileResult(
                    str(path),
                    [],
                    contract=hit.contract,
                    name=hit.contract.name,
                    name_position=hit.name_position,
                )
            )
            continue
        result = _load_one(data, str(path), options)
        clean = result.contract is not None and not result.problems and not result.omitted
        if cache is not None and clean and result.contract is not None:
            cache.put(str(path), data, result.contract, result.name_position)
        results.append(result)
    if cache is not None:
        cache.save()
    return _finish(results, problems, options)
