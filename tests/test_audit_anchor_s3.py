"""Anchoring the audit head in S3 under Object Lock (moto server mode), on both state backends.

The attacker here holds the state database, and in the rollback cases also
s3:PutObject / s3:DeleteObject on the anchor bucket (but not the chain key).
What Object Lock itself refuses (deleting a locked version) is checked live on
moto; the S3 rule is https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html
("you can't delete a protected object version ... until the retention period expires").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import Trail, key_source
from aws_helpers import MotoServer
from state_helpers import StepClock

from agentctl.audit_anchor import Anchor, S3AnchorStore, open_anchor_store
from agentctl.config import AuditSettings
from agentctl.config_file import parse_config_text
from agentctl.state import open_state

BUCKET = "audit-anchors"


@pytest.fixture
def bucket(aws: MotoServer) -> MotoServer:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    return aws


@pytest.fixture
def s3_trail(bucket: MotoServer, state_url: str, tmp_path: Path) -> Iterator[Trail]:
    settings = AuditSettings(anchor="s3", s3_bucket=BUCKET, s3_endpoint_url=bucket.url)
    anchors = S3AnchorStore(settings, lambda: bucket.client("s3"))
    store = open_state(state_url, clock=StepClock())
    keys = key_source(tmp_path / "secrets.enc")
    store.chain_keys = keys
    trail = Trail(store, state_url, keys, anchors, tmp_path)  # type: ignore[arg-type]
    trail.command(5)
    trail.command(3)
    try:
        yield trail
    finally:
        store.close()


def anchor_keys(server: MotoServer, trail: Trail) -> list[str]:
    listed = server.client("s3").list_object_versions(Bucket=BUCKET)
    return sorted(v["Key"] for v in listed.get("Versions", []))


def cut_tail_and_restore_head(trail: Trail, genuine_head_5: tuple[int, str, str | None]) -> None:
    trail.sql("DELETE FROM audit_events WHERE seq >= 6")
    trail.set_head(*genuine_head_5)


def head_at(trail: Trail, seq: int) -> tuple[int, str, str | None]:
    event = next(e for e in trail.rows() if e.seq == seq)
    keys = trail.keys.current(trail.head().trail or "")
    assert keys is not None
    return seq, event.hash, keys.head_mac(seq, event.hash)


def test_each_command_leaves_a_locked_anchor_and_verify_uses_the_newest(
    s3_trail: Trail, bucket: MotoServer
) -> None:
    keys = anchor_keys(bucket, s3_trail)
    assert len(keys) == 2  # one per command
    s3 = bucket.client("s3")
    head = s3.head_object(Bucket=BUCKET, Key=keys[0])
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"]
    result = s3_trail.verify()
    assert result.verdict == "intact" and result.anchor_seq == 8
    assert result.anchor_where is not None and result.anchor_where.startswith(f"s3://{BUCKET}/")


def test_a_cut_tail_with_a_restored_head_is_found_through_s3(s3_trail: Trail) -> None:
    # The head an attacker could have saved when seq 5 was the last event (valid MAC).
    restored = head_at(s3_trail, 5)
    cut_tail_and_restore_head(s3_trail, restored)
    result = s3_trail.verify()
    assert result.verdict == "tampered" and result.first_bad_seq == 6
    assert "anchored seq 8" in (result.problem or "")


def test_hiding_the_newest_anchor_behind_a_delete_marker_does_not_roll_it_back(
    s3_trail: Trail, bucket: MotoServer
) -> None:
    restored = head_at(s3_trail, 5)
    newest = anchor_keys(bucket, s3_trail)[0]
    bucket.client("s3").delete_object(Bucket=BUCKET, Key=newest)  # a delete marker, no version id
    cut_tail_and_restore_head(s3_trail, restored)
    result = s3_trail.verify()
    assert result.first_bad_seq == 6 and "anchored seq 8" in (result.problem or "")


def test_overwriting_the_newest_anchor_with_an_older_one_does_not_roll_it_back(
    s3_trail: Trail, bucket: MotoServer
) -> None:
    """The attacker PUTs anchor 5's body over anchor 8's key: the first version written
    under a key is the one verify reads, and Object Lock keeps it."""
    restored = head_at(s3_trail, 5)
    oldest, newest = anchor_keys(bucket, s3_trail)[1], anchor_keys(bucket, s3_trail)[0]
    s3 = bucket.client("s3")
    older_body = s3.get_object(Bucket=BUCKET, Key=oldest)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=newest, Body=older_body, ChecksumAlgorithm="SHA256")
    cut_tail_and_restore_head(s3_trail, restored)
    result = s3_trail.verify()
    assert result.first_bad_seq == 6 and "anchored seq 8" in (result.problem or "")


def test_object_lock_refuses_deleting_an_anchor_version(
    s3_trail: Trail, bucket: MotoServer
) -> None:
    from botocore.exceptions import ClientError

    s3 = bucket.client("s3")
    newest = anchor_keys(bucket, s3_trail)[0]
    version = s3.list_object_versions(Bucket=BUCKET, Prefix=newest)["Versions"][0]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=BUCKET, Key=newest, VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3_trail.verify().anchor_seq == 8


def test_a_forged_anchor_in_the_bucket_is_found(s3_trail: Trail, bucket: MotoServer) -> None:
    trail_name = s3_trail.head().trail or ""
    store = s3_trail.anchors
    assert isinstance(store, S3AnchorStore)
    latest = store.latest(trail_name)
    assert latest is not None
    forged = Anchor(**{**latest.as_dict(), "seq": 40, "mac": "0" * 64})
    bucket.client("s3").put_object(
        Bucket=BUCKET,
        Key=store.key(trail_name, 40),
        Body=json.dumps(forged.as_dict()).encode(),
        ChecksumAlgorithm="SHA256",
    )
    result = s3_trail.verify()
    assert result.first_bad_seq == 40 and "not written by agentctl" in (result.problem or "")


def test_an_unreachable_bucket_is_a_clear_error(tmp_path: Path) -> None:
    from agentctl.errors import StateError

    settings = AuditSettings(anchor="s3", s3_bucket=BUCKET, s3_endpoint_url="http://127.0.0.1:9")
    config = parse_config_text(
        f"audit:\n  anchor: s3\n  s3_bucket: {BUCKET}\n  s3_endpoint_url: http://127.0.0.1:9\n"
        "  s3_region: us-east-1\n",
        tmp_path / "agentctl.yaml",
    )
    anchors = open_anchor_store(config)
    assert isinstance(anchors, S3AnchorStore) and anchors.bucket == settings.s3_bucket
    with pytest.raises(StateError, match="cannot read the audit anchor"):
        anchors.latest("some-trail")


def test_s3_without_a_bucket_is_a_config_error(tmp_path: Path) -> None:
    from agentctl.errors import ConfigError

    config = parse_config_text("audit:\n  anchor: s3\n", tmp_path / "agentctl.yaml")
    with pytest.raises(ConfigError, match="s3_bucket"):
        open_anchor_store(config)


def test_an_unknown_anchor_kind_is_refused_with_its_line(tmp_path: Path) -> None:
    from agentctl.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config_text("state: x.db\naudit:\n  anchor: tape\n", tmp_path / "agentctl.yaml")
    assert "agentctl.yaml:3" in caught.value.message and "audit.anchor" in caught.value.message
