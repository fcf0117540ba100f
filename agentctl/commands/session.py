"""What a command runs against: config, clock, state, secrets and the engine,
each opened on first use (a command that never needs the state never opens it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agentctl.clock import Clock, system_clock
from agentctl.config import Config

if TYPE_CHECKING:
    from agentctl.audit_anchor import AnchorStore
    from agentctl.audit_key import ChainKeySource
    from agentctl.engine import Engine
    from agentctl.identity import Actor
    from agentctl.model import Contract
    from agentctl.providers.base import AnyProvider, AnySpec
    from agentctl.secrets import SecretStore
    from agentctl.state import StateStore
    from agentctl.state.records import AuditDraft


def _ignore(_message: str) -> None:
    return None


@dataclass
class Session:
    """One command's context: the config, state, secret store and actor, each opened
    on first use and closed when the command ends."""

    config_path: str | None = None
    state_url: str | None = None
    clock: Clock = system_clock
    # Only commands that record something new (apply, registrations, `state
    # init`) may create a state store that is not there yet; the others say so.
    may_create_state: bool = False
    # Told about things worth a warning that do not stop the command.
    warn: Callable[[str], None] = _ignore
    _config: Config | None = None
    _actor: Actor | None = None
    _state: StateStore | None = None
    _secrets: SecretStore | None = None
    _chain_keys: ChainKeySource | None = None
    _closers: list[StateStore] = field(default_factory=list)

    def config(
        self, contract_paths: Sequence[str] = (), *, without_broken_providers: bool = False
    ) -> Config:
        """agentctl.yaml, read once. ``without_broken_providers`` (kill): the
        sections of provider plug-ins that cannot be loaded are left unread
        instead of failing the whole file."""
        if self._config is None:
            # Imported on first use: yaml and the settings schema are for commands
            # that read agentctl.yaml, not for every start of the CLI.
            from agentctl.config_file import load_config

            # Default: every registered provider, one that cannot be loaded an error.
            specs: Mapping[str, AnySpec] | None = None
            ignored: tuple[str, ...] = ()
            if without_broken_providers:
                from agentctl.providers.registry import installed_providers

                installed = installed_providers()
                specs, ignored = installed.specs, tuple(installed.broken)
            self._config = load_config(
                self.config_path, contract_paths, specs=specs, ignored=ignored
            )
        return self._config

    def engine(
        self,
        contract_paths: Sequence[str] = (),
        *,
        tolerate_config_errors: bool = False,
        provider_names: Iterable[str] | None = None,
    ) -> Engine:
        """The engine for this command. ``tolerate_config_errors`` is for kill:
        during an incident a broken agentctl.yaml must not stop a revocation,
        so it falls back to the defaults and says so; nor must a provider
        plug-in that cannot be loaded (its part of the kill fails, naming it;
        the other systems are revoked). ``provider_names``: only these
        providers are loaded (default: every installed one)."""
        from agentctl.errors import ConfigError
        from agentctl.runtime import build_engine

        try:
            config = self.config(contract_paths, without_broken_providers=tolerate_config_errors)
        except ConfigError as exc:
            if not tolerate_config_errors:
                raise
            self.warn(f"{exc.message}; using default settings")
            config = self._config = Config()
        return build_engine(
            config,
            state_url=self.state_url,
            identify=self.actor,
            clock=self.clock,
            state_factory=self.state,
            secrets_factory=self.secrets,
            provider_names=provider_names,
            tolerate_broken_providers=tolerate_config_errors,
            # what self.state opens (unless a store is already open)
            snapshot_url=config.resolved_state_url(self.state_url) if self._state is None else None,
        )

    def actor(self) -> Actor:
        """Who runs this command, verified (agentctl.identity): one call to AWS
        or GitHub on first use, then remembered for the rest of the command.
        Read-only commands never ask."""
        if self._actor is None:
            from agentctl.runtime import verified_actor

            config = self._config if self._config is not None else self.config()
            self._actor = verified_actor(config, self.state)
        return self._actor

    def require_person(self, command: str, target: str) -> Actor:
        """The verified person running a mutating command (agents refused, audited)."""
        return self.engine(tolerate_config_errors=True).require_person(command, target)

    def provider(self, name: str, contract_paths: Sequence[str] = ()) -> AnyProvider:
        """The installed provider ``name`` on this session's config, clock, state
        and secrets: what a provider's own commands (``agentctl github|jira ...``)
        act through."""
        from agentctl.errors import NotFound
        from agentctl.providers.base import ProviderContext
        from agentctl.providers.registry import provider_specs

        specs = provider_specs()
        if name not in specs:
            raise NotFound(f"no provider named {name!r} is installed")
        return specs[name].create(
            ProviderContext(
                config=self.config(contract_paths),
                clock=self.clock,
                state_factory=self.state,
                secrets_factory=self.secrets,
            )
        )

    def contract(
        self,
        name: str,
        path: Path,
        *,
        gets: str,
        system: str | None = None,
        system_title: str | None = None,
    ) -> Contract:
        """The valid contract named ``name`` in ``path`` (a file or a folder), for a
        command that gives the agent ``gets`` ("a GitHub App"). An expired
        contract, or one that grants nothing in ``system``, is refused with what
        to do."""
        from agentctl.contract import load_contracts
        from agentctl.errors import NotFound, UsageError

        if not path.exists():
            raise NotFound(
                f"no contract for {name}: {path} does not exist here ({Path.cwd()})",
                hint="pass --contract PATH (the contract file, or the folder of contracts)",
            )
        config = self.config([str(path)])
        report = load_contracts(
            [path], today=self.clock().date(), max_lifetime_days=config.max_lifetime_days
        )
        for contract in report.contracts:
            if contract.name != name:
                continue
            if system is not None and not contract.grants_to(system):
                raise UsageError(
                    f"the contract of {name} grants nothing in {system_title or system}",
                    hint=f"add permissions.{system} to {contract.source}",
                )
            return contract
        for contract in report.expired:
            if contract.name == name:
                raise UsageError(
                    f"the contract of {name} expired on {contract.expiry.isoformat()}: "
                    f"an expired agent gets no {gets}",
                    hint=f"extend `expiry` in {contract.source}",
                )
        raise report.not_found(name, path)

    def audit(self, draft: AuditDraft) -> None:
        """Record what a command did, through the engine (state, else the journal)."""
        self.engine().audit(draft)

    def state(self) -> StateStore:
        if self._state is None:
            self._state = self._open_store()
            self._closers.append(self._state)
        return self._state

    def _open_store(self) -> StateStore:
        from agentctl.state import open_state

        config = self.config()
        # agentctl's own default store (nobody named one) is created on
        # first use as before: it cannot be a typo.
        store = open_state(
            config.resolved_state_url(self.state_url),
            create=self.may_create_state or config.state_is_default(self.state_url),
            clock=self.clock,
        )
        store.chain_keys = self.chain_keys()
        return store

    def default_state_absent(self) -> bool:
        """Nobody named a state store and agentctl's own default one (a plain
        SQLite file) does not exist yet: nothing was applied from here. A read
        can say so without opening it (opening creates the default store)."""
        if self._state is not None:
            return False
        from agentctl.state.snapshot import sqlite_path

        config = self.config()
        if not config.state_is_default(self.state_url):
            return False
        path = sqlite_path(config.resolved_state_url(self.state_url))
        return path is not None and not path.exists()

    def state_file_absent(self) -> bool:
        """The state is a plain SQLite file (named or agentctl's default) that
        does not exist yet: nothing was applied to it. plan reads nothing
        there, and so neither opens the store (SQLAlchemy, ~0.15 s) only to
        hear that, nor creates agentctl's default one by reading it."""
        if self._state is not None:
            return False
        from agentctl.state.room import sqlite_path

        path = sqlite_path(self.config().resolved_state_url(self.state_url))
        return path is not None and not path.exists()

    def use_run_state(self) -> bool:
        """For exec and credentials: serve the state with the standard library's
        sqlite3 where it can (agentctl.state.runstate: the rows a runtime fetch
        reads and writes, without importing SQLAlchemy); the full store opens
        only for what it does not do, or wherever it steps aside. True: it serves."""
        if self._state is not None:
            return False
        from agentctl.state.runstate import open_run_state

        url = self.config().resolved_state_url(self.state_url)
        fast = open_run_state(url, self._open_store, clock=self.clock)
        if fast is None:
            return False
        fast.chain_keys = self.chain_keys()
        # It stands in for the store: the calls it does not implement are the store's.
        self._state = cast("StateStore", fast)
        self._closers.append(self._state)
        return True

    def chain_keys(self) -> ChainKeySource:
        """The audit chain key, from the configured secret store (opened only when used)."""
        if self._chain_keys is None:
            from agentctl.audit_key import key_source_for

            self._chain_keys = key_source_for(self.config().secrets, self.secrets)
        return self._chain_keys

    def anchors(self) -> AnchorStore | None:
        from agentctl.audit_anchor import open_anchor_store

        return open_anchor_store(self.config())

    def anchor_appended(self) -> None:
        """After a command (or a `serve` kill) that appended audit events: anchor the
        last one outside the state. A failure is a warning; what was done stands."""
        if self._state is None or self._state.last_appended is None:
            return
        from agentctl.audit_anchor import anchor_appended
        from agentctl.errors import AgentctlError

        try:
            anchor_appended(self._state, self.anchors(), self.chain_keys(), self.clock())
        except AgentctlError as exc:
            self.warn(f"the audit head was not anchored: {exc.message}")

    def secrets(self) -> SecretStore:
        if self._secrets is None:
            from agentctl.secrets import open_secret_store

            self._secrets = open_secret_store(self.config().secrets)
        return self._secrets

    def close(self) -> None:
        self.anchor_appended()
        for closer in reversed(self._closers):
            closer.close()
        self._closers.clear()
