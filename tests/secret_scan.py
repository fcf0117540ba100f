"""pytest plugin: fail a test when a secret value reaches output, logs, state, audit or errors.

Enable it for the whole suite in ``tests/conftest.py``::

    pytest_plugins = [..., "secret_scan"]

or for one run with ``pytest -p secret_scan``.

Instrumented, not mocked. While a test runs, the plugin records every secret
value agentctl handles:

- every :class:`agentctl.secrets.Secret` constructed (``Secret.__init__`` is
  wrapped; the construction site is kept for the report);
- the secret-store passphrase whenever agentctl resolves one;
- the test operator's AWS secret access key (``aws_helpers.Operator``);
- anything the test registers with the ``secret_values`` fixture
  (``secret_values.add(value)``).

Values that are wrapped in ``Secret`` for uniformity but are not secret (AWS
regions, endpoint URLs without credentials, numeric ids) and values shorter
than :data:`MIN_LENGTH` are ignored: searching for them would only find noise.

After the test (per phase: setup, call, teardown) it searches, for each value
and its JSON-escaped, base64, percent-encoded forms (for multi-line values
such as PEM keys, each long line; for long one-line values such as stateless
GitHub tokens, overlapping pieces of their random tail, so a token wrapped by a
terminal or cut from its prefix is still found):

- captured stdout / stderr (the report's captured sections, and everything a
  test read through ``capsys``/``capfd.readouterr()``);
- output of subprocesses the test ran with pipes (``Popen.communicate``);
- log records: pytest's captured log, plus every ``agentctl.*`` record at DEBUG;
- exception text: every ``AgentctlError`` message and hint created during the
  test (raised or caught), and the failure report itself;
- every file under the test's ``tmp_path`` (only when the test used it):
  SQLite state and its WAL, journals, audit exports, logs, configuration, and
  the encrypted-file secret store (ciphertext: it must hold no plaintext
  either). Files are read up to :data:`MAX_FILE_BYTES` each.

A hit fails the test, naming where and the value's fingerprint
(``sha256(value)[:16]``, as ``Secret.fingerprint()``), never the value.

A failed test's report goes to the CI log, which many people read: before it
is shown, every recorded value and everything shaped like a credential
(:data:`CREDENTIAL_SHAPES`: also tokens minted in a subprocess, which this
process never saw) is replaced by ``<secret FINGERPRINT>`` in the failure text
and in the captured output sections.

Deliberate exposure, by design:

- ``@pytest.mark.reveals_secrets``: the test prints secrets to stdout on
  purpose (``agentctl credentials``); stdout is not scanned, everything else is;
- ``secret_values.exempt(path)``: a file (or folder) the test itself writes
  secrets into, e.g. what a child process reports back;
- files agentctl's configuration names as secret *inputs*
  (``github.private_key_file``, ``secrets.passphrase_file``) are the
  operator's key material, not output, and are not scanned.

Cheap by construction: a test that handles no secret scans nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

MIN_LENGTH = 8
# One-line values this long are also searched for piece by piece (PIECE
# characters, overlapping by half): any line of 2 * PIECE characters or more that
# holds a slice of the value holds a whole piece.
LONG_VALUE = 100
PIECE = 32
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_FILES = 5000
MAX_TEXT_CHARS = 4 * 1024 * 1024
# Dummy credentials of the test fixtures (moto accepts anything while IAM
# enforcement is off) and other fixed non-secrets.
KNOWN_NOT_SECRET = frozenset({"testing", "test", "foobar_key", "foobar_secret"})
MARKER = "reveals_secrets"
# What a credential handed out by agentctl or the emulators looks like, for
# redacting failure reports (GitHub's and Atlassian's published token formats,
# JWTs, agentctl serve's own, PEM blocks also as a repr with literal \\n).
CREDENTIAL_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9._-]{20,}|github_pat_[A-Za-z0-9_]{20,})"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|\bagentctl_(?:serve|sign)_[A-Za-z0-9_-]{20,}"
    r"|\bAT[A-Z]TT3x[A-Za-z0-9_=-]{20,}"
    r"|-----BEGIN [A-Z ]*-----.*?-----END [A-Z ]*-----",
    re.DOTALL,
)

_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")
_DIGITS = re.compile(r"\d+")
# A URL with no user-info and no query: an endpoint, not a credential.
_PLAIN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s@/?#]+(?:/[^\s?#@]*)?")
_ROOT = Path(__file__).resolve().parent.parent


def fingerprint(value: str) -> str:
    """The same identifier ``Secret.fingerprint()`` shows."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def not_secret(value: str) -> bool:
    """Values wrapped in ``Secret`` for uniformity that are not secret, or too
    short to search for without matching everything."""
    return (
        len(value) < MIN_LENGTH
        or value in KNOWN_NOT_SECRET
        or bool(_REGION.fullmatch(value))
        or bool(_DIGITS.fullmatch(value))
        or bool(_PLAIN_URL.fullmatch(value))
    )


def encoded_forms(value: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every form of ``value`` worth searching for."""
    raw = value.encode("utf-8")
    seen: set[bytes] = set()

    def once(name: str, form: bytes) -> Iterator[tuple[str, bytes]]:
        if form and form not in seen:
            seen.add(form)
            yield name, form

    yield from once("plain", raw)
    yield from once("JSON-escaped", json.dumps(value)[1:-1].encode("ascii"))
    yield from once("JSON-escaped", json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8"))
    yield from once("base64", base64.b64encode(raw).rstrip(b"="))
    yield from once("base64url", base64.urlsafe_b64encode(raw).rstrip(b"="))
    yield from once("percent-encoded", quote(value, safe="").encode("ascii"))
    if "\n" in value:
        # A PEM key leaks just as well one line at a time.
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= 24 and not line.startswith("-----"):
                yield from once("a line of it", line.encode("utf-8"))
    elif len(value) >= LONG_VALUE:
        # A long one-line value (a stateless GitHub token, ghs_<app id>_<JWT>, is
        # ~520 characters) leaks as well wrapped across lines by a terminal, or
        # with its prefix cut off. Search for pieces of its random tail: a JWT's
        # signature (its header and claims repeat across tokens of one issuer).
        tail = value.rpartition(".")[2] if "." in value else value
        if len(tail) >= PIECE:
            for start in range(0, len(tail) - PIECE + 1, PIECE // 2):
                yield from once("a piece of it", tail[start : start + PIECE].encode("utf-8"))


@dataclass(frozen=True)
class Finding:
    where: str
    fingerprint: str
    origin: str
    form: str

    def __str__(self) -> str:
        how = "" if self.form == "plain" else f" ({self.form})"
        return f"secret {self.fingerprint} [{self.origin}] found{how} in {self.where}"


@dataclass
class SecretValues:
    """The secret values of one test, and what must not contain them.

    Tests get it through the ``secret_values`` fixture.
    """

    values: dict[str, str] = field(default_factory=dict)  # value -> origin
    texts: list[tuple[str, str, bool]] = field(default_factory=list)  # (where, text, is_stdout)
    exempt_paths: set[Path] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _needles: list[tuple[str, str, str, bytes]] | None = field(default=None, repr=False)

    def add(self, value: str, origin: str = "registered by the test") -> str:
        """Scan for ``value`` too; returns it (``token = secret_values.add(...)``)."""
        if not isinstance(value, str):
            raise TypeError("secret_values.add takes a str")
        if len(value) < MIN_LENGTH:
            raise ValueError(
                f"a value of {len(value)} characters is too short to scan for "
                f"(minimum {MIN_LENGTH}): it would match ordinary text"
            )
        self._record(value, origin)
        return value

    def _record(self, value: str, origin: str) -> None:
        with self._lock:
            if value not in self.values:
                self.values[value] = origin
                self._needles = None

    def exempt(self, path: str | os.PathLike[str]) -> None:
        """Do not scan this file (or anything under this folder): the test
        writes secrets there on purpose."""
        with self._lock:
            self.exempt_paths.add(Path(path).resolve())

    def seen(self, where: str, text: str | bytes | None, *, stdout: bool = False) -> None:
        """Scan ``text`` too (e.g. the output of a process the test ran)."""
        if not text:
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        with self._lock:
            self.texts.append((where, text[-MAX_TEXT_CHARS:], stdout))

    def needles(self) -> list[tuple[str, str, str, bytes]]:
        """(fingerprint, origin, form name, bytes) for every recorded value."""
        with self._lock:
            if self._needles is None:
                self._needles = [
                    (fingerprint(value), origin, name, form)
                    for value, origin in self.values.items()
                    for name, form in encoded_forms(value)
                ]
            return self._needles

    def scan_text(self, where: str, text: str) -> list[Finding]:
        data = text.encode("utf-8", "surrogateescape")
        return _search(where, data, self.needles())

    def is_exempt(self, path: Path) -> bool:
        return any(path == p or p in path.parents for p in self.exempt_paths)


def _search(
    where: str, data: bytes, needles: Iterable[tuple[str, str, str, bytes]]
) -> list[Finding]:
    found: dict[str, Finding] = {}
    for fp, origin, form, needle in needles:
        if fp not in found and needle in data:
            found[fp] = Finding(where, fp, origin, form)
    return list(found.values())


def _origin(depth: int = 2) -> str:
    """file:line of whoever constructed the secret (skipping this wrapper)."""
    frame = sys._getframe(depth)
    filename = frame.f_code.co_filename
    try:
        filename = str(Path(filename).resolve().relative_to(_ROOT))
    except ValueError:
        filename = Path(filename).name
    return f"Secret from {filename}:{frame.f_lineno}"


# -- instrumentation -----------------------------------------------------------------

_REGISTRY = pytest.StashKey[SecretValues]()
_SCANNED_AT = pytest.StashKey[float]()
_LOG_FORMAT = logging.Formatter("%(levelname)s %(name)s %(message)s")


class _TextHandler(logging.Handler):
    def __init__(self, registry: SecretValues) -> None:
        super().__init__(logging.DEBUG)
        self.registry = registry

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = _LOG_FORMAT.format(record)
        except Exception:  # a broken record must not break the test
            return
        self.registry.seen(f"log record of {record.name}", text)


def _instrument(mp: pytest.MonkeyPatch, registry: SecretValues) -> None:
    from _pytest.capture import CaptureFixture

    from agentctl import secrets as secrets_module
    from agentctl.config import SecretsSettings
    from agentctl.errors import AgentctlError
    from agentctl.providers.github.settings import GitHubSettings

    secret_init = secrets_module.Secret.__init__

    def recording_secret_init(self: Any, value: str) -> None:
        secret_init(self, value)
        if not not_secret(value):
            registry._record(value, _origin())

    mp.setattr(secrets_module.Secret, "__init__", recording_secret_init)

    passphrase = secrets_module._passphrase

    def recording_passphrase(settings: Any, env: Any) -> str | None:
        value = passphrase(settings, env)
        if value and not not_secret(value):
            registry._record(value, "secret-store passphrase")
        return value

    mp.setattr(secrets_module, "_passphrase", recording_passphrase)

    # Files that configuration names as secret inputs hold the operator's key
    # material by design.
    def exempting_init(cls: type, attribute: str) -> None:
        original = cls.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            path = getattr(self, attribute, None)
            if path:
                registry.exempt(Path(path).expanduser())

        mp.setattr(cls, "__init__", init)

    exempting_init(GitHubSettings, "private_key_file")
    exempting_init(SecretsSettings, "passphrase_file")

    error_init = AgentctlError.__init__

    def recording_error_init(self: Any, message: str, *args: Any, **kwargs: Any) -> None:
        error_init(self, message, *args, **kwargs)
        name = type(self).__name__
        registry.seen(f"the message of a {name}", str(message))
        if kwargs.get("hint"):
            registry.seen(f"the hint of a {name}", str(kwargs["hint"]))

    mp.setattr(AgentctlError, "__init__", recording_error_init)

    readouterr = CaptureFixture.readouterr

    def recording_readouterr(self: Any) -> Any:
        result = readouterr(self)
        registry.seen("stdout read by the test (readouterr)", result.out, stdout=True)
        registry.seen("stderr read by the test (readouterr)", result.err)
        return result

    mp.setattr(CaptureFixture, "readouterr", recording_readouterr)

    communicate = subprocess.Popen.communicate

    def recording_communicate(self: Any, *args: Any, **kwargs: Any) -> Any:
        out, err = communicate(self, *args, **kwargs)
        name = Path(str(self.args[0] if isinstance(self.args, list | tuple) else self.args)).name
        registry.seen(f"stdout of subprocess {name}", out, stdout=True)
        registry.seen(f"stderr of subprocess {name}", err)
        return out, err

    mp.setattr(subprocess.Popen, "communicate", recording_communicate)

    aws_helpers = sys.modules.get("aws_helpers")
    operator_cls = getattr(aws_helpers, "Operator", None)
    if operator_cls is not None:
        operator_init = operator_cls.__init__

        def recording_operator_init(self: Any, *args: Any, **kwargs: Any) -> None:
            operator_init(self, *args, **kwargs)
            value = getattr(self, "secret_access_key", "")
            if value and not not_secret(value):
                registry._record(value, "the test operator's AWS secret access key")

        mp.setattr(operator_cls, "__init__", recording_operator_init)


@pytest.fixture(autouse=True)
def _secret_scan(request: pytest.FixtureRequest) -> Iterator[SecretValues]:
    registry = SecretValues()
    request.node.stash[_REGISTRY] = registry
    logger = logging.getLogger("agentctl")
    handler = _TextHandler(registry)
    level = logger.level
    with pytest.MonkeyPatch.context() as mp:
        _instrument(mp, registry)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            yield registry
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture
def secret_values(_secret_scan: SecretValues) -> SecretValues:
    """This test's secret registry: ``add(value)``, ``exempt(path)``, ``seen(where, text)``."""
    return _secret_scan


# -- the scan ------------------------------------------------------------------------


def _tmp_path(item: pytest.Item) -> Path | None:
    if "tmp_path" not in getattr(item, "fixturenames", ()):
        return None
    value = getattr(item, "funcargs", {}).get("tmp_path")
    return value if isinstance(value, Path) and value.is_dir() else None


def scan_files(registry: SecretValues, root: Path, *, newer_than: float = 0.0) -> list[Finding]:
    """Every file under ``root`` (not exempt, modified after ``newer_than``)."""
    needles = registry.needles()
    findings: list[Finding] = []
    count = 0
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        dirs[:] = [d for d in dirs if not registry.is_exempt((base / d).resolve())]
        for name in files:
            path = base / name
            count += 1
            if count > MAX_FILES:
                return findings
            try:
                if path.is_symlink() or registry.is_exempt(path.resolve()):
                    continue
                if newer_than and path.stat().st_mtime < newer_than:
                    continue
                with path.open("rb") as handle:
                    data = handle.read(MAX_FILE_BYTES)
            except OSError:
                continue
            findings += _search(f"file {path.relative_to(root)} (under tmp_path)", data, needles)
    return findings


def scan_item(item: pytest.Item, report: pytest.TestReport, when: str) -> list[Finding]:
    registry = item.stash.get(_REGISTRY, None)
    if registry is None or not registry.values:
        return []
    reveals = item.get_closest_marker(MARKER) is not None
    findings: list[Finding] = []
    # The call report also covers setup's output (fixtures run agentctl too).
    phases = ("setup", "call") if when == "call" else (when,)
    for title, content in report.sections:
        if not title.endswith(tuple(f" {phase}" for phase in phases)):
            continue
        if reveals and "stdout" in title:
            continue
        findings += registry.scan_text(title.lower(), content)
    with registry._lock:
        texts = list(registry.texts)
    for where, text, is_stdout in texts:
        if not (reveals and is_stdout):
            findings += registry.scan_text(where, text)
    if report.failed and report.longrepr is not None:
        findings += registry.scan_text(f"the {when} failure report", report.longreprtext)
    root = _tmp_path(item)
    if root is not None and when in ("call", "teardown"):
        since = item.stash.get(_SCANNED_AT, 0.0) if when == "teardown" else 0.0
        started = time.time()
        findings += scan_files(registry, root, newer_than=since)
        item.stash[_SCANNED_AT] = started
    unique: dict[tuple[str, str], Finding] = {}
    for finding in findings:
        unique.setdefault((finding.where, finding.fingerprint), finding)
    return list(unique.values())


_REPORTED = pytest.StashKey[set[tuple[str, str]]]()


def redact(text: str, registry: SecretValues | None) -> str:
    """``text`` with every recorded secret value (in any form the scan looks
    for) and everything shaped like a credential replaced by its fingerprint."""
    if registry is not None:
        # Longest first: a piece of a value must not break up the whole one.
        for fp, _origin, _form, needle in sorted(registry.needles(), key=lambda n: -len(n[3])):
            form = needle.decode("utf-8", "replace")
            if form in text:
                text = text.replace(form, f"<secret {fp}>")
    return CREDENTIAL_SHAPES.sub(lambda m: f"<secret {fingerprint(m.group())}>", text)


def redact_report(report: pytest.TestReport, registry: SecretValues | None) -> None:
    """Keep secrets out of what pytest prints for a failed test (and writes to
    --junitxml): the failure text and the captured stdout/stderr/log sections."""
    text = report.longreprtext
    redacted = redact(text, registry)
    if redacted != text:
        report.longrepr = redacted
    report.sections = [(title, redact(content, registry)) for title, content in report.sections]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if call.when == "setup" and not report.failed:
        return  # nothing has run yet but fixtures; the call scan covers them
    try:
        _scan_report(item, report, call.when)
    finally:
        if report.failed:
            redact_report(report, item.stash.get(_REGISTRY, None))


def _scan_report(item: pytest.Item, report: pytest.TestReport, when: str) -> None:
    findings = scan_item(item, report, when)
    already = item.stash.setdefault(_REPORTED, set())
    findings = [f for f in findings if (f.where, f.fingerprint) not in already]
    if not findings:
        return
    already.update((f.where, f.fingerprint) for f in findings)
    lines = [f"secret scan: {len(findings)} secret value(s) where secrets must never go:"]
    lines += [f"  - {finding}" for finding in findings]
    lines.append(
        "(a secret is named by its fingerprint, sha256(value)[:16]; a test that prints "
        f"secrets on purpose is marked @pytest.mark.{MARKER}, a file it writes them to "
        "is passed to secret_values.exempt())"
    )
    message = "\n".join(lines)
    if report.failed:
        report.sections.append(("secret scan", message))
    else:
        report.outcome = "failed"
        report.longrepr = message


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test prints secret values to stdout on purpose "
        "(e.g. `agentctl credentials`); the secret scan skips stdout only",
    )
