"""``agentctl validate``: check access contracts, for people and for CI.

Exit codes: 0 no errors (warnings and notes allowed), 1 any error (with
``--strict``, any warning too), 2 usage error.

``--output json`` prints one object::

    {
      "ok": true,
      "contracts": [{"name", "file", "owner", "expiry", "expired"}],   # loaded contracts,
                                                                       # expired ones included
      "problems": [{"file", "line", "column", "path", "severity", "code", "message"}],
      "summary": {"files", "contracts", "expired", "errors", "warnings", "notes"}
    }

``severity`` is ``error``, ``warning`` or ``info``; ``line``/``column`` are
1-based, or 0 for a problem with a whole file or path. The module imports
nothing heavy at import time: the contract loader (and jsonschema) only when
the command runs, and never an SDK (boto3, githubkit) or keyring.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, print_json, stderr, stdout
from agentctl.clock import today
from agentctl.durations import MAX_DAYS
from agentctl.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from agentctl.model import Severity

if TYPE_CHECKING:
    from agentctl.contract import ValidationReport

DEFAULT_PATH = Path("contracts")

# Registered by agentctl.cli.app as `app.command(help=HELP)(validate)` (rich markup).
HELP = """\
Validate access contracts: shape, names, owners, expiry, kill switch and permissions.

Checks every *.yaml / *.yml under the given paths (default: ./contracts) against the contract schema and each provider's vocabulary. Every problem names the file, line, column and path, and says what to do.

[bold]Exit codes[/bold]: 0 no errors, 1 any error (with --strict: any warning), 2 usage error. Use [bold]--output json[/bold] in CI for a stable, machine-readable report.
"""

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}

PATHS_ARGUMENT = typer.Argument(
    None,
    metavar="PATH",
    help="Contract files or directories (searched recursively for *.yaml, *.yml). Default: ./contracts",
    show_default=False,
)
STRICT_OPTION = typer.Option(
    False, "--strict", help="Treat warnings (wildcards, privileged scopes, ...) as errors."
)
MAX_LIFETIME_OPTION = typer.Option(
    None,
    "--max-lifetime-days",
    min=1,
    max=MAX_DAYS,
    help="Longest allowed time from today to expiry. Default: max_lifetime_days in agentctl.yaml, else 365.",
    show_default=False,
)


def validate(
    ctx: typer.Context,
    paths: list[Path] = PATHS_ARGUMENT,
    output: OutputFormat = OUTPUT_OPTION,
    strict: bool = STRICT_OPTION,
    max_lifetime_days: int | None = MAX_LIFETIME_OPTION,
) -> None:
    """Validate access contracts: shape, names, owners, expiry, kill switch and permissions."""
    if not paths:
        if not DEFAULT_PATH.is_dir():
            stderr.print("error: no PATH given and there is no ./contracts directory")
            stderr.print("hint: agentctl validate contracts/  (files or directories)")
            raise typer.Exit(EXIT_USAGE)
        paths = [DEFAULT_PATH]
    app = app_context(ctx)
    if max_lifetime_days is None:
        configured = app.config([str(p) for p in paths]).max_lifetime_days
        if isinstance(configured, bool) or not isinstance(configured, int) or configured < 1:
            stderr.print(
                f"error: max_lifetime_days in agentctl.yaml must be a positive whole number, not {configured!r}"
            )
            raise typer.Exit(EXIT_USAGE)
        max_lifetime_days = configured

    # Imported here, not at module level: `agentctl --help` must not pay for jsonschema.
    from agentctl.contract import load_contracts

    report = load_contracts(
        paths, today=today(app.clock()), max_lifetime_days=max_lifetime_days, strict=strict
    )
    if output is OutputFormat.JSON:
        print_json(report_as_json(report))
    else:
        render_report(report)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)


def report_as_json(report: ValidationReport) -> dict[str, Any]:
    contracts = [
        {
            "name": c.name,
            "file": c.source,
            "owner": c.owner,
            "expiry": c.expiry.isoformat(),
            "expired": expired,
        }
        for expired, group in ((False, report.contracts), (True, report.expired))
        for c in group
    ]
    contracts.sort(key=lambda c: str(c["file"]))
    return {
        "ok": report.ok,
        "contracts": contracts,
        "problems": [p.as_dict() for p in report.problems],
        "summary": {
            "files": len(report.files),
            "contracts": len(contracts),
            "expired": len(report.expired),
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "notes": len(report.notes),
        },
    }


def _printable(text: str) -> str:
    # File names and messages come from the user: never let them drive the terminal.
    return escape("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_report(report: ValidationReport) -> None:
    """Problems grouped by file, ``file:line:col  severity  code  message``, then a summary."""
    by_file: dict[str, list[Any]] = {}
    for problem in report.problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file, problems in by_file.items():
        stdout.print(f"[bold]{_printable(file)}[/bold]")
        for p in problems:
            where = f"{file}:{p.line}:{p.column}" if p.line else file
            stdout.print(
                f"  {_printable(where)}  [{_STYLE[p.severity]}]{p.severity.value:<7}[/]  "
                f"{p.code}  {_printable(p.message)}"
            )
        stdout.print()
    parts = [
        _plural(len(report.files), "file"),
        _plural(len(report.contracts), "valid contract"),
        *([f"{len(report.expired)} expired"] if report.expired else []),
        _plural(len(report.errors), "error"),
        _plural(len(report.warnings), "warning"),
        *([_plural(len(report.notes), "note")] if report.notes else []),
    ]
    style = "bold green" if report.ok else "bold red"
    stdout.print(f"[{style}]{'ok' if report.ok else 'failed'}[/]: {', '.join(parts)}")
