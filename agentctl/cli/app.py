"""The ``agentctl`` command: global options, command registry, error handling.

Every command module only parses arguments, calls the core and renders the
returned data. Errors from the core are :class:`AgentctlError`; :func:`run`
turns them into one short message with what to do, and an exit code. No
traceback reaches a user for anything they can cause.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

from agentctl import __version__
from agentctl.cli import (
    GC_THRESHOLDS,
    audit,
    lifecycle,
    policy,
    runs,
    schema,
    secrets,
    serve,
    state,
    validate,
)
from agentctl.cli.common import new_session, reset_consoles, stderr, stdout
from agentctl.clock import Clock, system_clock
from agentctl.commands import Session
from agentctl.errors import EXIT_FAILURE, AgentctlError
from agentctl.markup import escape

if TYPE_CHECKING:
    # typer vendors click from 0.20 on; only its types are named here.
    from typer import _click as click

HELP = """\
Give every AI agent its own identity: a name, a human owner, scoped
permissions, an execution mode, an expiry date and a kill switch.

[bold]Typical use[/bold]

  agentctl validate contracts/          [dim]# in CI on every pull request[/dim]
  agentctl plan contracts/              [dim]# what would change[/dim]
  agentctl apply contracts/             [dim]# provision / update / disable expired[/dim]
  agentctl kill pr-review-agent         [dim]# incident: revoke this agent only[/dim]
  agentctl expiring --days 30           [dim]# nightly from cron[/dim]
  agentctl exec pr-review-agent --on-behalf-of amit@company.com -- python review.py

Exit codes: 0 ok, 1 failure or findings that need action, 2 usage error.
"""


class _Commands(TyperGroup):
    """Every command's AgentctlError rendered as one message plus what to do,
    with its exit code, also when the app is invoked without :func:`run`.

    Providers' own sub-commands (``agentctl github ...``) are mounted when
    they are asked for: by name, or all of them when the commands are listed
    (help, completion, "did you mean"). Importing a provider's commands costs
    every other command's start-up, and `agentctl kill` is started in an
    incident."""

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except AgentctlError as exc:
            render_error(exc)
            raise typer.Exit(exc.exit_code) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and self is _root_group(ctx):
            if cmd_name in _DEFERRED:
                self._build([cmd_name])
            else:
                self._mount_providers(only=cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # A name that is no built-in command: a provider's, or a typo whose
        # "did you mean" must know every command's name.
        if args and args[0] not in _DEFERRED and self is _root_group(ctx):
            self._build(list(_DEFERRED))
            self._mount_providers()
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        if self is _root_group(ctx):
            self._build(list(_DEFERRED))
            self._mount_providers()
        return super().list_commands(ctx)

    def _build(self, names: list[str]) -> None:
        """Build the click commands of ``names`` (typer reads each function's
        signature and type hints: ~20 ms for all of them, paid only by help)."""
        for name in names:
            if name not in self.commands:
                self.commands[name] = _build_command(_DEFERRED[name])
        self._order()

    def _mount_providers(self, only: str | None = None) -> None:
        mounted = _provider_groups(only)
        for name, group in mounted.items():
            self.commands.setdefault(name, group)
        self._order()

    def _order(self) -> None:
        # Help lists commands in this order: the app's, as registered, with the
        # providers' groups right after `audit`, where they always were.
        names = list(_DEFERRED)
        at = names.index(_PROVIDERS_AFTER) + 1 if _PROVIDERS_AFTER in names else len(names)
        providers = [n for n in self.commands if n not in _DEFERRED]
        order = [*names[:at], *providers, *names[at:]]
        self.commands = {n: self.commands[n] for n in order if n in self.commands}


def _root_group(ctx: click.Context) -> click.Command:
    return ctx.find_root().command


# How help is marked up and errors are shown: the same for the providers' groups.
_APP_SETTINGS: dict[str, Any] = {"rich_markup_mode": "rich", "pretty_exceptions_enable": False}

app = typer.Typer(
    cls=_Commands,
    name="agentctl",
    help=HELP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_APP_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        from agentctl.schema import SCHEMA_VERSION

        typer.echo(f"agentctl {__version__} (contract schema {SCHEMA_VERSION})")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None, "--config", envvar="AGENTCTL_CONFIG", help="Path to agentctl.yaml.", show_envvar=True
    ),
    state: str | None = typer.Option(
        None,
        "--state",
        envvar="AGENTCTL_STATE",
        help="State store: a SQLite path or a postgresql:// URL.",
        show_envvar=True,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="For scripts: print nothing but errors and warnings (stderr); the exit code "
        "says how it went. --output json and the values of `credentials` still print.",
    ),
) -> None:
    reset_consoles()
    # rich's quiet console drops every text result; JSON and credentials are
    # written to sys.stdout directly because they are the data a script asked for.
    stdout.console.quiet = quiet
    # run(..., clock=...) hands an in-process clock over through ctx.obj; the
    # installed CLI always starts with the real one.
    given = ctx.obj.clock if isinstance(ctx.obj, Session) else system_clock
    ctx.obj = new_session(config, state, clock=given)
    # Close the state store (and anything else opened lazily) when the command ends.
    ctx.call_on_close(ctx.obj.close)


# The group the providers' sub-commands are listed after.
_PROVIDERS_AFTER = "audit"


def _provider_groups(only: str | None = None) -> dict[str, click.Command]:
    """``agentctl <provider> ...`` for each installed provider whose spec names its
    commands (``ProviderSpec.commands``): a factory given the CLI's
    :class:`~agentctl.cli.common.ProviderCommandLine`, or a Typer app. ``only``:
    just that provider's (none when no provider has that name)."""
    from agentctl.cli.common import ProviderCommandLine
    from agentctl.providers.base import load_object
    from agentctl.providers.registry import loadable_provider_specs

    groups: dict[str, click.Command] = {}
    for name, spec in loadable_provider_specs().items():
        if spec.commands is None or (only is not None and name != only):
            continue
        try:
            commands = load_object(spec.commands, f"the {name} commands")
            if not isinstance(commands, typer.Typer) and callable(commands):
                commands = commands(ProviderCommandLine())
        except AgentctlError:
            continue
        if not isinstance(commands, typer.Typer):
            continue
        # Built exactly as app.add_typer(commands, name=name) would have.
        holder = typer.Typer(**_APP_SETTINGS, add_completion=False)
        holder.add_typer(commands, name=name)
        group = typer.main.get_command(holder)
        if isinstance(group, TyperGroup) and name in group.commands:
            groups[name] = group.commands[name]
    return groups


app.command(help=validate.HELP)(validate.validate)
app.command(help=policy.HELP)(policy.policy)
lifecycle.register(app)
runs.register(app)
app.add_typer(audit.app, name="audit")
app.add_typer(secrets.app, name="secrets")
app.add_typer(serve.app, name="serve")
app.add_typer(state.app, name="state")
app.command(name="schema", help=schema.HELP)(schema.schema)

# The commands are built when they are invoked or listed, not at every start:
# the root group (_Commands) builds them from here, in this order.
_DEFERRED: dict[str, CommandInfo | TyperInfo] = {
    **{
        info.name or typer.main.get_command_name(info.callback.__name__): info
        for info in app.registered_commands
        if info.callback is not None
    },
    **{str(info.name): info for info in app.registered_groups},
}
app.registered_commands = []
app.registered_groups = []


def _build_command(info: CommandInfo | TyperInfo) -> click.Command:
    """One command (or sub-group) exactly as the app's own group would build it."""
    holder = typer.Typer(**_APP_SETTINGS, add_completion=False)
    holder.callback()(_no_options)  # a group, as the app is
    if isinstance(info, TyperInfo):
        holder.registered_groups.append(info)
    else:
        holder.registered_commands.append(info)
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    (command,) = group.commands.values()
    return command


def _no_options() -> None:
    return None


def run(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run the CLI and return the exit code (tests call this directly).

    ``clock`` is for code in this process (tests, rehearsals) that needs
    another "now": the installed ``agentctl`` never passes one, and nothing
    outside the process can.

    Typer's standalone mode renders usage errors itself (exit 2); everything
    the core raises comes through here.
    """
    try:
        app(
            args=list(argv) if argv is not None else None,
            prog_name="agentctl",
            obj=Session(clock=clock or system_clock),
        )
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except AgentctlError as exc:
        render_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/yellow]: the next run converges from here")
        return 130
    except Exception as exc:  # a bug: say so, but never print its message (it may hold data)
        if os.environ.get("AGENTCTL_DEBUG"):
            raise
        stderr.print(
            f"[red]internal error[/red] ({exc.__class__.__name__}): this is a bug in agentctl. "
            "Re-run with AGENTCTL_DEBUG=1 for details and report it."
        )
        return EXIT_FAILURE
    return 0


def render_error(exc: AgentctlError) -> None:
    for problem in getattr(exc, "problems", ()):
        stderr.print(
            f"{escape(problem.file)}:{problem.line}:{problem.column}: "
            f"[red]{problem.code}[/red] {escape(problem.message)}"
        )
    stderr.print(f"[bold red]error:[/bold red] {escape(exc.message)}")
    if exc.hint:
        stderr.print(f"[dim]hint:[/dim] {escape(exc.hint)}")


def main() -> None:
    """Runs the app as its own process (``agentctl.cli.main``, the console script,
    tunes the collector before importing this module; here again for
    ``python -m agentctl`` and scripts installed before it did)."""
    import gc

    gc.set_threshold(*GC_THRESHOLDS)
    code = run()
    # The interpreter's shutdown ends with a full collection that walks every
    # object the imports made (boto3, typer, agentctl: ~half a million), only
    # to find them still referenced by their modules: ~20 % of the CPU of a
    # short command such as `credentials` (bench/README.md). Frozen objects
    # are left out of that walk. Nothing else changes: atexit handlers still
    # run and modules are still torn down, so files are flushed and closed as
    # before; only cyclic garbage made before this point is not looked for,
    # and a process that is ending has no use for that memory.
    gc.freeze()
    sys.exit(code)
