"""``agentctl secrets migrate``: move agentctl's secrets into the team's store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, stdout
from agentctl.errors import EXIT_FAILURE, UsageError
from agentctl.render import print_json

if TYPE_CHECKING:
    from agentctl.secrets_migration import SecretMigrationResult

app = typer.Typer(
    help="The secret store: where App keys and live tokens are kept.", no_args_is_help=True
)

_STYLE = {
    "moved": "[green]✓ moved[/green]",
    "copied": "[green]✓ copied[/green]",
    "conflict": "[red]✗ conflict[/red]",
    "failed": "[red]✗ failed[/red]",
}


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
    from agentctl.secrets import open_secret_store
    from agentctl.secrets_migration import migrate_secrets, referenced_keys

    app_ctx = app_context(ctx)
    config = app_ctx.config()
    chosen_source = source or config.secrets.backend
    if not chosen_source:
        raise UsageError(
            "no source backend: secrets.backend is not set",
            hint="name the backend the secrets are in now with --from",
        )
    source_store = open_secret_store(config.secrets, backend=chosen_source)
    target_store = open_secret_store(config.secrets, backend=to)
    engine = app_ctx.engine()
    referenced = referenced_keys(engine)
    # The audit chain key may be among what moves: hold it, so this command's own
    # event is still sealed (later commands find it in the new backend).
    engine.state.load_chain_key()
    result = migrate_secrets(source_store, target_store, referenced, keep_source=keep_source)
    engine.audit(
        actor=engine.operator,
        action="secrets.migrate",
        target=result.target,
        result="success" if result.ok else "partial",
        trigger=f"operator/{engine.operator}",
        detail={
            "from": result.source,
            "to": result.target,
            "moves": {m.key: m.outcome.value for m in result.moves},
        },
    )
    if output == OutputFormat.JSON:
        print_json(result_dict(result))
    else:
        render(result)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


def result_dict(result: SecretMigrationResult) -> dict[str, object]:
    return {
        "ok": result.ok,
        "from": result.source,
        "to": result.target,
        "source_listed": result.source_listed,
        "keep_source": result.keep_source,
        "secrets": [
            {
                "key": m.key,
                "outcome": m.outcome.value,
                "already": m.already,
                "detail": m.detail or None,
            }
            for m in result.moves
        ],
    }


def render(result: SecretMigrationResult) -> None:
    for move in result.moves:
        note = " [dim](already there)[/dim]" if move.already else ""
        detail = f": {escape(move.detail)}" if move.detail else ""
        stdout.print(f"{_STYLE[move.outcome.value]} {escape(move.key)}{note}{detail}")
    if not result.source_listed:
        stdout.print(
            f"[dim]{escape(result.source)} cannot list its entries: keys were taken from the "
            "state (App keys, live tokens, serve signing keys)[/dim]"
        )
    moved = sum(1 for m in result.moves if m.outcome.value in ("moved", "copied"))
    verb = "copied" if result.keep_source else "moved"
    stdout.print(
        f"\n{moved} secret{'s' if moved != 1 else ''} {verb} from {escape(result.source)} "
        f"to {escape(result.target)}"
        + (
            f", [red]{len(result.moves) - moved} not moved[/red]"
            if moved != len(result.moves)
            else ""
        )
    )
    if result.ok and moved:
        stdout.print(
            f"Next: set [bold]secrets.backend: {escape(result.target)}[/bold] in agentctl.yaml "
            "on every operator's machine."
        )
