"""A plan without --refresh reads the state with sqlite3 (agentctl.state.snapshot):
the same facts the store gives, and it steps aside whenever it cannot be sure.

The no-change `apply` that CI runs on every merge is then a read of the
contracts and of four columns of the state: it imports neither SQLAlchemy nor
an AWS SDK (process-level check below; the figures are in bench/README.md).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from aws_helpers import MotoServer, create_boundary, create_operator
from cli_helpers import make_cli
from contract_helpers import NOW, s3_read, write_contract

from agentctl.errors import DamagedStateRow
from agentctl.model import AgentStatus
from agentctl.state import open_state
from agentctl.state.records import SCHEMA_VERSION
from agentctl.state.snapshot import read_plan_snapshot, sqlite_path

# What a no-change apply never needs: the store, the SDKs, and rich (nothing is
# drawn off a terminal); nor the validator, once its contracts met the cache.
HEAVY = ("sqlalchemy", "boto3", "botocore", "githubkit", "keyring", "rich")
# Nor the providers its contracts do not use (constructed on first use).
UNUSED_PROVIDERS = ("agentctl.providers.github.lifecycle", "agentctl.providers.jira.lifecycle")
VALIDATOR = "jsonschema"


def recorded_store(path: Path) -> str:
    url = f"sqlite:///{path}"
    with open_state(url) as store:
        for name, status in (
            ("alpha-agent", None),
            ("beta-agent", AgentStatus.KILLED),
            ("gamma-agent", AgentStatus.KILL_INCOMPLETE),
        ):
            store.upsert_agent(
                name,
                owner=f"{name}@company.com",
                purpose="p",
                execution_mode="autonomous",
                expiry=date(2027, 1, 1),
                contract_hash=f"hash-of-{name}",
                status=status,
            )
            store.put_resource(
                agent=name,
                provider="aws",
                resource_id=f"arn:{name}",
                attributes={"k": "v"},
                applied_hash=f"hash-of-{name}",
            )
        store.put_resource(
            agent="alpha-agent",
            provider="github",
            resource_id="1",
            attributes={},
            applied_hash=None,
        )
    return url


def test_the_snapshot_reads_what_the_store_reads(tmp_path: Path) -> None:
    url = recorded_store(tmp_path / "state.db")
    snapshot = read_plan_snapshot(url)
    assert snapshot is not None
    with open_state(url) as store:
        agents = store.list_agents()
        resources = store.list_resources()
    assert [(a.name, a.owner, a.status, a.contract_hash) for a in snapshot.list_agents()] == [
        (a.name, a.owner, a.status, a.contract_hash) for a in agents
    ]
    assert sorted(
        (r.agent, r.provider, r.applied_hash) for r in snapshot.list_resources()
    ) == sorted((r.agent, r.provider, r.applied_hash) for r in resources)


def test_the_snapshot_steps_aside_when_only_the_store_can_tell(tmp_path: Path) -> None:
    url = recorded_store(tmp_path / "state.db")
    # No such file: the store decides whether to create it or to refuse a typo.
    assert read_plan_snapshot(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists()
    # Not a plain file URL.
    assert read_plan_snapshot("postgresql://user@localhost/agentctl") is None
    assert read_plan_snapshot(url + "?mode=ro") is None
    assert sqlite_path("sqlite:///relative/state.db") == Path("relative/state.db")
    # A file that is not an agentctl state.
    (tmp_path / "other.db").write_bytes(b"")
    assert read_plan_snapshot(f"sqlite:///{tmp_path / 'other.db'}") is None
    # A state of another schema version: the store migrates (or refuses) it.
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION - 1,))
    assert read_plan_snapshot(url) is None
    # A status this agentctl does not know: not a question for the store, which
    # reads rows through the same decoder; the damaged row is named at once.
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("UPDATE agents SET status = 'paused' WHERE name = 'alpha-agent'")
    with pytest.raises(DamagedStateRow) as damaged:
        read_plan_snapshot(url)
    assert (damaged.value.table, damaged.value.column, damaged.value.agent) == (
        "agents",
        "status",
        "alpha-agent",
    )
    assert "paused" not in damaged.value.message


def test_a_no_change_apply_imports_no_sqlalchemy_and_no_sdk_and_still_sees_a_change(
    aws: MotoServer, tmp_path: Path
) -> None:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    aws.enforce_iam(0)
    cli = make_cli(tmp_path / "cli", operator, aws.url, boundary=boundary)
    contracts = tmp_path / "contracts"
    write_contract(contracts, "alpha-agent", aws=s3_read("bucket-a"))
    write_contract(contracts, "beta-agent", aws=s3_read("bucket-a"))
    first = cli.run("apply", str(contracts), "--yes")
    assert first.code == 0, first
    assert cli.run("kill", "beta-agent", "--yes").code == 0

    watched = (*HEAVY, *UNUSED_PROVIDERS, VALIDATOR)
    code = (
        "import sys, json\n"
        "from datetime import datetime\n"
        "from agentctl.cli.app import run\n"
        f"now = datetime.fromisoformat({NOW.isoformat()!r})\n"
        "code = run(['apply', sys.argv[1], '--yes'], clock=lambda: now)\n"
        f"print(json.dumps([code, [m for m in {watched!r} if m in sys.modules]]))\n"
    )

    def no_change_apply() -> list[object]:
        again = subprocess.run(
            [sys.executable, "-c", code, str(contracts)],
            env=cli.env,
            cwd=cli.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert "No changes. 2 agents up to date." in again.stdout
        result: list[object] = json.loads(again.stdout.strip().splitlines()[-1])
        return result

    # The first at this clock's day validates the contracts (the cache is per day) ...
    code_first, imported_first = no_change_apply()
    assert code_first == 0 and set(imported_first) <= {VALIDATOR}, imported_first
    # ... and the next one finds them in the validation cache: no validator at all.
    assert no_change_apply() == [0, []]

    # A changed contract is a change on the same path (and is applied), by an
    # apply that constructs the AWS provider only: its contracts use no other.
    write_contract(contracts, "alpha-agent", aws=s3_read("bucket-b"))
    changing = subprocess.run(
        [sys.executable, "-c", code.replace("'--yes'", "'--yes', '-o', 'json'"), str(contracts)],
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert changing.returncode == 0, changing.stderr
    *report, last = changing.stdout.strip().splitlines()
    assert json.loads("\n".join(report))["summary"]["changed"] == 1
    code_changed, imported_changed = json.loads(last)
    assert code_changed == 0
    assert not set(imported_changed) & set(UNUSED_PROVIDERS), imported_changed
    assert "boto3" in imported_changed  # it did ask AWS
    assert cli.run("apply", str(contracts), "--yes").out.startswith("No changes.")


@pytest.mark.parametrize("refresh", [False, True])
def test_plan_from_the_snapshot_equals_plan_from_the_store(
    aws: MotoServer, tmp_path: Path, refresh: bool
) -> None:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    aws.enforce_iam(0)
    cli = make_cli(tmp_path / "cli", operator, aws.url, boundary=boundary)
    contracts = tmp_path / "contracts"
    for name in ("alpha-agent", "beta-agent", "gamma-agent"):
        write_contract(contracts, name, aws=s3_read("bucket-a"))
    assert cli.run("apply", str(contracts), "--yes").code == 0
    assert cli.run("kill", "gamma-agent", "--yes").code == 0
    # Then: one changed, one gone (an orphan), one new.
    write_contract(contracts, "alpha-agent", aws=s3_read("bucket-b"))
    (contracts / "beta-agent.yaml").unlink()
    write_contract(contracts, "delta-agent", aws=s3_read("bucket-a"))

    flag = "--refresh" if refresh else "--no-refresh"
    # The CLI plans from the snapshot (it knows the URL); a store already
    # open (the engine's own state factory) is what the library path uses.
    from_snapshot = cli.run("plan", str(contracts), flag, "-o", "json")
    code = (
        "import sys, json\n"
        "from datetime import datetime\n"
        "from agentctl.commands import Session\n"
        "from agentctl.commands.contracts import load_valid_contracts\n"
        "from agentctl.render import json_data\n"
        f"now = datetime.fromisoformat({NOW.isoformat()!r})\n"
        "session = Session(clock=lambda: now)\n"
        "report = load_valid_contracts(session, [__import__('pathlib').Path(sys.argv[1])])\n"
        "engine = session.engine([sys.argv[1]])\n"
        "engine.state\n"  # open the store first: the plan reads it, not the snapshot
        f"plan = engine.plan(report.contracts, report.expired, refresh={refresh})\n"
        "print(json.dumps(json_data(plan)))\n"
    )
    from_store = subprocess.run(
        [sys.executable, "-c", code, str(contracts)],
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert from_store.returncode == 0, from_store.stderr
    assert from_snapshot.code == 0, from_snapshot
    assert from_snapshot.json() == json.loads(from_store.stdout.strip().splitlines()[-1])
    agents = {a["agent"]: a for a in from_snapshot.json()["agents"]}
    assert agents["gamma-agent"]["disposition"] == "killed"
    assert agents["beta-agent"]["disposition"] == "orphan"
    assert [c["kind"] for c in agents["alpha-agent"]["changes"]] == ["update"]
    assert [c["kind"] for c in agents["delta-agent"]["changes"]] == ["create"]


@pytest.mark.parametrize("state", ["named", "agentctl's default"])
def test_a_plan_before_any_state_opens_no_store_and_creates_none(
    aws: MotoServer, tmp_path: Path, state: str
) -> None:
    """A pull request's CI plans before anything was applied from there: no
    state file yet, named or agentctl's default. Every agent is new, as the
    store would have said, without importing SQLAlchemy to open it, and the
    read creates no store (agentctl's default one included)."""
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    aws.enforce_iam(0)
    cli = make_cli(tmp_path / "cli", operator, aws.url, boundary=boundary)
    if state != "named":
        config = yaml.safe_load(cli.config_path.read_text("utf-8"))
        del config["state"]
        cli.config_path.write_text(yaml.safe_dump(config), "utf-8")
    contracts = tmp_path / "contracts"
    write_contract(contracts, "alpha-agent", aws=s3_read("bucket-a"))
    files_before = {p for p in tmp_path.rglob("*") if p.is_file()}
    code = (
        "import sys, json\n"
        "from agentctl.cli.app import run\n"
        "code = run(['plan', sys.argv[1], '-o', 'json'])\n"
        "print(json.dumps([code, 'sqlalchemy' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(contracts)],
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *report, last = done.stdout.strip().splitlines()
    assert json.loads(last) == [0, False]
    plan = json.loads("\n".join(report))
    assert [(a["agent"], a["disposition"]) for a in plan["agents"]] == [("alpha-agent", "active")]
    assert [c["kind"] for c in plan["agents"][0]["changes"]] == ["create"]
    created = {p for p in tmp_path.rglob("*") if p.is_file()} - files_before
    assert not [p for p in created if p.name.startswith("state.db")], created
