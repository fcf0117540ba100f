"""The state store, on SQLite and on a real PostgreSQL server: one suite for both."""

from __future__ import annotations

import dataclasses
import socket
import stat
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from audit_helpers import key_source
from state_helpers import StepClock

from agentctl.audit import verify_chain, verify_trail
from agentctl.errors import StateError
from agentctl.model import AgentStatus
from agentctl.secrets import SecretLeakError
from agentctl.state import ApprovalStatus, AuditDraft, StateStore, create_state_engine, open_state
from agentctl.state import schema as state_schema
from agentctl.state import store as state_store

# The store / state_url fixtures (SQLite and PostgreSQL) live there.

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_agent(store: StateStore, name: str = "pr-review-agent", **overrides: object) -> None:
    fields: dict[str, object] = {
        "owner": "platform-team@company.com",
        "purpose": "Review pull requests",
        "execution_mode": "autonomous",
        "expiry": date(2027, 3, 1),
        "contract_hash": "c0ffee",
    }
    fields.update(overrides)
    store.upsert_agent(name, **fields)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- opening ---------------------------------------------------------------------


def test_sqlite_file_and_directory_are_owner_only(sqlite_url: str) -> None:
    with open_state(sqlite_url) as opened:
        path = Path(sa.engine.make_url(sqlite_url).database or "")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        opened.list_agents()
    engine = create_state_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_new_store_is_at_the_latest_schema(store: StateStore) -> None:
    assert store.schema_version() == state_schema.LATEST_VERSION


def test_an_old_database_is_migrated_forward(state_url: str) -> None:
    engine = create_state_engine(state_url)
    with engine.connect() as conn:
        conn.execution_options(agentctl_write=True)
        with conn.begin():
            assert state_schema.migrate(conn, target=1) == 1
            conn.execute(
                sa.text(
                    "INSERT INTO agents (name, owner, purpose, execution_mode, expiry, status,"
                    " created_at, updated_at) VALUES ('old', 'o@x.io', 'p', 'autonomous',"
                    " :expiry, 'active', :now, :now)"
                ),
                {"expiry": date(2027, 1, 1), "now": T0.replace(tzinfo=None)},
            )
    engine.dispose()

    with open_state(state_url) as migrated:
        assert migrated.schema_version() == state_schema.LATEST_VERSION
        record = migrated.get_agent("old")
        assert record is not None and record.last_rotated_at is None
        assert migrated.mark_rotated("old", T0)
        rotated = migrated.get_agent("old")
        assert rotated is not None and rotated.last_rotated_at == T0

    # Migrations and the live table definitions must describe the same schema.
    engine = create_state_engine(state_url)
    inspector = sa.inspect(engine)
    for table in state_schema.metadata.sorted_tables:
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        assert columns == set(table.columns.keys()), table.name
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        assert {index.name for index in table.indexes} <= indexes, table.name
    engine.dispose()


def test_github_app_keys_stored_before_schema_7_are_tracked_with_unknown_age(
    state_url: str,
) -> None:
    # GitHub's REST API lists no App's keys (the reference OpenAPI has no such path):
    # an App recorded before keys were dated gets "age unknown, tracked since now".
    engine = create_state_engine(state_url)
    with engine.connect() as conn:
        conn.execution_options(agentctl_write=True)
        with conn.begin():
            assert state_schema.migrate(conn, target=6) == 6
            for agent, provider, attributes in (
                ("dedicated-agent", "github", '{"mode": "dedicated", "app_id": 42}'),
                ("older-agent", "github", '{"app_id": 43}'),  # before modes were recorded
                ("shared-agent", "github", '{"mode": "shared", "app_id": 7}'),
                ("pending-agent", "github", '{"mode": "dedicated", "app_id": null}'),
                ("aws-agent", "aws", '{"role_arn": "arn:aws:iam::1:role/x"}'),
            ):
                conn.execute(
                    sa.text(
                        "INSERT INTO resources (agent, provider, resource_id, attributes,"
                        " updated_at) VALUES (:agent, :provider, 'r', :attributes, :now)"
                    ),
                    {
                        "agent": agent,
                        "provider": provider,
                        "attributes": attributes,
                        "now": T0.replace(tzinfo=None),
                    },
                )
    engine.dispose()
    before = datetime.now(UTC)

    with open_state(state_url) as migrated:
        rows = migrated.list_long_lived_secrets()
        assert [(r.agent, r.provider, r.kind, r.key_id) for r in rows] == [
            ("dedicated-agent", "github", "app-private-key", "42"),
            ("older-agent", "github", "app-private-key", "43"),
        ]
        for row in rows:
            assert row.created_at is None and row.fingerprint is None
            assert before - timedelta(seconds=5) <= row.tracked_since <= datetime.now(UTC)
        # rotate-key then dates the new key: the row is replaced, not added.
        migrated.put_long_lived_secret(
            replace(rows[0], fingerprint="SHA256:abc", created_at=T0, tracked_since=T0)
        )
        [dated] = migrated.list_long_lived_secrets(provider="github", agent="dedicated-agent")
        assert (dated.created_at, dated.tracked_since, dated.fingerprint) == (
            T0,
            T0,
            "SHA256:abc",
        )
        assert len(migrated.list_long_lived_secrets()) == 2


def test_a_newer_schema_is_refused(state_url: str) -> None:
    open_state(state_url).close()
    engine = create_state_engine(state_url)
    with engine.begin() as conn:
        conn.execute(state_schema.schema_version.update().values(version=99))
    engine.dispose()
    with pytest.raises(StateError, match="newer") as caught:
        open_state(state_url)
    assert caught.value.hint and "upgrade agentctl" in caught.value.hint


def test_unreachable_postgres_names_the_url_without_its_password() -> None:
    url = f"postgresql://agentctl:hunter2-secret@127.0.0.1:{closed_port()}/state"
    with pytest.raises(StateError) as caught:
        open_state(url)
    message = str(caught.value)
    assert "hunter2-secret" not in message and "hunter2-secret" not in (caught.value.hint or "")
    assert "agentctl:***@127.0.0.1" in message
    assert caught.value.hint and "reachable" in caught.value.hint


def test_sqlite_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="cannot create the state database"):
        open_state(f"sqlite:///{blocker}/state.db")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u@h/db", "unsupported state backend"),
        ("not a url", "not a valid URL"),
    ],
)
def test_unusable_urls(url: str, problem: str) -> None:
    with pytest.raises(StateError, match=problem):
        open_state(url)


# -- agents -------------------------------------------------------------------------


def test_upsert_keeps_status_and_creation_time(store: StateStore) -> None:
    add_agent(store)
    first = store.get_agent("pr-review-agent")
    assert first is not None and first.status is AgentStatus.ACTIVE
    assert first.created_at.tzinfo is UTC

    assert store.set_agent_status("pr-review-agent", AgentStatus.KILLED, "incident 42")
    add_agent(store, purpose="Review pull requests and issues", contract_hash="beef")
    second = store.get_agent("pr-review-agent")
    assert second is not None
    assert second.status is AgentStatus.KILLED and second.status_reason == "incident 42"
    assert second.purpose == "Review pull requests and issues" and second.contract_hash == "beef"
    assert second.created_at == first.created_at and second.updated_at > first.updated_at

    add_agent(store, status=AgentStatus.EXPIRED, status_reason="expired 2027-03-01")
    third = store.get_agent("pr-review-agent")
    assert third is not None and third.status is AgentStatus.EXPIRED


def test_upsert_returns_the_stored_row_and_keeps_the_document_unless_given(
    store: StateStore,
) -> None:
    recorded = store.upsert_agent(
        "pr-review-agent",
        owner="platform-team@company.com",
        purpose="Review pull requests",
        execution_mode="autonomous",
        expiry=date(2027, 3, 1),
        contract_hash="c0ffee",
        document={"agent": {"name": "pr-review-agent"}},
    )
    assert recorded == store.get_agent("pr-review-agent")
    assert recorded.document == {"agent": {"name": "pr-review-agent"}}

    store.set_agent_status("pr-review-agent", AgentStatus.KILLED, "incident 7")
    again = store.upsert_agent(
        "pr-review-agent",
        owner="someone-else@company.com",
        purpose="Review pull requests",
        execution_mode="autonomous",
        expiry=None,
        contract_hash="beef",
    )
    assert again == store.get_agent("pr-review-agent")
    assert again.owner == "someone-else@company.com" and again.expiry is None
    assert again.status is AgentStatus.KILLED and again.status_reason == "incident 7"
    assert again.document == {"agent": {"name": "pr-review-agent"}}
    assert again.created_at == recorded.created_at


def test_an_agent_and_its_resources_are_read_together(store: StateStore) -> None:
    assert store.get_agent_and_resources("pr-review-agent") == (None, {})
    add_agent(store)
    store.put_resource("pr-review-agent", "github", "app/42", {"installation": 7}, "h1")
    store.put_resource("pr-review-agent", "aws", "arn:aws:iam::1:role/agentctl-p", {}, "h1")
    store.put_resource("other-agent", "aws", "arn:aws:iam::1:role/agentctl-o", {}, "h1")
    record, resources = store.get_agent_and_resources("pr-review-agent")
    assert record == store.get_agent("pr-review-agent")
    assert list(resources) == ["aws", "github"]
    assert resources["github"] == store.get_resource("pr-review-agent", "github")


def test_threads_of_one_process_write_at_once_and_lose_nothing(state_url: str) -> None:
    """apply's 16 threads each record agents (resource, audit event, agent row in
    one batch) while others write single rows: every write lands, the chain
    stays one unbroken line."""
    threads, rounds = 12, 8
    with open_state(state_url) as shared:

        def record(worker: int) -> None:
            for round_ in range(rounds):
                name = f"agent-{worker}-{round_}"
                with shared.batch():
                    shared.put_resource(name, "aws", f"arn:aws:iam::1:role/{name}", {}, "h")
                    shared.append_audit(
                        AuditDraft(
                            actor=name, action="apply.create", target=name, result="success"
                        ),
                        operator="test@company.com",
                    )
                    add_agent(shared, name)
                shared.append_audit(
                    AuditDraft(actor=name, action="exec", target=name, result="success"),
                    operator="test@company.com",
                )

        workers = [threading.Thread(target=record, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not any(worker.is_alive() for worker in workers)

        assert len(shared.list_agents()) == threads * rounds
        assert len(shared.list_resources()) == threads * rounds
        events, head = shared.audit_chain()
        assert len(events) == 2 * threads * rounds
        assert verify_chain(events, head).ok


def test_a_write_stuck_behind_another_of_the_same_process_says_so(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_store, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.2)
    with open_state(sqlite_url) as shared:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with shared.batch():
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(10)
            with pytest.raises(StateError, match=r"waited over 0\.2s for another write"):
                add_agent(shared)
        finally:
            release.set()
            holder.join(10)
        assert shared.get_agent("pr-review-agent") is None
        add_agent(shared)  # and once the other write is done, it goes through
        assert shared.get_agent("pr-review-agent") is not None


def test_agent_discovered_without_contract_has_no_expiry(store: StateStore) -> None:
    add_agent(store, "orphan", owner="unknown", expiry=None, status=AgentStatus.KILLED)
    record = store.get_agent("orphan")
    assert record is not None and record.expiry is None and record.status is AgentStatus.KILLED


def test_list_and_delete_agents(store: StateStore) -> None:
    for name in ("b-agent", "a-agent", "c-agent"):
        add_agent(store, name)
    assert [a.name for a in store.list_agents()] == ["a-agent", "b-agent", "c-agent"]
    assert store.delete_agent("b-agent") and not store.delete_agent("b-agent")
    assert store.get_agent("b-agent") is None


def test_agent_summaries_are_the_records_shown_fields(store: StateStore) -> None:
    add_agent(store, "b-agent", execution_mode="on_behalf_of_user")
    add_agent(store, "a-agent", expiry=None)
    add_agent(store, "c-agent", status=AgentStatus.KILLED)
    store.set_agent_status("c-agent", AgentStatus.KILLED, "incident 42")
    assert store.mark_rotated("a-agent", T0)
    summaries = store.agent_summaries()
    assert [s.name for s in summaries] == ["a-agent", "b-agent", "c-agent"]
    for summary, record in zip(summaries, store.list_agents(), strict=True):
        for field in dataclasses.fields(summary):
            assert getattr(summary, field.name) == getattr(record, field.name), field.name
    a, b, c = summaries
    assert a.expiry is None and a.last_rotated_at == T0 and b.last_rotated_at is None
    assert b.execution_mode == "on_behalf_of_user" and b.expiry == date(2027, 3, 1)
    assert c.status is AgentStatus.KILLED and c.status_reason == "incident 42"


def test_status_compare_and_set_and_kill_time(store: StateStore) -> None:
    add_agent(store)
    assert not store.set_agent_status(
        "pr-review-agent", AgentStatus.ACTIVE, "revive", expected=AgentStatus.KILLED
    )
    assert store.set_agent_status(
        "pr-review-agent", AgentStatus.KILLED, "incident", expected=AgentStatus.ACTIVE
    )
    killed = store.get_agent("pr-review-agent")
    assert killed is not None and killed.killed_at is not None
    # A repeated kill keeps the time of the first one.
    assert store.set_agent_status("pr-review-agent", AgentStatus.KILLED, "again")
    again = store.get_agent("pr-review-agent")
    assert again is not None and again.killed_at == killed.killed_at
    assert store.set_agent_status(
        "pr-review-agent", AgentStatus.ACTIVE, "revived", expected=AgentStatus.KILLED
    )
    revived = store.get_agent("pr-review-agent")
    assert revived is not None and revived.killed_at is None
    assert not store.set_agent_status("nobody", AgentStatus.KILLED, "x")
    assert not store.mark_rotated("nobody", T0)


# -- resources ------------------------------------------------------------------------


def test_resources_one_row_per_agent_and_provider(store: StateStore) -> None:
    store.put_resource("a", "aws", "arn:aws:iam::1:role/agentctl-a", {"tags": {"k": "v"}}, "h1")
    store.put_resource("a", "github", "app/42", {"installation": 7})
    store.put_resource("b", "aws", "arn:aws:iam::1:role/agentctl-b", {})
    updated = store.put_resource("a", "aws", "arn:aws:iam::1:role/agentctl-a", {"n": [1, 2]}, "h2")
    assert updated.attributes == {"n": [1, 2]}

    got = store.get_resource("a", "aws")
    assert got is not None and got.applied_hash == "h2" and got.attributes == {"n": [1, 2]}
    assert [(r.agent, r.provider) for r in store.list_resources()] == [
        ("a", "aws"),
        ("a", "github"),
        ("b", "aws"),
    ]
    assert [r.provider for r in store.list_resources("a")] == ["aws", "github"]
    assert store.providers_by_agent() == {"a": ["aws", "github"], "b": ["aws"]}
    assert store.delete_resource("a", "github") and not store.delete_resource("a", "github")
    assert store.get_resource("a", "github") is None


def test_resources_refuse_secret_looking_values(store: StateStore) -> None:
    token = "ghs_" + "A1b2" * 9
    with pytest.raises(SecretLeakError) as caught:
        store.put_resource("a", "github", "app/1", {"token": token})
    assert token not in str(caught.value)
    assert store.get_resource("a", "github") is None


def test_intents_are_announced_replaced_and_settled_with_the_outcome(store: StateStore) -> None:
    """An intent is written before an unrepeatable call and cleared in the
    transaction that records its outcome: both or neither."""
    store.put_intent("a", "github", "register", {"slug": "acme-a", "owner": "acme"})
    store.put_intent("b", "github", "register", {"slug": "acme-b"})
    replaced = store.put_intent("a", "github", "register", {"slug": "acme-a2"})
    got = store.get_intent("a", "github", "register")
    assert got == replaced and got.detail == {"slug": "acme-a2"}
    assert store.get_intent("a", "github", "rotate") is None
    assert [i.agent for i in store.list_intents("github")] == ["a", "b"]
    assert store.list_intents("jira") == []

    with pytest.raises(RuntimeError), store.batch():
        store.put_resource("a", "github", "42", {"slug": "acme-a2"})
        assert store.clear_intent("a", "github", "register")
        raise RuntimeError("killed before the commit")
    assert store.get_resource("a", "github") is None
    assert store.get_intent("a", "github", "register") is not None

    with store.batch():
        store.put_resource("a", "github", "42", {"slug": "acme-a2"})
        assert store.clear_intent("a", "github", "register")
    assert store.get_resource("a", "github") is not None
    assert store.get_intent("a", "github", "register") is None
    assert not store.clear_intent("a", "github", "register")

    token = "ghs_" + "A1b2" * 9
    with pytest.raises(SecretLeakError):
        store.put_intent("c", "github", "register", {"token": token})
    assert store.get_intent("c", "github", "register") is None


# -- credentials ---------------------------------------------------------------------------


def issue(store: StateStore, id: str, **overrides: object) -> None:
    fields: dict[str, object] = {
        "id": id,
        "agent": "a",
        "provider": "aws",
        "kind": "session",
        "fingerprint": f"fp-{id}",
        "issued_at": T0,
        "expires_at": T0 + timedelta(hours=1),
    }
    fields.update(overrides)
    store.add_credential(**fields)  # type: ignore[arg-type]


def test_credentials_live_filter_and_revocation(store: StateStore) -> None:
    issue(store, "c1")
    issue(store, "c2", provider="github", issued_at=T0 + timedelta(minutes=1))
    issue(store, "c3", expires_at=T0 + timedelta(minutes=10), on_behalf_of="amit@company.com")
    issue(store, "c4", agent="b")

    at = T0 + timedelta(minutes=30)
    assert [c.id for c in store.list_credentials(agent="a", live_at=at)] == ["c1", "c2"]
    assert [c.id for c in store.list_credentials(agent="a", provider="aws")] == ["c1", "c3"]
    assert store.mark_credential_revoked("c1", at)
    assert not store.mark_credential_revoked("c1", at + timedelta(minutes=1))  # first time wins
    assert [c.id for c in store.list_credentials(agent="a", live_at=at)] == ["c2"]
    revoked = next(c for c in store.list_credentials() if c.id == "c1")
    assert revoked.revoked_at == at and not revoked.is_live(at)
    assert store.list_credentials(agent="a", provider="aws")[1].on_behalf_of == "amit@company.com"
    # status of every agent counts them in one query: the same answer per agent
    counts = store.live_credential_counts(at)
    assert counts == {"a": 1, "b": 1}
    for agent in ("a", "b"):
        assert counts[agent] == len(store.list_credentials(agent=agent, live_at=at))
    assert store.live_credential_counts(T0 + timedelta(hours=2)) == {}


def test_credentials_are_metadata_only(store: StateStore) -> None:
    issue(store, "c1")
    with pytest.raises(StateError, match="credentials") as caught:
        issue(store, "c1")
    assert caught.value.hint and "already exists" in caught.value.hint
    with pytest.raises(SecretLeakError):
        issue(store, "c2", fingerprint="AKIAABCDEFGHIJKLMNOP")


def test_naive_timestamps_are_a_bug_not_a_state_error(store: StateStore) -> None:
    with pytest.raises(sa.exc.StatementError) as caught:
        issue(store, "c1", issued_at=datetime(2026, 11, 1, 12, 0))
    assert not isinstance(caught.value, StateError)


# -- approvals ---------------------------------------------------------------------------


def test_approval_lifecycle(store: StateStore) -> None:
    created = store.create_approval(
        agent="a",
        requester="dev@company.com",
        command="python review.py",
        expires_at=T0 + timedelta(hours=1),
        on_behalf_of="amit@company.com",
        trigger="webhook/pr-opened/4521",
    )
    store.create_approval(agent="b", requester="x", command="y", expires_at=T0, id="fixed-id")
    assert created.status is ApprovalStatus.PENDING
    assert store.get_approval(created.id) == created
    assert [a.id for a in store.list_approvals(status=ApprovalStatus.PENDING, agent="a")] == [
        created.id
    ]
    assert {a.id for a in store.list_approvals()} == {created.id, "fixed-id"}

    assert store.transition_approval(
        created.id, "pending", "approved", decided_by="lead@company.com", decided_at=T0
    )
    assert not store.transition_approval(created.id, "pending", "denied")
    approved = store.get_approval(created.id)
    assert approved is not None and approved.status is ApprovalStatus.APPROVED
    assert approved.decided_by == "lead@company.com" and approved.decided_at == T0
    assert store.list_approvals(status="approved")[0].id == created.id
    with pytest.raises(TypeError, match="unknown fields"):
        store.transition_approval(created.id, "approved", "used", status="pending")


def test_an_approval_is_used_exactly_once_under_concurrency(store: StateStore) -> None:
    approval = store.create_approval(
        agent="a", requester="r", command="c", expires_at=T0 + timedelta(hours=1)
    )
    store.transition_approval(approval.id, "pending", "approved")
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []

    def use() -> None:
        barrier.wait()
        outcomes.append(store.transition_approval(approval.id, "approved", "used", used_at=T0))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]


# -- audit queries (chain integrity is in test_audit.py) --------------------------------


def test_audit_append_and_filters(store: StateStore) -> None:
    for actor, action, target in [
        ("pr-review-agent", "exec.start", "pr-review-agent"),
        ("alice", "kill", "pr-review-agent"),
        ("alice", "apply", "deploy-agent"),
        ("deploy-agent", "exec.start", "deploy-agent"),
    ]:
        store.append_audit(
            AuditDraft(
                actor=actor,
                action=action,
                target=target,
                result="success",
                scope="github:repo:read",
                detail={"n": (1, 2)},
            ),
            operator="alice",
        )
    events = store.audit_events()
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].detail == {"n": [1, 2]} and events[0].scope == "github:repo:read"
    assert events[1].prev_hash == events[0].hash
    assert [e.seq for e in store.audit_events(agent="pr-review-agent")] == [1, 2]
    assert [e.seq for e in store.audit_events(action="exec.start")] == [1, 4]
    assert [e.seq for e in store.audit_events(since=events[2].time)] == [3, 4]
    assert [e.seq for e in store.audit_events(limit=2)] == [3, 4]
    assert store.get_audit_event(events[2].id) == events[2]
    chain, head = store.audit_chain()
    assert chain == events and head == (4, events[-1].hash)


def test_audit_append_is_idempotent_by_id(store: StateStore) -> None:
    first = store.append_audit(
        AuditDraft(actor="a", action="kill", target="a", result="success"), operator="o", id="evt-1"
    )
    again = store.append_audit(
        AuditDraft(actor="a", action="kill", target="a", result="changed"), operator="o", id="evt-1"
    )
    assert again == first and len(store.audit_events()) == 1


@pytest.mark.parametrize(
    "field",
    [
        {"detail": {"token": "ghs_" + "x" * 36}},
        {"detail": {"nested": ["-----BEGIN RSA PRIVATE KEY-----"]}},
        {"trigger": "webhook/ASIAABCDEFGHIJKLMNOP"},
        {"scope": "ghp_" + "y" * 36},
    ],
)
def test_audit_refuses_secret_looking_values(store: StateStore, field: dict[str, object]) -> None:
    with pytest.raises(SecretLeakError) as caught:
        store.append_audit(
            AuditDraft(actor="a", action="x", target="a", result="ok", **field),  # type: ignore[arg-type]
            operator="o",
        )
    assert "never record secret values" in str(caught.value)
    assert store.audit_events() == []


# -- group commit (StateStore.batched) --------------------------------------------------


def _agent_in(store: StateStore, name: str) -> None:
    store.upsert_agent(
        name,
        owner="o@company.com",
        purpose="p",
        execution_mode="autonomous",
        expiry=date(2027, 1, 1),
        contract_hash="h",
    )
    store.append_audit(
        AuditDraft(actor=name, action="apply.create", target=name, result="success"),
        operator="ops@company.com",
    )


def test_batched_work_of_many_threads_shares_commits_each_durable_when_it_returns(
    tmp_path: Path,
) -> None:
    """16 threads record an agent each: fewer commits than records, and each
    caller's rows are on disk (another connection sees them) the moment its
    batched() returns; one work that raises is undone alone."""
    import sqlite3

    path = tmp_path / "state.db"
    store = open_state(f"sqlite:///{path}")
    # A keyed trail: the group's events are sealed, and so is the head it leaves.
    keys = key_source(tmp_path / "keyring.enc")
    store.chain_keys = keys
    _agent_in(store, "before-the-group")
    commits: list[int] = []
    sa.event.listen(store._engine, "commit", lambda _conn: commits.append(1))
    # The first caller's work waits until the other 15 are queued behind it,
    # so they form one group whatever the scheduling.
    # (It must lead: the others start only once its work runs, otherwise one of
    # them could lead a group of its own first, however briefly.)
    leading, release = threading.Event(), threading.Event()
    errors: dict[str, BaseException] = {}
    seen_on_return: dict[str, bool] = {}

    def work(name: str) -> str:
        if name == "agent-00":
            leading.set()
            assert release.wait(240)
        _agent_in(store, name)
        if name == "agent-07":
            raise StateError("agent-07's record fails")
        return name

    def caller(name: str) -> None:
        try:
            assert store.batched(lambda: work(name)) == name
        except StateError as exc:
            errors[name] = exc
            return
        with sqlite3.connect(path) as other:
            seen_on_return[name] = (
                other.execute("SELECT 1 FROM agents WHERE name = ?", (name,)).fetchone() is not None
            )

    names = [f"agent-{i:02d}" for i in range(16)]
    first = threading.Thread(target=caller, args=(names[0],))
    first.start()
    assert leading.wait(240), "agent-00's work never ran"
    rest = [threading.Thread(target=caller, args=(n,)) for n in names[1:]]
    for thread in rest:
        thread.start()
    for _ in range(24000):
        if len(store._group_pending) == 15:
            break
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *rest]:
        thread.join(240)
        assert not thread.is_alive()

    assert set(errors) == {"agent-07"}
    assert seen_on_return == {n: True for n in names if n != "agent-07"}
    assert len(commits) <= 2  # the first alone, then the 15 queued behind it
    recorded = {a.name for a in store.list_agents()}
    assert recorded == set(names) - {"agent-07"} | {"before-the-group"}
    events, head = store.audit_chain()
    assert sorted(e.target for e in events) == sorted(recorded)
    # agent-07's event was undone with its savepoint: the head names the last
    # event committed, its MAC verifies, and no seq is taken twice or skipped.
    assert [e.seq for e in events] == list(range(1, len(recorded) + 1))
    assert head == (events[-1].seq, events[-1].hash)
    assert all(e.mac for e in events)
    assert verify_trail(store, keys).ok
    # The event this process leaves for its anchor is the committed last one.
    assert store.last_appended == events[-1]
    store.close()


def test_batched_inside_a_batch_joins_it(tmp_path: Path) -> None:
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    with pytest.raises(RuntimeError), store.batch():
        store.batched(lambda: _agent_in(store, "inner-agent"))
        raise RuntimeError("the outer batch fails")
    assert store.list_agents() == []  # undone with the batch it joined
    store.close()


# -- apply's statements on the sqlite3 driver ---------------------------------------------


def _table_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    import sqlite3

    with sqlite3.connect(path) as raw:
        rows = {
            table: raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("agents", "resources", "audit_events")
        }
        # (not the trail's name: a random one per store)
        rows["audit_head"] = raw.execute("SELECT seq, hash, mac, key_id FROM audit_head").fetchall()
        return rows


def _apply_like_records(store: StateStore) -> list[object]:
    """What apply records for an agent, and what a later apply reads back: a
    new agent, an update keeping its document, a kill kept by a later upsert."""
    seen: list[object] = []
    document = {"agent": {"name": "agent-a", "owner": "Ö@company.com"}, "n": [1, 2.5, None]}
    for round_, name in enumerate(["agent-a", "agent-b", "agent-a"]):
        seen.append(store.get_agent_and_resources(name))

        def work(name: str = name, round_: int = round_) -> object:
            before = store.get_agent_and_resources(name)
            resource = store.put_resource(
                agent=name,
                provider="aws",
                resource_id=f"arn:aws:iam::123456789012:role/agentctl/{name}",
                attributes={"arn": f"role/{name}", "round": round_, "ok": True, "none": None},
                applied_hash=f"hash-{round_}",
            )
            event = store.append_audit(
                AuditDraft(
                    actor=name,
                    action="apply.create",
                    scope="aws",
                    target=f"aws:{name}",
                    result="success",
                    detail={"summary": "create role", "contract_hash": f"hash-{round_}"},
                ),
                operator="ops@company.com",
                id=f"event-{round_}",
            )
            recorded = store.upsert_agent(
                name,
                owner="owner@company.com",
                purpose=f"purpose {round_}",
                execution_mode="autonomous",
                expiry=date(2027, 1, 1 + round_),
                contract_hash=f"hash-{round_}",
                status_reason=None,
                document=document if round_ < 2 else None,  # None keeps the recorded one
            )
            return before, resource, event, recorded

        seen.append(store.batched(work))
        if round_ == 1:
            store.set_agent_status("agent-a", AgentStatus.KILLED, "incident")
            # An event outside any group (kill's): the head read and written per event.
            seen.append(
                store.append_audit(
                    AuditDraft(actor="agent-a", action="kill", target="agent-a", result="success"),
                    operator="ops@company.com",
                    id="event-kill",
                )
            )
    seen.append(store.get_agent_and_resources("agent-a"))
    seen.append(store.list_agents())
    seen.append(store.list_resources())
    return seen


def test_apply_statements_on_the_driver_record_what_sqlalchemy_records(tmp_path: Path) -> None:
    """On SQLite, apply's per-agent statements run on the sqlite3 driver
    (StateStore._on_sqlite). The same calls through SQLAlchemy's
    Connection.execute (the reference) leave the same rows, byte for byte,
    and return the same records: timestamps with microseconds, dates, JSON
    documents, a NULL document keeping the recorded one, a kill kept."""
    results, rows = [], []
    for lane in ("driver", "sqlalchemy"):
        path = tmp_path / f"{lane}.db"
        clock = StepClock(step=timedelta(seconds=1, microseconds=123457))
        store = open_state(f"sqlite:///{path}", clock=clock)
        if lane == "sqlalchemy":
            store._on_sqlite = None
        else:
            assert store._on_sqlite is not None  # the lane under test is the one in use
        results.append(_apply_like_records(store))
        store.close()
        rows.append(_table_rows(path))
    assert results[0] == results[1]
    assert rows[0] == rows[1]
    assert [r[0] for r in rows[0]["agents"]] == ["agent-a", "agent-b"]
    killed = results[0][-2][0]
    assert killed.status == AgentStatus.KILLED and killed.document is not None


def test_a_failure_on_the_driver_is_a_state_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    store = open_state(f"sqlite:///{path}")
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE resources")
    with pytest.raises(StateError) as caught:
        store.put_resource(agent="a", provider="aws", resource_id="r", attributes={})
    assert "no such table: resources" in caught.value.message
    assert str(path) in caught.value.message
    store.close()


def test_a_write_lock_held_elsewhere_is_a_state_error_on_every_write_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN IMMEDIATE (and a group's savepoints) run on the sqlite3 driver: a
    write lock another process keeps past the busy timeout is the same
    StateError as through SQLAlchemy, for a plain write and a group commit,
    and nothing of the group is recorded."""
    import sqlite3

    monkeypatch.setattr(state_store, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.2)
    path = tmp_path / "state.db"
    store = open_state(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        for write in (
            lambda: store.put_resource(agent="a", provider="aws", resource_id="r", attributes={}),
            lambda: store.batched(lambda: _agent_in(store, "grouped-agent")),
        ):
            with pytest.raises(StateError) as caught:
                write()
            assert "database is locked" in caught.value.message
            assert str(path) in caught.value.message
            assert "kept the SQLite state locked for over 0.2s" in (caught.value.hint or "")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.list_agents() == [] and store.list_resources() == []
    # The lock gone, the same writes go through.
    store.batched(lambda: _agent_in(store, "grouped-agent"))
    assert [a.name for a in store.list_agents()] == ["grouped-agent"]
    store.close()
