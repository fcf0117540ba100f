"""The provider registry, the schemas assembled from it, and agentctl.yaml checked
against them."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from agentctl.config import Config
from agentctl.config_file import parse_config_text
from agentctl.errors import ConfigError
from agentctl.providers import aws, github, jira
from agentctl.providers.aws.settings import AwsSettings
from agentctl.providers.base import ProviderContext
from agentctl.providers.registry import Providers, installed_providers, provider_specs
from agentctl.schema import CONFIG_SCHEMA_FILE, CONTRACT_SCHEMA_FILE, config_json_schema, generated

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("boto3", "botocore", "githubkit", "httpx", "jwt", "keyring", "sqlalchemy", "psycopg")


# ------------------------------------------------------------------ registry


def test_the_built_in_providers_come_from_entry_points() -> None:
    specs = provider_specs()
    assert specs["aws"] is aws.SPEC and specs["github"] is github.SPEC


def test_loading_every_spec_imports_no_sdk() -> None:
    # `agentctl validate` loads every spec: none may pay for an SDK or a store.
    code = (
        "import sys\n"
        "from agentctl.providers.registry import provider_specs\n"
        "specs = provider_specs()\n"
        "assert {'aws', 'github'} <= set(specs), specs\n"
        "from agentctl.contract import load_schema\n"
        "load_schema()\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_providers_commands_come_from_its_own_package_and_never_import_the_cli() -> None:
    # A provider is one package, its sub-commands included: built through the
    # CommandLine it is handed (ProviderSpec.commands), never by importing agentctl.cli.
    code = (
        "import sys\n"
        "from agentctl.providers.base import load_object\n"
        "from agentctl.providers.registry import provider_specs\n"
        "mounted = {}\n"
        "for name, spec in provider_specs().items():\n"
        "    if spec.commands:\n"
        "        assert spec.commands.startswith(f'agentctl.providers.{name}.'), spec.commands\n"
        "        mounted[name] = load_object(spec.commands, name)\n"
        "assert {'github', 'jira'} <= set(mounted), mounted\n"
        "cli = sorted(m for m in sys.modules if m == 'agentctl.cli' or m.startswith('agentctl.cli.'))\n"
        "assert not cli, cli\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _plugin(folder: Path, dist: str, entry: str, module: str, body: str) -> None:
    info = folder / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[agentctl.providers]\n{entry}\n")
    (folder / f"{module}.py").write_text(body)


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    installed_providers.cache_clear()
    yield tmp_path
    installed_providers.cache_clear()
    for name in ("shadow_aws", "broken_plugin"):
        sys.modules.pop(name, None)


def test_agentctl_wins_a_name_clash_and_the_other_is_never_imported(
    fresh_registry: Path,
) -> None:
    _plugin(
        fresh_registry,
        "aaa-shadow",
        "aws = shadow_aws:SPEC",
        "shadow_aws",
        "raise SystemExit('a shadowing plug-in must never be imported')\n",
    )
    assert provider_specs()["aws"] is aws.SPEC
    assert "shadow_aws" not in sys.modules


def test_a_broken_plugin_is_named_not_a_traceback(fresh_registry: Path) -> None:
    _plugin(
        fresh_registry,
        "broken-plugin",
        "pagerduty = broken_plugin:SPEC",
        "broken_plugin",
        "SPEC = 'not a spec'\n",
    )
    with pytest.raises(ConfigError) as error:
        provider_specs()
    assert "'pagerduty'" in error.value.message and "broken-plugin" in error.value.message
    assert "is not the ProviderSpec" in error.value.message


def test_a_broken_plugin_leaves_the_other_providers_commands_in_the_cli(
    fresh_registry: Path,
) -> None:
    _plugin(
        fresh_registry,
        "broken-plugin",
        "pagerduty = broken_plugin:SPEC",
        "broken_plugin",
        "raise ImportError('half installed')\n",
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fresh_registry), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "agentctl", "github", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "register-pending" in done.stdout and "rotate-key" in done.stdout
    # Every command that loads providers still names the broken one.
    validate = subprocess.run(
        [sys.executable, "-m", "agentctl", "validate", str(fresh_registry)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode != 0
    assert "'pagerduty'" in validate.stderr and "broken-plugin" in validate.stderr


def _counting_factory(folder: Path) -> None:
    """A provider factory module that counts its constructions (``made``)."""
    (folder / "counting_provider.py").write_text(
        "import threading\n"
        "made = []\n"
        "class Provider:\n"
        "    def __init__(self, context):\n"
        "        made.append(threading.get_ident())\n"
        "def make(context):\n"
        "    return Provider(context)\n"
    )


def _context() -> ProviderContext:
    return ProviderContext(
        config=Config(),
        clock=lambda: datetime(2026, 12, 3, tzinfo=UTC),
        state_factory=lambda: None,  # type: ignore[arg-type,return-value]
        secrets_factory=lambda: None,  # type: ignore[arg-type,return-value]
        client_options={},
    )


def test_providers_are_constructed_when_first_used_and_then_the_same_object(
    fresh_registry: Path,
) -> None:
    _counting_factory(fresh_registry)
    sys.modules.pop("counting_provider", None)
    spec = dataclasses.replace(aws.SPEC, name="counted", provider="counting_provider:make")
    providers = Providers({"counted": spec, "aws": aws.SPEC}, _context())
    # Names, membership and size need no provider.
    assert list(providers) == ["counted", "aws"] and len(providers) == 2
    assert "counted" in providers and "github" not in providers
    assert "counting_provider" not in sys.modules
    with pytest.raises(KeyError):
        providers["github"]
    assert providers.get("github") is None

    # Threads asking at once (a plan's) get one object, constructed once.
    start = threading.Barrier(8)

    def ask() -> object:
        start.wait(timeout=60)
        return providers["counted"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda _: ask(), range(8)))
    made = sys.modules["counting_provider"].made
    assert len(made) == 1
    assert all(p is got[0] for p in got) and providers["counted"] is got[0]
    assert dict(providers.items())["counted"] is got[0] and len(made) == 1
    sys.modules.pop("counting_provider", None)


def test_a_provider_that_cannot_be_constructed_fails_where_it_is_used(
    fresh_registry: Path,
) -> None:
    # Its lifecycle module is gone (a half-installed plug-in, a missing SDK).
    broken = dataclasses.replace(aws.SPEC, name="pagerduty", provider="no_such_module:make")
    providers = Providers({"aws": aws.SPEC, "pagerduty": broken}, _context())
    assert "pagerduty" in providers  # it is installed: plans still see its grants
    assert providers["aws"].name == "aws"  # the others work
    # Where it is used, the same error as when every provider was constructed up
    # front; asking every provider (kill, status, rotate) meets it as before.
    for use in (lambda: providers["pagerduty"], lambda: list(providers.values())):
        with pytest.raises(ConfigError) as error:
            use()
        assert error.value.message == (
            "the pagerduty provider 'no_such_module:make' cannot be loaded (ModuleNotFoundError)"
        )


# ------------------------------------------------------------------- schemas


def test_the_shipped_schemas_are_generated_from_the_registered_providers() -> None:
    for name, text in generated().items():
        on_disk = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert on_disk == text, f"schemas/{name} is stale: python -m agentctl.schema --write"
    done = subprocess.run([sys.executable, "-m", "agentctl.schema", "--check"], cwd=ROOT)
    assert done.returncode == 0


def test_the_config_schema_is_valid_and_describes_every_setting() -> None:
    schema = json.loads((ROOT / "schemas" / CONFIG_SCHEMA_FILE).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    for section in ("aws", "github", "secrets"):
        properties = schema["properties"][section]["properties"]
        assert properties and all(p.get("description") for p in properties.values()), section
    assert schema["properties"]["state"]["type"] == ["string", "null"]
    assert config_json_schema(provider_specs()) == schema


def test_the_contract_schema_grants_are_the_providers_fragments() -> None:
    schema = json.loads((ROOT / "schemas" / CONTRACT_SCHEMA_FILE).read_text(encoding="utf-8"))
    grants = schema["properties"]["permissions"]["properties"]
    assert grants == {
        "aws": aws.SPEC.grant_schema,
        "github": github.SPEC.grant_schema,
        "jira": jira.SPEC.grant_schema,
    }
    assert schema["properties"]["agent"]["properties"]["name"]["maxLength"] == 34


# ------------------------------------------------------------- agentctl.yaml


def config_error(text: str, tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        parse_config_text(text, tmp_path / "agentctl.yaml")
    return error.value


def test_settings_are_typed_by_their_provider(tmp_path: Path) -> None:
    config = parse_config_text(
        "state: ./s.db\naws:\n  role_prefix: bots-\n  max_attempts: 3\n", tmp_path / "a.yaml"
    )
    assert config.state_url == "./s.db"
    assert config.settings(aws.SPEC) == AwsSettings(role_prefix="bots-", max_attempts=3)
    assert config.settings(github.SPEC) == github.SPEC.settings_type()  # defaults


def test_unknown_settings_say_where_and_what_was_meant(tmp_path: Path) -> None:
    error = config_error("state: x\nmax_lifetime: 30\n", tmp_path)
    assert error.message.endswith("agentctl.yaml:2: unknown setting 'max_lifetime'")
    assert error.hint is not None and "did you mean 'max_lifetime_days'" in error.hint
    error = config_error("github:\n  mode: shared\n  app_idd: 3\n", tmp_path)
    assert "agentctl.yaml:3: unknown setting 'github.app_idd'" in error.message


def test_the_first_problem_in_the_file_is_reported(tmp_path: Path) -> None:
    error = config_error("aws:\n  region: 3\nsecrets:\n  backnd: x\n", tmp_path)
    assert "agentctl.yaml:2: 'aws.region' must be str, not int" in error.message


def test_sections_must_be_mappings_and_the_file_one(tmp_path: Path) -> None:
    assert "'aws' must be a mapping" in config_error("aws: [1]\n", tmp_path).message
    assert "must be a YAML mapping" in config_error("- 1\n", tmp_path).message
    assert parse_config_text("aws:\n", tmp_path / "a.yaml").settings(aws.SPEC) == AwsSettings()
    assert parse_config_text("# nothing\n", tmp_path / "a.yaml") == Config(
        source=tmp_path / "a.yaml"
    )


def test_the_positioned_loader_reads_the_config(tmp_path: Path) -> None:
    # Anchors are the operator's own: allowed. Merge keys and tags are refused.
    text = "aws:\n  region: &r eu-west-1\n  profile: *r\n"
    assert parse_config_text(text, tmp_path / "a.yaml").settings(aws.SPEC).profile == "eu-west-1"
    merge = config_error("base: &b {region: x}\naws:\n  <<: *b\n", tmp_path)
    assert "agentctl.yaml:3" in merge.message and "merge keys" in merge.message
    assert "not valid YAML" in config_error("aws: [\n", tmp_path).message
