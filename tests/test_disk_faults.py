"""A full disk and a read-only PostgreSQL state (issue 21, item 4): every
command says what is wrong and what to do, and changes nothing half-way.

The full disk is real: a tmpfs of this test's own (root only; CI runs as root),
filled with a file. agentctl refuses a mutating command before its first cloud
write when the state's filesystem has less than ``MIN_FREE_BYTES`` free, the
read-only commands still read the state, and ``kill`` (a kill switch a full
disk could stop would be none) revokes anyway, says its event is not recorded,
exits 1, and is recorded by the next ``kill`` once there is room.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aws_helpers import MotoServer, create_boundary, create_operator
from cli_helpers import Cli, CliResult, fault_proxy, make_cli
from contract_helpers import s3_read, write_contract

from agentctl.providers.aws.policies import KILL_POLICY
from agentctl.state.store import MIN_FREE_BYTES

READS = (("status",), ("list",), ("audit", "verify"), ("audit",))


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    if os.getuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    point = tmp_path / "mnt"
    point.mkdir()
    size = MIN_FREE_BYTES * 2
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)])
    if mounted.returncode != 0:
        pytest.skip("mount is not permitted here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(point: Path) -> Path:
    filler = point / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    return filler


def clean(result: CliResult) -> None:
    assert "Traceback" not in result.err and "internal error" not in result.err, str(result)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_full_disk_changes_nothing_and_says_so(
    aws: MotoServer, tmp_path: Path, small_mount: Path
) -> None:
    operator = create_operator(aws)
    boundary = create_boundary(aws, actions=("s3:*", "iam:ListRoleTags"))
    aws.enforce_iam(0)
    with fault_proxy(aws) as proxy:
        cli: Cli = make_cli(
            tmp_path / "w",
            operator,
            proxy.url,
            boundary=boundary,
            state_url=f"sqlite:///{small_mount / 'state.db'}",
        )
        cli.journal_path = small_mount / "journal.jsonl"
        cli.write_config()
        contracts = tmp_path / "w" / "contracts"
        for index in range(4):
            write_contract(contracts, f"df-{index}", aws=s3_read("bucket"))
        assert cli.run("apply", str(contracts), "--yes").code == 0
        assert cli.run("kill", "df-3", "--reason", "before", "--yes").code == 0
        filler = fill(small_mount)
        state_before = digest(small_mount / "state.db")

        for command in READS:  # were "disk I/O error", every one
            result = cli.run(*command)
            clean(result)
            assert "disk I/O" not in result.err, str(result)
            assert result.code == 0 or "NOT KEYED" in result.out, str(result)

        write_contract(contracts, "df-0", aws=s3_read("other-bucket"))
        started = proxy.count()
        for command in (
            ("apply", str(contracts), "--yes"),
            ("rotate", "df-1"),
            ("revive", "df-3", "--reason", "after"),
            ("credentials", "df-2"),
            ("exec", "df-2", "--", "true"),
        ):
            result = cli.run(*command)
            clean(result)
            assert result.code == 1, str(result)
            assert "is full" in result.err and "df -h" in result.err, str(result)
            assert "changed nothing" in result.err, str(result)
        assert not proxy.mutating(started), [r.action for r in proxy.since(started)]
        assert "AssumeRole" not in proxy.actions(started)

        # A refused exec is still refused; it says its refusal went unrecorded.
        refused = cli.run("exec", "df-3", "--", "true")
        clean(refused)
        assert refused.code != 0 and "killed" in refused.err, str(refused)
        assert "not in the audit trail" in refused.err, str(refused)
        assert digest(small_mount / "state.db") == state_before
        assert not cli.journal_path.exists() or cli.journal_path.read_bytes() == b""

        # kill revokes anyway, and says the event is not recorded (exit 1).
        killed = cli.run("kill", "df-0", "--reason", "INC-disk", "--yes", "--output", "json")
        clean(killed)
        assert killed.code == 1, str(killed)
        report = killed.json()
        assert report["ok"] and report["audit_recorded_in"] == "nowhere", report
        assert any("NOT in the audit trail" in n for n in report["notes"]), report
        with aws.unenforced():
            policies = aws.client("iam").list_role_policies(RoleName="agentctl-df-0")
        assert KILL_POLICY in policies["PolicyNames"]
        # the journal holds whole events only (here: none)
        if cli.journal_path.exists():
            for line in cli.journal_path.read_text("utf-8").splitlines():
                json.loads(line)

        filler.unlink()  # room again: the next kill records it
        again = cli.run("kill", "df-0", "--reason", "INC-disk", "--yes", "--output", "json")
        assert again.code == 0 and again.json()["audit_recorded_in"] == "state", str(again)
        with cli.state() as state:
            chain, _ = state.audit_chain()
            assert state.get_agent("df-0").status.killed  # type: ignore[union-attr]
        assert [e.action for e in chain if e.target == "df-0"][-1] == "kill"


def read_only_runs(cli: Cli, contracts: Path, url: str, expected: str) -> None:
    """With the state at ``url`` (read-only for agentctl): reads work, writes
    fail clearly before any cloud write."""
    cli.state_url = url
    cli.write_config()
    for command in READS:
        result = cli.run(*command)
        clean(result)
        assert result.code == 0 or "NOT KEYED" in result.out, str(result)
    for command in (("rotate", "ro-0"), ("revive", "ro-0", "--reason", "x")):
        result = cli.run(*command)
        clean(result)
        assert result.code == 1, str(result)
    result = cli.run("rotate", "ro-0")
    assert expected in result.err, str(result)
    assert "grant" in result.err or "primary" in result.err, str(result)


@pytest.mark.postgres
def test_a_read_only_postgres_state_reads_and_refuses_writes_clearly(
    aws: MotoServer, tmp_path: Path, postgres_url: str
) -> None:

    operator = create_operator(aws)
    boundary = create_boundary(aws, actions=("s3:*", "iam:ListRoleTags"))
    aws.enforce_iam(0)
    cli = make_cli(tmp_path / "w", operator, aws.url, boundary=boundary, state_url=postgres_url)
    contracts = tmp_path / "w" / "contracts"
    write_contract(contracts, "ro-0", aws=s3_read("bucket"))
    assert cli.run("apply", str(contracts), "--yes").code == 0

    # default_transaction_read_only for these connections only (the test
    # database is shared with other tests): what a hot standby also answers.
    read_only_runs(
        cli,
        contracts,
        postgres_url + "%20-cdefault_transaction_read_only%3Don",
        "PostgreSQL state is read-only",
    )


@pytest.mark.postgres
def test_a_role_that_may_only_read_is_named(
    aws: MotoServer, tmp_path: Path, postgres_url: str
) -> None:
    """A reporting account given the operator's URL: reads work, a write says
    which privilege is missing, before any cloud write."""
    import psycopg

    admin = os.environ["AGENTCTL_TEST_POSTGRES_URL"].replace(
        "postgresql+psycopg://", "postgresql://", 1
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    if not (row and row[0]):
        pytest.skip("the test database role may not create roles")
    operator = create_operator(aws)
    boundary = create_boundary(aws, actions=("s3:*", "iam:ListRoleTags"))
    aws.enforce_iam(0)
    cli = make_cli(tmp_path / "w", operator, aws.url, boundary=boundary, state_url=postgres_url)
    contracts = tmp_path / "w" / "contracts"
    write_contract(contracts, "ro-0", aws=s3_read("bucket"))
    assert cli.run("apply", str(contracts), "--yes").code == 0
    url = sa.engine.make_url(postgres_url)
    schema = url.query["options"].split("%3D", 1)[-1].split("=", 1)[-1]
    role = f"ro_{uuid.uuid4().hex[:12]}"
    admin = os.environ["AGENTCTL_TEST_POSTGRES_URL"].replace(
        "postgresql+psycopg://", "postgresql://", 1
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{role}'")
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    try:
        reader = url.set(username=role, password=role)
        read_only_runs(
            cli,
            contracts,
            reader.render_as_string(hide_password=False),
            "the database role may not do this",
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
            conn.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}')
            conn.execute(f"DROP ROLE {role}")
