"""Shared CLI plumbing: global options, output format, rendering, errors.

Commands get an :class:`AppContext` from ``typer.Context.obj`` and build the
core objects (config, state, secrets, providers) through it, lazily: a command
that does not need the state never opens it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from agentctl.clock import Clock, system_clock
from agentctl.config import Config, load_config

if TYPE_CHECKING:
    from agentctl.audit_anchor import AnchorStore
    from agentctl.audit_key import ChainKeySource
    from agentctl.engine import Engine
    from agentctl.secrets import SecretStore
    from agentctl.state import StateStore


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


OUTPUT_OPTION = typer.Option(
    OutputFormat.TEXT, "--output", "-o", help="text for people, json for machines (stable shape)."
)


class _CommandConsole:
    """A rich Console made anew for every command run (:func:`reset_consoles`).

    rich fixes the width when a Console is created if COLUMNS is set then; one
    process runs many commands (tests, completion), so each run reads the
    terminal, COLUMNS and NO_COLOR afresh.
    """

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def reset(self) -> None:
        self._console = None

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


# Results go to stdout; progress, prompts and errors to stderr, so
# `--output json | jq` never sees anything but JSON.
stdout = _CommandConsole(stderr=False)
stderr = _CommandConsole(stderr=True)


def reset_consoles() -> None:
    stdout.reset()
    stderr.reset()


@dataclass
class AppContext:
    config_path: str | None = None
    state_url: str | None = None
    operator: str | None = None
    clock_source: Clock = system_clock
    # Only commands that record something new (apply, registrations, `state
    # init`) may create a state store that is not there yet; the others say so.
    may_create_state: bool = False
    _config: Config | None = None
    _state: StateStore | None = None
    _secrets: SecretStore | None = None
    _chain_keys: ChainKeySource | None = None
    _closers: list[Any] = field(default_factory=list)

    def config(self, contract_paths: Sequence[str] = ()) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path, contract_paths)
        return self._config

    def clock(self) -> Clock:
        return self.clock_source

    def engine(
        self, contract_paths: Sequence[str] = (), *, tolerate_config_errors: bool = False
    ) -> Engine:
        """The engine for this command. ``tolerate_config_errors`` is for kill:
        during an incident a broken agentctl.yaml must not stop a revocation,
        so it falls back to the defaults and says so."""
        from agentctl.errors import ConfigError
        from agentctl.runtime import build_engine

        try:
            config = self.config(contract_paths)
        except ConfigError as exc:
            if not tolerate_config_errors:
                raise
            stderr.print(f"[yellow]warning[/yellow]: {exc.message}; using default settings")
            config = self._config = Config()
        return build_engine(
            config,
            state_url=self.state_url,
            operator=self.operator,
            clock=self.clock(),
            state_factory=self.state,
            secrets_factory=self.secrets,
        )

    def resolved_operator(self) -> str:
        return self.config().resolved_operator(self.operator)

    def state(self) -> StateStore:
        if self._state is None:
            from agentctl.state import open_state

            config = self.config()
            # agentctl's own default store (nobody named one) is created on
            # first use as before: it cannot be a typo.
            self._state = open_state(
                config.resolved_state_url(self.state_url),
                create=self.may_create_state or config.state_is_default(self.state_url),
                clock=self.clock(),
            )
            self._state.chain_keys = self.chain_keys()
            self._closers.append(self._state)
        return self._state

    def chain_keys(self) -> ChainKeySource:
        """The audit chain key, from the configured secret store (opened only when used)."""
        if self._chain_keys is None:
            from agentctl.audit_key import key_source_for

            self._chain_keys = key_source_for(self.config().secrets, self.secrets)
        return self._chain_keys

    def anchors(self) -> AnchorStore | None:
        from agentctl.audit_anchor import open_anchor_store

        return open_anchor_store(self.config())

    def _anchor_appended(self) -> None:
        """After a command that appended audit events: anchor the last one outside
        the state. A failure is a warning; the command itself already happened."""
        if self._state is None or self._state.last_appended is None:
            return
        from rich.markup import escape

        from agentctl.audit_anchor import anchor_appended
        from agentctl.errors import AgentctlError

        try:
            anchor_appended(self._state, self.anchors(), self.chain_keys(), self.clock()())
        except AgentctlError as exc:
            stderr.print(
                f"[yellow]warning[/yellow]: the audit head was not anchored: {escape(exc.message)}"
            )

    def secrets(self) -> SecretStore:
        if self._secrets is None:
            from agentctl.secrets import open_secret_store

            self._secrets = open_secret_store(self.config().secrets)
        return self._secrets

    def close(self) -> None:
        self._anchor_appended()
        for closer in reversed(self._closers):
            close = getattr(closer, "close", None)
            if close:
                close()
        self._closers.clear()


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        obj = AppContext()
        ctx.find_root().obj = obj
    return obj


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str, ensure_ascii=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()
