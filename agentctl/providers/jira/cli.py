"""agentctl jira ...: record an agent's service account, install its tokens, show it.

Mounted by agentctl's CLI through ``ProviderSpec.commands``: it is handed a
:class:`agentctl.providers.base.CommandLine` and never imports the CLI. It
parses and renders only; the work is :mod:`agentctl.providers.jira.commands`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agentctl.markup import escape
from agentctl.model import OutputFormat
from agentctl.providers.jira import commands

if TYPE_CHECKING:
    from agentctl.providers.base import CommandLine, TextOutput
    from agentctl.providers.jira.lifecycle import AccountStatus, RegisteredAccount

CONTRACT_OPTION = typer.Option(
    Path("contracts"), "--contract", "-c", help="The agent's contract file, or a contracts folder."
)
TOKEN_FILE_OPTION = typer.Option(
    None,
    "--token-file",
    help="File holding the service account's scoped API token ('-' or omitted: read stdin).",
)


def _registered(done: RegisteredAccount, out: TextOutput) -> None:
    expires = done.token_expires.date() if done.token_expires else "unknown"
    if done.rotated:
        out.line(
            f"The new API token of {escape(done.agent)} works (expires {expires}); it is in the "
            f"secret store as {escape(done.secret_ref)}."
        )
        revoked = len(done.revoked_tokens)
        out.line(f"Revoked {revoked} older token{'s' if revoked != 1 else ''}.")
        return
    out.line(
        f"Registered service account [bold]{escape(done.display_name)}[/bold] "
        f"({escape(done.email)}, {escape(done.account_id)}) for {escape(done.agent)}."
    )
    out.line(
        f"Its API token ({escape(', '.join(done.token_scopes))}; expires {expires}) is in the "
        f"secret store as {escape(done.secret_ref)}."
    )
    out.line("Next: `agentctl apply` puts it in its project role.")


def _status(result: AccountStatus, out: TextOutput) -> None:
    if not result.registered:
        out.line(f"{escape(result.agent)}: no Jira service account recorded.")
        return
    rows = [
        ("account", f"{result.email} ({result.account_id})"),
        ("role", str(result.role)),
        ("applied to", ", ".join(result.projects or ()) or "no project yet (run agentctl apply)"),
        ("permissions", ", ".join(result.permissions or ()) or "-"),
        ("token scopes", ", ".join(result.token_scopes or ()) or "-"),
    ]
    for label, value in rows:
        out.line(f"{label:>13}: {escape(value)}")
    for token in result.tokens or ():
        state = "live" if token.live else "revoked/expired"
        out.line(
            f"{'token':>13}: {escape(token.id)} {state}, {token.age_days} days old, "
            f"expires {token.expires_at.date().isoformat()}"
        )


def build(cli: CommandLine) -> typer.Typer:
    """The ``agentctl jira`` sub-commands (this package's ``ProviderSpec.commands``)."""
    cli.text_renderer("agentctl.providers.jira.lifecycle.RegisteredAccount")(_registered)
    cli.text_renderer("agentctl.providers.jira.lifecycle.AccountStatus")(_status)
    app = typer.Typer(
        help="Jira service accounts: one per agent, in its own project role, with a scoped token.",
        no_args_is_help=True,
    )

    @app.command("register")
    def register_command(
        ctx: typer.Context,
        name: str = typer.Argument(
            ...,
            help="Agent name (its contract says what it may do in Jira).",
            autocompletion=cli.complete_agent_name,
        ),
        account_id: str = typer.Option(
            ..., "--account-id", help="The service account's Atlassian account id."
        ),
        token_file: Path | None = TOKEN_FILE_OPTION,
        contract: Path = CONTRACT_OPTION,
        output: OutputFormat = cli.output_option,
    ) -> None:
        """Record the agent's Atlassian service account and install its scoped API token.

        Example: agentctl jira register pr-review-agent --account-id 712020:... --token-file tok
        """
        done = commands.register(cli.session(ctx), name, account_id, token_file, contract)
        cli.show(done, output)

    @app.command("rotate")
    def rotate_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Agent name.", autocompletion=cli.complete_agent_name),
        token_file: Path | None = TOKEN_FILE_OPTION,
        contract: Path = CONTRACT_OPTION,
        output: OutputFormat = cli.output_option,
    ) -> None:
        """Install a new API token for the agent after verifying it, then revoke the old ones.

        Example: agentctl jira rotate pr-review-agent --token-file new-token
        """
        cli.show(commands.rotate(cli.session(ctx), name, token_file, contract), output)

    @app.command("status")
    def status_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Agent name.", autocompletion=cli.complete_agent_name),
        output: OutputFormat = cli.output_option,
    ) -> None:
        """The agent's service account, role, projects and API tokens (age, expiry).

        Example: agentctl jira status pr-review-agent --output json
        """
        cli.show(commands.status(cli.session(ctx), name), output)

    return app
