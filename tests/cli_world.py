"""The real ``agentctl`` CLI against the moto server, as an operator would run it
(fixture ``cli`` for test_cli_lifecycle.py and test_status_cli.py).

``cli`` writes an ``agentctl.yaml`` (endpoint, region, runtime principal,
boundary, a SQLite state and a journal in the test's tmp dir, and a ``people:``
rule naming the operator's IAM user ops@company.com), points
``AGENTCTL_CONFIG`` at it, gives the operator's keys through the standard
``AWS_*`` variables, pins the clock in-process (``run(..., clock=)``; a test
moves it with ``cli.now = ...``) and turns moto's IAM
enforcement on: the operator holds only the shipped least-privilege policy.
Commands run in-process through :func:`agentctl.cli.app.run`, the function
behind the ``agentctl`` script, so exit codes and both output streams are the
user's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_helpers import (
    REGION,
    RUNTIME_PROFILE,
    MotoServer,
    Operator,
    create_boundary,
    create_operator,
)
from contract_helpers import NOW, s3_read, write_contract

from agentctl.cli.app import run
from agentctl.state import StateStore, open_state

OPERATOR_PERSON = "ops@company.com"


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    server: MotoServer
    operator: Operator
    contracts: Path
    state_path: Path
    config_path: Path
    capsys: pytest.CaptureFixture[str]
    now: datetime = NOW

    def __call__(self, *args: str | Path) -> Outcome:
        self.capsys.readouterr()  # drop anything printed before
        now = self.now
        code = run([str(a) for a in args], clock=lambda: now)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        assert "internal error" not in err, err
        return Outcome(code, out, err)

    def write(self, name: str, **kwargs: Any) -> Path:
        kwargs.setdefault("aws", s3_read("bucket-a"))
        return write_contract(self.contracts, name, **kwargs)

    def state(self) -> StateStore:
        return open_state(f"sqlite:///{self.state_path}")

    def role(self, agent: str) -> dict[str, Any] | None:
        """The agent's role as IAM has it (tags as a dict, inline policy names)."""
        iam = self.server.client("iam")
        with self.server.unenforced():
            try:
                found: dict[str, Any] = iam.get_role(RoleName=f"agentctl-{agent}")["Role"]
            except iam.exceptions.NoSuchEntityException:
                return None
            found["Tags"] = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
            found["Policies"] = iam.list_role_policies(RoleName=f"agentctl-{agent}")["PolicyNames"]
        return found

    def roles(self) -> list[str]:
        with self.server.unenforced():
            return sorted(r["RoleName"] for r in self.server.client("iam").list_roles()["Roles"])


@pytest.fixture
def cli(
    aws: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    operator = create_operator(aws)
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    state_path = tmp_path / "state.db"
    config_path = tmp_path / "agentctl.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "aws": {
                    "endpoint_url": aws.url,
                    "region": REGION,
                    "runtime_principal": operator.runtime_arn,
                    "runtime_profile": RUNTIME_PROFILE,
                    "permissions_boundary": boundary,
                    "max_attempts": 2,
                },
                "state": str(state_path),
                "journal": str(tmp_path / "journal.jsonl"),
                "audit": {"anchor_file": str(tmp_path / "audit-anchors.jsonl")},
                # The operator is verified (sts:GetCallerIdentity) and named here.
                "people": [{"principal": operator.arn, "person": OPERATOR_PERSON}],
            }
        ),
        "utf-8",
    )
    monkeypatch.setenv("AGENTCTL_CONFIG", str(config_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", operator.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", operator.secret_access_key)
    for name in (
        "AGENTCTL_STATE",
        "AGENTCTL_AGENT",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "GH_TOKEN",
        "GITHUB_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    aws.enforce_iam(0)
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    yield Cli(aws, operator, contracts, state_path, config_path, capsys)
