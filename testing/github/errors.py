"""GitHub's error answers: the exact messages and the ``{message, documentation_url, status}`` shape.

Clients match on these messages (githubkit and agentctl's provider both read
``message``), so they are spelled as api.github.com spells them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DOCUMENTATION_URL = "https://docs.github.com/rest"

MSG_NOT_FOUND = "Not Found"
MSG_BAD_CREDENTIALS = "Bad credentials"
MSG_REQUIRES_AUTH = "Requires authentication"
MSG_JWT_UNDECODABLE = "A JSON web token could not be decoded"
MSG_JWT_IAT = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
MSG_JWT_EXP = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
MSG_JWT_EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
MSG_INTEGRATION_NOT_FOUND = "Integration not found"
MSG_SUSPENDED = "This installation has been suspended"
MSG_NOT_ACCESSIBLE = "Resource not accessible by integration"
MSG_PERMISSIONS_NOT_GRANTED = "The permissions requested are not granted to this installation."
MSG_REPOSITORIES_NOT_ACCESSIBLE = (
    "There is at least one repository that does not exist or is not accessible "
    "to the parent installation."
)
MSG_ARCHIVED = "Repository was archived so is read-only."


class ApiError(Exception):
    """An error answer in GitHub's shape: ``{"message", "documentation_url", "status"}``.

    Raised while serving a request, and by :class:`GitHubEmulator`'s control
    methods when asked for something impossible (e.g. a repo of an unknown owner).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        body: dict[str, Any] = {
            "message": self.message,
            "documentation_url": DOCUMENTATION_URL,
            "status": str(self.status),
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return Reply(self.status, body, self.headers)


@dataclass
class Reply:
    status: int
    body: Any = None  # None: no body (204)
    headers: dict[str, str] = field(default_factory=dict)
