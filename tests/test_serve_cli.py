"""`agentctl serve` and `agentctl secrets migrate` as an operator runs them: the
real CLI (fixture ``cli``: moto with IAM enforcement on), and `agentctl serve`
as its own process answering real HTTP on loopback until SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml
from aws_helpers import ACCOUNT, REGION

from agentctl.audit import AuditJournal

if TYPE_CHECKING:
    from cli_helpers import Cli

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def team_cli(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli`` with an encrypted-file secret store, and Secrets Manager settings
    pointing at the same moto server (for migrate)."""
    config = yaml.safe_load(cli.config_path.read_text("utf-8"))
    config["secrets"] = {
        "backend": "encrypted-file",
        "path": str(cli.config_path.parent / "secrets.enc"),
        "region": REGION,
        "endpoint_url": cli.server.url,
    }
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")
    monkeypatch.setenv("AGENTCTL_KEYRING_PASSPHRASE", PASSPHRASE)
    return cli


@pytest.mark.reveals_secrets  # `token create` shows the credential once, by design
def test_token_create_shows_the_credential_once_and_list_and_revoke_never_do(
    team_cli: Cli,
) -> None:
    created = team_cli("serve", "token", "create", "--name", "pager")
    assert created.code == 0, created.err
    token = created.out.strip()
    assert re.fullmatch(r"agentctl_serve_[A-Za-z0-9_-]{40,}", token)
    assert "shown once" in created.err

    signing = team_cli("serve", "token", "create", "--name", "siem", "--hmac", "-o", "json")
    assert signing.code == 0, signing.err
    key = signing.json()["credential"]
    assert key.startswith("agentctl_sign_")

    duplicate = team_cli("serve", "token", "create", "--name", "pager")
    assert duplicate.code == 2 and "already exists" in duplicate.err

    listed = team_cli("serve", "token", "list", "-o", "json")
    assert [(c["name"], c["kind"], c["status"]) for c in listed.json()["callers"]] == [
        ("pager", "token", "live"),
        ("siem", "hmac", "live"),
    ]
    assert token not in listed.out and key not in listed.out

    revoked = team_cli("serve", "token", "revoke", "pager")
    assert revoked.code == 0
    assert team_cli("serve", "token", "revoke", "pager").code == 1
    text = team_cli("serve", "token", "list")
    assert "revoked" in text.out and token not in text.out

    audit = team_cli("audit", "-o", "json")
    actions = [e["action"] for e in audit.json()["events"]]
    assert actions.count("serve.caller.create") == 2 and "serve.caller.revoke" in actions
    assert token not in audit.out and key not in audit.out


@pytest.mark.reveals_secrets  # `token create` shows the credential once, by design
def test_serve_runs_as_a_process_kills_one_agent_and_stops_on_sigterm(team_cli: Cli) -> None:
    for name in ("alpha-agent", "beta-agent"):
        team_cli.write(name)
    assert team_cli("apply", team_cli.contracts, "--yes").code == 0
    token = team_cli("serve", "token", "create", "--name", "pager").out.strip()

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from agentctl.cli.app import main; main()",
            "serve",
            "--port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not answer"
            time.sleep(0.1)
        response = httpx.post(
            f"{url}/agents/alpha-agent/disable",
            headers={"Authorization": f"Bearer {token}"},
            json={"reason": "page 991"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert httpx.post(f"{url}/agents/beta-agent/disable", timeout=10).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err and token not in out + err
    alpha, beta = team_cli.role("alpha-agent"), team_cli.role("beta-agent")
    assert alpha is not None and beta is not None
    assert alpha["Tags"].get("agentctl:status") == "killed" or any(
        "kill" in p.lower() for p in alpha["Policies"]
    )
    assert beta["Tags"].get("agentctl:status") != "killed"
    assert not any("kill" in p.lower() for p in beta["Policies"])
    statuses = {a["name"]: a["status"] for a in team_cli("list", "-o", "json").json()["agents"]}
    assert statuses == {"alpha-agent": "killed", "beta-agent": "active"}


@pytest.mark.reveals_secrets  # `token create` shows the credential once, by design
def test_secrets_migrate_moves_signing_keys_to_secrets_manager_and_is_idempotent(
    team_cli: Cli,
) -> None:
    key = team_cli("serve", "token", "create", "--name", "siem", "--hmac", "-o", "json").json()[
        "credential"
    ]
    # The operator holds only the shipped policy; moto authorises Secrets
    # Manager calls against "*" (policies/README.md), so here it runs unenforced.
    with team_cli.server.unenforced():
        moved = team_cli("secrets", "migrate", "--to", "aws-secretsmanager", "-o", "json")
        assert moved.code == 0, moved.err
        with team_cli.state() as state:
            trail = state.audit_head()
        assert trail is not None and trail.trail
        # The audit chain key moves with the other secrets: the team's store keys the trail.
        assert moved.json()["secrets"] == [
            {"key": key_name, "outcome": "moved", "already": False, "detail": None}
            for key_name in (
                f"audit/chain-key/{trail.trail}",
                "serve/caller/siem/signing-key",
            )
        ]
        assert key not in moved.out + moved.err
        stored = team_cli.server.client("secretsmanager").get_secret_value(
            SecretId="agentctl/serve/caller/siem/signing-key"
        )
        assert stored["SecretString"] == key
        assert stored["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:")

        again = team_cli("secrets", "migrate", "--to", "aws-secretsmanager")
        assert again.code == 0, again.err
        assert "already there" in again.out

        same = team_cli(
            "secrets", "migrate", "--from", "aws-secretsmanager", "--to", "aws-secretsmanager"
        )
        assert same.code == 1 and "same backend" in same.err

    audit = team_cli("audit", "-o", "json").json()["events"]
    migrations = [e for e in audit if e["action"] == "secrets.migrate"]
    # The re-runs came before secrets.backend was switched: the trail's key is in
    # Secrets Manager now, so their events wait in the journal (never unsealed).
    journaled = AuditJournal(team_cli.config_path.parent / "journal.jsonl").events()
    migrations += [e.as_dict() for e in journaled if e.action == "secrets.migrate"]
    assert len(migrations) == 2
    assert migrations[0]["detail"]["moves"] == {
        f"audit/chain-key/{trail.trail}": "moved",
        "serve/caller/siem/signing-key": "moved",
    }
