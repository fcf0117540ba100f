"""Fixtures for Jira provider tests: the real Jira emulator, real state, real secrets.

Load as a plugin: ``pytest_plugins = ["jira_helpers"]``.

``jira_world`` gives each test a running :class:`JiraEmulator` (projects SEC
and OPS with one issue each), a SQLite state file and an encrypted-file
secret store in the test's tmp dir holding the site administrator's API
token and an organisation admin API key, and helpers that create what an
organisation admin creates by hand (service accounts, their scoped tokens).
Nothing is patched: the provider speaks HTTP to the emulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
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
from agentctl.providers.jira.lifecycle import ADMIN_API_KEY_REF, ADMIN_TOKEN_REF, JiraProvider
from agentctl.providers.jira.scopes import token_scopes
from agentctl.providers.jira.settings import JiraSettings
from agentctl.secrets import Secret, SecretStore, open_secret_store
from agentctl.state import StateStore, open_state
from testing.jira import JiraEmulator

PASSPHRASE_ENV = "AGENTCTL_KEYRING_PASSPHRASE"
PASSPHRASE = "correct horse battery staple"
OPERATOR = "tester@example.com"
PROJECTS = ("SEC", "OPS")
PR_SCOPES = ["issue:read", "issue:transition"]


def contract_for(
    name: str, grant: Any, *, expiry: date | None = None, extra: dict[str, Any] | None = None
) -> Contract:
    return Contract(
        name=name,
        owner="platform-team@example.com",
        purpose=f"{name} for tests",
        execution_mode=ExecutionMode.AUTONOMOUS,
        expiry=expiry or (datetime.now(UTC).date() + timedelta(days=180)),
        kill_switch=f"/agents/{name}/disable",
        permissions={"jira": grant, **(extra or {})},
    )


def run_for(agent: str) -> RunContext:
    return RunContext(
        agent=agent,
        on_behalf_of="amit@example.com",
        trigger="test/run",
        duration_seconds=900,
        run_id=uuid.uuid4().hex[:12],
    )


@dataclass
class Agent:
    """A service account as the org admin created it, and its token (value)."""

    name: str
    account_id: str
    email: str
    token_id: str
    token: str


@dataclass
class JiraWorld:
    emu: JiraEmulator
    root: Path
    state_url: str
    secrets_settings: SecretsSettings
    issues: dict[str, str]
    _opened: list[StateStore] = field(default_factory=list)

    def settings(self, **jira: Any) -> JiraSettings:
        values: dict[str, Any] = {
            "site_url": self.emu.url,
            "api_url": self.emu.url,
            "org_id": self.emu.org_id,
            "admin_email": self.emu.admin_email,
        }
        values.update(jira)
        return JiraSettings(**values)

    def config(self, **jira: Any) -> Config:
        return Config(
            provider_settings={"jira": self.settings(**jira)},
            secrets=self.secrets_settings,
            journal_path=str(self.root / "journal.jsonl"),
        )

    def write_config(self, **jira: Any) -> Path:
        settings = self.settings(**jira)
        section = {
            key: value
            for key, value in vars(settings).items()
            if value != getattr(JiraSettings(), key)
        }
        document = {
            "journal": str(self.root / "journal.jsonl"),
            "jira": section,
            "secrets": {"backend": "encrypted-file", "path": self.secrets_settings.path},
        }
        path = self.root / "agentctl.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    def open_state(self, url: str | None = None) -> StateStore:
        store = open_state(url or self.state_url)
        self._opened.append(store)
        return store

    def secrets(self) -> SecretStore:
        return open_secret_store(self.secrets_settings, environ={PASSPHRASE_ENV: PASSPHRASE})

    def empty_state_url(self) -> str:
        return f"sqlite:///{self.root / f'empty-{uuid.uuid4().hex[:8]}.db'}"

    def context(
        self, config: Config | None = None, *, state_url: str | None = None
    ) -> ProviderContext:
        url = state_url or self.state_url
        return ProviderContext(
            config=config or self.config(),
            state_factory=lambda: self.open_state(url),
            secrets_factory=self.secrets,
        )

    def provider(
        self, config: Config | None = None, *, state_url: str | None = None
    ) -> JiraProvider:
        return JiraProvider(self.context(config, state_url=state_url), sleep=lambda _: None)

    def engine(
        self,
        config: Config | None = None,
        *,
        state_url: str | None = None,
        providers: list[str] | None = None,
    ) -> Engine:
        from agentctl.runtime import build_engine

        url = state_url or self.state_url
        return build_engine(
            config or self.config(),
            state_url=url,
            operator=OPERATOR,
            provider_names=providers or ["jira"],
            state_factory=lambda: self.open_state(url),
            secrets_factory=self.secrets,
        )

    def apply(self, *contracts: Contract, config: Config | None = None) -> Any:
        """Plan and apply ``contracts`` (the engine, in-process); fails on any error."""
        engine = self.engine(config)
        plan = engine.plan(list(contracts))
        report = engine.apply(plan)
        assert report.ok, report
        return report

    def write_contract(self, contract: Contract) -> Path:
        folder = self.root / "contracts"
        folder.mkdir(exist_ok=True)
        document = contract.document()
        document["expiry"] = contract.expiry
        path = folder / f"{contract.name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    # -- what an organisation admin does by hand ----------------------------------

    def service_account(
        self,
        name: str,
        *,
        scopes: list[str] | object | None = ...,
        friendly: list[str] | None = None,
        expires: datetime | None = None,
    ) -> Agent:
        """``scopes=None``: a classic (unscoped) token; default: what ``friendly`` needs."""
        account_id, email = self.emu.create_service_account(name)
        wanted: list[str] | None = (
            list(token_scopes(friendly or PR_SCOPES)) if scopes is ... else scopes  # type: ignore[assignment]
        )
        token_id, token = self.new_token(account_id, scopes=wanted, expires=expires)
        return Agent(name, account_id, email, token_id, token)

    def new_token(
        self, account_id: str, *, scopes: list[str] | None, expires: datetime | None = None
    ) -> tuple[str, str]:
        if expires is None:
            expires = datetime.combine(
                datetime.now(UTC).date() + timedelta(days=90), time(), tzinfo=UTC
            )
        return self.emu.create_token(account_id, label="agent", scopes=scopes, expires=expires)

    def agent_http(self, agent: Agent, token: str | None = None) -> httpx.Client:
        """The agent itself, through the gateway, with its own token."""
        return httpx.Client(
            base_url=self.emu.gateway_url,
            auth=(agent.email, token or agent.token),
            timeout=10,
        )

    def token_file(self, name: str, value: str) -> Path:
        """A token as an admin hands it over: a file (under the exempt folder)."""
        path = self.root / "handover" / name
        path.write_text(value + "\n", encoding="utf-8")
        return path

    def close(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture
def jira_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_values: Any, aws: MotoServer
) -> Iterator[JiraWorld]:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    # Who runs the CLI is verified: an IAM user named OPERATOR on the moto server
    # (AWS_ENDPOINT_URL), asked with sts:GetCallerIdentity.
    person = create_person(aws, OPERATOR)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", person.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", person.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AGENTCTL_AGENT", "GH_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    # Where tests put the token files an admin hands over (secret on purpose).
    (tmp_path / "handover").mkdir()
    secret_values.exempt(tmp_path / "handover")
    for variable in (
        "AGENTCTL_CONFIG",
        "AGENTCTL_STATE",
        "AGENTCTL_SECRETS_BACKEND",
        "AGENTCTL_SECRETS_FILE",
        "AGENTCTL_JIRA_ADMIN_TOKEN",
        "AGENTCTL_JIRA_ADMIN_API_KEY",
    ):
        monkeypatch.delenv(variable, raising=False)
    with JiraEmulator() as emu:
        issues = {}
        for key in PROJECTS:
            emu.create_project(key, f"{key} project")
            issues[key] = emu.create_issue(key, f"first issue in {key}")
        world = JiraWorld(
            emu=emu,
            root=tmp_path,
            state_url=f"sqlite:///{tmp_path / 'state.db'}",
            secrets_settings=SecretsSettings(
                backend="encrypted-file", path=str(tmp_path / "secrets.enc")
            ),
            issues=issues,
        )
        store = world.secrets()
        store.put(ADMIN_TOKEN_REF, Secret(emu.admin_token()))
        store.put(ADMIN_API_KEY_REF, Secret(emu.create_admin_key()[1]))
        try:
            yield world
        finally:
            world.close()
