"""``agentctl audit``: list, verify and export the audit trail."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, print_json, stderr, stdout
from agentctl.clock import Clock, system_clock
from agentctl.errors import EXIT_FAILURE, UsageError

app = typer.Typer(
    help="Show, verify and export the audit trail (who did what, for whom, with which scopes).",
)

_UNBOUNDED_WIDTH = 100_000
# More than any trail holds, and far below the databases' 64-bit LIMIT.
MAX_EVENTS = 1_000_000_000


def parse_since(text: str, clock: Clock = system_clock) -> datetime:
    """A duration back from now (``24h``, ``7d``, ``1h30m``, ``2w``; a bare number
    is minutes), or an ISO date (UTC midnight) or time."""
    from agentctl.durations import UNIT_SECONDS, parse_duration

    value = text.strip()
    if value[:1].isdigit() and value[-1:].lower() in UNIT_SECONDS:
        return clock() - parse_duration(value, option="--since", minimum=0, bare_unit="m")
    try:
        moment = datetime.fromisoformat(value)  # a bare date means its midnight
    except ValueError:
        raise UsageError(
            f"--since '{text}' is neither a date, a time nor a duration",
            hint="use 2026-11-01, 2026-11-01T12:00:00Z, or 24h / 7d / 1h30m / 2w",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    agent: str | None = typer.Option(
        None, "--agent", help="Only events where NAME is actor or target."
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
    """List audit events, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    moment = parse_since(since) if since else None
    events = (
        app_context(ctx).state().audit_events(agent=agent, since=moment, action=action, limit=limit)
    )
    if output is OutputFormat.JSON:
        print_json({"events": [event.as_dict() for event in events]})
        return
    if not events:
        stderr.print("no audit events match")
        return
    table = Table(show_edge=False, pad_edge=False)
    headers = ("seq", "time (UTC)", "actor", "for", "action", "target", "result", "trigger")
    for column in (*headers, "scope", "operator"):
        # fold, never "…": an audit view must not hide part of a value.
        table.add_column(column, overflow="fold", no_wrap=column in ("seq", "time (UTC)"))
    for event in events:
        cells = (
            str(event.seq),
            event.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            event.actor,
            event.on_behalf_of or "-",
            event.action,
            event.target,
            event.result,
            event.trigger or "-",
            event.scope or "-",
            event.operator,
        )
        # Text, not markup: recorded values are data ("[bold]" in a trigger stays literal).
        table.add_row(*(Text(cell) for cell in cells))
    # Piped or redirected output has no width to fit: keep every row on one line.
    console = stdout if stdout.is_terminal else Console(file=stdout.file, width=_UNBOUNDED_WIDTH)
    console.print(table)


@app.command()
def verify(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Check the hash chain: exit 0 if intact, 1 naming the first bad event and how."""
    from agentctl.audit import verify_chain

    events, head = app_context(ctx).state().audit_chain()
    result = verify_chain(events, head=head)
    if output is OutputFormat.JSON:
        print_json(result.as_dict())
    elif result.ok:
        stdout.print(f"audit trail intact: {result.checked} events verified")
    else:
        which = f"seq {result.first_bad_seq}"
        if result.first_bad_id:
            which += f" (id {result.first_bad_id})"
        stdout.print(
            f"audit trail TAMPERED: first bad event {which}: {result.problem}", markup=False
        )
        intact = "1 event" if result.checked == 1 else f"{result.checked} events"
        stdout.print(f"the {intact} before it verified", markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def export(
    ctx: typer.Context,
    output_file: str | None = typer.Option(
        None, "--output-file", "-f", help="Write here instead of stdout (created 0600)."
    ),
) -> None:
    """Export every event as JSON Lines, with seq and hashes, verifiable elsewhere."""
    from agentctl.audit import export_jsonl

    events, _ = app_context(ctx).state().audit_chain()
    if output_file is None:
        export_jsonl(events, sys.stdout)
        sys.stdout.flush()
        return
    try:
        fd = os.open(output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {output_file}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        count = export_jsonl(events, handle)
    stderr.print(f"exported {count} events to {output_file}", markup=False)
