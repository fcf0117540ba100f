"""Who may call ``agentctl serve``: per-caller credentials agentctl issues.

Two kinds, both issued by ``agentctl serve token create --name NAME``:

- ``token``: a bearer token (``Authorization: Bearer agentctl_serve_…``), 256
  random bits. Only its sha256 is stored (in the state, so every ``serve`` on
  the team's state knows it); the value is shown once, at creation.
- ``hmac``: a signing key; each request carries ``X-Agentctl-Caller``,
  ``X-Agentctl-Timestamp`` (Unix seconds), ``X-Agentctl-Nonce`` and
  ``X-Agentctl-Signature: v1=<hex>``, the HMAC-SHA256 of
  :func:`signing_payload`. A request outside the timestamp window, or whose
  nonce was already accepted, is refused: a captured request cannot be
  replayed. The key cannot be stored hashed (the server recomputes the HMAC),
  so it lives in the secret store; the state records its fingerprint.

A refusal says only "unauthorized" to the client; the audit trail gets the
precise reason.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from agentctl.clock import Clock, system_clock
from agentctl.errors import NotFound, UsageError
from agentctl.secrets import Secret
from agentctl.state.records import ServeCallerRecord

if TYPE_CHECKING:
    from agentctl.secrets import SecretStore
    from agentctl.state import StateStore

TOKEN = "token"
HMAC = "hmac"
CALLER_KINDS = (TOKEN, HMAC)
TOKEN_PREFIX = "agentctl_serve_"
SIGNING_KEY_PREFIX = "agentctl_sign_"
CALLER_HEADER = "x-agentctl-caller"
TIMESTAMP_HEADER = "x-agentctl-timestamp"
NONCE_HEADER = "x-agentctl-nonce"
SIGNATURE_HEADER = "x-agentctl-signature"
DEFAULT_WINDOW_SECONDS = 300

_CALLER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_TIMESTAMP = re.compile(r"\d{1,12}")
_SIGNATURE = re.compile(r"v1=([0-9a-f]{64})")


def signing_key_ref(name: str) -> str:
    return f"serve/caller/{name}/signing-key"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def signing_payload(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What a signed request's HMAC covers: method, path, time, nonce and body."""
    return "\n".join(
        ("agentctl-v1", method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest())
    ).encode("utf-8")


def sign_request(
    key: Secret, method: str, path: str, body: bytes, *, timestamp: int, nonce: str
) -> dict[str, str]:
    """The headers of a signed request (for clients written in Python, and tests)."""
    digest = hmac.new(
        key.reveal().encode("utf-8"),
        signing_payload(method, path, str(timestamp), nonce, body),
        hashlib.sha256,
    ).hexdigest()
    return {
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: f"v1={digest}",
    }


# -- issuing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCaller:
    """A new caller and its credential, to be shown once and never again."""

    record: ServeCallerRecord
    credential: Secret


def create_caller(
    state: StateStore,
    secrets: Callable[[], SecretStore],
    *,
    name: str,
    kind: str,
    created_by: str,
    clock: Clock = system_clock,
) -> IssuedCaller:
    if not _CALLER_NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a caller name",
            hint="use lowercase letters, digits, '.', '_' and '-' (e.g. pager, siem-hook)",
        )
    if kind not in CALLER_KINDS:
        raise UsageError(f"unknown caller kind {kind!r}", hint="token or hmac")
    existing = state.get_serve_caller(name)
    if existing is not None and existing.live:
        raise UsageError(
            f"a serve caller named {name!r} already exists",
            hint=f"revoke it first (`agentctl serve token revoke {name}`) or choose another name",
        )
    now = clock()
    if kind == TOKEN:
        credential = Secret(TOKEN_PREFIX + _random.token_urlsafe(32))
        record = ServeCallerRecord(
            name=name,
            kind=TOKEN,
            fingerprint=credential.fingerprint(),
            created_at=now,
            created_by=created_by,
            token_hash=token_hash(credential.reveal()),
        )
    else:
        credential = Secret(SIGNING_KEY_PREFIX + _random.token_urlsafe(32))
        ref = signing_key_ref(name)
        # The key first: a caller recorded without its key could never sign.
        secrets().put(ref, credential)
        record = ServeCallerRecord(
            name=name,
            kind=HMAC,
            fingerprint=credential.fingerprint(),
            created_at=now,
            created_by=created_by,
            secret_ref=ref,
        )
    state.put_serve_caller(record)
    return IssuedCaller(record=record, credential=credential)


def revoke_caller(
    state: StateStore,
    secrets: Callable[[], SecretStore],
    name: str,
    *,
    clock: Clock = system_clock,
) -> ServeCallerRecord:
    """Revoke at once (the next request is refused), then drop a signing key."""
    record = state.get_serve_caller(name)
    if record is None or not record.live:
        raise NotFound(
            f"no live serve caller named {name!r}", hint="see `agentctl serve token list`"
        )
    state.revoke_serve_caller(name, clock())
    if record.secret_ref:
        secrets().delete(record.secret_ref)
    revoked = state.get_serve_caller(name)
    assert revoked is not None
    return revoked


def signing_key_refs(state: StateStore) -> list[str]:
    """Secret-store keys of the live signing keys (``agentctl secrets migrate``)."""
    return sorted(
        c.secret_ref for c in state.list_serve_callers() if c.live and c.secret_ref is not None
    )


# -- checking a request -------------------------------------------------------------------


@dataclass(frozen=True)
class AuthResult:
    """Who called (``caller``), or why the request is refused (``refused``)."""

    caller: str | None
    refused: str | None = None
    kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.caller is not None and self.refused is None


class Authenticator:
    """Checks one request's credentials against the state (and the secret store
    for signing keys). Revocation takes effect on the next request: the caller's
    record is read every time; only a signing key's value is cached, by fingerprint.
    """

    def __init__(
        self,
        state: StateStore,
        secrets: Callable[[], SecretStore],
        *,
        clock: Clock = system_clock,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        self._state = state
        self._secrets = secrets
        self._clock = clock
        self._window = window_seconds
        self._keys: dict[tuple[str, str], Secret] = {}

    def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> AuthResult:
        authorization = headers.get("authorization")
        if authorization is not None:
            return self._bearer(authorization)
        if SIGNATURE_HEADER in headers:
            return self._signed(method, path, headers, body)
        return AuthResult(None, "no credentials (Authorization or X-Agentctl-Signature)")

    def _bearer(self, authorization: str) -> AuthResult:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return AuthResult(None, "malformed bearer token")
        record = self._state.serve_caller_by_token_hash(token_hash(token))
        if record is None or record.kind != TOKEN:
            return AuthResult(None, "unknown bearer token")
        if not record.live:
            return AuthResult(None, f"caller {record.name} is revoked", kind=TOKEN)
        self._state.touch_serve_caller(record.name, self._clock())
        return AuthResult(record.name, kind=TOKEN)

    def _signed(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> AuthResult:
        name = headers.get(CALLER_HEADER, "")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        signature = _SIGNATURE.fullmatch(headers.get(SIGNATURE_HEADER, ""))
        if not (_CALLER_NAME.fullmatch(name) and _TIMESTAMP.fullmatch(timestamp)):
            return AuthResult(None, "malformed signature headers (caller, timestamp)")
        if not (_NONCE.fullmatch(nonce) and signature):
            return AuthResult(None, "malformed signature headers (nonce, signature)")
        record = self._state.get_serve_caller(name)
        if record is None or record.kind != HMAC or record.secret_ref is None:
            return AuthResult(None, f"unknown signing caller {name}")
        if not record.live:
            return AuthResult(None, f"caller {name} is revoked", kind=HMAC)
        now = self._clock()
        skew = abs(now.timestamp() - int(timestamp))
        if skew > self._window:
            return AuthResult(
                None,
                f"timestamp {int(skew)}s away from the server's clock (window {self._window}s)",
                kind=HMAC,
            )
        key = self._signing_key(record)
        if key is None:
            return AuthResult(None, f"signing key of {name} is not in the secret store", kind=HMAC)
        expected = hmac.new(
            key.reveal().encode("utf-8"),
            signing_payload(method, path, timestamp, nonce, body),
            hashlib.sha256,
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.group(1)):
            return AuthResult(None, "bad signature", kind=HMAC)
        # Only a verified request records its nonce: forged ones cannot fill the table.
        forget_before = now - timedelta(seconds=2 * self._window)
        if not self._state.remember_nonce(name, nonce, now, forget_before):
            return AuthResult(None, "replayed request (nonce already used)", kind=HMAC)
        self._state.touch_serve_caller(name, now)
        return AuthResult(name, kind=HMAC)

    def _signing_key(self, record: ServeCallerRecord) -> Secret | None:
        cached = self._keys.get((record.name, record.fingerprint))
        if cached is not None:
            return cached
        assert record.secret_ref is not None
        key = self._secrets().get(record.secret_ref)
        if key is None or key.fingerprint() != record.fingerprint:
            return None
        self._keys[(record.name, record.fingerprint)] = key
        return key
