"""Secret values and the stores that hold them.

A secret (GitHub App key, installation token, access key) exists in exactly two
places: the secret store, and a :class:`Secret` in memory while it is used.
``Secret`` never shows its value in repr/str/format/logging/pickling, so an
accidental ``print`` or exception message cannot leak it; ``reveal()`` is the
one explicit, greppable way out.

Two kinds of store, chosen explicitly (``secrets.backend`` in agentctl.yaml or
``AGENTCTL_SECRETS_BACKEND``):

- a keyring backend, for one operator. keyring's own auto-detection would
  silently fall back to its ``fail`` backend or a plaintext file on a headless
  host; ``encrypted-file`` is for such hosts and never prompts.
- ``aws-secretsmanager``, for a team: every operator with the team's AWS access
  reads the same App keys and tokens, so a kill works from any of their machines.

keyring, cryptography and boto3 are imported only when a store is opened, so
commands that never touch secrets do not pay for them.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import hmac
import importlib
import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, cast

from agentctl.config import SecretsSettings
from agentctl.errors import SecretStoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "agentctl"
ENV_BACKEND = "AGENTCTL_SECRETS_BACKEND"
ENV_FILE = "AGENTCTL_SECRETS_FILE"
BACKEND_NAMES = (
    "aws-secretsmanager",
    "secret-service",
    "macos",
    "windows",
    "encrypted-file",
    "keyring:<module.Class>",
)
_MASK = "Secret('********')"


class Secret:
    """A secret string that does not reveal itself by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short, stable, non-reversible identifier for logs and state."""
        return hashlib.sha256(self._value.encode("utf-8")).hexdigest()[:16]

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        # f-strings call __format__, not __str__; any spec still gets the mask.
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so equality checks do not leak a prefix through timing.
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __reduce__(self) -> NoReturn:
        # Pickling would write the plain value into whatever stream it goes to
        # (a cache, a multiprocessing queue, a crash dump).
        raise TypeError("Secret values are not picklable; pass them through the secret store")

    def __copy__(self) -> Secret:
        return self  # immutable: copying is pointless and must not go through __reduce__

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


# What a credential looks like, for the guard below. Deliberately specific
# (prefixes with the length of a real token) so hashes and ids do not trip it.
# Each kind also names the literals every match of its pattern contains
# (tests/test_secrets.py checks them against the patterns): a value holding
# none of them cannot match, and most values are checked by that alone.
_SECRET_KINDS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    # ghs_ installation tokens come in two forms: 36 alphanumerics, and since
    # April 2026 the stateless ghs_<app id>_<JWT> (~520 characters, with dots and
    # underscores); GitHub's own pattern for both is ghs_[A-Za-z0-9._]{36,}.
    (
        "GitHub token",
        ("gh", "github_pat_"),
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|ghs_[0-9]+_[A-Za-z0-9._-]{20,}"
            r"|github_pat_[A-Za-z0-9_]{20,})"
        ),
    ),
    ("AWS access key id", ("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("PEM private key or certificate", ("-----BEGIN",), re.compile(r"-----BEGIN")),
    # Not anchored on a word boundary: a JWT embedded after "_" (a stateless
    # GitHub token whose prefix was cut off) is still a credential.
    (
        "JSON Web Token",
        ("eyJ",),
        re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."),
    ),
    (
        "agentctl serve credential",
        ("agentctl_",),
        re.compile(r"\bagentctl_(?:serve|sign)_[A-Za-z0-9_-]{20,}"),
    ),
)
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, pattern) for kind, _, pattern in _SECRET_KINDS
)
_SECRET_LITERALS = tuple(literal for _, literals, _ in _SECRET_KINDS for literal in literals)
# Deeper values than this are left to the full walk (which recurses as before).
_QUICK_DEPTH = 32


class SecretLeakError(ValueError):
    """A secret value was about to be written where secrets never go.

    Deliberately not an ``AgentctlError``: this is a bug in agentctl, reported
    as one, never a condition a user is expected to handle.
    """


def check_no_secrets(value: object, where: str) -> None:
    """Raise :class:`SecretLeakError` if ``value`` contains something secret-looking.

    Walks dicts, lists and tuples. The message names the place and the kind of
    secret, never the value.
    """
    # Every audit event, resource and intent is checked (apply: several per
    # agent). Most hold no string with any literal a secret pattern needs:
    # that is settled by one look at their strings together. Anything else —
    # a literal found, a Secret, a container other than dict/list/tuple, deep
    # nesting — gets the full walk, which decides and names the place.
    strings: list[str] = []
    if _collect_strings(value, strings, 0):
        text = "\n".join(strings)  # no literal holds "\n": none is found across two
        if not any(literal in text for literal in _SECRET_LITERALS):
            return
    _check_each(value, where)


def _collect_strings(value: object, strings: list[str], depth: int) -> bool:
    """Append the strings the full walk would search; False when only the
    full walk can judge ``value`` (see check_no_secrets). Exact types are
    tested first and string items appended in place: most nodes are strings."""
    kind = type(value)
    if kind is str:
        strings.append(cast(str, value))
        return True
    if kind is dict:
        if depth >= _QUICK_DEPTH:
            return False
        for key, item in cast("dict[object, object]", value).items():
            if type(key) is str:
                strings.append(key)
            elif not _collect_strings(key, strings, depth + 1):
                return False
            if type(item) is str:
                strings.append(item)
            elif not _collect_strings(item, strings, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= _QUICK_DEPTH:
            return False
        for item in cast("list[object] | tuple[object, ...]", value):
            if type(item) is str:
                strings.append(item)
            elif not _collect_strings(item, strings, depth + 1):
                return False
        return True
    if value is None or kind is int or kind is bool or kind is float:
        return True
    if isinstance(value, Secret):
        return False
    if isinstance(value, str):  # a str subclass (an enum's value): searched as it is
        strings.append(value)
        return True
    # Another mapping or sequence type: the full walk iterates it. Anything
    # else (dates, bytes) the full walk does not look into either.
    return not isinstance(value, Mapping | list | tuple)


def _check_each(value: object, where: str) -> None:
    """The full walk: every string against every pattern, naming the first hit."""
    if isinstance(value, Secret):
        raise SecretLeakError(f"{where} is a Secret; never record secret values")
    if isinstance(value, str):
        for kind, pattern in _SECRET_PATTERNS:
            if pattern.search(value):
                raise SecretLeakError(f"{where} looks like a {kind}; never record secret values")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_each(key, f"{where} key")
            _check_each(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_each(item, f"{where}[{index}]")


class SecretStore(ABC):
    """Where secret values live: ``put``/``get``/``delete`` by key (e.g.
    ``github/app/<agent>/private-key``). Keys are names, never secret."""

    name: str
    # Every operator of the team reads the same store: a key absent here is
    # absent for everyone (kill relies on it to rule out an agent's GitHub App).
    shared: bool = False

    @abstractmethod
    def put(self, key: str, secret: Secret) -> None: ...

    @abstractmethod
    def get(self, key: str) -> Secret | None: ...

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there (deleting is idempotent)."""

    def keys(self) -> list[str] | None:
        """Every key this store holds, or None when the backend cannot list them
        (macOS and Windows keychains answer only for a key asked by name)."""
        return None


class KeyringSecretStore(SecretStore):
    """``put``/``get``/``delete`` under service ``agentctl`` in one keyring backend."""

    def __init__(self, backend: KeyringBackend, name: str) -> None:
        self.backend = backend
        self.name = name

    def put(self, key: str, secret: Secret) -> None:
        if not isinstance(secret, Secret):
            raise TypeError("SecretStore.put takes a Secret, so plain strings are never stored")
        with self._errors("store", key, secret):
            self.backend.set_password(SERVICE, key, secret.reveal())

    def get(self, key: str) -> Secret | None:
        with self._errors("read", key, None):
            value = self.backend.get_password(SERVICE, key)
        return None if value is None else Secret(value)

    def delete(self, key: str) -> bool:
        from keyring.errors import PasswordDeleteError

        try:
            with self._errors("delete", key, None):
                self.backend.delete_password(SERVICE, key)
        except PasswordDeleteError:
            return False
        return True

    def keys(self) -> list[str] | None:
        list_keys = getattr(self.backend, "agentctl_keys", None)
        if list_keys is not None:
            with self._errors("list", "*", None):
                return sorted(list_keys(SERVICE))
        if (
            f"{type(self.backend).__module__}.{type(self.backend).__qualname__}"
            == (_NAMED_BACKENDS["secret-service"])
        ):
            with self._errors("list", "*", None):
                return _secret_service_keys(self.backend)
        return None

    @contextlib.contextmanager
    def _errors(self, verb: str, key: str, secret: Secret | None) -> Iterator[None]:
        from keyring.errors import PasswordDeleteError

        try:
            yield
        except (SecretStoreError, PasswordDeleteError):
            raise
        except Exception as exc:  # backends raise anything from D-Bus, OS and crypto layers
            message = str(exc)
            if secret is not None and secret.reveal():
                message = message.replace(secret.reveal(), "********")
            # `from None`: the chained original could carry the value in its args.
            raise SecretStoreError(
                f"secret backend {self.name} could not {verb} '{key}': "
                f"{type(exc).__name__}: {message}",
                hint=f"check that the {self.name} backend is running and unlocked, or {_HINT}",
            ) from None


def _secret_service_keys(backend: Any) -> list[str]:
    """The usernames of the items of service ``agentctl`` in the Secret Service
    collection keyring uses (the same query keyring's own lookups make)."""
    from contextlib import closing

    scheme = backend.schemes[backend.scheme]
    collection = backend.get_preferred_collection()
    with closing(collection.connection):
        items = collection.search_items({scheme["service"]: SERVICE})
        return sorted({str(item.get_attributes().get(scheme["username"])) for item in items})


class SecretsManagerClient(Protocol):
    """The part of boto3's Secrets Manager client the store uses."""

    def get_secret_value(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def put_secret_value(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def create_secret(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def delete_secret(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def describe_secret(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def restore_secret(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def get_paginator(self, operation_name: str) -> Any: ...


# Secrets Manager's rule for secret names.
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
AWS_SECRETS_MANAGER = "aws-secretsmanager"
SECRETS_POLICY_HINT = (
    "the operator needs the AgentctlSecrets* statements of the operator policy "
    "(`agentctl policy operator`, or policies/operator-policy.json) for the "
    "secrets under secrets.prefix"
)


class SecretsManagerStore(SecretStore):
    """A team's secret store: one AWS Secrets Manager secret per key.

    Each secret is named ``<prefix><key>`` (the operator policy grants exactly
    that prefix), tagged ``managed-by=agentctl`` and encrypted with
    ``kms_key_id`` when one is configured. Every operator with the team's AWS
    access reads the same App keys and token values, so any of them can kill,
    rotate or revoke what another registered or minted.

    Deletion is immediate (``ForceDeleteWithoutRecovery``): what agentctl
    deletes is a revoked token or a replaced key, and a recovery window would
    only keep it readable. A secret someone scheduled for deletion by hand is
    absent to ``get`` and restored by ``put``.
    """

    shared = True

    name = AWS_SECRETS_MANAGER

    def __init__(
        self,
        client_factory: Callable[[], SecretsManagerClient],
        *,
        prefix: str = "agentctl/",
        kms_key_id: str | None = None,
    ) -> None:
        if prefix and not _SECRET_NAME.fullmatch(prefix):
            raise SecretStoreError(
                f"secrets.prefix {prefix!r} is not usable in a Secrets Manager name",
                hint="use letters, digits and / _ + = . @ - (e.g. agentctl/ or team-a/agentctl/)",
            )
        self._client_factory = client_factory
        self._client: SecretsManagerClient | None = None
        self._lock = threading.Lock()
        self.prefix = prefix
        self.kms_key_id = kms_key_id

    @property
    def client(self) -> SecretsManagerClient:
        with self._lock:
            if self._client is None:
                with self._errors("connect to", "*", None):
                    self._client = self._client_factory()
            return self._client

    def secret_name(self, key: str) -> str:
        name = f"{self.prefix}{key}"
        if not _SECRET_NAME.fullmatch(name):
            raise SecretStoreError(
                f"'{key}' cannot be a Secrets Manager secret name",
                hint="keys use letters, digits and / _ + = . @ - only (at most 512 with the prefix)",
            )
        return name

    def put(self, key: str, secret: Secret) -> None:
        if not isinstance(secret, Secret):
            raise TypeError("SecretStore.put takes a Secret, so plain strings are never stored")
        name = self.secret_name(key)
        with self._errors("store", key, secret):
            try:
                described = self.client.describe_secret(SecretId=name)
            except Exception as exc:
                if _aws_code(exc) != "ResourceNotFoundException":
                    raise
                described = None
            if described is None:
                self._create(name, secret)
                return
            if described.get("DeletedDate"):
                # Scheduled for deletion by hand: writing to it would fail.
                self.client.restore_secret(SecretId=name)
            self.client.put_secret_value(SecretId=name, SecretString=secret.reveal())

    def _create(self, name: str, secret: Secret) -> None:
        create: dict[str, Any] = {
            "Name": name,
            "SecretString": secret.reveal(),
            "Description": "agentctl secret (value never shown by agentctl)",
            "Tags": [{"Key": "managed-by", "Value": "agentctl"}],
        }
        if self.kms_key_id:
            create["KmsKeyId"] = self.kms_key_id
        try:
            self.client.create_secret(**create)
        except Exception as exc:
            if _aws_code(exc) != "ResourceExistsException":
                raise
            # Another operator created it a moment ago: last writer wins, as
            # with put_secret_value on an existing secret.
            self.client.put_secret_value(SecretId=name, SecretString=secret.reveal())

    def get(self, key: str) -> Secret | None:
        name = self.secret_name(key)
        with self._errors("read", key, None):
            try:
                answer = self.client.get_secret_value(SecretId=name)
            except Exception as exc:
                code = _aws_code(exc)
                if code == "ResourceNotFoundException" or (
                    code == "InvalidRequestException" and _marked_for_deletion(exc)
                ):
                    return None
                raise
        value = answer.get("SecretString")
        if not isinstance(value, str):
            raise SecretStoreError(
                f"secret {name} holds binary data, not a value agentctl stored",
                hint="agentctl stores strings only: remove or rename that secret",
            )
        return Secret(value)

    def delete(self, key: str) -> bool:
        name = self.secret_name(key)
        with self._errors("delete", key, None):
            # A forced delete of a missing secret succeeds: ask first, to answer
            # whether there was anything to delete.
            try:
                if self.client.describe_secret(SecretId=name).get("DeletedDate"):
                    return False
                self.client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            except Exception as exc:
                if _aws_code(exc) == "ResourceNotFoundException":
                    return False
                raise
        return True

    def keys(self) -> list[str] | None:
        found: set[str] = set()
        with self._errors("list", f"{self.prefix}*", None):
            pages = self.client.get_paginator("list_secrets").paginate(
                Filters=[{"Key": "name", "Values": [self.prefix]}] if self.prefix else []
            )
            for page in pages:
                for entry in page.get("SecretList", []):
                    name = str(entry.get("Name", ""))
                    # The name filter is a case-insensitive prefix match.
                    if name.startswith(self.prefix) and not entry.get("DeletedDate"):
                        found.add(name[len(self.prefix) :])
        return sorted(found)

    @contextlib.contextmanager
    def _errors(self, verb: str, key: str, secret: Secret | None) -> Iterator[None]:
        try:
            yield
        except SecretStoreError:
            raise
        except Exception as exc:
            code = _aws_code(exc) or type(exc).__name__
            message = _aws_message(exc)
            if secret is not None and secret.reveal():
                message = message.replace(secret.reveal(), "********")
            if code in {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException"}:
                hint = SECRETS_POLICY_HINT
            elif code in {"KMSAccessDeniedException", "KMSInvalidStateException"}:
                hint = (
                    "the KMS key in secrets.kms_key_id must allow this operator "
                    "kms:Decrypt and kms:GenerateDataKey (its key policy and the operator policy)"
                )
            elif code in {"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"}:
                hint = "give this machine the team's AWS credentials (profile, SSO or environment)"
            elif code == "NoRegionError":
                hint = "set secrets.region in agentctl.yaml, or AWS_REGION"
            else:
                hint = "check the AWS credentials, secrets.region and secrets.endpoint_url"
            # `from None`: the chained original's args hold the request parameters.
            raise SecretStoreError(
                f"secret backend {self.name} could not {verb} '{key}': {code}: {message}",
                hint=hint,
            ) from None


def _aws_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    error = response.get("Error") or {}
    code = str(error.get("Code") or "") if isinstance(error, Mapping) else ""
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if status == 403 and code in ("", "403"):
        # An authorisation failure answered in a shape botocore could not parse
        # (moto answers IAM denials of JSON services in XML).
        return "AccessDeniedException"
    return code or None


def _aws_message(exc: BaseException) -> str:
    text = str(exc)
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error") or {}
        if isinstance(error, Mapping) and error.get("Message"):
            text = str(error["Message"])
    inner = re.search(r"<Message>(.*?)</Message>", text, re.DOTALL)
    if inner:
        text = inner.group(1)
    return " ".join(text.split())[:300]


def _marked_for_deletion(exc: BaseException) -> bool:
    # AWS says "marked for deletion", moto "marked deleted".
    return re.search(r"marked\s+(?:for\s+)?delet", _aws_message(exc), re.IGNORECASE) is not None


def secretsmanager_client_factory(
    settings: SecretsSettings,
) -> Callable[[], SecretsManagerClient]:
    """boto3's client for the configured region/profile/endpoint (standard AWS
    configuration for whatever is unset), built on first use."""

    def build() -> SecretsManagerClient:
        from botocore.config import Config as BotoConfig

        from agentctl.aws_sessions import new_session

        session = new_session(profile_name=settings.profile, region_name=settings.region)
        client: SecretsManagerClient = session.client(
            "secretsmanager",
            endpoint_url=settings.endpoint_url,
            config=BotoConfig(
                retries={"mode": "standard", "total_max_attempts": 4},
                connect_timeout=5,
                read_timeout=20,
            ),
        )
        return client

    return build


_HINT = (
    f"choose a backend with secrets.backend in agentctl.yaml or {ENV_BACKEND}: "
    "aws-secretsmanager (a team's shared store), "
    "secret-service (Linux desktop / gnome-keyring), macos, windows, "
    "encrypted-file (headless hosts; passphrase in AGENTCTL_KEYRING_PASSPHRASE or "
    "secrets.passphrase_file), or keyring:<module.Class>"
)


def open_secret_store(
    settings: SecretsSettings,
    *,
    environ: Mapping[str, str] | None = None,
    backend: str | None = None,
    secretsmanager_client: Callable[[], SecretsManagerClient] | None = None,
) -> SecretStore:
    """Open the configured backend, or fail with what to configure.

    The environment wins over agentctl.yaml (as ``AGENTCTL_STATE`` does), so a
    CI job or an operator can override a checked-in configuration.
    """
    env = os.environ if environ is None else environ
    choice = backend or env.get(ENV_BACKEND) or settings.backend
    if not choice:
        passphrase = _passphrase(settings, env)
        if passphrase is None:
            raise SecretStoreError(
                "no secret backend configured, and no passphrase for the encrypted-file backend",
                hint=_HINT,
            )
        return KeyringSecretStore(_encrypted_file(settings, env, passphrase), "encrypted-file")
    if choice == "encrypted-file":
        passphrase = _passphrase(settings, env)
        if passphrase is None:
            raise SecretStoreError(
                "the encrypted-file secret backend needs a passphrase",
                hint=f"set {settings.passphrase_env}, or secrets.passphrase_file in agentctl.yaml",
            )
        return KeyringSecretStore(_encrypted_file(settings, env, passphrase), choice)
    if choice == AWS_SECRETS_MANAGER:
        return SecretsManagerStore(
            secretsmanager_client or secretsmanager_client_factory(settings),
            prefix=settings.prefix,
            kms_key_id=settings.kms_key_id,
        )
    if choice in _NAMED_BACKENDS:
        return KeyringSecretStore(_load_backend(_NAMED_BACKENDS[choice], choice), choice)
    if choice.startswith("keyring:"):
        return KeyringSecretStore(_load_backend(choice.removeprefix("keyring:"), choice), choice)
    raise SecretStoreError(f"unknown secret backend '{choice}'", hint=_HINT)


_NAMED_BACKENDS = {
    "secret-service": "keyring.backends.SecretService.Keyring",
    "macos": "keyring.backends.macOS.Keyring",
    "windows": "keyring.backends.Windows.WinVaultKeyring",
}
# keyring's placeholders: they "work" by failing or forgetting, never what anyone meant.
_REFUSED_BACKENDS = {
    "keyring.backends.fail.Keyring",
    "keyring.backends.null.Keyring",
    "keyring.backends.chainer.ChainerBackend",
}


def _load_backend(dotted: str, choice: str) -> KeyringBackend:
    from keyring.backend import KeyringBackend

    module_name, _, class_name = dotted.rpartition(".")
    if not module_name:
        raise SecretStoreError(
            f"secret backend '{choice}' must name a class as keyring:<module.Class>", hint=_HINT
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SecretStoreError(
            f"secret backend '{choice}' cannot be loaded: {exc}", hint=_HINT
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, KeyringBackend)):
        raise SecretStoreError(f"secret backend '{choice}' is not a keyring backend", hint=_HINT)
    if f"{cls.__module__}.{cls.__qualname__}" in _REFUSED_BACKENDS:
        raise SecretStoreError(f"secret backend '{choice}' does not store anything", hint=_HINT)
    try:
        # keyring's contract: priority raises (with the reason) when unusable here.
        cls.priority  # noqa: B018
        return cls()
    except Exception as exc:
        raise SecretStoreError(
            f"secret backend '{choice}' is not usable on this host: {exc}", hint=_HINT
        ) from None


def _passphrase(settings: SecretsSettings, env: Mapping[str, str]) -> str | None:
    value = env.get(settings.passphrase_env)
    if value:
        return value
    if settings.passphrase_file:
        path = Path(settings.passphrase_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretStoreError(
                f"cannot read the secret-store passphrase file {path}: {exc.strerror}",
                hint="fix secrets.passphrase_file in agentctl.yaml",
            ) from None
        if not text:
            raise SecretStoreError(f"the passphrase file {path} is empty")
        return text
    return None


def default_secrets_file() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("agentctl")) / "secrets.enc"


def _encrypted_file(
    settings: SecretsSettings, env: Mapping[str, str], passphrase: str
) -> KeyringBackend:
    raw = env.get(ENV_FILE) or settings.path
    path = Path(raw).expanduser() if raw else default_secrets_file()
    return _encrypted_file_backend_class()(path, passphrase)


@functools.cache
def _encrypted_file_backend_class() -> Callable[[Path, str], KeyringBackend]:
    """The encrypted-file keyring backend class.

    Built on first use because subclassing ``KeyringBackend`` needs keyring
    imported, which plain ``import agentctl.secrets`` must not pay for.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    from keyring.backend import KeyringBackend
    from keyring.compat import properties
    from keyring.errors import PasswordDeleteError

    file_format = "agentctl-encrypted-keyring"
    # scrypt at n=2**15 costs ~50 ms and 32 MiB per key derivation: slow for a
    # guesser, invisible to a CLI that derives once per process.
    scrypt_n, scrypt_r, scrypt_p = 2**15, 8, 1

    class EncryptedFileKeyring(KeyringBackend):
        """All entries in one AES-256-GCM encrypted JSON file (0600), scrypt-derived key.

        The whole mapping is encrypted, so even the key names stay private. The
        header (format, version, KDF parameters) is authenticated data: editing
        it fails decryption like a wrong passphrase does. Writes go to a temp
        file and are renamed into place under an exclusive lock, so concurrent
        agentctl processes never lose each other's entries or see half a file.
        """

        @properties.classproperty
        def priority(cls) -> float:
            # Never viable for keyring's auto-detection: it needs a path and a
            # passphrase that only agentctl's configuration can supply.
            raise RuntimeError("configured by agentctl only (secrets.backend: encrypted-file)")

        def __init__(self, path: Path, passphrase: str) -> None:
            super().__init__()
            self.path = path
            self._passphrase = passphrase.encode("utf-8")
            self._keys: dict[bytes, bytes] = {}

        def get_password(self, service: str, username: str) -> str | None:
            entries, _ = self._read()
            return entries.get(service, {}).get(username)

        def set_password(self, service: str, username: str, password: str) -> None:
            with self._locked():
                entries, salt = self._read()
                entries.setdefault(service, {})[username] = password
                self._write(entries, salt)

        def delete_password(self, service: str, username: str) -> None:
            with self._locked():
                entries, salt = self._read()
                if username not in entries.get(service, {}):
                    raise PasswordDeleteError(f"no secret named '{username}'")
                del entries[service][username]
                self._write(entries, salt)

        def agentctl_keys(self, service: str) -> list[str]:
            entries, _ = self._read()
            return list(entries.get(service, {}))

        def _key(self, salt: bytes) -> bytes:
            if salt not in self._keys:
                kdf = Scrypt(salt=salt, length=32, n=scrypt_n, r=scrypt_r, p=scrypt_p)
                self._keys[salt] = kdf.derive(self._passphrase)
            return self._keys[salt]

        @contextlib.contextmanager
        def _locked(self) -> Iterator[None]:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

        def _read(self) -> tuple[dict[str, dict[str, str]], bytes | None]:
            """The entries and the file's salt (None: no file yet)."""
            try:
                document = json.loads(self.path.read_bytes())
            except FileNotFoundError:
                return {}, None
            except (OSError, ValueError) as exc:
                raise SecretStoreError(
                    f"cannot read the encrypted secret file {self.path}: {exc}"
                ) from None
            if not isinstance(document, dict) or document.get("format") != file_format:
                raise SecretStoreError(f"{self.path} is not an agentctl encrypted secret file")
            try:
                header = {k: document[k] for k in ("format", "version", "kdf")}
                salt = base64.b64decode(document["kdf"]["salt"])
                nonce = base64.b64decode(document["nonce"])
                ciphertext = base64.b64decode(document["ciphertext"])
            except (KeyError, TypeError, ValueError):
                raise SecretStoreError(f"{self.path} is damaged (incomplete header)") from None
            try:
                plain = AESGCM(self._key(salt)).decrypt(nonce, ciphertext, _aad(header))
            except InvalidTag:
                raise SecretStoreError(
                    f"cannot decrypt {self.path}: wrong passphrase, or the file was altered",
                    hint="supply the passphrase the file was created with "
                    "(AGENTCTL_KEYRING_PASSPHRASE or secrets.passphrase_file)",
                ) from None
            entries: dict[str, dict[str, str]] = json.loads(plain)
            return entries, salt

        def _write(self, entries: dict[str, dict[str, str]], salt: bytes | None) -> None:
            # Keeping an existing file's salt keeps the derived key cached across writes.
            salt = salt or os.urandom(16)
            header = {
                "format": file_format,
                "version": 1,
                "kdf": {
                    "name": "scrypt",
                    "salt": base64.b64encode(salt).decode(),
                    "n": scrypt_n,
                    "r": scrypt_r,
                    "p": scrypt_p,
                },
            }
            nonce = os.urandom(12)
            ciphertext = AESGCM(self._key(salt)).encrypt(
                nonce, json.dumps(entries).encode("utf-8"), _aad(header)
            )
            document = {
                **header,
                "cipher": "AES-256-GCM",
                "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(ciphertext).decode(),
            }
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)

    return EncryptedFileKeyring


def _aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
