"""The ``github`` grant: its JSON Schema fragment and the typed value it parses to.

Two forms: a list of scopes (every repository the installation reaches), or
``{repositories: [owner/name, ...], scopes: [...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentctl.model import JsonObject, JsonValue


@dataclass(frozen=True)
class GitHubGrant:
    """A contract's ``github:`` grant, parsed."""

    scopes: tuple[str, ...]
    # None: the list form, limited to no repository list.
    repositories: tuple[str, ...] | None = None
    # "dedicated" | "shared": this agent's GitHub mode; None: github.mode.
    mode: str | None = None

    @property
    def scope_path(self) -> tuple[str, ...]:
        """Where the scopes are inside the grant as written (for findings)."""
        return () if self.repositories is None else ("scopes",)


def _strings(value: JsonValue) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def parse_github_grant(raw: JsonValue) -> GitHubGrant:
    """The typed grant of a schema-valid ``github`` grant."""
    if isinstance(raw, dict):
        mode = raw.get("mode")
        return GitHubGrant(
            _strings(raw.get("scopes")),
            _strings(raw.get("repositories")),
            str(mode) if isinstance(mode, str) else None,
        )
    return GitHubGrant(_strings(raw))


def describe_github_grant(grant: GitHubGrant) -> str:
    """Scopes (and repositories), for the audit trail's scope."""
    text = ",".join(grant.scopes)
    return f"{text} on {','.join(grant.repositories)}" if grant.repositories else text


GRANT_SCHEMA: JsonObject = {
    "description": "GitHub scopes: a list of friendly scopes (repo:read, pull_request:comment, issue:write, ...) or GitHub App permissions (contents:read, pull_requests:write, ...); or a mapping that also limits the repositories.",
    "type": ["array", "object"],
    "if": {"type": "array"},
    "then": {"$ref": "#/$defs/scopes"},
    "else": {"$ref": "#/$defs/githubRepositoryGrant"},
}

SCHEMA_DEFS: dict[str, JsonObject] = {
    "githubRepositoryGrant": {
        "description": "GitHub scopes limited to the listed repositories.",
        "type": "object",
        "additionalProperties": False,
        "required": ["repositories", "scopes"],
        "properties": {
            "repositories": {
                "description": "The repositories the agent may reach, as owner/name.",
                "type": "array",
                "minItems": 1,
                "maxItems": 256,
                "items": {
                    "description": "A repository, owner/name, e.g. acme/api (checked by the GitHub provider).",
                    "type": "string",
                    "maxLength": 140,
                },
            },
            "scopes": {
                "description": "Friendly scopes or GitHub App permissions, as in the list form.",
                "$ref": "#/$defs/scopes",
            },
            "mode": {
                "description": "dedicated: the agent's own GitHub App (GitHub's logs name it); shared: tokens from the shared App, down-scoped to this grant. Default: github.mode in agentctl.yaml.",
                "enum": ["dedicated", "shared"],
            },
        },
    }
}
