"""Tables of the state store and the forward migrations that build them.

The ``Table`` objects below describe the *current* schema and are what queries
use. Migrations are frozen history: each one spells out exactly the DDL of its
version, never the current ``Table`` objects, so an old database is upgraded
step by step to exactly what a fresh one gets. Never edit a released
migration; append a new one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from agentctl.errors import StateError
from agentctl.state.records import GENESIS_HASH, SCHEMA_VERSION, UNREADABLE


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every dialect.

    SQLite has no timezone type and drops ``tzinfo``; PostgreSQL returns the
    session's zone. Naive datetimes are refused: they are always a bug here.
    SQLite stores the fixed-width text SQLAlchemy renders, so comparisons in
    SQL (``expires_at > :now``) are correct as string comparisons.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("state timestamps must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        return _checked(super().result_processor(dialect, coltype))


class CheckedDate(sa.types.TypeDecorator[date]):
    """A date column whose stored text SQLite could not read as a date reads
    back as :data:`~agentctl.state.records.UNREADABLE` (see _checked)."""

    impl = sa.Date
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        return _checked(super().result_processor(dialect, coltype))


def _checked(process: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """``process`` (a driver value -> Python value conversion), giving UNREADABLE
    for a stored value it cannot convert instead of raising mid-fetch: SQLite
    keeps any text in a DATETIME or DATE column, and only the row decoders
    (agentctl.state.records.StoredRow) can say which row and column is
    damaged, and that it is damage, not a bug."""
    if process is None:
        return None

    def checked(value: Any) -> Any:
        try:
            return process(value)
        except (ValueError, TypeError, OverflowError):
            return UNREADABLE

    return checked


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("purpose", sa.String, nullable=False),
    sa.Column("execution_mode", sa.String, nullable=False),
    sa.Column("expiry", CheckedDate),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("contract_hash", sa.String),
    sa.Column("status_reason", sa.String),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("killed_at", UTCDateTime),
    sa.Column("last_rotated_at", UTCDateTime),
    # The contract as last applied (canonical JSON): exec and credentials act
    # on what was applied, not on whatever the contracts folder says now.
    sa.Column("document", sa.Text),
)

# No foreign keys to agents: resources and credentials are facts about the
# providers and must be recordable even for an agent whose row is gone (kill
# works without contracts or state), and write order during a crashed apply
# must never make the next apply's writes fail.
resources = sa.Table(
    "resources",
    metadata,
    sa.Column("agent", sa.String, primary_key=True),
    sa.Column("provider", sa.String, primary_key=True),
    sa.Column("resource_id", sa.String, nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("applied_hash", sa.String),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("agent", sa.String, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("on_behalf_of", sa.String),
    sa.Column("trigger", sa.String),
    sa.Column("secret_ref", sa.String),
    sa.Index("ix_credentials_agent_provider", "agent", "provider"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("agent", sa.String, nullable=False),
    sa.Column("requester", sa.String, nullable=False),
    sa.Column("on_behalf_of", sa.String),
    sa.Column("trigger", sa.String),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("decided_by", sa.String),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("used_at", UTCDateTime),
    sa.Column("reason", sa.Text),
)

# Audit times and JSON are stored as the exact text that was hashed, so
# verification never depends on a driver's round trip of timestamps or JSON.
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("time", sa.String, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("on_behalf_of", sa.String),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("scope", sa.Text),
    sa.Column("trigger", sa.String),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("result", sa.String, nullable=False),
    sa.Column("operator", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String, nullable=False),
    sa.Column("hash", sa.String, nullable=False),
    # HMAC under the chain key from the secret store (NULL: an unkeyed event).
    sa.Column("mac", sa.String),
    sa.Index("ix_audit_events_actor", "actor"),
    sa.Index("ix_audit_events_target", "target"),
    sa.Index("ix_audit_events_action", "action"),
    sa.Index("ix_audit_events_time", "time"),
)

# One row: the chain head. Appenders lock it (FOR UPDATE on PostgreSQL; the
# write transaction itself on SQLite) so concurrent appends serialize and the
# chain never forks. It also lets verify notice a truncated tail.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String, nullable=False),
    # The head's HMAC and the id of the key that made it (NULL: never keyed).
    sa.Column("mac", sa.String),
    sa.Column("key_id", sa.String),
    # This trail's random name: its chain key in the secret store and its
    # anchors are filed under it, so states sharing one secret store or one
    # anchor file never mix.
    sa.Column("trail", sa.String),
)

# Who holds the apply lock, for the waiting run's message. The lock itself is
# an OS file lock / PostgreSQL advisory lock; this row is information only.
lock_holders = sa.Table(
    "lock_holders",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("operator", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
)


# Callers of `agentctl serve`: who may hit the kill switch over HTTP. A bearer
# token is stored as its sha256 only (it is 256 random bits: a slow hash adds
# nothing); an HMAC signing key cannot be hashed, so it lives in the secret
# store under ``secret_ref``.
serve_callers = sa.Table(
    "serve_callers",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),  # "token" | "hmac"
    sa.Column("token_hash", sa.String, unique=True),
    sa.Column("secret_ref", sa.String),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
)

# Nonces of signed requests already accepted: a replay inside the timestamp
# window meets the primary key. Shared by every `serve` on the same state.
serve_nonces = sa.Table(
    "serve_nonces",
    metadata,
    sa.Column("caller", sa.String, primary_key=True),
    sa.Column("nonce", sa.String, primary_key=True),
    sa.Column("seen_at", UTCDateTime, nullable=False),
    sa.Index("ix_serve_nonces_seen_at", "seen_at"),
)

# Secrets an agent keeps across runs and a person replaces by hand (a GitHub
# App private key): when each was made, so `expiring` can report its age. The
# value stays in the secret store; the fingerprint is the one the provider's own
# console shows, so a person can tell which key to delete there.
long_lived_secrets = sa.Table(
    "long_lived_secrets",
    metadata,
    sa.Column("agent", sa.String, primary_key=True),
    sa.Column("provider", sa.String, primary_key=True),
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("key_id", sa.String, nullable=False),
    sa.Column("fingerprint", sa.String),
    # NULL: stored before agentctl recorded it (age unknown).
    sa.Column("created_at", UTCDateTime),
    sa.Column("tracked_since", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
)

# A change agentctl announced before a call that cannot be undone or repeated
# (e.g. converting a GitHub App manifest code), cleared in the same transaction
# that records its outcome. One left behind means a process died in between:
# the next run finds it and adopts what the call made instead of making it again.
intents = sa.Table(
    "intents",
    metadata,
    sa.Column("agent", sa.String, primary_key=True),
    sa.Column("provider", sa.String, primary_key=True),
    sa.Column("action", sa.String, primary_key=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


def _v1_initial(conn: Connection) -> None:
    history = sa.MetaData()
    sa.Table(
        "agents",
        history,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("owner", sa.String, nullable=False),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("execution_mode", sa.String, nullable=False),
        sa.Column("expiry", CheckedDate),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("contract_hash", sa.String),
        sa.Column("status_reason", sa.String),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("killed_at", UTCDateTime),
    )
    sa.Table(
        "resources",
        history,
        sa.Column("agent", sa.String, primary_key=True),
        sa.Column("provider", sa.String, primary_key=True),
        sa.Column("resource_id", sa.String, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("applied_hash", sa.String),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "credentials",
        history,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("agent", sa.String, nullable=False),
        sa.Column("provider", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
        sa.Column("on_behalf_of", sa.String),
        sa.Column("trigger", sa.String),
        sa.Column("secret_ref", sa.String),
    )
    sa.Table(
        "approvals",
        history,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("agent", sa.String, nullable=False),
        sa.Column("requester", sa.String, nullable=False),
        sa.Column("on_behalf_of", sa.String),
        sa.Column("trigger", sa.String),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("decided_by", sa.String),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("used_at", UTCDateTime),
        sa.Column("reason", sa.Text),
    )
    sa.Table(
        "audit_events",
        history,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String, nullable=False, unique=True),
        sa.Column("time", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("on_behalf_of", sa.String),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("scope", sa.Text),
        sa.Column("trigger", sa.String),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("result", sa.String, nullable=False),
        sa.Column("operator", sa.String, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String, nullable=False),
        sa.Column("hash", sa.String, nullable=False),
    )
    head = sa.Table(
        "audit_head",
        history,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String, nullable=False),
    )
    sa.Table(
        "lock_holders",
        history,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("operator", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.String, nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
    )
    history.create_all(conn)
    conn.execute(head.insert().values(id=1, seq=0, hash=GENESIS_HASH))


def _v2_rotation_and_lookups(conn: Connection) -> None:
    """Rotation age per agent (``rotate``/``expiring``), indexes for audit filters."""
    timestamp = UTCDateTime().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE agents ADD COLUMN last_rotated_at {timestamp}")
    conn.exec_driver_sql(
        "CREATE INDEX ix_credentials_agent_provider ON credentials (agent, provider)"
    )
    for column in ("actor", "target", "action"):
        conn.exec_driver_sql(f"CREATE INDEX ix_audit_events_{column} ON audit_events ({column})")


def _v3_applied_contract(conn: Connection) -> None:
    """The applied contract document, so exec needs no contracts folder."""
    conn.exec_driver_sql("ALTER TABLE agents ADD COLUMN document TEXT")


def _v4_serve_callers(conn: Connection) -> None:
    """Callers of `agentctl serve` and the nonces of their signed requests."""
    history = sa.MetaData()
    sa.Table(
        "serve_callers",
        history,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("token_hash", sa.String, unique=True),
        sa.Column("secret_ref", sa.String),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
        sa.Column("last_used_at", UTCDateTime),
    )
    sa.Table(
        "serve_nonces",
        history,
        sa.Column("caller", sa.String, primary_key=True),
        sa.Column("nonce", sa.String, primary_key=True),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.Index("ix_serve_nonces_seen_at", "seen_at"),
    )
    history.create_all(conn)


def _v5_keyed_audit(conn: Connection) -> None:
    """The keyed audit chain: a MAC per event, and the head's MAC and key id."""
    conn.exec_driver_sql("ALTER TABLE audit_events ADD COLUMN mac VARCHAR")
    conn.exec_driver_sql("ALTER TABLE audit_head ADD COLUMN mac VARCHAR")
    conn.exec_driver_sql("ALTER TABLE audit_head ADD COLUMN key_id VARCHAR")
    conn.exec_driver_sql("ALTER TABLE audit_head ADD COLUMN trail VARCHAR")
    conn.execute(
        sa.text("UPDATE audit_head SET trail = :trail WHERE id = 1"), {"trail": uuid.uuid4().hex}
    )


def _v6_audit_time_index(conn: Connection) -> None:
    """``audit --since`` served by an index (actor, target and action have theirs since v2)."""
    conn.exec_driver_sql("CREATE INDEX ix_audit_events_time ON audit_events (time)")


def _v7_long_lived_secrets(conn: Connection) -> None:
    """When each GitHub App private key was made (``expiring`` reports its age).

    Keys stored before this version were never dated, and GitHub's REST API
    lists no App's keys: each dedicated App already recorded gets a row whose
    ``created_at`` is NULL (age unknown) and ``tracked_since`` is now, so its
    age is known to be at least the time since this migration.
    """
    history = sa.MetaData()
    table = sa.Table(
        "long_lived_secrets",
        history,
        sa.Column("agent", sa.String, primary_key=True),
        sa.Column("provider", sa.String, primary_key=True),
        sa.Column("kind", sa.String, primary_key=True),
        sa.Column("key_id", sa.String, nullable=False),
        sa.Column("fingerprint", sa.String),
        sa.Column("created_at", UTCDateTime),
        sa.Column("tracked_since", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime),
    )
    history.create_all(conn)
    now = datetime.now(UTC)
    rows = conn.execute(
        sa.text("SELECT agent, attributes FROM resources WHERE provider = 'github'")
    ).all()
    for agent, attributes in rows:
        try:
            recorded = json.loads(attributes)
        except ValueError:
            continue
        if not isinstance(recorded, dict) or recorded.get("app_id") is None:
            continue
        if (recorded.get("mode") or "dedicated") != "dedicated":
            continue  # a shared App's key is the team's, not the agent's
        conn.execute(
            table.insert().values(
                agent=agent,
                provider="github",
                kind="app-private-key",
                key_id=str(recorded["app_id"]),
                fingerprint=None,
                created_at=None,
                tracked_since=now,
                expires_at=None,
            )
        )


def _v8_intents(conn: Connection) -> None:
    """v8: intents, a change announced before an unrepeatable call (github register)."""
    history = sa.MetaData()
    sa.Table(
        "intents",
        history,
        sa.Column("agent", sa.String, primary_key=True),
        sa.Column("provider", sa.String, primary_key=True),
        sa.Column("action", sa.String, primary_key=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    history.create_all(conn)


# Position N-1 holds the migration that brings the schema to version N.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _v1_initial,
    _v2_rotation_and_lookups,
    _v3_applied_contract,
    _v4_serve_callers,
    _v5_keyed_audit,
    _v6_audit_time_index,
    _v7_long_lived_secrets,
    _v8_intents,
)
LATEST_VERSION = len(MIGRATIONS)
# Readers that skip SQLAlchemy (agentctl.state.snapshot) check the version
# against this copy: a new migration bumps both.
if LATEST_VERSION != SCHEMA_VERSION:
    raise RuntimeError("a new migration: bump SCHEMA_VERSION in agentctl/state/records.py")


def advisory_key(conn: Connection, purpose: str) -> int:
    """A PostgreSQL advisory-lock key for ``purpose`` in this connection's schema.

    Advisory locks are per database, and one database may hold several
    agentctl states in different schemas (``search_path``): key by schema so
    they do not contend with each other.
    """
    schema = conn.execute(sa.select(sa.func.current_schema())).scalar_one()
    digest = hashlib.sha256(f"agentctl:{purpose}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    version = conn.execute(sa.select(schema_version.c.version)).scalar()
    return int(version or 0)


def migrate(conn: Connection, target: int = LATEST_VERSION) -> int:
    """Bring the schema up to ``target`` inside the caller's write transaction.

    The caller's transaction makes the whole upgrade atomic (DDL is
    transactional on both SQLite and PostgreSQL); on PostgreSQL an advisory
    transaction lock keeps two processes opening a new database from racing.
    Returns the version the schema is at afterwards.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_key(conn, "migrate"))))
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise StateError(
            f"the state store has schema version {version}, newer than this agentctl "
            f"understands ({LATEST_VERSION})",
            hint="upgrade agentctl to the version that last wrote this state",
        )
    if version == 0:
        schema_version.create(conn, checkfirst=True)
        conn.execute(schema_version.insert().values(version=0))
    for number in range(version + 1, target + 1):
        MIGRATIONS[number - 1](conn)
        conn.execute(schema_version.update().values(version=number))
        version = number
    return version
