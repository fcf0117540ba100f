"""The state store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

Every operation is one short transaction on its own pooled connection, so a
long ``apply`` never holds the database: readers (and ``kill``, and audit
appends from other processes) interleave freely with it. Mutual exclusion of
whole ``apply`` runs is the separate, explicit :meth:`StateStore.apply_lock`.

Dialect differences are confined to connection setup, the upsert construct
and the locks; everything else is the same code on both.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time as _time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL

from agentctl.clock import Clock, system_clock
from agentctl.errors import (
    DamagedStateRow,
    LockTimeout,
    StateError,
    StateNotFound,
    StateUrlError,
)
from agentctl.model import AgentStatus
from agentctl.secrets import check_no_secrets
from agentctl.state import schema as s
from agentctl.state.chain import append_event, dump, event_of_row, new_event
from agentctl.state.locking import AdvisoryLock, FileLock, LockHolder, LockPrimitive
from agentctl.state.records import (
    AUDIT_BATCH_SIZE,
    AgentRecord,
    AgentSummary,
    ApprovalRecord,
    ApprovalStatus,
    AuditDraft,
    AuditEvent,
    AuditHead,
    CredentialRecord,
    IntentRecord,
    LongLivedSecretRecord,
    ResourceRecord,
    ServeCallerRecord,
    agent_record,
    agent_summary,
    approval_record,
    credential_record,
    decode_rows,
    format_time,
    intent_record,
    long_lived_secret_record,
    resource_record,
)
from agentctl.state.room import (  # noqa: F401 (MIN_FREE_BYTES, free_bytes: the store's names)
    FULL_BYTES,
    MIN_FREE_BYTES,
    free_bytes,
    full_filesystem,
    require_room,
    sqlite_cause,
)

if TYPE_CHECKING:
    from sqlalchemy.sql.compiler import SQLCompiler

    from agentctl.audit_key import ChainKey, ChainKeySource
    from agentctl.state.snapshot import PlanSnapshot

# How long a SQLite writer waits for another process's write transaction. Our
# write transactions are milliseconds long; this only has to ride out bursts.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
PG_CONNECT_TIMEOUT_SECONDS = 10
_HINT_URL = "check the state URL (--state, AGENTCTL_STATE, or 'state:' in agentctl.yaml)"
# PostgreSQL SQLSTATEs a user can act on (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_READ_ONLY = "25006"  # read_only_sql_transaction
_PG_DISK_FULL = "53100"  # disk_full
_PG_NO_PRIVILEGE = "42501"  # insufficient_privilege


T = TypeVar("T")


def _parse_url(url: str) -> URL:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StateUrlError(
            "the state URL is not a valid URL",
            hint="use sqlite:///path/to/state.db or postgresql://user@host/db",
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        # psycopg 3 is the driver agentctl ships with; SQLAlchemy's default is psycopg2.
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if parsed.database in (None, "", ":memory:"):
            raise StateUrlError(
                "an in-memory SQLite state would be lost at exit and not shared between runs",
                hint="give a file path: sqlite:////var/lib/agentctl/state.db",
            )
        return parsed
    raise StateUrlError(
        f"unsupported state backend '{parsed.drivername}' in "
        f"{parsed.render_as_string(hide_password=True)}",
        hint="use sqlite:///path/to/state.db or postgresql://user@host/db",
    )


def _prepare_sqlite_file(path: Path, shown: str) -> None:
    """Create the database file owner-only before SQLite does (with the umask)."""
    if path.exists():
        return  # an existing database is opened as it is (perhaps read-only: see below)
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise StateError(
            f"cannot create the state database {shown}: {exc.strerror}",
            hint=f"make {path.parent} writable, or {_HINT_URL}",
        ) from None


def _missing_sqlite_file(url: str) -> Path | None:
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "postgresql" or parsed.database is None:
        return None
    path = Path(parsed.database).expanduser()
    return None if path.exists() else path


def create_state_engine(url: str) -> Engine:
    """An engine for ``url`` with agentctl's connection settings (no schema work)."""
    parsed = _parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS},
        )
    assert parsed.database is not None  # checked by _parse_url
    path = Path(parsed.database).expanduser()
    _prepare_sqlite_file(path, shown)
    # On a read-only filesystem (a mounted backup, a locked-down host) SQLite
    # cannot create the WAL's -shm file and would refuse even to read; opened
    # immutable, the read-only commands (status, list, audit verify) work and
    # a write fails as "attempt to write a readonly database".
    read_only = not os.access(path.parent, os.W_OK) and not os.access(path, os.W_OK)
    # On a full filesystem SQLite cannot create the WAL index (-shm) either,
    # and every command, reads too, failed with "disk I/O error". When the last
    # writer closed cleanly (no -shm, the WAL absent or empty) the database
    # file alone is the whole state: read it immutable, and a write fails with
    # "the filesystem ... is full" (see StateStore._errors).
    full = None if read_only else full_filesystem(path.parent, FULL_BYTES)
    if full and not _wal_in_use(path):
        read_only = True
    else:
        full = None
    if read_only:
        parsed = parsed.set(
            database=f"file:{path.resolve()}?mode=ro&immutable=1"
        ).update_query_dict({"uri": "true"})
    engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    engine.info_agentctl = {"folder": path.parent, "full": full}  # type: ignore[attr-defined]

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (which only
        # BEGINs lazily before DML) so _begin below decides how to begin.
        dbapi_connection.isolation_level = None
        if read_only:
            return
        cursor = dbapi_connection.cursor()
        # WAL: readers never wait for a writer, and a writer never for readers.
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an audit event acknowledged is an audit event on disk.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front (BEGIN IMMEDIATE):
        # upgrading a read transaction later fails at once with SQLITE_BUSY
        # instead of waiting for the busy timeout.
        immediate = conn.get_execution_options().get("agentctl_write", False)
        _driver_sql(conn, "BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _driver_sql(conn: Connection, sql: str) -> None:
    """Run a statement without parameters or rows (BEGIN, SAVEPOINT ...) on the
    SQLite connection itself: what ``conn.exec_driver_sql(sql)`` does, without
    its ~15 us of Python (apply runs four per agent). A failure is raised as
    that raises it, a DBAPIError, which StateStore._errors names."""
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        driver.execute(sql)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def _wal_in_use(path: Path) -> bool:
    shm = path.with_name(path.name + "-shm")
    wal = path.with_name(path.name + "-wal")
    return shm.exists() or (wal.exists() and wal.stat().st_size > 0)


def open_state(url: str, *, clock: Clock = system_clock, create: bool = True) -> StateStore:
    """Open (migrating as needed) the state store at ``url``.

    With ``create=False`` a database that is not there yet — no SQLite file, or
    a PostgreSQL database without agentctl's tables — raises
    :class:`StateNotFound` instead of being created: a typo in ``--state`` must
    not become a new empty store that reports "no agents" to a cron job.
    """
    missing = _missing_sqlite_file(url) if not create else None
    if missing is not None:
        raise _not_found(f"no state database at {missing}")
    store = StateStore(create_state_engine(url), clock=clock)
    try:
        if not create and store.schema_version() == 0:
            raise _not_found(f"the state database {store.url} has no agentctl tables")
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def _not_found(message: str) -> StateNotFound:
    return StateNotFound(
        message,
        hint="check --state, AGENTCTL_STATE and `state:` in agentctl.yaml for a typo; "
        "`agentctl apply` or `agentctl state init` creates the store",
    )


def _new_id() -> str:
    return uuid.uuid4().hex


_APPROVAL_FIELDS = frozenset({"decided_by", "decided_at", "used_at", "reason"})


def _upsertable_insert(dialect: str) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT, which has ON CONFLICT DO UPDATE: one atomic
    statement, so two processes recording the same new row never fail on the
    primary key. The construct has the same API in both dialects but lives in
    each. Only the one in use is imported (PostgreSQL's dialect package costs
    a SQLite user ~0.04 s of every process)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


class _HotStatements:
    """The statements apply runs for every agent, built once per store with
    bind parameters and run with a dict of values.

    Building a Core statement from literal values (coercing each value into a
    bind parameter, then computing the statement's cache key) cost several
    times what running it did: over half of apply's CPU for its state was
    spent there. A statement object built once keeps its cache key.
    """

    def __init__(self, dialect: str) -> None:
        insert = _upsertable_insert(dialect)
        agent, resource, head = s.agents.c, s.resources.c, s.audit_head.c
        self.get_agent = sa.select(s.agents).where(agent.name == sa.bindparam("name"))
        self.get_resource = sa.select(s.resources).where(
            resource.agent == sa.bindparam("agent"), resource.provider == sa.bindparam("provider")
        )
        self.agent_resources = (
            sa.select(s.resources)
            .where(resource.agent == sa.bindparam("agent"))
            .order_by(resource.provider)
        )
        new_resource = insert(s.resources)
        self.put_resource = new_resource.on_conflict_do_update(
            index_elements=["agent", "provider"],
            set_={
                name: new_resource.excluded[name]
                for name in ("resource_id", "attributes", "applied_hash", "updated_at")
            },
        )
        # An agent's facts: a NULL document keeps the recorded one; the status is
        # updated only by the "set status" variant (a new row always takes it).
        new_agent = insert(s.agents)
        facts = {
            name: new_agent.excluded[name]
            for name in (
                "owner",
                "purpose",
                "execution_mode",
                "expiry",
                "contract_hash",
                "updated_at",
            )
        }
        facts["document"] = sa.func.coalesce(new_agent.excluded.document, agent.document)
        self.upsert_agent = {
            keep_status: new_agent.on_conflict_do_update(
                index_elements=["name"],
                set_=facts
                if keep_status
                else {
                    **facts,
                    "status": new_agent.excluded.status,
                    "status_reason": new_agent.excluded.status_reason,
                },
            )
            for keep_status in (True, False)
        }
        self.upsert_agent_returning = {
            keep_status: statement.returning(*s.agents.c)
            for keep_status, statement in self.upsert_agent.items()
        }
        # The head row lock (a no-op on SQLite, where BEGIN IMMEDIATE already
        # serializes writers) makes read-head/insert/advance atomic across
        # processes: the chain cannot fork.
        self.audit_head = (
            sa.select(head.seq, head.hash, head.key_id, head.trail)
            .where(head.id == 1)
            .with_for_update()
        )
        self.append_audit = s.audit_events.insert()
        self.advance_audit_head = (
            s.audit_head.update()
            .where(head.id == 1)
            .values(
                seq=sa.bindparam("new_seq"),
                hash=sa.bindparam("new_hash"),
                mac=sa.bindparam("new_mac"),
                key_id=sa.bindparam("new_key_id"),
            )
        )


class _OnDriver:
    """A hot statement rendered once for SQLite and run on the driver's own
    cursor (the sqlite3 module), with SQLAlchemy's type conversions for its
    parameters and result columns: the same SQL and the same stored values as
    ``Connection.execute``, without its ~0.1 ms of Python per call (apply
    runs ~7 of these per agent; they were most of its state CPU)."""

    def __init__(
        self,
        statement: sa.sql.ClauseElement,
        dialect: Any,
        *,
        column_keys: Sequence[str] | None = None,
        columns: Sequence[sa.Column[Any]] = (),
    ) -> None:
        compiled = cast("SQLCompiler", statement.compile(dialect=dialect, column_keys=column_keys))
        self.sql = str(compiled)
        self.params = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        )
        # Values written into the statement itself (the head's `id == 1`):
        # the caller passes only the bind parameters it names.
        self.constants = {
            name: bind.value
            for name in compiled.positiontup or ()
            if not (bind := compiled.binds[name]).required
        }
        self.keys = tuple(column.key for column in columns)
        self.results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )

    def run(self, conn: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.constants:
            values = {**self.constants, **values}
        args = [
            values[name] if process is None else process(values[name])
            for name, process in self.params
        ]
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            rows = driver.execute(self.sql, args).fetchall()
        except sqlite3.Error as exc:
            # What Connection.execute raises, so StateStore._errors names it.
            raise sa.exc.DBAPIError.instance(self.sql, args, exc, sqlite3.Error) from exc
        keys, results = self.keys, self.results
        return [
            {
                key: value if process is None or value is None else process(value)
                for key, process, value in zip(keys, results, row, strict=True)
            }
            for row in rows
        ]


class _OnSqlite:
    """apply's per-agent statements, run on the sqlite3 driver (see _OnDriver)."""

    def __init__(self, hot: _HotStatements, dialect: Any) -> None:
        agents, resources = list(s.agents.c), list(s.resources.c)
        self.get_agent = _OnDriver(hot.get_agent, dialect, columns=agents)
        self.agent_resources = _OnDriver(hot.agent_resources, dialect, columns=resources)
        self.put_resource = _OnDriver(
            hot.put_resource, dialect, column_keys=[c.key for c in resources]
        )
        self.append_audit = _OnDriver(
            hot.append_audit, dialect, column_keys=[c.key for c in s.audit_events.c]
        )
        # The chain head: read once per group commit (or per append outside
        # one), written once per group commit.
        head = s.audit_head.c
        self.audit_head = _OnDriver(
            hot.audit_head, dialect, columns=[head.seq, head.hash, head.key_id, head.trail]
        )
        self.advance_audit_head = _OnDriver(hot.advance_audit_head, dialect)
        agent_keys = [c.key for c in agents if c.key not in {"killed_at", "last_rotated_at"}]
        self.upsert_agent_returning = {
            keep_status: _OnDriver(statement, dialect, column_keys=agent_keys, columns=agents)
            for keep_status, statement in hot.upsert_agent_returning.items()
        }


class _GroupHead:
    """The audit chain head while a group commit runs (StateStore.batched).

    Read once when the group appends its first event, advanced in memory by
    each append, written once just before the group's commit. The group holds
    SQLite's write lock (BEGIN IMMEDIATE) from its first statement to its
    commit, so nobody else can move the head meanwhile, and the committed head
    row is exactly what one UPDATE per event would have left: the per-event
    values in between were never visible outside the transaction.
    """

    __slots__ = ("dirty", "hash", "key_id", "mac", "seq", "trail")

    def __init__(self) -> None:
        self.seq: int | None = None  # None: not read yet
        self.hash = ""
        self.key_id: str | None = None
        self.trail: str | None = None
        self.mac: str | None = None  # the head's MAC (under the key that sealed the last event)
        self.dirty = False

    def snapshot(self) -> tuple[Any, ...]:
        return (self.seq, self.hash, self.key_id, self.trail, self.mac, self.dirty)

    def restore(self, saved: tuple[Any, ...]) -> None:
        self.seq, self.hash, self.key_id, self.trail, self.mac, self.dirty = saved


class _GroupWork(Generic[T]):
    """One caller's work in a group commit (StateStore.batched)."""

    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: Exception | None = None
        self.lead = False  # this caller commits the next group
        self.finished = False
        self.wake = threading.Event()


class StateStore:
    """Agents, resources, credential metadata, approvals and the audit chain."""

    def __init__(self, engine: Engine, *, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._clock = clock
        # The connection of this thread's open batch(), if any.
        self._batch = threading.local()
        # SQLite has one writer at a time, and a writer that finds the lock taken
        # polls for it with sleeps growing to 100 ms: with 16 apply threads most
        # of the time went to sleeping while the lock was free. Threads of this
        # process queue on this lock instead and take the write lock the moment
        # it is released; other processes still meet SQLite's busy timeout.
        # PostgreSQL queues writers itself.
        self._local_writer: threading.Lock | None = (
            threading.Lock() if engine.dialect.name == "sqlite" else None
        )
        self.url = engine.url.render_as_string(hide_password=True)
        self.dialect = engine.dialect.name
        self._hot = _HotStatements(self.dialect)
        # SQLite with RETURNING (3.35+): the hot statements run on the driver.
        self._on_sqlite = (
            _OnSqlite(self._hot, engine.dialect)
            if self.dialect == "sqlite" and engine.dialect.insert_returning
            else None
        )
        # Where the audit chain key comes from (agentctl.audit_key). None: this
        # store writes unkeyed events (tests of other parts, old callers).
        self.chain_keys: ChainKeySource | None = None
        # The last event this process appended, for the anchor written when
        # the command ends (agentctl.audit_anchor).
        self.last_appended: AuditEvent | None = None
        self.trail: str | None = None  # the trail's name, from the head row
        self._appended_lock = threading.Lock()
        # Group commit (see batched): work waiting for the next shared transaction.
        self._group_lock = threading.Lock()
        self._group_pending: list[_GroupWork[Any]] = []
        self._group_leading = False

    # -- plumbing -----------------------------------------------------------

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Database failures become a StateError naming the (redacted) URL.

        Only failures of the database or the connection to it: SQLAlchemy's
        own errors about our statements (a naive datetime, a wrong column) are
        bugs and propagate as such.
        """
        try:
            yield
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            orig = getattr(exc, "orig", None) or exc
            first_line = (str(orig).strip().splitlines() or [""])[0]
            known = self._known_cause(orig, first_line)
            if known is not None:
                message, hint = known
                raise StateError(f"state store {self.url}: {message}", hint=hint) from None
            if isinstance(exc, sa.exc.IntegrityError):
                hint = "the record already exists (recorded by a concurrent run?); retry"
            elif "database is locked" in first_line:
                hint = (
                    f"another process kept the SQLite state locked for over "
                    f"{SQLITE_BUSY_TIMEOUT_SECONDS:g}s; retry"
                )
            else:
                hint = (
                    "check that the database is running and reachable and that the "
                    f"credentials are right; {_HINT_URL}"
                )
            raise StateError(
                f"state store {self.url}: {type(orig).__name__}: {first_line}", hint=hint
            ) from None

    def _known_cause(self, orig: object, first_line: str) -> tuple[str, str] | None:
        """(message, hint) for a database failure whose real cause we can name:
        a full disk, a read-only database, a role that may not write."""
        nothing = "nothing was recorded by the failed write"
        info = getattr(self._engine, "info_agentctl", None) or {}
        folder = info.get("folder")
        name = str(getattr(orig, "sqlite_errorname", "") or "")
        if self.dialect == "sqlite" and folder is not None:
            known = sqlite_cause(name, first_line, folder, info.get("full"))
            if known is not None:
                return known
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate == _PG_READ_ONLY:
            return (
                "the PostgreSQL state is read-only (a hot standby, or "
                "default_transaction_read_only is on for this role or database)",
                "point --state / AGENTCTL_STATE at the primary with a role that may write; "
                f"status, list and audit work on a read-only state; {nothing}",
            )
        if sqlstate == _PG_DISK_FULL:
            return (
                "the PostgreSQL server is out of disk space",
                f"free space on the database server and run the command again; {nothing}",
            )
        if sqlstate == _PG_NO_PRIVILEGE:
            return (
                f"the database role may not do this: {first_line}",
                "grant the role SELECT, INSERT, UPDATE, DELETE on agentctl's tables (or use "
                f"the role that ran `agentctl state init`); {nothing}",
            )
        return None

    def require_room(self) -> None:
        """Refuse a mutating command up front when a SQLite state cannot take
        what it would record (see MIN_FREE_BYTES): before any cloud write."""
        if self.dialect == "postgresql":
            # A hot standby, default_transaction_read_only or a role that may
            # only read would let the command change the cloud and then fail
            # to record it: lock the audit head for update (needs a writable
            # transaction and UPDATE) and let go at once.
            with self._write() as conn:
                conn.execute(sa.select(s.audit_head.c.id).with_for_update())
            return
        info = getattr(self._engine, "info_agentctl", None) or {}
        folder = info.get("folder")
        if folder is None:
            return
        require_room(folder, info.get("full"))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make this thread's reads and writes one transaction until the block ends.

        For recording what one agent's apply did (its resources, its audit
        events, its record) with one commit — one disk sync on SQLite —
        instead of one per write. Keep provider calls outside: the write lock
        (and on PostgreSQL the audit chain head) is held until the block ends.
        Nested batches join the outer one.
        """
        if getattr(self._batch, "conn", None) is not None:
            yield
            return
        with self._writer_turn(), self._errors(), self._engine.connect() as conn:
            conn.execution_options(agentctl_write=True)
            with conn.begin():
                self._batch.conn = conn
                try:
                    yield
                finally:
                    self._batch.conn = None

    def batched(self, work: Callable[[], T]) -> T:
        """Run ``work`` (reads and writes of this store) as one write transaction
        and return its result once that is committed: what :meth:`batch` does,
        except that on SQLite, threads of this process asking at the same time
        share one transaction and one commit (group commit).

        apply records each agent this way from 16 threads: one fsync'd commit
        per agent, serialised by the write lock, had the threads queueing for
        it. Whatever is grouped, each caller returns only after its own writes
        are on disk, exactly as with its own commit: crash consistency is that
        of :meth:`batch`. Each work runs in a savepoint, so one that raises is
        undone alone and the error re-raised in its own thread; a commit that
        fails fails every work of the group. ``work`` runs on whichever thread
        commits the group: it must not rely on thread-locals of its own.
        """
        if self._local_writer is None or getattr(self._batch, "conn", None) is not None:
            with self.batch():  # PostgreSQL queues writers itself; nested: join
                return work()
        item: _GroupWork[T] = _GroupWork(work)
        with self._group_lock:
            self._group_pending.append(item)
            if not self._group_leading:
                self._group_leading = True
                item.lead = True
        while True:
            if item.lead:
                item.lead = False
                self._commit_group()
            if item.finished:
                break
            item.wake.wait()
            item.wake.clear()
        if item.error is not None:
            raise item.error
        return cast(T, item.result)

    def _commit_group(self) -> None:
        """Run every work waiting now in one transaction (a savepoint each), commit
        once, wake their threads, and hand the lead to the next one waiting."""
        with self._group_lock:
            group, self._group_pending = self._group_pending, []
        with self._appended_lock:
            appended_before = self.last_appended
        try:
            with self.batch():
                conn = self._batch.conn
                head = self._batch.group_head = _GroupHead()
                try:
                    for item in group:
                        # A savepoint per work, in plain SQL on the driver:
                        # SQLAlchemy's begin_nested() cost ~0.2 ms of Python
                        # per work (group commit is SQLite-only).
                        saved = head.snapshot()
                        with self._appended_lock:
                            appended = self.last_appended
                        _driver_sql(conn, "SAVEPOINT agentctl_group_work")
                        try:
                            item.result = item.work()
                        except Exception as exc:
                            _driver_sql(conn, "ROLLBACK TO SAVEPOINT agentctl_group_work")
                            _driver_sql(conn, "RELEASE SAVEPOINT agentctl_group_work")
                            head.restore(saved)  # its events are undone: so is their head
                            with self._appended_lock:
                                self.last_appended = appended
                            item.error = exc
                        else:
                            _driver_sql(conn, "RELEASE SAVEPOINT agentctl_group_work")
                    self._write_group_head(conn, head)
                finally:
                    self._batch.group_head = None
        except BaseException as exc:  # the commit (or the transaction) failed: all of them
            with self._appended_lock:  # nothing of the group was recorded
                self.last_appended = appended_before
            for item in group:
                if item.error is None:
                    item.error = exc if isinstance(exc, Exception) else StateError(str(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            following = None
            with self._group_lock:
                if self._group_pending:
                    following = self._group_pending[0]
                    following.lead = True
                else:
                    self._group_leading = False
            for item in group:
                item.finished = True
                item.wake.set()
            if following is not None:
                following.wake.set()

    def _write_group_head(self, conn: Connection, head: _GroupHead) -> None:
        """Write the head a group commit advanced in memory (see _GroupHead)."""
        if not head.dirty or head.seq is None:
            return
        _SqlChain(conn, self._hot, self._on_sqlite, None, self.url).advance(
            head.seq, head.hash, head.mac, head.key_id
        )
        head.dirty = False

    @contextlib.contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Wait for this process's other writers (SQLite; see __init__)."""
        if self._local_writer is None:
            yield
            return
        if not self._local_writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_SECONDS):
            raise StateError(
                f"state store {self.url}: a write waited over "
                f"{SQLITE_BUSY_TIMEOUT_SECONDS:g}s for another write of this process",
                hint="retry; if it persists, report it with the command that was running",
            )
        try:
            yield
        finally:
            self._local_writer.release()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        batched = getattr(self._batch, "conn", None)
        if batched is not None:
            yield batched
            return
        with self._errors(), self._engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        batched = getattr(self._batch, "conn", None)
        if batched is not None:
            with self._errors():
                yield batched
            return
        with self._writer_turn(), self._errors(), self._engine.connect() as conn:
            conn.execution_options(agentctl_write=True)
            with conn.begin():
                yield conn

    def _upsert(
        self,
        table: sa.Table,
        keys: Sequence[str],
        values: Mapping[str, Any],
        update: Mapping[str, Any],
    ) -> sa.sql.Executable:
        return (
            _upsertable_insert(self.dialect)(table)
            .values(**values)
            .on_conflict_do_update(index_elements=list(keys), set_=dict(update))
        )

    def migrate(self) -> int:
        """Apply pending forward migrations; returns the schema version."""
        with self._read() as conn:
            version = s.current_version(conn)
            if version == s.LATEST_VERSION:
                return s.LATEST_VERSION
            if self.dialect == "postgresql":
                self._require_create(conn, version)
        with self._write() as conn:
            return s.migrate(conn)

    def _require_create(self, conn: Connection, version: int) -> None:
        """Refuse, saying which role must act, when this PostgreSQL login may
        not make or upgrade the tables: operators' logins hold only DML on
        them (README, "Running agentctl as a team"), so after an upgrade
        PostgreSQL's bare "permission denied for schema" would send them to
        grant what they already have."""
        schema, may_create = conn.execute(
            sa.text("SELECT current_schema(), has_schema_privilege(current_schema(), 'CREATE')")
        ).one()
        if schema is None or may_create is not False:
            return  # no schema on the search_path, or allowed: let migrate say
        doc = (
            "that role needs CREATE on the schema; every other login needs only "
            "SELECT, INSERT, UPDATE, DELETE on agentctl's tables; nothing was changed"
        )
        if version == 0:
            raise StateError(
                f"state store {self.url}: this database role may not create agentctl's "
                f'tables (no CREATE on schema "{schema}")',
                hint=f"run `agentctl state init` once as the role that owns the schema; {doc}",
            )
        raise StateError(
            f"state store {self.url}: agentctl's tables are at schema version {version} "
            f"and this agentctl needs {s.LATEST_VERSION}; this database role may not "
            f'upgrade them (no CREATE on schema "{schema}")',
            hint=f"run `agentctl state migrate` as the role that ran `agentctl state init`; {doc}",
        )

    def schema_version(self) -> int:
        with self._read() as conn:
            return s.current_version(conn)

    # -- agents ---------------------------------------------------------------

    def get_agent(self, name: str) -> AgentRecord | None:
        with self._read() as conn:
            row = conn.execute(self._hot.get_agent, {"name": name}).mappings().first()
        return None if row is None else agent_record(self.url, row)

    def get_agent_and_resources(
        self, name: str
    ) -> tuple[AgentRecord | None, dict[str, ResourceRecord]]:
        """The agent and its resources by provider, read together (one snapshot)."""
        row: Mapping[Any, Any] | None
        rows: Sequence[Mapping[Any, Any]]
        with self._read() as conn:
            if self._on_sqlite is not None:
                if not conn.in_transaction():
                    conn.begin()  # one read transaction for both: one snapshot
                agents = self._on_sqlite.get_agent.run(conn, {"name": name})
                row = agents[0] if agents else None
                rows = self._on_sqlite.agent_resources.run(conn, {"agent": name})
            else:
                row = conn.execute(self._hot.get_agent, {"name": name}).mappings().first()
                rows = conn.execute(self._hot.agent_resources, {"agent": name}).mappings().all()
        resources = {r.provider: r for r in (resource_record(self.url, row) for row in rows)}
        return (None if row is None else agent_record(self.url, row)), resources

    def list_agents(self, damaged: list[DamagedStateRow] | None = None) -> list[AgentRecord]:
        """Every agent, by name; ``damaged``: collect damaged rows there instead
        of raising (agentctl.state.records.decode_rows)."""
        with self._read() as conn:
            rows = conn.execute(sa.select(s.agents).order_by(s.agents.c.name)).mappings().all()
        return decode_rows(agent_record, self.url, rows, damaged)

    def plan_snapshot(self) -> PlanSnapshot:
        """What a plan compares (agentctl.state.snapshot.PlanSnapshot), from one
        read transaction: only those columns, so a plan, as on SQLite's fast
        path, neither reads nor trips over an applied contract or attributes."""
        from agentctl.state.snapshot import PlanSnapshot, recorded_agent, recorded_resource

        a, r = s.agents.c, s.resources.c
        with self._snapshot() as conn:
            agents = conn.execute(
                sa.select(a.name, a.owner, a.status, a.contract_hash).order_by(a.name)
            ).mappings()
            recorded = tuple(recorded_agent(self.url, row) for row in agents)
            resources = conn.execute(
                sa.select(r.agent, r.provider, r.applied_hash).order_by(r.agent, r.provider)
            ).mappings()
            return PlanSnapshot(
                recorded, tuple(recorded_resource(self.url, row) for row in resources)
            )

    def agent_summaries(self, damaged: list[DamagedStateRow] | None = None) -> list[AgentSummary]:
        """Every agent, by name, with only what ``status``/``list`` show
        (``damaged``: as for list_agents)."""
        a = s.agents.c
        query = sa.select(
            a.name,
            a.owner,
            a.execution_mode,
            a.expiry,
            a.status,
            a.status_reason,
            a.last_rotated_at,
        ).order_by(a.name)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return decode_rows(agent_summary, self.url, rows, damaged)

    def upsert_agent(
        self,
        name: str,
        *,
        owner: str,
        purpose: str,
        execution_mode: str,
        expiry: date | None,
        contract_hash: str | None = None,
        status: AgentStatus | None = None,
        status_reason: str | None = None,
        document: Mapping[str, Any] | None = None,
    ) -> AgentRecord:
        """Record the agent's contract facts; ``status=None`` keeps the recorded status
        (a new agent starts active). ``document`` is the applied contract."""
        now = self._clock()
        facts = {
            "owner": owner,
            "purpose": purpose,
            "execution_mode": str(execution_mode),
            "expiry": expiry,
            "contract_hash": contract_hash,
            "updated_at": now,
        }
        values = {
            **facts,
            "document": None if document is None else dump(document),
            "name": name,
            "status": (status or AgentStatus.ACTIVE).value,
            "status_reason": status_reason,
            "created_at": now,
        }
        keep_status = status is None
        row: Mapping[Any, Any]
        with self._write() as conn:
            if self._on_sqlite is not None:
                row = self._on_sqlite.upsert_agent_returning[keep_status].run(conn, values)[0]
            elif conn.dialect.insert_returning:
                returning = self._hot.upsert_agent_returning[keep_status]
                row = conn.execute(returning, values).mappings().one()
            else:  # SQLite before 3.35
                conn.execute(self._hot.upsert_agent[keep_status], values)
                row = conn.execute(self._hot.get_agent, {"name": name}).mappings().one()
        return agent_record(self.url, row)

    def set_agent_status(
        self,
        name: str,
        status: AgentStatus,
        reason: str | None,
        *,
        expected: AgentStatus | None = None,
    ) -> bool:
        """Set the status; with ``expected``, only if it is currently that (compare-and-set).

        Returns whether a row changed. ``killed_at`` keeps the time of the first
        kill while the agent stays killed, so repeating a kill is idempotent.
        """
        now = self._clock()
        killed_at: Any = None
        if status.killed:
            # Finishing an incomplete kill keeps the time it began.
            killed_at = sa.case(
                (
                    s.agents.c.status.in_(
                        [AgentStatus.KILLED.value, AgentStatus.KILL_INCOMPLETE.value]
                    ),
                    s.agents.c.killed_at,
                ),
                else_=now,
            )
        statement = (
            s.agents.update()
            .where(s.agents.c.name == name)
            .values(status=status.value, status_reason=reason, updated_at=now, killed_at=killed_at)
        )
        if expected is not None:
            statement = statement.where(s.agents.c.status == expected.value)
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def mark_rotated(self, name: str, at: datetime) -> bool:
        statement = (
            s.agents.update()
            .where(s.agents.c.name == name)
            .values(last_rotated_at=at, updated_at=self._clock())
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def delete_agent(self, name: str) -> bool:
        with self._write() as conn:
            return conn.execute(s.agents.delete().where(s.agents.c.name == name)).rowcount == 1

    # -- resources -------------------------------------------------------------

    def get_resource(self, agent: str, provider: str) -> ResourceRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(self._hot.get_resource, {"agent": agent, "provider": provider})
                .mappings()
                .first()
            )
        return None if row is None else resource_record(self.url, row)

    def list_resources(self, agent: str | None = None) -> list[ResourceRecord]:
        with self._read() as conn:
            if agent is None:
                query = sa.select(s.resources).order_by(s.resources.c.agent, s.resources.c.provider)
                rows = conn.execute(query).mappings().all()
            else:
                rows = conn.execute(self._hot.agent_resources, {"agent": agent}).mappings().all()
        return [resource_record(self.url, row) for row in rows]

    def put_resource(
        self,
        agent: str,
        provider: str,
        resource_id: str,
        attributes: Mapping[str, Any],
        applied_hash: str | None = None,
    ) -> ResourceRecord:
        check_no_secrets(dict(attributes), f"resource {agent}/{provider} attributes")
        check_no_secrets(resource_id, f"resource {agent}/{provider} id")
        update = {
            "resource_id": resource_id,
            "attributes": dump(dict(attributes)),
            "applied_hash": applied_hash,
            "updated_at": self._clock(),
        }
        values = {"agent": agent, "provider": provider, **update}
        with self._write() as conn:
            if self._on_sqlite is not None:
                self._on_sqlite.put_resource.run(conn, values)
            else:
                conn.execute(self._hot.put_resource, values)
        return resource_record(self.url, values)

    def delete_resource(self, agent: str, provider: str) -> bool:
        statement = s.resources.delete().where(
            s.resources.c.agent == agent, s.resources.c.provider == provider
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    # -- intents ------------------------------------------------------------------

    def put_intent(
        self, agent: str, provider: str, action: str, detail: Mapping[str, Any]
    ) -> IntentRecord:
        """Announce ``action`` on ``agent`` before the call that makes it (replaces an
        earlier one for the same agent, provider and action)."""
        check_no_secrets(dict(detail), f"intent {agent}/{provider}/{action}")
        values = {
            "agent": agent,
            "provider": provider,
            "action": action,
            "detail": dump(dict(detail)),
            "created_at": self._clock(),
        }
        statement = self._upsert(
            s.intents,
            ("agent", "provider", "action"),
            values,
            {"detail": values["detail"], "created_at": values["created_at"]},
        )
        with self._write() as conn:
            conn.execute(statement)
        return intent_record(self.url, values)

    def get_intent(self, agent: str, provider: str, action: str) -> IntentRecord | None:
        query = sa.select(s.intents).where(
            s.intents.c.agent == agent,
            s.intents.c.provider == provider,
            s.intents.c.action == action,
        )
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else intent_record(self.url, row)

    def list_intents(self, provider: str | None = None) -> list[IntentRecord]:
        query = sa.select(s.intents).order_by(s.intents.c.agent, s.intents.c.action)
        if provider is not None:
            query = query.where(s.intents.c.provider == provider)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [intent_record(self.url, row) for row in rows]

    def clear_intent(self, agent: str, provider: str, action: str) -> bool:
        """Settle an intent (in the transaction that records its outcome)."""
        statement = s.intents.delete().where(
            s.intents.c.agent == agent,
            s.intents.c.provider == provider,
            s.intents.c.action == action,
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    # -- credentials (metadata only) -----------------------------------------

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
        """Record an issued credential's metadata (never its value; ``secret_ref``
        names where the secret store keeps it, if anywhere)."""
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
        values = {name: getattr(record, name) for name in s.credentials.c.keys()}  # noqa: SIM118
        check_no_secrets(values, f"credential {id}")
        with self._write() as conn:
            conn.execute(s.credentials.insert().values(**values))
        return record

    def list_credentials(
        self,
        agent: str | None = None,
        provider: str | None = None,
        live_at: datetime | None = None,
    ) -> list[CredentialRecord]:
        """Credentials, oldest first; ``live_at``: only those neither revoked nor expired then."""
        c = s.credentials.c
        query = sa.select(s.credentials).order_by(c.issued_at, c.id)
        if agent is not None:
            query = query.where(c.agent == agent)
        if provider is not None:
            query = query.where(c.provider == provider)
        if live_at is not None:
            query = query.where(c.revoked_at.is_(None), c.expires_at > live_at)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [credential_record(self.url, row) for row in rows]

    def providers_by_agent(self) -> dict[str, list[str]]:
        """Each agent's recorded providers, sorted: the resource rows without
        their attributes (`status` of 10,000 agents decoded every one)."""
        r = s.resources.c
        query = sa.select(r.agent, r.provider).order_by(r.agent, r.provider)
        found: dict[str, list[str]] = {}
        with self._read() as conn:
            for agent, provider in conn.execute(query):
                found.setdefault(agent, []).append(provider)
        return found

    def live_credential_counts(self, live_at: datetime) -> dict[str, int]:
        """Per agent, how many credentials are neither revoked nor expired at
        ``live_at`` (agents with none are absent): one query for `status` of
        every agent, instead of one :meth:`list_credentials` per agent."""
        c = s.credentials.c
        query = (
            sa.select(c.agent, sa.func.count())
            .where(c.revoked_at.is_(None), c.expires_at > live_at)
            .group_by(c.agent)
        )
        with self._read() as conn:
            return {agent: count for agent, count in conn.execute(query)}

    # -- long-lived secrets (when each was made; never the value) ----------------

    def put_long_lived_secret(self, record: LongLivedSecretRecord) -> LongLivedSecretRecord:
        """Record (or replace) the agent's current secret of ``record.kind``."""
        values = {name: getattr(record, name) for name in s.long_lived_secrets.c.keys()}  # noqa: SIM118
        check_no_secrets(values, f"long-lived secret {record.agent}/{record.provider}")
        update = {k: v for k, v in values.items() if k not in ("agent", "provider", "kind")}
        statement = self._upsert(
            s.long_lived_secrets, ("agent", "provider", "kind"), values, update
        )
        with self._write() as conn:
            conn.execute(statement)
        return record

    def list_long_lived_secrets(
        self, provider: str | None = None, agent: str | None = None
    ) -> list[LongLivedSecretRecord]:
        """One query for every agent (``status`` and ``expiring`` of thousands)."""
        c = s.long_lived_secrets.c
        query = sa.select(s.long_lived_secrets).order_by(c.agent, c.provider, c.kind)
        if provider is not None:
            query = query.where(c.provider == provider)
        if agent is not None:
            query = query.where(c.agent == agent)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [long_lived_secret_record(self.url, row) for row in rows]

    def set_credential_fingerprint(self, id: str, fingerprint: str) -> bool:
        """Fill in the fingerprint of a credential recorded before it was minted
        (so that a crash in between cannot leave a live credential unrecorded)."""
        check_no_secrets({"fingerprint": fingerprint}, f"credential {id}")
        c = s.credentials.c
        statement = s.credentials.update().where(c.id == id).values(fingerprint=fingerprint)
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def settle_credential(
        self, id: str, *, fingerprint: str, expires_at: datetime | None = None
    ) -> bool:
        """Complete a credential recorded as an intent before it was requested: its
        fingerprint (or what became of the request) and, once known, its real expiry.
        False if unknown."""
        values: dict[str, Any] = {"fingerprint": fingerprint}
        if expires_at is not None:
            values["expires_at"] = expires_at
        check_no_secrets(values, f"credential {id}")
        statement = s.credentials.update().where(s.credentials.c.id == id).values(**values)
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def mark_credential_revoked(self, id: str, at: datetime) -> bool:
        """Record revocation; False if unknown or already revoked (first time wins)."""
        c = s.credentials.c
        statement = (
            s.credentials.update().where(c.id == id, c.revoked_at.is_(None)).values(revoked_at=at)
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    # -- approvals ---------------------------------------------------------------

    def create_approval(
        self,
        *,
        agent: str,
        requester: str,
        command: str,
        expires_at: datetime,
        on_behalf_of: str | None = None,
        trigger: str | None = None,
        id: str | None = None,
        created_at: datetime | None = None,
    ) -> ApprovalRecord:
        record = ApprovalRecord(
            id=id or _new_id()[:12],
            agent=agent,
            requester=requester,
            on_behalf_of=on_behalf_of,
            trigger=trigger,
            command=command,
            status=ApprovalStatus.PENDING,
            created_at=created_at or self._clock(),
            expires_at=expires_at,
        )
        values = {name: getattr(record, name) for name in s.approvals.c.keys()}  # noqa: SIM118
        values["status"] = record.status.value
        check_no_secrets(values, f"approval {record.id}")
        with self._write() as conn:
            conn.execute(s.approvals.insert().values(**values))
        return record

    def get_approval(self, id: str) -> ApprovalRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(s.approvals).where(s.approvals.c.id == id))
                .mappings()
                .first()
            )
        return None if row is None else approval_record(self.url, row)

    def list_approvals(
        self, status: str | None = None, agent: str | None = None
    ) -> list[ApprovalRecord]:
        query = sa.select(s.approvals).order_by(s.approvals.c.created_at, s.approvals.c.id)
        if status is not None:
            query = query.where(s.approvals.c.status == ApprovalStatus(status).value)
        if agent is not None:
            query = query.where(s.approvals.c.agent == agent)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [approval_record(self.url, row) for row in rows]

    def transition_approval(
        self, id: str, from_status: str, to_status: str, **fields: str | datetime | None
    ) -> bool:
        """Atomically move ``id`` from ``from_status`` to ``to_status``.

        One UPDATE ... WHERE status = from_status: of two concurrent ``exec``
        runs using one approval, exactly one sees True. ``fields`` may set
        decided_by, decided_at, used_at and reason.
        """
        unknown = set(fields) - _APPROVAL_FIELDS
        if unknown:
            raise TypeError(f"transition_approval got unknown fields {sorted(unknown)}")
        statement = (
            s.approvals.update()
            .where(
                s.approvals.c.id == id, s.approvals.c.status == ApprovalStatus(from_status).value
            )
            .values(status=ApprovalStatus(to_status).value, **fields)
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    # -- audit chain ---------------------------------------------------------------

    def append_audit(
        self,
        draft: AuditDraft,
        *,
        operator: str,
        id: str | None = None,
        time: datetime | None = None,
    ) -> AuditEvent:
        """Append ``draft``, recorded for ``operator``, to the hash chain; return it as stored.

        ``id``/``time`` are for events recorded earlier elsewhere (the fallback
        journal): appending an id that is already in the chain is a no-op that
        returns the stored event, so replays are idempotent.
        """
        event = new_event(draft, operator=operator, id=id or _new_id(), time=time or self._clock())
        with self._write() as conn:
            # Inside a group commit the head is kept in memory (see _GroupHead).
            grouped: _GroupHead | None = getattr(self._batch, "group_head", None)
            event, head, appended = append_event(
                _SqlChain(conn, self._hot, self._on_sqlite, grouped, self.url),
                event,
                replay=id is not None,
                chain_keys=self.chain_keys,
                url=self.url,
            )
        if appended:
            self.remember_appended(event, head.trail)
        return event

    def remember_appended(self, event: AuditEvent, trail: str | None) -> None:
        """Note ``event`` as this process's latest append (anchored at the end of the command)."""
        with self._appended_lock:
            self.trail = trail
            if self.last_appended is None or event.seq > self.last_appended.seq:
                self.last_appended = event

    def load_chain_key(self) -> ChainKey | None:
        """Load (and keep for this process) the trail's chain key now, e.g. before
        ``secrets migrate`` moves it, so this command's own events are still sealed."""
        head = self.audit_head()
        if self.chain_keys is None or head is None or not head.trail:
            return None
        return self.chain_keys.current(head.trail)

    def audit_events(
        self,
        agent: str | None = None,
        since: datetime | None = None,
        action: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Events in chain order, as a list (small trails; the CLI streams with
        :meth:`iter_audit_events`)."""
        return list(self.iter_audit_events(agent=agent, since=since, action=action, limit=limit))

    def iter_audit_events(
        self,
        agent: str | None = None,
        since: datetime | None = None,
        action: str | None = None,
        limit: int | None = None,
        batch_size: int = AUDIT_BATCH_SIZE,
    ) -> Iterator[AuditEvent]:
        """Events in chain order, fetched ``batch_size`` rows at a time (flat memory).

        ``agent`` matches actor or target; ``limit`` keeps the latest N (read
        newest first from the index, then put back in chain order).
        """
        e = s.audit_events.c
        query = sa.select(s.audit_events)
        if agent is not None:
            query = query.where(sa.or_(e.actor == agent, e.target == agent))
        if since is not None:
            query = query.where(e.time >= format_time(since))
        if action is not None:
            query = query.where(e.action == action)
        if limit is not None:
            with self._read() as conn:
                rows = conn.execute(query.order_by(e.seq.desc()).limit(limit)).mappings().all()
            yield from (event_of_row(row, self.url) for row in reversed(rows))
            return
        # With a --since filter, order by an expression of seq: SQLite would
        # otherwise walk the primary key (to skip the sort) and test every
        # row's time instead of seeking the time index.
        order = e.seq + 0 if since is not None else e.seq
        with self._snapshot() as conn:
            yield from self._stream(conn, query.order_by(order), batch_size)

    def _stream(
        self, conn: Connection, query: sa.Select[Any], batch_size: int
    ) -> Iterator[AuditEvent]:
        # A server-side cursor on PostgreSQL, SQLite's own stepping cursor:
        # never more than one batch of rows in memory.
        result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(query)
        # Plain tuples in the table's column order: a mapping per row (and a
        # dict copy of it) was a fifth of `audit export`'s time per event.
        columns = list(result.keys())
        if columns != _AUDIT_COLUMNS:
            for mapping in result.mappings():
                yield event_of_row(mapping, self.url)
            return
        for row in result:
            try:
                yield _stored_audit(*row)
            except (ValueError, TypeError, RecursionError):
                # A value agentctl never writes: name the row and column.
                yield event_of_row(dict(zip(columns, row, strict=True)), self.url)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one moment of the database throughout
        (the head and every event it is checked against, also while new
        events are appended): SQLite's WAL read transaction, PostgreSQL's
        REPEATABLE READ."""
        if getattr(self._batch, "conn", None) is not None:
            with self._read() as conn:
                yield conn
            return
        with self._errors(), self._engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def get_audit_event(self, id: str) -> AuditEvent | None:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(s.audit_events).where(s.audit_events.c.id == id))
                .mappings()
                .first()
            )
        return None if row is None else event_of_row(row, self.url)

    def audit_event_at(self, seq: int) -> AuditEvent | None:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(s.audit_events).where(s.audit_events.c.seq == seq))
                .mappings()
                .first()
            )
        return None if row is None else event_of_row(row, self.url)

    def audit_seq_of_hash(self, event_hash: str) -> int | None:
        """The seq of the event whose hash is ``event_hash`` (verify's diagnosis of a
        reordered trail; a scan, run only once a link is already broken)."""
        with self._read() as conn:
            seq = conn.execute(
                sa.select(s.audit_events.c.seq)
                .where(s.audit_events.c.hash == event_hash)
                .order_by(s.audit_events.c.seq)
                .limit(1)
            ).scalar()
        return None if seq is None else int(seq)

    @contextlib.contextmanager
    def audit_trail(
        self, batch_size: int = AUDIT_BATCH_SIZE
    ) -> Iterator[tuple[AuditHead | None, Iterator[AuditEvent]]]:
        """The chain head (None: its row is gone) and every event in seq order,
        streamed, from one snapshot: an event appended meanwhile is neither
        seen nor mistaken for a mismatch with the head. Events after the head
        are included (an insertion after the head is a finding)."""
        with self._snapshot() as conn:
            head = _head(conn.execute(_HEAD_QUERY).first())
            query = sa.select(s.audit_events).order_by(s.audit_events.c.seq)
            yield head, self._stream(conn, query, batch_size)

    def audit_head(self) -> AuditHead | None:
        with self._read() as conn:
            grouped: _GroupHead | None = getattr(self._batch, "group_head", None)
            if grouped is not None:  # a work of a group commit asks: what it appended counts
                self._write_group_head(conn, grouped)
            return _head(conn.execute(_HEAD_QUERY).first())

    def audit_chain(self) -> tuple[list[AuditEvent], tuple[int, str] | None]:
        """Every event up to the recorded head, plus the head ``(seq, hash)``, as a list.

        For small trails and tests; ``audit verify``/``export`` stream with
        :meth:`audit_trail`. The head is None if its row was deleted.
        """
        with self.audit_trail() as (head, events):
            if head is None:
                return list(events), None
            return [e for e in events if e.seq <= head.seq], (head.seq, head.hash)

    def seal_audit(self, key: ChainKey, through_seq: int) -> int:
        """MAC every unkeyed event up to ``through_seq`` (``audit seal``).

        The caller verified the plain chain first; this only adds MACs, in one
        write transaction, so a seal is all or nothing. Returns how many
        events it sealed.
        """
        e = s.audit_events.c
        update = (
            s.audit_events.update()
            .where(e.seq == sa.bindparam("at_seq"))
            .values(mac=sa.bindparam("new_mac"))
        )
        sealed, after = 0, 0
        with self._write() as conn:
            while True:
                batch = conn.execute(
                    sa.select(e.seq, e.hash)
                    .where(e.seq > after, e.seq <= through_seq, e.mac.is_(None))
                    .order_by(e.seq)
                    .limit(AUDIT_BATCH_SIZE)
                ).all()
                if not batch:
                    break
                conn.execute(
                    update,
                    [{"at_seq": seq, "new_mac": key.event_mac(hash_)} for seq, hash_ in batch],
                )
                sealed += len(batch)
                after = batch[-1].seq
        return sealed

    # -- callers of `agentctl serve` ------------------------------------------------

    def put_serve_caller(self, record: ServeCallerRecord) -> ServeCallerRecord:
        """Record a new caller. A revoked caller's name may be reused (its
        history stays in the audit trail); a live one's may not."""
        values = {name: getattr(record, name) for name in s.serve_callers.c.keys()}  # noqa: SIM118
        check_no_secrets(values, f"serve caller {record.name}")
        c = s.serve_callers.c
        with self._write() as conn:
            existing = (
                conn.execute(sa.select(s.serve_callers).where(c.name == record.name))
                .mappings()
                .first()
            )
            if existing is not None and existing["revoked_at"] is None:
                raise StateError(
                    f"a serve caller named {record.name!r} already exists",
                    hint=f"revoke it first (`agentctl serve token revoke {record.name}`) "
                    "or choose another name",
                )
            if existing is not None:
                conn.execute(s.serve_callers.delete().where(c.name == record.name))
            conn.execute(s.serve_callers.insert().values(**values))
        return record

    def get_serve_caller(self, name: str) -> ServeCallerRecord | None:
        c = s.serve_callers.c
        with self._read() as conn:
            row = conn.execute(sa.select(s.serve_callers).where(c.name == name)).mappings().first()
        return None if row is None else ServeCallerRecord(**row)

    def serve_caller_by_token_hash(self, token_hash: str) -> ServeCallerRecord | None:
        c = s.serve_callers.c
        with self._read() as conn:
            row = (
                conn.execute(sa.select(s.serve_callers).where(c.token_hash == token_hash))
                .mappings()
                .first()
            )
        return None if row is None else ServeCallerRecord(**row)

    def list_serve_callers(self) -> list[ServeCallerRecord]:
        with self._read() as conn:
            rows = (
                conn.execute(sa.select(s.serve_callers).order_by(s.serve_callers.c.name))
                .mappings()
                .all()
            )
        return [ServeCallerRecord(**row) for row in rows]

    def revoke_serve_caller(self, name: str, at: datetime) -> bool:
        """Revoke a live caller; False if there is none by that name."""
        c = s.serve_callers.c
        statement = (
            s.serve_callers.update()
            .where(c.name == name, c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        with self._write() as conn:
            return conn.execute(statement).rowcount == 1

    def touch_serve_caller(self, name: str, at: datetime) -> None:
        c = s.serve_callers.c
        with self._write() as conn:
            conn.execute(s.serve_callers.update().where(c.name == name).values(last_used_at=at))

    def remember_nonce(
        self, caller: str, nonce: str, at: datetime, forget_before: datetime
    ) -> bool:
        """Record a signed request's nonce; False if it was seen before (a replay).

        Nonces older than ``forget_before`` are dropped: their timestamps are
        outside the window, so the window check refuses those replays instead.
        """
        n = s.serve_nonces.c
        with self._write() as conn:
            conn.execute(s.serve_nonces.delete().where(n.seen_at < forget_before))
            # ON CONFLICT DO NOTHING: of two concurrent requests with one nonce
            # (two `serve` processes on one PostgreSQL) exactly one inserts.
            statement = (
                _upsertable_insert(self.dialect)(s.serve_nonces)
                .values(caller=caller, nonce=nonce, seen_at=at)
                .on_conflict_do_nothing(index_elements=["caller", "nonce"])
            )
            return bool(conn.execute(statement).rowcount == 1)

    # -- apply lock ---------------------------------------------------------------

    @contextlib.contextmanager
    def apply_lock(
        self,
        timeout: float,
        on_wait: Callable[[str], None] | None = None,
        *,
        operator: str | None = None,
        poll_interval: float = 0.2,
    ) -> Iterator[None]:
        """Hold the state's exclusive apply lock for the ``with`` block.

        Another holder makes this wait, calling ``on_wait`` once with who holds
        it, and raise :class:`LockTimeout` after ``timeout`` seconds. The lock
        is an OS file lock (SQLite) or a session advisory lock (PostgreSQL):
        both vanish with a crashed holder's process, so no lock is ever stale.
        Only whole apply runs take it; kill, readers and audit appends do not.
        """
        primitive = self._lock_primitive()
        started = _time.monotonic()
        told = False
        try:
            while not self._try(primitive):
                waited = _time.monotonic() - started
                holder = self._lock_holder()
                # The holder records itself just after acquiring; give it a
                # moment so the message can name it.
                if on_wait is not None and not told and (holder is not None or waited >= 1.0):
                    on_wait(f"waiting for the apply lock held by {_describe(holder)}")
                    told = True
                if waited >= timeout:
                    raise LockTimeout(
                        f"the apply lock on {self.url} is held by {_describe(holder)}; "
                        f"gave up after {timeout:g}s",
                        hint="wait for that run to finish and retry, or raise "
                        "lock_timeout_seconds in agentctl.yaml (a crashed run releases "
                        "the lock by itself)",
                    )
                _time.sleep(min(poll_interval, max(timeout - waited, 0.01)))
            self._record_holder(operator)
            try:
                yield
            finally:
                with contextlib.suppress(StateError):  # the lock goes regardless
                    self._clear_holder()
        finally:
            primitive.release()

    def _try(self, primitive: LockPrimitive) -> bool:
        with self._errors():
            return primitive.try_acquire()

    def _lock_primitive(self) -> LockPrimitive:
        with self._errors():
            if self.dialect == "postgresql":
                return AdvisoryLock(self._engine)
        assert self._engine.url.database is not None
        path = Path(f"{Path(self._engine.url.database).expanduser()}.lock")
        try:
            return FileLock(path)
        except OSError as exc:
            raise StateError(
                f"cannot create the apply lock file {path}: {exc.strerror}",
                hint=f"make {path.parent} writable by this user",
            ) from None

    def _lock_holder(self) -> LockHolder | None:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(s.lock_holders).where(s.lock_holders.c.name == "apply"))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return LockHolder(
            operator=row["operator"], pid=row["pid"], host=row["host"], since=row["since"]
        )

    def _record_holder(self, operator: str | None) -> None:
        values = {
            "name": "apply",
            "operator": operator or _default_operator(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": self._clock(),
        }
        # Upsert: a crashed holder leaves its row behind (its lock is long gone).
        with self._write() as conn:
            conn.execute(self._upsert(s.lock_holders, ["name"], values, values))

    def _clear_holder(self) -> None:
        c = s.lock_holders.c
        with self._write() as conn:
            conn.execute(
                s.lock_holders.delete().where(
                    c.name == "apply", c.pid == os.getpid(), c.host == socket.gethostname()
                )
            )


def _default_operator() -> str:
    """A lock holder's label when the caller names none: the OS user (shown
    to whoever waits for the lock; the audit trail records the verified person)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _describe(holder: LockHolder | None) -> str:
    return holder.describe() if holder is not None else "another agentctl run"


_HEAD_QUERY = sa.select(
    s.audit_head.c.seq,
    s.audit_head.c.hash,
    s.audit_head.c.mac,
    s.audit_head.c.key_id,
    s.audit_head.c.trail,
).where(s.audit_head.c.id == 1)


def _head(row: Any) -> AuditHead | None:
    if row is None:
        return None
    return AuditHead(int(row.seq), str(row.hash), row.mac, row.key_id, row.trail)


_AUDIT_COLUMNS = [column.name for column in s.audit_events.columns]


def _stored_audit(
    seq: int,
    id: str,
    time: str,
    actor: str,
    on_behalf_of: str | None,
    action: str,
    scope: str | None,
    trigger: str | None,
    target: str,
    result: str,
    operator: str,
    detail: str,
    prev_hash: str,
    hash: str,
    mac: str | None,
) -> AuditEvent:
    """One stored event (the columns of ``audit_events``, in order), as
    :func:`_audit` reads it."""
    return AuditEvent(
        seq=int(seq),
        id=str(id),
        time=datetime.fromisoformat(time),
        actor=actor,
        on_behalf_of=on_behalf_of,
        action=action,
        scope=scope,
        trigger=trigger,
        target=target,
        result=result,
        operator=operator,
        detail=dict(json.loads(detail) or {}),
        prev_hash=prev_hash,
        hash=hash,
        mac=mac,
    )


class _SqlChain:
    """The audit chain's rows in one SQLAlchemy write transaction (agentctl.state.chain);
    inside a group commit the head advances in memory (see _GroupHead)."""

    def __init__(
        self,
        conn: Connection,
        hot: _HotStatements,
        on_sqlite: _OnSqlite | None,
        grouped: _GroupHead | None,
        url: str,
    ) -> None:
        self._conn = conn
        self._url = url
        self._hot = hot
        self._on_sqlite = on_sqlite
        self._grouped = grouped
        self._trail: str | None = None

    def head(self) -> AuditHead | None:
        grouped = self._grouped
        if grouped is not None and grouped.seq is not None:
            self._trail = grouped.trail
            return AuditHead(grouped.seq, grouped.hash, None, grouped.key_id, grouped.trail)
        row: Mapping[Any, Any] | None
        if self._on_sqlite is not None:
            rows = self._on_sqlite.audit_head.run(self._conn, {})
            row = rows[0] if rows else None
        else:
            found = self._conn.execute(self._hot.audit_head).first()
            row = None if found is None else found._mapping
        if row is None:
            return None
        self._trail = row["trail"]
        return AuditHead(int(row["seq"]), str(row["hash"]), None, row["key_id"], row["trail"])

    def stored(self, id: str) -> AuditEvent | None:
        e = s.audit_events.c
        found = self._conn.execute(sa.select(s.audit_events).where(e.id == id)).mappings().first()
        return None if found is None else event_of_row(found, self._url)

    def insert(self, row: Mapping[str, Any]) -> None:
        if self._on_sqlite is not None:
            self._on_sqlite.append_audit.run(self._conn, row)
        else:
            self._conn.execute(self._hot.append_audit, dict(row))

    def advance(self, seq: int, hash: str, mac: str | None, key_id: str | None) -> None:
        grouped = self._grouped
        if grouped is not None:
            grouped.seq, grouped.hash, grouped.trail = seq, hash, self._trail
            grouped.mac, grouped.key_id = mac, key_id
            grouped.dirty = True
            return
        values = {"new_seq": seq, "new_hash": hash, "new_mac": mac, "new_key_id": key_id}
        if self._on_sqlite is not None:
            self._on_sqlite.advance_audit_head.run(self._conn, values)
        else:
            self._conn.execute(self._hot.advance_audit_head, values)
