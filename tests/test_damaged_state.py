"""A state row holding what agentctl never writes — written by whoever can write
the state database, or left by a bad manual edit or restore — is named, never
a crash: the table, the row, the column and what to do, never the value, exit
1 and no traceback. `kill` still revokes the named agent in every system, also
when its own row or another agent's is damaged; `status`/`list` show the
healthy agents and name the damaged rows.

The rows are damaged with raw SQL on real SQLite (through the sqlite3 fast
paths of status/plan/exec/credentials, agentctl.state.snapshot and
agentctl.state.runstate) and real PostgreSQL (through the SQLAlchemy store),
and every command runs through the real CLI against moto with IAM enforcement
on. Every test here ended in "internal error ... this is a bug" before the row
decoders of agentctl.state.records.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from cli_helpers import BOTH_WAYS
from state_helpers import BACKENDS

if TYPE_CHECKING:
    from cli_helpers import Cli

# What a message about a damaged row says to do (agentctl.state.records.DAMAGED_ROW_HINT).
RESTORE = "restore the state database from a backup"


@pytest.fixture(params=BACKENDS)
def installation(request: pytest.FixtureRequest, cli: Cli) -> Cli:
    """``cli`` on a SQLite state, or on a fresh PostgreSQL schema."""
    if request.param == "postgres":
        cli.state_url = request.getfixturevalue("postgres_url")
        cli.write_config()
    return cli


def damage(cli: Cli, sql: str, *params: Any) -> None:
    """Write to the state as a state-database writer does: raw SQL, no agentctl."""
    if cli.state_url.startswith("sqlite:///"):
        with sqlite3.connect(cli.state_path) as conn:
            assert conn.execute(sql, params).rowcount >= 1, sql
        return
    import psycopg

    url = cli.state_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(sql.replace("?", "%s"), params).rowcount >= 1, sql


def provisioned(cli: Cli, *names: str) -> None:
    for name in names:
        cli.write(name)
    result = cli("apply", cli.contracts, "--yes")
    assert result.code == 0, result


def names_the_row(result: Any, table: str, row: str, column: str) -> None:
    """The message names the table, the row and the column, and what to do."""
    assert result.code == 1, result
    assert f"damaged row in table {table} ({row}): column {column}" in result.err, result
    assert RESTORE in result.err, result


@BOTH_WAYS
def test_status_and_list_show_the_healthy_agents_and_name_the_damaged_row(
    installation: Cli, cli: Cli
) -> None:
    # Also as its own process: exit 1, the error on stderr, no traceback.
    provisioned(cli, "alpha-agent", "beta-agent", "gamma-agent")
    damage(cli, "UPDATE agents SET status = 'hacked' WHERE name = 'beta-agent'")

    for command in ("status", "list"):
        result = cli(command)
        names_the_row(result, "agents", "name 'beta-agent'", "status")
        assert "is not a status agentctl knows (one of: active, killed" in result.err
        assert "alpha-agent" in result.out and "gamma-agent" in result.out, result
        assert "beta-agent" not in result.out, result
        assert "hacked" not in result.out + result.err  # never the stored value

    shown = cli("status", "-o", "json")
    assert shown.code == 1, shown
    report = shown.json()
    assert [agent["name"] for agent in report["agents"]] == ["alpha-agent", "gamma-agent"]
    (row,) = report["damaged_rows"]
    assert {k: row[k] for k in ("table", "row", "column", "agent")} == {
        "table": "agents",
        "row": "name 'beta-agent'",
        "column": "status",
        "agent": "beta-agent",
    }
    assert RESTORE in row["hint"]
    # The healthy state's JSON has no such key (its shape is unchanged).
    damage(cli, "UPDATE agents SET status = 'active' WHERE name = 'beta-agent'")
    healthy = cli("status", "-o", "json")
    assert healthy.code == 0 and set(healthy.json()) == {"agents"}, healthy


def test_one_damaged_agent_is_named_by_every_command_that_reads_it(installation: Cli) -> None:
    cli = installation
    provisioned(cli, "alpha-agent", "beta-agent")
    damage(cli, "UPDATE agents SET document = '{not json' WHERE name = 'beta-agent'")

    names_the_row(cli("status", "beta-agent"), "agents", "name 'beta-agent'", "document")
    credentials = cli("credentials", "beta-agent", "--format", "aws-process")
    names_the_row(credentials, "agents", "name 'beta-agent'", "document")
    assert credentials.out == ""  # nothing minted for a row that cannot be read
    # cron's report: the damaged agent is an item of its own, the others reported as ever.
    due = cli("expiring", cli.contracts, "--days", "400", "-o", "json")
    assert due.code == 1, due
    items = [item for owner in due.json()["owners"] for item in owner["items"]]
    assert {(i["agent"], i["kind"]) for i in items} == {
        ("alpha-agent", "contract-expiring"),
        ("beta-agent", "contract-expiring"),
        ("beta-agent", "state-damaged"),
    }
    (damaged,) = [i for i in items if i["kind"] == "state-damaged"]
    assert damaged["owner"] == "platform-team@company.com"  # from its contract
    assert "table agents, column document" in damaged["detail"]
    assert "not json" not in due.out
    # Reads that never touch the document go on.
    assert cli("plan", cli.contracts).code == 0
    assert cli("list").code == 0


def test_plan_and_apply_refuse_while_a_status_is_unreadable(installation: Cli) -> None:
    # A status apply cannot read could be a kill it would undo: it stops.
    cli = installation
    provisioned(cli, "alpha-agent", "beta-agent")
    damage(cli, "UPDATE agents SET status = 'revived-by-hand' WHERE name = 'beta-agent'")
    names_the_row(cli("plan", cli.contracts), "agents", "name 'beta-agent'", "status")
    names_the_row(cli("apply", cli.contracts, "--yes"), "agents", "name 'beta-agent'", "status")


@BOTH_WAYS
def test_kill_revokes_the_agent_whatever_rows_are_damaged(installation: Cli, cli: Cli) -> None:
    """The 3 a.m. case: the state was tampered with, and the agent must stop now."""
    provisioned(cli, "alpha-agent", "beta-agent", "gamma-agent")
    damage(
        cli,
        "UPDATE agents SET status = 'hacked', document = 'nope' WHERE name = 'beta-agent'",
    )

    # Another agent's row is damaged: no difference at all.
    other = cli("kill", "alpha-agent", "--yes", "--reason", "INC-19", "-o", "json")
    assert other.code == 0, other
    assert other.json()["state_recorded"] is True and other.json()["notes"] == []
    killed = cli.role("alpha-agent")
    assert killed is not None and "agentctl-kill" in killed["Policies"]

    # Its own row is damaged: revoked in every system all the same, the kill
    # recorded over the damaged status, the event in the state's audit trail.
    own = cli("kill", "beta-agent", "--yes", "--reason", "INC-19", "-o", "json")
    assert own.code == 0, own
    report = own.json()
    assert report["ok"] is True and report["state_recorded"] is True, report
    assert report["audit_recorded_in"] == "state", report
    (note,) = report["notes"]
    assert "damaged row in table agents (name 'beta-agent'): column " in note
    assert {p["provider"]: p["ok"] for p in report["providers"]} == {
        "aws": True,
        "github": True,
        "jira": True,
    }, report
    killed = cli.role("beta-agent")
    assert killed is not None and "agentctl-kill" in killed["Policies"]
    untouched = cli.role("gamma-agent")
    assert untouched is not None and "agentctl-kill" not in untouched["Policies"]

    listed = cli("status", "-o", "json")
    assert listed.code == 0, listed  # the status column is agentctl's again
    assert {a["name"]: a["status"] for a in listed.json()["agents"]} == {
        "alpha-agent": "killed",
        "beta-agent": "killed",
        "gamma-agent": "active",
    }
    # The document is still damaged, and still refused where it is read.
    names_the_row(cli("status", "beta-agent"), "agents", "name 'beta-agent'", "document")
    verified = cli("audit", "verify")
    assert "outside agentctl" not in verified.out + verified.err, verified


def test_a_damaged_resource_row_is_named_and_kill_finds_the_role_by_its_tags(
    installation: Cli,
) -> None:
    cli = installation
    provisioned(cli, "alpha-agent", "beta-agent")
    damage(cli, "UPDATE resources SET attributes = '[1, 2' WHERE agent = 'beta-agent'")
    names_the_row(
        cli("status", "beta-agent"), "resources", "agent 'beta-agent', provider 'aws'", "attributes"
    )
    killed = cli("kill", "beta-agent", "--yes", "--reason", "INC-19")
    assert killed.code == 0, killed
    role = cli.role("beta-agent")
    assert role is not None and "agentctl-kill" in role["Policies"]


def test_a_damaged_audit_event_is_named_and_verify_calls_it_a_break(installation: Cli) -> None:
    cli = installation
    provisioned(cli, "alpha-agent", "beta-agent")
    damage(cli, "UPDATE audit_events SET detail = '{\"cut' WHERE seq = 2")
    names_the_row(cli("audit"), "audit_events", "seq 2", "detail")
    verified = cli("audit", "verify")
    assert verified.code == 1, verified
    assert "event seq 2 was written or rewritten outside agentctl" in verified.out + verified.err
    damage(cli, "UPDATE audit_events SET time = 'at teatime' WHERE seq = 1")
    names_the_row(cli("audit"), "audit_events", "seq 1", "time")
    verified = cli("audit", "verify")
    assert verified.code == 1, verified
    assert "event seq 1 was written or rewritten outside agentctl" in verified.out + verified.err


def test_no_secret_looking_value_of_a_damaged_row_is_ever_shown(installation: Cli) -> None:
    # A state writer chooses the values: a key that looks like a credential is
    # not echoed into a CI log, and neither is the damaged value.
    cli = installation
    provisioned(cli, "alpha-agent")
    token = "ghp_" + "Z" * 36
    damage(
        cli,
        "INSERT INTO agents (name, owner, purpose, execution_mode, status, created_at, "
        "updated_at) SELECT ?, owner, purpose, execution_mode, ?, created_at, updated_at "
        "FROM agents WHERE name = 'alpha-agent'",
        token,
        token,
    )
    result = cli("status")
    names_the_row(result, "agents", "name (a value that looks like a secret)", "status")
    assert token not in result.out + result.err
    assert "alpha-agent" in result.out


# -- SQLite keeps any text in any column: timestamps and dates ------------------------


@pytest.mark.parametrize(
    ("sql", "command", "table", "row", "column"),
    [
        (
            "UPDATE agents SET expiry = '2027-13-45' WHERE name = 'beta-agent'",
            ("status",),
            "agents",
            "name 'beta-agent'",
            "expiry",
        ),
        (
            "UPDATE agents SET last_rotated_at = 'last tuesday' WHERE name = 'beta-agent'",
            ("list",),
            "agents",
            "name 'beta-agent'",
            "last_rotated_at",
        ),
        (
            "UPDATE agents SET created_at = 'yesterday' WHERE name = 'beta-agent'",
            ("credentials", "beta-agent", "--format", "aws-process"),
            "agents",
            "name 'beta-agent'",
            "created_at",
        ),
        (
            "UPDATE resources SET updated_at = 42 WHERE agent = 'beta-agent'",
            ("credentials", "beta-agent", "--format", "aws-process"),
            "resources",
            "agent 'beta-agent', provider 'aws'",
            "updated_at",
        ),
        (
            "UPDATE agents SET owner = x'deadbeef' WHERE name = 'beta-agent'",
            ("status",),
            "agents",
            "name 'beta-agent'",
            "owner",
        ),
    ],
)
def test_a_malformed_value_in_a_sqlite_state_is_named(
    cli: Cli, sql: str, command: tuple[str, ...], table: str, row: str, column: str
) -> None:
    provisioned(cli, "alpha-agent", "beta-agent")
    damage(cli, sql)
    names_the_row(cli(*command), table, row, column)
    # The other agent is unaffected, and so is killing the damaged one.
    assert cli("status", "alpha-agent").code == 0
    assert cli("kill", "beta-agent", "--yes", "--reason", "INC-19").code == 0
    role = cli.role("beta-agent")
    assert role is not None and "agentctl-kill" in role["Policies"]


def test_a_malformed_credential_time_is_named_by_status_and_expiring(cli: Cli) -> None:
    provisioned(cli, "alpha-agent", "beta-agent")
    # A credential as `credentials` records it, its expiry then damaged.
    damage(
        cli,
        "INSERT INTO credentials (id, agent, provider, kind, fingerprint, issued_at, "
        "expires_at) VALUES ('c1', 'beta-agent', 'aws', 'session', 'f1', "
        "'2026-11-28 12:00:00.000000', 'soon')",
    )
    for command in (("status",), ("status", "beta-agent"), ("expiring", "--days", "30")):
        names_the_row(cli(*command), "credentials", "id 'c1', agent 'beta-agent'", "expires_at")
    assert cli("kill", "beta-agent", "--yes", "--reason", "INC-19").code == 0


def test_kill_is_incomplete_while_a_recorded_provider_is_not_installed(installation: Cli) -> None:
    """A resource row of a provider this machine does not have (its package is
    missing here, or the row was written outside agentctl): the kill revokes
    everything it can, and says that system was not revoked, never "killed"."""
    cli = installation
    provisioned(cli, "alpha-agent", "beta-agent")
    damage(
        cli,
        "INSERT INTO resources (agent, provider, resource_id, attributes, applied_hash, "
        "updated_at) SELECT agent, 'vault', 'vault-role-beta', '{}', applied_hash, updated_at "
        "FROM resources WHERE agent = 'beta-agent'",
    )
    result = cli("kill", "beta-agent", "--yes", "--reason", "INC-19", "-o", "json")
    assert result.code == 1, result
    report = result.json()
    by_provider = {p["provider"]: p for p in report["providers"]}
    assert by_provider["aws"]["ok"] is True
    vault = by_provider["vault"]
    assert vault["ok"] is False
    assert "no provider named vault is installed here" in vault["detail"]
    assert "revoke beta-agent in that system by hand" in vault["remaining"]
    role = cli.role("beta-agent")
    assert role is not None and "agentctl-kill" in role["Policies"]
    listed = cli("status", "-o", "json").json()["agents"]
    assert {a["name"]: a["status"] for a in listed}["beta-agent"] == "kill-incomplete"
    # The other agent's kill knows nothing of it.
    assert cli("kill", "alpha-agent", "--yes", "--reason", "INC-19").code == 0


@pytest.mark.postgres
def test_a_null_where_agentctl_always_writes_a_value_is_named(cli: Cli, postgres_url: str) -> None:
    """A state writer with DDL rights can drop a NOT NULL constraint first."""
    import psycopg

    cli.state_url = postgres_url
    cli.write_config()
    provisioned(cli, "alpha-agent", "beta-agent")
    with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute("ALTER TABLE agents ALTER COLUMN owner DROP NOT NULL")
        conn.execute("UPDATE agents SET owner = NULL WHERE name = 'beta-agent'")
    result = cli("status")
    names_the_row(result, "agents", "name 'beta-agent'", "owner")
    assert "column owner is empty (NULL)" in result.err
    assert "alpha-agent" in result.out
    assert cli("kill", "beta-agent", "--yes", "--reason", "INC-19").code == 0
