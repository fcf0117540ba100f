"""The ``jira`` grant: its JSON Schema fragment and the typed value it parses to.

Two forms: a list of friendly scopes (in the projects ``jira.default_projects``
names), or ``{projects: [SEC, OPS], scopes: [...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentctl.model import JsonObject, JsonValue


@dataclass(frozen=True)
class JiraGrant:
    """A contract's ``jira:`` grant, parsed."""

    scopes: tuple[str, ...]
    # None: the list form, in the configured default projects.
    projects: tuple[str, ...] | None = None

    @property
    def scope_path(self) -> tuple[str, ...]:
        """Where the scopes are inside the grant as written (for findings)."""
        return () if self.projects is None else ("scopes",)


def _strings(value: JsonValue) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def parse_jira_grant(raw: JsonValue) -> JiraGrant:
    """The typed grant of a schema-valid ``jira`` grant."""
    if isinstance(raw, dict):
        return JiraGrant(
            _strings(raw.get("scopes")), tuple(p.upper() for p in _strings(raw.get("projects")))
        )
    return JiraGrant(_strings(raw))


def describe_jira_grant(grant: JiraGrant) -> str:
    """Scopes (and projects), for the audit trail's scope."""
    text = ",".join(grant.scopes)
    return f"{text} on {','.join(grant.projects)}" if grant.projects else text


GRANT_SCHEMA: JsonObject = {
    "description": "Jira scopes: a list of friendly scopes (issue:read, issue:comment, issue:transition, issue:create, ...) in the projects jira.default_projects names; or a mapping that names the projects.",
    "type": ["array", "object"],
    "if": {"type": "array"},
    "then": {"$ref": "#/$defs/scopes"},
    "else": {"$ref": "#/$defs/jiraProjectGrant"},
}

SCHEMA_DEFS: dict[str, JsonObject] = {
    "jiraProjectGrant": {
        "description": "Jira scopes in the listed projects.",
        "type": "object",
        "additionalProperties": False,
        "required": ["projects", "scopes"],
        "properties": {
            "projects": {
                "description": "The project keys the agent may reach, e.g. [SEC, OPS].",
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {
                    "description": "A Jira project key: an uppercase letter, then uppercase letters, digits or '_' (2-10 characters).",
                    "type": "string",
                    "pattern": "^[A-Z][A-Z0-9_]{1,9}$",
                },
            },
            "scopes": {
                "description": "Friendly scopes, as in the list form.",
                "$ref": "#/$defs/scopes",
            },
        },
    }
}
