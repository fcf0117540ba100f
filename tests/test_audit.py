"""Audit chain: tampering is detected and located; export; the fallback journal; the CLI."""

from __future__ import annotations

import io
import itertools
import json
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agentctl.audit import (
    JOURNAL_IMPORT_ACTION,
    AuditJournal,
    VerifyResult,
    export_jsonl,
    import_journal,
    read_jsonl,
    verify_chain,
    verify_trail,
)
from agentctl.cli.audit import app
from agentctl.commands import Session
from agentctl.durations import parse_since
from agentctl.errors import StateError, UsageError
from agentctl.identity import Actor, IdentityError
from agentctl.secrets import SecretLeakError
from agentctl.state import AuditDraft, StateStore, create_state_engine, open_state

# The store / state_url fixtures (SQLite and PostgreSQL) live there.

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def fill(store: StateStore, count: int = 5) -> None:
    for index in range(count):
        store.append_audit(
            AuditDraft(
                actor="pr-review-agent",
                on_behalf_of="amit@company.com",
                action="exec.start" if index % 2 else "credentials.issue",
                scope="github:repo:read,pull_request:comment",
                trigger=f"webhook/pr-opened/{4521 + index}",
                target="pr-review-agent",
                result="success",
                detail={"run": index},
            ),
            operator="ci-bot",
        )


def tamper(url: str, *statements: str) -> None:
    """Change the database behind agentctl's back, as an attacker with SQL access would."""
    engine = create_state_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    engine.dispose()


def verify(store: StateStore) -> VerifyResult:
    return verify_trail(store)


@pytest.fixture
def filled(store: StateStore) -> StateStore:
    fill(store)
    return store


# -- tampering --------------------------------------------------------------------


def test_an_untouched_chain_verifies(filled: StateStore) -> None:
    result = verify(filled)
    assert result.ok and result.checked == 5 and result.problem is None
    assert verify_chain([]).ok


def test_an_edited_field_is_found(filled: StateStore, state_url: str) -> None:
    tamper(state_url, "UPDATE audit_events SET result = 'denied' WHERE seq = 3")
    result = verify(filled)
    assert not result.ok and result.first_bad_seq == 3 and result.checked == 2
    assert result.first_bad_id == filled.audit_events()[2].id
    assert result.problem is not None and "edited" in result.problem


def test_an_edited_and_rehashed_event_breaks_the_next_link(
    filled: StateStore, state_url: str
) -> None:
    event = filled.audit_events()[2]
    forged_hash = replace(event, result="denied").compute_hash()
    tamper(
        state_url,
        f"UPDATE audit_events SET result = 'denied', hash = '{forged_hash}' WHERE seq = 3",
    )
    result = verify(filled)
    assert not result.ok and result.first_bad_seq == 4
    assert result.problem is not None and "does not link" in result.problem


def test_a_deleted_event_is_found(filled: StateStore, state_url: str) -> None:
    tamper(state_url, "DELETE FROM audit_events WHERE seq = 3")
    result = verify(filled)
    assert not result.ok and result.first_bad_seq == 3 and result.first_bad_id is None
    assert result.problem is not None and "deleted" in result.problem and "seq 3" in result.problem


def test_deleted_and_renumbered_events_are_found(filled: StateStore, state_url: str) -> None:
    tamper(
        state_url,
        "DELETE FROM audit_events WHERE seq = 2",
        "UPDATE audit_events SET seq = seq - 1 WHERE seq > 2",
        "UPDATE audit_head SET seq = seq - 1",
    )
    result = verify(filled)
    assert not result.ok and result.first_bad_seq == 2
    assert result.problem is not None and "does not link" in result.problem


def test_a_deleted_tail_is_found_through_the_head(filled: StateStore, state_url: str) -> None:
    tamper(state_url, "DELETE FROM audit_events WHERE seq >= 4")
    result = verify(filled)
    assert not result.ok and result.first_bad_seq == 4
    assert result.problem is not None and "last 2 event(s) were deleted" in result.problem


def test_reordered_events_are_found(filled: StateStore, state_url: str) -> None:
    tamper(
        state_url,
        "UPDATE audit_events SET seq = -1 WHERE seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = -1",
    )
    result = verify(filled)
    assert not result.ok and result.first_bad_seq == 3
    assert result.problem is not None and "reordered" in result.problem


def test_appends_continue_a_valid_chain_after_verify(filled: StateStore) -> None:
    fill(filled, 2)
    assert verify(filled).ok and verify(filled).checked == 7


# -- export -------------------------------------------------------------------------


def test_export_round_trips_and_verifies(filled: StateStore) -> None:
    buffer = io.StringIO()
    assert export_jsonl(filled.audit_events(), buffer) == 5
    lines = buffer.getvalue().splitlines(keepends=True)
    assert len(lines) == 5 and all(json.loads(line)["hash"] for line in lines)
    events, problems = read_jsonl(lines)
    assert problems == [] and events == filled.audit_events()
    assert verify_chain(events).ok
    assert {
        "id",
        "time",
        "actor",
        "on_behalf_of",
        "action",
        "scope",
        "trigger",
        "target",
        "result",
        "operator",
        "detail",
        "seq",
        "prev_hash",
        "hash",
        "mac",
    } == set(json.loads(lines[0]))


# -- fallback journal ------------------------------------------------------------------


def unreachable_postgres() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://agentctl:pw@127.0.0.1:{port}/state"


def kill_during_outage(journal: AuditJournal, agents: list[str]) -> None:
    """What kill does when the state store is down: the event goes to the journal."""
    with pytest.raises(StateError):
        open_state(unreachable_postgres())
    for agent in agents:
        journal.append(
            AuditDraft(
                actor=agent,
                action="kill",
                target=agent,
                result="success",
                trigger="operator/oncall",
                detail={"reason": "incident 7"},
            ),
            operator="oncall@company.com",
        )


@pytest.fixture
def journal(tmp_path: Path) -> AuditJournal:
    moments = (T0 + timedelta(minutes=n) for n in itertools.count())
    return AuditJournal(tmp_path / "journal" / "audit-journal.jsonl", clock=lambda: next(moments))


def test_events_survive_an_outage_and_are_imported_once(
    journal: AuditJournal, store: StateStore
) -> None:
    kill_during_outage(journal, ["agent-a", "agent-b"])
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    journaled = journal.events()
    assert [e.seq for e in journaled] == [1, 2] and verify_chain(journaled).ok

    fill(store, 2)  # the store went on without the journaled events meanwhile
    outcome = import_journal(store, journal, operator="ci-bot")
    assert (outcome.imported, outcome.skipped, outcome.problem) == (2, 0, None)
    events = store.audit_events()
    assert [e.id for e in events[2:4]] == [e.id for e in journaled]
    assert [e.time for e in events[2:4]] == [e.time for e in journaled]  # original times kept
    assert events[4].action == JOURNAL_IMPORT_ACTION and events[4].result == "ok"
    assert verify(store).ok
    assert journal.events() == [] and journal.path.read_text() == ""

    again = import_journal(store, journal, operator="ci-bot")
    assert (again.imported, again.skipped) == (0, 0) and len(store.audit_events()) == 5


def test_an_import_interrupted_before_truncating_is_not_duplicated(
    journal: AuditJournal, store: StateStore
) -> None:
    kill_during_outage(journal, ["agent-a", "agent-b"])
    first = journal.events()[0]
    store.append_audit(  # the crashed import got this far
        AuditDraft.of(first), operator=first.operator, id=first.id, time=first.time
    )
    outcome = import_journal(store, journal, operator="ci-bot")
    assert (outcome.imported, outcome.skipped) == (1, 1)
    assert [e.action for e in store.audit_events()] == ["kill", "kill", JOURNAL_IMPORT_ACTION]
    assert verify(store).ok


def test_a_damaged_journal_is_imported_and_the_damage_recorded(
    journal: AuditJournal, store: StateStore
) -> None:
    kill_during_outage(journal, ["agent-a", "agent-b"])
    lines = journal.path.read_text().splitlines(keepends=True)
    edited = json.loads(lines[0])
    edited["result"] = "failure"
    with journal.path.open("w") as handle:
        handle.write(json.dumps(edited) + "\n" + lines[1] + '{"seq": 3, "id": "cut short by a cra')
    after_crash = journal.append(
        AuditDraft(actor="c", action="kill", target="c", result="ok"), operator="o"
    )
    assert after_crash.seq == 3 and journal.events()[-1] == after_crash

    outcome = import_journal(store, journal, operator="ci-bot")
    assert outcome.imported == 3 and outcome.problem is not None
    assert "edited" in outcome.problem and "line 3 is invalid" in outcome.problem
    marker = store.audit_events()[-1]
    assert marker.action == JOURNAL_IMPORT_ACTION and marker.result == "failed"
    assert verify(store).ok  # the store's own chain is intact and says what happened


def test_reading_skips_a_line_cut_short_by_a_crash() -> None:
    events, problems = read_jsonl(['{"seq": 1, "id": "cut sh'])
    assert events == [] and problems == [
        "line 1 is incomplete (written during a crash?) and was skipped"
    ]


def test_the_journal_refuses_secrets_too(journal: AuditJournal) -> None:
    with pytest.raises(SecretLeakError):
        journal.append(
            AuditDraft(
                actor="a",
                action="x",
                target="a",
                result="ok",
                detail={"key": "-----BEGIN OPENSSH PRIVATE KEY-----"},
            ),
            operator="o",
        )
    assert journal.events() == []


def test_an_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot open the audit journal"):
        AuditJournal(blocker / "journal.jsonl").append(
            AuditDraft(actor="a", action="x", target="a", result="ok"), operator="o"
        )


# -- CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(state_url: str) -> Iterator[tuple[CliRunner, Session]]:
    context = Session(state_url=state_url)
    yield CliRunner(), context
    context.close()


@pytest.fixture
def keyed_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """agentctl.yaml with a real keyring backend (encrypted file) and an anchor file."""
    config = tmp_path / "agentctl.yaml"
    config.write_text(
        f"secrets:\n  backend: encrypted-file\n  path: {tmp_path / 'secrets.enc'}\n"
        f"audit:\n  anchor: file\n  anchor_file: {tmp_path / 'anchors.jsonl'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AGENTCTL_KEYRING_PASSPHRASE", "cli-test-passphrase")
    return str(config)


# Who runs the commands here (identity itself: test_seal_is_done_by_a_verified_person).
OPERATOR = Actor.declared("ops@company.com")


def run_audit(state_url: str, config: str | None, *argv: str) -> tuple[int, str]:
    """One command, as its own process would: a fresh context, closed (and anchored) after."""
    context = Session(state_url=state_url, config_path=config, _actor=OPERATOR)
    try:
        outcome = CliRunner().invoke(app, list(argv), obj=context)
    finally:
        context.close()
    if outcome.exception and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return outcome.exit_code, outcome.output


def fill_as_a_command(state_url: str, config: str, count: int = 5) -> None:
    context = Session(state_url=state_url, config_path=config, may_create_state=True)
    fill(context.state(), count)
    context.close()  # anchors the head, as every mutating command does


def test_cli_verify_exit_codes_and_json(state_url: str, keyed_config: str) -> None:
    fill_as_a_command(state_url, keyed_config)
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 0, out
    assert "intact: 5 events verified with the chain key, anchored at seq 5" in out
    code, out = run_audit(state_url, keyed_config, "verify", "--output", "json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["verdict"] == "intact"
    assert (report["checked"], report["keyed"], report["anchor_seq"]) == (5, True, 5)

    tamper(state_url, "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2")
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 1 and "TAMPERED" in out and "seq 2" in out
    code, out = run_audit(state_url, keyed_config, "verify", "-o", "json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["first_bad_seq"] == 2
    assert "edited" in report["problem"]


def test_cli_verify_never_crashes_on_a_missing_head(state_url: str, keyed_config: str) -> None:
    fill_as_a_command(state_url, keyed_config)
    tamper(state_url, "DELETE FROM audit_head")
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 1 and "TAMPERED" in out and "head record is gone" in out
    # appends do not crash either: the event is refused (and goes to the journal in commands)
    with open_state(state_url) as store, pytest.raises(StateError, match=r"head .* is missing"):
        store.append_audit(AuditDraft(actor="a", action="x", target="a", result="ok"), operator="o")


def test_an_unkeyed_trail_does_not_pass_as_verified(
    state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AGENTCTL_KEYRING_PASSPHRASE", "AGENTCTL_SECRETS_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"audit:\n  anchor_file: {tmp_path / 'anchors.jsonl'}\n", encoding="utf-8")
    fill_as_a_command(state_url, str(bare))
    code, out = run_audit(state_url, str(bare), "verify")
    assert code == 1 and "NOT KEYED: 5 events" in out and "secrets.backend" in out
    with pytest.raises(StateError, match="no secret store is configured"):
        run_audit(state_url, str(bare), "seal")


def test_seal_migrates_an_old_unkeyed_trail(state_url: str, keyed_config: str) -> None:
    with open_state(state_url) as old:  # an agentctl from before the keyed chain
        fill(old, 5)
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 1 and "NOT KEYED" in out and "agentctl audit seal" in out
    code, out = run_audit(state_url, keyed_config, "seal")
    assert code == 0, out
    assert "sealed 5 event(s) after verifying seq 1-5" in out
    assert "intact: 6 events verified with the chain key" in out
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 0 and "intact: 6 events" in out and "anchored at seq 6" in out
    code, out = run_audit(state_url, keyed_config, "seal")
    assert code == 0 and "already sealed" in out
    with open_state(state_url) as store:
        (sealed,) = store.audit_events(action="audit.seal")
    assert sealed.operator == "ops@company.com"
    assert sealed.detail["principal"] == OPERATOR.arn and sealed.detail["identified_by"]
    # and from now on, an edited old event is found at its own seq, hashes recomputed or not
    with open_state(state_url) as store:
        events = store.audit_events()
    forged = replace(events[1], result="denied")
    forged = replace(forged, hash=forged.compute_hash())
    tamper(
        state_url,
        f"UPDATE audit_events SET result = 'denied', hash = '{forged.hash}' WHERE seq = 2",
    )
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 1 and "first bad event seq 2" in out


def test_seal_is_done_by_a_verified_person(
    state_url: str, keyed_config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sealing vouches for the whole trail: like every command that writes to
    it, only a verified person may (here: a GitHub user token, GET /user on the
    emulator), recorded with the principal that proved it. Nobody verified:
    one error, nothing sealed, nothing appended."""
    from testing.github import GitHubEmulator

    for name in list(os.environ):
        if name.startswith(("AWS_", "GH_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with open_state(state_url) as old:
        fill(old, 3)
    with GitHubEmulator() as github:
        config = Path(keyed_config)
        config.write_text(
            config.read_text("utf-8") + f"github:\n  base_url: {github.url}\n", "utf-8"
        )

        def seal() -> tuple[int, str, BaseException | None]:
            context = Session(state_url=state_url, config_path=keyed_config)
            try:
                outcome = CliRunner().invoke(app, ["seal"], obj=context)
            finally:
                context.close()
            return outcome.exit_code, outcome.output, outcome.exception

        code, _, error = seal()  # no credentials at all
        assert isinstance(error, IdentityError) and "cannot verify who you are" in error.message
        monkeypatch.setenv("GH_TOKEN", "gho_" + "x" * 36)  # a token GitHub rejects
        code, _, error = seal()
        assert isinstance(error, IdentityError) and "GitHub rejected the token" in error.message
        with open_state(state_url) as store:
            events = store.audit_events()
        assert len(events) == 3 and all(e.mac is None for e in events)  # nothing changed

        monkeypatch.setenv("GH_TOKEN", github.create_user_token("octo-alice"))
        code, out, error = seal()
    assert code == 0 and error is None and "sealed 3 event(s)" in out, out
    with open_state(state_url) as store:
        (sealed,) = store.audit_events(action="audit.seal")
    assert sealed.operator == "octo-alice"
    assert sealed.detail["principal"] == "github:user/octo-alice"


def test_seal_on_an_empty_trail_keys_it(state_url: str, keyed_config: str) -> None:
    with open_state(state_url):
        pass  # `agentctl state init`
    code, out = run_audit(state_url, keyed_config, "seal")
    assert code == 0 and "keyed from its first event" in out, out
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 0 and "intact: 1 events" in out


def test_a_trail_keyed_midway_is_unsealed_until_seal(state_url: str, keyed_config: str) -> None:
    with open_state(state_url) as old:
        fill(old, 3)
    fill_as_a_command(state_url, keyed_config, 2)  # the upgraded agentctl keys from seq 4
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 1 and "NOT SEALED: 3 event(s)" in out
    code, out = run_audit(state_url, keyed_config, "seal", "-o", "json")
    report = json.loads(out)
    assert code == 0 and report["sealed"] == 3 and report["complete"] is True
    assert report["verify"]["verdict"] == "intact" and report["verify"]["checked"] == 6


def test_seal_refuses_a_trail_that_does_not_verify(state_url: str, keyed_config: str) -> None:
    with open_state(state_url) as old:
        fill(old, 3)
    fill_as_a_command(state_url, keyed_config, 2)
    # the attacker rewrites an old event and re-hashes everything up to the keyed part
    with open_state(state_url) as store:
        events = store.audit_events()
    edited = replace(events[1], result="denied")
    edited = replace(edited, hash=edited.compute_hash())
    third = replace(events[2], prev_hash=edited.hash)
    third = replace(third, hash=third.compute_hash())
    tamper(
        state_url,
        f"UPDATE audit_events SET result = 'denied', hash = '{edited.hash}' WHERE seq = 2",
        f"UPDATE audit_events SET prev_hash = '{edited.hash}', hash = '{third.hash}' WHERE seq = 3",
    )
    context = Session(state_url=state_url, config_path=keyed_config, _actor=OPERATOR)
    try:
        outcome = CliRunner().invoke(app, ["seal"], obj=context)
    finally:
        context.close()
    assert isinstance(outcome.exception, StateError)
    assert "does not verify at seq 4" in outcome.exception.message
    with open_state(state_url) as store:
        assert [e.mac is None for e in store.audit_events()] == [True] * 3 + [False] * 2


def test_an_old_database_is_migrated_and_sealed(state_url: str, keyed_config: str) -> None:
    """A state written by agentctl before the keyed chain (schema 4): upgrade, then seal."""
    from agentctl.state import schema
    from agentctl.state.records import GENESIS_HASH, AuditEvent

    engine = create_state_engine(state_url)
    prev = GENESIS_HASH
    with engine.begin() as conn:
        schema.migrate(conn, target=4)
        for seq in range(1, 4):
            event = AuditEvent(
                seq=seq,
                id=f"old-{seq}",
                time=T0 + timedelta(minutes=seq),
                actor="agentctl",
                on_behalf_of=None,
                action="apply.create",
                scope=None,
                trigger=None,
                target=f"agent-{seq}",
                result="success",
                operator="ops",
                detail={},
                prev_hash=prev,
            )
            event = replace(event, hash=event.compute_hash())
            row = {**event.hashed_fields(), "detail": "{}", "hash": event.hash}
            conn.execute(sa.table("audit_events", *map(sa.column, row)).insert().values(row))
            prev = event.hash
        conn.execute(sa.text("UPDATE audit_head SET seq = 3, hash = :h"), {"h": prev})
    engine.dispose()
    with open_state(state_url) as store:
        assert store.schema_version() >= 5
        head = store.audit_head()
        assert head is not None and head.seq == 3 and head.trail and head.key_id is None
    code, out = run_audit(state_url, keyed_config, "seal")
    assert code == 0 and "sealed 3 event(s)" in out, out
    code, out = run_audit(state_url, keyed_config, "verify")
    assert code == 0 and "intact: 4 events" in out


def test_cli_lists_with_filters(cli: tuple[CliRunner, Session], filled: StateStore) -> None:
    runner, context = cli
    filled.append_audit(
        AuditDraft(
            actor="alice",
            action="kill",
            target="deploy-agent",
            result="success",
            trigger="[bold]not markup[/bold]",
        ),
        operator="alice",
    )
    table = runner.invoke(app, [], obj=context)
    assert table.exit_code == 0
    assert "credentials.issue" in table.output and "[bold]not markup[/bold]" in table.output

    listed = runner.invoke(app, ["--agent", "deploy-agent", "--output", "json"], obj=context)
    assert listed.exit_code == 0
    events = json.loads(listed.output)["events"]
    assert [e["seq"] for e in events] == [6] and events[0]["operator"] == "alice"

    by_action = runner.invoke(app, ["--action", "exec.start", "-o", "json"], obj=context)
    assert [e["seq"] for e in json.loads(by_action.output)["events"]] == [2, 4]
    since = runner.invoke(app, ["--since", "2026-11-01T12:00:03Z", "-o", "json"], obj=context)
    assert [e["seq"] for e in json.loads(since.output)["events"]] == [4, 5, 6]
    latest = runner.invoke(app, ["--limit", "2", "-o", "json"], obj=context)
    assert [e["seq"] for e in json.loads(latest.output)["events"]] == [5, 6]

    nothing = runner.invoke(app, ["--agent", "nobody"], obj=context)
    assert nothing.exit_code == 0 and "no audit events match" in nothing.output

    wrong = runner.invoke(app, ["--since", "last tuesday"], obj=context)
    assert isinstance(wrong.exception, UsageError)


def test_cli_export(cli: tuple[CliRunner, Session], filled: StateStore, tmp_path: Path) -> None:
    runner, context = cli
    to_stdout = runner.invoke(app, ["export"], obj=context)
    assert to_stdout.exit_code == 0
    events, problems = read_jsonl(to_stdout.stdout.splitlines(keepends=True))
    assert problems == [] and len(events) == 5 and verify_chain(events).ok

    target = tmp_path / "audit.jsonl"
    to_file = runner.invoke(app, ["export", "--output-file", str(target)], obj=context)
    assert to_file.exit_code == 0 and "exported 5 events" in to_file.output
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert target.read_text() == to_stdout.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", T0 - timedelta(hours=24)),
        ("7d", T0 - timedelta(days=7)),
        ("30m", T0 - timedelta(minutes=30)),
        ("2w", T0 - timedelta(weeks=2)),
        ("2026-10-01", datetime(2026, 10, 1, tzinfo=UTC)),
        ("2026-10-01T08:30:00Z", datetime(2026, 10, 1, 8, 30, tzinfo=UTC)),
        ("2026-10-01T10:30:00+02:00", datetime(2026, 10, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_since_forms(text: str, expected: datetime) -> None:
    assert parse_since(text, clock=lambda: T0) == expected


# -- streaming and indexes (issue 19) -----------------------------------------------------


def _issued(store: StateStore, **filters: object) -> tuple[str, object]:
    """The SQL (and its parameters) the store sends for ``iter_audit_events(**filters)``."""
    sent: list[tuple[str, object]] = []

    def capture(*args: object) -> None:
        statement, parameters = args[2], args[3]
        if "FROM audit_events" in str(statement):
            sent.append((str(statement), parameters))

    engine = store._engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        list(store.iter_audit_events(**filters))  # type: ignore[arg-type]
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    [issued] = sent
    return issued


def test_filters_are_served_by_indexes(store: StateStore, state_url: str) -> None:
    """--agent, --action and --since seek an index instead of reading every event:
    the statements the store really sends, explained by the database itself
    (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN, on a trail of 20,000
    events with fresh statistics, where the filtered values are rare)."""
    fill(store, 3)
    if store.dialect == "postgresql":
        # Many events quickly (the plan, not the chain, is under test here).
        tamper(
            state_url,
            "INSERT INTO audit_events (seq, id, time, actor, action, target, result, operator,"
            " detail, prev_hash, hash) SELECT n + 100, 'bulk-' || n,"
            " '2026-01-01T00:00:00.000000+00:00', 'agent-' || (n % 200), 'exec.start',"
            " 'agent-' || (n % 200), 'success', 'ci', '{}', 'x', 'y'"
            " FROM generate_series(1, 20000) AS n",
            "ANALYZE audit_events",
        )
    expected = {
        "ix_audit_events_actor": {"agent": "pr-review-agent"},
        "ix_audit_events_action": {"action": "credentials.issue"},
        "ix_audit_events_time": {"since": T0 + timedelta(days=300)},
    }
    with store._engine.connect() as conn:
        for index, filters in expected.items():
            statement, parameters = _issued(store, **filters)
            explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(explain + statement, parameters)  # type: ignore[arg-type]
            )
            assert index in plan, (filters, plan)
            if index == "ix_audit_events_actor":  # actor OR target: both indexes
                assert "ix_audit_events_target" in plan, plan
            assert "SCAN audit_events" not in plan and "Seq Scan" not in plan, plan


def test_a_long_listing_on_a_terminal_is_one_line_per_event() -> None:
    """On a terminal a short listing is a rich table; a long one (rich measured
    every cell: 0.6 ms an event) is one line per event, header bold once,
    columns aligned and only widening, control characters shown, never sent."""
    from rich.console import Console

    from agentctl.commands.audit import AuditEvents
    from agentctl.render import Output, render_text
    from agentctl.state.records import AuditEvent

    def events(count: int) -> Iterator[AuditEvent]:
        for seq in range(1, count + 1):
            yield AuditEvent(
                seq=seq,
                id=f"id-{seq}",
                time=T0 + timedelta(seconds=seq),
                actor="a" * (1 + seq // 400),  # widens after the first screenful
                on_behalf_of=None,
                action="kill",
                scope=None,
                trigger="evil\x1b[2J" if seq == 3 else None,
                target="t",
                result="ok",
                operator="o",
            )

    def shown(count: int) -> list[str]:
        stream = io.StringIO()
        console = Console(file=stream, force_terminal=True, width=80, color_system="standard")
        render_text(AuditEvents(events(count)), Output(console))
        return stream.getvalue().splitlines()

    short = shown(3)
    assert any("━" in line for line in short)  # rich's table
    long = shown(1200)
    assert len(long) == 1 + 1200
    assert long[0].startswith("\x1b[1mseq  time (UTC)") and long[0].endswith("\x1b[0m")
    assert long[1].split() == [
        "1",
        T0.strftime("%Y-%m-%d"),
        "12:00:01",
        "a",
        "-",
        "kill",
        "t",
        "ok",
        "-",
        "-",
        "o",
    ]
    assert "\x1b" not in "".join(long[1:]) and "evil\\x1b[2J" in long[3]
    starts = {line.index("kill") for line in long[1:]}
    assert len(starts) == 2  # the second screenful is wider (actor "aaa", seq 1000), the third too
    assert [line.index("kill") for line in long[1:]] == sorted(
        line.index("kill") for line in long[1:]
    )


def test_listing_streams_lines_off_a_terminal(
    cli: tuple[CliRunner, Session], filled: StateStore
) -> None:
    filled.append_audit(
        AuditDraft(
            actor="alice", action="kill", target="x", result="ok", trigger="two\tcolumns\nand lines"
        ),
        operator="o",
    )
    runner, context = cli
    listed = runner.invoke(app, [], obj=context)
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t") == [
        "seq",
        "time (UTC)",
        "actor",
        "for",
        "action",
        "target",
        "result",
        "trigger",
        "scope",
        "operator",
    ]
    assert len(lines) == 7 and all(len(line.split("\t")) == 10 for line in lines)
    assert lines[-1].split("\t")[7] == "two\\tcolumns\\nand lines"  # one record, one line
    as_json = runner.invoke(app, ["-o", "json"], obj=context)
    assert [e["seq"] for e in json.loads(as_json.stdout)["events"]] == [1, 2, 3, 4, 5, 6]
    nothing = runner.invoke(app, ["-o", "json", "--agent", "nobody"], obj=context)
    assert json.loads(nothing.stdout) == {"events": []}


def test_streaming_reads_in_batches(filled: StateStore) -> None:
    fill(filled, 20)
    streamed = list(filled.iter_audit_events(batch_size=3))
    assert [e.seq for e in streamed] == list(range(1, 26))
    with filled.audit_trail(batch_size=4) as (head, events):
        assert head is not None and head.seq == 25
        assert verify_chain(events, head).ok


def test_an_old_database_gets_the_time_index(state_url: str) -> None:
    from agentctl.state import schema

    engine = create_state_engine(state_url)
    with engine.begin() as conn:
        schema.migrate(conn, target=5)
    engine.dispose()
    with open_state(state_url) as store:
        assert store.schema_version() == schema.LATEST_VERSION
    engine = create_state_engine(state_url)
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("audit_events")}
    engine.dispose()
    assert "ix_audit_events_time" in indexes


# -- the chain key in a real Secret Service -------------------------------------------


@pytest.mark.secret_service
def test_a_trail_keyed_in_the_secret_service_verifies_and_finds_a_forgery(
    state_url: str, tmp_path: Path
) -> None:
    """The chain key in gnome-keyring over D-Bus (CI runs the suite under
    dbus-run-session, see scripts/ci-services.sh), not only the encrypted-file
    backend: created on first use there, read back by another process to
    verify, never in the state; a forged event with every plain hash
    recomputed is found at its seq (test_audit_tamper.py runs every attack
    with the encrypted-file backend; the key code is backend-agnostic)."""
    import subprocess
    import sys

    from audit_helpers import rehash_from

    from agentctl.audit_key import chain_key_name
    from agentctl.config import SecretsSettings
    from agentctl.secrets import open_secret_store

    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.skip("no D-Bus session bus: run under dbus-run-session with gnome-keyring unlocked")
    config = tmp_path / "agentctl.yaml"
    config.write_text(
        "secrets:\n  backend: secret-service\n"
        f"audit:\n  anchor: file\n  anchor_file: {tmp_path / 'anchors.jsonl'}\n",
        encoding="utf-8",
    )
    keyring = open_secret_store(SecretsSettings(backend="secret-service"), environ={})
    fill_as_a_command(state_url, str(config), 5)
    with open_state(state_url) as store:
        head = store.audit_head()
        events = store.audit_events()
    assert head is not None and head.trail and all(e.mac for e in events)
    key_name = chain_key_name(head.trail)
    try:
        stored = keyring.get(key_name)
        assert stored is not None, "the chain key is not in the Secret Service"
        secret = json.loads(stored.reveal())["key"]
        assert secret not in "\n".join(json.dumps(e.as_dict()) for e in events)
        if state_url.startswith("sqlite:///"):
            for path in Path(state_url.removeprefix("sqlite:///")).parent.iterdir():
                assert secret.encode() not in path.read_bytes(), path

        def verify_in_another_process() -> tuple[int, str]:
            argv = ["--config", str(config), "--state", state_url, "audit", "verify", "-o", "json"]
            done = subprocess.run(
                [sys.executable, "-m", "agentctl", *argv],
                capture_output=True,
                text=True,
                timeout=120,
            )
            return done.returncode, done.stdout + done.stderr

        code, out = verify_in_another_process()
        assert code == 0 and json.loads(out)["verdict"] == "intact", out

        # the state writer's forgery: an event edited, every plain hash after it
        # recomputed with agentctl's own function, the head moved along
        edited = replace(events[2], result="denied")
        repaired = rehash_from([*events[:2], edited, *events[3:]], 3)
        engine = create_state_engine(state_url)
        with engine.begin() as conn:
            for event in repaired:
                conn.execute(
                    sa.text(
                        "UPDATE audit_events SET result = :result, prev_hash = :prev, "
                        "hash = :hash WHERE seq = :seq"
                    ),
                    {"result": event.result, "prev": event.prev_hash, "hash": event.hash}
                    | {"seq": event.seq},
                )
            conn.execute(sa.text("UPDATE audit_head SET hash = :hash"), {"hash": repaired[-1].hash})
        engine.dispose()
        code, out = verify_in_another_process()
        report = json.loads(out)
        assert code == 1 and report["verdict"] == "tampered", out
        assert report["first_bad_seq"] == 3, out
    finally:
        keyring.delete(key_name)
