"""exec, credentials, approve, deny, approvals."""

from __future__ import annotations

import os
import shlex
import sys
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    stderr,
    stdout,
)
from agentctl.errors import EXIT_OK, UsageError
from agentctl.render import print_json

if TYPE_CHECKING:
    from agentctl.execution import RunGrant, Runs

# Variables the child must never inherit: agentctl's own secrets and the
# operator's credentials. The child gets the agent's minted ones instead.
SCRUBBED_PREFIXES = ("AGENTCTL_", "AWS_", "GITHUB_", "GH_", "JIRA_")

RUN_HELP_EPILOG = "Example: agentctl exec pr-review-agent --on-behalf-of amit@company.com --trigger webhook/pr-opened/4521 -- python review.py"


class CredentialsFormat(StrEnum):
    JSON = "json"
    ENV = "env"


def _runs(ctx: typer.Context) -> Runs:
    from agentctl.execution import Runs

    return Runs(app_context(ctx).engine())


def _duration(text: str) -> int:
    from agentctl.durations import parse_duration

    return int(parse_duration(text, option="--duration").total_seconds())


def child_environment(grant: RunGrant) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(grant.child_environment())
    env["AGENTCTL_AGENT"] = grant.agent
    env["AGENTCTL_RUN_ID"] = grant.run_id
    if grant.on_behalf_of:
        env["AGENTCTL_ON_BEHALF_OF"] = grant.on_behalf_of
    return env


def exec_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    command: list[str] = typer.Argument(
        None, help="Command to run (after --).", show_default=False
    ),
    on_behalf_of: str | None = typer.Option(
        None, "--on-behalf-of", "-u", help="The user the agent acts for."
    ),
    trigger: str | None = typer.Option(
        None, "--trigger", "-t", help="What triggered the run, e.g. webhook/pr-opened/4521."
    ),
    approval: str | None = typer.Option(
        None, "--approval", help="Approval id (approval_required agents)."
    ),
    duration: str = typer.Option(
        "1h", "--duration", help="Credential lifetime: 15m .. 12h (e.g. 45m, 1h30m)."
    ),
    kill_grace: float | None = typer.Option(
        None,
        "--kill-grace",
        min=0.0,
        help="Seconds between SIGTERM and SIGKILL when the agent is killed during the run "
        "(default: exec_kill_grace_seconds in agentctl.yaml, 10).",
    ),
) -> None:
    """Run COMMAND with credentials minted for this run only.

    AWS: an assumed role session whose SourceIdentity is the user (or the
    agent when autonomous), tagged agent / on_behalf_of / trigger. GitHub: an
    installation token limited to the contract, revoked when COMMAND ends.
    COMMAND's exit code is agentctl's. If the agent is killed during the run
    (from any machine: the state store is checked every second), COMMAND's
    process group gets SIGTERM, then SIGKILL after the grace period, and exec
    exits 3.

    Example: agentctl exec pr-review-agent --on-behalf-of amit@company.com
    --trigger webhook/pr-opened/4521 -- python review.py
    """
    from agentctl.execution import RunRequest

    if not command:
        raise UsageError(
            "no command given", hint="agentctl exec NAME [options] -- COMMAND [ARGS...]"
        )
    seconds = _duration(duration)  # a usage error before anything is opened
    runs = _runs(ctx)
    grant = runs.grant(
        RunRequest(
            agent=name,
            command=tuple(command),
            on_behalf_of=on_behalf_of,
            trigger=trigger,
            approval_id=approval,
            duration_seconds=seconds,
        )
    )
    stderr.print(
        f"[dim]agentctl: running as {escape(name)}"
        + (f" on behalf of {escape(on_behalf_of)}" if on_behalf_of else "")
        + f" (run {grant.run_id}; {escape(grant.scope) or 'no scopes'})[/dim]"
    )
    from agentctl.supervise import CommandNotStarted

    code = 1
    grace = kill_grace if kill_grace is not None else runs.engine.config.exec_kill_grace_seconds
    try:
        try:
            outcome = runs.run(grant, command, child_environment(grant), grace_seconds=grace)
            code = outcome.exit_code
        except CommandNotStarted as exc:
            stderr.print(f"[red]error:[/red] {escape(str(exc))}")
            code = exc.exit_code
        else:
            if outcome.killed:
                stderr.print(
                    f"[red]agentctl: {escape(name)} was killed: the command was ended "
                    f"({' then '.join(outcome.signals) or 'already gone'}); exit {code}[/red]"
                )
    finally:
        results = runs.finish(grant, code, command)
        for result in results:
            if not result.ok:
                stderr.print(
                    f"[yellow]warning[/yellow]: {result.provider}: {escape(result.detail)}"
                )
    raise typer.Exit(code)


def credentials_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    on_behalf_of: str | None = typer.Option(
        None, "--on-behalf-of", "-u", help="The user the agent acts for."
    ),
    trigger: str | None = typer.Option(None, "--trigger", "-t", help="What triggered the run."),
    approval: str | None = typer.Option(
        None, "--approval", help="Approval id (approval_required agents)."
    ),
    duration: str = typer.Option(
        "1h", "--duration", help="Credential lifetime: 15m .. 12h (e.g. 45m, 1h30m)."
    ),
    output: CredentialsFormat = typer.Option(
        CredentialsFormat.ENV, "--output", "-o", help="env: `export K=V` lines; json: an object."
    ),
) -> None:
    """Mint credentials for runtimes that cannot be wrapped by `exec` (same gates, same audit).

    The values are printed to stdout because that is the point: pipe them, never log them.
    They are not revoked at exit: GitHub tokens expire within the hour, or `agentctl kill` revokes them.

    Example: eval "$(agentctl credentials pr-review-agent -u amit@company.com)"
    """
    from agentctl.execution import RunRequest

    seconds = _duration(duration)  # a usage error before anything is opened
    runs = _runs(ctx)
    grant = runs.grant(
        RunRequest(
            agent=name,
            command=("credentials",),
            on_behalf_of=on_behalf_of,
            trigger=trigger,
            approval_id=approval,
            duration_seconds=seconds,
        )
    )
    if sys.stdout.isatty():
        stderr.print("[yellow]warning[/yellow]: printing live credentials to a terminal")
    if output == CredentialsFormat.JSON:
        print_json(grant.as_dict(include_secrets=True))
    else:
        for key, value in grant.child_environment().items():
            sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
    raise typer.Exit(EXIT_OK)


def approve_command(
    ctx: typer.Context,
    approval_id: str = typer.Argument(
        ..., help="Approval request id (from exec or `agentctl approvals`)."
    ),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (audited)."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Approve a pending run (someone other than the requester). Single-use; it expires.

    Example: agentctl approve apr-3f9c2a1b7d
    """
    record = _runs(ctx).decide(approval_id, approve=True, reason=reason)
    if output == OutputFormat.JSON:
        print_json(_approval_dict(record))
    else:
        stdout.print(
            f"Approved {record.id} for {escape(record.agent)}: `{escape(record.command)}`. "
            f"The requester re-runs with --approval {record.id} before "
            f"{record.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    raise typer.Exit(EXIT_OK)


def deny_command(
    ctx: typer.Context,
    approval_id: str = typer.Argument(..., help="Approval request id."),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (audited)."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Deny a pending run.

    Example: agentctl deny apr-3f9c2a1b7d --reason "not during the freeze"
    """
    record = _runs(ctx).decide(approval_id, approve=False, reason=reason)
    if output == OutputFormat.JSON:
        print_json(_approval_dict(record))
    else:
        stdout.print(f"Denied {record.id} for {escape(record.agent)}.")
    raise typer.Exit(EXIT_OK)


def _approval_dict(record: object) -> dict[str, object]:
    from dataclasses import asdict

    data = asdict(record)  # type: ignore[call-overload]
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


def approvals_command(
    ctx: typer.Context,
    agent: str | None = typer.Option(None, "--agent", help="Only this agent."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List pending approval requests.

    Example: agentctl approvals --agent release-agent
    """
    pending = _runs(ctx).pending(agent)
    if output == OutputFormat.JSON:
        print_json({"pending": [_approval_dict(a) for a in pending]})
        raise typer.Exit(EXIT_OK)
    if not pending:
        stdout.print("No pending approvals.")
        raise typer.Exit(EXIT_OK)
    table = Table()
    for column in ("id", "agent", "requested by", "on behalf of", "trigger", "command", "expires"):
        table.add_column(column)
    for a in pending:
        table.add_row(
            a.id,
            escape(a.agent),
            escape(a.requester),
            escape(a.on_behalf_of or "-"),
            escape(a.trigger or "-"),
            escape(a.command),
            f"{a.expires_at:%H:%M} UTC",
        )
    stdout.print(table)
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("exec")(exec_command)
    app.command("credentials")(credentials_command)
    app.command("approve")(approve_command)
    app.command("deny")(deny_command)
    app.command("approvals")(approvals_command)
