"""Request-body checks mirroring the request schemas of GitHub's OpenAPI description.

GitHub answers a malformed body with 422 "Invalid request." and a hint per
field; so does the emulator, so clients see the errors they would see live.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from testing.github.errors import ApiError

# Permission levels are ordered: holding `write` implies `read`, `admin` implies both.
LEVELS = {"read": 1, "write": 2, "admin": 3}


@dataclass(frozen=True)
class Field:
    kind: Literal["string", "boolean", "integer", "object", "strings", "integers"]
    enum: tuple[str, ...] = ()
    nullable: bool = False


def _kind_matches(kind: str, value: Any) -> bool:
    def is_int(item: Any) -> bool:
        return isinstance(item, int) and not isinstance(item, bool)

    match kind:
        case "string":
            return isinstance(value, str)
        case "boolean":
            return isinstance(value, bool)
        case "integer":
            return is_int(value)
        case "object":
            return isinstance(value, dict)
        case "strings":
            return isinstance(value, list) and all(isinstance(i, str) for i in value)
        case "integers":
            return isinstance(value, list) and all(is_int(i) for i in value)
    raise AssertionError(kind)


def validate(
    body: Mapping[str, Any],
    fields: Mapping[str, Field],
    required: Iterable[str] = (),
    *,
    status: int = 422,
) -> None:
    for name in required:
        if name not in body:
            raise ApiError(status, f'Invalid request.\n\n"{name}" wasn\'t supplied.')
    for name, value in body.items():
        spec = fields.get(name)
        if spec is None or (value is None and spec.nullable):
            continue  # GitHub ignores unknown keys
        if not _kind_matches(spec.kind, value):
            raise ApiError(
                status,
                f"Invalid request.\n\nFor 'properties/{name}', {json.dumps(value)} "
                f"is not a{'n' if spec.kind in ('integer', 'object') else ''} {spec.kind}.",
            )
        if spec.enum and value not in spec.enum:
            raise ApiError(
                status,
                f"Invalid request.\n\nFor 'properties/{name}', {json.dumps(value)} "
                f"is not one of {json.dumps(list(spec.enum))}.",
            )


def check_permission_levels(permissions: Mapping[str, Any], *, status: int = 422) -> None:
    for name, level in permissions.items():
        if level not in LEVELS:
            raise ApiError(
                status,
                f"Invalid request.\n\nFor 'permissions/{name}', {json.dumps(level)} "
                f"is not one of {json.dumps(list(LEVELS))}.",
            )


ACCESS_TOKEN_FIELDS = {
    "repositories": Field("strings"),
    "repository_ids": Field("integers"),
    "permissions": Field("object"),
}
COMMENT_FIELDS = {"body": Field("string")}
PULL_UPDATE_FIELDS = {
    "title": Field("string"),
    "body": Field("string"),
    "state": Field("string", ("open", "closed")),
    "base": Field("string"),
    "maintainer_can_modify": Field("boolean"),
}
REPO_UPDATE_FIELDS = {
    "name": Field("string"),
    "description": Field("string"),
    "homepage": Field("string"),
    "private": Field("boolean"),
    "visibility": Field("string", ("public", "private")),
    # Accepted for compatibility; the emulator does not model security features.
    "security_and_analysis": Field("object", nullable=True),
    "has_issues": Field("boolean"),
    "has_projects": Field("boolean"),
    "has_wiki": Field("boolean"),
    "has_pull_requests": Field("boolean"),
    "pull_request_creation_policy": Field("string", ("all", "collaborators_only")),
    "is_template": Field("boolean"),
    "default_branch": Field("string"),
    "allow_squash_merge": Field("boolean"),
    "allow_merge_commit": Field("boolean"),
    "allow_rebase_merge": Field("boolean"),
    "allow_auto_merge": Field("boolean"),
    "delete_branch_on_merge": Field("boolean"),
    "allow_update_branch": Field("boolean"),
    "use_squash_pr_title_as_default": Field("boolean"),
    "squash_merge_commit_title": Field("string", ("PR_TITLE", "COMMIT_OR_PR_TITLE")),
    "squash_merge_commit_message": Field("string", ("PR_BODY", "COMMIT_MESSAGES", "BLANK")),
    "merge_commit_title": Field("string", ("PR_TITLE", "MERGE_MESSAGE")),
    "merge_commit_message": Field("string", ("PR_BODY", "PR_TITLE", "BLANK")),
    "archived": Field("boolean"),
    "allow_forking": Field("boolean"),
    "web_commit_signoff_required": Field("boolean"),
}
# The GitHub App manifest (https://docs.github.com/apps/sharing-github-apps/
# registering-a-github-app-from-a-manifest). `url` is required by GitHub; `name`
# is required here because no browser form exists to ask for it.
_MANIFEST_FIELDS = {
    "name": Field("string"),
    "url": Field("string"),
    "description": Field("string", nullable=True),
    "hook_attributes": Field("object"),
    "default_permissions": Field("object"),
    "default_events": Field("strings"),
    "public": Field("boolean"),
    "redirect_url": Field("string"),
    "callback_urls": Field("strings"),
    "setup_url": Field("string"),
}


def check_manifest(manifest: Mapping[str, Any]) -> None:
    validate(manifest, _MANIFEST_FIELDS, required=("name", "url"))
    check_permission_levels(manifest.get("default_permissions", {}))
