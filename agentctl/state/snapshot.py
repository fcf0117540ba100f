"""What a plan compares and what ``status`` shows, read from a SQLite state with
the standard library.

A plan without ``--refresh`` needs four facts per agent (name, owner, status,
contract hash) and three per resource (agent, provider, applied hash). Reading
them through :class:`~agentctl.state.store.StateStore` costs the SQLAlchemy
import (~0.3 s) and a migration check: most of a no-change ``apply`` in CI.
This module reads the same rows with :mod:`sqlite3` instead, and gives up
(returns None, and the caller opens the store as before) whenever it cannot be
sure it reads what the store would: not a plain ``sqlite:///`` file URL, no
such file, a schema of another version (the store migrates or refuses it), a
read-only or nearly full filesystem (the store opens it immutable), or any
SQLite error (the store names it properly). It never writes.

``status`` (no NAME, no ``--refresh``) reads the same way: each agent's shown
columns, its providers, its live credentials and the long-lived secret rows
the providers date (at 10,000 agents the SQLAlchemy import and row processing
were about a third of the command).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agentctl.errors import DamagedStateRow
from agentctl.model import AgentStatus
from agentctl.state.records import (
    SCHEMA_VERSION,
    AgentSummary,
    CredentialRecord,
    LongLivedSecretRecord,
    StoredRow,
    agent_summary,
    credential_record,
    decode_rows,
    long_lived_secret_record,
    stored_time,
)
from agentctl.state.room import sqlite_path


@dataclass(frozen=True)
class RecordedAgent:
    """An agent as the state records it, as much as a plan reads."""

    name: str
    owner: str
    status: AgentStatus
    contract_hash: str | None


@dataclass(frozen=True)
class RecordedResource:
    """A resource as the state records it, as much as a plan reads."""

    agent: str
    provider: str
    applied_hash: str | None


@dataclass(frozen=True)
class PlanSnapshot:
    """The rows a plan reads, from one read transaction."""

    agents: tuple[RecordedAgent, ...]
    resources: tuple[RecordedResource, ...]

    def list_agents(self) -> tuple[RecordedAgent, ...]:
        return self.agents

    def list_resources(self) -> tuple[RecordedResource, ...]:
        return self.resources


# Below this much free space the store's own checks take over (its MIN_FREE_BYTES).
_ROOM = 16 * 1024 * 1024


def _plainly_writable(path: Path) -> bool:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return (
        os.access(path, os.W_OK)
        and os.access(path.parent, os.W_OK)
        and stats.f_bavail * stats.f_frsize >= _ROOM
    )


@contextmanager
def _read_transaction(url: str) -> Iterator[sqlite3.Connection | None]:
    """One read transaction on the SQLite file of ``url`` at this schema
    version, or None when only the full store can tell (see the module
    docstring). Errors inside the block are the caller's to turn into None."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        yield None
        return
    if not _plainly_writable(path):
        # A read-only or (nearly) full filesystem: reading a WAL database
        # here would create or leave its -shm index, and the store opens such
        # a state immutable only while there is none. The store decides.
        yield None
        return
    try:
        # mode=rw: never create a file; reading a WAL database may still need
        # to create its -shm index, which read-only mode could not.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error:
        yield None
        return
    try:
        conn.isolation_level = None
        try:
            conn.execute("BEGIN")  # one snapshot for every read
            row = conn.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.Error:
            # no agentctl tables (the store decides: create or refuse), or locked
            yield None
            return
        if row is None or row[0] != SCHEMA_VERSION:
            yield None
            return
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def read_plan_snapshot(url: str) -> PlanSnapshot | None:
    """The agents and resources recorded at ``url``, or None when only the full
    store can tell (see the module docstring)."""
    try:
        with _read_transaction(url) as conn:
            if conn is None:
                return None
            agents = tuple(
                recorded_agent(url, row)
                for row in _named_rows(
                    conn.execute(
                        "SELECT name, owner, status, contract_hash FROM agents ORDER BY name"
                    )
                )
            )
            resources = tuple(
                recorded_resource(url, row)
                for row in _named_rows(
                    conn.execute(
                        "SELECT agent, provider, applied_hash FROM resources "
                        "ORDER BY agent, provider"
                    )
                )
            )
    except sqlite3.Error:
        return None
    return PlanSnapshot(agents, resources)


def _named_rows(cursor: sqlite3.Cursor) -> Iterator[dict[str, Any]]:
    """Each row of ``cursor`` by column name (what the row decoders read)."""
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def recorded_agent(url: str, values: Mapping[Any, Any]) -> RecordedAgent:
    """What a plan compares of an agent row (the store's plan_snapshot too)."""
    row = StoredRow(url, "agents", values)
    return RecordedAgent(
        row.text("name"),
        row.text("owner"),
        row.choice("status", AgentStatus),
        row.optional_text("contract_hash"),
    )


def recorded_resource(url: str, values: Mapping[Any, Any]) -> RecordedResource:
    row = StoredRow(url, "resources", values)
    return RecordedResource(
        row.text("agent"), row.text("provider"), row.optional_text("applied_hash")
    )


# -- status ----------------------------------------------------------------------


class NotInSnapshot(LookupError):
    """A read the status snapshot cannot answer (the caller asks the store)."""


@dataclass(frozen=True)
class StatusSnapshot:
    """What ``status`` of every agent reads, from one read transaction.

    Also serves the reads a provider's ``long_lived_secrets(rows)`` makes
    (``agentctl.providers.base.SecretRows``), for credentials live at or after
    ``live_at`` only: the snapshot holds the credentials live then, no others.
    """

    live_at: datetime
    agents: tuple[AgentSummary, ...]
    providers: dict[str, list[str]]
    live_credentials: tuple[CredentialRecord, ...]
    long_lived: tuple[LongLivedSecretRecord, ...]

    def live_credential_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for credential in self.live_credentials:
            counts[credential.agent] = counts.get(credential.agent, 0) + 1
        return counts

    def list_long_lived_secrets(
        self, provider: str | None = None, agent: str | None = None
    ) -> list[LongLivedSecretRecord]:
        return [
            row
            for row in self.long_lived
            if (provider is None or row.provider == provider)
            and (agent is None or row.agent == agent)
        ]

    def list_credentials(
        self,
        agent: str | None = None,
        provider: str | None = None,
        live_at: datetime | None = None,
    ) -> list[CredentialRecord]:
        if live_at is None or live_at < self.live_at:
            # Only credentials live at self.live_at were read: earlier or all
            # would need rows this snapshot does not have.
            raise NotInSnapshot(
                f"a status snapshot lists credentials live at {self.live_at.isoformat()} "
                "or later only"
            )
        return [
            c
            for c in self.live_credentials
            if (agent is None or c.agent == agent)
            and (provider is None or c.provider == provider)
            and c.expires_at > live_at
        ]


def read_status_snapshot(
    url: str, live_at: datetime, damaged: list[DamagedStateRow] | None = None
) -> StatusSnapshot | None:
    """What ``status`` shows of every agent recorded at ``url``, credentials
    counted live at ``live_at``; None when only the full store can tell.
    ``damaged``: damaged agent rows are collected there and left out
    (agentctl.state.records.decode_rows) instead of ending the read."""
    try:
        with _read_transaction(url) as conn:
            if conn is None:
                return None
            agents = tuple(
                decode_rows(
                    agent_summary,
                    url,
                    _named_rows(
                        conn.execute(
                            "SELECT name, owner, execution_mode, expiry, status, status_reason, "
                            "last_rotated_at FROM agents ORDER BY name"
                        )
                    ),
                    damaged,
                )
            )
            providers: dict[str, list[str]] = {}
            for agent, provider in conn.execute(
                "SELECT agent, provider FROM resources ORDER BY agent, provider"
            ):
                providers.setdefault(agent, []).append(provider)
            live = tuple(
                credential_record(url, {**row, "revoked_at": None})
                for row in _named_rows(
                    conn.execute(
                        "SELECT id, agent, provider, kind, fingerprint, issued_at, expires_at, "
                        'on_behalf_of, "trigger", secret_ref FROM credentials '
                        "WHERE revoked_at IS NULL AND expires_at > ? ORDER BY issued_at, id",
                        (stored_time(live_at),),
                    )
                )
            )
            long_lived = tuple(
                long_lived_secret_record(url, row)
                for row in _named_rows(
                    conn.execute(
                        "SELECT agent, provider, kind, key_id, fingerprint, created_at, "
                        "tracked_since, expires_at FROM long_lived_secrets "
                        "ORDER BY agent, provider, kind"
                    )
                )
            )
    except sqlite3.Error:
        return None
    return StatusSnapshot(live_at, agents, providers, live, long_lived)
