"""What `pip install agentctl` / `pipx install agentctl` gives a user.

The wheel is built from this checkout and installed into a brand-new virtual
environment with no dev extra (no moto, no pytest, no werkzeug), exactly as
pipx would. Then the installed ``agentctl`` script — not this checkout — is
run as a user runs it: ``--help``, ``--version``, ``validate``, and ``apply`` /
``kill`` of one agent against the test moto server. Every module of the
installed package must import: a module that needs a dev-only dependency
would break a user's install at the first command that reaches it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from aws_helpers import REGION, MotoServer, create_boundary
from contract_helpers import s3_read

REPO = Path(__file__).resolve().parent.parent

# Builds the wheel and installs it with its dependencies from the package index:
# the download time is the index's, so the hang guard is wider than pytest's 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def dockerfile_build_context(into: Path) -> Path:
    """The container image's build stage, replayed without a Docker daemon (none
    here or in CI): only what the Dockerfile's first stage COPYs, laid out as in
    its WORKDIR. The wheel below is built from this, so a file the wheel needs
    but the image build does not copy fails these tests."""
    stage = -1
    for line in (REPO / "Dockerfile").read_text("utf-8").splitlines():
        if line.startswith("FROM "):
            stage += 1
        if stage != 0 or not line.startswith("COPY ") or "--from" in line:
            continue
        *sources, target = line.split()[1:]
        for source in sources:
            origin = REPO / source
            there = into / target if len(sources) == 1 and target not in ("./", ".") else into
            if origin.is_dir():
                shutil.copytree(origin, there, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                there.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, there / origin.name)
    assert (into / "pyproject.toml").is_file(), "the Dockerfile's build stage copies no pyproject"
    return into


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin`` directory of a clean venv holding only the built wheel and
    its declared dependencies (the wheel built from the image's build context)."""
    root = tmp_path_factory.mktemp("install")
    dist = root / "dist"
    context = dockerfile_build_context(root / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dist),
            str(context),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wheels = list(dist.glob("agentctl-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheels[0])],
        check=True,
        capture_output=True,
        text=True,
    )
    yield bin_dir


def run(bin_dir: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [str(bin_dir / "agentctl"), *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def clean_env(**extra: str) -> dict[str, str]:
    """No trace of this checkout or the developer: no PYTHONPATH, a private HOME."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, **extra}


def test_the_installed_wheel_holds_no_test_world_and_every_module_imports(installed: Path) -> None:
    script = textwrap.dedent(
        """
        import importlib, json, pkgutil, agentctl
        names = [m.name for m in pkgutil.walk_packages(agentctl.__path__, "agentctl.")
                 if not m.name.endswith(".__main__")]  # that one runs the CLI
        failed = {}
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:  # report every failure, not the first
                failed[name] = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"names": names, "failed": failed}))
        """
    )
    done = subprocess.run(
        [str(installed / "python"), "-c", script],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=installed,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["failed"] == {}
    assert "agentctl.cli.app" in found["names"]
    assert not [n for n in found["names"] if ".testing" in n or n.endswith(".demo")]
    # The dev-only world is not there either.
    for dev_only in ("moto", "pytest", "werkzeug"):
        probe = subprocess.run(
            [str(installed / "python"), "-c", f"import {dev_only}"],
            capture_output=True,
            env=clean_env(),
            cwd=installed,
        )
        assert probe.returncode != 0, f"{dev_only} is installed without the dev extra"


def test_help_and_version_of_the_installed_script(installed: Path, tmp_path: Path) -> None:
    helped = run(installed, "--help", env=clean_env(HOME=str(tmp_path)))
    assert helped.returncode == 0, helped.stderr
    for verb in ("validate", "apply", "kill", "status"):
        assert verb in helped.stdout
    version = run(installed, "--version", env=clean_env(HOME=str(tmp_path)))
    assert version.returncode == 0, version.stderr
    assert "0.1.0" in version.stdout
    assert "schema" in version.stdout


def test_validate_the_shipped_contracts_with_the_packaged_schema(
    installed: Path, tmp_path: Path
) -> None:
    done = run(installed, "validate", str(REPO / "contracts"), env=clean_env(HOME=str(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_apply_and_kill_one_agent_from_the_installed_wheel(
    installed: Path, aws: MotoServer, tmp_path: Path
) -> None:
    boundary = create_boundary(aws)
    aws.client("s3").create_bucket(Bucket="bucket-a")
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "wheel-agent.yaml").write_text(
        yaml.safe_dump(
            {
                "agent": {"name": "wheel-agent", "owner": "ops@company.com", "purpose": "t"},
                "permissions": {"aws": s3_read("bucket-a")},
                "execution_mode": "autonomous",
                "expiry": (date.today() + timedelta(days=90)).isoformat(),
                "kill_switch": "/agents/wheel-agent/disable",
            }
        ),
        "utf-8",
    )
    config = tmp_path / "agentctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "aws": {
                    "endpoint_url": aws.url,
                    "region": REGION,
                    "runtime_principal": "arn:aws:iam::123456789012:user/runtime",
                    "permissions_boundary": boundary,
                },
                "state": str(tmp_path / "state.db"),
                "journal": str(tmp_path / "journal.jsonl"),
            }
        ),
        "utf-8",
    )
    env = clean_env(
        HOME=str(tmp_path),
        AGENTCTL_CONFIG=str(config),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    applied = run(installed, "apply", str(contracts), "--yes", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    iam = aws.client("iam")
    assert iam.get_role(RoleName="agentctl-wheel-agent")["Role"]["RoleName"]

    killed = run(installed, "kill", "wheel-agent", "--reason", "wheel test", "--yes", env=env)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    policies = iam.list_role_policies(RoleName="agentctl-wheel-agent")["PolicyNames"]
    assert "agentctl-kill" in policies, policies
    listed = run(installed, "status", "wheel-agent", "--output", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert '"killed"' in listed.stdout
