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

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    (tmp_path / "c.yaml").write_text(contract_text("defaults-agent"), "utf-8")
    result = run(tmp_path, "validate", "c.yaml", env={"AGENTCTL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr


def test_a_utf16_agentctl_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "agentctl.yaml"
    config.write_bytes("journal: j.jsonl\n".encode("utf-16"))
    result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": str(config)})
    assert result.returncode == 2 and "UTF-16" in result.stderr and "UTF-8" in result.stderr


# -- 2. every number and duration a user types is range-checked ----------------------------

# Options holding a duration as text (parsed by agentctl.durations, not by the CLI library).
DURATION_OPTIONS = {"--duration", "--since"}


def _leaf_commands() -> list[tuple[tuple[str, ...], Any]]:
    import typer

    from agentctl.cli.app import app

    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...], parent: Any) -> None:
        found.append((path, command))  # a group's own options too (audit --since)
        if not hasattr(command, "list_commands"):
            return
        # As click finds them (providers' groups are mounted when listed), not .commands.
        ctx = typer.Context(command, parent=parent, info_name=path[-1] if path else "agentctl")
        for name in command.list_commands(ctx):
            walk(command.get_command(ctx, name), (*path, name), ctx)

    walk(typer.main.get_command(app), (), None)
    assert ("github",) in [path[:1] for path, _ in found]  # providers' own commands too
    return found


def _numeric_options() -> list[tuple[tuple[str, ...], str, Any, list[str]]]:
    """(command path, option, parameter, positional arguments it needs) for every
    option taking a number or a duration, across the whole CLI."""
    options = []
    for path, command in _leaf_commands():
        positional = ["x" for p in command.params if p.param_type_name == "argument" and p.required]
        if path == ("exec",):
            positional.append("true")
        for param in command.params:
            if param.param_type_name != "option":
                continue
            long_name = max(param.opts, key=len)
            numeric = str(getattr(param.type, "name", "")).startswith(("int", "float"))
            if numeric or long_name in DURATION_OPTIONS:
                options.append((path, long_name, param, positional))
    return options


NUMERIC_OPTIONS = _numeric_options()


def test_the_cli_has_the_options_the_property_test_covers() -> None:
    names = {(" ".join(path), option) for path, option, _, _ in NUMERIC_OPTIONS}
    assert {("expiring", "--days"), ("audit", "--since"), ("exec", "--duration")} <= names
    assert ("audit", "--limit") in names and ("credentials", "--duration") in names
    # Every number has both bounds: an unbounded one is how 10**20 reached date arithmetic.
    unbounded = [
        (" ".join(path), option)
        for path, option, param, _ in NUMERIC_OPTIONS
        if option not in DURATION_OPTIONS and (param.type.min is None or param.type.max is None)
    ]
    assert unbounded == []


def _out_of_range(param: Any, option: str) -> st.SearchStrategy[str]:
    # Python's int() (so click's) reads any script's decimal digits: "١٢" is 12,
    # an in-range number; too many of them is garbage like any other.
    garbage = st.sampled_from(["1e400", "inf", "nan", "-", "0x10", "١٢" * 200, "9" * 400, " "])
    if option in DURATION_OPTIONS:
        huge = st.integers(min_value=10**6, max_value=10**30).map(
            lambda n: f"{n}{'d' if option == '--since' else 'h'}"
        )
        digits = st.integers(min_value=13, max_value=400).map(lambda n: "9" * n + "m")
        negative = st.integers(min_value=1, max_value=10**9).map(lambda n: f"-{n}m")
        return st.one_of(huge, digits, negative, garbage)
    above = st.integers(min_value=param.type.max + 1, max_value=param.type.max + 10**30)
    below = st.integers(min_value=param.type.min - 10**30, max_value=param.type.min - 1)
    return st.one_of(above.map(str), below.map(str), garbage)


@st.composite
def bad_option(draw: st.DrawFn) -> tuple[list[str], str]:
    path, option, param, positional = draw(st.sampled_from(NUMERIC_OPTIONS))
    value = draw(_out_of_range(param, option))
    return [*path, f"{option}={value}", *positional], option


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=bad_option())
def test_every_out_of_range_number_is_a_usage_error(
    case: tuple[list[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.cli.app import run as run_cli

    argv, option = case
    config = tmp_path / "agentctl.yaml"
    config.write_text(f"state: sqlite:///{tmp_path / 'state.db'}\n", "utf-8")
    monkeypatch.setenv("AGENTCTL_CONFIG", str(config))
    monkeypatch.setenv("COLUMNS", "250")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(argv)
    said = err.getvalue() + out.getvalue()
    assert code == 2, (argv, said)
    assert "internal error" not in said and "Traceback" not in said, said
    assert option in said or "Invalid value" in said, (argv, said)
    assert not (tmp_path / "state.db").exists(), "a usage error must open nothing"


def test_overflow_cases_from_the_issue(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "a.yaml").write_text(contract_text("days-agent"), "utf-8")
    for args, says in (
        (("expiring", "--days", "100000000000000000000", str(folder)), "36500"),
        (("audit", "--since", "99999999d"), "out of range"),
        (("exec", "--duration", "99999999999h", "a", "--", "true"), "out of range"),
        (("credentials", "--duration", "5s", "a"), "between 15m and 12h"),
        (("audit", "--limit", "100000000000000000000"), "1000000000"),
    ):
        result = run(tmp_path, *args)
        assert result.returncode == 2, result
        assert says in result.stderr, result.stderr
        no_traceback(result)


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("max_lifetime_days: 100000000000000000000", "greater than the maximum"),
        ("lock_timeout_seconds: .nan", "finite number"),
        ("lock_timeout_seconds: .inf", "finite number"),
        ("approval_ttl_minutes: -1", "less than the minimum"),
        ("aws:\n  session_duration_seconds: 99999999999", "greater than the maximum"),
        ("github:\n  max_attempts: 0", "less than the minimum"),
    ],
)
def test_every_number_in_agentctl_yaml_is_range_checked(
    tmp_path: Path, setting: str, says: str
) -> None:
    config = tmp_path / "agentctl.yaml"
    config.write_text(setting + "\n", "utf-8")
    result = run(tmp_path, "status", env={"AGENTCTL_CONFIG": str(config)})
    assert result.returncode == 2 and says in result.stderr, result.stderr


# -- 6. nothing left behind, nothing printed that should not be --------------------------


def test_github_register_leaves_no_page_in_the_temp_directory(
    github_world: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from github_helpers import ORG, contract_for

    from agentctl.cli.app import run as run_cli

    temp = github_world.root / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    contract = contract_for("form-agent", {"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]})
    path = github_world.write_contract(contract)
    config = github_world.write_config()
    base = ["--config", str(config), "--state", github_world.state_url, "github", "register"]
    # Someone else's look-alike (another user on a shared host): never touched.
    planted = temp / "agentctl-github-planted" / "register-form-agent.html"
    planted.parent.mkdir()
    planted.write_text("not ours", "utf-8")
    if os.getuid() == 0:
        os.chown(planted, 65534, 65534)
        os.chown(planted.parent, 65534, 65534)

    pages, states = [], []
    for _ in range(2):  # step 1 twice: the second page replaces the first
        assert run_cli([*base, contract.name, "--contract", str(path), "-o", "json"]) == 0
        started = json.loads(capsys.readouterr().out)
        pages.append(Path(started["form"]))
        states.append(started["state"])
    assert not pages[0].exists() and pages[1].exists()
    manifest = json.loads(
        __import__("html")
        .unescape(pages[1].read_text("utf-8"))
        .split("value='", 1)[1]
        .split("'>")[0]
    )
    code = github_world.emu.create_manifest_code(manifest, owner=ORG)
    step2 = ["--code", code, "--state", states[-1]]
    assert run_cli([*base, contract.name, "--contract", str(path), *step2]) == 0, (
        capsys.readouterr()
    )
    capsys.readouterr()
    left = sorted(p.relative_to(temp).as_posix() for p in temp.rglob("register-*.html"))
    expected = ["agentctl-github-planted/register-form-agent.html"] if os.getuid() == 0 else []
    assert left == expected


CI_PG_BASE = Path(os.environ.get("AGENTCTL_CI_PG_BASE", "/tmp/agentctl-ci-postgres"))


@pytest.mark.skipif(
    os.getuid() != 0 or not (CI_PG_BASE / "credentials.env").exists(),
    reason="needs the server scripts/ci-services.sh started (as root, as in CI)",
)
def test_ci_services_never_prints_the_database_password(tmp_path: Path) -> None:
    # Run it again, as .ci/run does (idempotent: it reuses the running server).
    script = Path(__file__).parents[1] / "scripts" / "ci-services.sh"
    env_file = tmp_path / "ci.env"
    result = subprocess.run(
        ["bash", str(script), str(env_file)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    password = dict(
        line.split("=", 1)
        for line in (CI_PG_BASE / "credentials.env").read_text("utf-8").splitlines()
    )["PG_PASSWORD"]
    assert password and password in env_file.read_text("utf-8")
    assert env_file.stat().st_mode & 0o077 == 0
    assert password not in result.stdout and password not in result.stderr
    assert "AGENTCTL_TEST_POSTGRES_URL" in result.stderr  # it says where the URL went


# -- 4. faults: a read-only state is still readable -----------------------------------------


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of this test's own (root only: CI runs as root)."""
    if os.getuid() != 0 or not Path("/proc/filesystems").read_text().count("tmpfs"):
        pytest.skip("needs root to mount a tmpfs")
    point = tmp_path / "mnt"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)])
    if mounted.returncode != 0:
        pytest.skip("mount is not permitted here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_read_only_commands_work_on_a_read_only_state(tmp_path: Path, small_mount: Path) -> None:
    url = f"sqlite:///{small_mount / 'state.db'}"
    env = {"AGENTCTL_STATE": url}
    assert run(tmp_path, "state", "init", env=env).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    for command in (("status",), ("list",), ("audit", "verify"), ("audit",)):
        result = run(tmp_path, *command, env=env)
        no_traceback(result)
        assert "cannot create" not in result.stderr, (command, result.stderr)
        assert result.returncode == 0 or "NOT KEYED" in result.stdout, (command, result)
