"""exec and credentials read and write a SQLite state with sqlite3
(agentctl.state.runstate): the same rows and the same keyed audit chain as the
SQLAlchemy store, and the store wherever it cannot be sure.

A runtime host runs `agentctl credentials NAME` (an SDK's credential_process)
many times an hour; the SQLAlchemy import was a fifth of that process. The
figures are in bench/README.md; here: the rows are the store's, byte for byte
in form, the chain verifies, kill still sees what was recorded, and the
process never imports SQLAlchemy.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from audit_helpers import key_source
from cli_helpers import Cli
from contract_helpers import s3_read, write_contract
from github_helpers import ORG, GitHubWorld, contract_for

from agentctl.audit import verify_trail
from agentctl.errors import StateError
from agentctl.model import AgentStatus
from agentctl.state import AuditDraft, StateStore, open_state
from agentctl.state.records import SCHEMA_VERSION
from agentctl.state.runstate import RunState, open_run_state

T0 = datetime(2026, 11, 1, 13, 0, 0, 123456, tzinfo=UTC)
# A timestamp the store writes to SQLite: UTC, no zone, microseconds, fixed width.
STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def recorded(tmp_path: Path) -> tuple[str, StateStore]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_state(url)
    store.chain_keys = key_source(tmp_path / "secrets.enc")
    store.upsert_agent(
        "reader-agent",
        owner="owner@company.com",
        purpose="reads",
        execution_mode="autonomous",
        expiry=date(2027, 1, 1),
        contract_hash="h1",
        document={"name": "reader-agent", "permissions": {"aws": [{"x": 1}]}},
    )
    store.put_resource(
        agent="reader-agent",
        provider="aws",
        resource_id="arn:aws:iam::123456789012:role/agentctl-reader-agent",
        attributes={"role": "agentctl-reader-agent"},
        applied_hash="h1",
    )
    store.append_audit(
        AuditDraft(actor="ops", action="apply", target="reader-agent", result="success"),
        operator="ops@company.com",
    )  # the trail is keyed from its first event
    return url, store


def run_state(url: str, tmp_path: Path, store: StateStore) -> RunState:
    def full() -> StateStore:
        opened = open_state(url, create=False)
        return opened

    fast = open_run_state(url, full)
    assert fast is not None
    fast.chain_keys = key_source(tmp_path / "secrets.enc")
    return fast


def raw_rows(path: Path, table: str, key: str, ids: list[str]) -> list[dict[str, object]]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        out = []
        for id in ids:
            row = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (id,)).fetchone()
            names = row.keys()
            types = conn.execute(
                f"SELECT {', '.join(f'typeof({n})' for n in names)} FROM {table} WHERE {key} = ?",
                (id,),
            ).fetchone()
            out.append({n: (row[n], types[i]) for i, n in enumerate(names)})
        return out


def test_the_run_path_writes_the_rows_the_store_writes(tmp_path: Path) -> None:
    url, store = recorded(tmp_path)
    fast = run_state(url, tmp_path, store)
    # Reads: what the gates and the identity check see.
    assert fast.get_agent("reader-agent") == store.get_agent("reader-agent")
    assert fast.get_agent("nobody") is None
    assert fast.list_resources("reader-agent") == store.list_resources("reader-agent")
    assert fast.get_resource("reader-agent", "aws") == store.get_resource("reader-agent", "aws")
    fast.require_room()

    # The same credential facts, written once by each path.
    def issue(writer: StateStore | RunState, id: str) -> None:
        writer.add_credential(
            id=id,
            agent="reader-agent",
            provider="aws",
            kind="session",
            fingerprint="",
            issued_at=T0,
            expires_at=T0 + timedelta(hours=1),
            on_behalf_of="amit@company.com",
            trigger="webhook/pr/1",
        )
        assert writer.set_credential_fingerprint(id, "abcdef0123456789")
        assert writer.settle_credential(
            id, fingerprint="abcdef0123456789", expires_at=T0 + timedelta(minutes=50)
        )
        assert writer.mark_credential_revoked(id, T0 + timedelta(minutes=5))
        assert not writer.mark_credential_revoked(id, T0 + timedelta(minutes=6))  # first wins

    issue(store, "by-store")
    issue(fast, "by-run-path")
    by_store, by_run = raw_rows(
        tmp_path / "state.db", "credentials", "id", ["by-store", "by-run-path"]
    )
    assert {k: v for k, v in by_run.items() if k != "id"} == {
        k: v for k, v in by_store.items() if k != "id"
    }
    assert STORED_TIME.match(str(by_run["issued_at"][0])), by_run
    read = {c.id: c for c in store.list_credentials(agent="reader-agent")}
    assert read["by-run-path"] == read["by-store"].__class__(
        **{**read["by-store"].__dict__, "id": "by-run-path"}
    )

    # The same audit draft, appended once by each path, into one keyed chain.
    draft = AuditDraft(
        actor="reader-agent",
        on_behalf_of="amit@company.com",
        action="credentials.issue",
        target="reader-agent",
        result="success",
        scope="aws:s3:GetObject",
        trigger="webhook/pr/1",
        detail={"run_id": "r1", "credentials": [{"id": "x", "expires_at": T0.isoformat()}]},
    )
    first = store.append_audit(draft, operator="amit@company.com", time=T0)
    second = fast.append_audit(draft, operator="amit@company.com", time=T0)
    assert second.seq == first.seq + 1 and second.prev_hash == first.hash
    assert first.mac is not None and second.mac is not None  # keyed by both paths
    rows = raw_rows(tmp_path / "state.db", "audit_events", "seq", [str(first.seq), str(second.seq)])
    differ = {"seq", "id", "prev_hash", "hash", "mac"}
    assert {k: v for k, v in rows[1].items() if k not in differ} == {
        k: v for k, v in rows[0].items() if k not in differ
    }
    assert store.audit_events(action="credentials.issue") == [first, second]
    assert fast.audit_events(agent="reader-agent", action="credentials.issue", limit=1) == [second]
    assert fast.audit_events(since=T0) == store.audit_events(since=T0)
    assert fast.last_appended == second and fast.trail == store.audit_head().trail  # type: ignore[union-attr]
    # A replayed id is not appended twice (the journal's import relies on it).
    assert fast.append_audit(draft, operator="x", id=second.id) == second

    # Either path's event verifies under the trail's key; the head moved with it.
    result = verify_trail(store, key_source(tmp_path / "secrets.enc"))
    assert result.ok and result.keyed and result.checked == 3, result
    fast.close()
    store.close()


def test_a_keyed_trail_without_its_key_takes_nothing_from_the_run_path(tmp_path: Path) -> None:
    url, store = recorded(tmp_path)
    fast = open_run_state(url, lambda: open_state(url))
    assert fast is not None  # no chain keys: as a store with no secret store configured
    with pytest.raises(StateError, match="is keyed"):
        fast.append_audit(AuditDraft(actor="a", action="b", target="c", result="d"), operator="x")
    assert len(store.audit_events()) == 1
    fast.close()
    store.close()


def test_secrets_never_reach_the_rows_of_the_run_path(tmp_path: Path) -> None:
    url, store = recorded(tmp_path)
    fast = run_state(url, tmp_path, store)
    secret = "ghs_" + "A" * 36  # the shape of a GitHub installation token
    with pytest.raises(ValueError):
        fast.append_audit(
            AuditDraft(actor="a", action="b", target="c", result="d", detail={"t": secret}),
            operator="x",
        )
    with pytest.raises(ValueError):
        fast.set_credential_fingerprint("nope", secret)
    assert len(store.audit_events()) == 1
    fast.close()
    store.close()


def test_the_run_path_steps_aside_when_only_the_store_can_tell(tmp_path: Path) -> None:
    url, store = recorded(tmp_path)
    store.close()

    def never() -> StateStore:
        raise AssertionError("not opened")

    assert open_run_state(f"sqlite:///{tmp_path / 'missing.db'}", never) is None
    assert not (tmp_path / "missing.db").exists()
    assert open_run_state("postgresql://user@localhost/agentctl", never) is None
    assert open_run_state(url + "?mode=ro", never) is None
    (tmp_path / "other.db").write_bytes(b"")
    assert open_run_state(f"sqlite:///{tmp_path / 'other.db'}", never) is None
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION - 1,))
    assert open_run_state(url, never) is None  # the store migrates (or refuses) it
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    # A read-only state (root may write anyway, so the check is the store's own).
    (tmp_path / "state.db").chmod(0o400)
    try:
        if not os.access(tmp_path / "state.db", os.W_OK):
            assert open_run_state(url, never) is None  # the store opens it immutable
    finally:
        (tmp_path / "state.db").chmod(0o600)


def test_what_the_run_path_does_not_do_is_the_stores_from_then_on(tmp_path: Path) -> None:
    url, store = recorded(tmp_path)
    opened: list[StateStore] = []

    def full() -> StateStore:
        opened.append(open_state(url, create=False))
        return opened[-1]

    fast = open_run_state(url, full)
    assert fast is not None
    fast.chain_keys = key_source(tmp_path / "secrets.enc")
    assert fast.get_agent("reader-agent") is not None and not opened
    # Approvals are not the run path's: the store serves them, and then everything.
    approval = fast.create_approval(
        id="apr-1",
        agent="reader-agent",
        requester="ops@company.com",
        on_behalf_of=None,
        trigger=None,
        command="true",
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    assert approval.id == "apr-1" and len(opened) == 1 and fast.stepped_aside
    assert opened[0].chain_keys is not None  # the store seals with the same key
    event = fast.append_audit(
        AuditDraft(actor="a", action="b", target="c", result="d"), operator="x"
    )
    assert opened[0].last_appended == event and fast.last_appended == event
    assert verify_trail(store, key_source(tmp_path / "secrets.enc")).ok
    fast.close()
    store.close()


# What `credentials`, `exec` and `kill` never need, each imported by the commands
# that do: plans (and the AWS provider's plan payloads), the plans' state
# snapshot, apply/expiring/status reports, the `audit` and `state` commands,
# the audit trail's verification (the fallback journal is apart from it).
OFF_THE_RUN_PATH = (
    "agentctl.audit",
    "agentctl.plan",
    "agentctl.providers.aws.changes",
    "agentctl.state.snapshot",
    "agentctl.reports",
    "agentctl.commands.audit",
    "agentctl.commands.state",
)


def own_process(cli: Cli, *argv: str, never: tuple[str, ...]) -> tuple[int, list[str], str, str]:
    """``agentctl ARGV`` in its own process, as a runtime host or an incident runs
    it: its exit code, which of ``never`` it imported (sys.modules: modules
    loaded by importlib.import_module count too), its stdout and stderr."""
    code = (
        "import sys, json\n"
        "from datetime import datetime\n"
        "from agentctl.cli.app import run\n"
        f"now = datetime.fromisoformat({cli.now.isoformat()!r})\n"
        f"code = run({list(argv)!r}, clock=lambda: now)\n"
        f"loaded = sorted(m for m in sys.modules if m in {never!r} or m.split('.')[0] in {never!r})\n"
        "print(json.dumps([code, loaded]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cli.env,
        cwd=cli.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    exit_code, loaded = json.loads(done.stderr.strip().splitlines()[-1])
    return exit_code, loaded, done.stdout, done.stderr


def test_credentials_and_kill_import_nothing_off_their_path_and_kill_sees_the_record(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keyed trail: the chain key in a real (encrypted-file) keyring backend.
    config = yaml.safe_load(cli.config_path.read_text("utf-8"))
    config["secrets"] = {"backend": "encrypted-file", "path": str(cli.root / "secrets.enc")}
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")
    monkeypatch.setenv("AGENTCTL_KEYRING_PASSPHRASE", "run-state-test")
    cli.extra_env["AGENTCTL_KEYRING_PASSPHRASE"] = "run-state-test"
    write_contract(cli.contracts, "reader-agent", aws=s3_read("bucket-a"))
    assert cli("apply", str(cli.contracts), "--yes").code == 0
    # Its own process, as a runtime host runs it.
    credentials = ("credentials", "reader-agent", "-o", "json")
    never = ("sqlalchemy", *OFF_THE_RUN_PATH)
    code, loaded, out, err = own_process(cli, *credentials, never=never)
    assert (code, loaded) == (0, []), err
    issued = json.loads(out)
    credential_id = issued["credentials"][0]["credential_id"]
    with cli.state() as state:
        live = state.list_credentials(agent="reader-agent", live_at=cli.now)
        assert [c.id for c in live] == [credential_id]
        assert live[0].fingerprint  # filled in once STS answered
        events = state.audit_events(agent="reader-agent", action="credentials.issue")
        assert events[-1].detail["credentials"][0]["id"] == credential_id
        agent = state.get_agent("reader-agent")
        assert agent is not None and agent.status == AgentStatus.ACTIVE
    verified = cli("audit", "verify")
    assert verified.code == 0 and "NOT" not in verified.out, verified
    # kill sees and ends it: the agent is killed, its sessions refused from now on.
    code, loaded, out, err = own_process(
        cli, "kill", "reader-agent", "--yes", "--reason", "test", never=OFF_THE_RUN_PATH
    )
    assert (code, loaded) == (0, []), err
    code, loaded, out, err = own_process(cli, *credentials, never=never)
    assert code != 0 and loaded == []
    assert "killed" in err
    verified = cli("audit", "verify")
    assert verified.code == 0 and "NOT" not in verified.out, verified
    with cli.state() as state:
        refusals = state.audit_events(agent="reader-agent", action="exec.refused")
        assert [e.result for e in refusals] == ["denied"]


def test_exec_off_a_terminal_imports_no_rich_and_nothing_off_its_path(cli: Cli) -> None:
    # The scope line reads `aws:s3:GetObject,…`: `:s3:` looks like an emoji code, which
    # once sent this line through a rich Console (~55 ms of import per run).
    write_contract(cli.contracts, "reader-agent", aws=s3_read("bucket-a"))
    assert cli("apply", str(cli.contracts), "--yes").code == 0
    never = ("rich", "sqlalchemy", *OFF_THE_RUN_PATH)
    code, loaded, _, err = own_process(cli, "exec", "reader-agent", "--", "true", never=never)
    assert (code, loaded) == (0, []), err
    running = next(line for line in err.splitlines() if "running as" in line)
    assert running.endswith("; aws:s3:GetObject,s3:ListBucket)"), running


def test_the_run_path_lists_an_agents_credentials_as_the_store_does(tmp_path: Path) -> None:
    """exec's end revokes the GitHub token it minted from this list: the run path
    answers it itself (no SQLAlchemy), with the store's filters and order."""
    url, store = recorded(tmp_path)
    fast = run_state(url, tmp_path, store)
    for n, (provider, revoked, hours) in enumerate(
        [("aws", False, 1), ("github", False, 1), ("github", True, 1), ("github", False, -1)]
    ):
        store.add_credential(
            id=f"c{n}",
            agent="reader-agent",
            provider=provider,
            kind="token",
            fingerprint=f"f{n}",
            issued_at=T0 + timedelta(minutes=10 - n),  # newest first: the order is the store's
            expires_at=T0 + timedelta(hours=hours),
        )
        if revoked:
            store.mark_credential_revoked(f"c{n}", T0)
    store.add_credential(
        id="other",
        agent="other-agent",
        provider="github",
        kind="token",
        fingerprint="f",
        issued_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )
    for provider in (None, "aws", "github", "jira"):
        for live_at in (None, T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=2)):
            asked = {"agent": "reader-agent", "provider": provider, "live_at": live_at}
            assert fast.list_credentials(**asked) == store.list_credentials(**asked), asked
    assert [c.id for c in fast.list_credentials("reader-agent", "github", T0)] == ["c1"]
    assert not fast.stepped_aside  # answered by the run path itself
    fast.close()
    store.close()


EXEC_GITHUB = """
import json, sys
from agentctl.cli.app import run
code = run(sys.argv[1:])
heavy = ("sqlalchemy", "githubkit", "pydantic")
print(json.dumps([code, [m for m in heavy if m in sys.modules]]), file=sys.stderr)
"""


@pytest.mark.reveals_secrets  # the emulator's state lists the token it minted
def test_exec_of_a_github_agent_revokes_its_token_without_the_store(
    github_world: GitHubWorld,
) -> None:
    """exec mints the agent's GitHub token and revokes it when the command ends;
    on a plain SQLite state all of it, the revocation included, stays on the
    run path: the process never imports SQLAlchemy, nor githubkit (the mint,
    the revocation and its read-back go out with httpx alone)."""
    world = github_world
    contract = contract_for(
        "pr-review-agent", {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]}
    )
    app = world.register(contract)
    world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    config = world.write_config()

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                EXEC_GITHUB,
                *("--config", str(config), "--state", world.state_url),
                *argv,
            ],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        code, imported = json.loads(done.stderr.strip().splitlines()[-1])
        assert code == 0, done.stderr
        assert imported == [], f"{argv[0]} of a GitHub agent imported what the run path avoids"
        return done

    minted = run("credentials", "pr-review-agent")
    assert "GITHUB_TOKEN=" in minted.stdout
    [kept] = world.emu.state()["tokens"]
    assert not kept["revoked"]  # credentials hands it out: it lives its hour
    world.emu.clear_requests()
    run("exec", "pr-review-agent", "--", "true")
    [token] = [t for t in world.emu.state()["tokens"] if t["id"] != kept["id"]]
    assert token["revoked"]  # revoked at the end of the run
    # The token was read back after its revocation: GitHub refused it.
    read_back = [r for r in world.emu.requests if r["path"].startswith("/installation/")]
    assert [(r["method"], r["status"]) for r in read_back] == [("DELETE", 204), ("GET", 401)]
    recorded = world.open_state().list_credentials(agent="pr-review-agent")
    assert sorted(c.revoked_at is not None for c in recorded) == [False, True]


def test_credentials_and_exec_open_one_session_per_aws_principal(cli: Cli) -> None:
    # The identity check's session is handed to the provider (agentctl.aws_sessions):
    # a session of its own would register its ~270 handlers and resolve the
    # credentials again. Here (aws.runtime_profile set, as on a runtime host whose
    # operator profile is not the runtime principal's): one botocore session
    # probes the operator's credentials, one serves the identity check and then
    # the provider's base client, one is the runtime principal's (AssumeRole).
    write_contract(cli.contracts, "reader-agent", aws=s3_read("bucket-a"))
    assert cli("apply", str(cli.contracts), "--yes").code == 0
    for argv in (["credentials", "reader-agent"], ["exec", "reader-agent", "--", "true"]):
        code = (
            "import sys, json\n"
            "from datetime import datetime\n"
            "import botocore.session\n"
            "opened = []\n"
            "init = botocore.session.Session.__init__\n"
            "def counted(self, *args, **kwargs):\n"
            "    opened.append(1)\n"
            "    init(self, *args, **kwargs)\n"
            "botocore.session.Session.__init__ = counted\n"
            "from agentctl.cli.app import run\n"
            f"now = datetime.fromisoformat({cli.now.isoformat()!r})\n"
            f"code = run({argv!r}, clock=lambda: now)\n"
            "print(json.dumps([code, len(opened)]), file=sys.stderr)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=cli.env,
            cwd=cli.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert json.loads(done.stderr.strip().splitlines()[-1]) == [0, 3], done.stderr
