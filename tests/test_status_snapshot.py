"""`agentctl status` / `list` of every agent reads a SQLite state with sqlite3
(agentctl.state.snapshot.read_status_snapshot): the same rows the store gives,
the same output, without importing SQLAlchemy; anything unusual (PostgreSQL,
another schema version, an unknown status) goes to the store as before.

Off a terminal every agent is one line, never wrapped or cut, so
`agentctl list | grep NAME` finds the whole record (checked through a real pipe).
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from contract_helpers import NOW

from agentctl.errors import DamagedStateRow
from agentctl.model import AgentStatus
from agentctl.state import open_state
from agentctl.state.records import SCHEMA_VERSION, LongLivedSecretRecord
from agentctl.state.snapshot import NotInSnapshot, read_status_snapshot

LONG_OWNER = "a-very-long-owner-address-of-the-platform-security-team@company.example.com"


def fill(url: str) -> None:
    """Agents in every shape status shows: killed with a reason, no expiry,
    rotated, expired by date, with resources of three providers, live, expired
    and revoked credentials (AWS sessions and Jira API tokens) and GitHub App
    keys of known and unknown age."""
    with open_state(url, clock=lambda: NOW) as store:
        for name, expiry, status, reason in (
            ("alpha-agent", date(2027, 3, 1), None, None),
            ("beta-agent", date(2027, 3, 1), AgentStatus.KILLED, "INC-9: leaked token"),
            ("gamma-agent", None, None, None),
            ("delta-agent", NOW.date() - timedelta(days=1), None, None),
            ("zeta-agent", date(2027, 3, 1), AgentStatus.KILL_INCOMPLETE, "github unreachable"),
        ):
            store.upsert_agent(
                name,
                owner=LONG_OWNER if name == "gamma-agent" else f"{name}@company.com",
                purpose="p",
                execution_mode="approval_required" if name == "gamma-agent" else "autonomous",
                expiry=expiry,
                contract_hash="h",
                status=status,
                status_reason=reason,
            )
        store.mark_rotated("alpha-agent", NOW - timedelta(days=3, minutes=7))
        for agent, provider in (
            ("alpha-agent", "aws"),
            ("alpha-agent", "jira"),
            ("alpha-agent", "github"),
            ("beta-agent", "aws"),
            ("gamma-agent", "github"),
            ("orphan-agent", "aws"),  # a resource without an agent row
        ):
            store.put_resource(agent, provider, f"{provider}:{agent}", {"k": "v"}, applied_hash="h")
        for i, (agent, provider, kind, ends, revoked) in enumerate(
            (
                ("alpha-agent", "aws", "sts-session", NOW + timedelta(minutes=30), False),
                ("alpha-agent", "aws", "sts-session", NOW - timedelta(minutes=1), False),
                ("alpha-agent", "aws", "sts-session", NOW + timedelta(minutes=30), True),
                ("alpha-agent", "jira", "api-token", NOW + timedelta(days=20), False),
                ("alpha-agent", "jira", "api-token", NOW - timedelta(days=1), False),
                ("beta-agent", "aws", "sts-session", NOW + timedelta(seconds=1), False),
            )
        ):
            store.add_credential(
                id=f"cred-{i}",
                agent=agent,
                provider=provider,
                kind=kind,
                fingerprint=f"{i:016d}",
                issued_at=ends - timedelta(hours=1, microseconds=i),
                expires_at=ends,
                on_behalf_of="dev@company.com" if i == 0 else None,
                trigger="PR-7" if i == 0 else None,
            )
            if revoked:
                store.mark_credential_revoked(f"cred-{i}", NOW - timedelta(minutes=5))
        for agent, created in (("alpha-agent", NOW - timedelta(days=40)), ("gamma-agent", None)):
            store.put_long_lived_secret(
                LongLivedSecretRecord(
                    agent=agent,
                    provider="github",
                    kind="app-private-key",
                    key_id=f"key-{agent}",
                    fingerprint="SHA256:abc",
                    created_at=created,
                    tracked_since=NOW - timedelta(days=10),
                )
            )


def test_the_status_snapshot_reads_what_the_store_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fill(url)
    snapshot = read_status_snapshot(url, NOW)
    assert snapshot is not None
    with open_state(url) as store:
        assert list(snapshot.agents) == store.agent_summaries()
        assert snapshot.providers == store.providers_by_agent()
        assert snapshot.live_credential_counts() == store.live_credential_counts(NOW)
        assert snapshot.live_credential_counts() == {"alpha-agent": 2, "beta-agent": 1}
        for provider in (None, "github", "jira"):
            assert snapshot.list_long_lived_secrets(provider=provider) == (
                store.list_long_lived_secrets(provider=provider)
            )
        assert snapshot.list_long_lived_secrets(agent="gamma-agent") == (
            store.list_long_lived_secrets(agent="gamma-agent")
        )
        for later in (NOW, NOW + timedelta(seconds=2)):
            for provider in (None, "jira", "aws"):
                assert snapshot.list_credentials(provider=provider, live_at=later) == (
                    store.list_credentials(provider=provider, live_at=later)
                )
    # It read only the credentials live then: earlier or all would be wrong.
    for unanswerable in (None, NOW - timedelta(seconds=1)):
        with pytest.raises(NotInSnapshot, match="live at"):
            snapshot.list_credentials(live_at=unanswerable)


def test_the_status_snapshot_steps_aside_when_only_the_store_can_tell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert read_status_snapshot(url, NOW) is None  # no file: the store says so
    assert not (tmp_path / "state.db").exists()
    assert read_status_snapshot("postgresql://user@localhost/agentctl", NOW) is None
    fill(url)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION - 1,))
    assert read_status_snapshot(url, NOW) is None  # the store migrates or refuses it
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("UPDATE agents SET status = 'paused' WHERE name = 'alpha-agent'")
    # A damaged row is not a question for the store, which reads rows through
    # the same decoder (agentctl.state.records): it is named at once, or, when
    # the caller collects damaged agent rows, left out and collected.
    with pytest.raises(
        DamagedStateRow, match=r"table agents \(name 'alpha-agent'\): column status"
    ):
        read_status_snapshot(url, NOW)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE agents SET status = 'active', last_rotated_at = 'soon'")
    damaged: list[DamagedStateRow] = []
    snapshot = read_status_snapshot(url, NOW, damaged)
    assert snapshot is not None and snapshot.agents == ()
    agents = ["alpha-agent", "beta-agent", "delta-agent", "gamma-agent", "zeta-agent"]
    assert [(d.agent, d.column) for d in damaged] == [(a, "last_rotated_at") for a in agents]


# Status as the CLI shows it (through the snapshot), and as the store gives it
# (a store already open: what library callers get), in one process each, with
# the modules SQLAlchemy and the SDKs left out of the CLI's process.
STATUS = """
import json, sys
from datetime import datetime
from agentctl.cli.app import run
now = datetime.fromisoformat(sys.argv[1])
code = run(sys.argv[2:], clock=lambda: now)
heavy = ("sqlalchemy", "boto3", "botocore", "githubkit", "keyring")
print(json.dumps([code, [m for m in heavy if m in sys.modules]]), file=sys.stderr)
"""

FROM_STORE = """
import json, sys
from datetime import datetime
from agentctl.commands import Session
from agentctl.commands.status import StatusResult
from agentctl.render import json_data
now = datetime.fromisoformat(sys.argv[1])
engine = Session(clock=lambda: now).engine()
engine.state  # open the store first: status then reads it, not the snapshot
print(json.dumps(json_data(StatusResult(tuple(engine.status())))))
"""


def cli_env(tmp_path: Path, url: str) -> dict[str, str]:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "agentctl.yaml"
    config.write_text(f"state: {url}\n", "utf-8")
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "AGENTCTL_CONFIG": str(config),
        "PYTHONPATH": ":".join(p for p in sys.path if p),
        "COLUMNS": "40",  # narrower than any row: off a terminal nothing wraps
        "NO_COLOR": "1",
    }


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    found = subprocess.run(
        [sys.executable, "-c", code, NOW.isoformat(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in found.stderr, found.stderr
    return found


def test_status_from_the_snapshot_equals_status_from_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fill(url)
    env = cli_env(tmp_path, url)

    shown = python(STATUS, env, "status", "-o", "json")
    code, heavy = json.loads(shown.stderr.strip().splitlines()[-1])
    assert code == 0 and heavy == []
    stored = python(FROM_STORE, env)
    assert stored.returncode == 0, stored.stderr
    assert json.loads(shown.stdout) == json.loads(stored.stdout)

    agents = {a["name"]: a for a in json.loads(shown.stdout)["agents"]}
    assert list(agents) == sorted(agents)  # by name; the orphan resource is no agent
    assert agents["alpha-agent"]["live_credentials"] == 2
    assert agents["alpha-agent"]["providers"] == ["aws", "github", "jira"]
    assert (
        agents["alpha-agent"]["last_rotated_at"] == (NOW - timedelta(days=3, minutes=7)).isoformat()
    )
    assert [s["kind"] for s in agents["alpha-agent"]["long_lived_secrets"]] == [
        "app-private-key",
        "api-token",
    ]
    assert agents["beta-agent"]["status"] == "killed"
    assert agents["beta-agent"]["status_reason"] == "INC-9: leaked token"
    assert agents["delta-agent"]["status"] == "expired"
    assert agents["gamma-agent"]["expiry"] is None
    assert agents["gamma-agent"]["long_lived_secrets"][0]["age_days"] is None
    assert agents["zeta-agent"]["status"] == "kill-incomplete"

    # A state of another version goes to the store, which migrates it: same answer.
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    newer = python(STATUS, env, "status", "-o", "json")
    code, heavy = json.loads(newer.stderr.strip().splitlines()[-1])
    assert code == 1 and "sqlalchemy" in heavy  # the store refuses a newer schema


@pytest.mark.postgres
def test_status_on_postgresql_equals_status_on_sqlite(tmp_path: Path, postgres_url: str) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'state.db'}"
    fill(sqlite_url)
    fill(postgres_url)
    on_sqlite = python(STATUS, cli_env(tmp_path / "s", sqlite_url), "status", "-o", "json")
    on_postgres = python(STATUS, cli_env(tmp_path / "p", postgres_url), "status", "-o", "json")
    assert json.loads(on_sqlite.stdout) == json.loads(on_postgres.stdout)
    assert json.loads(on_postgres.stderr.strip().splitlines()[-1])[0] == 0


def test_list_through_a_pipe_is_one_whole_line_per_agent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fill(url)
    env = cli_env(tmp_path, url)
    agentctl = [sys.executable, "-c", STATUS, NOW.isoformat()]  # at the test's "now"

    listed = subprocess.run(
        [*agentctl, "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 1 + 5  # a header, then one line per agent (COLUMNS=40)
    assert not any("\x1b" in line or "…" in line for line in lines)

    grep = subprocess.run(
        f"{shlex.join(agentctl)} list | grep gamma-agent",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert grep.returncode == 0, grep.stderr
    [gamma] = grep.stdout.splitlines()
    assert gamma.split() == [
        "gamma-agent",
        LONG_OWNER,
        "approval_required",
        "-",
        "active",
        "github",
        "never",
        "0",
        "github",
        "app-private-key",
        "age",
        "unknown",
        "(>=",
        "10d)",
    ]


def test_a_provider_asking_beyond_the_snapshot_gets_the_store(tmp_path: Path) -> None:
    """A clock that steps back between status's "now" and a provider's (NTP):
    the provider would ask for credentials the snapshot did not read, so the
    whole status is answered by the store instead, the same as ever."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    fill(url)
    env = cli_env(tmp_path, url)
    backwards = STATUS.replace(
        "clock=lambda: now",
        "clock=lambda: now - __import__('datetime').timedelta(microseconds=next(ticks))",
    ).replace("code = run(", "ticks = __import__('itertools').count()\ncode = run(")
    shown = python(backwards, env, "status", "-o", "json")
    code, heavy = json.loads(shown.stderr.strip().splitlines()[-1])
    assert code == 0 and "sqlalchemy" in heavy  # the store answered
    stored = python(FROM_STORE, env)
    assert json.loads(shown.stdout) == json.loads(stored.stdout)
