"""`agentctl credentials NAME --format aws-process` as an AWS SDK's
``credential_process``: a boto3 Session that knows nothing but an AWS config
file profile calls AWS as the agent, every (re)fetch is a gated, audited issue,
and after `agentctl kill` the SDK gets a refusal instead of credentials.

The real CLI runs as the SDK's child process (botocore spawns it), against moto
with IAM enforcement on and a real SQLite state."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import yaml
from aws_helpers import RUNTIME_PROFILE, MotoServer, create_operator
from cli_helpers import ENTRY
from contract_helpers import NOW, s3_read, write_contract

from agentctl.cli.app import run
from agentctl.helper_runs import RUN_ID_ENV
from agentctl.state import open_state


@dataclass
class ProcessWorld:
    server: MotoServer
    root: Path
    state_url: str
    operator_keys: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    def cli(self, *argv: str) -> int:
        # The operator's keys only for the operator's own commands: the agent's
        # SDK session below must not be able to fall back on them.
        with self.monkeypatch.context() as patch:
            for key, value in self.operator_keys.items():
                patch.setenv(key, value)
            return run(list(argv), clock=lambda: NOW)  # the operator is who the keys prove

    def agent_profile(self, agent: str, *extra: str) -> Path:
        """An AWS config file whose only credentials are agentctl's credential_process."""
        command = shlex.join(
            [
                sys.executable,
                "-c",
                ENTRY,
                NOW.isoformat(),
                "credentials",
                agent,
                "--format",
                "aws-process",
                *extra,
            ]
        )
        config = self.root / f"aws-config-{agent}"
        config.write_text(
            f"[profile agent]\nregion = us-east-1\ncredential_process = {command}\n",
            encoding="utf-8",
        )
        return config

    def sdk_session(self, config: Path) -> Any:
        self.monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
        return boto3.Session(profile_name="agent")

    def client(self, session: Any, service: str) -> Any:
        return session.client(
            service,
            endpoint_url=self.server.url,
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )

    def audit(self, action: str) -> list[Any]:
        store = open_state(self.state_url)
        try:
            return store.audit_events(action=action)
        finally:
            store.close()


@pytest.fixture
def world(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProcessWorld]:
    operator = create_operator(aws)
    s3 = aws.client("s3")
    for bucket in ("bucket-a", "bucket-b"):
        s3.create_bucket(Bucket=bucket)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = {
        "state": state_url,
        "journal": str(tmp_path / "journal.jsonl"),
        "aws": {
            "endpoint_url": aws.url,
            "region": "us-east-1",
            "runtime_principal": operator.runtime_arn,
            "runtime_profile": RUNTIME_PROFILE,
        },
    }
    (tmp_path / "agentctl.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    contracts = tmp_path / "contracts"
    write_contract(contracts, "reader-agent", aws=s3_read("bucket-a"))
    write_contract(contracts, "helper-agent", aws=s3_read("bucket-a"), mode="on_behalf_of_user")
    # What the SDK's child inherits: where agentctl's config is, who operates,
    # and no AWS keys at all (agentctl mints through its runtime profile).
    monkeypatch.setenv("AGENTCTL_CONFIG", str(tmp_path / "agentctl.yaml"))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    aws.enforce_iam(0)
    world = ProcessWorld(
        aws,
        tmp_path,
        state_url,
        {
            "AWS_ACCESS_KEY_ID": operator.access_key_id,
            "AWS_SECRET_ACCESS_KEY": operator.secret_access_key,
        },
        monkeypatch,
    )
    assert world.cli("apply", str(contracts), "--yes") == 0
    yield world


@pytest.mark.reveals_secrets  # the SDK's child prints them to the SDK: its job
def test_sdk_profile_calls_as_the_agent_and_is_refused_after_kill(
    world: ProcessWorld,
) -> None:
    session = world.sdk_session(world.agent_profile("reader-agent"))
    identity = world.client(session, "sts").get_caller_identity()
    assert ":assumed-role/agentctl-reader-agent/" in identity["Arn"], identity
    s3 = world.client(session, "s3")
    assert s3.list_objects_v2(Bucket="bucket-a")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        s3.list_objects_v2(Bucket="bucket-b")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"

    # The SDK got its keys through the same gate and audit as `credentials`.
    (issued,) = world.audit("credentials.issue")
    assert issued.actor == "reader-agent"
    frozen = session.get_credentials().get_frozen_credentials()
    assert frozen.secret_key not in json.dumps(issued.detail)
    assert frozen.access_key not in json.dumps(issued.detail)
    # Only AWS is minted for an SDK refresh.
    assert [c["provider"] for c in issued.detail["credentials"]] == ["aws"]

    assert world.cli("kill", "reader-agent", "--reason", "INC-22", "--yes") == 0
    fresh = world.sdk_session(world.agent_profile("reader-agent"))
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as refused:
        world.client(fresh, "sts").get_caller_identity()
    assert "killed" in str(refused.value)
    assert len(world.audit("credentials.issue")) == 1


@pytest.mark.reveals_secrets
def test_aws_process_output_is_the_sdk_shape_and_gated(
    world: ProcessWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert world.cli("credentials", "reader-agent", "--format", "aws-process") == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert set(data) == {
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }
    assert data["Version"] == 1
    assert data["Expiration"].endswith("Z")
    # The gates of `credentials`: on_behalf_of_user needs its user, stdout stays empty.
    assert world.cli("credentials", "helper-agent", "--output", "aws-process") == 1
    refused = capsys.readouterr()
    assert refused.out == ""
    assert "--on-behalf-of is required" in refused.err
    assert "Traceback" not in refused.err


@pytest.mark.reveals_secrets
def test_the_sdk_refreshes_through_agentctl_as_expiry_nears(world: ProcessWorld) -> None:
    """botocore refreshes process credentials with less than 15 minutes left
    (its advisory refresh window); a 15m session is inside it from the start,
    so every call fetches again: each fetch is its own gated, audited issue."""
    session = world.sdk_session(world.agent_profile("reader-agent", "--duration", "15m"))
    sts = world.client(session, "sts")
    first = sts.get_caller_identity()["Arn"]
    keys = {session.get_credentials().get_frozen_credentials().access_key}
    second = sts.get_caller_identity()["Arn"]
    keys.add(session.get_credentials().get_frozen_credentials().access_key)
    assert ":assumed-role/agentctl-reader-agent/" in first
    assert ":assumed-role/agentctl-reader-agent/" in second
    issued = world.audit("credentials.issue")
    assert len(issued) >= 2
    assert len(keys) >= 2
    # One SDK session, one run: every refresh is audited under the same run id,
    # derived from the SDK's process (this one: botocore starts agentctl directly).
    assert len({e.detail["run_id"] for e in issued}) == 1
    for event in issued:
        assert event.detail["run_id_from"] == "parent process"
        assert event.detail["parent"]["pid"] == os.getpid()
        assert event.detail["host"] == socket.gethostname()
    # ... which names the AWS role session too: CloudTrail shows one session name.
    assert first == second
    assert first.endswith("/agentctl-reader-agent-" + issued[0].detail["run_id"][:8])


@pytest.mark.reveals_secrets
def test_another_sdk_process_is_another_run_and_a_named_run_is_kept(
    world: ProcessWorld,
) -> None:
    config = world.agent_profile("reader-agent")
    sdk = (
        "import boto3, sys; s = boto3.Session(profile_name='agent'); "
        "print(s.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])"
    )
    env = {**os.environ, "AWS_CONFIG_FILE": str(config)}
    env.pop(RUN_ID_ENV, None)

    def sdk_process(**extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", sdk, world.server.url],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    sdk_process()
    sdk_process()
    first, second = world.audit("credentials.issue")
    assert first.detail["run_id"] != second.detail["run_id"]  # two processes, two runs
    assert first.detail["parent"]["pid"] != second.detail["parent"]["pid"]

    # A service unit or CI job names its run: every process of it shares the id.
    sdk_process(AGENTCTL_RUN_ID="ci-job-4521")
    sdk_process(AGENTCTL_RUN_ID="ci-job-4521")
    named = world.audit("credentials.issue")[2:]
    assert [(e.detail["run_id"], e.detail["run_id_from"]) for e in named] == [
        ("ci-job-4521", "AGENTCTL_RUN_ID")
    ] * 2
    assert "parent" not in named[0].detail
    # --run-id in the profile line wins over the environment.
    env["AWS_CONFIG_FILE"] = str(world.agent_profile("reader-agent", "--run-id", "svc.review-1"))
    arn = sdk_process(AGENTCTL_RUN_ID="ci-job-4521")
    last = world.audit("credentials.issue")[-1]
    assert (last.detail["run_id"], last.detail["run_id_from"]) == ("svc.review-1", "--run-id")
    assert arn.endswith("/agentctl-reader-agent-svc.revi")


def test_a_run_id_that_is_not_one_is_refused_before_anything_is_issued(
    world: ProcessWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, env in (
        (["--run-id", "bad id;rm"], {}),
        (["--run-id", "-x"], {}),
        ([], {RUN_ID_ENV: "x" * 65}),
    ):
        with world.monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            code = world.cli("credentials", "reader-agent", "--format", "aws-process", *argv)
        out, err = capsys.readouterr()
        assert code == 2 and out == ""
        assert "is not a run id" in err and "Traceback" not in err
    assert world.audit("credentials.issue") == []


@pytest.mark.reveals_secrets
@pytest.mark.timeout(150)  # before the loop guard this never returned
def test_a_profile_selected_by_aws_profile_does_not_make_agentctl_start_itself(
    world: ProcessWorld,
) -> None:
    """The usual way to pick a profile is AWS_PROFILE, which the credential_process
    child inherits. agentctl's own AWS credential lookup honoured it, ran the same
    profile's credential_process (itself), and so on: a chain of blocked agentctl
    processes and an SDK that never returned. Now the nested copy refuses at once
    and the outer one mints through aws.runtime_profile."""
    profile = world.agent_profile("reader-agent")
    # Count every agentctl the profile starts: a shell that notes it, then becomes it.
    starts = world.root / "starts"
    line = profile.read_text().splitlines()[2].removeprefix("credential_process = ")
    counted = shlex.join(["/bin/sh", "-c", f'echo . >> {starts}; exec "$@"', "sh"]) + " " + line
    profile.write_text(profile.read_text().replace(line, counted))
    world.monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    world.monkeypatch.setenv("AWS_PROFILE", "agent")
    session = boto3.Session()
    identity = world.client(session, "sts").get_caller_identity()
    assert ":assumed-role/agentctl-reader-agent/" in identity["Arn"], identity
    (issued,) = world.audit("credentials.issue")
    assert issued.actor == "reader-agent"
    # One fetch, one agentctl: its own credential check no longer runs the agent's
    # profile (itself) only to be refused; it goes straight to aws.runtime_profile.
    assert starts.read_text() == ".\n"


@pytest.mark.reveals_secrets  # the last call prints the agent's keys: its job
def test_agentctl_started_by_its_own_credential_lookup_refuses_clearly(
    world: ProcessWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentctl.helper_runs import FETCHING_ENV

    capsys.readouterr()
    world.monkeypatch.setenv(FETCHING_ENV, "credentials")
    world.monkeypatch.setenv("AWS_PROFILE", "agent")
    assert world.cli("credentials", "reader-agent", "--format", "aws-process") == 1
    refused = capsys.readouterr()
    assert refused.out == ""
    assert "started by agentctl's own AWS credential lookup" in refused.err
    assert "AWS_PROFILE (agent)" in refused.err and "aws.runtime_profile" in refused.err
    assert "Traceback" not in refused.err
    assert world.audit("credentials.issue") == []
    # The guard is scoped to the fetch: nothing of it stays in this process.
    world.monkeypatch.delenv(FETCHING_ENV)
    world.monkeypatch.delenv("AWS_PROFILE")
    assert world.cli("credentials", "reader-agent", "--format", "aws-process") == 0
    assert FETCHING_ENV not in os.environ


def aws_cli(world: ProcessWorld, config: Path, *argv: str) -> Any:
    """The real AWS CLI, configured only by ``config``'s credential_process profile."""
    import shutil
    import subprocess

    aws = shutil.which("aws")
    if aws is None:  # CI has it (scripts/ci-services.sh); awscli pins botocore exactly
        pytest.skip("the AWS CLI is not installed (scripts/ci-services.sh installs awscli)")
    # No keys; the shared credentials file holds only agentctl's runtime profile
    # (which agentctl, the credential_process, mints through), no "agent" one.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") or k == "AWS_SHARED_CREDENTIALS_FILE"
    }
    env |= {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "agent"}
    return subprocess.run(
        [aws, "--endpoint-url", world.server.url, "--region", "us-east-1", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


@pytest.mark.reveals_secrets  # the CLI's child prints them to the CLI: its job
def test_the_aws_cli_calls_as_the_agent_through_the_profile_and_is_refused_after_kill(
    world: ProcessWorld,
) -> None:
    config = world.agent_profile("reader-agent")
    identity = aws_cli(world, config, "sts", "get-caller-identity")
    assert identity.returncode == 0, identity.stderr
    assert ":assumed-role/agentctl-reader-agent/" in json.loads(identity.stdout)["Arn"]
    allowed = aws_cli(world, config, "s3api", "list-objects-v2", "--bucket", "bucket-a")
    assert allowed.returncode == 0, allowed.stderr
    denied = aws_cli(world, config, "s3api", "list-objects-v2", "--bucket", "bucket-b")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr
    issued = world.audit("credentials.issue")
    assert len(issued) >= 3  # each CLI process fetched through agentctl's gate
    assert {e.actor for e in issued} == {"reader-agent"}

    assert world.cli("kill", "reader-agent", "--reason", "INC-22", "--yes") == 0
    refused = aws_cli(world, config, "sts", "get-caller-identity")
    assert refused.returncode != 0
    assert "killed" in refused.stderr
    assert len(world.audit("credentials.issue")) == len(issued)
