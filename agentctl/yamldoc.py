"""Positioned YAML: plain values from YAML text, refusing what a hand-written
document must not use, and the line/column of any path in it.

Used for contracts and for agentctl.yaml alike. Composing builds nodes that
carry line/column marks and does *no* construction, so nothing of the document
is executed or expanded; :class:`Builder` then builds plain JSON-compatible
values from the nodes itself: duplicate keys, merge keys, non-standard tags and
(unless allowed) aliases are refused, dates are kept as the text written, and
depth and node count are bounded. :func:`locate` finds a path's position only
when a problem needs it, so a valid document pays nothing for positions.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agentctl.model import JsonValue, Severity

# A contract is at most 6 levels deep (permissions.aws[0].actions[0]); anything
# far deeper is an attack on the loader, not a document.
MAX_DEPTH = 32
MAX_NODES = 20_000

YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (f"{_TAG}{t}" for t in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _SEQ, _MAP, _MERGE, _VALUE = (
    f"{_TAG}{t}" for t in ("timestamp", "seq", "map", "merge", "value")
)
_SCALAR_CONSTRUCTOR = SafeConstructor()
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass
class Issue:
    """A problem before it is located: ``path`` inside the document; ``key``
    points at the key rather than its value; ``mark`` overrides the lookup."""

    path: tuple[str | int, ...]
    code: str
    message: str
    severity: Severity = Severity.ERROR
    key: bool = False
    mark: tuple[int, int] | None = None
    suggests: str | None = None  # the key an unknown key probably meant


class Abort(Exception):
    """Stop building a document that must be refused as a whole."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.code)
        self.issue = issue


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


def where(path: Sequence[str | int]) -> str:
    return format_path(path) or "the contract"


def show(value: object, limit: int = 80) -> str:
    """A value quoted for a message: repr escapes control and format characters,
    so hostile content cannot drive the terminal; long values are cut."""
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text[:limit] + ("…" if len(text) > limit else "")


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class Builder:
    """Plain values from composed YAML nodes, refusing what ``documents`` must not use.

    ``aliases`` allows anchors and aliases (agentctl.yaml, which its operator
    writes): an alias is then built again where it is used, and the node bound
    still stops an expansion bomb at its first :data:`MAX_NODES` nodes.
    """

    def __init__(self, documents: str = "contracts", *, aliases: bool = False) -> None:
        self.issues: list[Issue] = []
        self._documents = documents
        self._aliases = aliases
        self._seen: set[int] = set()
        self._nodes = 0

    def _visit(self, node: Node, path: tuple[str | int, ...], depth: int) -> None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise Abort(
                Issue(
                    path,
                    "too-many-nodes",
                    f"more than {MAX_NODES} YAML nodes: this is not {self._one}",
                    mark=_mark(node),
                )
            )
        if depth > MAX_DEPTH:
            raise Abort(
                Issue(
                    path,
                    "too-deep",
                    f"nested deeper than {MAX_DEPTH} levels: this is not {self._one}",
                    mark=_mark(node),
                )
            )
        if self._aliases:
            return
        # libyaml composes an alias as the very node its anchor names: a node
        # met twice is an alias. Refusing it here is what keeps a "billion
        # laughs" document from ever being expanded.
        if id(node) in self._seen:
            raise Abort(
                Issue(
                    path,
                    "yaml-alias-not-allowed",
                    f"YAML anchors and aliases (&name, *name) are not allowed in {self._documents}: "
                    "write each value out",
                )
            )
        self._seen.add(id(node))

    @property
    def _one(self) -> str:
        return "a contract" if self._documents == "contracts" else self._documents

    def build(self, node: Node, path: tuple[str | int, ...] = (), depth: int = 0) -> JsonValue:
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
                Issue(
                    path,
                    "yaml-tag-not-allowed",
                    f"YAML tag {show(node.tag)} is not allowed in {self._documents}: remove it",
                    mark=_mark(node),
                )
            )

    def _scalar(self, node: ScalarNode, path: tuple[str | int, ...]) -> JsonValue:
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
    ) -> dict[str, JsonValue]:
        result: dict[str, JsonValue] = {}
        for key_node, value_node in node.value:
            self._visit(key_node, path, depth + 1)
            if key_node.tag == _MERGE:
                self.issues.append(
                    Issue(
                        path,
                        "yaml-merge-not-allowed",
                        f"YAML merge keys (<<) are not allowed in {self._documents}: "
                        "write each key out",
                        mark=_mark(key_node),
                    )
                )
                continue
            if not isinstance(key_node, ScalarNode):
                self.issues.append(
                    Issue(
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
                    Issue(
                        (*path, key),
                        "duplicate-key",
                        f"{show(key)} appears twice in {where(path)} (first on line "
                        f"{first.start_mark.line + 1}): keep one",
                        mark=_mark(key_node),
                    )
                )
                continue
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result


def compose(text: str) -> Node | None:
    """The node tree of one YAML document (libyaml when available); raises
    ``yaml.YAMLError``, or ``RecursionError`` from the pure-Python composer."""
    node: Node | None = yaml.compose(text, Loader=YAML_LOADER)
    return node


def is_empty(root: Node | None) -> bool:
    """A document with nothing in it (only comments, or ``---``)."""
    return root is None or (isinstance(root, ScalarNode) and root.tag == _NULL and not root.value)


def locate(root: Node, path: Sequence[str | int], key: bool) -> tuple[int, int]:
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


def describe_char(char: str) -> str:
    # Control characters have no Unicode names; say what they are instead.
    name = (
        unicodedata.name(char, "")
        or f"({unicodedata.category(char)}: a control or unassigned character)"
    )
    return f"U+{ord(char):04X} {name}"


def char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    row = lines[line - 1] if 0 < line <= len(lines) else ""
    return row[column - 1] if 0 < column <= len(row) else ""


def first_alias(text: str) -> tuple[int, int] | None:
    """Where the first ``*alias`` is: the composed node only knows its anchor."""
    for event in yaml.parse(text, Loader=YAML_LOADER):
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
            return event.start_mark.line + 1, event.start_mark.column + 1
    return None
