"""The audit chain key: an HMAC key that lives in the secret store, never in the state.

Every audit event carries ``mac = HMAC-SHA256(key, hash)``, where ``hash`` is
the event's plain sha256 over all its fields and the previous event's hash. So
the MAC of one event vouches for it and, through the hash links, for every
event before it. Someone who can write the state database (but not read the
secret store) can still recompute plain hashes; they cannot produce MACs, so
an edited, inserted, reordered or renumbered event is found by
``agentctl audit verify`` at its own seq.

The key record in the secret store (``audit/chain-key/<trail>``, the trail's
random name from the head row: states sharing a secret store never share a
key) is JSON::

    {"version": 1, "key": "<base64 of 32 random bytes>", "keyed_from": 1,
     "created": "2026-12-03T07:00:00+00:00"}

``keyed_from`` is the first seq the key sealed: an old unkeyed trail keeps its
events below it unsealed until ``agentctl audit seal`` verifies and seals them
(and sets it to 1). It lives next to the key, out of a state writer's reach, so
stripping the MACs off events cannot pass them off as "older than the key".

The key is created on first use, inside the audit append's write transaction
(which serializes every appender of the state), so two processes starting a
new trail at once cannot each create a key of their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as _random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentctl.errors import SecretStoreError, StateError

if TYPE_CHECKING:
    from agentctl.config import SecretsSettings
    from agentctl.secrets import SecretStore

CHAIN_KEY_PREFIX = "audit/chain-key/"


def chain_key_name(trail: str) -> str:
    """The secret store key of one trail's chain key (``audit/chain-key/<trail>``)."""
    return f"{CHAIN_KEY_PREFIX}{trail}"


_KEY_BYTES = 32
# Domain separation: a MAC made for one purpose never verifies as another (an
# event's MAC copied into the head row or an anchor does not fit there).
_EVENT = b"agentctl.audit.event.v1\n"
_HEAD = b"agentctl.audit.head.v1\n"
_ANCHOR = b"agentctl.audit.anchor.v1\n"
_JOURNAL = b"agentctl.audit.journal.v1\n"


@dataclass(frozen=True)
class ChainKey:
    """The audit chain's HMAC key (the bytes never show in repr or output)."""

    secret: bytes = field(repr=False)
    keyed_from: int = 1
    created: str = ""

    @property
    def key_id(self) -> str:
        """A short public name of the key (recorded in the head and anchors), not the key."""
        return hashlib.sha256(b"agentctl.audit.key-id\n" + self.secret).hexdigest()[:16]

    def _mac(self, domain: bytes, message: str) -> str:
        return hmac.new(self.secret, domain + message.encode("utf-8"), hashlib.sha256).hexdigest()

    def event_mac(self, event_hash: str) -> str:
        return self._mac(_EVENT, event_hash)

    def head_mac(self, seq: int, event_hash: str) -> str:
        return self._mac(_HEAD, f"{seq}\n{event_hash}")

    def anchor_mac(self, fields: Mapping[str, Any]) -> str:
        return self._mac(_ANCHOR, json.dumps(dict(fields), sort_keys=True, separators=(",", ":")))

    def journal_mac(self, event_hash: str) -> str:
        return self._mac(_JOURNAL, event_hash)

    @staticmethod
    def matches(expected: str, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(expected, given)

    def record(self) -> str:
        """The JSON kept in the secret store."""
        return json.dumps(
            {
                "version": 1,
                "key": base64.b64encode(self.secret).decode("ascii"),
                "keyed_from": self.keyed_from,
                "created": self.created,
            },
            sort_keys=True,
        )

    @classmethod
    def parse(cls, text: str) -> ChainKey:
        try:
            data = json.loads(text)
            secret = base64.b64decode(data["key"], validate=True)
            keyed_from = int(data.get("keyed_from", 1))
        except (ValueError, KeyError, TypeError):
            raise SecretStoreError(
                "the audit chain key in the secret store is not a key "
                "agentctl wrote (damaged or replaced)",
                hint="restore it from the secret store's backup; without it the trail "
                "cannot be verified",
            ) from None
        if len(secret) < _KEY_BYTES or keyed_from < 1:
            raise SecretStoreError(
                "the audit chain key in the secret store is malformed",
                hint="restore it from the secret store's backup",
            )
        return cls(secret=secret, keyed_from=keyed_from, created=str(data.get("created", "")))

    @classmethod
    def generate(cls, keyed_from: int, now: datetime | None = None) -> ChainKey:
        moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        return cls(secret=_random.token_bytes(_KEY_BYTES), keyed_from=keyed_from, created=moment)


def secret_store_configured(settings: SecretsSettings, environ: Mapping[str, str]) -> bool:
    """Whether the user chose a secret store (a backend, or a passphrase for the default one)."""
    from agentctl.secrets import ENV_BACKEND

    if environ.get(ENV_BACKEND) or settings.backend:
        return True
    return bool(environ.get(settings.passphrase_env) or settings.passphrase_file)


class ChainKeySource:
    """Loads (and on first use creates) the chain key from the secret store, once per process.

    ``configured=False`` means no secret store was chosen: there is nowhere to
    keep a key, the trail stays unkeyed, and ``audit verify`` says so. A
    configured store that fails is an error (never a silent unkeyed event).
    """

    def __init__(self, secrets_factory: Callable[[], SecretStore], *, configured: bool) -> None:
        self._secrets_factory = secrets_factory
        self.configured = configured
        self._lock = threading.Lock()
        self._keys: dict[str, ChainKey] = {}

    def _store(self) -> SecretStore:
        try:
            return self._secrets_factory()
        except SecretStoreError as exc:
            raise StateError(
                f"cannot reach the audit chain key: {exc.message}", hint=exc.hint
            ) from None

    def _load(self, trail: str) -> ChainKey | None:
        try:
            stored = self._store().get(chain_key_name(trail))
        except SecretStoreError as exc:
            raise StateError(
                f"cannot read the audit chain key: {exc.message}", hint=exc.hint
            ) from None
        return None if stored is None else ChainKey.parse(stored.reveal())

    def current(self, trail: str) -> ChainKey | None:
        """The trail's key if it has one (never creates one)."""
        if not self.configured:
            return None
        with self._lock:
            if trail not in self._keys:
                found = self._load(trail)
                if found is None:
                    return None
                self._keys[trail] = found
            return self._keys[trail]

    def for_append(self, trail: str, next_seq: int, *, create: bool = True) -> ChainKey | None:
        """The key to seal event ``next_seq`` with, created if this is its first use.

        Called inside the append's write transaction: appenders of one state
        are serialized there, so exactly one of them creates the key. A key is
        never created over an existing one, and never for a trail that is
        already keyed (``create=False``): a key that went missing (deleted,
        moved to another store) is an error, not a reason to start afresh.
        """
        if not self.configured:
            return None
        existing = self.current(trail)
        if existing is not None:
            return existing
        if not create:
            return None
        from agentctl.secrets import Secret

        with self._lock:
            created = ChainKey.generate(keyed_from=next_seq)
            try:
                self._store().put(chain_key_name(trail), Secret(created.record()))
            except SecretStoreError as exc:
                raise StateError(
                    f"cannot store the new audit chain key: {exc.message}", hint=exc.hint
                ) from None
            stored = self._load(trail)  # what every later reader will get
            if stored is None:
                raise StateError(
                    "the secret store did not keep the new audit chain key",
                    hint="check the secret store backend",
                )
            self._keys[trail] = stored
            return stored

    def replace(self, trail: str, key: ChainKey) -> None:
        """Store ``key`` (``audit seal`` lowering keyed_from) and use it from now on."""
        from agentctl.secrets import Secret

        with self._lock:
            try:
                self._store().put(chain_key_name(trail), Secret(key.record()))
            except SecretStoreError as exc:
                raise StateError(
                    f"cannot update the audit chain key: {exc.message}", hint=exc.hint
                ) from None
            self._keys[trail] = key


def key_source_for(
    settings: SecretsSettings,
    secrets_factory: Callable[[], SecretStore],
    environ: Mapping[str, str] | None = None,
) -> ChainKeySource:
    env = os.environ if environ is None else environ
    return ChainKeySource(secrets_factory, configured=secret_store_configured(settings, env))
