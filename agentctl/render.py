"""The one renderer: any command result as JSON or as text.

Commands (``agentctl.commands``) return frozen dataclasses and never print.
This module is the only place that turns them into output:

- **JSON** (``--output json``): :func:`json_data` is the single encoder. A
  dataclass becomes an object of its fields, in order (a field with
  ``metadata={"json": False}`` is left out, one with ``{"omit_none": True}``
  only while it is None); a class may name its
  keys with a ``json_fields`` class attribute (an attribute name, or a
  ``(key, attribute)`` pair, so a property such as ``ok`` or ``summary`` can be
  a key too); a class with its own stable wire format (the audit event, whose
  shape is part of its hash chain) provides ``__json__``. Dates are ISO 8601,
  enums their value, tuples lists. A :class:`agentctl.secrets.Secret` is never
  encoded: results that must reveal a value (a credential shown once) hold it
  as a plain string, deliberately.
- **Text**: one function per result type, registered with :func:`text_renderer`.
  On a terminal it uses rich (colour, tables); off a terminal (a pipe, a file,
  cron mail) every record is one plain line, never wrapped or cut, so
  ``agentctl list | grep NAME`` finds the whole row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import PurePath
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from agentctl.markup import TextConsole, escape, plain

if TYPE_CHECKING:
    # rich is imported where it draws: on a terminal (off one, agentctl.markup).
    from rich.console import Console
    from rich.text import Text

    from agentctl.audit import SealResult, VerifyResult
    from agentctl.commands.apply import NothingToApply
    from agentctl.commands.audit import AuditEvents, AuditExported, AuditTrail
    from agentctl.commands.exec import (
        ApprovalDecision,
        Credentials,
        ExecResult,
        PendingApprovals,
    )
    from agentctl.commands.expiring import NotifyResult
    from agentctl.commands.lifecycle import RotateResult
    from agentctl.commands.schema import Schemas
    from agentctl.commands.serve import Callers, IssuedCaller, RevokedCaller
    from agentctl.commands.state import StateReady
    from agentctl.commands.status import StatusResult
    from agentctl.commands.validate import ValidateResult
    from agentctl.engine import LifecycleReport
    from agentctl.model import Problem
    from agentctl.plan import Plan
    from agentctl.reports import ApplyReport, ExpiringReport, SecretAge
    from agentctl.secrets_migration import SecretMigrationResult
    from agentctl.state.records import AuditEvent

JsonData = None | bool | int | float | str | list["JsonData"] | dict[str, "JsonData"]

R = TypeVar("R")


# -- JSON --------------------------------------------------------------------------


def json_data(value: object) -> JsonData:
    """``value`` as plain JSON data (see the module docstring for the rules)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return json_data(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    own = getattr(value, "__json__", None)
    if own is not None and callable(own):
        return json_data(own())
    if is_dataclass(value) and not isinstance(value, type):
        spec = getattr(type(value), "json_fields", None)
        if spec is None:
            spec = tuple(f.name for f in fields(value) if f.metadata.get("json", True))
        omit_none = {f.name for f in fields(value) if f.metadata.get("omit_none")}
        data: dict[str, JsonData] = {}
        for entry in spec:
            key, attribute = (entry, entry) if isinstance(entry, str) else entry
            item = getattr(value, attribute)
            if item is None and attribute in omit_none:
                continue  # a key that only some records of one kind carry
            data[key] = json_data(item)
        return data
    if isinstance(value, Mapping):
        return {str(k): json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_data(v) for v in value]
    if type(value).__name__ == "Secret":
        raise TypeError("a Secret is never rendered: put the revealed value in the result")
    return str(value)


def print_json(value: object) -> None:
    sys.stdout.write(json.dumps(json_data(value), indent=2, ensure_ascii=False))
    sys.stdout.write("\n")
    sys.stdout.flush()


# -- text --------------------------------------------------------------------------

Cell = str | tuple[str, str]  # plain text, or (plain text, rich style)


class Output:
    """Where a text renderer writes: lines of rich markup and tables.

    On a terminal both are rich. Off a terminal a table is its header and then
    one line per row, columns aligned with two spaces, nothing folded or
    truncated; markup styles are dropped (rich writes no colour to a pipe).
    """

    def __init__(self, console: TextConsole, errors: TextConsole | None = None) -> None:
        self.console = console
        self.errors = errors or console
        # Off a terminal rich adds nothing (no colour, no wrapping: soft_wrap),
        # but measuring and rendering segments per printed line cost ~0.3 ms: a
        # 3,000-file validate spent 42% of its time there. Plain lines go
        # straight to the stream instead.
        self._terminal = console.is_terminal

    def error_line(self, markup: str) -> None:
        """A line about something that failed: stderr, beside the command's errors."""
        if self.errors.is_terminal:
            self.errors.print(markup)
        else:
            _write(self.errors, _plain_markup(markup) + "\n")

    @property
    def is_terminal(self) -> bool:
        return self._terminal

    def line(self, markup: str = "") -> None:
        if self._terminal:
            self.console.print(markup)
        else:
            _write(self.console, _plain_markup(markup) + "\n")

    def plain(self, text: str) -> None:
        """A line of data printed as it is: no markup, no highlighting."""
        if self._terminal:
            self.console.print(text, markup=False, highlight=False)
        else:
            _write(self.console, text + "\n")

    def lines(self, texts: Iterable[str]) -> None:
        """Lines of data printed as they are, written in one go off a terminal."""
        if self._terminal:
            for text in texts:
                self.plain(text)
        else:
            _write(self.console, "".join(f"{text}\n" for text in texts))

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Cell]],
        *,
        title: str | None = None,
        no_wrap: Iterable[str] = (),
    ) -> None:
        rows = [list(row) for row in rows]
        if not rows:
            return
        if self.is_terminal and len(rows) <= RICH_TABLE_MAX_ROWS:
            from rich.table import Table

            keep = set(no_wrap)
            table = Table(title=title)
            for column in columns:
                # fold, never "…": a table must not hide part of a value.
                table.add_column(column, overflow="fold", no_wrap=column in keep)
            for row in rows:
                table.add_row(*(_rich_cell(cell) for cell in row))
            self.console.print(table)
            return
        texts = [_plain_row(row) for row in [list(columns), *rows]]
        widths = [max(map(len, column)) for column in zip(*texts, strict=True)]
        if self.is_terminal:
            self._long_table(texts, rows, widths)
            return
        # One format per table, not a join of padded cells per row: 10,000
        # agents in `status` were 80,000 cell calls.
        template = "  ".join(f"{{:<{width}}}" for width in widths)
        self.lines(template.format(*row).rstrip() for row in texts)

    def _long_table(
        self, texts: list[list[str]], rows: Sequence[Sequence[Cell]], widths: list[int]
    ) -> None:
        """A terminal's table too long for rich: the plain layout, the header bold
        and styled cells in their colours, written in one go."""
        paint = _painter(self.console)
        header = "  ".join(t.ljust(w) for t, w in zip(texts[0], widths, strict=True)).rstrip()
        lines = [paint("bold", header)]
        for row, raw in zip(texts[1:], rows, strict=True):
            padded = [
                text.ljust(width)
                if isinstance(cell, str)
                # pad outside the colour: trailing spaces are not part of the value
                else paint(cell[1], text) + " " * (width - len(text))
                for text, cell, width in zip(row, raw, widths, strict=True)
            ]
            lines.append("  ".join(padded).rstrip())
        _write(self.console, "".join(f"{line}\n" for line in lines))


# A rich Table measures every cell: `agentctl list` of 10,000 agents on a
# terminal took 6 s of CPU and 130 MB. Past this many rows (pages of them
# scroll by anyway) a terminal gets the plain layout, still coloured.
RICH_TABLE_MAX_ROWS = 1000


def _painter(console: TextConsole) -> Callable[[str, str], str]:
    """``paint(style, text)``: ``text`` in a rich style as ANSI codes for this
    console (a terminal's: plain with NO_COLOR or without colour support)."""
    from rich.color import ColorSystem
    from rich.style import Style

    terminal = cast("Console", console)
    system = {
        "standard": ColorSystem.STANDARD,
        "256": ColorSystem.EIGHT_BIT,
        "truecolor": ColorSystem.TRUECOLOR,
        "windows": ColorSystem.WINDOWS,
    }.get(terminal.color_system or "")
    if system is None or terminal.no_color:
        return lambda _style, text: text
    codes: dict[str, tuple[str, str]] = {}

    def paint(style: str, text: str) -> str:
        if style not in codes:
            before, _, after = Style.parse(style).render("\0", color_system=system).partition("\0")
            codes[style] = (before, after)
        before, after = codes[style]
        return f"{before}{text}{after}"

    return paint


@contextlib.contextmanager
def progress(
    errors: TextConsole,
    doing: str,
    *,
    show: bool = True,
    unit: str = "agents",
    per_step: int = 1,
) -> Iterator[Callable[[str], None]]:
    """Progress of a command that works through many agents (``plan``, ``status
    --refresh``): yields the callback to call with each agent's name when it
    is done, from any thread.

    On a terminal (``errors``, the stderr console) a transient rich line
    ``{doing} NAME  N agents  0:00:03``, erased when done. Off a terminal (a
    pipe, a file, cron) nothing at all: the result itself is a line per agent,
    and cron mails any output. Nor when not ``show`` (--quiet, nothing slow).
    ``unit``/``per_step``: what is counted and by how many each call (audit
    commands count events, a step per ``agentctl.audit.EVENTS_PER_STEP``).
    """
    if not show or not errors.is_terminal or cast("Console", errors).is_dumb_terminal:
        yield _no_progress
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn(f"[dim]{{task.completed:,}} {unit}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=cast("Console", errors), transient=True) as shown:
        task = shown.add_task(doing, total=None)

        def advance(agent: str) -> None:
            shown.update(
                task,
                advance=per_step,
                description=f"{doing} {escape(_printable(agent))}" if agent else doing,
            )

        yield advance


def _no_progress(agent: str) -> None:
    return None


def _write(console: TextConsole, text: str) -> None:
    if not console.quiet:  # --quiet: only what went wrong (on the errors console)
        console.file.write(text)


def _plain_markup(markup: str) -> str:
    """The text of a line of rich markup, as rich would print it off a terminal
    (emoji codes stay literal: the text often holds user data)."""
    if "[" not in markup:
        return markup
    return plain(markup)


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _plain_cell(cell: Cell) -> str:
    text = cell if isinstance(cell, str) else cell[0]
    # Values come from users and providers: never let them drive the terminal
    # or break a record over two lines.
    return _printable(text)


def _plain_row(row: Sequence[Cell]) -> list[str]:
    texts = [cell if isinstance(cell, str) else cell[0] for cell in row]
    # A row is printable if all of its text is: one check for the usual row.
    if "".join(texts).isprintable():
        return texts
    return [_printable(text) for text in texts]


def _rich_cell(cell: Cell) -> Text:
    from rich.text import Text

    text = _plain_cell(cell)
    return Text(text) if isinstance(cell, str) else Text(text, style=cell[1])


def printable(text: str) -> str:
    """User-supplied text for rich markup: escaped, control characters shown."""
    return escape(_printable(text))


# Renderers are keyed by the result's "module.QualName", so this module never
# imports the core at import time (`agentctl --help` stays fast).
_RENDERERS: dict[str, Callable[[Any, Output], None]] = {}
# The JSON of a result that streams (holds an iterator read once, of any
# length): written piece by piece instead of built whole by json_data.
_JSON_STREAMS: dict[str, Callable[[Any, IO[str]], None]] = {}


def text_renderer(
    result_type: str,
) -> Callable[[Callable[[R, Output], None]], Callable[[R, Output], None]]:
    """Register the text rendering of one result type, by its qualified name."""

    def register(function: Callable[[R, Output], None]) -> Callable[[R, Output], None]:
        _RENDERERS[result_type] = function
        return function

    return register


def json_stream(
    result_type: str,
) -> Callable[[Callable[[R, IO[str]], None]], Callable[[R, IO[str]], None]]:
    """Register the streamed JSON of one result type, by its qualified name."""

    def register(function: Callable[[R, IO[str]], None]) -> Callable[[R, IO[str]], None]:
        _JSON_STREAMS[result_type] = function
        return function

    return register


def _registered(table: Mapping[str, R], result: object) -> R | None:
    for klass in type(result).__mro__:
        found = table.get(f"{klass.__module__}.{klass.__qualname__}")
        if found is not None:
            return found
    return None


def render_text(result: object, out: Output) -> None:
    renderer = _registered(_RENDERERS, result)
    if renderer is None:
        raise TypeError(f"no text rendering for {type(result).__name__}")
    renderer(result, out)


def render(
    result: object,
    *,
    json_output: bool,
    console: TextConsole,
    errors: TextConsole | None = None,
) -> None:
    """Show one command result: JSON on stdout, or text on ``console`` (and
    lines about failures on ``errors``)."""
    if json_output:
        stream = _registered(_JSON_STREAMS, result)
        if stream is not None:
            stream(result, sys.stdout)
        else:
            print_json(result)
    else:
        render_text(result, Output(console, errors))


# -- the text of each result ---------------------------------------------------------

KIND_STYLE = {
    "create": "[green]+ create[/green]",
    "update": "[yellow]~ update[/yellow]",
    "disable": "[magenta]- disable[/magenta]",
    "remove": "[red]- remove[/red]",
    "conflict": "[red]! conflict[/red]",
    "drift": "[yellow]! drift[/yellow]",
    # Each declared change's summary says what it is: a system no provider
    # enforces, or a kill exception (enforced, and out of the kill's reach).
    "declared": "[dim]· declared[/dim]",
}
SHOWN_KINDS = ("conflict", "drift", "declared")


@text_renderer("agentctl.plan.Plan")
def _plan(plan: Plan, out: Output) -> None:
    shown = 0
    for agent in plan.agents:
        changes = [c for c in agent.changes if c.mutating or c.kind.value in SHOWN_KINDS]
        if not changes and not agent.errors and not agent.record and not agent.kill_undone:
            continue
        shown += 1
        label = f"[bold]{escape(agent.agent)}[/bold]"
        if agent.disposition != "active":
            label += f" [dim]({agent.disposition})[/dim]"
        # A terminal groups an agent's lines under its name. Off it (CI logs,
        # pipes, files) every line starts with the agent, so each is a whole
        # record: `agentctl plan | grep NAME` finds all of that agent's changes.
        if out.is_terminal:
            out.line(label)
            at = "  "
        else:
            at = f"{label}  "
        for change in changes:
            note = ""
            if agent.disposition == "orphan" and not plan.prune and change.mutating:
                note = " [dim](only with --prune)[/dim]"
            kind = KIND_STYLE.get(change.kind.value, change.kind.value)
            out.line(f"{at}{kind} {printable(change.summary)}{note}")
            # Field-by-field diffs say what an update changes; a create's fields are
            # the whole contract and only bury the summary (--output json has them).
            for field in change.fields if change.kind.value == "update" else ():
                out.line(
                    f"{at}    {printable(field.field)}: [red]{printable(str(field.before))}[/red]"
                    f" → [green]{printable(str(field.after))}[/green]"
                )
        if agent.record:
            out.line(
                f"{at}[cyan]· record[/cyan] in the state: the providers already match the "
                "contract (an earlier apply was interrupted)"
            )
        for undone in agent.kill_undone:
            out.line(f"{at}[bold red]! {printable(undone)}[/bold red]")
        for error in agent.errors:
            out.line(f"{at}[red]error[/red] {printable(error)}")
    summary = plan.summary
    counts = ", ".join(f"{n} to {k}" for k, n in sorted(summary.changes.items())) or "no changes"
    out.line(
        f"\n{summary.agents} agents: {counts}"
        + (f", {summary.orphans} orphaned" if summary.orphans else "")
        + (f", [red]{summary.errors} errors[/red]" if summary.errors else "")
    )
    for note in plan.notes:
        out.line(f"[yellow]note[/yellow] {escape(note)}")
    if shown == 0 and not plan.has_changes:
        out.line("[green]Everything is up to date.[/green]")


@text_renderer("agentctl.commands.apply.NothingToApply")
def _nothing_to_apply(result: NothingToApply, out: Output) -> None:
    out.line(f"[green]No changes.[/green] {result.agents} agents up to date.")


@text_renderer("agentctl.reports.ApplyReport")
def _apply(report: ApplyReport, out: Output) -> None:
    rows: list[list[Cell]] = []
    for agent in report.agents:
        if not agent.results and agent.ok and not agent.skipped:
            continue
        result: Cell = ("ok", "green") if agent.ok else ("failed", "red")
        if agent.skipped:
            result = (f"skipped ({agent.skipped})", "yellow")
        actions = "; ".join(
            f"{r.provider} {r.action}{'' if r.ok else ' FAILED'}" for r in agent.results
        )
        if agent.error:
            actions = (actions + "; " if actions else "") + agent.error
        rows.append([agent.agent, result, (actions, "red") if agent.error else actions])
    out.table(("agent", "result", "actions"), rows, title="apply")
    summary = report.summary
    out.line(
        f"{summary.changed} agents changed, {summary.failed} failed, {summary.agents} in total."
    )
    for note in report.notes:
        out.line(f"  [yellow]note[/yellow] {escape(note)}")


_DONE = {"kill": "killed", "revive": "revived", "rotate": "rotated"}


@text_renderer("agentctl.engine.LifecycleReport")
def _lifecycle(report: LifecycleReport, out: Output) -> None:
    verb = _DONE[report.action]
    if report.already:
        out.line(f"{escape(report.agent)} was already {verb}.")
    for result in report.results:
        mark = "[green]✓[/green]" if result.ok else "[red]✗[/red]"
        # A failure never reads "done", whatever a provider left in detail.
        detail = result.detail or (
            "already" if result.already else "done" if result.ok else "failed (no detail given)"
        )
        out.line(f"  {mark} {result.provider}: {escape(detail)}")
        if not result.ok and result.remaining:
            out.line(f"      [bold]still to do:[/bold] {escape(result.remaining)}")
    for note in report.notes:
        out.line(f"  [yellow]note[/yellow] {escape(note)}")
    if report.ok and not report.already:
        out.line(f"[bold]{escape(report.agent)} {verb}.[/bold]")
    elif not report.ok and report.action == "kill":
        out.line(
            f"[bold red]{escape(report.agent)} only partly killed (status kill-incomplete): do "
            f"what is still to do above, or fix it and run `agentctl kill {escape(report.agent)}` "
            "again.[/bold red]"
        )
    elif not report.ok:
        out.line(f"[bold red]{escape(report.agent)} only partly {verb}: see above.[/bold red]")


@text_renderer("agentctl.commands.lifecycle.RotateResult")
def _rotate(result: RotateResult, out: Output) -> None:
    for report in result.reports:
        out.line(f"[bold]{escape(report.agent)}[/bold]")
        _lifecycle(report, out)
    if not result.reports:
        out.line("No active agents to rotate.")


@text_renderer("agentctl.reports.ExpiringReport")
def _expiring(report: ExpiringReport, out: Output) -> None:
    # Nothing due prints nothing: cron mails only on output.
    if not out.is_terminal:
        # Off a terminal (cron mail, a pipe) one whole record per line, so
        # `grep app-private-key` or `grep OWNER` keeps each line's owner.
        out.lines(
            f"{_printable(i.owner)}  {_printable(i.agent)}: {i.kind}: {_printable(i.detail)}"
            for owner in report.owners
            for i in owner.items
        )
        return
    for owner in report.owners:
        out.line(f"[bold]{escape(owner.owner)}[/bold]")
        for item in owner.items:
            out.line(f"  {escape(item.agent)}: {item.kind}: {escape(item.detail)}")


@text_renderer("agentctl.commands.expiring.NotifyResult")
def _notified(result: NotifyResult, out: Output) -> None:
    for delivery in result.deliveries:
        where = ", ".join(delivery.services) or "nowhere"
        agents = ", ".join(delivery.agents)
        if result.dry_run and delivery.problem is None:
            out.line(f"would tell {escape(delivery.owner)} via {where}: {escape(agents)}")
            for line in (delivery.preview or "").splitlines():
                out.line(f"    {escape(line)}")
        elif delivery.sent:
            out.line(f"told {escape(delivery.owner)} via {where}: {escape(agents)}")
        else:
            out.error_line(
                f"[red]not told[/red] {escape(delivery.owner)} ({escape(agents)}): "
                f"{escape(delivery.problem or 'failed')}"
            )


_STATUS_STYLE = {
    "active": "green",
    "killed": "red",
    "kill-incomplete": "bold red",
    "kill-undone": "bold red",
    "expired": "magenta",
    "drifted": "yellow",
}


@text_renderer("agentctl.commands.status.StatusResult")
def _status(result: StatusResult, out: Output) -> None:
    if not result.agents:
        out.line("No agents recorded yet. Run `agentctl apply contracts/`.")
        return
    columns = (
        "agent",
        "owner",
        "mode",
        "expiry",
        "status",
        "providers",
        "last rotated",
        "live creds",
        "long-lived secrets",
    )
    rows: list[list[Cell]] = [
        [
            view.name,
            view.owner,
            view.execution_mode,
            view.expiry.isoformat() if view.expiry else "-",
            (view.status, _STATUS_STYLE.get(view.status, "white")),
            ", ".join(view.providers) or "-",
            view.last_rotated_at.strftime("%Y-%m-%d %H:%M") if view.last_rotated_at else "never",
            str(view.live_credentials),
            "; ".join(_secret_age(secret) for secret in view.long_lived_secrets) or "-",
        ]
        for view in result.agents
    ]
    out.table(columns, rows)
    for view in result.agents:
        for item in view.drift:
            out.line(f"[yellow]drift[/yellow] {escape(view.name)}: {escape(item)}")


def _secret_age(secret: SecretAge) -> str:
    """``github app-private-key 12d``; an unknown age says how old it is at least."""
    age = (
        f"{secret.age_days}d"
        if secret.age_days is not None
        else f"age unknown (>= {secret.at_least_days}d)"
    )
    expires = f", expires {secret.expires_at.date().isoformat()}" if secret.expires_at else ""
    return f"{secret.provider} {secret.kind} {age}{expires}"


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@text_renderer("agentctl.commands.validate.ValidateResult")
def _validate(result: ValidateResult, out: Output) -> None:
    """Problems grouped by file, ``file:line:col  severity  code  message``, then a summary."""
    report = result.report
    by_file: dict[str, list[Problem]] = {}
    # Off a terminal (CI logs, pipes) notes are summarised per code: a note on
    # each of 3,000 files buries the errors. `--output json` lists every one.
    summarise_notes = not out.is_terminal
    notes: dict[str, list[Problem]] = {}
    for problem in report.problems:
        if summarise_notes and problem.severity.value == "info":
            notes.setdefault(problem.code, []).append(problem)
        else:
            by_file.setdefault(problem.file, []).append(problem)
    for file, problems in by_file.items():
        out.line(f"[bold]{printable(file)}[/bold]")
        for p in problems:
            where = f"{file}:{p.line}:{p.column}" if p.line else file
            severity = p.severity.value
            out.line(
                f"  {printable(where)}  [{_SEVERITY_STYLE[severity]}]{severity:<7}[/]  "
                f"{p.code}  {printable(p.message)}"
            )
        out.line()
    for code, same in notes.items():
        first = same[0]
        where = f"{first.file}:{first.line}:{first.column}" if first.line else first.file
        others = f" (and {len(same) - 1} more: --output json lists each)"
        out.line(
            f"{printable(where)}  [{_SEVERITY_STYLE['info']}]info[/]     {code}  "
            f"{printable(first.message)}{others if len(same) > 1 else ''}"
        )
    if notes:
        out.line()
    parts = [
        _plural(len(report.files), "file"),
        _plural(len(report.contracts), "valid contract"),
        *([f"{len(report.expired)} expired"] if report.expired else []),
        _plural(len(report.errors), "error"),
        _plural(len(report.warnings), "warning"),
        *([_plural(len(report.notes), "note")] if report.notes else []),
    ]
    style = "bold green" if report.ok else "bold red"
    out.line(f"[{style}]{'ok' if report.ok else 'failed'}[/]: {', '.join(parts)}")


@text_renderer("agentctl.commands.exec.ExecResult")
def _exec(result: ExecResult, out: Output) -> None:
    if result.not_started is not None:
        out.line(f"[red]error:[/red] {escape(result.not_started)}")
    elif result.killed_with is not None:
        out.line(
            f"[red]agentctl: {escape(result.agent)} was killed: the command was ended "
            f"({' then '.join(result.killed_with) or 'already gone'}); "
            f"exit {result.exit_code}[/red]"
        )
    for failed in result.not_revoked:
        out.line(f"[yellow]warning[/yellow]: {failed.provider}: {escape(failed.detail)}")


@text_renderer("agentctl.commands.exec.Credentials")
def _credentials(result: Credentials, out: Output) -> None:
    """``export K=V`` lines for ``eval``: exactly the values, nothing else."""
    import shlex

    for key, value in result.environment.items():
        out.console.file.write(f"export {key}={shlex.quote(value)}\n")


@text_renderer("agentctl.commands.exec.ApprovalDecision")
def _decision(result: ApprovalDecision, out: Output) -> None:
    record = result.approval
    if result.approved:
        out.line(
            f"Approved {record.id} for {escape(record.agent)}: `{escape(record.command)}`. "
            f"The requester re-runs with --approval {record.id} before "
            f"{record.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    else:
        out.line(f"Denied {record.id} for {escape(record.agent)}.")


@text_renderer("agentctl.commands.exec.PendingApprovals")
def _pending(result: PendingApprovals, out: Output) -> None:
    if not result.pending:
        out.line("No pending approvals.")
        return
    columns = ("id", "agent", "requested by", "on behalf of", "trigger", "command", "expires")
    rows = [
        (
            a.id,
            a.agent,
            a.requester,
            a.on_behalf_of or "-",
            a.trigger or "-",
            a.command,
            f"{a.expires_at:%H:%M} UTC",
        )
        for a in result.pending
    ]
    out.table(columns, rows)


@text_renderer("agentctl.commands.serve.IssuedCaller")
def _issued_caller(result: IssuedCaller, out: Output) -> None:
    what = "signing key" if result.kind == "hmac" else "bearer token"
    out.error_line(
        f"Created caller [bold]{escape(result.name)}[/bold] ({what}, fingerprint "
        f"{result.fingerprint}). It is shown once, now:"
    )
    # The credential alone on stdout, so `... > file` captures exactly it.
    out.plain(result.credential)


@text_renderer("agentctl.commands.serve.Callers")
def _callers(result: Callers, out: Output) -> None:
    if not result.callers:
        out.line("No callers. Create one with `agentctl serve token create --name NAME`.")
        return
    for row in result.callers:
        style = "green" if row.status == "live" else "dim"
        out.line(
            f"[{style}]{escape(row.name)}[/{style}]  {row.kind}  {row.status}  "
            f"fingerprint {row.fingerprint}  created {row.created_at} by "
            f"{escape(row.created_by)}  last used {row.last_used_at or 'never'}"
        )


@text_renderer("agentctl.commands.serve.RevokedCaller")
def _revoked_caller(result: RevokedCaller, out: Output) -> None:
    out.line(f"Revoked caller [bold]{escape(result.name)}[/bold].")


_MOVE_STYLE = {
    "moved": "[green]✓ moved[/green]",
    "copied": "[green]✓ copied[/green]",
    "conflict": "[red]✗ conflict[/red]",
    "failed": "[red]✗ failed[/red]",
}


@text_renderer("agentctl.secrets_migration.SecretMigrationResult")
def _secrets_migrated(result: SecretMigrationResult, out: Output) -> None:
    for move in result.moves:
        note = " [dim](already there)[/dim]" if move.already else ""
        detail = f": {escape(move.detail)}" if move.detail else ""
        out.line(f"{_MOVE_STYLE[move.outcome.value]} {escape(move.key)}{note}{detail}")
    if not result.source_listed:
        out.line(
            f"[dim]{escape(result.source)} cannot list its entries: keys were taken from the "
            "state (App keys, live tokens, serve signing keys)[/dim]"
        )
    moved = sum(1 for m in result.moves if m.outcome.value in ("moved", "copied"))
    verb = "copied" if result.keep_source else "moved"
    out.line(
        f"\n{moved} secret{'s' if moved != 1 else ''} {verb} from {escape(result.source)} "
        f"to {escape(result.target)}"
        + (
            f", [red]{len(result.moves) - moved} not moved[/red]"
            if moved != len(result.moves)
            else ""
        )
    )
    if result.ok and moved:
        out.line(
            f"Next: set [bold]secrets.backend: {escape(result.target)}[/bold] in agentctl.yaml "
            "on every operator's machine."
        )


@text_renderer("agentctl.commands.state.StateReady")
def _state_ready(result: StateReady, out: Output) -> None:
    out.plain(f"state store {result.url} ready (schema version {result.schema_version})")


@text_renderer("agentctl.commands.schema.Schemas")
def _schemas(result: Schemas, out: Output) -> None:
    for path in result.written:
        out.plain(f"wrote {path}")
    if result.text is not None:
        # Raw text, not rich: the output is piped into files and tools.
        out.console.file.write(result.text)
        out.console.file.flush()


# -- agentctl audit (list, export)

_AUDIT_COLUMNS = (
    "seq",
    "time (UTC)",
    "actor",
    "for",
    "action",
    "target",
    "result",
    "trigger",
    "scope",
    "operator",
)
_AUDIT_TABLE_ROWS = 500  # rows per table on a terminal: one screenful's worth of layout work
_UNPRINTABLE = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _audit_cells(event: AuditEvent) -> tuple[str, ...]:
    return (
        str(event.seq),
        # what strftime("%Y-%m-%d %H:%M:%S") gives, at a fraction of its cost
        event.time.astimezone(UTC).isoformat(sep=" ", timespec="seconds")[:19],
        event.actor,
        event.on_behalf_of or "-",
        event.action,
        event.target,
        event.result,
        event.trigger or "-",
        event.scope or "-",
        event.operator,
    )


@json_stream("agentctl.commands.audit.AuditEvents")
def _audit_events_json(result: AuditEvents, stream: IO[str]) -> None:
    """``{"events": [...]}``, written event by event."""
    stream.write('{"events": [')
    for index, event in enumerate(result.events):
        stream.write(",\n  " if index else "\n  ")
        stream.write(json.dumps(event.as_dict(), sort_keys=False, ensure_ascii=False))
    stream.write("\n]}\n")
    stream.flush()


@text_renderer("agentctl.commands.audit.AuditEvents")
def _audit_events(result: AuditEvents, out: Output) -> None:
    # A terminal gets tables; pipes, files and cron get one greppable line per event.
    shown = (
        _audit_tables(result.events, out.console)
        if out.is_terminal
        else _audit_lines(result.events, out.console.file)
    )
    if not shown:
        out.errors.print("no audit events match")


def _audit_lines(events: Iterable[AuditEvent], stream: IO[str]) -> int:
    """Off a terminal (pipes, files, cron): a header, then one tab-separated line per
    event, never wrapped or cut, so grep/cut/awk see whole records."""
    count = 0
    separators = len(_AUDIT_COLUMNS) - 1
    for event in events:
        if not count:
            stream.write("\t".join(_AUDIT_COLUMNS) + "\n")
        cells = _audit_cells(event)
        line = "\t".join(cells)
        # One look at the line, not a translate per cell: only a value holding
        # a tab, newline or carriage return needs escaping.
        if line.count("\t") != separators or "\n" in line or "\r" in line:
            line = "\t".join(cell.translate(_UNPRINTABLE) for cell in cells)
        stream.write(line + "\n")
        count += 1
    stream.flush()
    return count


def _audit_tables(events: Iterable[AuditEvent], console: TextConsole) -> int:
    """On a terminal: a rich table while the listing fits one screenful's worth
    of layout work; a longer one (rich measured every cell: 0.6 ms an event,
    minutes for a year of events) in the plain layout, header bold, written
    as it is read, columns only ever widening."""
    stream = iter(events)
    first = list(itertools.islice(stream, _AUDIT_TABLE_ROWS + 1))
    if len(first) <= _AUDIT_TABLE_ROWS:
        if first:
            from rich.table import Table
            from rich.text import Text

            table = Table(show_edge=False, pad_edge=False)
            for column in _AUDIT_COLUMNS:
                # fold, never "…": an audit view must not hide part of a value.
                table.add_column(column, overflow="fold", no_wrap=column in ("seq", "time (UTC)"))
            for event in first:
                # Text, not markup: recorded values are data ("[bold]" in a trigger stays literal).
                table.add_row(*(Text(cell) for cell in _audit_cells(event)))
            console.print(table)
        return len(first)
    paint = _painter(console)
    widths = [len(column) for column in _AUDIT_COLUMNS]
    count = 0
    chunk = first
    while chunk:
        rows = [[_printable(cell) for cell in _audit_cells(event)] for event in chunk]
        widths = [
            max(width, *map(len, column))
            for width, column in zip(widths, zip(*rows, strict=True), strict=True)
        ]
        lines = [] if count else [paint("bold", _aligned(_AUDIT_COLUMNS, widths))]
        lines.extend(_aligned(row, widths) for row in rows)
        _write(console, "".join(f"{line}\n" for line in lines))
        count += len(chunk)
        chunk = list(itertools.islice(stream, _AUDIT_TABLE_ROWS))
    return count


def _aligned(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


@text_renderer("agentctl.commands.audit.AuditTrail")
def _audit_trail(result: AuditTrail, out: Output) -> None:
    from agentctl.audit import export_jsonl

    # JSON Lines whatever the output: an export is for tools.
    export_jsonl(result.events, out.console.file)
    out.console.file.flush()


@text_renderer("agentctl.commands.audit.AuditExported")
def _audit_exported(result: AuditExported, out: Output) -> None:
    out.errors.print(f"exported {result.count} events to {result.path}", markup=False)


# -- agentctl audit verify|seal


def _verify_lines(result: VerifyResult) -> list[str]:
    anchored = (
        f", anchored at seq {result.anchor_seq} in {result.anchor_where}"
        if result.anchor_seq is not None
        else ""
    )
    verdict = result.verdict
    if verdict == "tampered":
        which = f"seq {result.first_bad_seq}"
        if result.first_bad_id:
            which += f" (id {result.first_bad_id})"
        intact = "1 event" if result.checked == 1 else f"{result.checked} events"
        return [
            f"audit trail TAMPERED: first bad event {which}: {result.problem}",
            f"the {intact} before it verified",
        ]
    if verdict == "unverifiable":
        return [f"audit trail CANNOT BE VERIFIED: {result.problem}"]
    if verdict == "unkeyed":
        todo = "run 'agentctl audit seal' to verify and key it"
        if not result.can_key:
            todo = (
                "configure a secret store for the chain key (secrets.backend in agentctl.yaml), "
                f"then {todo}"
            )
        return [
            f"audit trail NOT KEYED: {result.checked} events hash-chained{anchored}, but "
            "anyone who can write the state database could have rewritten them",
            todo,
        ]
    if verdict == "unsealed":
        return [
            f"audit trail NOT SEALED: {result.unsealed} event(s) predate the chain key "
            f"(the other {result.checked - result.unsealed} verified with it{anchored})",
            "run 'agentctl audit seal' to verify and seal them",
        ]
    return [f"audit trail intact: {result.checked} events verified with the chain key{anchored}"]


@text_renderer("agentctl.audit.VerifyResult")
def _audit_verified(result: VerifyResult, out: Output) -> None:
    for line in _verify_lines(result):
        out.plain(line)


@text_renderer("agentctl.audit.SealResult")
def _audit_sealed(outcome: SealResult, out: Output) -> None:
    if outcome.verified_through == 0:
        out.line("audit trail keyed from its first event (the chain key is in the secret store)")
    elif outcome.sealed == 0 and outcome.complete:
        out.line(f"audit trail already sealed: {outcome.after.checked} events keyed")
    else:
        out.plain(
            f"sealed {outcome.sealed} event(s) after verifying seq 1-{outcome.verified_through}"
        )
        for line in _verify_lines(dataclasses.replace(outcome.after, can_key=True)):
            out.plain(line)
