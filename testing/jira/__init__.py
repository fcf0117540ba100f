"""A local Jira Cloud emulator (site, scoped-token gateway, Atlassian admin APIs).

``JiraEmulator`` is the server; ``world`` holds the records and rules,
``routes`` the HTTP surface and its authentication, ``rendering`` the JSON.
"""

from testing.jira.server import JiraEmulator
from testing.jira.world import ApiError

__all__ = ["ApiError", "JiraEmulator"]
