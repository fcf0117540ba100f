"""The ``aws`` grant: its JSON Schema fragment and the typed value it parses to.

A contract's ``aws`` grant is a list of IAM statements, each
``{actions: [...], resources: [...]}`` (optionally ``sid``); every statement is
an ``Allow``: contracts cannot express ``Deny``, ``NotAction`` or conditions,
so what is written is exactly what is granted (inside the configured
permissions boundary).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentctl.model import JsonObject, JsonValue


@dataclass(frozen=True)
class AwsStatement:
    """One IAM Allow statement, as the contract writes it (order kept)."""

    actions: tuple[str, ...]
    resources: tuple[str, ...]
    sid: str | None = None
    # Why this statement may mint credentials the kill cannot reach (role
    # chaining, ...): the contract's named, printed opt-in; None: it may not.
    exception: str | None = None


@dataclass(frozen=True)
class AwsGrant:
    """A contract's ``aws:`` grant, parsed: its policy statements."""

    statements: tuple[AwsStatement, ...]

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action as written, in order, each once."""
        return tuple(dict.fromkeys(a for s in self.statements for a in s.actions))


def _strings(value: JsonValue) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def parse_aws_grant(raw: JsonValue) -> AwsGrant:
    """The typed grant of a schema-valid ``aws`` grant."""
    statements = []
    for entry in raw if isinstance(raw, list) else ():
        if not isinstance(entry, dict):
            continue
        sid = entry.get("sid")
        exception = entry.get("exception")
        statements.append(
            AwsStatement(
                actions=_strings(entry.get("actions")),
                resources=_strings(entry.get("resources")),
                sid=str(sid) if sid is not None else None,
                exception=str(exception) if exception is not None else None,
            )
        )
    return AwsGrant(tuple(statements))


def describe_aws_grant(grant: AwsGrant) -> str:
    """The actions granted, for the audit trail's scope."""
    return ",".join(a for statement in grant.statements for a in statement.actions)


GRANT_SCHEMA: JsonObject = {
    "description": "IAM statements, all Allow: each lists actions and the resource ARNs they apply to. The agent's role gets exactly these, inside the configured permissions boundary.",
    "type": "array",
    "minItems": 1,
    "maxItems": 64,
    "items": {"$ref": "#/$defs/awsStatement"},
}

SCHEMA_DEFS: dict[str, JsonObject] = {
    "awsStatement": {
        "title": "AWS statement",
        "description": "One IAM Allow statement.",
        "type": "object",
        "additionalProperties": False,
        "required": ["actions", "resources"],
        "properties": {
            "sid": {
                "description": "Optional statement id (letters and digits), kept in the generated policy.",
                "type": "string",
                "pattern": "^[A-Za-z0-9]+$",
                "maxLength": 128,
            },
            "exception": {
                "description": "Opt-in, with the reason, for actions that mint credentials a kill cannot reach (sts:AssumeRole role chaining, sts:GetFederationToken, ...): without it they are errors. Needs a sid, which names the exception; plan prints it.",
                "type": "string",
                "minLength": 10,
                "maxLength": 300,
            },
            "actions": {
                "description": "IAM actions, service:Action (e.g. s3:GetObject); wildcards must match known actions and are lint warnings.",
                "type": "array",
                "minItems": 1,
                "maxItems": 256,
                "items": {
                    "description": "One IAM action, e.g. logs:FilterLogEvents.",
                    "type": "string",
                    "maxLength": 128,
                },
            },
            "resources": {
                "description": "Resource ARNs the actions apply to; '*' is a lint warning.",
                "type": "array",
                "minItems": 1,
                "maxItems": 256,
                "items": {
                    "description": "One resource ARN, e.g. arn:aws:s3:::release-bucket/*.",
                    "type": "string",
                    "maxLength": 2048,
                },
            },
        },
    }
}
