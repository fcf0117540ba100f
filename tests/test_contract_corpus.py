"""The invalid and hostile contract corpora: each file is rejected with the
exact problem code on the exact line its header promises, quickly, and
nothing in it could be provisioned.

A corpus file starts with ``# expect: code@line [code@line ...]`` (line 0: a
problem with the whole file) and optionally ``# options: strict``. Files that
cannot carry a comment (empty, binary, other encodings) are listed in
:data:`SIDECAR`. The trailing ``# <- code`` comments in the files mark the
promised lines for readers. More hostile inputs that are too big or too odd to
keep as files are generated in :func:`generated_hostile`.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agentctl.contract import (
    MAX_FILE_BYTES,
    MAX_PROBLEMS_PER_FILE,
    ValidationReport,
    load_contract_text,
    load_contracts,
)
from agentctl.model import Severity

CORPUS = Path(__file__).parent / "corpus"
TODAY = date(2026, 11, 28)

SIDECAR: dict[str, list[tuple[str, int]]] = {
    "empty.yaml": [("empty", 0)],
    "binary.yaml": [("not-text", 0)],
    "latin1.yaml": [("not-text", 0)],
    "utf16.yaml": [("not-text", 0)],
}

VALID = """\
agent:
  name: hostile-agent
  owner: platform-team@company.com
  purpose: Stress the loader
permissions:
  github: [repo:read]
execution_mode: autonomous
expiry: 2027-03-01
kill_switch: /agents/hostile-agent/disable
"""


def expectations(path: Path) -> tuple[list[tuple[str, int]], bool]:
    if path.name in SIDECAR:
        return SIDECAR[path.name], False
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# expect: "), f"{path.name}: no '# expect:' header"
    expected = []
    for item in lines[0].removeprefix("# expect: ").split():
        code, _, line = item.partition("@")
        expected.append((code, int(line)))
    return expected, len(lines) > 1 and lines[1] == "# options: strict"


def corpus(folder: str) -> list[Path]:
    return sorted((CORPUS / folder).iterdir())


def describe(report: ValidationReport) -> str:
    return "\n".join(
        f"{p.line}:{p.column} {p.severity} {p.code} {p.message}" for p in report.problems
    )


def check_rejected(report: ValidationReport, expected: list[tuple[str, int]]) -> None:
    assert not report.ok
    assert report.contracts == (), "an invalid contract must never be loaded"
    found = {(p.code, p.line) for p in report.errors}
    for code, line in expected:
        assert (code, line) in found, (
            f"expected error {code} on line {line}; got:\n{describe(report)}"
        )
    for problem in report.problems:
        assert problem.message and problem.code
        assert problem.line >= 0 and problem.column >= 0


def test_corpus_sizes() -> None:
    assert len(corpus("invalid")) >= 40
    assert len(corpus("hostile")) + len(generated_hostile()) >= 60


@pytest.mark.parametrize("path", corpus("invalid"), ids=lambda p: p.stem)
def test_invalid_contract(path: Path) -> None:
    expected, strict = expectations(path)
    report = load_contracts([path], today=TODAY, strict=strict)
    check_rejected(report, expected)
    assert all(p.file == str(path) for p in report.problems)


@pytest.mark.parametrize("path", corpus("hostile"), ids=lambda p: p.stem)
def test_hostile_contract(path: Path) -> None:
    expected, strict = expectations(path)
    report = load_contracts([path], today=TODAY, strict=strict)
    check_rejected(report, expected)
    assert report.expired == (), "nothing from the hostile corpus may reach apply"


def test_strict_cases_are_only_warnings_without_strict() -> None:
    """The ``# options: strict`` files are lint findings: warnings by default."""
    for path in corpus("invalid") + corpus("hostile"):
        expected, strict = expectations(path)
        if not strict:
            continue
        report = load_contracts([path], today=TODAY)
        assert report.ok, f"{path.name}: {describe(report)}"
        assert {(p.code, p.line) for p in report.warnings} >= set(expected)


def _flow_list(items: int, item: str) -> str:
    return "[" + ", ".join([item] * items) + "]"


def generated_hostile() -> dict[str, tuple[bytes, str, int | None]]:
    """name -> (file content, expected code, expected line or None)."""
    big_name = "a" * 200_000
    distinct_mappings = "[" + ", ".join(f"{{k: {i}}}" for i in range(3_000)) + "]"
    return {
        "file-over-size-limit": (VALID.encode() + b"#" * (MAX_FILE_BYTES + 1), "file-too-large", 0),
        "huge-name": (
            VALID.replace("hostile-agent\n", big_name + "\n", 1).encode(),
            "name-too-long",
            2,
        ),
        "huge-purpose": (
            VALID.replace("Stress the loader", "x" * 250_000).encode(),
            "invalid-value",
            4,
        ),
        # YAML limits implicit keys to 1024 characters: a syntax error, not a slow did-you-mean.
        "huge-key": (("k" * 200_000 + ": 1\n" + VALID).encode(), "yaml-syntax", 1),
        "long-key": (("k" * 1_000 + ": 1\n" + VALID).encode(), "unknown-key", 1),
        "deep-flow-nesting-10k": (
            ("agent: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
            "too-deep",
            None,
        ),
        "deep-block-sequences": (("- " * 5_000 + "x\n").encode(), "too-deep", None),
        "deep-flow-mappings": (
            ("a: " + "{b: " * 900 + "1" + "}" * 900 + "\n").encode(),
            "too-deep",
            None,
        ),
        "too-many-nodes": (
            VALID.replace(
                "permissions:\n", f"permissions:\n  jira: {_flow_list(30_000, 'x')}\n"
            ).encode(),
            "too-many-nodes",
            None,
        ),
        # jsonschema's uniqueItems is quadratic on unhashable items; the schema
        # does not use it, so thousands of distinct mappings stay cheap.
        "many-distinct-mappings": (
            VALID.replace(
                "permissions:\n", f"permissions:\n  jira: {distinct_mappings}\n"
            ).encode(),
            "wrong-type",
            6,
        ),
        "many-unknown-keys": (
            ("".join(f"key{i}: {i}\n" for i in range(5_000)) + VALID).encode(),
            "unknown-key",
            1,
        ),
        "many-aliases-fanout": (
            ("x: &x [a, b]\n" + "".join(f"y{i}: [*x, *x, *x]\n" for i in range(2_000))).encode(),
            "yaml-alias-not-allowed",
            2,
        ),
        "many-scopes": (
            VALID.replace(
                "[repo:read]", "[" + ", ".join(f"s{i}:read" for i in range(5_000)) + "]"
            ).encode(),
            "invalid-value",
            6,
        ),
        "nul-bytes": (VALID.encode().replace(b"hostile", b"host\x00ile", 1), "not-text", 0),
        "invalid-utf8": (VALID.encode().replace(b"Stress", b"Str\xc3\x28ss"), "not-text", 0),
        "utf16-bom": (VALID.encode("utf-16"), "not-text", 0),
        "only-whitespace": (b"   \n\n\t\n", "empty", 0),
        "only-document-marker": (b"---\n...\n", "empty", 0),
        "null-document": (b"~\n", "wrong-type", 1),
        "scalar-document": (b"just a string\n", "wrong-type", 1),
    }


@pytest.mark.parametrize("name", list(generated_hostile()))
def test_generated_hostile(name: str) -> None:
    data, code, line = generated_hostile()[name]
    report = load_contract_text(data, f"{name}.yaml", today=TODAY)
    assert not report.ok and report.contracts == () and report.expired == ()
    matching = [p for p in report.errors if p.code == code]
    assert matching, describe(report)
    if line is not None:
        assert line in {p.line for p in matching}, describe(report)
    assert len(report.problems) <= MAX_PROBLEMS_PER_FILE + 2


def test_problem_flood_is_capped() -> None:
    report = load_contract_text(
        generated_hostile()["many-unknown-keys"][0], "flood.yaml", today=TODAY
    )
    assert report.problems[-1].code == "too-many-problems"
    assert report.problems[-1].severity is Severity.INFO


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Pr-Review-Agent", "pr-review-agent"),
        ("pr-review-agent", "pr-review-agent"),
        ("pr_review_agent", "pr-review-agent"),
        ("ｐｒ-review-agent", "pr-review-agent"),  # fullwidth letters fold to ASCII under NFKC
    ],
)
def test_names_colliding_after_normalisation(tmp_path: Path, first: str, second: str) -> None:
    (tmp_path / "a.yaml").write_text(
        VALID.replace("name: hostile-agent", f"name: {first}"), encoding="utf-8"
    )
    (tmp_path / "b.yaml").write_text(VALID.replace("hostile-agent", second), encoding="utf-8")
    report = load_contracts([tmp_path], today=TODAY)
    duplicates = [p for p in report.errors if p.code == "duplicate-name"]
    assert {p.file for p in duplicates} == {str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")}
    assert all(p.line == 2 for p in duplicates)
    assert report.contracts == ()


def test_special_files_never_block_or_crash(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    os.mkfifo(folder / "fifo.yaml")  # opening it for reading would wait for a writer
    (folder / "zero.yaml").symlink_to("/dev/zero")  # endless, and outside the folder
    (folder / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")  # outside, dangling
    (folder / "dangling.yaml").symlink_to(folder / "nowhere.yaml")  # inside, dangling
    (folder / "loop").symlink_to(folder)  # a directory cycle
    # A block would hang here until pytest-timeout fails the test; nothing is timed.
    report = load_contracts([folder], today=TODAY)
    codes = {Path(p.file).name: p.code for p in report.problems}
    assert codes == {
        "dangling.yaml": "unreadable",
        "fifo.yaml": "unreadable",
        "gone.yaml": "outside-folder",
        "zero.yaml": "outside-folder",
    }


def test_the_inlined_validator_says_what_the_schema_with_references_says() -> None:
    """agentctl validates with $defs references inlined (faster); every corpus
    document gets the same errors (where, which keyword, what message) as from
    the contract schema as written, references and all."""
    import jsonschema
    import yaml

    from agentctl.contract import contract_validator
    from agentctl.providers.registry import provider_specs
    from agentctl.schema import contract_schema
    from agentctl.yamldoc import Abort, Builder, compose

    inlined = contract_validator()
    as_written = jsonschema.Draft202012Validator(contract_schema(provider_specs()))
    assert inlined.schema != as_written.schema  # the references are gone from one

    def errors(validator: Any, document: Any) -> list[tuple[str, str, str]]:
        return sorted(
            (e.json_path, str(e.validator), e.message) for e in validator.iter_errors(document)
        )

    compared = 0
    for path in [*corpus("invalid"), *corpus("hostile")]:
        # As the loader builds documents (aliases, depth and size refused).
        try:
            root = compose(path.read_bytes().decode("utf-8"))
            document = None if root is None else Builder().build(root)
        except (yaml.YAMLError, RecursionError, UnicodeDecodeError, Abort):
            continue
        if document is None:
            continue
        assert errors(inlined, document) == errors(as_written, document), path.name
        compared += 1
    assert compared >= 40
