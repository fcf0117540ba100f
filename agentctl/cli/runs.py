"""exec, credentials, approve, deny, approvals."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    fail,
    show,
    stderr,
)
from agentctl.errors import EXIT_OK
from agentctl.helper_runs import FETCHING_ENV  # set while a fetch runs (loop guard)
from agentctl.markup import escape

if TYPE_CHECKING:
    from agentctl.execution import RunGrant, RunRequest

RUN_HELP_EPILOG = "Example: agentctl exec pr-review-agent --on-behalf-of amit@company.com --trigger webhook/pr-opened/4521 -- python review.py"


def _finite(value: float | None) -> float | None:
    """click's FloatRange lets NaN through (it compares false with both ends)."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter("not a number of seconds (NaN); give e.g. 10 or 0.5")
    return value


@contextmanager
def _one_fetch_deep(command: str) -> Iterator[None]:
    """Refuse, instead of recursing forever, when agentctl is started by its own
    credential lookup: an AWS profile selected through AWS_PROFILE whose
    ``credential_process`` is agentctl is what the SDK runs, and agentctl's own
    boto3 chain honours that same AWS_PROFILE, so each fetch would start the next
    one (a chain of blocked processes; the SDK waits forever). The refusal is an
    error the outer agentctl's credential probe treats as "no credentials here",
    so it falls back to aws.runtime_profile; without one, the SDK shows this."""
    outer = os.environ.get(FETCHING_ENV)
    if outer:
        fail(
            f"`agentctl {command}` was started by agentctl's own AWS credential lookup "
            f"(`agentctl {outer}` is already running above it)",
            [
                "the AWS profile in AWS_PROFILE"
                + (f" ({os.environ['AWS_PROFILE']})" if os.environ.get("AWS_PROFILE") else "")
                + " runs agentctl as its credential_process; give agentctl the runtime "
                "principal's own profile with aws.runtime_profile (or aws.profile) in "
                "agentctl.yaml, or unset AWS_PROFILE where agentctl itself runs"
            ],
        )
    os.environ[FETCHING_ENV] = command
    try:
        yield
    finally:
        os.environ.pop(FETCHING_ENV, None)


RUN_ID_OPTION = typer.Option(
    None,
    "--run-id",
    help="The run this fetch belongs to, in the audit trail (1-64 of A-Z a-z 0-9 . _ -). "
    "Default: $AGENTCTL_RUN_ID, else derived from the process that started agentctl "
    "(the SDK or git process: all its fetches share one run id).",
    show_default=False,
)


class CredentialsFormat(StrEnum):
    JSON = "json"
    ENV = "env"
    AWS_PROCESS = "aws-process"


def _request(
    name: str,
    command: tuple[str, ...],
    on_behalf_of: str | None,
    trigger: str | None,
    approval: str | None,
    duration: str,
) -> RunRequest:
    from agentctl.commands.exec import parse_duration_seconds
    from agentctl.execution import RunRequest

    return RunRequest(
        agent=name,
        command=command,
        on_behalf_of=on_behalf_of,
        trigger=trigger,
        approval_id=approval,
        duration_seconds=parse_duration_seconds(duration),  # before anything is opened
    )


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
        max=3600.0,  # an hour: a bound like every number (tests/test_hostile_input.py)
        callback=_finite,
        help="Seconds between SIGTERM and SIGKILL when the agent is killed during the run "
        "(default: exec_kill_grace_seconds in agentctl.yaml, 10).",
    ),
) -> None:
    """Run COMMAND with credentials minted for this run only.

    AWS: an assumed role session whose SourceIdentity is the user (or the
    agent when autonomous), tagged agent / on_behalf_of / trigger, through an
    AWS profile (AWS_CONFIG_FILE, AWS_PROFILE). GitHub: an installation token
    limited to the contract (GITHUB_TOKEN for at most an hour; fresh in
    AGENTCTL_GITHUB_TOKEN_FILE and git's credential helper). exec mints new
    ones before they expire (gated, audited) and revokes all when COMMAND ends.
    COMMAND's exit code is agentctl's. If the agent is killed during the run
    (from any machine: the state store is checked every second), COMMAND's
    process group gets SIGTERM, then SIGKILL after the grace period, and exec
    exits 3.

    Example: agentctl exec pr-review-agent --on-behalf-of amit@company.com
    --trigger webhook/pr-opened/4521 -- python review.py
    """
    from agentctl.commands import exec as runs
    from agentctl.errors import UsageError
    from agentctl.render import render

    if not command:
        raise UsageError(
            "no command given", hint="agentctl exec NAME [options] -- COMMAND [ARGS...]"
        )
    request = _request(name, tuple(command), on_behalf_of, trigger, approval, duration)

    def started(grant: RunGrant) -> None:
        stderr.print(
            f"[dim]agentctl: running as {escape(name)}"
            + (f" on behalf of {escape(on_behalf_of)}" if on_behalf_of else "")
            + f" (run {grant.run_id}; {escape(grant.scope) or 'no scopes'})[/dim]",
            # Names and scopes are data: `aws:s3:...` or a user `x:+1:` is never an emoji.
            emoji=False,
        )

    result = runs.run(app_context(ctx), request, kill_grace=kill_grace, on_start=started)
    # stdout is the command's: what agentctl has to say goes to stderr.
    render(result, json_output=False, console=stderr.console)
    raise typer.Exit(result.exit_code)


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
        CredentialsFormat.ENV,
        "--output",
        "-o",
        "--format",
        help="env: `export K=V` lines; json: an object; aws-process: the AWS SDKs' "
        "credential_process JSON (AWS only), for `credential_process = agentctl credentials NAME "
        "--format aws-process` in an AWS profile: the SDK refreshes through agentctl's gates.",
    ),
    run_id: str | None = RUN_ID_OPTION,
) -> None:
    """Mint credentials for runtimes that cannot be wrapped by `exec` (same gates, same audit).

    The values are printed to stdout because that is the point: pipe them, never log them.
    They are not revoked at exit: GitHub tokens expire within the hour, or `agentctl kill` revokes them.

    Example: eval "$(agentctl credentials pr-review-agent -u amit@company.com)"
    """
    from agentctl.commands import exec as runs

    request = _request(name, ("credentials",), on_behalf_of, trigger, approval, duration)
    request = runs.in_helper_run(request, run_id)
    with _one_fetch_deep("credentials"):
        if output == CredentialsFormat.AWS_PROCESS:
            # The SDK reads stdout and shows stderr on failure: no terminal warning here.
            process = runs.aws_process_credentials(app_context(ctx), request)
        else:
            result = runs.credentials(app_context(ctx), request)
    if output == CredentialsFormat.AWS_PROCESS:
        show(process, OutputFormat.JSON)
        raise typer.Exit(EXIT_OK)
    if sys.stdout.isatty():
        stderr.print("[yellow]warning[/yellow]: printing live credentials to a terminal")
    show(result, OutputFormat.JSON if output == CredentialsFormat.JSON else OutputFormat.TEXT)
    raise typer.Exit(EXIT_OK)


class GitCredentialOperation(StrEnum):
    GET = "get"
    STORE = "store"
    ERASE = "erase"


def git_credential_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    operation: GitCredentialOperation = typer.Argument(
        ..., help="What git asks: get, store or erase."
    ),
    on_behalf_of: str | None = typer.Option(
        None, "--on-behalf-of", "-u", help="The user the agent acts for."
    ),
    trigger: str | None = typer.Option(None, "--trigger", "-t", help="What triggered the run."),
    run_id: str | None = RUN_ID_OPTION,
) -> None:
    """git credential helper: a fresh, contract-scoped GitHub installation token per `get`.

    Each `get` is a gated, audited issue (a killed or expired agent gets a refusal). `store`
    and `erase` read git's request and do nothing: agentctl keeps no token to store or
    forget (each one expires within the hour; `agentctl kill` revokes them).

    Example: git config credential.helper '!agentctl git-credential pr-review-agent'
    """
    from agentctl.commands import exec as runs

    fields = runs.parse_git_credential_request(sys.stdin.read())
    if operation != GitCredentialOperation.GET:
        raise typer.Exit(EXIT_OK)
    request = _request(name, ("git-credential",), on_behalf_of, trigger, None, "1h")
    request = runs.in_helper_run(request, run_id)
    with _one_fetch_deep("git-credential"):
        answer = runs.git_credential(app_context(ctx), request, fields)
    sys.stdout.write(answer.lines())
    raise typer.Exit(EXIT_OK)


def approve_command(
    ctx: typer.Context,
    approval_id: str = typer.Argument(
        ..., help="Approval request id (from exec or `agentctl approvals`)."
    ),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (audited)."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Approve a pending run: only an approver named in the agent's contract, never the requester.

    The approval is single-use, for that command and that requester, and it expires.

    Example: agentctl approve apr-3f9c2a1b7d
    """
    from agentctl.commands import exec as runs

    show(runs.decide(app_context(ctx), approval_id, approve=True, reason=reason), output)
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
    from agentctl.commands import exec as runs

    show(runs.decide(app_context(ctx), approval_id, approve=False, reason=reason), output)
    raise typer.Exit(EXIT_OK)


def approvals_command(
    ctx: typer.Context,
    agent: str | None = typer.Option(None, "--agent", help="Only this agent."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """List pending approval requests.

    Example: agentctl approvals --agent release-agent
    """
    from agentctl.commands import exec as runs

    show(runs.pending(app_context(ctx), agent), output)
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("exec")(exec_command)
    app.command("credentials")(credentials_command)
    app.command("git-credential")(git_credential_command)
    app.command("approve")(approve_command)
    app.command("deny")(deny_command)
    app.command("approvals")(approvals_command)
