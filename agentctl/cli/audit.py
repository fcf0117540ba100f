"""``agentctl audit``: list, verify and export the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import typer

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    stderr,
    stdout,
)
from agentctl.cli.common import show as show_result
from agentctl.errors import EXIT_FAILURE

# The commands (agentctl.commands.audit) are imported when one of them runs:
# every other command, `credentials` on a runtime host, `kill` in an incident,
# imports this module to list `audit` and should not pay for them.

# More than any trail holds, and far below the databases' 64-bit LIMIT.
MAX_EVENTS = 1_000_000_000

app = typer.Typer(
    help="Show, verify and export the audit trail (who did what, for whom, with which scopes).",
)


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    agent: str | None = typer.Option(
        None,
        "--agent",
        help="Only events where NAME is actor or target.",
        autocompletion=complete_agent_name,
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="From a date/time (2026-11-01, 2026-11-01T12:00Z) or back a duration (24h, 7d).",
    ),
    action: str | None = typer.Option(None, "--action", help="Only this action (e.g. kill)."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, max=MAX_EVENTS, help="Only the latest N matching events."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List audit events, oldest first (streamed: any length, flat memory)."""
    if ctx.invoked_subcommand is not None:
        return
    from agentctl.commands import audit

    listed = audit.events(app_context(ctx), agent=agent, since=since, action=action, limit=limit)
    show_result(listed, output)


@app.command()
def verify(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Check the keyed chain, its head and its latest anchor: exit 0 if intact, 1 naming
    the first bad event and how (or saying why the trail cannot be vouched for)."""
    from agentctl.commands import audit

    with _events_progress("verifying the audit trail") as checked:
        result = audit.verify(app_context(ctx), progress=checked)
    show_result(result, output)
    if result.verdict != "intact":
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def seal(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Migrate an old unkeyed trail: verify its hash chain, then MAC every event with the
    chain key from the secret store (created if needed). Safe to re-run."""
    from agentctl.commands import audit

    outcome = audit.seal(app_context(ctx))
    show_result(outcome, output)
    if outcome.after.verdict != "intact":
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def export(
    ctx: typer.Context,
    output_file: str | None = typer.Option(
        None, "--output-file", "-f", help="Write here instead of stdout (created 0600)."
    ),
) -> None:
    """Export every event as JSON Lines, with seq, hashes and MACs (streamed)."""
    from agentctl.commands import audit

    session = app_context(ctx)
    if output_file is None:
        show_result(audit.trail(session))
    else:
        with _events_progress("exporting the audit trail") as written:
            exported = audit.export(session, output_file, progress=written)
        show_result(exported)


def _events_progress(doing: str) -> AbstractContextManager[Callable[[str], None]]:
    """A long trail takes a while (about 20 s per 1,000,000 events): a line on a
    terminal's stderr meanwhile, counting events, nothing off it or with --quiet."""
    from agentctl.audit import EVENTS_PER_STEP
    from agentctl.render import progress

    return progress(
        stderr.console,
        doing,
        show=not stdout.console.quiet,
        unit="events",
        per_step=EVENTS_PER_STEP,
    )
