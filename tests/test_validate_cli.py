"""``agentctl validate``: exit codes, the JSON shape, strict mode, odd paths,
no tracebacks, and no SDK imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from agentctl.cli.app import app
from agentctl.commands import Session

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
CORPUS = Path(__file__).parent / "corpus"
HEAVY = ("boto3", "botocore", "githubkit", "keyring", "sqlalchemy")
NOW = "2026-11-28T09:00:00+00:00"

WILDCARD = """\
agent:
  name: wildcard-agent
  owner: a@company.com
  purpose: Reads one bucket, too broadly
permissions:
  aws:
    - actions: ["s3:*"]
      resources: ["arn:aws:s3:::bucket/*"]
execution_mode: autonomous
expiry: 2027-03-01
kill_switch: /agents/wildcard-agent/disable
"""


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTCTL_CONFIG", raising=False)


def frozen() -> datetime:
    return datetime.fromisoformat(NOW)


def run(*args: str | Path) -> Result:
    # The clock is handed over in-process, as `agentctl.cli.app.run(clock=)` does.
    result = CliRunner().invoke(app, ["validate", *map(str, args)], obj=Session(clock=frozen))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def run_json(*args: str | Path) -> tuple[int, dict]:
    result = run(*args, "--output", "json")
    return result.exit_code, json.loads(result.stdout)


def test_shipped_contracts_pass() -> None:
    result = run(CONTRACTS)
    assert result.exit_code == 0, result.output
    assert "3 valid contracts, 0 errors, 0 warnings, 1 note" in result.stdout


def test_json_shape() -> None:
    code, data = run_json(CONTRACTS)
    assert code == 0
    assert set(data) == {"ok", "contracts", "problems", "summary"}
    assert data["ok"] is True
    assert data["summary"] == {
        "files": 3,
        "contracts": 3,
        "expired": 0,
        "errors": 0,
        "warnings": 0,
        "notes": 1,
    }
    assert {c["name"] for c in data["contracts"]} == {
        "pr-review-agent",
        "security-triage-agent",
        "release-agent",
    }
    first = next(c for c in data["contracts"] if c["name"] == "pr-review-agent")
    assert first == {
        "name": "pr-review-agent",
        "file": str(CONTRACTS / "pr-review-agent.yaml"),
        "owner": "platform-team@company.com",
        "expiry": "2027-03-01",
        "expired": False,
    }
    (note,) = data["problems"]
    assert set(note) == {"file", "line", "column", "path", "severity", "code", "message"}
    assert (note["severity"], note["code"], note["path"]) == (
        "info",
        "no-projects",
        "permissions.jira",
    )


def test_notes_off_a_terminal_are_one_line_per_code(tmp_path: Path) -> None:
    """A note on each of many files would bury the errors in a CI log: off a
    terminal notes are summarised per code (JSON still lists each), while every
    error keeps its own located line."""
    source = (CONTRACTS / "pr-review-agent.yaml").read_text()
    for n in range(5):
        name = f"noted-agent-{n}"
        text = source.replace("pr-review-agent", name)
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(source.replace("  owner:", "  ownr:"), encoding="utf-8")
    result = run(tmp_path)
    assert result.exit_code == 1
    notes = [line for line in result.stdout.splitlines() if "no-projects" in line]
    assert len(notes) == 1, result.stdout
    assert "info" in notes[0] and "(and 5 more: --output json lists each)" in notes[0]
    assert f"{tmp_path / 'bad.yaml'}:" in result.stdout and "unknown-key" in result.stdout
    assert "6 notes" in result.stdout
    code, data = run_json(tmp_path)
    assert code == 1
    assert sum(p["code"] == "no-projects" for p in data["problems"]) == 6


def test_errors_exit_1_with_located_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        (CONTRACTS / "pr-review-agent.yaml").read_text().replace("  owner:", "  ownr:"),
        encoding="utf-8",
    )
    result = run(path)
    assert result.exit_code == 1
    assert (
        f"{path}:4:3" in result.stdout
        and "unknown-key" in result.stdout
        and "did you mean 'owner'?" in result.stdout
    )
    assert "1 error" in result.stdout


def test_expired_contract_is_reported_and_listed(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(
        (CONTRACTS / "pr-review-agent.yaml").read_text().replace("2027-03-01", "2026-07-01"),
        encoding="utf-8",
    )
    code, data = run_json(path)
    assert code == 1
    assert data["contracts"] == [
        {
            "name": "pr-review-agent",
            "file": str(path),
            "owner": "platform-team@company.com",
            "expiry": "2026-07-01",
            "expired": True,
        }
    ]
    assert [p["code"] for p in data["problems"] if p["severity"] == "error"] == ["expired"]
    assert data["summary"]["expired"] == 1


def test_strict(tmp_path: Path) -> None:
    path = tmp_path / "wildcard.yaml"
    path.write_text(WILDCARD, encoding="utf-8")
    code, data = run_json(path)
    assert code == 0 and [(p["code"], p["severity"]) for p in data["problems"]] == [
        ("wildcard-action", "warning")
    ]
    code, data = run_json(path, "--strict")
    assert code == 1 and [(p["code"], p["severity"]) for p in data["problems"]] == [
        ("wildcard-action", "error")
    ]


def test_max_lifetime_days_option_and_config(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "a.yaml").write_text(WILDCARD, encoding="utf-8")
    assert run(folder).exit_code == 0
    code, data = run_json(folder, "--max-lifetime-days", "30")
    assert code == 1 and "lifetime-too-long" in {p["code"] for p in data["problems"]}
    (tmp_path / "agentctl.yaml").write_text("max_lifetime_days: 30\n", encoding="utf-8")
    assert run(folder).exit_code == 1
    assert run(folder, "--max-lifetime-days", "400").exit_code == 0
    assert run(folder, "--max-lifetime-days", "0").exit_code == 2


def test_default_path_is_contracts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run()
    assert result.exit_code == 2
    assert "no PATH given" in result.stderr and result.stdout == ""
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "a.yaml").write_text(WILDCARD, encoding="utf-8")
    code, data = run_json()
    assert code == 0 and data["contracts"][0]["file"] == "contracts/a.yaml"


def test_usage_errors_exit_2() -> None:
    assert run(CONTRACTS, "--output", "yaml").exit_code == 2
    assert run(CONTRACTS, "--no-such-option").exit_code == 2


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    code, data = run_json(tmp_path)
    assert code == 1 and [p["code"] for p in data["problems"]] == ["no-contracts"]
    code, data = run_json(tmp_path / "missing.yaml")
    assert code == 1 and [p["code"] for p in data["problems"]] == ["not-found"]


def test_unreadable_files_even_as_root(tmp_path: Path) -> None:
    # Tests run as root, so chmod 000 would not stop a read: use files no one
    # can read as a contract — a FIFO (which must not block) and a dangling link.
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "deleted.yaml")
    code, data = run_json(tmp_path)
    assert code == 1
    assert sorted((Path(p["file"]).name, p["code"], p["line"]) for p in data["problems"]) == [
        ("gone.yaml", "unreadable", 0),
        ("pipe.yaml", "unreadable", 0),
    ]


def test_whole_corpus_without_a_traceback() -> None:
    result = run(CORPUS / "invalid", CORPUS / "hostile")
    assert result.exit_code == 1
    code, data = run_json(CORPUS / "invalid", CORPUS / "hostile")
    assert (
        code == 1
        and data["ok"] is False
        and data["contracts"] == [c for c in data["contracts"] if c["expired"]]
    )


def test_hostile_text_cannot_drive_the_terminal(tmp_path: Path) -> None:
    path = tmp_path / "escape.yaml"
    path.write_text(
        WILDCARD.replace("name: wildcard-agent", 'name: "x\\e[2J\\e]0;pwned\\a[red]"'),
        encoding="utf-8",
    )
    result = run(path)
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "name-control-char" in result.stdout


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_validate_imports_no_sdk_or_keyring() -> None:
    code = (
        "import sys, json, typer\n"
        "from typer.testing import CliRunner\n"
        "from datetime import datetime\n"
        "from agentctl.commands import Session\n"
        "from agentctl.cli.validate import validate\n"
        "app = typer.Typer(); app.command()(validate)\n"
        f"now = Session(clock=lambda: datetime.fromisoformat({NOW!r}))\n"
        "result = CliRunner().invoke(app, ['contracts/pr-review-agent.yaml'], obj=now)\n"
        f"print(json.dumps([result.exit_code, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    out = _python(code, ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [0, []]


@pytest.mark.skipif(
    not (ROOT / "agentctl" / "cli" / "app.py").exists(), reason="the main app is not there yet"
)
def test_agentctl_help_and_validate_import_no_sdk_or_keyring() -> None:
    code = (
        "import sys, json, contextlib, io\n"
        "from datetime import datetime\n"
        "from agentctl.cli.app import run\n"
        f"now = datetime.fromisoformat({NOW!r})\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [run(['--help']), run(['validate', 'contracts/pr-review-agent.yaml'], clock=lambda: now)]\n"
        f"print(json.dumps([codes, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    out = _python(code, ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[0, 0], []]


def _imported_by(*args: str, cwd: Path = ROOT, home: Path | None = None) -> set[str]:
    """Every module the installed ``agentctl`` console script imports for ``args``
    (its real start-up: the script, the interpreter, nothing preloaded).
    ``home``: run with that HOME and no XDG folders (a host with nothing set up)."""
    script = Path(sys.executable).parent / "agentctl"
    unset = {"AGENTCTL_CONFIG", "AGENTCTL_STATE", "FORCE_COLOR"}
    if home is not None:
        unset |= {k for k in os.environ if k.startswith("XDG_")}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if home is not None:
        env["HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", str(script), *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in out.stderr, out.stderr
    return {
        line.rpartition("|")[2].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
    }


# What only some commands need: the SDKs, the state store's ORM, the schema
# validator and YAML (a command reading agentctl.yaml or contracts), and the
# providers' own sub-commands (mounted when `agentctl <provider>` is asked for).
NOT_AT_START = (*HEAVY, "jsonschema", "yaml", "agentctl.providers.github.commands")


def test_the_cli_starts_without_what_only_some_commands_need() -> None:
    modules = _imported_by("--version")
    assert "agentctl.cli.app" in modules  # the probe sees the CLI's imports
    assert sorted(m for m in NOT_AT_START if m in modules) == []
    assert not any(m.startswith("agentctl.providers.") for m in modules)


def test_help_lists_providers_commands_without_sdks() -> None:
    modules = _imported_by("--help")
    assert "agentctl.providers.github.commands" in modules  # `github` is listed
    assert sorted(m for m in HEAVY if m in modules) == []


# Issue 19: the commands CI and cron run on contracts alone stay lazy. The
# state store's ORM and the SDKs are for commands that act or read the state.
LAZY_FOUR = ("boto3", "githubkit", "keyring", "sqlalchemy")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["validate", "contracts"], id="validate"),
        pytest.param(["expiring", "--days", "3650", "contracts"], id="expiring"),
    ],
)
def test_contract_only_commands_import_no_sdk_keyring_or_sqlalchemy(
    args: list[str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(CONTRACTS, tmp_path / "contracts")
    modules = _imported_by(*args, cwd=tmp_path, home=home)
    assert "agentctl.cli.app" in modules  # the probe sees the CLI's imports
    assert sorted(m for m in LAZY_FOUR if m in modules) == []


def test_expiring_on_contracts_alone_creates_no_state(tmp_path: Path) -> None:
    """Nothing applied from this host: `expiring` reports the contracts and
    leaves no default state behind (a read creates no store)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(CONTRACTS, tmp_path / "contracts")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "AGENTCTL_")) and k != "FORCE_COLOR"
    }
    out = subprocess.run(
        [str(Path(sys.executable).parent / "agentctl"), "expiring", "--days", "3650", "contracts"],
        cwd=tmp_path,
        env={**env, "HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr  # something is due within ten years
    names = sorted(p.stem for p in CONTRACTS.glob("*.yaml"))
    assert [line.split()[1].rstrip(":") for line in out.stdout.splitlines()] == names
    assert [p for p in home.rglob("*") if p.is_file()] == []
