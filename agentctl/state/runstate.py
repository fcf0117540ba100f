"""What ``exec`` and ``credentials`` read and write in a SQLite state, with the
standard library's sqlite3.

A runtime host runs ``agentctl credentials NAME`` (or an SDK's
``credential_process``) many times an hour. Through
:class:`~agentctl.state.store.StateStore` each run paid the SQLAlchemy import
and engine set-up (~0.15 s of a ~0.7 s process) for a handful of rows: the
agent and its resources (the gates), the credential record kill revokes from,
and one audit event. :class:`RunState` reads and writes exactly those rows
itself, with the same SQL semantics as the store:

- the same connection settings (WAL, ``synchronous=FULL``, 30 s busy timeout,
  ``BEGIN IMMEDIATE`` for every write), each write its own committed
  transaction, as the store's are;
- the same stored text for timestamps (what SQLAlchemy renders for SQLite) and
  JSON, so a row reads back identically through either;
- audit events through :func:`agentctl.state.chain.append_event`, the one
  append rule (key, seq, hash, MAC, head) the store uses too; the same
  ``check_no_secrets`` on everything written.

It steps aside (:func:`open_run_state` returns None, and the caller opens the
store as before) whenever it cannot be sure it does what the store would: not
a plain ``sqlite:///`` file URL, no such file, a schema of another version
(the store migrates or refuses it), a read-only or nearly full filesystem (the
store opens it immutable or refuses), or any SQLite error on opening. Anything
it does not implement (approvals, a provider's other records, ...) opens the
store on first use, which from then on serves every call: the two connections
never hold a transaction at the same time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from agentctl.clock import Clock, system_clock
from agentctl.errors import StateError
from agentctl.secrets import check_no_secrets
from agentctl.state.chain import append_event, event_of_row, new_event
from agentctl.state.records import (
    SCHEMA_VERSION,
    AgentRecord,
    AuditDraft,
    AuditEvent,
    AuditHead,
    CredentialRecord,
    ResourceRecord,
    agent_record,
    credential_record,
    format_time,
    resource_record,
    stored_time,
)
from agentctl.state.room import MIN_FREE_BYTES, free_bytes, sqlite_cause, sqlite_path
from agentctl.state.room import require_room as _require_room

if TYPE_CHECKING:
    from agentctl.audit_key import ChainKeySource
    from agentctl.state.store import StateStore

# The store's SQLITE_BUSY_TIMEOUT_SECONDS (agentctl.state.store).
BUSY_TIMEOUT_SECONDS = 30.0

_AGENT_COLUMNS = (
    "name, owner, purpose, execution_mode, expiry, status, contract_hash, status_reason, "
    "created_at, updated_at, killed_at, last_rotated_at, document"
)
_RESOURCE_COLUMNS = "agent, provider, resource_id, attributes, applied_hash, updated_at"
_AUDIT_COLUMNS = (
    "seq, id, time, actor, on_behalf_of, action, scope, trigger, target, result, operator, "
    "detail, prev_hash, hash, mac"
)
_CREDENTIAL_COLUMNS = (
    "id",
    "agent",
    "provider",
    "kind",
    "fingerprint",
    "issued_at",
    "expires_at",
    "revoked_at",
    "on_behalf_of",
    "trigger",
    "secret_ref",
)


_AGENT_NAMES = tuple(name.strip() for name in _AGENT_COLUMNS.split(","))
_RESOURCE_NAMES = tuple(name.strip() for name in _RESOURCE_COLUMNS.split(","))


def open_run_state(
    url: str, open_store: Callable[[], StateStore], *, clock: Clock = system_clock
) -> RunState | None:
    """The state at ``url`` for a runtime fetch, or None when only the store can
    tell (see the module docstring). ``open_store`` opens the full store (with
    its chain keys) for anything :class:`RunState` does not do itself."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    free = free_bytes(path.parent)
    if free is None or free < MIN_FREE_BYTES or not _writable(path):
        return None  # read-only or (nearly) full: the store opens it as it must
    try:
        conn = sqlite3.connect(
            f"file:{path}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False
        )
    except sqlite3.Error:
        return None
    try:
        conn.isolation_level = None  # transactions are begun explicitly, as the store's
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            conn.close()
            return None
    except sqlite3.Error:
        conn.close()
        return None
    return RunState(conn, path, url, open_store, clock=clock)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


class _SqliteChain:
    """The audit chain's rows in one sqlite3 write transaction (agentctl.state.chain)."""

    def __init__(self, conn: sqlite3.Connection, url: str) -> None:
        self._conn = conn
        self._url = url

    def head(self) -> AuditHead | None:
        row = self._conn.execute(
            "SELECT seq, hash, key_id, trail FROM audit_head WHERE id = 1"
        ).fetchone()
        return None if row is None else AuditHead(int(row[0]), str(row[1]), None, row[2], row[3])

    def stored(self, id: str) -> AuditEvent | None:
        found = _events(
            self._conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit_events WHERE id = ?", (id,)),
            self._url,
        )
        return found[0] if found else None

    def insert(self, row: Any) -> None:
        names = list(row)
        self._conn.execute(
            f"INSERT INTO audit_events ({', '.join(names)}) VALUES "
            f"({', '.join('?' for _ in names)})",
            [row[name] for name in names],
        )

    def advance(self, seq: int, hash: str, mac: str | None, key_id: str | None) -> None:
        self._conn.execute(
            "UPDATE audit_head SET seq = ?, hash = ?, mac = ?, key_id = ? WHERE id = 1",
            (seq, hash, mac, key_id),
        )


def _events(cursor: sqlite3.Cursor, url: str) -> list[AuditEvent]:
    names = [d[0] for d in cursor.description]
    return [event_of_row(dict(zip(names, row, strict=True)), url) for row in cursor.fetchall()]


class _SchemaMoved(Exception):
    """The state's schema version changed since it was opened (see _write)."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _or_store(
    write: Callable[Concatenate[RunState, _P], _R],
) -> Callable[Concatenate[RunState, _P], _R]:
    """A write of the run path, done by the store instead once the store serves
    this process (two connections never interleave transactions), or when the
    schema moved under it (the store migrates, or refuses a newer one, as it does)."""

    @functools.wraps(write)
    def run(self: RunState, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self._store is None:
            try:
                return write(self, *args, **kwargs)
            except _SchemaMoved:
                pass
        method: Callable[_P, _R] = getattr(self.store, write.__name__)
        return method(*args, **kwargs)

    return run


class RunState:
    """The rows of a runtime fetch, read and written with sqlite3; the full
    store (opened on first need) for everything else. Typed as a StateStore
    where it stands in for one: every other attribute is the store's."""

    dialect = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        url: str,
        open_store: Callable[[], StateStore],
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._conn = conn
        self._path = path
        self.url = url
        self._open_store = open_store
        self._clock = clock
        self._lock = threading.RLock()
        self._store: StateStore | None = None
        self._chain_keys: ChainKeySource | None = None
        self._last_appended: AuditEvent | None = None
        self._trail: str | None = None

    # -- the full store, for everything else -----------------------------------

    @property
    def store(self) -> StateStore:
        """The SQLAlchemy store on the same database (opened now if it is not yet);
        from then on it serves every call, so no two transactions interleave."""
        with self._lock:
            if self._store is None:
                store = self._open_store()
                store.chain_keys = self._chain_keys
                self._store = store
            return self._store

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_store", "_conn", "_lock"):
            raise AttributeError(name)
        return getattr(self.store, name)

    @property
    def stepped_aside(self) -> bool:
        """True once the full store serves every call."""
        return self._store is not None

    @property
    def chain_keys(self) -> ChainKeySource | None:
        return self._store.chain_keys if self._store is not None else self._chain_keys

    @chain_keys.setter
    def chain_keys(self, keys: ChainKeySource | None) -> None:
        self._chain_keys = keys
        if self._store is not None:
            self._store.chain_keys = keys

    @property
    def last_appended(self) -> AuditEvent | None:
        """This process's latest append, by this path or the store's (for the anchor)."""
        theirs = self._store.last_appended if self._store is not None else None
        ours = self._last_appended
        if theirs is None or (ours is not None and ours.seq > theirs.seq):
            return ours
        return theirs

    @last_appended.setter
    def last_appended(self, event: AuditEvent | None) -> None:
        self._last_appended = event
        if self._store is not None:
            self._store.last_appended = event

    @property
    def trail(self) -> str | None:
        if self._store is not None and self._store.trail is not None:
            return self._store.trail
        return self._trail

    @trail.setter
    def trail(self, value: str | None) -> None:
        self._trail = value
        if self._store is not None:
            self._store.trail = value

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._store is not None:
                self._store.close()

    def __enter__(self) -> RunState:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """sqlite3 failures become the StateError the store would raise."""
        try:
            yield
        except sqlite3.Error as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            name = str(getattr(exc, "sqlite_errorname", "") or "")
            known = sqlite_cause(name, first, self._path.parent)
            if known is not None:
                message, hint = known
                raise StateError(f"state store {self.url}: {message}", hint=hint) from None
            if isinstance(exc, sqlite3.IntegrityError):
                hint = "the record already exists (recorded by a concurrent run?); retry"
            elif "database is locked" in first:
                hint = (
                    f"another process kept the SQLite state locked for over "
                    f"{BUSY_TIMEOUT_SECONDS:g}s; retry"
                )
            else:
                hint = "check the state URL (--state, AGENTCTL_STATE, or 'state:' in agentctl.yaml)"
            raise StateError(
                f"state store {self.url}: {type(exc).__name__}: {first}", hint=hint
            ) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed write transaction (BEGIN IMMEDIATE, as the store's)."""
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Checked again under the write lock: a `state migrate` may have
                # run since this state was opened; the store then decides.
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                if row is None or row[0] != SCHEMA_VERSION:
                    raise _SchemaMoved
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock, self._errors():
            return self._conn.execute(sql, params).fetchall()

    # -- what a runtime fetch reads and writes -------------------------------------

    def require_room(self) -> None:
        if self._store is not None:
            return self._store.require_room()
        _require_room(self._path.parent)
        return None

    def get_agent(self, name: str) -> AgentRecord | None:
        if self._store is not None:
            return self._store.get_agent(name)
        rows = self._rows(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE name = ?", (name,))
        return (
            agent_record(self.url, dict(zip(_AGENT_NAMES, rows[0], strict=True))) if rows else None
        )

    def get_resource(self, agent: str, provider: str) -> ResourceRecord | None:
        if self._store is not None:
            return self._store.get_resource(agent, provider)
        rows = self._rows(
            f"SELECT {_RESOURCE_COLUMNS} FROM resources WHERE agent = ? AND provider = ?",
            (agent, provider),
        )
        return self._resource(rows[0]) if rows else None

    def list_resources(self, agent: str | None = None) -> list[ResourceRecord]:
        if self._store is not None or agent is None:
            return self.store.list_resources(agent)
        rows = self._rows(
            f"SELECT {_RESOURCE_COLUMNS} FROM resources WHERE agent = ? ORDER BY provider",
            (agent,),
        )
        return [self._resource(row) for row in rows]

    def _resource(self, row: tuple[Any, ...]) -> ResourceRecord:
        return resource_record(self.url, dict(zip(_RESOURCE_NAMES, row, strict=True)))

    def list_credentials(
        self,
        agent: str | None = None,
        provider: str | None = None,
        live_at: datetime | None = None,
    ) -> list[CredentialRecord]:
        """As StateStore.list_credentials, for one agent (exec's end revokes the
        GitHub token it minted from this list)."""
        if self._store is not None or agent is None:
            return self.store.list_credentials(agent, provider, live_at)
        where = ["agent = ?"]
        params: list[str | None] = [agent]
        if provider is not None:
            where.append("provider = ?")
            params.append(provider)
        if live_at is not None:
            # Stored timestamps are fixed-width text: compared as the store's SQL does.
            where.append("revoked_at IS NULL AND expires_at > ?")
            params.append(stored_time(live_at))
        rows = self._rows(
            f"SELECT {', '.join(_CREDENTIAL_COLUMNS)} FROM credentials "
            f"WHERE {' AND '.join(where)} ORDER BY issued_at, id",
            tuple(params),
        )
        return [
            credential_record(self.url, dict(zip(_CREDENTIAL_COLUMNS, row, strict=True)))
            for row in rows
        ]

    @_or_store
    def add_credential(
        self,
        *,
        id: str,
        agent: str,
        provider: str,
        kind: str,
        fingerprint: str,
        issued_at: datetime,
        expires_at: datetime,
        on_behalf_of: str | None = None,
        trigger: str | None = None,
        secret_ref: str | None = None,
    ) -> CredentialRecord:
        """As StateStore.add_credential: metadata only, never the value."""
        record = CredentialRecord(
            id=id,
            agent=agent,
            provider=provider,
            kind=kind,
            fingerprint=fingerprint,
            issued_at=issued_at,
            expires_at=expires_at,
            on_behalf_of=on_behalf_of,
            trigger=trigger,
            secret_ref=secret_ref,
        )
        values = {name: getattr(record, name) for name in _CREDENTIAL_COLUMNS}
        check_no_secrets(values, f"credential {id}")
        stored = [stored_time(v) if isinstance(v, datetime) else v for v in values.values()]
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO credentials ({', '.join(_CREDENTIAL_COLUMNS)}) VALUES "
                f"({', '.join('?' for _ in _CREDENTIAL_COLUMNS)})",
                stored,
            )
        return record

    @_or_store
    def set_credential_fingerprint(self, id: str, fingerprint: str) -> bool:
        check_no_secrets({"fingerprint": fingerprint}, f"credential {id}")
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE credentials SET fingerprint = ? WHERE id = ?", (fingerprint, id)
            )
            return cursor.rowcount == 1

    @_or_store
    def settle_credential(
        self, id: str, *, fingerprint: str, expires_at: datetime | None = None
    ) -> bool:
        values: dict[str, Any] = {"fingerprint": fingerprint}
        if expires_at is not None:
            values["expires_at"] = expires_at
        check_no_secrets(values, f"credential {id}")
        with self._write() as conn:
            if expires_at is None:
                cursor = conn.execute(
                    "UPDATE credentials SET fingerprint = ? WHERE id = ?", (fingerprint, id)
                )
            else:
                cursor = conn.execute(
                    "UPDATE credentials SET fingerprint = ?, expires_at = ? WHERE id = ?",
                    (fingerprint, stored_time(expires_at), id),
                )
            return cursor.rowcount == 1

    @_or_store
    def mark_credential_revoked(self, id: str, at: datetime) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (stored_time(at), id),
            )
            return cursor.rowcount == 1

    @_or_store
    def append_audit(
        self,
        draft: AuditDraft,
        *,
        operator: str,
        id: str | None = None,
        time: datetime | None = None,
    ) -> AuditEvent:
        """As StateStore.append_audit, through the same chain rule."""
        import uuid

        event = new_event(
            draft, operator=operator, id=id or uuid.uuid4().hex, time=time or self._clock()
        )
        with self._write() as conn:
            event, head, appended = append_event(
                _SqliteChain(conn, self.url),
                event,
                replay=id is not None,
                chain_keys=self._chain_keys,
                url=self.url,
            )
        if appended:
            with self._lock:
                self._trail = head.trail
                if self._last_appended is None or event.seq > self._last_appended.seq:
                    self._last_appended = event
        return event

    def audit_events(
        self,
        agent: str | None = None,
        since: datetime | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """As StateStore.audit_events (``agent`` matches actor or target)."""
        if self._store is not None:
            return self._store.audit_events(agent=agent, since=since, action=action, limit=limit)
        where: list[str] = []
        params: list[Any] = []
        if agent is not None:
            where.append("(actor = ? OR target = ?)")
            params += [agent, agent]
        if since is not None:
            where.append("time >= ?")
            params.append(format_time(since))
        if action is not None:
            where.append("action = ?")
            params.append(action)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if limit is not None:
            sql += " ORDER BY seq DESC LIMIT ?"
            params.append(limit)
        else:
            sql += " ORDER BY seq"
        with self._lock, self._errors():
            events = _events(self._conn.execute(sql, params), self.url)
        return events[::-1] if limit is not None else events
