"""Contract loading: the design's example, the shipped contracts, the report,
file discovery, semantics, positions and the schema itself."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentctl.contract import (
    SCHEMA_ID,
    contract_validator,
    format_path,
    load_contract_text,
    load_contracts,
    load_schema,
    name_max_length,
)
from agentctl.model import ExecutionMode, JsonValue, Severity
from agentctl.providers.base import GrantFinding, ProviderSpec
from agentctl.render import json_data

NAME_MAX_LENGTH = name_max_length()


def scopes_provider(name: str, check: Any) -> dict[str, ProviderSpec[JsonValue, object]]:
    """A provider whose grant is a list of scope names, checked by ``check``."""
    return {
        name: ProviderSpec(
            name=name,
            summary="a test provider",
            grant_schema={"$ref": "#/$defs/scopes"},
            parse_grant=lambda raw: raw,
            check_grant=lambda grant, settings: check(grant),
            describe_grant=str,
            settings_type=object,
            provider="tests:unused",
        )
    }


ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
DESIGN = ROOT.parent / "shared" / "DESIGN.md"
TODAY = date(2026, 11, 28)

# DESIGN §1, verbatim.
DESIGN_EXAMPLE = """\
agent:
  name: pr-review-agent
  owner: platform-team@company.com
  purpose: Review pull requests for security and code quality

permissions:
  github:
    - repo:read
    - pull_request:comment
  jira:
    - issue:read
    - issue:transition

execution_mode: autonomous        # autonomous | approval_required | on_behalf_of_user
expiry: 2027-03-01                # a date; the grant ends then
kill_switch: /agents/pr-review-agent/disable
"""


def load(text: str, **options: Any) -> Any:
    return load_contract_text(text, "contract.yaml", today=TODAY, **options)


def codes(report: Any) -> set[str]:
    return {p.code for p in report.problems}


# ----------------------------------------------------------------- the example


def test_design_example_validates_as_written() -> None:
    report = load(DESIGN_EXAMPLE)
    # Valid; its GitHub grant lists no repositories, which the lint points out
    # (tokens would reach every repository the App is installed on).
    assert report.ok and [(w.code, w.path) for w in report.warnings] == [
        ("all-repositories", "permissions.github")
    ]
    (contract,) = report.contracts
    assert contract.name == "pr-review-agent"
    assert contract.owner == "platform-team@company.com"
    assert contract.purpose == "Review pull requests for security and code quality"
    assert contract.execution_mode is ExecutionMode.AUTONOMOUS
    assert contract.expiry == date(2027, 3, 1)
    assert contract.kill_switch == "/agents/pr-review-agent/disable"
    assert contract.permissions == {
        "github": ["repo:read", "pull_request:comment"],
        "jira": ["issue:read", "issue:transition"],
    }
    assert contract.source == "contract.yaml"
    # jira's list form names no projects and no agentctl.yaml names the
    # default ones here: a note (apply would grant nothing), never a failure.
    (note,) = report.notes
    assert (note.code, note.path, note.line, note.column) == (
        "no-projects",
        "permissions.jira",
        11,
        5,
    )
    assert "jira.default_projects" in note.message


def test_design_example_with_the_articles_date_is_expired() -> None:
    report = load(DESIGN_EXAMPLE.replace("expiry: 2027-03-01", "expiry: 2026-07-01"))
    assert not report.ok
    (problem,) = report.errors
    assert (problem.code, problem.severity, problem.path, problem.line) == (
        "expired",
        Severity.ERROR,
        "expiry",
        15,
    )
    assert "2026-07-01" in problem.message and "disable" in problem.message
    # Not loadable, but handed to apply so that it disables the agent.
    assert report.contracts == ()
    assert [c.name for c in report.expired] == ["pr-review-agent"]


@pytest.mark.skipif(not DESIGN.is_file(), reason="DESIGN.md is not beside the repository")
def test_design_example_is_designs_section_one() -> None:
    block = re.search(r"```yaml\n(.*?)```", DESIGN.read_text(encoding="utf-8"), re.S)
    assert block is not None
    assert block.group(1) == DESIGN_EXAMPLE


# The shipped contract is the design's, with the repository its GitHub grant is
# scoped to: a grant without `repositories` reaches every repository the App is
# installed on, which the no-repositories lint reports (an error under --strict).
DESIGN_GITHUB_GRANT = """\
  github:
    - repo:read
    - pull_request:comment
"""
SHIPPED_GITHUB_GRANT = """\
  github:
    repositories: [acme/api]    # without it, every repository the App is installed on
    scopes:
      - repo:read
      - pull_request:comment
"""


def test_shipped_example_is_the_designs_scoped_to_its_repository() -> None:
    shipped = (CONTRACTS / "pr-review-agent.yaml").read_text(encoding="utf-8")
    schema_line, rest = shipped.split("\n", 1)
    assert schema_line == f"# yaml-language-server: $schema={SCHEMA_ID}"
    assert DESIGN_GITHUB_GRANT in DESIGN_EXAMPLE
    assert rest == DESIGN_EXAMPLE.replace(DESIGN_GITHUB_GRANT, SHIPPED_GITHUB_GRANT)


def test_shipped_contracts_are_valid_without_warnings() -> None:
    report = load_contracts([CONTRACTS], today=TODAY, strict=True)
    assert report.ok, report.problems
    assert not report.warnings
    assert {c.name for c in report.contracts} == {
        "pr-review-agent",
        "security-triage-agent",
        "release-agent",
    }
    modes = {c.name: c.execution_mode for c in report.contracts}
    assert modes["security-triage-agent"] is ExecutionMode.AUTONOMOUS
    assert modes["release-agent"] is ExecutionMode.APPROVAL_REQUIRED
    # Only pr-review-agent's jira grant is noted: its projects come from agentctl.yaml.
    assert [(Path(p.file).name, p.code) for p in report.notes] == [
        ("pr-review-agent.yaml", "no-projects")
    ]


# ---------------------------------------------------------------- report shape


def test_strict_turns_warnings_into_errors_but_not_notes() -> None:
    text = DESIGN_EXAMPLE.replace(
        "    - pull_request:comment\n", "    - pull_request:comment\n    - administration:write\n"
    )
    relaxed = load(text)
    codes = ["all-repositories", "privileged-scope"]
    assert relaxed.ok and sorted(p.code for p in relaxed.warnings) == codes
    assert len(relaxed.contracts) == 1
    strict = load(text, strict=True)
    assert not strict.ok and sorted(p.code for p in strict.errors) == codes
    assert [p.code for p in strict.notes] == ["no-projects"]
    assert strict.contracts == ()


def test_problem_carries_file_line_column_path_and_dict_form() -> None:
    report = load(DESIGN_EXAMPLE.replace("    - pull_request:comment", "    - pull_request:coment"))
    (problem,) = report.errors
    assert json_data(problem) == {
        "file": "contract.yaml",
        "line": 9,
        "column": 7,
        "path": "permissions.github[1]",
        "severity": "error",
        "code": "unknown-scope",
        "message": problem.message,
    }
    assert "did you mean 'pull_request:comment'" in problem.message


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ((), ""),
        (("agent", "name"), "agent.name"),
        (("permissions", "github", 1), "permissions.github[1]"),
        (("permissions", "aws", 0, "actions", 2), "permissions.aws[0].actions[2]"),
        (("permissions", "we.ird key"), 'permissions["we.ird key"]'),
    ],
)
def test_format_path(path: tuple[str | int, ...], dotted: str) -> None:
    assert format_path(path) == dotted


def test_unknown_key_did_you_mean_and_position() -> None:
    report = load(DESIGN_EXAMPLE.replace("  owner:", "  ownr:"))
    (problem,) = report.errors  # the missing 'owner' is explained by the typo, not repeated
    assert (problem.code, problem.line, problem.column, problem.path) == (
        "unknown-key",
        3,
        3,
        "agent.ownr",
    )
    assert "did you mean 'owner'?" in problem.message


def test_misplaced_key_says_where_it_belongs() -> None:
    report = load(
        "agent:\n  name: pr-review-agent\n  owner: a@company.com\n  purpose: p\n"
        "  expiry: 2027-03-01\npermissions: {}\nexecution_mode: autonomous\n"
        "kill_switch: /agents/pr-review-agent/disable\n"
    )
    (problem,) = report.errors
    assert (problem.code, problem.line, problem.path) == ("misplaced-key", 5, "agent.expiry")
    assert "belongs at the top level" in problem.message


def test_missing_key_points_at_the_mapping_that_lacks_it() -> None:
    report = load(DESIGN_EXAMPLE.replace("  owner: platform-team@company.com\n", ""))
    (problem,) = report.errors
    assert (problem.code, problem.line, problem.column, problem.path) == (
        "missing-key",
        1,
        1,
        "agent.owner",
    )


def test_duplicate_key_names_first_occurrence() -> None:
    report = load(DESIGN_EXAMPLE + "expiry: 2027-04-01\n")
    (problem,) = report.errors
    assert (problem.code, problem.line) == ("duplicate-key", 17)
    assert "first on line 15" in problem.message


# ----------------------------------------------------------------- semantics


@pytest.mark.parametrize(
    ("expiry", "code"),
    [
        (TODAY - timedelta(days=1), "expired"),
        (TODAY, "expired"),  # the grant ends *on* the expiry date
        (TODAY + timedelta(days=1), None),
        (TODAY + timedelta(days=365), None),
        (TODAY + timedelta(days=366), "lifetime-too-long"),
    ],
)
def test_expiry_window(expiry: date, code: str | None) -> None:
    report = load(DESIGN_EXAMPLE.replace("2027-03-01", expiry.isoformat()))
    assert [p.code for p in report.errors] == ([code] if code else [])


def test_max_lifetime_is_configurable() -> None:
    report = load(DESIGN_EXAMPLE, max_lifetime_days=30)
    assert [p.code for p in report.errors] == ["lifetime-too-long"]
    assert "30 days" in report.errors[0].message


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("a" * NAME_MAX_LENGTH, None),
        ("a" * (NAME_MAX_LENGTH + 1), "name-too-long"),
        ("ab", None),
        ("a", "invalid-name"),
        ("a1-b2", None),
        ("trailing-", "invalid-name"),
        ("double--hyphen", "invalid-name"),
        ("UPPER", "invalid-name"),
        ("dot.name", "invalid-name"),
        ("agentctl", "reserved-name"),
    ],
)
def test_name_rules(name: str, code: str | None) -> None:
    text = DESIGN_EXAMPLE.replace("pr-review-agent", name)
    report = load(text)
    assert [p.code for p in report.errors] == ([code] if code else [])


def test_name_too_long_says_which_provider_limits_it() -> None:
    name = "a" * (NAME_MAX_LENGTH + 1)
    (problem,) = load(DESIGN_EXAMPLE.replace("pr-review-agent", name)).errors
    assert "GitHub App" in problem.message and str(NAME_MAX_LENGTH) in problem.message


def test_invalid_name_suggests_a_valid_one() -> None:
    (problem,) = load(
        DESIGN_EXAMPLE.replace("name: pr-review-agent", "name: PR_Review_Agent")
    ).errors
    assert "'pr-review-agent'" in problem.message


@pytest.mark.parametrize(
    "owner", ["platform-team", "a@b", "@company.com", "a b@company.com", "amit@company.com\n"]
)
def test_owner_must_be_an_email(owner: str) -> None:
    report = load(DESIGN_EXAMPLE.replace("platform-team@company.com", json.dumps(owner)))
    assert [p.code for p in report.errors] == ["invalid-owner"]


def test_kill_switch_suggests_the_right_value() -> None:
    (problem,) = load(
        DESIGN_EXAMPLE.replace("/agents/pr-review-agent/disable", "/agents/other/disable")
    ).errors
    assert problem.code == "kill-switch-mismatch"
    assert "'/agents/pr-review-agent/disable'" in problem.message


@pytest.mark.parametrize(
    ("expiry", "hint"),
    [
        ("2027-02-30", "February 2027 has 28 days"),
        ("2027-3-1", "2027-03-01"),
        ("next year", "YYYY-MM-DD"),
        ("2027-03-01 10:00:00", "just the date"),
        ("'2027-03-01'", None),  # a quoted ISO date is the same date
    ],
)
def test_dates_are_strict(expiry: str, hint: str | None) -> None:
    report = load(DESIGN_EXAMPLE.replace("2027-03-01", expiry))
    if hint is None:
        assert report.ok
        return
    (problem,) = report.errors
    assert problem.code == "invalid-date" and hint in problem.message


def test_duplicate_names_across_files_name_the_other_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(DESIGN_EXAMPLE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(DESIGN_EXAMPLE, encoding="utf-8")
    report = load_contracts([tmp_path], today=TODAY)
    problems = [p for p in report.errors if p.code == "duplicate-name"]
    assert len(problems) == 2 and report.contracts == ()
    first = next(p for p in problems if p.file.endswith("a.yaml"))
    assert f"{tmp_path / 'b.yaml'}:2" in first.message


# ---------------------------------------------------------------- providers


def test_custom_providers_are_asked_and_located() -> None:
    seen: list[Any] = []

    def check_jira(grant: Any) -> list[GrantFinding]:
        seen.append(grant)
        return [GrantFinding((1,), Severity.ERROR, "unknown-scope", "no such Jira scope")]

    providers = scopes_provider("jira", check_jira)
    report = load(DESIGN_EXAMPLE, providers=providers)
    assert seen == [["issue:read", "issue:transition"]]
    # github now has no provider: recorded, not enforced.
    assert {(p.code, p.path, p.line) for p in report.problems} == {
        ("unknown-scope", "permissions.jira[1]", 12),
        ("not-enforced", "permissions.github", 7),
    }


def test_a_failing_provider_is_a_problem_not_a_traceback() -> None:
    def explode(grant: Any) -> list[GrantFinding]:
        raise RuntimeError("provider bug")

    report = load(DESIGN_EXAMPLE, providers=scopes_provider("github", explode))
    assert [p.code for p in report.errors] == ["provider-check-failed"]


def test_provider_is_not_asked_about_a_malformed_grant() -> None:
    def never(grant: Any) -> list[GrantFinding]:
        raise AssertionError("called with a malformed grant")

    text = DESIGN_EXAMPLE.replace("    - repo:read\n", "    - {repo: read}\n")
    report = load(text, providers=scopes_provider("github", never))
    assert [p.code for p in report.errors] == ["wrong-type"]


# ---------------------------------------------------------------- input forms


def test_bytes_bom_and_crlf_are_fine() -> None:
    data = ("\ufeff" + DESIGN_EXAMPLE).replace("\n", "\r\n").encode("utf-8")
    report = load_contract_text(data, "windows.yaml", today=TODAY)
    assert report.ok and len(report.contracts) == 1


def test_discovery_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "team" / "deep").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "x.yaml").mkdir()  # a directory with a contract-like name is searched, not read
    for path, name in [
        (tmp_path / "team" / "deep" / "b.yml", "b-agent"),
        (tmp_path / "team" / "a.yaml", "a-agent"),
        (tmp_path / ".git" / "hidden.yaml", "hidden-agent"),
        (tmp_path / "x.yaml" / "c.YAML", "c-agent"),
    ]:
        path.write_text(DESIGN_EXAMPLE.replace("pr-review-agent", name), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a contract", encoding="utf-8")
    report = load_contracts([tmp_path], today=TODAY)
    assert report.ok
    assert [Path(f).relative_to(tmp_path).as_posix() for f in report.files] == [
        "team/a.yaml",
        "team/deep/b.yml",
        "x.yaml/c.YAML",
    ]
    # A file named explicitly is read whatever its extension; a repeat is read once.
    explicit = load_contracts(
        [tmp_path / "notes.txt", tmp_path / "team" / "a.yaml", tmp_path / "team" / "a.yaml"],
        today=TODAY,
    )
    assert [p.code for p in explicit.errors] == ["wrong-type"]
    assert len(explicit.files) == 2


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = load_contracts([tmp_path / "empty", tmp_path / "nope.yaml"], today=TODAY)
    assert [(Path(p.file).name, p.code, p.line) for p in report.errors] == [
        ("empty", "no-contracts", 0),
        ("nope.yaml", "not-found", 0),
    ]


# --------------------------------------------------------------------- schema


def _walk(schema: Any, where: str = "#") -> list[str]:
    """Every property and $defs entry that lacks a description."""
    missing = []
    if isinstance(schema, dict):
        for group in ("properties", "$defs"):
            for key, sub in schema.get(group, {}).items():
                if "description" not in sub:
                    missing.append(f"{where}/{group}/{key}")
        for key, sub in schema.items():
            missing += _walk(sub, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, sub in enumerate(schema):
            missing += _walk(sub, f"{where}/{index}")
    return missing


def test_schema_is_valid_draft_2020_12_with_descriptions() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["title"] and schema["description"]
    assert _walk(schema) == []


def test_schema_file_is_the_one_loaded() -> None:
    on_disk = json.loads(
        (ROOT / "schemas" / "agent-contract.schema.json").read_text(encoding="utf-8")
    )
    assert load_schema() == on_disk
    assert contract_validator() is contract_validator()  # compiled once


def test_schema_alone_accepts_the_example_as_editors_see_it() -> None:
    # What a YAML language server validates: the document with the date as text.
    document = {
        "agent": {
            "name": "pr-review-agent",
            "owner": "platform-team@company.com",
            "purpose": "Review",
        },
        "permissions": {
            "github": {"repositories": ["acme/api"], "scopes": ["repo:read"]},
            "jira": ["issue:read"],
        },
        "execution_mode": "autonomous",
        "expiry": "2027-03-01",
        "kill_switch": "/agents/pr-review-agent/disable",
    }
    assert list(jsonschema.Draft202012Validator(load_schema()).iter_errors(document)) == []


def test_a_contracts_digest_is_of_its_document_also_after_replace() -> None:
    """The digest is computed once per contract: a contract made from another
    (dataclasses.replace) has the digest of its own document, never the
    first one's."""
    import dataclasses
    import hashlib

    from agentctl.model import Contract, canonical_json

    def of(contract: Contract) -> str:
        return hashlib.sha256(canonical_json(contract.document()).encode()).hexdigest()

    first = Contract(
        name="agent-a",
        owner="a@company.com",
        purpose="p",
        execution_mode=ExecutionMode.AUTONOMOUS,
        expiry=date(2027, 1, 1),
        kill_switch="/agents/agent-a/disable",
        permissions={"aws": [{"sid": "S", "actions": ["s3:GetObject"], "resources": ["*"]}]},
    )
    assert first.digest == of(first)
    second = dataclasses.replace(first, expiry=date(2027, 2, 1))
    assert second.digest == of(second) != first.digest
    assert first.digest == of(first)
    assert dataclasses.replace(second, expiry=date(2027, 1, 1)) == first  # not a field
