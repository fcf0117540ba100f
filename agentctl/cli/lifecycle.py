"""plan, apply, kill, revive, rotate, expiring, status, list."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    is_interactive,
    print_json,
    stderr,
    stdout,
)
from agentctl.durations import MAX_DAYS
from agentctl.errors import EXIT_FAILURE, EXIT_OK, ContractError, UsageError

if TYPE_CHECKING:
    from agentctl.contract import ValidationReport
    from agentctl.engine import ApplyReport, Engine, LifecycleReport
    from agentctl.plan import Plan

PATHS_ARGUMENT = typer.Argument(
    None, help="Contract files or directories (default: ./contracts).", show_default=False
)
PARALLELISM_OPTION = typer.Option(
    16, "--parallelism", "-p", min=1, max=64, help="Agents processed at once."
)

KIND_STYLE = {
    "create": "[green]+ create[/green]",
    "update": "[yellow]~ update[/yellow]",
    "disable": "[magenta]- disable[/magenta]",
    "remove": "[red]- remove[/red]",
    "conflict": "[red]! conflict[/red]",
    "drift": "[yellow]! drift[/yellow]",
    "declared": "[dim]· declared, not enforced[/dim]",
}


def default_paths(paths: list[Path] | None) -> list[Path]:
    if paths:
        return paths
    default = Path("contracts")
    if default.is_dir():
        return [default]
    raise UsageError(
        "no contracts given and ./contracts does not exist",
        hint="pass the contracts folder, e.g. `agentctl plan contracts/`",
    )


def load_valid_contracts(ctx: typer.Context, paths: list[Path]) -> ValidationReport:
    """Contracts for plan/apply/expiring. Any error except "expired" blocks:
    a half-valid folder could otherwise prune agents whose files merely broke."""
    from agentctl.contract import load_contracts

    app = app_context(ctx)
    config = app.config([str(p) for p in paths])
    engine_today = app.clock()().date()
    report = load_contracts(paths, today=engine_today, max_lifetime_days=config.max_lifetime_days)
    blocking = [p for p in report.problems if p.severity.value == "error" and p.code != "expired"]
    if blocking:
        for problem in blocking[:20]:
            stderr.print(
                f"{escape(problem.file)}:{problem.line}:{problem.column}: "
                f"[red]{problem.code}[/red] {escape(problem.message)}"
            )
        more = f" (showing 20 of {len(blocking)})" if len(blocking) > 20 else ""
        raise ContractError(
            f"{len(blocking)} contract error(s){more}: nothing was planned or changed",
            hint="fix them (`agentctl validate` shows all), then run again",
        )
    return report


def render_plan(plan: Plan) -> None:
    shown = 0
    for agent in plan.agents:
        changes = [
            c
            for c in agent.changes
            if c.mutating or c.kind.value in ("conflict", "drift", "declared")
        ]
        if not changes and not agent.errors and not agent.record and not agent.kill_undone:
            continue
        shown += 1
        label = f"[bold]{escape(agent.agent)}[/bold]"
        if agent.disposition != "active":
            label += f" [dim]({agent.disposition})[/dim]"
        stdout.print(label)
        for change in changes:
            note = ""
            if agent.disposition == "orphan" and not plan.prune and change.mutating:
                note = " [dim](only with --prune)[/dim]"
            stdout.print(
                f"  {KIND_STYLE.get(change.kind.value, change.kind.value)} {escape(change.summary)}{note}"
            )
            # Field-by-field diffs say what an update changes; a create's fields are
            # the whole contract and only bury the summary (--output json has them).
            for field in change.fields if change.kind.value == "update" else ():
                stdout.print(
                    f"      {escape(field.field)}: [red]{escape(str(field.before))}[/red] → "
                    f"[green]{escape(str(field.after))}[/green]"
                )
        if agent.record:
            stdout.print(
                "  [cyan]· record[/cyan] in the state: the providers already match the "
                "contract (an earlier apply was interrupted)"
            )
        for undone in agent.kill_undone:
            stdout.print(f"  [bold red]! {escape(undone)}[/bold red]")
        for error in agent.errors:
            stdout.print(f"  [red]error[/red] {escape(error)}")
    summary = plan.as_dict()["summary"]
    counts = ", ".join(f"{n} to {k}" for k, n in sorted(summary["changes"].items())) or "no changes"
    stdout.print(
        f"\n{summary['agents']} agents: {counts}"
        + (f", {summary['orphans']} orphaned" if summary["orphans"] else "")
        + (f", [red]{summary['errors']} errors[/red]" if summary["errors"] else "")
    )
    if shown == 0 and not plan.has_changes:
        stdout.print("[green]Everything is up to date.[/green]")


def _engine(ctx: typer.Context, paths: list[Path] | None = None) -> Engine:
    return app_context(ctx).engine([str(p) for p in paths or []])


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
    paths = default_paths(paths)
    report = load_valid_contracts(ctx, paths)
    engine = _engine(ctx, paths)
    plan = engine.plan(
        report.contracts, report.expired, refresh=refresh, prune=prune, parallelism=parallelism
    )
    if output == OutputFormat.JSON:
        print_json(plan.as_dict())
    else:
        render_plan(plan)
    if plan.has_errors:
        raise typer.Exit(EXIT_FAILURE)
    if detailed_exitcode and plan.has_changes:
        raise typer.Exit(2)
    raise typer.Exit(EXIT_OK)


def render_apply(report: ApplyReport) -> None:
    table = Table(title="apply", show_lines=False)
    table.add_column("agent")
    table.add_column("result")
    table.add_column("actions")
    for agent in report.agents:
        if not agent.results and agent.ok and not agent.skipped:
            continue
        result = "[green]ok[/green]" if agent.ok else "[red]failed[/red]"
        if agent.skipped:
            result = f"[yellow]skipped[/yellow] ({escape(agent.skipped)})"
        actions = "; ".join(
            f"{r.provider} {r.action}{'' if r.ok else ' FAILED'}" for r in agent.results
        )
        if agent.error:
            actions = (actions + "; " if actions else "") + f"[red]{escape(agent.error)}[/red]"
        table.add_row(escape(agent.agent), result, actions)
    if table.row_count:
        stdout.print(table)
    summary = report.as_dict()["summary"]
    stdout.print(
        f"{summary['changed']} agents changed, {summary['failed']} failed, "
        f"{summary['agents']} in total."
    )


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
    from rich.progress import Progress

    paths = default_paths(paths)
    report = load_valid_contracts(ctx, paths)
    app_context(ctx).may_create_state = True  # apply is what creates a new state store
    engine = _engine(ctx, paths)
    plan = engine.plan(
        report.contracts, report.expired, refresh=refresh, prune=prune, parallelism=parallelism
    )
    if not plan.has_changes and not plan.has_errors:
        # Nothing to apply, but audit events a kill journaled while the state
        # store was down still go into the chain (and the kill into the state).
        engine.import_journal()
        if output == OutputFormat.JSON:
            print_json(
                {
                    "ok": True,
                    "agents": [],
                    "summary": {"agents": len(plan.agents), "failed": 0, "changed": 0},
                }
            )
        else:
            stdout.print(f"[green]No changes.[/green] {len(plan.agents)} agents up to date.")
        raise typer.Exit(EXIT_OK)
    if output == OutputFormat.TEXT:
        render_plan(plan)
    if not yes:
        if not is_interactive():
            raise UsageError(
                "apply needs confirmation and there is no terminal",
                hint="re-run with --yes (after reviewing `agentctl plan`)",
            )
        if not typer.confirm("Apply these changes?", default=False, err=True):
            stderr.print("Nothing changed.")
            raise typer.Exit(EXIT_OK)
    todo = [a for a in plan.agents if plan.applicable(a) or a.failed_to_plan]
    show_progress = output == OutputFormat.TEXT and stderr.is_terminal and len(todo) > 1
    with Progress(console=stderr.console, transient=True, disable=not show_progress) as progress:
        task = progress.add_task("applying", total=len(plan.agents))
        result = engine.apply(
            plan,
            parallelism=parallelism,
            progress=lambda _outcome: progress.advance(task),
            on_lock_wait=lambda holder: stderr.print(
                f"[yellow]waiting for the lock[/yellow]: {escape(holder)}"
            ),
        )
    if output == OutputFormat.JSON:
        print_json(result.as_dict())
    else:
        render_apply(result)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILURE)


def render_lifecycle(report: LifecycleReport) -> None:
    verb = {"kill": "killed", "revive": "revived", "rotate": "rotated"}[report.action]
    if report.already:
        stdout.print(f"{escape(report.agent)} was already {verb}.")
    for result in report.results:
        mark = "[green]✓[/green]" if result.ok else "[red]✗[/red]"
        detail = result.detail or ("already" if result.already else "done")
        detail = detail.removeprefix(f"{result.provider}: ")  # provider errors carry the name
        stdout.print(f"  {mark} {result.provider}: {escape(detail)}")
        if not result.ok and result.remaining:
            stdout.print(f"      [bold]still to do:[/bold] {escape(result.remaining)}")
    for note in report.notes:
        stdout.print(f"  [yellow]note[/yellow] {escape(note)}")
    if report.ok and not report.already:
        stdout.print(f"[bold]{escape(report.agent)} {verb}.[/bold]")
    elif not report.ok and report.action == "kill":
        stdout.print(
            f"[bold red]{escape(report.agent)} only partly killed (status kill-incomplete): do "
            f"what is still to do above, or fix it and run `agentctl kill {escape(report.agent)}` "
            "again.[/bold red]"
        )
    elif not report.ok:
        stdout.print(f"[bold red]{escape(report.agent)} only partly {verb}: see above.[/bold red]")


def kill_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name (exact match)."),
    reason: str = typer.Option("", "--reason", "-r", help="Why (recorded in the audit trail)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Revoke ONE agent in every provider, at once. Nothing else is touched.

    Works without contracts and with the state store empty or unreachable.

    Example: agentctl kill pr-review-agent --reason "INC-4521" --yes
    """
    if not yes and is_interactive() and not typer.confirm(f"Kill agent {name}?", err=True):
        raise typer.Exit(EXIT_OK)
    engine = app_context(ctx).engine([], tolerate_config_errors=True)
    report = engine.kill(name, reason or "no reason given")
    if output == OutputFormat.JSON:
        print_json(report.as_dict())
    else:
        render_lifecycle(report)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)


def revive_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why it is safe again (audited)."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Undo a kill. The only way a killed agent comes back.

    Example: agentctl revive pr-review-agent --reason "INC-4521 resolved"
    """
    report = _engine(ctx).revive(name, reason)
    if output == OutputFormat.JSON:
        print_json(report.as_dict())
    else:
        render_lifecycle(report)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)


def rotate_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Agent name (or --all)."),
    all_agents: bool = typer.Option(False, "--all", help="Rotate every active agent."),
    provider: str | None = typer.Option(None, "--provider", help="Only this provider."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Rotate credentials: new ones verified before old ones are revoked.

    Example: agentctl rotate pr-review-agent --provider aws
    """
    if bool(name) == all_agents:
        raise UsageError("give an agent name or --all (not both)")
    engine = _engine(ctx)
    if provider and provider not in engine.providers:
        raise UsageError(
            f"unknown provider {provider!r}", hint=f"one of: {', '.join(engine.providers)}"
        )
    reports = engine.rotate([name] if name else None, provider)
    if output == OutputFormat.JSON:
        print_json({"ok": all(r.ok for r in reports), "agents": [r.as_dict() for r in reports]})
    else:
        for report in reports:
            stdout.print(f"[bold]{escape(report.agent)}[/bold]")
            render_lifecycle(report)
        if not reports:
            stdout.print("No active agents to rotate.")
    raise typer.Exit(EXIT_OK if all(r.ok for r in reports) else EXIT_FAILURE)


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
    if dry_run and not notify:
        raise UsageError("--dry-run only applies to --notify", hint="add --notify")
    paths = default_paths(paths)
    report = load_valid_contracts(ctx, paths)
    engine = _engine(ctx, paths)
    result = engine.expiring(report.contracts, report.expired, days=days)
    if not notify:
        if output == OutputFormat.JSON:
            print_json(result.as_dict())
        elif result.items:
            for owner, items in result.by_owner().items():
                stdout.print(f"[bold]{escape(owner)}[/bold]")
                for item in items:
                    stdout.print(f"  {escape(item.agent)}: {item.kind}: {escape(item.detail)}")
        raise typer.Exit(EXIT_FAILURE if result.items else EXIT_OK)

    from agentctl.notify import as_json, messages_for_expiring, send

    messages = messages_for_expiring(result.items, days=days, today=result.today.isoformat())
    deliveries = send(messages, engine.config.notify, dry_run=dry_run)
    if output == OutputFormat.JSON:
        print_json({**result.as_dict(), "notifications": as_json(deliveries)})
    else:
        for delivery in deliveries:
            where = ", ".join(delivery.services) or "nowhere"
            agents = ", ".join(delivery.agents)
            if dry_run and delivery.problem is None:
                stdout.print(f"would tell {escape(delivery.owner)} via {where}: {escape(agents)}")
            elif delivery.sent:
                stdout.print(f"told {escape(delivery.owner)} via {where}: {escape(agents)}")
            else:
                stderr.print(
                    f"[red]not told[/red] {escape(delivery.owner)} ({escape(agents)}): "
                    f"{escape(delivery.problem or 'failed')}"
                )
    failed = [d for d in deliveries if d.problem is not None]
    raise typer.Exit(EXIT_FAILURE if failed else EXIT_OK)


def status_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="One agent (default: all)."),
    refresh: bool = typer.Option(
        False, "--refresh", help="Ask the providers too, and show drifted agents."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Every agent: owner, mode, expiry, status, providers, last rotation, live credentials.

    Example: agentctl status pr-review-agent --refresh
    """
    views = _engine(ctx).status(name, refresh=refresh)
    if output == OutputFormat.JSON:
        print_json({"agents": [v.as_dict() for v in views]})
        raise typer.Exit(EXIT_OK)
    if not views:
        stdout.print("No agents recorded yet. Run `agentctl apply contracts/`.")
        raise typer.Exit(EXIT_OK)
    table = Table()
    for column in (
        "agent",
        "owner",
        "mode",
        "expiry",
        "status",
        "providers",
        "last rotated",
        "live creds",
    ):
        table.add_column(column, overflow="fold")
    colour = {
        "active": "green",
        "killed": "red",
        "kill-incomplete": "bold red",
        "kill-undone": "bold red",
        "expired": "magenta",
        "drifted": "yellow",
    }
    for view in views:
        table.add_row(
            escape(view.name),
            escape(view.owner),
            view.execution_mode,
            view.expiry.isoformat() if view.expiry else "-",
            f"[{colour.get(view.status, 'white')}]{view.status}[/]",
            ", ".join(view.providers) or "-",
            view.last_rotated_at.strftime("%Y-%m-%d %H:%M") if view.last_rotated_at else "never",
            str(view.live_credentials),
        )
    stdout.print(table)
    for view in views:
        for item in view.drift:
            stdout.print(f"[yellow]drift[/yellow] {escape(view.name)}: {escape(item)}")
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
