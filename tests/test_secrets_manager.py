"""The team secret store (AWS Secrets Manager) and `agentctl secrets migrate`,
against a real moto server; a real encrypted-file keyring as the source."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_helpers import ACCOUNT, REGION, MotoServer, generated_policy, record_calls
from botocore.config import Config as BotoConfig

from agentctl.config import SecretsSettings
from agentctl.errors import SecretStoreError
from agentctl.secrets import (
    AWS_SECRETS_MANAGER,
    Secret,
    SecretsManagerClient,
    SecretsManagerStore,
    SecretStore,
    open_secret_store,
)
from agentctl.secrets_migration import MoveOutcome, migrate_secrets

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA"
    + "Q" * 40
    + "\n-----END RSA PRIVATE KEY-----\n"
)
TOKEN = "ghs_" + "Tk7" * 12
PASSPHRASE = "correct horse battery staple"


def client_factory(
    server: MotoServer, credentials: dict[str, str] | None = None
) -> Callable[[], SecretsManagerClient]:
    def build() -> SecretsManagerClient:
        client: SecretsManagerClient = boto3.client(
            "secretsmanager",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id=(credentials or {}).get("aws_access_key_id", "testing"),
            aws_secret_access_key=(credentials or {}).get("aws_secret_access_key", "testing"),
            config=BotoConfig(retries={"total_max_attempts": 1}),
        )
        return client

    return build


def team_store(server: MotoServer, **kwargs: Any) -> SecretsManagerStore:
    return SecretsManagerStore(client_factory(server), **kwargs)


def keyring_store(tmp_path: Path, name: str = "secrets.enc") -> SecretStore:
    return open_secret_store(
        SecretsSettings(backend="encrypted-file", path=str(tmp_path / name)),
        environ={"AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE},
    )


def raw(server: MotoServer) -> Any:
    return server.client("secretsmanager")


def test_values_round_trip_under_the_prefix_tagged_and_with_the_kms_key(aws: MotoServer) -> None:
    store = team_store(aws, prefix="team-a/agentctl/", kms_key_id="alias/agentctl-secrets")
    assert store.get("github/app/pr-agent/private-key") is None
    store.put("github/app/pr-agent/private-key", Secret(PEM))
    assert store.get("github/app/pr-agent/private-key") == Secret(PEM)

    described = raw(aws).describe_secret(SecretId="team-a/agentctl/github/app/pr-agent/private-key")
    assert described["KmsKeyId"].endswith("alias/agentctl-secrets")
    assert {"Key": "managed-by", "Value": "agentctl"} in described["Tags"]
    assert PEM not in json.dumps(described, default=str)

    store.put("github/app/pr-agent/private-key", Secret(PEM + "rotated"))  # overwrite
    assert store.get("github/app/pr-agent/private-key") == Secret(PEM + "rotated")
    assert store.keys() == ["github/app/pr-agent/private-key"]

    assert store.delete("github/app/pr-agent/private-key") is True
    assert store.get("github/app/pr-agent/private-key") is None
    assert store.delete("github/app/pr-agent/private-key") is False  # idempotent
    assert store.keys() == []


def test_only_keys_under_the_prefix_are_listed(aws: MotoServer) -> None:
    raw(aws).create_secret(Name="someone-else/db-password", SecretString="hunter2")
    raw(aws).create_secret(Name="AGENTCTL/upper-case-lookalike", SecretString="x")
    store = team_store(aws)
    store.put("github/token/abc123", Secret(TOKEN))
    assert store.keys() == ["github/token/abc123"]


def test_a_secret_scheduled_for_deletion_by_hand_is_absent_then_restored_by_put(
    aws: MotoServer,
) -> None:
    store = team_store(aws)
    store.put("github/app/a/app-id", Secret("12345"))
    raw(aws).delete_secret(SecretId="agentctl/github/app/a/app-id", RecoveryWindowInDays=7)
    assert store.get("github/app/a/app-id") is None
    store.put("github/app/a/app-id", Secret("67890"))
    assert store.get("github/app/a/app-id") == Secret("67890")


def test_names_secrets_manager_cannot_hold_are_refused_before_any_call(aws: MotoServer) -> None:
    with pytest.raises(SecretStoreError, match="cannot be a Secrets Manager secret name"):
        team_store(aws).put("github/app/a b/private-key", Secret("x"))
    with pytest.raises(SecretStoreError, match=r"secrets.prefix .* is not usable"):
        team_store(aws, prefix="agent ctl/")


def test_the_backend_is_chosen_by_configuration_and_uses_the_standard_aws_settings(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = SecretsSettings(backend=AWS_SECRETS_MANAGER, region=REGION, endpoint_url=aws.url)
    store = open_secret_store(settings, environ={})
    assert store.name == AWS_SECRETS_MANAGER
    store.put("serve/caller/pager/signing-key", Secret("agentctl_sign_" + "k" * 40))
    assert raw(aws).get_secret_value(SecretId="agentctl/serve/caller/pager/signing-key")


def test_an_unreachable_secrets_manager_is_a_clear_error(tmp_path: Path) -> None:
    settings = SecretsSettings(
        backend=AWS_SECRETS_MANAGER, region=REGION, endpoint_url="http://127.0.0.1:9"
    )
    store = open_secret_store(
        settings,
        environ={},
        secretsmanager_client=lambda: boto3.client(
            "secretsmanager",
            endpoint_url="http://127.0.0.1:9",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=1),
        ),
    )
    with pytest.raises(SecretStoreError) as caught:
        store.put("github/token/t1", Secret(TOKEN))
    assert "could not store 'github/token/t1'" in caught.value.message
    assert TOKEN not in caught.value.explained()


def test_an_agent_session_is_refused_the_team_secrets_and_the_error_holds_no_value(
    aws: MotoServer,
) -> None:
    """Think like the agent: its own AWS session must not read the App keys."""
    iam = aws.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(
        RoleName="agentctl-pr-agent", Path="/agentctl/", AssumeRolePolicyDocument=json.dumps(trust)
    )
    iam.put_role_policy(
        RoleName="agentctl-pr-agent",
        PolicyName="agentctl-grant",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
    )
    team_store(aws).put("github/app/pr-agent/private-key", Secret(PEM))
    session = aws.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/agentctl/agentctl-pr-agent", RoleSessionName="run"
    )["Credentials"]
    credentials = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
    }

    def agent_client() -> SecretsManagerClient:
        client: SecretsManagerClient = boto3.client(
            "secretsmanager",
            endpoint_url=aws.url,
            region_name=REGION,
            aws_session_token=session["SessionToken"],
            config=BotoConfig(retries={"total_max_attempts": 1}),
            **credentials,
        )
        return client

    as_agent = SecretsManagerStore(agent_client)
    aws.enforce_iam(0)
    with pytest.raises(SecretStoreError) as caught:
        as_agent.get("github/app/pr-agent/private-key")
    assert "AccessDenied" in caught.value.message
    assert "AgentctlSecrets" in (caught.value.hint or "")
    with pytest.raises(SecretStoreError):
        as_agent.put("github/app/pr-agent/private-key", Secret("-----BEGIN forged"))
    with aws.unenforced():
        assert team_store(aws).get("github/app/pr-agent/private-key") == Secret(PEM)


def _policy_allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    import fnmatch

    for statement in statements:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        if (
            statement["Effect"] == "Allow"
            and action in actions
            and fnmatch.fnmatchcase(resource, statement["Resource"])
        ):
            return True
    return False


def test_every_call_the_store_makes_is_granted_by_the_operator_policy_and_only_under_the_prefix(
    aws: MotoServer, tmp_path: Path
) -> None:
    statements = [
        s
        for s in json.loads(generated_policy("operator"))["Statement"]
        if s["Sid"].startswith("AgentctlSecrets")
    ]
    assert statements, "the operator policy lost its AgentctlSecrets statements"
    client = client_factory(aws)()
    calls = record_calls(client, "secretsmanager")
    store = SecretsManagerStore(lambda: client)
    store.put("github/app/a/private-key", Secret(PEM))  # create
    store.put("github/app/a/private-key", Secret(PEM + "x"))  # put
    store.get("github/app/a/private-key")
    raw(aws).delete_secret(SecretId="agentctl/github/app/a/private-key", RecoveryWindowInDays=7)
    store.put("github/app/a/private-key", Secret(PEM))  # restore + put
    store.keys()
    store.delete("github/app/a/private-key")
    made = {name for name, _ in calls.calls}
    assert made >= {"CreateSecret", "PutSecretValue", "GetSecretValue", "RestoreSecret"}
    secret_arn = (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:agentctl/github/app/a/private-key-AbCdEf"
    )
    for name in made:
        resource = "*" if name == "ListSecrets" else secret_arn
        assert _policy_allows(statements, f"secretsmanager:{name}", resource), name
        if name == "CreateSecret":  # tags on create need TagResource too
            assert _policy_allows(statements, "secretsmanager:TagResource", resource)
    outside = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-password-AbCdEf"
    for name in made - {"ListSecrets"}:
        assert not _policy_allows(statements, f"secretsmanager:{name}", outside), name


# -- migrate ----------------------------------------------------------------------------


def test_migrate_moves_every_value_verified_and_a_second_run_moves_nothing(
    aws: MotoServer, tmp_path: Path
) -> None:
    source = keyring_store(tmp_path)
    source.put("github/app/pr-agent/private-key", Secret(PEM))
    source.put("github/app/pr-agent/app-id", Secret("4242"))
    source.put("github/token/0a1b2c", Secret(TOKEN))
    target = team_store(aws)

    first = migrate_secrets(source, target, referenced=["github/app/never-stored/private-key"])
    assert first.ok and first.source_listed
    assert {(m.key, m.outcome, m.already) for m in first.moves} == {
        ("github/app/pr-agent/private-key", MoveOutcome.MOVED, False),
        ("github/app/pr-agent/app-id", MoveOutcome.MOVED, False),
        ("github/token/0a1b2c", MoveOutcome.MOVED, False),
    }
    assert target.get("github/app/pr-agent/private-key") == Secret(PEM)
    assert target.get("github/token/0a1b2c") == Secret(TOKEN)
    assert source.keys() == []  # moved, not copied
    rendered = repr(first)
    assert PEM not in rendered and TOKEN not in rendered

    second = migrate_secrets(source, target, referenced=["github/token/0a1b2c"])
    assert second.ok
    assert [(m.key, m.outcome, m.already) for m in second.moves] == [
        ("github/token/0a1b2c", MoveOutcome.MOVED, True)
    ]


def test_migrate_keeps_the_source_on_request_and_never_overwrites_a_different_value(
    aws: MotoServer, tmp_path: Path
) -> None:
    source = keyring_store(tmp_path)
    source.put("github/app/a/private-key", Secret(PEM))
    source.put("github/app/b/private-key", Secret(PEM + "b"))
    target = team_store(aws)
    target.put("github/app/b/private-key", Secret(PEM + "registered-by-someone-else"))

    result = migrate_secrets(source, target, referenced=[], keep_source=True)
    assert not result.ok
    outcomes = {m.key: m for m in result.moves}
    assert outcomes["github/app/a/private-key"].outcome == MoveOutcome.COPIED
    conflict = outcomes["github/app/b/private-key"]
    assert conflict.outcome == MoveOutcome.CONFLICT
    assert "different value" in conflict.detail and PEM not in conflict.detail
    assert source.get("github/app/a/private-key") == Secret(PEM)
    assert target.get("github/app/b/private-key") == Secret(PEM + "registered-by-someone-else")
    assert source.get("github/app/b/private-key") == Secret(PEM + "b")


def test_migrate_from_a_backend_that_cannot_list_uses_the_keys_the_state_names(
    aws: MotoServer, tmp_path: Path
) -> None:
    class Unlisted(SecretStore):
        """Like the macOS keychain: answers only for a key asked by name."""

        name = "unlisted"

        def __init__(self, inner: SecretStore) -> None:
            self.inner = inner

        def put(self, key: str, secret: Secret) -> None:
            self.inner.put(key, secret)

        def get(self, key: str) -> Secret | None:
            return self.inner.get(key)

        def delete(self, key: str) -> bool:
            return self.inner.delete(key)

    source = Unlisted(keyring_store(tmp_path))
    source.put("github/app/a/private-key", Secret(PEM))
    source.put("github/app/unknown-to-state/private-key", Secret(PEM))
    result = migrate_secrets(source, team_store(aws), referenced=["github/app/a/private-key"])
    assert not result.source_listed
    assert [m.key for m in result.moves] == ["github/app/a/private-key"]


def test_migrate_refuses_a_store_into_itself(aws: MotoServer) -> None:
    with pytest.raises(SecretStoreError, match="same backend"):
        migrate_secrets(team_store(aws), team_store(aws), referenced=[])
