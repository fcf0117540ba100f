"""agentctl jira ...: record an agent's service account, install its tokens, show it.

An organisation admin creates the service account and its scoped API token in
Atlassian Administration (there is no API for either); these commands check
them against the contract and keep the token in the secret store. The token
is read from a file or stdin, never from the command line (shell history, ps)
and never printed.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, stdout
from agentctl.errors import AgentctlError, NotFound, UsageError
from agentctl.render import print_json

if TYPE_CHECKING:
    from agentctl.model import Contract
    from agentctl.providers.jira.lifecycle import JiraProvider, RegisteredAccount
    from agentctl.secrets import Secret

app = typer.Typer(
    help="Jira service accounts: one per agent, in its own project role, with a scoped token.",
    no_args_is_help=True,
)

CONTRACT_OPTION = typer.Option(
    Path("contracts"), "--contract", "-c", help="The agent's contract file, or a contracts folder."
)
TOKEN_FILE_OPTION = typer.Option(
    None,
    "--token-file",
    help="File holding the service account's scoped API token ('-' or omitted: read stdin).",
)


def _provider(ctx: typer.Context, contract_paths: list[str] | None = None) -> JiraProvider:
    from agentctl.providers.base import ProviderContext
    from agentctl.providers.jira.lifecycle import JiraProvider

    context = app_context(ctx)
    return JiraProvider(
        ProviderContext(
            config=context.config(contract_paths or []),
            clock=context.clock,
            state_factory=context.state,
            secrets_factory=context.secrets,
            operator=context.resolved_operator(),
        )
    )


def _load_contract(ctx: typer.Context, name: str, path: Path) -> Contract:
    from agentctl.contract import load_contracts

    if not path.exists():
        raise NotFound(
            f"no contract for {name}: {path} does not exist here ({Path.cwd()})",
            hint="pass --contract PATH (the contract file, or the folder of contracts)",
        )
    context = app_context(ctx)
    config = context.config([str(path)])
    report = load_contracts(
        [path], today=context.clock().date(), max_lifetime_days=config.max_lifetime_days
    )
    for contract in report.contracts:
        if contract.name == name:
            if not contract.grants_to("jira"):
                raise UsageError(
                    f"the contract of {name} grants nothing in Jira",
                    hint=f"add permissions.jira to {contract.source}",
                )
            return contract
    for contract in report.expired:
        if contract.name == name:
            raise UsageError(
                f"the contract of {name} expired on {contract.expiry.isoformat()}: "
                "an expired agent gets no Jira token",
                hint=f"extend `expiry` in {contract.source}",
            )
    from agentctl.commands.contracts import contract_not_found

    raise contract_not_found(name, path, report)


def _read_token(path: Path | None) -> Secret:
    from agentctl.secrets import Secret

    try:
        if path is None or str(path) == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError(
                    "no token given",
                    hint="pass --token-file FILE, or pipe the token on stdin",
                )
            text = sys.stdin.read()
        else:
            text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read {path} ({type(exc).__name__})", hint="pass the file holding the token"
        ) from None
    value = text.strip()
    if not value or any(c.isspace() for c in value):
        raise UsageError(
            "the token file must hold one API token on one line",
            hint="paste only the token Atlassian showed when it was created",
        )
    return Secret(value)


def _audit(ctx: typer.Context, **fields: Any) -> None:
    context = app_context(ctx)
    context.state().append_audit(operator=context.resolved_operator(), **fields)


@contextlib.contextmanager
def _audit_failure(ctx: typer.Context, name: str, action: str) -> Iterator[None]:
    """A refused registration or token is audited too, then re-raised."""
    try:
        yield
    except AgentctlError as exc:
        _audit(
            ctx,
            actor=name,
            action=action,
            target=f"jira:{name}",
            result="failure",
            detail={"error": exc.message},
        )
        raise


def _data(done: RegisteredAccount) -> dict[str, Any]:
    return {
        "agent": done.agent,
        "account_id": done.account_id,
        "email": done.email,
        "display_name": done.display_name,
        "token_id": done.token_id,
        "token_expires": done.token_expires.isoformat() if done.token_expires else None,
        "token_scopes": list(done.token_scopes),
        "secret_ref": done.secret_ref,
        "revoked_tokens": list(done.revoked_tokens),
    }


def _audit_success(ctx: typer.Context, action: str, done: RegisteredAccount) -> None:
    _audit(
        ctx,
        actor=done.agent,
        action=action,
        target=f"jira:{done.account_id}",
        scope=",".join(done.token_scopes),
        result="success",
        detail={
            "account_id": done.account_id,
            "token_id": done.token_id,
            "token_expires": done.token_expires.isoformat() if done.token_expires else None,
            "revoked_tokens": list(done.revoked_tokens),
        },
    )


@app.command("register")
def register_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name (its contract says what it may do in Jira)."),
    account_id: str = typer.Option(
        ..., "--account-id", help="The service account's Atlassian account id."
    ),
    token_file: Path | None = TOKEN_FILE_OPTION,
    contract: Path = CONTRACT_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Record the agent's Atlassian service account and install its scoped API token.

    Example: agentctl jira register pr-review-agent --account-id 712020:... --token-file tok
    """
    app_context(ctx).may_create_state = True  # registration may come before the first apply
    agent = _load_contract(ctx, name, contract)
    token = _read_token(token_file)
    provider = _provider(ctx, [str(contract)])
    with _audit_failure(ctx, name, "jira.register"):
        done = provider.register(agent, account_id.strip(), token)
    _audit_success(ctx, "jira.register", done)
    if output == OutputFormat.JSON:
        print_json(_data(done))
        return
    stdout.print(
        f"Registered service account [bold]{escape(done.display_name)}[/bold] "
        f"({escape(done.email)}, {escape(done.account_id)}) for {escape(name)}."
    )
    stdout.print(
        f"Its API token ({escape(', '.join(done.token_scopes))}; expires "
        f"{done.token_expires.date() if done.token_expires else 'unknown'}) is in the secret "
        f"store as {escape(done.secret_ref)}."
    )
    stdout.print("Next: `agentctl apply` puts it in its project role.")


@app.command("rotate")
def rotate_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name."),
    token_file: Path | None = TOKEN_FILE_OPTION,
    contract: Path = CONTRACT_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Install a new API token for the agent after verifying it, then revoke the old ones.

    Example: agentctl jira rotate pr-review-agent --token-file new-token
    """
    agent = _load_contract(ctx, name, contract)
    token = _read_token(token_file)
    provider = _provider(ctx, [str(contract)])
    with _audit_failure(ctx, name, "jira.rotate"):
        done = provider.rotate_token(agent, token)
    _audit_success(ctx, "jira.rotate", done)
    if output == OutputFormat.JSON:
        print_json(_data(done))
        return
    stdout.print(
        f"The new API token of {escape(name)} works (expires "
        f"{done.token_expires.date() if done.token_expires else 'unknown'}); it is in the "
        f"secret store as {escape(done.secret_ref)}."
    )
    revoked = len(done.revoked_tokens)
    stdout.print(f"Revoked {revoked} older token{'s' if revoked != 1 else ''}.")


@app.command("status")
def status_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The agent's service account, role, projects and API tokens (age, expiry).

    Example: agentctl jira status pr-review-agent --output json
    """
    data = _provider(ctx).status(name)
    if output == OutputFormat.JSON:
        print_json(data)
        return
    if not data["registered"]:
        stdout.print(f"{escape(name)}: no Jira service account recorded.")
        return
    rows = [
        ("account", f"{data['email']} ({data['account_id']})"),
        ("role", str(data["role"])),
        ("applied to", ", ".join(data["projects"]) or "no project yet (run agentctl apply)"),
        ("permissions", ", ".join(data["permissions"]) or "-"),
        ("token scopes", ", ".join(data["token_scopes"]) or "-"),
    ]
    for label, value in rows:
        stdout.print(f"{label:>13}: {escape(value)}")
    for token in data["tokens"]:
        state = "live" if token["live"] else "revoked/expired"
        stdout.print(
            f"{'token':>13}: {escape(token['id'])} {state}, {token['age_days']} days old, "
            f"expires {escape(token['expires_at'][:10])}"
        )
