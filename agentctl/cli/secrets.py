"""``agentctl secrets migrate``: move agentctl's secrets into the team's store."""

from __future__ import annotations

import typer

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, show
from agentctl.errors import EXIT_FAILURE

app = typer.Typer(
    help="The secret store: where App keys and live tokens are kept.", no_args_is_help=True
)


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    to: str = typer.Option(
        ..., "--to", help="Backend to move the secrets into, e.g. aws-secretsmanager."
    ),
    source: str | None = typer.Option(
        None,
        "--from",
        help="Backend the secrets are in now (default: the configured secrets.backend).",
    ),
    keep_source: bool = typer.Option(
        False, "--keep-source", help="Copy only: leave every value in the source as well."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Move App keys, live token values and serve signing keys to another backend.

    Each value is written, read back and compared before it is deleted from the
    source; running it again moves nothing twice. Values are never shown.
    After a move, set secrets.backend in agentctl.yaml to the new backend.
    """
    from agentctl.commands.secrets import migrate

    result = migrate(app_context(ctx), to, source, keep_source=keep_source)
    show(result, output)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)
