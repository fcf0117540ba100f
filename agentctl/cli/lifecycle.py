"""plan, apply, kill, revive, rotate, expiring, status, list: parse, call
``agentctl.commands``, render, exit."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    fail,
    is_interactive,
    show,
    stderr,
    stdout,
)
from agentctl.durations import MAX_DAYS
from agentctl.errors import EXIT_FAILURE, EXIT_OK, UsageError
from agentctl.markup import escape

if TYPE_CHECKING:
    from agentctl.engine import LifecycleReport

PATHS_ARGUMENT = typer.Argument(
    None, help="Contract files or directories (default: ./contracts).", show_default=False
)
PARALLELISM_OPTION = typer.Option(
    16, "--parallelism", "-p", min=1, max=64, help="Agents processed at once."
)


def plan_command(
    ctx: typer.Context,
    paths: list[Path] | None = PATHS_ARGUMENT,
    refresh: bool = typer.Option(
        True, "--refresh/--no-refresh", help="Ask providers what exists now."
    ),
    prune: bool = typer.Option(False, "--prune", help="Include removal of orphaned agents."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0 no changes, 1 error, 2 changes."
    ),
    parallelism: int = PARALLELISM_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show what apply would change, per agent and provider.

    Example: agentctl plan contracts/ --output json
    """
    from agentctl.commands.plan import plan as make_plan
    from agentctl.render import progress

    # On a terminal's stderr only: providers answer one agent at a time.
    with progress(stderr.console, "planning", show=not stdout.console.quiet) as planned:
        plan = make_plan(
            app_context(ctx),
            paths,
            refresh=refresh,
            prune=prune,
            parallelism=parallelism,
            progress=planned,
        )
    show(plan, output)
    if plan.has_errors:
        failed = [a for a in plan.agents if a.failed_to_plan]
        fail(
            f"{len(failed)} agent{'s' if len(failed) != 1 else ''} could not be planned",
            [
                f"{a.agent}: {problem}"
                for a in failed
                for problem in (*a.errors, *(c.summary for c in a.conflicts))
            ],
        )
    if detailed_exitcode and plan.needs_attention:
        raise typer.Exit(2)
    raise typer.Exit(EXIT_OK)


def apply_command(
    ctx: typer.Context,
    paths: list[Path] | None = PATHS_ARGUMENT,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    prune: bool = typer.Option(False, "--prune", help="Also remove agents whose contract is gone."),
    refresh: bool = typer.Option(
        False,
        "--refresh/--no-refresh",
        help="Re-read every agent from the providers, also those unchanged since their "
        "last apply (repairs out-of-band drift that `agentctl plan` reports).",
    ),
    parallelism: int = PARALLELISM_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Provision and update agents, disable expired ones (orphans only with --prune).

    Agents whose contract is unchanged since their last successful apply are
    skipped without asking the providers; `agentctl plan` (which refreshes by
    default) reports drift and `apply --refresh` repairs it.

    Example: agentctl apply contracts/ --yes
    """
    from agentctl.commands import apply

    prepared = apply.prepare(
        app_context(ctx), paths, refresh=refresh, prune=prune, parallelism=parallelism
    )
    if not prepared.needs_apply:
        show(apply.nothing_to_apply(prepared), output)
        raise typer.Exit(EXIT_OK)
    if output == OutputFormat.TEXT:
        show(prepared.plan)
    if not yes:
        if not is_interactive():
            raise UsageError(
                "apply needs confirmation and there is no terminal",
                hint="re-run with --yes (after reviewing `agentctl plan`)",
            )
        if not typer.confirm("Apply these changes?", default=False, err=True):
            stderr.print("Nothing changed.")
            raise typer.Exit(EXIT_OK)
    show_progress = output == OutputFormat.TEXT and stderr.is_terminal and prepared.todo > 1
    with _applying(len(prepared.plan.agents), show=show_progress) as advance:
        result = apply.execute(
            prepared,
            parallelism=parallelism,
            progress=lambda _outcome: advance(),
            on_lock_wait=lambda holder: stderr.print(
                f"[yellow]waiting for the lock[/yellow]: {escape(holder)}"
            ),
        )
    show(result, output)
    if not result.ok:
        failed = [a for a in result.agents if not a.ok]
        fail(
            f"{len(failed)} of {len(result.agents)} agents not applied",
            [f"{a.agent}: {a.error or 'failed'}" for a in failed],
        )
    raise typer.Exit(EXIT_OK)


@contextlib.contextmanager
def _applying(total: int, *, show: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on the terminal's stderr while agents are applied; off a
    terminal nothing, and rich.progress (~40 ms) is not even imported."""
    if not show:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(console=stderr.rich, transient=True) as bar:
        task = bar.add_task("applying", total=total)
        yield lambda: bar.advance(task)


def kill_command(
    ctx: typer.Context,
    name: str = typer.Argument(
        ..., help="Agent name (exact match).", autocompletion=complete_agent_name
    ),
    reason: str = typer.Option("", "--reason", "-r", help="Why (recorded in the audit trail)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Revoke ONE agent in every provider, at once. Nothing else is touched.

    Works without contracts and with the state store empty or unreachable.
    On a terminal it asks first (unless --yes); without a terminal (a pager
    hook, a SIEM playbook, `agentctl serve`) it kills without asking, because
    a revocation that waits for a prompt nobody sees is no kill switch. apply
    is the opposite: without a terminal it needs --yes, since it grants.

    Example: agentctl kill pr-review-agent --reason "INC-4521" --yes
    """
    # The deliberate no-terminal rule (see the docstring and README).
    if not yes and is_interactive() and not typer.confirm(f"Kill agent {name}?", err=True):
        raise typer.Exit(EXIT_OK)
    from agentctl.commands.lifecycle import kill

    report = kill(app_context(ctx), name, reason)
    show(report, output)
    if not report.ok:
        fail(f"{name} only partly killed (status kill-incomplete)", _not_done(report))
    # Revoked, but its audit event went nowhere (a full disk): not a success.
    raise typer.Exit(EXIT_OK if report.recorded else EXIT_FAILURE)


def revive_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    reason: str = typer.Option(..., "--reason", "-r", help="Why it is safe again (audited)."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Undo a kill. The only way a killed agent comes back.

    Example: agentctl revive pr-review-agent --reason "INC-4521 resolved"
    """
    from agentctl.commands.lifecycle import revive

    report = revive(app_context(ctx), name, reason)
    show(report, output)
    if not report.ok:
        fail(f"{name} only partly revived", _not_done(report))
    raise typer.Exit(EXIT_OK)


def rotate_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(
        None, help="Agent name (or --all).", autocompletion=complete_agent_name
    ),
    all_agents: bool = typer.Option(False, "--all", help="Rotate every active agent."),
    provider: str | None = typer.Option(None, "--provider", help="Only this provider."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Rotate credentials: new ones verified before old ones are revoked.

    Example: agentctl rotate pr-review-agent --provider aws
    """
    from agentctl.commands.lifecycle import rotate

    result = rotate(app_context(ctx), name, all_agents=all_agents, provider=provider)
    show(result, output)
    if not result.ok:
        failed = [r for r in result.reports if not r.ok]
        fail(
            f"{len(failed)} agent{'s' if len(failed) != 1 else ''} not rotated",
            [problem for r in failed for problem in _not_done(r)],
        )
    raise typer.Exit(EXIT_OK)


def _not_done(report: LifecycleReport) -> list[str]:
    return [
        f"{report.agent}: {r.provider}: {r.detail or 'failed'}" for r in report.results if not r.ok
    ]


def expiring_command(
    ctx: typer.Context,
    paths: list[Path] | None = PATHS_ARGUMENT,
    days: int = typer.Option(
        30, "--days", "-d", min=0, max=MAX_DAYS, help="Look this many days ahead."
    ),
    output: OutputFormat = OUTPUT_OPTION,
    notify: bool = typer.Option(
        False,
        "--notify",
        help="Send each owner one message (routes: notify: in agentctl.yaml); "
        "exit 0 when every owner with something due was told.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="With --notify: say who would be told through what; send nothing."
    ),
) -> None:
    """For cron: expiring/expired contracts and credentials due for rotation, by owner.

    Prints nothing and exits 0 when nothing is due (cron mails only on output).
    Without --notify, exits 1 when anything is due. With --notify, owners are
    told directly: exit 0 when every message went out, 1 (and one line per
    owner not told on stderr) otherwise.

    Example (crontab): 0 7 * * * agentctl expiring --days 30 --notify /srv/agents/contracts
    """
    from agentctl.commands import expiring

    if dry_run and not notify:
        raise UsageError("--dry-run only applies to --notify", hint="add --notify")
    session = app_context(ctx)
    report = expiring.expiring(session, paths, days=days)
    if not notify:
        show(report, output)
        raise typer.Exit(EXIT_FAILURE if report.items else EXIT_OK)
    result = expiring.notify(session, report, dry_run=dry_run)
    show(result, output)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILURE)


def status_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(
        None, help="One agent (default: all).", autocompletion=complete_agent_name
    ),
    refresh: bool = typer.Option(
        False, "--refresh", help="Ask the providers too, and show drifted agents."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Every agent: owner, mode, expiry, status, providers, last rotation, live credentials.

    Example: agentctl status pr-review-agent --refresh
    """
    from agentctl.commands.status import status
    from agentctl.render import progress

    slow = refresh and not stdout.console.quiet  # --refresh asks every agent's providers
    with progress(stderr.console, "asking the providers", show=slow) as asked:
        result = status(app_context(ctx), name, refresh=refresh, progress=asked)
    show(result, output)
    for row in result.damaged_rows or ():
        stderr.print(f"[bold red]error:[/bold red] {escape(row.error)}")
    if result.damaged_rows:
        hint = result.damaged_rows[0].hint
        if hint:
            stderr.print(f"[dim]hint:[/dim] {escape(hint)}")
        raise typer.Exit(EXIT_FAILURE)
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("apply")(apply_command)
    app.command("kill")(kill_command)
    app.command("revive")(revive_command)
    app.command("rotate")(rotate_command)
    app.command("expiring")(expiring_command)
    app.command("status")(status_command)
    app.command("list", help="List every agent (same as `status`).")(status_command)
