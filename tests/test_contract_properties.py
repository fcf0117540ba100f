"""Property tests: whatever bytes or YAML reach the loader, it answers with
contracts or problems — never an exception — and its answer is consistent."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentctl.contract import ValidationReport, load_contract_text
from agentctl.model import Severity

TODAY = date(2026, 11, 28)
BUDGET = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = """\
agent:
  name: pr-review-agent
  owner: platform-team@company.com
  purpose: Review pull requests for security and code quality

permissions:
  github:
    - repo:read
    - pull_request:comment
  aws:
    - actions: [s3:GetObject]
      resources: ["arn:aws:s3:::bucket/*"]
  jira:
    - issue:read

execution_mode: autonomous
expiry: 2027-03-01
kill_switch: /agents/pr-review-agent/disable
"""
KEYS = [
    "agent",
    "name",
    "owner",
    "purpose",
    "permissions",
    "github",
    "aws",
    "jira",
    "repositories",
    "scopes",
    "actions",
    "resources",
    "sid",
    "execution_mode",
    "expiry",
    "kill_switch",
    "<<",
    "on",
    "",
]
SCALARS = [
    "pr-review-agent",
    "repo:read",
    "s3:*",
    "*",
    "iam:PassRole",
    "2027-03-01",
    "2026-07-01",
    "2027-02-30",
    "autonomous",
    "/agents/pr-review-agent/disable",
    "a@company.com",
    "acme/api",
    "arn:aws:iam::*:role/*",
]


def check(report: ValidationReport) -> None:
    """What every answer must satisfy."""
    assert isinstance(report, ValidationReport)
    assert report.ok == (not report.errors)
    assert len(report.contracts) <= 1
    if report.ok:
        assert len(report.contracts) == 1 or report.expired == ()
    for problem in report.problems:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", problem.code)
        assert problem.severity in set(Severity)
        assert problem.line >= 0 and problem.column >= 0
        assert problem.message
    for contract in report.contracts:
        assert contract.expiry > TODAY


def load(data: bytes | str) -> ValidationReport:
    report = load_contract_text(data, "fuzz.yaml", today=TODAY)
    check(report)
    return report


@BUDGET
@given(st.binary(max_size=4096))
def test_any_bytes(data: bytes) -> None:
    load(data)


@BUDGET
@given(st.text(max_size=2048))
def test_any_text(text: str) -> None:
    load(text)


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(SCALARS)
    | st.dates().map(lambda d: d),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=6)
    ),
    max_leaves=40,
)


@BUDGET
@given(json_like, st.booleans())
def test_any_yaml_document(value: Any, flow: bool) -> None:
    load(yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True))


def _set_in(document: Any, path: list[Any], value: Any) -> Any:
    """A copy of ``document`` with the node at ``path`` (as far as it exists) replaced."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    if isinstance(document, dict):
        key = list(document)[path[0] % len(document)]
        return {**document, key: _set_in(document[key], path[1:], value)}
    index = path[0] % len(document)
    return [*document[:index], _set_in(document[index], path[1:], value), *document[index + 1 :]]


@BUDGET
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=5), json_like)
def test_mutated_valid_document(path: list[int], value: Any) -> None:
    document = yaml.safe_load(VALID)
    load(yaml.safe_dump(_set_in(document, path, value), sort_keys=False, allow_unicode=True))


@BUDGET
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "duplicate-line", "swap-lines", "indent"]),
            st.integers(min_value=0, max_value=len(VALID)),
            st.text(alphabet=st.sampled_from([*":-[]{}&*!|>'\"#\t\n %@`,?", "a", "1"]), max_size=5),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_valid_text(edits: list[tuple[str, int, str]]) -> None:
    text = VALID
    for kind, at, chars in edits:
        lines = text.split("\n")
        row = at % len(lines)
        if kind == "delete":
            text = text[:at] + text[at + len(chars) + 1 :]
        elif kind == "insert":
            text = text[:at] + chars + text[at:]
        elif kind == "duplicate-line":
            text = "\n".join(lines[: row + 1] + lines[row:])
        elif kind == "swap-lines":
            other = (row + 1) % len(lines)
            lines[row], lines[other] = lines[other], lines[row]
            text = "\n".join(lines)
        else:
            lines[row] = "  " + lines[row]
            text = "\n".join(lines)
    load(text)


def test_the_unmutated_documents_are_valid() -> None:
    assert load(VALID).ok
    assert load(yaml.safe_dump(yaml.safe_load(VALID), sort_keys=False)).ok
