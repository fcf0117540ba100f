"""Wiring: build an :class:`Engine` with its providers from a :class:`Config`.

One lazily-opened state store and one lazily-opened secret store are shared
by the engine and every provider, so a command opens each at most once and
only if it needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentctl.clock import Clock, system_clock
from agentctl.config import Config
from agentctl.engine import Engine
from agentctl.identity import Actor
from agentctl.providers.base import ProviderContext
from agentctl.providers.registry import load_providers

if TYPE_CHECKING:
    from agentctl.audit_journal import AuditJournal
    from agentctl.secrets import SecretStore
    from agentctl.state import StateStore

T = TypeVar("T")


def once(factory: Callable[[], T]) -> Callable[[], T]:
    """A thread-safe memoised factory (providers run on worker threads)."""
    lock = threading.Lock()
    box: list[T] = []

    def get() -> T:
        with lock:
            if not box:
                box.append(factory())
            return box[0]

    return get


def default_journal_path(config: Config) -> Path:
    if config.journal_path:
        return Path(config.journal_path).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("agentctl")) / "audit-journal.jsonl"


def open_journal(config: Config) -> AuditJournal:
    from agentctl.audit_journal import AuditJournal

    return AuditJournal(default_journal_path(config))


def verified_actor(config: Config, state_factory: Callable[[], StateStore] | None = None) -> Actor:
    """Who the credentials of this process belong to, verified with AWS or GitHub
    (agentctl.identity); ``state_factory`` lets it recognise agents' sessions."""
    from agentctl.errors import AgentctlError
    from agentctl.identity import resolve_actor

    def is_recorded_agent(name: str) -> bool:
        if state_factory is None:
            return False
        try:
            return state_factory().get_agent(name) is not None
        except AgentctlError:  # state unreachable: the session name still tells
            return False

    aws = config.provider_settings.get("aws")
    return resolve_actor(
        config.identity_sources(),
        config.people,
        role_prefix=str(getattr(aws, "role_prefix", "agentctl-")),
        is_agent=is_recorded_agent,
    )


def build_engine(
    config: Config,
    *,
    state_url: str | None = None,
    operator: str | None = None,  # in-process callers: a person they vouch for
    identify: Callable[[], Actor] | None = None,  # default: verified from the credentials
    clock: Clock = system_clock,
    client_options: Mapping[str, Any] | None = None,
    provider_names: Iterable[str] | None = None,
    state_factory: Callable[[], StateStore] | None = None,
    secrets_factory: Callable[[], SecretStore] | None = None,
    snapshot_url: str | None = None,
    tolerate_broken_providers: bool = False,
) -> Engine:
    """``snapshot_url``: the URL a given ``state_factory`` opens, if the caller
    knows it (plans may then read it without SQLAlchemy; see Engine).
    ``tolerate_broken_providers``: see :func:`load_providers` (kill's)."""
    secrets_given = secrets_factory is not None
    if secrets_factory is None:

        def open_configured_secrets() -> SecretStore:
            from agentctl.secrets import open_secret_store

            return open_secret_store(config.secrets)

        secrets_factory = open_configured_secrets
    shared_secrets = once(secrets_factory)
    if state_factory is None:
        url = snapshot_url = config.resolved_state_url(state_url)

        def open_configured_state() -> StateStore:
            from agentctl.state import open_state

            return open_state(url, clock=clock)

        state_factory = open_configured_state
    opened = state_factory

    def keyed_state() -> StateStore:
        from agentctl.audit_key import ChainKeySource, key_source_for

        store = opened()
        # The audit chain is keyed from the same secret store the providers
        # use, whoever opened the state (a caller's own factory included): an
        # engine that appended without the key would find a keyed trail it
        # cannot extend.
        if getattr(store, "chain_keys", False) is None:
            store.chain_keys = (
                ChainKeySource(shared_secrets, configured=True)
                if secrets_given
                else key_source_for(config.secrets, shared_secrets)
            )
        return store

    shared_state = once(keyed_state)
    if identify is None and operator is not None:
        declared = Actor.declared(operator)
        identify = lambda: declared  # noqa: E731
    elif identify is None:
        identify = once(lambda: verified_actor(config, shared_state))
    context = ProviderContext(
        config=config,
        clock=clock,
        state_factory=shared_state,
        secrets_factory=shared_secrets,
        client_options=dict(client_options or {}),
    )
    providers = load_providers(context, provider_names, tolerate_broken=tolerate_broken_providers)
    return Engine(
        config=config,
        providers=providers,
        state_factory=shared_state,
        identify=identify,
        clock=clock,
        journal=open_journal(config),
        snapshot_url=snapshot_url,
    )
