"""`agentctl state init|migrate`: create or upgrade the state store on purpose.

Only `apply`, registrations and this command create a state store; every
other command reports a missing one (a typo in --state must not become a new,
empty store that tells cron "no agents").
"""

from __future__ import annotations

import typer

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, stdout
from agentctl.render import print_json

app = typer.Typer(
    help="Create or upgrade the state store (SQLite file or PostgreSQL database).",
    no_args_is_help=True,
)


def _init(ctx: typer.Context, output: OutputFormat) -> None:
    context = app_context(ctx)
    context.may_create_state = True
    store = context.state()
    version = store.migrate()
    if output == OutputFormat.JSON:
        print_json({"state": store.url, "dialect": store.dialect, "schema_version": version})
        return
    stdout.print(f"state store {store.url} ready (schema version {version})", highlight=False)


@app.command("init")
def init_command(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Create the configured state store (or upgrade it), then exit.

    PostgreSQL: the role needs CONNECT on the database and CREATE on its schema
    for this command; day-to-day commands need only SELECT, INSERT, UPDATE and
    DELETE on agentctl's tables (see README, "Running agentctl as a team").
    """
    _init(ctx, output)


@app.command("migrate")
def migrate_command(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Upgrade the state store's tables to this agentctl version (creates it if missing)."""
    _init(ctx, output)
