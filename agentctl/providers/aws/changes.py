"""What an AWS change carries from its plan to its apply.

One frozen dataclass per kind of change, so apply reads attributes mypy
checks instead of string keys. None of them holds a secret: the engine keeps
them only between plan and apply, and they never reach the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A normalised IAM policy document (JSON, as IAM reads and returns it).
PolicyDocument = Mapping[str, Any]


@dataclass(frozen=True)
class DesiredRole:
    """CREATE: everything about the role that follows from the contract and settings."""

    role_name: str
    path: str
    tags: Mapping[str, str]
    boundary: str | None
    trust: PolicyDocument
    grant: PolicyDocument
    description: str
    max_session_duration: int


@dataclass(frozen=True)
class RoleSettings:
    """The role's own settings; UpdateRole sets both at once."""

    description: str
    max_session_duration: int


@dataclass(frozen=True)
class RoleUpdate:
    """UPDATE: exactly what differs from the role as observed; what is None or
    False stays as it is."""

    role_name: str
    arn: str | None = None
    role_id: str | None = None
    tags: Mapping[str, str] | None = None  # only agentctl's tags that differ
    set_boundary: str | None = None
    remove_boundary: bool = False
    trust: PolicyDocument | None = None
    grant: PolicyDocument | None = None
    settings: RoleSettings | None = None
    kill_policy: bool = False  # a locked role lacks its kill deny: put it back
    deny_all: bool = False  # a locked role lacks the deny-all managed policy: attach it
    # Renewed after expiry: open the trust, then drop the kill deny and deny-all.
    enable: bool = False

    @property
    def access_changed(self) -> bool:
        """Whether who may use the role, or what it may do, changes."""
        return (
            self.enable
            or self.trust is not None
            or self.grant is not None
            or self.set_boundary is not None
            or self.remove_boundary
        )


@dataclass(frozen=True)
class RoleDisable:
    """DISABLE: lock the role like a kill, tagged with ``reason``."""

    role_name: str
    reason: str


@dataclass(frozen=True)
class RoleRemoval:
    """REMOVE (``apply --prune``): delete the orphaned role."""

    role_name: str


@dataclass(frozen=True)
class KillException:
    """DECLARED (never applied): a grant statement opted in to credentials a
    kill cannot reach."""

    sid: str | None


@dataclass(frozen=True)
class BoundaryUnreadable:
    """DRIFT (never applied): the permissions boundary could not be read."""

    boundary: str


@dataclass(frozen=True)
class GrantWiderThanBoundary:
    """DRIFT (never applied): granted actions the permissions boundary blocks."""

    boundary: str
    action: str  # as the grant writes it
    blocked: tuple[str, ...]  # the known actions it names that the boundary blocks


RolePayload = (
    DesiredRole
    | RoleUpdate
    | RoleDisable
    | RoleRemoval
    | KillException
    | BoundaryUnreadable
    | GrantWiderThanBoundary
)
