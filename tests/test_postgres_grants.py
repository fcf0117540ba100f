"""The PostgreSQL roles the README documents (issue 20, "Cron-safe"): a role
with CREATE makes and upgrades agentctl's tables (`agentctl state init`,
`agentctl state migrate`); every operator's login needs only
`SELECT, INSERT, UPDATE, DELETE` on those tables (plus USAGE on the schema).

Proved with real roles on the test server (scripts/ci-services.sh gives the
test user CREATEROLE for this): a DML-only login runs the whole lifecycle,
may not create or upgrade tables and says which role must, and the README's
default privileges carry the grant to the tables a later upgrade adds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_helpers import Cli, CliResult

from agentctl.state import open_state
from agentctl.state import schema as state_schema
from agentctl.state.store import create_state_engine

pytestmark = pytest.mark.postgres


def _admin_dsn() -> str:
    base = os.environ["AGENTCTL_TEST_POSTGRES_URL"]
    return base.replace("postgresql+psycopg://", "postgresql://", 1)


def _schema_of(url: str) -> str:
    options = sa.engine.make_url(url).query["options"]
    assert isinstance(options, str)
    return options.rsplit("search_path=", 1)[-1].rsplit("search_path%3D", 1)[-1]


def _as_admin(*statements: str) -> None:
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_grants(schema: str, role: str) -> list[str]:
    """The README's grants ("Running agentctl as a team", step 1), as its
    reader would run them: for this test's schema and login."""
    text = README.read_text("utf-8")
    block = text.split("```sql\n", 1)[1].split("```", 1)[0]
    lines = [line.strip() for line in block.splitlines()]
    sql = " ".join(line for line in lines if line and not line.startswith("--"))
    statements = [part.strip() for part in sql.split(";") if part.strip()]
    assert len(statements) == 3 and "ALTER DEFAULT PRIVILEGES" in statements[2], statements
    return [
        st.replace("SCHEMA public", f'SCHEMA "{schema}"').replace("agentctl_operators", role)
        for st in statements
    ]


@pytest.fixture
def dml_login(postgres_url: str) -> Iterator[Callable[[str], str]]:
    """A new LOGIN role with no privileges of its own; call with a state URL of
    the test server to get the same URL as that role."""
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    # Not a skip: CI's server is made by scripts/ci-services.sh, which grants it.
    assert row and row[0], (
        "the test database role needs CREATEROLE (scripts/ci-services.sh grants it)"
    )
    role = f"dml_{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    _as_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")

    def as_role(url: str) -> str:
        return (
            sa.engine.make_url(url)
            .set(username=role, password=password)
            .render_as_string(hide_password=False)
        )

    as_role.role = role  # type: ignore[attr-defined]
    try:
        yield as_role
    finally:
        with suppress(Exception):
            _as_admin(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def _ok(result: CliResult) -> CliResult:
    assert result.code == 0, str(result)
    assert "Traceback" not in result.err, str(result)
    return result


def test_a_dml_only_login_runs_the_whole_lifecycle(
    cli: Cli, postgres_url: str, dml_login: Callable[[str], str]
) -> None:
    cli.write("alpha-agent")
    _ok(cli("--state", postgres_url, "state", "init"))
    role: str = dml_login.role  # type: ignore[attr-defined]
    schema = _schema_of(postgres_url)
    _as_admin(*_readme_grants(schema, role))
    operator = dml_login(postgres_url)

    _ok(cli("--state", operator, "apply", cli.contracts, "--yes"))
    assert cli.role("alpha-agent") is not None
    _ok(cli("--state", operator, "plan", cli.contracts, "--detailed-exitcode"))
    _ok(cli("--state", operator, "status"))
    _ok(cli("--state", operator, "expiring", "--days", "30", cli.contracts))
    _ok(cli("--state", operator, "rotate", "alpha-agent"))
    killed = _ok(cli("--state", operator, "kill", "alpha-agent", "--reason", "drill", "--yes"))
    assert "killed" in killed.out.lower(), killed.out
    _ok(cli("--state", operator, "revive", "alpha-agent", "--reason", "drill over"))
    # No secret store in this installation: the trail is chained, not keyed.
    verified = cli("--state", operator, "audit", "verify")
    assert "hash-chained" in verified.out and not verified.err, str(verified)
    trail = _ok(cli("--state", operator, "audit", "-o", "json"))
    assert {"apply.create", "rotate", "kill", "revive"} == {
        e["action"] for e in trail.json()["events"]
    }, trail.out

    # ... and it really is DML only: no table of its own in agentctl's schema.
    import psycopg

    dsn = operator.replace("postgresql+psycopg://", "postgresql://", 1).split("?")[0]
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(f'CREATE TABLE "{schema}".sneaky (x int)')


def _at_version(url: str, version: int) -> None:
    """agentctl's tables as an older agentctl left them (made by the admin)."""
    engine = create_state_engine(url)
    try:
        with engine.begin() as conn:
            state_schema.migrate(conn, target=version)
    finally:
        engine.dispose()


def test_a_dml_only_login_may_not_create_or_upgrade_and_says_who_can(
    cli: Cli, postgres_url: str, dml_login: Callable[[str], str]
) -> None:
    role: str = dml_login.role  # type: ignore[attr-defined]
    schema = _schema_of(postgres_url)
    operator = dml_login(postgres_url)
    _as_admin(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')

    created = cli("--state", operator, "state", "init")
    assert created.code == 1, str(created)
    assert f'may not create agentctl\'s tables (no CREATE on schema "{schema}")' in created.err
    assert "run `agentctl state init` once as the role that owns the schema" in created.err
    assert "Traceback" not in created.err and "password" not in created.err.lower()

    # An older agentctl's tables, granted as the README says; this agentctl
    # is newer. Every command of the operator's login says who must upgrade,
    # and changes nothing (no role in AWS).
    older = state_schema.LATEST_VERSION - 1
    _at_version(postgres_url, older)
    _as_admin(*_readme_grants(schema, role))
    cli.write("alpha-agent")
    for command in (("status",), ("state", "migrate"), ("apply", str(cli.contracts), "--yes")):
        refused = cli("--state", operator, *command)
        assert refused.code == 1, str(refused)
        assert f"at schema version {older} and this agentctl needs" in refused.err, str(refused)
        assert (
            "run `agentctl state migrate` as the role that ran `agentctl state init`" in refused.err
        ), str(refused)
        assert "Traceback" not in refused.err
    assert cli.role("alpha-agent") is None

    # The owner upgrades; the README's default privileges give the operator's
    # login the table that upgrade added (intents, new in the latest version).
    _ok(cli("--state", postgres_url, "state", "migrate"))
    _ok(cli("--state", operator, "apply", cli.contracts, "--yes"))
    assert cli.role("alpha-agent") is not None
    with open_state(operator, create=False) as store:
        store.put_intent("alpha-agent", "github", "register", {"at": datetime.now(UTC).isoformat()})
        assert [i.agent for i in store.list_intents("github")] == ["alpha-agent"]
        assert store.clear_intent("alpha-agent", "github", "register")
