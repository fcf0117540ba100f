"""The one error hierarchy of agentctl.

The core raises these and never prints or exits; the CLI has one handler that
renders an ``AgentctlError`` as a short message plus what to do, and maps it to
an exit code. Anything else reaching that handler is a bug and is reported as
one (still without leaking secrets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.model import Problem

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class AgentctlError(Exception):
    """An expected failure a user can act on.

    ``hint`` says what to do next; ``exit_code`` is what the CLI exits with.
    Messages must never contain secret values.
    """

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def explained(self) -> str:
        """The message and what to do, for output that has one line per problem."""
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def reason(self) -> str:
        """:meth:`explained` for a result that already names its provider."""
        return self.explained()


class UsageError(AgentctlError):
    """The command line or configuration asks for something impossible."""

    exit_code = EXIT_USAGE


class ConfigError(AgentctlError):
    """agentctl.yaml or the environment is missing or wrong."""

    exit_code = EXIT_USAGE


class ContractError(AgentctlError):
    """Contracts failed validation; the problems are attached (at most the
    first 20 are shown with the message)."""

    def __init__(
        self, message: str, *, hint: str | None = None, problems: Sequence[Problem] = ()
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = tuple(problems)


class StateError(AgentctlError):
    """The state store is unreachable, locked, or inconsistent."""


class StateUrlError(StateError):
    """The state URL itself is wrong (not a URL, a backend agentctl does not
    speak): a usage error (exit 2), yet a StateError, so kill still goes on
    without the state."""

    exit_code = EXIT_USAGE


class StateNotFound(StateError):
    """The configured state database does not exist and this command may not create it."""


class LockTimeout(StateError):
    """Another agentctl run holds the lock for longer than we may wait."""


class SecretStoreError(AgentctlError):
    """No usable secret backend, or it refused an operation."""


class ProviderError(AgentctlError):
    """A provider (AWS, GitHub, ...) failed; ``provider`` names it."""

    def __init__(self, provider: str, message: str, *, hint: str | None = None) -> None:
        # Prefixed once here; callers show ``message`` as is. A result that
        # names its provider itself takes :meth:`reason`, without the prefix.
        super().__init__(f"{provider}: {message}", hint=hint)
        self.provider = provider
        self.unprefixed = message

    def reason(self) -> str:
        return f"{self.unprefixed} — {self.hint}" if self.hint else self.unprefixed


class NotOwnedError(ProviderError):
    """A resource with the agent's name exists but agentctl does not own it."""


class GateRefused(AgentctlError):
    """exec/credentials refused by an execution-mode or status gate."""


class NotFound(AgentctlError):
    """The named agent, approval or record does not exist."""


class DamagedStateRow(StateError):
    """A row of the state database holds a value agentctl never writes (a bad
    manual edit or restore, or a state-database writer's tampering). Names the
    table, the row and the column, never the value. ``agent``: the agent the
    row belongs to, when it belongs to one."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        table: str,
        row: str,
        column: str,
        agent: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.table = table
        self.row = row
        self.column = column
        self.agent = agent
