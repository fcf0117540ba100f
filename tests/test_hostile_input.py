"""Hostile input and faults (issue 21): every case gets a clear error, changes
nothing, and names the real cause.

The attacker here is the author of a pull request: they control what is in the
contracts folder (and an agentctl.yaml beside it) and read the CI log where
``agentctl validate`` prints what it found. They must not be able to make
agentctl read, and so print, anything outside that folder.

Every command runs as a real subprocess (a blocked read would hang it: the
``timeout`` of each run is a hang guard, not a speed requirement).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

ENTRY = "from agentctl.cli.app import main; main()"
# Stands for /etc/shadow or a CI runner's credentials file: must never be printed.
SECRET_LINES = [f"secret-line-{i}: {'x' * 40}-{i}" for i in range(200)]
SECRET_TEXT = "root: $6$saltsalt$hashhashhash\n" + "\n".join(SECRET_LINES) + "\n"
MARKERS = ("saltsalt", "hashhash", "secret-line-1", "xxxxxxxxxx")


def contract_text(name: str) -> str:
    # Expiry relative to the real clock: these runs do not pin "now".
    expiry = date.today() + timedelta(days=60)
    return yaml.safe_dump(
        {
            "agent": {"name": name, "owner": "platform-team@company.com", "purpose": "Test"},
            "permissions": {},
            "execution_mode": "autonomous",
            "expiry": expiry,
            "kill_switch": f"/agents/{name}/disable",
        },
        sort_keys=False,
    )


def run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TMPDIR"}}
    base.update(
        {
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "AGENTCTL_STATE": f"sqlite:///{tmp_path / 'state.db'}",
            "AGENTCTL_OPERATOR": "ops@company.com",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_COLOR": "1",
            "COLUMNS": "250",
        }
    )
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=base,
        cwd=cwd or tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def leaked(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [m for m in MARKERS if m in result.stdout or m in result.stderr]


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text(SECRET_TEXT, "utf-8")
    return secret


# -- 1. nothing is read outside the contracts folder --------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("validate",),
        ("validate", "--output", "json"),
        ("plan",),
        ("apply", "--yes"),
        ("expiring", "--days", "30"),
    ],
    ids=lambda c: " ".join(c),
)
def test_a_symlink_leaving_the_folder_is_refused_by_name(
    tmp_path: Path, outside: Path, command: tuple[str, ...]
) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "good.yaml").write_text(contract_text("good-agent"), "utf-8")
    (folder / "c.yaml").symlink_to(outside)
    (folder / "rel.yaml").symlink_to(Path("..") / "outside" / "shadow")
    result = run(tmp_path, *command, str(folder))
    no_traceback(result)
    assert leaked(result) == []
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    assert "c.yaml" in output and "rel.yaml" in output
    assert "outside-folder" in output or "outside" in output
    with_state = tmp_path / "state.db"
    if command[0] == "apply" and with_state.exists():
        listing = run(tmp_path, "status", "--output", "json")
        assert "good-agent" not in listing.stdout, "apply must change nothing"


def test_a_symlinked_directory_is_not_followed_and_a_link_inside_is_read(
    tmp_path: Path, outside: Path
) -> None:
    folder = tmp_path / "contracts"
    (folder / "team").mkdir(parents=True)
    (folder / "team" / "real.yaml").write_text(contract_text("linked-agent"), "utf-8")
    (folder / "alias.yaml").symlink_to(Path("team") / "real.yaml")  # stays inside: fine
    (outside.parent / "x.yaml").write_text(SECRET_TEXT, "utf-8")
    (folder / "elsewhere").symlink_to(outside.parent, target_is_directory=True)
    result = run(tmp_path, "validate", "--output", "json", str(folder))
    assert leaked(result) == []
    report = json.loads(result.stdout)
    # Both read (the same contract twice, honestly reported); nothing from elsewhere/.
    found = {(Path(p["file"]).name, p["code"]) for p in report["problems"]}
    assert found == {("alias.yaml", "duplicate-name"), ("real.yaml", "duplicate-name")}
    assert report["summary"]["files"] == 2


def test_a_symlink_given_directly_may_not_leave_its_own_directory(
    tmp_path: Path, outside: Path
) -> None:
    link = tmp_path / "contracts" / "c.yaml"
    link.parent.mkdir()
    link.symlink_to(outside)
    result = run(tmp_path, "validate", str(link))
    assert leaked(result) == [] and result.returncode == 1
    assert "outside" in result.stdout


def test_special_files_are_refused_without_being_opened(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    os.mkfifo(folder / "pipe.yaml")  # opening it would wait for a writer forever
    (folder / "null.yaml").symlink_to(os.devnull)  # a device, and outside the folder
    result = run(tmp_path, "validate", "--output", "json", str(folder))
    problems = {Path(p["file"]).name: p for p in json.loads(result.stdout)["problems"]}
    assert "FIFO" in problems["pipe.yaml"]["message"]
    assert problems["null.yaml"]["code"] == "outside-folder"
    direct = run(tmp_path, "validate", os.devnull)
    assert "a device, not read" in direct.stdout
    no_traceback(direct)


def test_a_file_that_is_not_a_contract_is_quoted_by_one_short_excerpt(tmp_path: Path) -> None:
    # Inside the folder (so it is read): a PR author's own file, or one copied in
    # by mistake. Its content is not echoed line by line.
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "passwd.yaml").write_text(SECRET_TEXT, "utf-8")
    for output in ("text", "json"):
        result = run(tmp_path, "validate", "--output", output, str(folder))
        assert result.returncode == 1
        assert leaked(result) == [], result.stdout
        assert "not-a-contract" in result.stdout
        assert "'root'" in result.stdout  # the first key, to recognise the file by


def test_a_long_key_is_cut_short(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    text = contract_text("long-key-agent") + f"{'k' * 5000}: 1\n"
    (folder / "a.yaml").write_text(text, "utf-8")
    result = run(tmp_path, "validate", str(folder))
    assert result.returncode == 1 and "k" * 81 not in result.stdout


def test_an_agentctl_yaml_beside_the_contracts_may_not_lead_outside(
    tmp_path: Path, outside: Path
) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "good.yaml").write_text(contract_text("good-agent"), "utf-8")
    (folder / "agentctl.yaml").symlink_to(outside)
    result = run(tmp_path, "validate", str(folder))
    assert leaked(result) == [] and result.returncode == 2
    assert "outside" in result.stderr and "agentctl.yaml" in result.stderr
    no_traceback(result)


def test_an_unknown_setting_is_quoted_short(tmp_path: Path) -> None:
    config = tmp_path / "agentctl.yaml"
    config.write_text(f"{'z' * 900}: 1\n", "utf-8")  # YAML keys end at 1024
    result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": str(config)})
    assert result.returncode == 2 and "unknown setting" in result.stderr
    assert "z" * 100 not in result.stderr


# -- 5. encodings and odd configuration files -----------------------------------------------


@pytest.mark.parametrize(
    ("codec", "named"),
    [
        ("utf-16", "UTF-16 (little-endian)"),  # Python writes a little-endian BOM
        ("utf-16-be", "UTF-16 (big-endian, no byte-order mark)"),
        ("utf-32", "UTF-32 (little-endian)"),
    ],
)
def test_wide_encodings_are_named_with_what_to_do(tmp_path: Path, codec: str, named: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(contract_text("wide-agent").encode(codec))
    result = run(tmp_path, "validate", str(path))
    assert result.returncode == 1
    assert named in result.stdout and "UTF-8" in result.stdout, result.stdout
    assert "binary" not in result.stdout


def test_utf16_big_endian_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xfe\xff" + contract_text("wide-agent").encode("utf-16-be"))
    result = run(tmp_path, "validate", str(path))
    assert "UTF-16 (big-endian)" in result.stdout


def test_agentctl_config_dev_null_says_what_it_is(tmp_path: Path) -> None:
    result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": os.devnull})
    assert result.returncode == 2
    assert "does not exist" not in result.stderr
    assert "a device" in result.stderr and "unset it to use the defaults" in result.stderr


def test_agentctl_config_fifo_and_directory_and_missing(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for target, says in (
        (fifo, "FIFO"),
        (tmp_path, "a directory"),
        (tmp_path / "no.yaml", "does not exist"),
    ):
        result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": str(target)})
        assert result.returncode == 2 and says in result.stderr, result.stderr
        no_traceback(result)


def test_an_empty_agentctl_config_means_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "agentctl.yaml"
    config.write_text("", "utf-8")
    result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr


def test_a_utf16_agentctl_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "agentctl.yaml"
    config.write_bytes("journal: j.jsonl\n".encode("utf-16"))
    result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": str(config)})
    assert result.returncode == 2 and "UTF-16" in result.stderr and "UTF-8" in result.stderr
