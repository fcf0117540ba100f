"""``agentctl audit``: list, verify and export the audit trail."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    stderr,
    stdout,
)
from agentctl.cli.common import show as show_result
from agentctl.clock import Clock, system_clock
from agentctl.commands import audit
from agentctl.errors import EXIT_FAILURE, UsageError

if TYPE_CHECKING:
    from agentctl.state.records import AuditEvent

app = typer.Typer(
    help="Show, verify and export the audit trail (who did what, for whom, with which scopes).",
)

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
    moment = parse_since(since) if since else None
    events = (
        app_context(ctx)
        .state()
        .iter_audit_events(agent=agent, since=moment, action=action, limit=limit)
    )
    if output is OutputFormat.JSON:
        _write_json_events(events)
        return
    # A terminal gets tables; pipes, files and cron get one greppable line per event.
    shown = _print_tables(events) if stdout.is_terminal else _write_lines(events)
    if not shown:
        stderr.print("no audit events match")


_HEADERS = ("seq", "time (UTC)", "actor", "for", "action", "target", "result", "trigger")
_COLUMNS = (*_HEADERS, "scope", "operator")
_TABLE_ROWS = 500  # rows per table on a terminal: one screenful's worth of layout work


def _cells(event: AuditEvent) -> tuple[str, ...]:
    return (
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


def _write_json_events(events: Iterable[AuditEvent]) -> None:
    """``{"events": [...]}``, written event by event."""
    out = sys.stdout
    out.write('{"events": [')
    for index, event in enumerate(events):
        out.write(",\n  " if index else "\n  ")
        out.write(json.dumps(event.as_dict(), sort_keys=False, ensure_ascii=False))
    out.write("\n]}\n")
    out.flush()


_UNPRINTABLE = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _write_lines(events: Iterable[AuditEvent]) -> int:
    """Off a terminal (pipes, files, cron): a header, then one tab-separated line per
    event, never wrapped or cut, so grep/cut/awk see whole records."""
    out = sys.stdout
    count = 0
    for event in events:
        if not count:
            out.write("\t".join(_COLUMNS) + "\n")
        out.write("\t".join(cell.translate(_UNPRINTABLE) for cell in _cells(event)) + "\n")
        count += 1
    out.flush()
    return count


def _print_tables(events: Iterable[AuditEvent]) -> int:
    """On a terminal: rich tables of a few hundred rows each, printed as they fill."""
    count = 0
    table = None
    for event in events:
        if table is None:
            table = _new_table(header=count == 0)
        # Text, not markup: recorded values are data ("[bold]" in a trigger stays literal).
        table.add_row(*(Text(cell) for cell in _cells(event)))
        count += 1
        if count % _TABLE_ROWS == 0:
            stdout.print(table)
            table = None
    if table is not None:
        stdout.print(table)
    return count


def _new_table(*, header: bool) -> Table:
    table = Table(show_edge=False, pad_edge=False, show_header=header)
    for column in _COLUMNS:
        # fold, never "…": an audit view must not hide part of a value.
        table.add_column(column, overflow="fold", no_wrap=column in ("seq", "time (UTC)"))
    return table


@app.command()
def verify(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Check the keyed chain, its head and its latest anchor: exit 0 if intact, 1 naming
    the first bad event and how (or saying why the trail cannot be vouched for)."""
    result = audit.verify(app_context(ctx))
    show_result(result, output)
    if result.verdict != "intact":
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def seal(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Migrate an old unkeyed trail: verify its hash chain, then MAC every event with the
    chain key from the secret store (created if needed). Safe to re-run."""
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
    from agentctl.audit import export_jsonl

    state = app_context(ctx).state()
    if output_file is None:
        with state.audit_trail() as (_, events):
            export_jsonl(events, sys.stdout)
        sys.stdout.flush()
        return
    try:
        fd = os.open(output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write {output_file}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle, state.audit_trail() as (_, events):
        count = export_jsonl(events, handle)
    stderr.print(f"exported {count} events to {output_file}", markup=False)
