"""The README's contract reference, generated from the JSON Schema.

The schema is the single source of truth for the contract's shape; the README
section between the ``contract-reference`` markers is this function's output,
and a test fails when they differ (`python -m agentctl.reference --write`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- contract-reference:begin (generated from the schema: python -m agentctl.reference --write) -->"
END = "<!-- contract-reference:end -->"


def load_schema() -> dict[str, Any]:
    from agentctl.contract import load_schema as load_contract_schema

    return load_contract_schema()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {
            **schema["$defs"][ref.split("/")[-1]],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def _type_of(schema: dict[str, Any], node: dict[str, Any]) -> str:
    node = _resolve(schema, node)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type_of(schema, n) for n in node.get("oneOf", node.get("anyOf", [])))
    kind = node.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(schema, node.get('items', {}))}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if node.get("format"):
        return f"{kind} ({node['format']})"
    return str(kind)


def _rows(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[str]:
    node = _resolve(schema, node)
    rows = []
    required = set(node.get("required", []))
    for key, child in node.get("properties", {}).items():
        child = _resolve(schema, child)
        path = f"{prefix}.{key}" if prefix else key
        description = " ".join(str(child.get("description", "")).split()).replace("|", "\\|")
        rows.append(
            f"| `{path}` | {_type_of(schema, child)} | {'yes' if key in required else 'no'} | {description} |"
        )
        if child.get("type") == "object" and "properties" in child:
            rows.extend(_rows(schema, child, path))
        # if/then/else is how the schema picks a variant by type (better errors than oneOf).
        branches = [child[k] for k in ("then", "else") if k in child]
        for variant in child.get("oneOf", []) + child.get("anyOf", []) + branches:
            variant = _resolve(schema, variant)
            if variant.get("type") == "object" and "properties" in variant:
                rows.extend(_rows(schema, variant, path))
            items = (
                _resolve(schema, variant.get("items", {})) if variant.get("type") == "array" else {}
            )
            if items.get("type") == "object":
                rows.extend(_rows(schema, items, f"{path}[]"))
        if child.get("type") == "array":
            items = _resolve(schema, child.get("items", {}))
            if items.get("type") == "object":
                rows.extend(_rows(schema, items, f"{path}[]"))
    return rows


def contract_reference() -> str:
    schema = load_schema()
    lines = [
        BEGIN,
        f"Schema: `{schema.get('$id')}` (JSON Schema 2020-12, shipped in the package).",
        "",
        "| key | type | required | meaning |",
        "| --- | --- | --- | --- |",
        *_rows(schema, schema, ""),
        END,
    ]
    return "\n".join(lines)


def replace_section(text: str) -> str:
    start = text.index(BEGIN)
    end = text.index(END) + len(END)
    return text[:start] + contract_reference() + text[end:]


if __name__ == "__main__":
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if "--write" in sys.argv:
        readme.write_text(replace_section(readme.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(contract_reference())
