"""`agentctl state init|migrate`: parses and renders :mod:`agentctl.commands.state`."""

from __future__ import annotations

import typer

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, show

# agentctl.commands.state is imported when one of these commands runs: every
# other command imports this module only to list `state`.

app = typer.Typer(
    help="Create or upgrade the state store (SQLite file or PostgreSQL database).",
    no_args_is_help=True,
)


@app.command("init")
def init_command(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Create the configured state store (or upgrade it), then exit.

    PostgreSQL: the role needs CONNECT on the database and CREATE on its schema
    for this command; day-to-day commands need only SELECT, INSERT, UPDATE and
    DELETE on agentctl's tables (see README, "Running agentctl as a team").
    """
    from agentctl.commands import state

    show(state.init(app_context(ctx)), output)


@app.command("migrate")
def migrate_command(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Upgrade the state store's tables to this agentctl version (creates it if missing)."""
    from agentctl.commands import state

    show(state.init(app_context(ctx)), output)
