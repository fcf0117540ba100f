"""Shared CLI plumbing: the output format, the consoles, the session.

Command functions get the :class:`agentctl.commands.Session` of this command
line from ``typer.Context.obj`` (:func:`app_context`), call a command in
``agentctl.commands`` with it and hand the result to :func:`show`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer

from agentctl.clock import Clock, system_clock
from agentctl.commands.session import Session
from agentctl.markup import PlainConsole, TextConsole, escape, rich_would_call_a_terminal
from agentctl.model import OutputFormat

if TYPE_CHECKING:
    from rich.console import Console

OUTPUT_OPTION = typer.Option(
    OutputFormat.TEXT, "--output", "-o", help="text for people, json for machines (stable shape)."
)


class _CommandConsole:
    """A console made anew for every command run (:func:`reset_consoles`): a
    rich Console on a terminal, a :class:`~agentctl.markup.PlainConsole` (the
    same text, without importing rich) off one.

    rich fixes the width when a Console is created if COLUMNS is set then; one
    process runs many commands (tests, completion), so each run reads the
    terminal, COLUMNS and NO_COLOR afresh.
    """

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: TextConsole | None = None

    def reset(self) -> None:
        self._console = None

    @property
    def console(self) -> TextConsole:
        if self._console is None:
            stream = sys.stderr if self._stderr else sys.stdout
            if rich_would_call_a_terminal(stream):
                from rich.console import Console

                self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
            else:
                self._console = PlainConsole(stderr=self._stderr)
        return self._console

    @property
    def rich(self) -> Console:
        """A rich Console on this stream (for rich's own widgets: progress bars)."""
        console = self.console
        if isinstance(console, PlainConsole):
            return console.rich
        return cast("Console", console)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


# Results go to stdout; progress, prompts and errors to stderr, so
# `--output json | jq` never sees anything but JSON.
stdout = _CommandConsole(stderr=False)
stderr = _CommandConsole(stderr=True)


def reset_consoles() -> None:
    stdout.reset()
    stderr.reset()


def fail(what: str, problems: Sequence[str], code: int = 1) -> NoReturn:
    """Exit ``code`` with ONE line on stderr saying why (the result itself is
    on stdout): cron mails stderr, ``-q`` and ``>/dev/null`` keep it, so a run
    that could not do its whole job is never silent."""
    first = problems[0] if problems else ""
    more = f" (and {len(problems) - 1} more: see above)" if len(problems) > 1 else ""
    stderr.print(
        f"[bold red]error:[/bold red] {escape(what)}"
        + (f": {escape(first)}{more}" if first else "")
    )
    raise typer.Exit(code)


def _warn(message: str) -> None:
    stderr.print(f"[yellow]warning[/yellow]: {escape(message)}")


def new_session(config: str | None, state: str | None, *, clock: Clock = system_clock) -> Session:
    return Session(config_path=config, state_url=state, clock=clock, warn=_warn)


def app_context(ctx: typer.Context) -> Session:
    """The session of this command line (made by the global options)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Session):
        obj = new_session(None, None)
        ctx.find_root().obj = obj
    return obj


def show(result: object, output: OutputFormat = OutputFormat.TEXT) -> None:
    """Hand a command's result to the one renderer (stdout)."""
    from agentctl.render import render

    render(
        result,
        json_output=output == OutputFormat.JSON,
        console=stdout.console,
        errors=stderr.console,
    )


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def complete_agent_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of an agent NAME: recorded agents and ./contracts."""
    from pathlib import Path

    from agentctl.names import complete_names, state_url_for_completion

    root = ctx.find_root().params
    url = state_url_for_completion(root.get("config"), root.get("state"))
    return complete_names(incomplete, state_url=url, cwd=Path.cwd())


class ProviderCommandLine:
    """The :class:`agentctl.providers.base.CommandLine` handed to a provider's
    sub-commands (``ProviderSpec.commands``): they parse their own options and
    reach the session, the renderer and ``--output`` only through it."""

    output_option = OUTPUT_OPTION

    def session(self, ctx: typer.Context) -> Session:
        return app_context(ctx)

    def complete_agent_name(self, ctx: typer.Context, incomplete: str) -> list[str]:
        return complete_agent_name(ctx, incomplete)

    def show(self, result: object, output: OutputFormat) -> None:
        show(result, output)

    def text_renderer(self, result_type: str) -> Any:
        from agentctl.render import text_renderer

        return text_renderer(result_type)


if TYPE_CHECKING:
    from agentctl.providers.base import CommandLine

    _IS_A_COMMAND_LINE: CommandLine = ProviderCommandLine()
