"""Secret values never show; the secret store's backends, chosen explicitly."""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle
import stat
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from keyring.backend import KeyringBackend
from keyring.compat import properties

from agentctl.config import SecretsSettings
from agentctl.errors import SecretStoreError
from agentctl.secrets import (
    _SECRET_KINDS,
    ENV_BACKEND,
    ENV_FILE,
    Secret,
    SecretLeakError,
    SecretStore,
    _check_each,
    check_no_secrets,
    open_secret_store,
)

VALUE = "ghs_" + "Zq9" * 12  # looks like a GitHub installation token
PASSPHRASE = "correct horse battery staple"
MASK = "Secret('********')"


# -- Secret --------------------------------------------------------------------------


def test_a_secret_never_shows_its_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>60}",
        "%s" % secret,  # noqa: UP031
        "{}".format(secret),  # noqa: UP032
        str([secret]),
        str({"token": secret}),
    ]
    assert all(text.strip() in (MASK, f"[{MASK}]", f"{{'token': {MASK}}}") for text in shown)
    with caplog.at_level(logging.INFO):
        logging.getLogger("agentctl.test").info("minted %s (%r)", secret, secret)
    assert VALUE not in caplog.text and MASK in caplog.text
    error = RuntimeError(f"failed with {secret}", secret)
    assert VALUE not in str(error) and VALUE not in repr(error)


def test_a_secret_is_not_serialized_by_accident() -> None:
    secret = Secret(VALUE)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"token": secret})
    assert copy.copy(secret) is secret and copy.deepcopy({"s": secret})["s"] is secret
    with pytest.raises(AttributeError):
        secret.other = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_secret_equality_fingerprint_and_reveal() -> None:
    secret = Secret(VALUE)
    assert secret == Secret(VALUE) and secret != Secret(VALUE + "x")
    assert secret != VALUE  # never equal to the plain string: no accidental comparisons
    assert hash(secret) == hash(Secret(VALUE))
    fingerprint = secret.fingerprint()
    assert len(fingerprint) == 16 and fingerprint == Secret(VALUE).fingerprint()
    assert VALUE[4:12] not in fingerprint
    assert secret.reveal() == VALUE


@pytest.mark.parametrize(
    "value",
    [
        "ghs_" + "a" * 36,
        # The stateless installation token (ghs_<app id>_<JWT>, since April 2026).
        "token ghs_1234567_eyJhbGciOiJSUzI1NiJ9.eyJpbnN0YWxsYXRpb25faWQiOjF9.c2lnbmF0dXJl end",
        # Its JWT with the prefix cut off, after an underscore.
        "x_eyJhbGciOiJSUzI1NiJ9.eyJpbnN0YWxsYXRpb25faWQiOjF9.sig",
        "token ghp_" + "B" * 36 + " end",
        "github_pat_" + "c" * 40,
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAABCDEFGHIJKLMNOP",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2ln",
        Secret("anything"),
    ],
)
def test_the_guard_catches_secret_looking_values(value: object) -> None:
    with pytest.raises(SecretLeakError) as caught:
        check_no_secrets({"outer": [{"inner": value}]}, "detail")
    assert "detail.outer[0].inner" in str(caught.value)
    if isinstance(value, str):
        assert value not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "0" * 64,  # a sha256
        "7f3c9a1e2b4d4e6f8a0b1c2d3e4f5a6b",  # an event id
        Secret("x").fingerprint(),
        "AKIA-short",
        "arn:aws:iam::123456789012:role/agentctl/agentctl-pr-review-agent",
        "ghs_short",
        "webhook/pr-opened/4521",
    ],
)
def test_the_guard_lets_ordinary_values_through(value: str) -> None:
    check_no_secrets({"value": value, "list": [value], "n": 1, "none": None}, "detail")


# The guard decides most values by the literals each pattern needs (one look at
# all their strings); the full walk, which names the place and the kind, is the
# reference it must agree with.

# Pieces of every secret shape and of near misses, so random strings often
# hold a literal, sometimes a whole secret, and sometimes a literal without one.
_PIECES = (
    "gh", "p_", "s_", "ghs_", "github_pat_", "ghp_", "AKIA", "ASIA", "-----BEGIN", "eyJ",
    "agentctl_", "serve_", "sign_", "Zq9", "A1B2C3D4", "ABCDEFGHIJKLMNOP", "0123456789",
    ".", "_", "-", " ", "\n", "x", "é", "arn:aws:iam::123456789012:role/a",
)  # fmt: skip
_text = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join) | st.text(max_size=20)
_values = st.recursive(
    st.none() | st.integers() | st.booleans() | _text | st.builds(Secret, _text),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(_text | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


def _verdict(check: object, value: object) -> str | None:
    try:
        check(value, "detail")  # type: ignore[operator]
    except SecretLeakError as exc:
        return str(exc)
    return None


@given(_values)
def test_the_guard_says_exactly_what_the_full_walk_says(value: object) -> None:
    assert _verdict(check_no_secrets, value) == _verdict(_check_each, value)


@given(st.data())
def test_every_secret_shape_holds_a_literal_of_its_kind(data: st.DataObject) -> None:
    for kind, literals, pattern in _SECRET_KINDS:
        text = data.draw(st.from_regex(pattern), label=kind)
        match = pattern.search(text)
        assert match is not None
        assert any(literal in match.group() for literal in literals), (kind, match.group())


def test_the_guard_walks_deep_and_unusual_values_in_full() -> None:
    token = "ghp_" + "a" * 30
    deep: object = token
    for _ in range(40):  # deeper than the quick look goes
        deep = [deep]
    with pytest.raises(SecretLeakError, match=r"detail(\[0\]){40} looks like a GitHub token"):
        check_no_secrets(deep, "detail")

    class Settings(dict[str, object]):  # a mapping type of its own
        pass

    with pytest.raises(SecretLeakError, match=r"detail.key looks like a GitHub token"):
        check_no_secrets(Settings(key=token), "detail")
    check_no_secrets(Settings(key="nothing secret"), "detail")


# -- the encrypted-file backend --------------------------------------------------------


def file_store(path: Path, passphrase: str = PASSPHRASE) -> SecretStore:
    settings = SecretsSettings(backend="encrypted-file", path=str(path))
    return open_secret_store(settings, environ={"AGENTCTL_KEYRING_PASSPHRASE": passphrase})


def test_encrypted_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "secrets.enc"
    store = file_store(path)
    assert store.name == "encrypted-file"
    assert store.get("github/app-key/pr-review-agent") is None
    store.put("github/app-key/pr-review-agent", Secret(VALUE))
    store.put("aws/access-key/deploy-agent", Secret("AKIA-other-value"))

    reopened = file_store(path)  # a new process would see the same
    assert reopened.get("github/app-key/pr-review-agent") == Secret(VALUE)
    assert reopened.delete("aws/access-key/deploy-agent")
    assert not reopened.delete("aws/access-key/deploy-agent")
    assert file_store(path).get("aws/access-key/deploy-agent") is None

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    for plain in (VALUE, "pr-review-agent", "deploy-agent", PASSPHRASE):
        assert plain.encode() not in raw
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_encrypted_file_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    file_store(path).put("k", Secret(VALUE))
    with pytest.raises(SecretStoreError, match="wrong passphrase") as caught:
        file_store(path, "not the passphrase").get("k")
    assert caught.value.hint and "AGENTCTL_KEYRING_PASSPHRASE" in caught.value.hint
    assert "not the passphrase" not in str(caught.value) + caught.value.hint


def test_encrypted_file_detects_an_altered_header(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    file_store(path).put("k", Secret(VALUE))
    document = json.loads(path.read_text())
    document["kdf"]["n"] = 2**14  # a cheaper KDF would be an attacker's first wish
    path.write_text(json.dumps(document))
    with pytest.raises(SecretStoreError, match="altered"):
        file_store(path).get("k")
    path.write_text("{not json")
    with pytest.raises(SecretStoreError, match="cannot read"):
        file_store(path).get("k")


def test_encrypted_file_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "secrets.enc"
    file_store(path).put("seed", Secret("0"))  # fixes the salt: one key derivation per store
    stores = [file_store(path) for _ in range(4)]

    def write(index: int) -> None:
        for round_ in range(5):
            stores[index].put(f"key-{index}-{round_}", Secret(f"value-{index}-{round_}"))

    threads = [threading.Thread(target=write, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = file_store(path)
    for index in range(4):
        for round_ in range(5):
            assert final.get(f"key-{index}-{round_}") == Secret(f"value-{index}-{round_}")


def test_passphrase_from_a_file_and_path_from_the_environment(tmp_path: Path) -> None:
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    target = tmp_path / "from-env.enc"
    settings = SecretsSettings(backend="encrypted-file", passphrase_file=str(passphrase_file))
    store = open_secret_store(settings, environ={ENV_FILE: str(target)})
    store.put("k", Secret(VALUE))
    assert target.exists()
    assert file_store(target).get("k") == Secret(VALUE)  # same passphrase, minus the newline


# -- choosing a backend ---------------------------------------------------------------


def test_no_backend_and_no_passphrase_says_what_to_configure() -> None:
    with pytest.raises(SecretStoreError) as caught:
        open_secret_store(SecretsSettings(), environ={})
    text = f"{caught.value} {caught.value.hint}"
    for option in (
        "secret-service",
        "macos",
        "windows",
        "encrypted-file",
        "keyring:",
        ENV_BACKEND,
        "AGENTCTL_KEYRING_PASSPHRASE",
    ):
        assert option in text


def test_no_backend_but_a_passphrase_means_encrypted_file(tmp_path: Path) -> None:
    environ = {"AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE, ENV_FILE: str(tmp_path / "s.enc")}
    assert open_secret_store(SecretsSettings(), environ=environ).name == "encrypted-file"


def test_encrypted_file_without_a_passphrase_is_an_error() -> None:
    with pytest.raises(SecretStoreError, match="needs a passphrase"):
        open_secret_store(SecretsSettings(backend="encrypted-file"), environ={})
    with pytest.raises(SecretStoreError, match="cannot read"):
        open_secret_store(
            SecretsSettings(backend="encrypted-file", passphrase_file="/nonexistent/pass"),
            environ={},
        )


def test_the_environment_overrides_the_configured_backend(tmp_path: Path) -> None:
    environ = {
        ENV_BACKEND: "encrypted-file",
        "AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE,
        ENV_FILE: str(tmp_path / "s.enc"),
    }
    store = open_secret_store(SecretsSettings(backend="no-such-backend"), environ=environ)
    assert store.name == "encrypted-file"


@pytest.mark.parametrize(
    ("backend", "problem"),
    [
        ("no-such-backend", "unknown secret backend"),
        ("keyring:keyring.backends.fail.Keyring", "does not store anything"),
        ("keyring:keyring.backends.null.Keyring", "does not store anything"),
        ("keyring:keyring.backends.chainer.ChainerBackend", "does not store anything"),
        ("keyring:no.such.module.Keyring", "cannot be loaded"),
        ("keyring:json.JSONDecoder", "is not a keyring backend"),
        ("keyring:Keyring", "must name a class"),
        ("windows", "not usable on this host"),
    ],
)
def test_unusable_backends_are_refused(backend: str, problem: str) -> None:
    with pytest.raises(SecretStoreError, match=problem) as caught:
        open_secret_store(SecretsSettings(backend=backend), environ={})
    assert caught.value.hint


class LeakyKeyring(KeyringBackend):
    """A backend whose errors quote the value, as careless backends do."""

    @properties.classproperty
    def priority(cls) -> float:
        return 1

    def get_password(self, service: str, username: str) -> str | None:
        raise OSError("D-Bus went away")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(f"could not store {password!r} for {username}")

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError("nope")


def test_backend_errors_never_carry_the_value() -> None:
    store = open_secret_store(
        SecretsSettings(backend=f"keyring:{__name__}.LeakyKeyring"), environ={}
    )
    with pytest.raises(SecretStoreError) as caught:
        store.put("github/token", Secret(VALUE))
    assert VALUE not in str(caught.value) and "********" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(SecretStoreError, match="could not read 'k': OSError: D-Bus went away"):
        store.get("k")
    with pytest.raises(SecretStoreError, match="could not delete"):
        store.delete("k")


def test_put_takes_only_secrets(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="takes a Secret"):
        file_store(tmp_path / "s.enc").put("k", VALUE)  # type: ignore[arg-type]


# -- a real Secret Service -----------------------------------------------------------


@pytest.mark.secret_service
def test_secret_service_round_trip() -> None:
    """Through gnome-keyring on a private session bus (see scripts/ci-services.sh)."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.skip("no D-Bus session bus: run under dbus-run-session with gnome-keyring unlocked")
    store = open_secret_store(SecretsSettings(backend="secret-service"), environ={})
    key = f"test/{uuid.uuid4().hex}"
    try:
        store.put(key, Secret(VALUE))
        again = open_secret_store(SecretsSettings(backend="secret-service"), environ={})
        assert again.get(key) == Secret(VALUE)
        store.put(key, Secret(VALUE + "-rotated"))
        assert again.get(key) == Secret(VALUE + "-rotated")
    finally:
        assert store.delete(key)
    assert store.get(key) is None and not store.delete(key)
