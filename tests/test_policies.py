"""`agentctl policy operator|runtime|boundary` and the templates in policies/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentctl.cli.app import run
from agentctl.providers.aws.access import DOCUMENTS, generate, template_values
from agentctl.providers.aws.settings import AwsSettings

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "arn:aws-us-gov:iam::210987654321:policy/limits/agentctl-boundary"


def test_the_templates_are_the_generated_documents_with_placeholders() -> None:
    for kind, build in DOCUMENTS.items():
        shipped = json.loads((ROOT / "policies" / f"{kind}-policy.json").read_text("utf-8"))
        assert shipped == build(template_values()), (
            f"policies/{kind}-policy.json is out of step: run python scripts/gen_policies.py"
        )
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_policies.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("kind", ["operator", "runtime"])
def test_filled_in_documents_are_the_templates_with_this_configuration(kind: str) -> None:
    """Same statements as the template, every placeholder replaced: partition,
    account and boundary from the configured boundary's ARN."""
    settings = AwsSettings(permissions_boundary=BOUNDARY)
    filled = generate(kind, settings, secrets_prefix="agentctl/")
    template = (ROOT / "policies" / f"{kind}-policy.json").read_text("utf-8")
    expected = (
        template.replace(
            "arn:<PARTITION>:iam::<ACCOUNT_ID>:policy/<BOUNDARY_POLICY_NAME>", BOUNDARY
        )
        .replace("<PARTITION>", "aws-us-gov")
        .replace("<ACCOUNT_ID>", "210987654321")
    )
    assert filled == json.loads(expected)
    assert "<" not in json.dumps(filled)


def test_role_path_prefix_and_account_follow_the_settings() -> None:
    settings = AwsSettings(
        permissions_boundary=BOUNDARY,
        role_path="/ai/agents/",
        role_prefix="bot-",
        account_id="111122223333",
    )
    runtime = generate("runtime", settings)
    (statement,) = runtime["Statement"]
    assert statement["Resource"] == "arn:aws-us-gov:iam::111122223333:role/ai/agents/bot-*"
    assert statement["Action"] == ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]
    operator = generate("operator", settings)
    text = json.dumps(operator)
    assert "role/agentctl/" not in text and "agentctl-*" not in text
    # Secrets Manager statements only when that backend is in use.
    assert not any(s["Sid"].startswith("AgentctlSecrets") for s in operator["Statement"])
    with_secrets = generate("operator", settings, secrets_prefix="team/agentctl/")
    (read_write,) = [s for s in with_secrets["Statement"] if s["Sid"] == "AgentctlSecretsReadWrite"]
    assert read_write["Resource"] == (
        "arn:aws-us-gov:secretsmanager:*:111122223333:secret:team/agentctl/*"
    )


def cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str, aws: dict | None = None
) -> tuple[int, str, str]:  # type: ignore[type-arg]
    config = tmp_path / "agentctl.yaml"
    config.write_text(yaml.safe_dump({"aws": aws or {}, "state": str(tmp_path / "s.db")}), "utf-8")
    code = run(["--config", str(config), "policy", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_json_and_writes_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws = {"permissions_boundary": BOUNDARY, "runtime_principal": "arn:aws:iam::1:role/x"}
    code, out, _ = cli(tmp_path, capsys, "operator", aws=aws)
    assert code == 0
    assert json.loads(out) == generate("operator", AwsSettings(permissions_boundary=BOUNDARY))
    target = tmp_path / "runtime.json"
    code, out, err = cli(tmp_path, capsys, "runtime", "--output", str(target), aws=aws)
    assert code == 0 and out == ""
    assert json.loads(target.read_text("utf-8"))["Statement"][0]["Sid"] == "StartAgentSessions"
    assert "wrote the runtime policy" in err
    code, out, _ = cli(tmp_path, capsys, "operator", "--account", "444455556666", aws=aws)
    assert "444455556666" in out and "210987654321" not in out.replace(BOUNDARY, "")


def test_without_a_boundary_it_says_what_to_do_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(tmp_path, capsys, "operator")
    assert code != 0 and out == ""
    assert "aws.permissions_boundary is not configured" in err
    assert "agentctl policy boundary" in err and "Traceback" not in err
    # The boundary itself is step one: it needs nothing configured.
    code, out, _ = cli(tmp_path, capsys, "boundary")
    assert code == 0 and json.loads(out)["Statement"][0]["Sid"] == "AgentCeiling"
    code, out, err = cli(
        tmp_path, capsys, "runtime", aws={"permissions_boundary": "agentctl-boundary"}
    )
    assert code != 0 and "is not the ARN of a customer-managed policy" in err
