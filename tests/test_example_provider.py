"""A provider from another distribution, registered only by its entry point.

``tests/example_provider`` holds the package ``agentctl_ledger`` and its
``.dist-info`` (entry point ``ledger = agentctl_ledger:SPEC``): putting that
directory on the path is all an installed plug-in amounts to. Nothing outside
it names the provider, yet contracts naming ``ledger`` are validated against
its schema and vocabulary, agentctl.yaml's ``ledger:`` section against its
settings, and the engine plans, applies, kills and revives through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from contract_helpers import TODAY, frozen_now

from agentctl.config import Config
from agentctl.config_file import parse_config_text
from agentctl.contract import load_contract_text, load_contracts, load_schema
from agentctl.errors import ConfigError
from agentctl.providers.registry import installed_providers, provider_specs
from agentctl.runtime import build_engine

PLUGIN = Path(__file__).resolve().parent / "example_provider"
ROOT = Path(__file__).resolve().parents[1]

CONTRACT = """\
agent:
  name: ledger-agent
  owner: finance@company.com
  purpose: Reconcile the books
permissions:
  ledger:
    books: [payables]
    scopes: [entries:read]
execution_mode: autonomous
expiry: 2027-03-01
kill_switch: /agents/ledger-agent/disable
"""


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(PLUGIN))
    installed_providers.cache_clear()
    yield
    installed_providers.cache_clear()


def codes(text: str) -> list[tuple[str, str]]:
    report = load_contract_text(text, "ledger.yaml", today=TODAY)
    return [(p.code, p.path) for p in report.problems]


def test_without_the_plugin_ledger_is_declared_not_enforced() -> None:
    assert "ledger" not in provider_specs()
    listed = CONTRACT.replace("\n    books: [payables]\n    scopes:", "")
    assert codes(listed) == [("not-enforced", "permissions.ledger")]


def test_the_entry_point_registers_the_spec(plugin: None) -> None:
    assert list(provider_specs()) == ["aws", "github", "jira", "ledger"]
    schema = load_schema()
    assert "ledger" in schema["properties"]["permissions"]["properties"]
    assert codes(CONTRACT) == []


def test_its_schema_vocabulary_and_hints_validate_contracts(plugin: None) -> None:
    assert codes(CONTRACT.replace("entries:read", "entries:raed")) == [
        ("unknown-scope", "permissions.ledger.scopes[0]")
    ]
    report = load_contract_text(
        CONTRACT.replace("    books: [payables]\n", ""), "ledger.yaml", today=TODAY
    )
    (missing,) = report.errors
    assert (missing.code, missing.path) == ("missing-key", "permissions.ledger.books")
    assert "add 'books: [name]'" in missing.message
    # Where its keys belong is derived from its schema, like the built-ins'.
    report = load_contract_text(
        CONTRACT.replace("  ledger:\n", "  books: [payables]\n  ledger:\n").replace(
            "    books: [payables]\n    scopes", "    scopes"
        ),
        "ledger.yaml",
        today=TODAY,
    )
    assert ("misplaced-key", "permissions.books") in [(p.code, p.path) for p in report.errors]
    # Its name limit joins the others.
    (long,) = load_contract_text(
        CONTRACT.replace("ledger-agent", "l" * 35), "ledger.yaml", today=TODAY
    ).errors
    assert long.code == "name-too-long"
    assert "ledger account names are at most 40 characters" in long.message


def test_its_settings_are_part_of_agentctl_yaml(plugin: None, tmp_path: Path) -> None:
    config = parse_config_text(f"ledger:\n  path: {tmp_path / 'l.json'}\n", tmp_path / "a.yaml")
    (spec,) = [s for n, s in provider_specs().items() if n == "ledger"]
    assert config.settings(spec).path == str(tmp_path / "l.json")
    with pytest.raises(ConfigError) as error:
        parse_config_text("ledger:\n  paht: x\n", tmp_path / "agentctl.yaml")
    assert "agentctl.yaml:2: unknown setting 'ledger.paht'" in error.value.message
    assert "did you mean 'path'" in (error.value.hint or "")


def test_plan_apply_kill_and_revive_through_the_engine(plugin: None, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "ledger-agent.yaml").write_text(CONTRACT, encoding="utf-8")
    config = parse_config_text(
        f"state: {tmp_path / 'state.db'}\njournal: {tmp_path / 'journal.jsonl'}\n"
        f"ledger:\n  path: {ledger}\n",
        tmp_path / "agentctl.yaml",
    )
    engine = build_engine(
        config, operator="ops@company.com", clock=frozen_now, provider_names=["ledger"]
    )
    report = load_contracts([tmp_path / "contracts"], today=TODAY)
    assert report.ok, report.problems
    (contract,) = report.contracts
    assert type(contract.grants["ledger"]).__name__ == "LedgerGrant"  # parsed at validation

    plan = engine.plan(report.contracts)
    assert [c.summary for a in plan.agents for c in a.changes] == [
        "create ledger account ledger-agent"
    ]
    assert engine.apply(plan).ok
    assert json.loads(ledger.read_text())["ledger-agent"]["scopes"] == ["entries:read"]
    assert [a.changes for a in engine.plan(report.contracts).agents] == [()]

    killed = engine.kill("ledger-agent", "incident")
    assert killed.ok and [r.provider for r in killed.results] == ["ledger"]
    assert json.loads(ledger.read_text())["ledger-agent"]["killed"] is True
    assert engine.revive("ledger-agent", "resolved").ok
    assert json.loads(ledger.read_text())["ledger-agent"]["killed"] is False


def test_the_cli_validates_with_the_plugin(tmp_path: Path) -> None:
    contract = tmp_path / "ledger-agent.yaml"
    contract.write_text(CONTRACT.replace("entries:read", "entries:raed"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "agentctl", "validate", str(contract), "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    (problem,) = json.loads(done.stdout)["problems"]
    assert (
        problem["code"] == "unknown-scope" and "did you mean 'entries:read'" in problem["message"]
    )


def test_config_without_the_plugin_refuses_its_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'ledger'"):
        parse_config_text("ledger:\n  path: x\n", tmp_path / "agentctl.yaml")
    assert Config().provider_settings == {}
