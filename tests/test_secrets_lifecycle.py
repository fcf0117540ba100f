"""A whole lifecycle, then a search for every secret value it used: none may show.

Real everything: the CLI in-process (``agentctl.cli.app.run``) against the moto
server (IAM enforcement on, the operator holding only the shipped policy) and
the GitHub emulator, a SQLite state, the encrypted-file secret store, all in
the test's tmp dir. The agent registers its own GitHub App, is applied, runs a
command twice through ``agentctl exec`` (the command uses both the AWS session
and the GitHub token), is rotated, killed, refused, and the audit trail is
exported.

Every secret value used is then collected from where it really lives:
- what the child process received (it writes them to a file outside the
  scanned set — that file is the one place they are supposed to be);
- moto's STS backend: every session agentctl started, including the one
  ``rotate`` starts only to verify it works;
- the decrypted secret store, read after every step: the App's private key,
  client and webhook secrets, live installation tokens;
- the operator's AWS secret key and the secret-store passphrase;

and stdout, stderr, the state database (and its WAL), the audit export, the
journal, log files, configuration, contracts, the registration form and the
encrypted store (ciphertext) are searched for each of them, plain and encoded.
With the ``secret_scan`` plugin on, as in the suite, every ``Secret`` built in
this process is searched for as well (e.g. the token ``rotate`` mints only to
verify the App, which lives nowhere else).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_helpers import (
    ACCOUNT,
    REGION,
    RUNTIME_PROFILE,
    MotoServer,
    create_boundary,
    create_operator,
)
from contract_helpers import NOW, write_contract
from github_helpers import ORG, PASSPHRASE, PASSPHRASE_ENV, GitHubWorld
from secret_scan import SecretValues, not_secret, scan_files

from agentctl.cli.app import run
from agentctl.config import SecretsSettings
from agentctl.secrets import SERVICE, open_secret_store

pytest_plugins = ["github_helpers", "pytester"]

AGENT = "lifecycle-agent"
BUCKET = "lifecycle-bucket"

# Uses both credentials; reports the secret values it was given to a file the
# scan skips, and prints nothing but "ok".
CHILD = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    import boto3, botocore.exceptions
    s3 = boto3.client("s3", config=boto3.session.Config(retries={"total_max_attempts": 1}))
    try:
        s3.list_objects_v2(Bucket=sys.argv[2])
        aws = "allowed"
    except botocore.exceptions.ClientError as exc:
        aws = exc.response["Error"]["Code"]
    request = urllib.request.Request(
        os.environ["GITHUB_API_URL"] + "/repos/" + sys.argv[3],
        headers={"Authorization": "token " + os.environ["GITHUB_TOKEN"]},
    )
    try:
        github = urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        github = exc.code
    # AWS keys come through exec's credential_process profile (kept fresh), not
    # the environment: report what the SDK actually resolved and used.
    used = boto3.Session().get_credentials().get_frozen_credentials()
    secrets = {
        "AWS_ACCESS_KEY_ID": used.access_key,
        "AWS_SECRET_ACCESS_KEY": used.secret_key,
        "AWS_SESSION_TOKEN": used.token,
        "GITHUB_TOKEN": os.environ.get("GITHUB_TOKEN"),
        "GH_TOKEN": os.environ.get("GH_TOKEN"),
        "AGENTCTL_GITHUB_TOKEN_FILE": open(os.environ["AGENTCTL_GITHUB_TOKEN_FILE"]).read(),
    }
    with open(sys.argv[1], "w") as out:
        json.dump({"aws": aws, "github": github, "secrets": secrets}, out)
    print("ok")
    """
)


@dataclass
class Lifecycle:
    root: Path
    aws: MotoServer
    github: GitHubWorld
    operator_secret: str = field(repr=False)
    contracts: Path
    reports: Path  # the child's reports: the one place its secrets may be
    capfd: pytest.CaptureFixture[str]
    # repr=False: a failure report shows this object, and must not show secrets.
    transcript: list[tuple[str, str, str]] = field(default_factory=list, repr=False)
    stored: dict[str, str] = field(default_factory=dict, repr=False)  # every store entry seen

    def cli(self, *argv: str) -> tuple[int, str, str]:
        code = run(list(argv), clock=lambda: NOW)
        out, err = self.capfd.readouterr()
        self.transcript.append((" ".join(argv), out, err))
        self.snapshot_store()
        return code, out, err

    def snapshot_store(self) -> None:
        settings = SecretsSettings(backend="encrypted-file", path=str(self.root / "secrets.enc"))
        store = open_secret_store(settings, environ={PASSPHRASE_ENV: PASSPHRASE})
        if store.backend.path.exists():  # type: ignore[attr-defined]
            entries, _ = store.backend._read()  # type: ignore[attr-defined]
            self.stored.update(entries.get(SERVICE, {}))

    def exec(self, label: str) -> tuple[int, dict[str, Any]]:
        script = self.reports / "child.py"
        script.write_text(CHILD, encoding="utf-8")
        report = self.reports / f"{label}.json"
        code, _, _ = self.cli(
            "exec",
            AGENT,
            "--on-behalf-of",
            "amit@company.com",
            "--trigger",
            f"test/{label}",
            "--duration",
            "15m",
            "--",
            sys.executable,
            str(script),
            str(report),
            BUCKET,
            f"{ORG}/api",
        )
        return code, (json.loads(report.read_text()) if report.exists() else {})


@pytest.fixture
def lifecycle(
    aws: MotoServer,
    github_world: GitHubWorld,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> Iterator[Lifecycle]:
    operator = create_operator(aws)
    boundary = create_boundary(aws, actions=("s3:Get*", "s3:List*"))
    aws.client("s3").create_bucket(Bucket=BUCKET)
    aws.client("s3").put_object(Bucket=BUCKET, Key="report.txt", Body=b"ok")
    for name in ("tmp", "home"):
        (tmp_path / name).mkdir()
    config = {
        "state": f"sqlite:///{tmp_path / 'state' / 'state.db'}",
        "journal": str(tmp_path / "journal.jsonl"),
        "people": [{"principal": operator.arn, "person": "ops@company.com"}],
        "aws": {
            "endpoint_url": aws.url,
            "region": REGION,
            "runtime_principal": operator.runtime_arn,
            "runtime_profile": RUNTIME_PROFILE,
            "permissions_boundary": boundary,
        },
        "github": {
            "base_url": github_world.emu.url,
            "web_url": github_world.emu.url,
            "organization": ORG,
        },
        "secrets": {"backend": "encrypted-file", "path": str(tmp_path / "secrets.enc")},
    }
    (tmp_path / "agentctl.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for variable in ("AGENTCTL_STATE", "AGENTCTL_AGENT", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AGENTCTL_CONFIG", str(tmp_path / "agentctl.yaml"))
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", operator.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", operator.secret_access_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "home" / "none"))
    # AWS_SHARED_CREDENTIALS_FILE: the aws fixture's, holding the runtime profile.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    # The registration form goes to a temp dir: this test's, so it is scanned too.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    contracts = tmp_path / "contracts"
    write_contract(
        contracts,
        AGENT,
        aws=[
            {"actions": ["s3:ListBucket"], "resources": [f"arn:aws:s3:::{BUCKET}"]},
            {"actions": ["s3:GetObject"], "resources": [f"arn:aws:s3:::{BUCKET}/*"]},
        ],
        github={"repositories": [f"{ORG}/api"], "scopes": ["repo:read"]},
        mode="on_behalf_of_user",
    )
    aws.enforce_iam(0)
    yield Lifecycle(
        root=tmp_path,
        aws=aws,
        github=github_world,
        operator_secret=operator.secret_access_key,
        contracts=contracts,
        # Not under tmp_path: neither this test's scan nor the secret_scan plugin looks there.
        reports=tmp_path_factory.mktemp("child-reports"),
        capfd=capfd,
    )


def every_session_started(server: MotoServer) -> list[str]:
    """The keys of every STS session moto issued (moto runs in this process)."""
    from moto.sts.models import sts_backends

    values: list[str] = []
    for role in sts_backends[ACCOUNT]["aws"].assumed_roles:
        values += [role.access_key_id, role.secret_access_key, role.session_token]
    return values


def test_no_secret_value_used_in_a_whole_lifecycle_shows_anywhere(
    lifecycle: Lifecycle,
) -> None:
    life, emu = lifecycle, lifecycle.github.emu
    path = str(life.contracts / f"{AGENT}.yaml")

    # The agent's own GitHub App: manifest, a person creates it, the code completes it.
    code, out, _ = life.cli("github", "register", AGENT, "--contract", path, "-o", "json")
    assert code == 0, life.transcript[-1]
    started = json.loads(out)
    manifest = started["manifest"]
    code, out, _ = life.cli(
        "github",
        "register",
        AGENT,
        "--contract",
        path,
        "--code",
        emu.create_manifest_code(manifest, owner=ORG),
        "--state",
        started["state"],
        "-o",
        "json",
    )
    assert code == 0, life.transcript[-1]
    emu.install_app(int(json.loads(out)["app_id"]), ORG, repositories=["api"])

    code, _, _ = life.cli("apply", str(life.contracts), "--yes")
    assert code == 0, life.transcript[-1]
    assert life.cli("plan", str(life.contracts), "-o", "json")[0] == 0

    # A run: both credentials work in the child.
    code, first = life.exec("first-run")
    assert code == 0, life.transcript[-1]
    assert (first["aws"], first["github"]) == ("allowed", 200)
    assert life.transcript[-1][1].strip() == "ok"

    code, _, _ = life.cli("rotate", AGENT)
    assert code == 0, life.transcript[-1]
    code, second = life.exec("after-rotate")
    assert code == 0, life.transcript[-1]
    assert second["github"] == 200  # (moto denies every session after a rotate: no AWS check)

    code, _, err = life.cli("kill", AGENT, "--reason", "INC-42", "--yes")
    assert code == 0, life.transcript[-1]
    code, refused = life.exec("after-kill")
    assert code == 1 and refused == {}, life.transcript[-1]

    export = life.root / "audit-export.jsonl"
    for argv in (
        ("status", "-o", "json"),
        ("status", AGENT),
        ("audit", "-o", "json"),
        ("audit",),
        ("audit", "verify"),
        ("audit", "export"),
        ("audit", "export", "-f", str(export)),
        ("expiring", str(life.contracts), "--days", "120"),
        ("github", "status", AGENT, "-o", "json"),
    ):
        code, _, _ = life.cli(*argv)
        assert code in (0, 1), life.transcript[-1]
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    actions = [event["action"] for event in exported]
    for action in ("github.register", "apply.create", "credentials.issue", "exec.end", "rotate"):
        assert action in actions, actions
    assert "kill" in actions and "exec.refused" in actions

    # -- every secret value used ----------------------------------------------------------
    secrets = SecretValues()
    for report in (first, second):
        for name, value in report["secrets"].items():
            assert value, f"the child got no {name}"
            secrets.add(value, f"{name} given to the child")
    sessions = every_session_started(life.aws)
    assert len(sessions) >= 3 * 3  # two runs and rotate's verification session
    for value in sessions:
        secrets.add(value, "an STS session moto issued")
    stored = {k: v for k, v in life.stored.items() if not not_secret(v)}
    assert any(v.startswith("-----BEGIN") for v in stored.values()), sorted(life.stored)
    for key, value in stored.items():
        secrets.add(value, f"secret-store entry {key}")
    secrets.add(life.operator_secret, "the operator's AWS secret key")
    secrets.add(PASSPHRASE, "the secret-store passphrase")
    assert len(secrets.values) >= 15

    # -- where none of them may be ---------------------------------------------------------
    findings = []
    for command, out, err in life.transcript:
        findings += secrets.scan_text(f"stdout of `agentctl {command}`", out)
        findings += secrets.scan_text(f"stderr of `agentctl {command}`", err)
    findings += scan_files(secrets, life.root)
    assert findings == [], "\n".join(map(str, findings))

    # The scan covered what it must, and finds what is there.
    scanned = {p.relative_to(life.root).as_posix() for p in life.root.rglob("*") if p.is_file()}
    for name in ("state/state.db", "audit-export.jsonl", "secrets.enc", "agentctl.yaml"):
        assert name in scanned, sorted(scanned)
    # github register removes its page once the App exists: nothing lingers in tmp/.
    assert not any(name.startswith("tmp/") and name.endswith(".html") for name in scanned)
    leaked_on_purpose = SecretValues(values=dict(secrets.values))
    hits = scan_files(leaked_on_purpose, life.reports)
    assert {f.fingerprint for f in hits} >= {
        f.fingerprint for f in secrets.scan_text("child", json.dumps([first, second]))
    }


# -- the secret_scan plugin itself -------------------------------------------------------

PLUGIN_PROBES = """
import base64, logging, subprocess, sys
import pytest
from agentctl.errors import ProviderError
from agentctl.secrets import Secret

TOKEN = "ghs_" + "Q7x" * 12
# The stateless form (ghs_<app id>_<JWT>, ~520 characters).
STATELESS = (
    "ghs_801008005_eyJhbGciOiJSUzI1NiJ9."
    + base64.urlsafe_b64encode(b'{"installation_id": 4242, "jti": "probe"}' * 3).decode().rstrip("=")
    + "."
    + base64.urlsafe_b64encode(bytes(range(256))).decode().rstrip("=")
)


def test_prints_a_secret():
    print("token:", Secret(TOKEN).reveal())


@pytest.mark.reveals_secrets
def test_prints_a_secret_on_purpose():
    print("token:", Secret(TOKEN).reveal())


@pytest.mark.reveals_secrets
def test_on_purpose_covers_stdout_only():
    print(Secret(TOKEN).reveal(), file=sys.stderr)


def test_writes_it_base64_to_a_file(tmp_path):
    value = Secret(TOKEN).reveal()
    (tmp_path / "state.db").write_bytes(b"x" + base64.b64encode(value.encode()) + b"x")


def test_writes_it_where_the_test_said_it_may(tmp_path, secret_values):
    secret_values.exempt(tmp_path / "child")
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "env.json").write_text(Secret(TOKEN).reveal())


def test_puts_it_in_an_error_message():
    value = Secret(TOKEN).reveal()
    with pytest.raises(ProviderError):
        raise ProviderError("aws", "failed with " + value)


def test_logs_a_registered_value(secret_values):
    logging.getLogger("agentctl.probe").debug("value %s", secret_values.add("hunter2hunter2"))


def test_a_subprocess_prints_it():
    value = Secret(TOKEN).reveal()
    subprocess.run([sys.executable, "-c", "print(%r)" % value], capture_output=True, check=True)


def test_prints_a_stateless_token_wrapped_by_a_terminal():
    value = Secret(STATELESS).reveal()
    print("\\n".join(value[i : i + 80] for i in range(0, len(value), 80)))


def test_logs_a_stateless_token_without_its_prefix():
    jwt_part = Secret(STATELESS).reveal().split("_", 2)[2]
    logging.getLogger("agentctl.probe").warning("jwt %s", jwt_part)


def test_fails_and_shows_it():
    assert Secret(TOKEN).reveal() == "something else"


PRINTED = "ghs_" + "Pr1" * 12
# Shaped like a token, never a Secret in this process (as one a subprocess minted).
UNSEEN = "ghs_" + "Zk9" * 12


@pytest.mark.reveals_secrets
def test_prints_on_purpose_then_fails():
    print("token:", Secret(PRINTED).reveal())
    assert False, "the run failed"


def test_fails_on_a_token_it_never_held_as_a_secret():
    statuses = {UNSEEN: 200}
    assert statuses == {}


def test_non_secrets_wrapped_as_secrets_may_show(tmp_path):
    for value in ("us-east-1", "http://127.0.0.1:5000", "https://api.github.com", "801008005", "abc"):
        print(Secret(value).reveal())
        (tmp_path / "config").write_text(Secret(value).reveal())


def test_masked_secrets_are_fine(tmp_path):
    secret = Secret(TOKEN)
    print(secret, repr(secret), secret.fingerprint())
    (tmp_path / "state.db").write_text(f"{secret}")
"""


def test_the_secret_scan_plugin_finds_and_names_leaks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_probes=PLUGIN_PROBES)
    tests = Path(__file__).resolve().parent
    monkeypatch.setenv("PYTHONPATH", f"{tests}{os.pathsep}{tests.parent}")
    result = pytester.runpytest_subprocess("-p", "secret_scan", "-p", "no:cacheprovider", "-rA")
    outcomes = {
        line.split("::")[1].split(" ")[0]: line.split(" ")[0]
        for line in result.outlines
        if line.startswith(("PASSED", "FAILED")) and "::" in line
    }
    assert outcomes == {
        "test_prints_a_secret": "FAILED",
        "test_prints_a_secret_on_purpose": "PASSED",
        "test_on_purpose_covers_stdout_only": "FAILED",
        "test_writes_it_base64_to_a_file": "FAILED",
        "test_writes_it_where_the_test_said_it_may": "PASSED",
        "test_puts_it_in_an_error_message": "FAILED",
        "test_logs_a_registered_value": "FAILED",
        "test_a_subprocess_prints_it": "FAILED",
        "test_prints_a_stateless_token_wrapped_by_a_terminal": "FAILED",
        "test_logs_a_stateless_token_without_its_prefix": "FAILED",
        "test_fails_and_shows_it": "FAILED",
        "test_prints_on_purpose_then_fails": "FAILED",
        "test_fails_on_a_token_it_never_held_as_a_secret": "FAILED",
        "test_non_secrets_wrapped_as_secrets_may_show": "PASSED",
        "test_masked_secrets_are_fine": "PASSED",
    }, result.stdout.str()
    token = "ghs_" + "Q7x" * 12
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16]
    result.stdout.fnmatch_lines(
        [
            f"*secret {fingerprint} [[]Secret from test_probes.py:*[]] found in captured stdout call",
            f"*secret {fingerprint} *found in captured stderr call",
            f"*secret {fingerprint} *found (base64) in file state.db (under tmp_path)",
            f"*secret {fingerprint} *found in the message of a ProviderError",
            "*secret * [[]registered by the test[]] found in log record of agentctl.probe",
            f"*secret {fingerprint} *found in stdout of subprocess python*",
            "*secret * found (a piece of it) in captured stdout call",
            "*secret * found (a piece of it) in log record of agentctl.probe",
            f"*secret {fingerprint} *found in the call failure report",
        ]
    )
    # A failed test's report (what CI logs show) has its secrets replaced by
    # fingerprints: the failure text, and the output a reveals_secrets test printed.
    failures = result.stdout.str().split("= FAILURES =", 1)[1].split("= PASSES =")[0]
    for value in (token, "ghs_" + "Pr1" * 12, "ghs_" + "Zk9" * 12):
        assert value not in failures
        assert f"<secret {hashlib.sha256(value.encode()).hexdigest()[:16]}>" in failures
    # The scan's own lines never show the value.
    assert not [line for line in result.outlines if "secret scan" in line and token in line]
    assert not [
        line for line in result.outlines if line.lstrip().startswith("- secret") and token in line
    ]
