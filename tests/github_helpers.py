"""Fixtures for GitHub provider tests: the real emulator, real state, real secrets.

Load as a plugin, in tests/conftest.py or a test module::

    pytest_plugins = ["github_helpers"]

``github_world`` gives each test a running :class:`GitHubEmulator` (org
``acme`` with repositories api, web and secret), a SQLite state file and an
encrypted-file secret store in the test's tmp dir, and helpers that build what
the provider, the engine and the CLI need from them. Nothing is patched: the
provider speaks HTTP to the emulator through githubkit.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aws_helpers import MotoServer, create_person

from agentctl.config import Config, SecretsSettings
from agentctl.engine import Engine
from agentctl.model import Contract, ExecutionMode
from agentctl.providers.base import ProviderContext, RunContext
from agentctl.providers.github import SPEC as GITHUB
from agentctl.providers.github.lifecycle import GitHubProvider
from agentctl.providers.github.settings import GitHubSettings
from agentctl.secrets import SecretStore, open_secret_store
from agentctl.state import StateStore, open_state
from testing.github import GitHubEmulator

ORG = "acme"
REPOSITORIES = ("api", "web", "secret")
PASSPHRASE_ENV = "AGENTCTL_KEYRING_PASSPHRASE"
PASSPHRASE = "correct horse battery staple"
OPERATOR = "tester@example.com"


def contract_for(name: str, grant: Any, *, expiry: date | None = None) -> Contract:
    """A valid contract granting ``grant`` in GitHub (a list or {repositories, scopes})."""
    return Contract(
        name=name,
        owner="platform-team@example.com",
        purpose=f"{name} for tests",
        execution_mode=ExecutionMode.AUTONOMOUS,
        expiry=expiry or (datetime.now(UTC).date() + timedelta(days=180)),
        kill_switch=f"/agents/{name}/disable",
        permissions={"github": grant},
    )


def run_for(agent: str) -> RunContext:
    return RunContext(
        agent=agent,
        on_behalf_of="amit@example.com",
        trigger="test/run",
        duration_seconds=900,
        run_id=uuid.uuid4().hex[:12],
    )


def token_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


@dataclass
class GitHubWorld:
    """One emulator and one set of stores; see the module docstring."""

    emu: GitHubEmulator
    root: Path
    http: httpx.Client
    state_url: str
    secrets_settings: SecretsSettings
    _opened: list[StateStore] = field(default_factory=list)

    # -- configuration ---------------------------------------------------------

    def settings(self, **github: Any) -> GitHubSettings:
        values: dict[str, Any] = {
            "base_url": self.emu.url,
            "web_url": self.emu.url,
            "organization": ORG,
        }
        values.update(github)
        return GitHubSettings(**values)

    def config(self, **github: Any) -> Config:
        return Config(
            provider_settings={"github": self.settings(**github)},
            secrets=self.secrets_settings,
            journal_path=str(self.root / "journal.jsonl"),
        )

    def write_config(self, config: Config | None = None) -> Path:
        """agentctl.yaml for CLI runs (the passphrase comes from the environment)."""
        config = config or self.config()
        github = {
            key: value
            for key, value in vars(config.settings(GITHUB)).items()
            if value != getattr(GitHubSettings(), key)
        }
        document = {
            "journal": str(self.root / "journal.jsonl"),
            "github": github,
            "secrets": {"backend": "encrypted-file", "path": self.secrets_settings.path},
        }
        path = self.root / "agentctl.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    # -- stores ----------------------------------------------------------------

    def open_state(self, url: str | None = None) -> StateStore:
        from agentctl.audit_key import key_source_for

        store = open_state(url or self.state_url)
        # Keyed like the CLI's: the audit chain key comes from the same secret store.
        store.chain_keys = key_source_for(self.secrets_settings, self.secrets)
        self._opened.append(store)
        return store

    def secrets(self) -> SecretStore:
        return open_secret_store(self.secrets_settings, environ={PASSPHRASE_ENV: PASSPHRASE})

    def empty_state_url(self) -> str:
        """A new, empty state database (the "state store lost" case)."""
        return f"sqlite:///{self.root / f'empty-{uuid.uuid4().hex[:8]}.db'}"

    # -- core objects ------------------------------------------------------------

    def context(
        self,
        config: Config | None = None,
        *,
        state_url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> ProviderContext:
        url = state_url or self.state_url
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        return ProviderContext(
            config=config or self.config(),
            state_factory=lambda: self.open_state(url),
            secrets_factory=self.secrets,
            **extra,
        )

    def provider(
        self,
        config: Config | None = None,
        *,
        state_url: str | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        **options: Any,
    ) -> GitHubProvider:
        if sleep is not None:
            options["sleep"] = sleep
        return GitHubProvider(self.context(config, state_url=state_url, clock=clock), **options)

    def engine(self, config: Config | None = None, *, state_url: str | None = None) -> Engine:
        from agentctl.runtime import build_engine

        url = state_url or self.state_url
        return build_engine(
            config or self.config(),
            state_url=url,
            operator=OPERATOR,
            provider_names=["github"],
            state_factory=lambda: self.open_state(url),
            secrets_factory=self.secrets,
        )

    # -- world building ------------------------------------------------------------

    def write_contract(self, contract: Contract) -> Path:
        folder = self.root / "contracts"
        folder.mkdir(exist_ok=True)
        document = contract.document()
        document["expiry"] = contract.expiry  # a YAML date, as people write it
        path = folder / f"{contract.name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    def register(
        self, contract: Contract, provider: GitHubProvider | None = None
    ) -> dict[str, Any]:
        """Register ``contract``'s dedicated App through the provider (the CLI's two
        steps without the browser); returns the recorded attributes."""
        provider = provider or self.provider()
        manifest = provider.app_manifest(contract)
        form = provider.start_registration(contract.name, manifest)
        code = self.emu.create_manifest_code(manifest, owner=ORG)
        return provider.complete_registration(contract, code, form.state).attributes

    def install(
        self,
        app_id: int,
        *,
        permissions: Mapping[str, str] | None = None,
        repositories: list[str] | None = None,
    ) -> int:
        installation = self.emu.install_app(
            app_id, ORG, permissions=permissions, repositories=repositories
        )
        return int(installation["id"])

    def installation(self, installation_id: int) -> dict[str, Any]:
        return next(i for i in self.emu.state()["installations"] if i["id"] == installation_id)

    def close(self) -> None:
        for store in self._opened:
            store.close()
        self.http.close()


@pytest.fixture
def github_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: MotoServer
) -> Iterator[GitHubWorld]:
    """A fresh emulator and stores; the CLI finds the passphrase in the environment.

    Who runs the CLI is verified like anywhere else: the operator is an IAM user
    named OPERATOR on the moto server (AWS_ENDPOINT_URL), which agentctl asks
    with sts:GetCallerIdentity; agentctl.yaml configures no AWS provider.
    """
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    person = create_person(aws, OPERATOR)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", person.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", person.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AGENTCTL_AGENT", "GH_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    for variable in (
        "AGENTCTL_CONFIG",
        "AGENTCTL_STATE",
        "AGENTCTL_SECRETS_BACKEND",
        "AGENTCTL_SECRETS_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    with GitHubEmulator() as emu:
        emu.create_org(ORG)
        for name in REPOSITORIES:
            emu.create_repo(ORG, name)
        world = GitHubWorld(
            emu=emu,
            root=tmp_path,
            http=httpx.Client(base_url=emu.url, timeout=10),
            state_url=f"sqlite:///{tmp_path / 'state.db'}",
            secrets_settings=SecretsSettings(
                backend="encrypted-file", path=str(tmp_path / "secrets.enc")
            ),
        )
        try:
            yield world
        finally:
            world.close()


def shared_config(world: GitHubWorld, app: Mapping[str, Any], installation_id: int) -> Config:
    """Shared mode on ``app`` (its key written to a 0600 file, as an operator would)."""
    key_file = world.root / "shared-app.pem"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(app["pem"])
    return world.config(
        mode="shared",
        app_id=int(app["id"]),
        installation_id=installation_id,
        private_key_file=str(key_file),
    )
