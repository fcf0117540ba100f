"""Secret values and the keyring-backed store that holds them.

A secret (GitHub App key, installation token, access key) exists in exactly two
places: the secret store, and a :class:`Secret` in memory while it is used.
``Secret`` never shows its value in repr/str/format/logging/pickling, so an
accidental ``print`` or exception message cannot leak it; ``reveal()`` is the
one explicit, greppable way out.

The keyring backend is always chosen explicitly (``secrets.backend`` in
agentctl.yaml or ``AGENTCTL_SECRETS_BACKEND``): keyring's own auto-detection
would silently fall back to its ``fail`` backend or a plaintext file on a
headless host. ``encrypted-file`` is for such hosts and never prompts.

keyring and cryptography are imported only when a store is opened, so commands
that never touch secrets do not pay for them.
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from agentctl.config import SecretsSettings
from agentctl.errors import SecretStoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "agentctl"
ENV_BACKEND = "AGENTCTL_SECRETS_BACKEND"
ENV_FILE = "AGENTCTL_SECRETS_FILE"
BACKEND_NAMES = ("secret-service", "macos", "windows", "encrypted-file", "keyring:<module.Class>")
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
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("PEM private key or certificate", re.compile(r"-----BEGIN")),
    ("JSON Web Token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
)


class SecretLeakError(ValueError):
    """A secret value was about to be written where secrets never go.

    Deliberately not an ``AgentctlError``: this is a bug in agentctl, reported
    as one, never a condition a user is expected to handle.
    """


def check_no_secrets(value: Any, where: str) -> None:
    """Raise :class:`SecretLeakError` if ``value`` contains something secret-looking.

    Walks dicts, lists and tuples. The message names the place and the kind of
    secret, never the value.
    """
    if isinstance(value, Secret):
        raise SecretLeakError(f"{where} is a Secret; never record secret values")
    if isinstance(value, str):
        for kind, pattern in _SECRET_PATTERNS:
            if pattern.search(value):
                raise SecretLeakError(f"{where} looks like a {kind}; never record secret values")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_no_secrets(key, f"{where} key")
            check_no_secrets(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_no_secrets(item, f"{where}[{index}]")


class SecretStore:
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
        """Remove ``key``; False if it was not there (deleting is idempotent)."""
        from keyring.errors import PasswordDeleteError

        try:
            with self._errors("delete", key, None):
                self.backend.delete_password(SERVICE, key)
        except PasswordDeleteError:
            return False
        return True

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


_HINT = (
    f"choose a backend with secrets.backend in agentctl.yaml or {ENV_BACKEND}: "
    "secret-service (Linux desktop / gnome-keyring), macos, windows, "
    "encrypted-file (headless hosts; passphrase in AGENTCTL_KEYRING_PASSPHRASE or "
    "secrets.passphrase_file), or keyring:<module.Class>"
)


def open_secret_store(
    settings: SecretsSettings, *, environ: Mapping[str, str] | None = None
) -> SecretStore:
    """Open the configured backend, or fail with what to configure.

    The environment wins over agentctl.yaml (as ``AGENTCTL_STATE`` does), so a
    CI job or an operator can override a checked-in configuration.
    """
    env = os.environ if environ is None else environ
    choice = env.get(ENV_BACKEND) or settings.backend
    if not choice:
        passphrase = _passphrase(settings, env)
        if passphrase is None:
            raise SecretStoreError(
                "no secret backend configured, and no passphrase for the encrypted-file backend",
                hint=_HINT,
            )
        return SecretStore(_encrypted_file(settings, env, passphrase), "encrypted-file")
    if choice == "encrypted-file":
        passphrase = _passphrase(settings, env)
        if passphrase is None:
            raise SecretStoreError(
                "the encrypted-file secret backend needs a passphrase",
                hint=f"set {settings.passphrase_env}, or secrets.passphrase_file in agentctl.yaml",
            )
        return SecretStore(_encrypted_file(settings, env, passphrase), choice)
    if choice in _NAMED_BACKENDS:
        return SecretStore(_load_backend(_NAMED_BACKENDS[choice], choice), choice)
    if choice.startswith("keyring:"):
        return SecretStore(_load_backend(choice.removeprefix("keyring:"), choice), choice)
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
