"""The README's contract reference is generated from the schema and current."""

from __future__ import annotations

from pathlib import Path

from agentctl.reference import BEGIN, END, contract_reference, replace_section

README = Path(__file__).resolve().parents[1] / "README.md"


def test_contract_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    assert replace_section(text) == text, "README is stale: python -m agentctl.reference --write"


def test_reference_covers_every_schema_property() -> None:
    reference = contract_reference()
    for key in (
        "agent.name",
        "agent.owner",
        "permissions.aws[].actions",
        "execution_mode",
        "expiry",
        "kill_switch",
        "permissions.github.repositories",
    ):
        assert f"`{key}`" in reference, key
