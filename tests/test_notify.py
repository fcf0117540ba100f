"""`agentctl expiring --notify`: each owner is told, through a real local SMTP
server and a real local HTTP webhook receiver (Apprise's ``mailto://`` and
``json://``), never a mock of the sending."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from contract_helpers import TODAY, contract_document, s3_read

from agentctl.cli.app import run
from agentctl.config import NotifySettings
from agentctl.notify import routes_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    box, port = Mailbox(), free_port()
    # ready_timeout: aiosmtpd gives its thread 5 s to start serving by default,
    # which a loaded machine can miss.
    controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=60)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            body["_authorization"] = self.headers.get("Authorization")
            received.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def world(tmp_path: Path, notify: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "contracts"
    folder.mkdir()
    due = {
        "alpha-agent": ("alice@company.com", 5),
        "beta-agent": ("alice@company.com", 400),  # not due
        "gamma-agent": ("bob@partner.org", 10),
        "delta-agent": ("carol@elsewhere.io", 3),
    }
    for name, (owner, days) in due.items():
        document = contract_document(
            name, owner=owner, expiry=TODAY + timedelta(days=days), aws=s3_read("b")
        )
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(document), "utf-8")
    config = tmp_path / "agentctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "notify": notify,
                "state": str(tmp_path / "state.db"),
                "journal": str(tmp_path / "j.jsonl"),
                "max_lifetime_days": 1000,
            }
        ),
        "utf-8",
    )
    monkeypatch.setenv("AGENTCTL_CONFIG", str(config))
    monkeypatch.delenv("AGENTCTL_STATE", raising=False)
    assert run(["state", "init"]) == 0
    return folder


def test_each_owner_gets_one_message_by_mail_or_webhook(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    smtp: tuple[int, Mailbox],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    smtp_port, mailbox = smtp
    hook_port, posted = webhook
    mail = f"mailto://127.0.0.1:{smtp_port}?from=agentctl@company.com&to={{owner}}&mode=insecure"
    folder = world(
        tmp_path,
        {
            "domains": {"company.com": [mail]},
            "owners": {"bob@partner.org": [f"json://127.0.0.1:{hook_port}/hooks/bob"]},
            "default": [mail],
        },
        monkeypatch,
    )
    capsys.readouterr()

    code = run(["expiring", "--days", "30", "--notify", str(folder)])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "told alice@company.com via mailto: alpha-agent" in out
    assert "told bob@partner.org via json: gamma-agent" in out
    assert "told carol@elsewhere.io via mailto: delta-agent" in out
    assert str(smtp_port) not in out + err  # routes (and their secrets) are never printed
    by_rcpt = {tuple(rcpt): content for _, rcpt, content in mailbox.messages}
    assert set(by_rcpt) == {("alice@company.com",), ("carol@elsewhere.io",)}
    assert "alpha-agent" in by_rcpt[("alice@company.com",)]
    assert "beta-agent" not in by_rcpt[("alice@company.com",)]  # not due
    (bob,) = posted
    assert "gamma-agent" in bob["message"] and "contract-expiring" in bob["message"]


def test_dry_run_names_owners_and_services_and_sends_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    port, posted = webhook
    folder = world(tmp_path, {"default": [f"json://127.0.0.1:{port}/all"]}, monkeypatch)
    capsys.readouterr()
    code = run(["expiring", "--notify", "--dry-run", "-o", "json", str(folder)])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert {n["owner"]: n["services"] for n in document["notifications"]} == {
        "alice@company.com": ["json"],
        "bob@partner.org": ["json"],
        "carol@elsewhere.io": ["json"],
    }
    assert not any(n["sent"] for n in document["notifications"])
    (alice,) = [n for n in document["notifications"] if n["owner"] == "alice@company.com"]
    assert "your attention" in alice["preview"]
    assert "- alpha-agent: contract-" in alice["preview"]  # what would be sent
    assert posted == []
    text = run(["expiring", "--notify", "--dry-run", str(folder)])
    out = capsys.readouterr().out
    assert text == 0 and "would tell alice@company.com via json: alpha-agent" in out
    assert "    - alpha-agent: contract-" in out
    assert str(port) not in out
    assert posted == []


def test_an_owner_not_told_fails_the_run_with_one_line_each(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    port, posted = webhook
    dead = free_port()
    folder = world(
        tmp_path,
        {
            "owners": {"alice@company.com": [f"json://127.0.0.1:{port}/alice"]},
            # bob's webhook is down; carol has no route at all
            "domains": {"partner.org": [f"json://127.0.0.1:{dead}/bob"]},
            "timeout_seconds": 2,
        },
        monkeypatch,
    )
    capsys.readouterr()
    code = run(["expiring", "--days", "30", "--notify", str(folder)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "told alice@company.com" in out
    lines = [line for line in err.splitlines() if line.startswith("not told")]
    assert len(lines) == 2, err
    assert "bob@partner.org" in err and "not delivered through json" in err
    assert "carol@elsewhere.io" in err and "no route" in err
    assert str(dead) not in err
    assert len(posted) == 1


def test_a_route_apprise_cannot_read_is_a_config_error_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = world(
        tmp_path, {"owners": {"alice@company.com": ["nosuchservice://token@x"]}}, monkeypatch
    )
    capsys.readouterr()
    code = run(["expiring", "--notify", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert "notify.owners.alice@company.com" in err and "nosuchservice://" in err
    assert "token@x" not in err


def test_routes_prefer_the_address_then_the_domain_then_the_default() -> None:
    settings = NotifySettings(
        owners={"Alice@Company.com": ("slack://a",)},
        domains={"company.com": ("mailto://relay?to={owner}",)},
        default=("json://fallback",),
    )
    assert routes_for("alice@company.com", settings) == ("slack://a",)
    assert routes_for("dave@company.com", settings) == ("mailto://relay?to=dave@company.com",)
    assert routes_for("x@other.org", settings) == ("json://fallback",)
    assert routes_for("x@other.org", NotifySettings()) == ()


def test_kill_tells_the_owner_after_the_revocation(
    cli: Any, webhook: tuple[int, list[dict[str, Any]]]
) -> None:
    port, posted = webhook
    cli.write("alpha-agent", owner="alice@company.com")
    assert cli("apply", cli.contracts, "--yes").code == 0
    config = yaml.safe_load(cli.config_path.read_text("utf-8"))
    config["notify"] = {"default": [f"json://127.0.0.1:{port}/owners"], "on_kill": True}
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")

    killed = cli("kill", "alpha-agent", "--yes", "--reason", "INC-7", "--output", "json")

    assert killed.code == 0, killed.err
    assert "owner alice@company.com told via json" in killed.json()["notes"]
    (message,) = posted
    assert "alpha-agent" in message["title"] and "INC-7" in message["message"]
    # a kill again is "already killed": nobody is told twice
    assert cli("kill", "alpha-agent", "--yes").code == 0
    assert len(posted) == 1


def test_apply_tells_owners_once_when_it_disables_their_agents_at_expiry(
    cli: Any, smtp: tuple[int, Mailbox], webhook: tuple[int, list[dict[str, Any]]]
) -> None:
    smtp_port, mailbox = smtp
    hook_port, posted = webhook
    cli.write("alpha-agent", owner="alice@company.com", expiry=TODAY + timedelta(days=5))
    cli.write("beta-agent", owner="alice@company.com", expiry=TODAY + timedelta(days=6))
    cli.write("gamma-agent", owner="bob@partner.org", expiry=TODAY + timedelta(days=5))
    cli.write("delta-agent", owner="carol@company.com", expiry=TODAY + timedelta(days=200))
    config = yaml.safe_load(cli.config_path.read_text("utf-8"))
    mail = f"mailto://127.0.0.1:{smtp_port}?from=agentctl@company.com&to={{owner}}&mode=insecure"
    config["notify"] = {
        "domains": {"company.com": [mail]},
        "owners": {"bob@partner.org": [f"json://127.0.0.1:{hook_port}/bob"]},
        "on_expiry": True,
    }
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")
    applied = cli("apply", cli.contracts, "--yes", "-o", "json")
    assert applied.code == 0, applied.err
    assert applied.json()["notes"] == []  # nothing expired: nobody told
    assert mailbox.messages == [] and posted == []

    cli.now = cli.now + timedelta(days=7)  # alpha, beta and gamma are past their expiry
    disabled = cli("apply", cli.contracts, "--yes")

    assert disabled.code == 0, disabled.err
    assert "owner alice@company.com told via mailto (alpha-agent, beta-agent)" in disabled.out
    assert "owner bob@partner.org told via json (gamma-agent)" in disabled.out
    assert str(smtp_port) not in disabled.out + disabled.err
    # the disable is real: AWS has the roles tagged expired
    for name in ("alpha-agent", "beta-agent", "gamma-agent"):
        assert cli.role(name)["Tags"]["agentctl:status"] == "expired"
    assert cli.role("delta-agent")["Tags"]["agentctl:status"] == "active"
    ((_, rcpt, content),) = mailbox.messages  # alice: ONE message naming both agents
    assert rcpt == ["alice@company.com"]
    assert "alpha-agent" in content and "beta-agent" in content and "delta-agent" not in content
    assert "extend `expiry`" in content
    (bob,) = posted
    assert "gamma-agent" in bob["title"] and "expired" in bob["message"]

    # Already disabled: the next apply tells nobody again.
    again = cli("apply", cli.contracts, "--yes", "--refresh", "-o", "json")
    assert again.code == 0 and again.json().get("notes", []) == []
    assert len(mailbox.messages) == 1 and len(posted) == 1


def test_apply_disables_at_expiry_even_when_the_owner_cannot_be_told(
    cli: Any,
) -> None:
    cli.write("alpha-agent", owner="alice@company.com", expiry=TODAY + timedelta(days=5))
    assert cli("apply", cli.contracts, "--yes").code == 0
    config = yaml.safe_load(cli.config_path.read_text("utf-8"))
    config["notify"] = {"default": [f"json://127.0.0.1:{free_port()}/down"], "on_expiry": True}
    config["notify"]["timeout_seconds"] = 2
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")

    cli.now = cli.now + timedelta(days=6)
    disabled = cli("apply", cli.contracts, "--yes", "-o", "json")

    assert disabled.code == 0, disabled.err  # the disable is apply's job, and it was done
    assert disabled.json()["notes"] == [
        "owner alice@company.com not told: not delivered through json"
    ]
    assert cli.role("alpha-agent")["Tags"]["agentctl:status"] == "expired"


def test_route_secrets_come_from_the_environment_and_are_never_printed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    webhook: tuple[int, list[dict[str, Any]]],
) -> None:
    port, posted = webhook
    # user:password in the URL, as an SMTP relay or a webhook with basic auth needs
    route = f"json://agentctl:${{HOOK_PASSWORD}}@127.0.0.1:{port}/hooks"
    folder = world(tmp_path, {"default": [route]}, monkeypatch)
    capsys.readouterr()

    monkeypatch.delenv("HOOK_PASSWORD", raising=False)
    code = run(["expiring", "--notify", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert "notify.default" in err and "${HOOK_PASSWORD}" in err and "not set" in err
    assert "export HOOK_PASSWORD" in err
    assert posted == []

    monkeypatch.setenv("HOOK_PASSWORD", "s3cr@t/pw")  # characters a URL must quote
    code = run(["expiring", "--notify", str(folder)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(posted) == 3  # alice, bob, carol
    expected = "Basic " + base64.b64encode(b"agentctl:s3cr@t/pw").decode()
    assert {p["_authorization"] for p in posted} == {expected}  # the password, intact
    assert "s3cr@t" not in out + err


def test_expiring_tells_owners_of_a_kill_left_incomplete_and_rotation_due(
    cli: Any, webhook: tuple[int, list[dict[str, Any]]]
) -> None:
    port, posted = webhook
    cli.write("alpha-agent", owner="alice@company.com")
    cli.write("beta-agent", owner="bob@partner.org")
    assert cli("apply", cli.contracts, "--yes").code == 0
    config = yaml.safe_load(cli.config_path.read_text("utf-8"))
    endpoint = config["aws"]["endpoint_url"]
    config["aws"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"  # AWS unreachable
    config["rotation_max_age_days"] = 10
    config["notify"] = {"default": [f"json://127.0.0.1:{port}/owners"]}
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")
    assert cli("kill", "alpha-agent", "--yes").code == 1  # kill-incomplete
    config["aws"]["endpoint_url"] = endpoint
    cli.config_path.write_text(yaml.safe_dump(config), "utf-8")
    cli.now = cli.now + timedelta(days=11)

    told = cli("expiring", "--days", "30", "--notify", cli.contracts)

    assert told.code == 0, told.err
    assert len(posted) == 2, posted  # one message per owner
    assert {m["title"] for m in posted} == {"agentctl: 1 item needs your attention"}
    alice = next(m["message"] for m in posted if "alpha-agent" in m["message"])
    bob = next(m["message"] for m in posted if "beta-agent" in m["message"])
    assert "kill-incomplete" in alice and "agentctl kill alpha-agent" in alice
    assert "credential-rotation-due" in bob and "agentctl rotate beta-agent" in bob
    assert "beta-agent" not in alice and "alpha-agent" not in bob
