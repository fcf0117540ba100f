"""agentctl where platform teams already work: pre-commit, a GitHub Action, a
container, and schemas for editors with no network.

The pre-commit hook is run by pre-commit itself (``try-repo`` installs this
checkout into pre-commit's own environment, as a user's ``rev:`` would); the
Action's validate step is the script GitHub would run, executed here with the
variables GitHub sets; the Dockerfile cannot be built without a Docker daemon,
so its test checks what a build would depend on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aws_helpers import REGION, MotoServer, create_boundary
from contract_helpers import s3_read, write_contract

from agentctl.cli.app import run
from agentctl.schema import generated

REPO = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@company.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.mark.slow
# pre-commit installs this checkout and its dependencies from the package index
# (twice 600 s at most, below): the hang guard is wider than pytest's 300 s.
@pytest.mark.timeout(1260)
def test_pre_commit_hook_passes_good_contracts_and_stops_bad_ones(tmp_path: Path) -> None:
    pre_commit = Path(sys.executable).parent / "pre-commit"
    project = tmp_path / "project"
    good = write_contract(project / "contracts", "good-agent")
    bad = project / "contracts" / "bad-agent.yaml"
    bad.write_text(good.read_text("utf-8").replace("name: good-agent", "name: Bad_Agent"), "utf-8")
    git(project, "init", "-q")
    git(project, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    env.pop("AGENTCTL_CONFIG", None)

    def hook(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pre_commit), "try-repo", str(REPO), "agentctl-validate", "--files"]
            + [str(f.relative_to(project)) for f in files],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    passed = hook(good)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "agentctl validate" in passed.stdout and "Passed" in passed.stdout
    failed = hook(good, bad)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "bad-agent.yaml" in failed.stdout and "Failed" in failed.stdout


def action_step(name: str) -> dict[str, object]:
    action = yaml.safe_load((REPO / "action.yml").read_text("utf-8"))
    assert action["runs"]["using"] == "composite"
    (step,) = [s for s in action["runs"]["steps"] if s.get("name") == name]
    return step


@pytest.mark.parametrize(
    ("agent_name", "expected_exit"), [("good-agent", 0), ("Bad_Agent", 1)], ids=["good", "bad"]
)
def test_action_validate_step_gates_the_pull_request_and_writes_the_summary(
    tmp_path: Path, agent_name: str, expected_exit: int
) -> None:
    contracts = tmp_path / "contracts"
    path = write_contract(contracts, "good-agent")
    path.write_text(path.read_text("utf-8").replace("good-agent", agent_name), "utf-8")
    step = action_step("agentctl validate")
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        # what GitHub sets, and the step's own `env:` with the inputs' defaults
        "GITHUB_STEP_SUMMARY": str(summary),
        "CONTRACTS": "contracts/",
        "STRICT": "true",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("AGENTCTL_CONFIG", None)
    done = subprocess.run(
        ["bash", "-e", "-c", str(step["run"])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == expected_exit, done.stdout + done.stderr
    text = summary.read_text("utf-8")
    assert text.startswith("### agentctl validate")
    if expected_exit:
        assert "name" in text and "good-agent.yaml" in text


def test_action_plan_step_reports_changes_as_an_output(aws: MotoServer, tmp_path: Path) -> None:
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    write_contract(tmp_path / "contracts", "planned-agent", aws=s3_read("bucket-a"))
    (tmp_path / "agentctl.yaml").write_text(
        yaml.safe_dump(
            {
                "aws": {
                    "endpoint_url": aws.url,
                    "region": REGION,
                    "runtime_principal": "arn:aws:iam::123456789012:user/runtime",
                    "permissions_boundary": boundary,
                },
                "state": str(tmp_path / "state.db"),
                "journal": str(tmp_path / "journal.jsonl"),
            }
        ),
        "utf-8",
    )
    outputs, summary = tmp_path / "outputs", tmp_path / "summary.md"
    env = {
        **os.environ,
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "CONTRACTS": "contracts/",
        "AGENTCTL_CONFIG": "agentctl.yaml",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    script = str(action_step("agentctl plan")["run"])
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs.read_text("utf-8") == "changes=true\n"
    assert "planned-agent" in summary.read_text("utf-8")


def test_dockerfile_runs_as_non_root_and_copies_what_the_wheel_needs() -> None:
    text = (REPO / "Dockerfile").read_text("utf-8")
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    copied = {
        line.split()[1].rstrip("/")
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    import tomllib

    wheel = tomllib.loads(pyproject)["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = set(wheel["packages"]) | {
        source.split("/")[0] for source in wheel.get("force-include", {})
    }
    assert needed <= copied, f"the image build misses {needed - copied}"
    assert 'ENTRYPOINT ["agentctl"]' in text


def test_schema_print_and_write_give_the_generated_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = generated()
    assert run(["schema", "--print"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(files["agent-contract.schema.json"])
    assert run(["schema", "--config"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(files["agentctl-config.schema.json"])
    assert run(["schema", "--write", str(tmp_path / "editor")]) == 0
    for name, text in files.items():
        assert (tmp_path / "editor" / name).read_text("utf-8") == text


def test_version_names_the_contract_schema_version(capsys: pytest.CaptureFixture[str]) -> None:
    from agentctl import __version__
    from agentctl.schema import SCHEMA_VERSION

    assert run(["--version"]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"agentctl {__version__} (contract schema {SCHEMA_VERSION})"
    )


def test_the_readmes_offline_editor_set_up_validates_the_contracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: `agentctl schema --write .agentctl/`, then point each contract's
    first line at `../.agentctl/agent-contract.schema.json`. That path, resolved
    from the contract as yaml-language-server resolves it, is a schema that
    accepts the shipped contracts and rejects a broken one, with no network
    (no $ref leaves the file)."""
    import jsonschema

    monkeypatch.chdir(tmp_path)
    assert run(["schema", "--write", ".agentctl/"]) == 0
    readme = (REPO / "README.md").read_text("utf-8")
    line = "# yaml-language-server: $schema=../.agentctl/agent-contract.schema.json"
    assert line.partition(": ")[2] in readme
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    for shipped in sorted((REPO / "contracts").glob("*.yaml")):
        body = shipped.read_text("utf-8").splitlines()[1:]  # its own first line replaced
        (contracts / shipped.name).write_text("\n".join([line, *body]) + "\n", "utf-8")
    for contract in sorted(contracts.glob("*.yaml")):
        reference = contract.read_text("utf-8").splitlines()[0].partition("$schema=")[2]
        schema_path = (contract.parent / reference).resolve()
        schema_text = schema_path.read_text("utf-8")
        assert '"$ref": "http' not in schema_text  # usable offline
        schema = json.loads(schema_text)
        document = yaml.safe_load(contract.read_text("utf-8"))
        document["expiry"] = str(document["expiry"])  # an editor sees YAML text, not a date
        jsonschema.Draft202012Validator(schema).validate(document)
        broken = {**document, "execution_mode": "whenever"}
        assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert run(["validate", str(contracts)]) == 0  # agentctl agrees: the first line is a comment
