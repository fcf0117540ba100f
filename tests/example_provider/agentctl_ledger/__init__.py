"""The ledger provider's spec: what agentctl knows of it without importing it."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentctl.model import JsonObject, JsonValue, Severity
from agentctl.providers.base import GrantFinding, NameLimit, ProviderSpec, SchemaHints
from agentctl.suggest import did_you_mean

SCOPES = ("entries:read", "entries:write", "reports:read")


@dataclass(frozen=True)
class LedgerSettings:
    path: str | None = field(
        default=None, metadata={"description": "The ledger file (JSON) of accounts"}
    )


@dataclass(frozen=True)
class LedgerGrant:
    books: tuple[str, ...]
    scopes: tuple[str, ...]


def parse(raw: JsonValue) -> LedgerGrant:
    assert isinstance(raw, dict)  # the schema says so
    books, scopes = raw["books"], raw["scopes"]
    assert isinstance(books, list) and isinstance(scopes, list)
    return LedgerGrant(tuple(map(str, books)), tuple(map(str, scopes)))


def check(grant: LedgerGrant, settings: LedgerSettings) -> list[GrantFinding]:
    findings = []
    for index, scope in enumerate(grant.scopes):
        if scope not in SCOPES:
            close = did_you_mean(scope, SCOPES)
            hint = f"did you mean {close!r}?" if close else f"use one of {', '.join(SCOPES)}"
            findings.append(
                GrantFinding(
                    ("scopes", index), Severity.ERROR, "unknown-scope", f"{scope!r}: {hint}"
                )
            )
    return findings


GRANT_SCHEMA: JsonObject = {
    "description": "Ledger books the agent may use, and how.",
    "type": "object",
    "additionalProperties": False,
    "required": ["books", "scopes"],
    "properties": {
        "books": {
            "description": "Book names.",
            "type": "array",
            "minItems": 1,
            "items": {"description": "A book.", "type": "string"},
        },
        "scopes": {"description": "What the agent may do in them.", "$ref": "#/$defs/scopes"},
    },
}

SPEC: ProviderSpec[LedgerGrant, LedgerSettings] = ProviderSpec(
    name="ledger",
    summary="per-agent accounts in a local ledger file (an example provider)",
    grant_schema=GRANT_SCHEMA,
    parse_grant=parse,
    check_grant=check,
    describe_grant=lambda grant: f"{','.join(grant.scopes)} on {','.join(grant.books)}",
    settings_type=LedgerSettings,
    provider="agentctl_ledger.lifecycle:LedgerProvider",
    hints=SchemaHints(
        missing_key={"books": "add 'books: [name]', the books the agent may use"},
        expected_type={"": "a mapping with books and scopes"},
    ),
    name_limit=NameLimit(40, "ledger account names are at most 40 characters"),
)
