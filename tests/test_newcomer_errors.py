"""What a newcomer meets first says exactly what to do, never a traceback:
no config, no AWS credentials, no keyring backend, GitHub unreachable."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import yaml
from aws_helpers import MotoServer, create_person
from contract_helpers import NOW

from agentctl.cli import app


def run(argv: list[str]) -> int:
    return app.run(argv, clock=lambda: NOW)


CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh host: no agentctl.yaml, no AWS configuration, no keyring passphrase."""
    for name in list(__import__("os").environ):
        if name.startswith(("AWS_", "AGENTCTL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(CONTRACTS, tmp_path / "contracts")
    return tmp_path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_config_and_no_aws_credentials(bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["validate"]) == 0  # ./contracts by default, no config needed
    capsys.readouterr()
    assert run(["plan", "contracts/"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "no usable AWS credentials" in text
    assert "AWS_PROFILE" in text and "aws configure" in text  # what to do
    assert "github.organization" in text
    assert "Traceback" not in text


def test_no_credentials_at_all_for_a_mutating_command(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["kill", "pr-review-agent", "--yes"]) == 1
    err = capsys.readouterr().err
    assert "cannot verify who you are: no AWS credentials and no GitHub token" in err
    assert "aws sso login" in err and "GH_TOKEN" in err  # what to do
    assert "Traceback" not in err


def test_no_keyring_backend(
    bare: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aws: MotoServer,
) -> None:
    (bare / "agentctl.yaml").write_text(
        yaml.safe_dump({"github": {"organization": "acme"}}), encoding="utf-8"
    )
    # The newcomer has AWS credentials (an IAM user on the local AWS), nothing else.
    person = create_person(aws, "newcomer@company.com")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", person.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", person.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    redirect = "http://127.0.0.1/agentctl/github/registered?code=abc123&state=s"
    code = run(["github", "register", "pr-review-agent", "--code", redirect])
    err = capsys.readouterr().err
    assert code != 0
    assert "AGENTCTL_KEYRING_PASSPHRASE" in err and "secret" in err.lower()
    assert "Traceback" not in err


def test_github_unreachable(
    bare: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aws: MotoServer,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    (bare / "agentctl.yaml").write_text(
        yaml.safe_dump(
            {
                "github": {"organization": "acme", "base_url": url, "web_url": url},
                "secrets": {"backend": "encrypted-file", "path": str(bare / "secrets.enc")},
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("AGENTCTL_KEYRING_PASSPHRASE", "newcomer-passphrase")
    # The newcomer's AWS credentials (an IAM user on the local AWS) say who they are.
    person = create_person(aws, "newcomer@company.com")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", person.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", person.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    assert run(["github", "register", "pr-review-agent", "-o", "json"]) == 0
    state = json.loads(capsys.readouterr().out)["state"]
    code = run(["github", "register", "pr-review-agent", "--code", "abc123", "--state", state])
    err = capsys.readouterr().err
    assert code == 1
    assert "github.base_url" in err
    assert "Traceback" not in err


def test_bad_config_file_names_the_file_and_line(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bare / "agentctl.yaml").write_text("aws:\n  role_prefx: x-\n", encoding="utf-8")
    assert run(["plan", "contracts/"]) == 2
    err = capsys.readouterr().err
    assert "agentctl.yaml:2: unknown setting 'aws.role_prefx'" in err
    assert "did you mean 'role_prefix'" in err


def test_a_wrong_type_in_the_config_is_reported_where_it_is(
    bare: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (bare / "agentctl.yaml").write_text(
        "state: ./state.db\naws:\n  region: us-east-1\n  max_attempts: lots\n", encoding="utf-8"
    )
    assert run(["plan", "contracts/"]) == 2
    err = capsys.readouterr().err
    assert "agentctl.yaml:4: 'aws.max_attempts' must be int, not str" in err


@pytest.mark.parametrize("style", ["sso-session", "legacy"])
def test_an_sso_profile_without_a_sign_in_says_aws_sso_login(
    bare: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    """An IAM Identity Center profile whose sign-in is missing or expired is
    what an SSO user meets every morning: the hint is `aws sso login`, not
    access keys."""
    start = "start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n"
    if style == "sso-session":
        profile = "sso_session = corp\n"
        extra = f"[sso-session corp]\nsso_{start}"
    else:
        profile, extra = f"sso_{start}", ""
    (bare / "no-aws-config").write_text(
        "[profile dev]\n"
        + profile
        + "sso_account_id = 123456789012\nsso_role_name = Admin\nregion = us-east-1\n"
        + extra,
        "utf-8",
    )
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert run(["plan", "contracts/"]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "SSO sign-in has expired or was never made" in text
    assert "aws sso login --profile dev`" in text  # the profile in use: pasteable
    assert "Traceback" not in text and "SSOTokenLoadError" not in text
