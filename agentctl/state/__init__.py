"""The state store: what agentctl provisioned, issued and did (SQLite or PostgreSQL).

The records are plain dataclasses; the store, its engine and the apply lock
need SQLAlchemy (~0.3 s to import), so they load on first use: a command that
only touches records or the local audit journal (`validate`, `expiring` with
no state, `--help`) never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentctl.state.records import (
    GENESIS_HASH,
    AgentRecord,
    ApprovalRecord,
    ApprovalStatus,
    AuditDraft,
    AuditEvent,
    CredentialRecord,
    IntentRecord,
    ResourceRecord,
)

if TYPE_CHECKING:
    from agentctl.state.locking import LockHolder
    from agentctl.state.store import StateStore, create_state_engine, open_state

_LAZY = {
    "LockHolder": "agentctl.state.locking",
    "StateStore": "agentctl.state.store",
    "create_state_engine": "agentctl.state.store",
    "open_state": "agentctl.state.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "GENESIS_HASH",
    "AgentRecord",
    "ApprovalRecord",
    "ApprovalStatus",
    "AuditDraft",
    "AuditEvent",
    "CredentialRecord",
    "IntentRecord",
    "LockHolder",
    "ResourceRecord",
    "StateStore",
    "create_state_engine",
    "open_state",
]
