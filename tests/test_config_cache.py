"""agentctl.yaml checked clean once is not checked against the schema again
(agentctl.config_cache): the same values, the same schema, the same installed
jsonschema give the same answer. A configuration with a problem is reported
every time, and a cache file that is not this user's private file is ignored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentctl import config_cache
from agentctl.config_file import _schema, load_config
from agentctl.errors import ConfigError
from agentctl.providers.registry import provider_specs

GOOD = {"state": "sqlite:////tmp/x/state.db", "aws": {"region": "eu-west-1"}}
# Schema-invalid: the region must be a string.
BAD = {"state": "sqlite:////tmp/x/state.db", "aws": {"region": 7}}


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "agentctl" / config_cache.FILENAME


def write(path: Path, document: object) -> Path:
    path.write_text(yaml.safe_dump(document), "utf-8")
    return path


def key_of(document: object) -> str:
    specs = provider_specs()
    return config_cache.digest(document, _schema(tuple(specs[n] for n in sorted(specs))))


def test_a_clean_configuration_is_remembered_privately(tmp_path: Path, cache_home: Path) -> None:
    config = load_config(str(write(tmp_path / "agentctl.yaml", GOOD)))
    assert config.provider_settings["aws"].region == "eu-west-1"  # type: ignore[attr-defined]
    assert cache_home.is_file()
    assert cache_home.stat().st_mode & 0o777 == 0o600
    assert cache_home.parent.stat().st_mode & 0o777 == 0o700
    assert config_cache.validated_before(key_of(GOOD))
    # Read back through the cache: the same settings.
    again = load_config(str(tmp_path / "agentctl.yaml"))
    assert again == config


def test_a_configuration_with_a_problem_is_reported_every_time(
    tmp_path: Path, cache_home: Path
) -> None:
    path = write(tmp_path / "agentctl.yaml", BAD)
    for _ in range(2):
        with pytest.raises(ConfigError, match="region"):
            load_config(str(path))
    assert not config_cache.validated_before(key_of(BAD))


@pytest.mark.parametrize("forgery", ["world-readable", "symlink"])
def test_a_cache_that_is_not_this_users_private_file_is_ignored(
    tmp_path: Path, cache_home: Path, forgery: str
) -> None:
    # Someone plants a cache saying the bad configuration checked clean.
    planted = {"format": config_cache.FORMAT, "clean": [key_of(BAD)]}
    cache_home.parent.mkdir(parents=True)
    if forgery == "world-readable":
        cache_home.write_text(json.dumps(planted), "utf-8")
        cache_home.chmod(0o644)
    else:
        target = tmp_path / "elsewhere.json"
        target.write_text(json.dumps(planted), "utf-8")
        target.chmod(0o600)
        cache_home.symlink_to(target)
    with pytest.raises(ConfigError, match="region"):
        load_config(str(write(tmp_path / "agentctl.yaml", BAD)))


def test_another_schema_checks_again(tmp_path: Path, cache_home: Path) -> None:
    load_config(str(write(tmp_path / "agentctl.yaml", GOOD)))
    specs = provider_specs()
    fewer = tuple(specs[n] for n in sorted(specs) if n != "jira")
    assert not config_cache.validated_before(config_cache.digest(GOOD, _schema(fewer)))


def test_a_second_process_with_the_same_file_does_not_import_jsonschema(
    tmp_path: Path, cache_home: Path
) -> None:
    path = write(tmp_path / "agentctl.yaml", GOOD)
    code = (
        "import sys\n"
        "from agentctl.config_file import load_config\n"
        "config = load_config(sys.argv[1])\n"
        "print(config.provider_settings['aws'].region, 'jsonschema' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def imported() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert imported() == "eu-west-1 True"  # first: checked against the schema
    assert imported() == "eu-west-1 False"  # then: remembered
    write(path, {**GOOD, "aws": {"region": "us-east-1"}})
    assert imported() == "us-east-1 True"  # other values: checked again
    # The same values in other bytes (a comment): the check is remembered.
    path.write_text(path.read_text("utf-8") + "# a comment\n", "utf-8")
    assert imported() == "us-east-1 False"


def test_the_cache_holds_no_values_a_writer_of_it_could_substitute(
    tmp_path: Path, cache_home: Path
) -> None:
    # Whoever can write the cache (this user, an agent run as this user) must
    # not change what agentctl.yaml says: only verdicts are kept, never values.
    path = write(tmp_path / "agentctl.yaml", GOOD)
    load_config(str(path))
    stored = json.loads(cache_home.read_text("utf-8"))
    assert set(stored) == {"format", "clean"}
    assert "eu-west-1" not in cache_home.read_text("utf-8")


def test_a_remembered_file_with_a_problem_under_another_schema_says_where(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "agentctl.yaml", {**GOOD, "jira": {"site_url": "https://x.example"}})
    load_config(str(path))  # parsed and checked clean with jira installed
    from agentctl.providers import registry

    specs = dict(registry.provider_specs())
    del specs["jira"]
    monkeypatch.setattr(registry, "provider_specs", lambda: specs)
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    # Located by line, as a file parsed afresh is (the remembered values have no lines).
    assert f"{path}:" in refused.value.message and "jira" in refused.value.message


def test_a_fifo_planted_at_the_cache_does_not_hang_kill(tmp_path: Path, cache_home: Path) -> None:
    # The agent inside `exec` runs as this user: it can mkfifo the cache path
    # (0600, ours, not a link). Opening it blocked every command reading the
    # configuration — `agentctl kill` of that very agent included — forever.
    path = write(tmp_path / "agentctl.yaml", GOOD)
    cache_home.parent.mkdir(parents=True)
    os.mkfifo(cache_home, 0o600)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("AGENTCTL_CONFIG", None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agentctl", "--config", str(path), "kill", "nobody"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,  # a hang guard, not a speed assertion
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("agentctl kill blocked opening a FIFO planted at the config cache")
    assert "Traceback" not in done.stderr
    # Past the configuration: kill goes on to verify the caller (no AWS here).
    assert done.stderr.startswith("error: cannot verify who you are"), done.stderr
    # In-process too: read as no cache, checked against the schema, and the
    # FIFO replaced by the private file.
    assert load_config(str(path)).provider_settings["aws"].region == "eu-west-1"  # type: ignore[attr-defined]
    assert cache_home.is_file()


def test_a_non_finite_number_in_a_list_is_a_located_error(tmp_path: Path, cache_home: Path) -> None:
    path = tmp_path / "agentctl.yaml"
    path.write_text("people: [.nan]\n", "utf-8")
    with pytest.raises(ConfigError, match="finite"):
        load_config(str(path))


def test_another_agentctl_checks_again(tmp_path: Path, cache_home: Path) -> None:
    # Which validator runs, and what is checked beside the schema, is
    # config_file's code: an agentctl upgrade that checks more must not take
    # an older version's "clean" for its own.
    from agentctl import config_file

    load_config(str(write(tmp_path / "agentctl.yaml", GOOD)))
    assert config_cache.validated_before(key_of(GOOD))
    code = Path(config_file.__file__)
    before = code.stat()
    try:
        os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert not config_cache.validated_before(key_of(GOOD))
    finally:
        os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert config_cache.validated_before(key_of(GOOD))


def test_people_rules_keep_their_line_when_the_file_is_remembered(
    tmp_path: Path, cache_home: Path
) -> None:
    # PersonRule.where ("agentctl.yaml:3") is what identity errors name and
    # what audit events record as identified_by: a remembered file must give
    # the same configuration as a parsed one, lines included.
    path = tmp_path / "agentctl.yaml"
    path.write_text(
        "notify: {}\n"
        "people:\n"
        '  - principal: "arn:aws:iam::123456789012:user/alice"\n'
        "    person: alice@company.com\n",
        "utf-8",
    )
    first = load_config(str(path))
    assert first.people[0].where == f"{path}:3"
    assert load_config(str(path)) == first
