"""Anchors: the audit chain head, copied after each mutating command to a place
that a writer of the state database cannot rewrite.

The keyed chain stops anyone without the key from forging events, but not from
*removing* the newest ones and setting the head back to an older (genuine)
head row. An anchor records ``(trail, seq, hash, MAC, time, key id)`` of the
last event a command appended, MAC'd under the chain key, somewhere else:

- ``file`` (default): one JSON line per anchor appended (O_APPEND, 0600) to a
  local file, e.g. on the operator's host or a cron host. Make it truly
  append-only with ``chattr +a`` (root), or a writer of that file can roll it
  back together with the state.
- ``s3``: one object per anchor in a bucket with S3 Object Lock (versioned,
  default retention in COMPLIANCE mode): an anchor cannot be overwritten or
  deleted before its retention ends, not even by the account root. Object keys
  count *down* (``<prefix><trail>/<10**19 - seq>.json``), so the newest anchor
  is the first key listed; a delete marker hiding one is seen and reported.

``audit verify`` reads the latest anchor of the trail and fails if the trail
no longer reaches it, or holds a different event at its seq.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.errors import ConfigError, StateError

if TYPE_CHECKING:
    from agentctl.audit_key import ChainKey, ChainKeySource
    from agentctl.config import AuditSettings, Config
    from agentctl.state import StateStore
    from agentctl.state.records import AuditEvent

ANCHOR_KINDS = ("file", "s3", "off")
# seq as a descending key: (_SEQ_CEILING - seq), zero-padded, sorts newest first.
_SEQ_CEILING = 10**19
# How much of the end of an anchor file is read for the latest anchor (lines
# from concurrent commands may land slightly out of order).
_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Anchor:
    """One anchored head of an audit trail: its seq, hash and MAC, when."""

    trail: str
    seq: int
    hash: str
    event_mac: str | None
    time: str
    key_id: str | None
    mac: str | None
    where: str = ""  # where it was read from (not signed)

    def signed_fields(self) -> dict[str, Any]:
        return {
            "trail": self.trail,
            "seq": self.seq,
            "hash": self.hash,
            "event_mac": self.event_mac,
            "time": self.time,
            "key_id": self.key_id,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.signed_fields(), "mac": self.mac}

    @classmethod
    def of(cls, trail: str, event: AuditEvent, key: ChainKey | None, now: datetime) -> Anchor:
        unsigned = cls(
            trail=trail,
            seq=event.seq,
            hash=event.hash,
            event_mac=event.mac,
            time=now.astimezone(UTC).isoformat(timespec="seconds"),
            key_id=key.key_id if key else None,
            mac=None,
        )
        if key is None:
            return unsigned
        return cls(**{**unsigned.as_dict(), "mac": key.anchor_mac(unsigned.signed_fields())})

    @classmethod
    def parse(cls, data: Any, where: str) -> Anchor | None:
        """An anchor from its JSON, or None if it is not one."""
        try:
            return cls(
                trail=str(data["trail"]),
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                event_mac=data.get("event_mac"),
                time=str(data["time"]),
                key_id=data.get("key_id"),
                mac=data.get("mac"),
                where=where,
            )
        except (KeyError, TypeError, ValueError):
            return None


class AnchorStore(Protocol):
    where: str

    def append(self, anchor: Anchor) -> None: ...

    def latest(self, trail: str) -> Anchor | None: ...

    def trails(self) -> list[str]:
        """The trails anchored here (to find a trail whose head row was deleted)."""
        ...


class LocalAnchorFile:
    """Anchors as JSON lines appended to a local file (0600, flock'd, fsync'd)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self.where = str(self.path)

    @contextlib.contextmanager
    def _open(self, flags: int, lock: int) -> Iterator[int]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot open the audit anchor file {self.path}: {exc.strerror}",
                hint="make its directory writable, or set audit.anchor_file in agentctl.yaml",
            ) from None
        try:
            fcntl.flock(fd, lock)
            yield fd
        finally:
            os.close(fd)

    def append(self, anchor: Anchor) -> None:
        line = json.dumps(anchor.as_dict(), sort_keys=True) + "\n"
        with self._open(os.O_RDWR | os.O_CREAT | os.O_APPEND, fcntl.LOCK_EX) as fd:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # a crash cut the last line short: do not glue onto it
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)

    def trails(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._open(os.O_RDONLY, fcntl.LOCK_SH) as fd:
            size = os.fstat(fd).st_size
            start = max(0, size - _TAIL_BYTES)
            chunk = os.pread(fd, size - start, start)
        found: dict[str, None] = {}
        for line in chunk.decode("utf-8", "replace").splitlines()[1 if start else 0 :]:
            try:
                anchor = Anchor.parse(json.loads(line), self.where)
            except ValueError:
                continue
            if anchor is not None:
                found[anchor.trail] = None
        return list(found)

    def latest(self, trail: str) -> Anchor | None:
        """The anchor with the highest seq of ``trail`` near the end of the file.

        Only the file's tail is read: anchors only ever grow, so the newest is
        at the end (give or take concurrent commands).
        """
        if not self.path.exists():
            return None
        with self._open(os.O_RDONLY, fcntl.LOCK_SH) as fd:
            size = os.fstat(fd).st_size
            start = max(0, size - _TAIL_BYTES)
            chunk = os.pread(fd, size - start, start)
            best = None
            while True:
                for line in chunk.decode("utf-8", "replace").splitlines()[1 if start else 0 :]:
                    try:
                        anchor = Anchor.parse(json.loads(line), self.where)
                    except ValueError:
                        continue
                    if anchor and anchor.trail == trail and (best is None or anchor.seq > best.seq):
                        best = anchor
                if best is not None or start == 0:
                    return best
                # This trail's anchors are further back (the file is shared by
                # several states): read on backwards.
                end, start = start, max(0, start - 16 * _TAIL_BYTES)
                chunk = os.pread(fd, end - start + 4096, start)


class S3AnchorStore:
    """One object per anchor in an S3 bucket under Object Lock."""

    def __init__(self, settings: AuditSettings, client_factory: Callable[[], Any]) -> None:
        if not settings.s3_bucket:
            raise ConfigError(
                "audit.anchor is s3 but audit.s3_bucket is not set",
                hint="name a bucket created with Object Lock enabled (see README, 'Audit trail')",
            )
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.retention_days = settings.s3_retention_days
        self.retention_mode = settings.s3_retention_mode
        self.where = f"s3://{self.bucket}/{self.prefix}"
        self._client_factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def key(self, trail: str, seq: int) -> str:
        return f"{self.prefix}{trail}/{_SEQ_CEILING - seq:020d}.json"

    @contextlib.contextmanager
    def _errors(self, verb: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise StateError(
                f"cannot {verb} the audit anchor in {self.where}: {exc}",
                hint="check the bucket, its Object Lock configuration and this identity's "
                "s3:PutObject / s3:ListBucketVersions / s3:GetObject(Version) permissions",
            ) from None

    def append(self, anchor: Anchor) -> None:
        extra: dict[str, Any] = {}
        if self.retention_days:
            extra["ObjectLockMode"] = self.retention_mode
            extra["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self.retention_days
            )
        with self._errors("write"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.key(anchor.trail, anchor.seq),
                Body=json.dumps(anchor.as_dict(), sort_keys=True).encode("utf-8"),
                ContentType="application/json",
                # Object Lock needs an integrity checksum on every PUT.
                ChecksumAlgorithm="SHA256",
                **extra,
            )

    def trails(self) -> list[str]:
        with self._errors("list"):
            listed = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            )
        return [
            entry["Prefix"][len(self.prefix) :].rstrip("/")
            for entry in listed.get("CommonPrefixes", [])
        ]

    def latest(self, trail: str) -> Anchor | None:
        """The newest anchor: the first key listed, also when a delete marker hides it."""
        prefix = f"{self.prefix}{trail}/"
        with self._errors("read"):
            listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=prefix, MaxKeys=50)
            versions = [v for v in listed.get("Versions", []) if v["Key"].startswith(prefix)]
            if not versions:
                return None
            newest_key = min(v["Key"] for v in versions)
            # S3 lists a key's versions newest first: the first write is the last
            # listed. A later PUT over the same key (an older anchor's body copied
            # there) is a new version and never replaces what verify reads.
            for version in reversed([v for v in versions if v["Key"] == newest_key]):
                body = self.client.get_object(
                    Bucket=self.bucket, Key=newest_key, VersionId=version["VersionId"]
                )["Body"].read()
                try:
                    anchor = Anchor.parse(
                        json.loads(body), f"{self.where}{newest_key[len(self.prefix) :]}"
                    )
                except ValueError:
                    continue
                if anchor is not None and self.key(trail, anchor.seq) == newest_key:
                    return anchor
        return None


def s3_client_factory(settings: AuditSettings) -> Callable[[], Any]:
    def build() -> Any:
        from botocore.config import Config as BotoConfig

        from agentctl.aws_sessions import new_session

        session = new_session(profile_name=settings.s3_profile, region_name=settings.s3_region)
        return session.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}),
        )

    return build


def default_anchor_file() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("agentctl")) / "audit-anchors.jsonl"


def open_anchor_store(
    config: Config, *, s3_client: Callable[[], Any] | None = None
) -> AnchorStore | None:
    """The configured anchor store (None: ``audit.anchor: off``)."""
    settings = config.audit
    if settings.anchor == "off":
        return None
    if settings.anchor == "s3":
        return S3AnchorStore(settings, s3_client or s3_client_factory(settings))
    if settings.anchor == "file":
        return LocalAnchorFile(settings.anchor_file or default_anchor_file())
    raise ConfigError(
        f"audit.anchor is '{settings.anchor}'", hint=f"use one of: {', '.join(ANCHOR_KINDS)}"
    )


def anchor_appended(
    store: StateStore, anchors: AnchorStore | None, keys: ChainKeySource | None, now: datetime
) -> Anchor | None:
    """Anchor the last event this process appended (what it can vouch for: it
    computed that MAC itself), once per command."""
    event, trail = store.last_appended, store.trail
    if anchors is None or event is None or not trail:
        return None
    key = keys.current(trail) if keys is not None else None
    anchor = Anchor.of(trail, event, key, now)
    anchors.append(anchor)
    store.last_appended = None
    return anchor
