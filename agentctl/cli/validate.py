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

import typer

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, show, stderr, stdout
from agentctl.durations import MAX_DAYS
from agentctl.errors import EXIT_FAILURE, EXIT_OK

# Registered by agentctl.cli.app as `app.command(help=HELP)(validate)` (rich markup).
HELP = """\
Validate access contracts: shape, names, owners, expiry, kill switch and permissions.

Checks every *.yaml / *.yml under the given paths (default: ./contracts) against the contract schema and each provider's vocabulary. Every problem names the file, line, column and path, and says what to do.

[bold]Exit codes[/bold]: 0 no errors, 1 any error (with --strict: any warning), 2 usage error. Use [bold]--output json[/bold] in CI for a stable, machine-readable report.
"""

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
    from agentctl.commands.validate import validate as check
    from agentctl.render import progress

    # Thousands of files take seconds: a line on a terminal's stderr meanwhile.
    with progress(
        stderr.console, "validating", show=not stdout.console.quiet, unit="files"
    ) as taken:
        result = check(
            app_context(ctx),
            paths,
            strict=strict,
            max_lifetime_days=max_lifetime_days,
            progress=taken,
        )
    show(result, output)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILURE)
