"""The state store: what agentctl provisioned, issued and did (SQLite or PostgreSQL)."""

from agentctl.state.locking import LockHolder
from agentctl.state.records import (
    GENESIS_HASH,
    AgentRecord,
    ApprovalRecord,
    ApprovalStatus,
    AuditEvent,
    CredentialRecord,
    ResourceRecord,
)
from agentctl.state.store import StateStore, create_state_engine, open_state

__all__ = [
    "GENESIS_HASH",
    "AgentRecord",
    "ApprovalRecord",
    "ApprovalStatus",
    "AuditEvent",
    "CredentialRecord",
    "LockHolder",
    "ResourceRecord",
    "StateStore",
    "create_state_engine",
    "open_state",
]
