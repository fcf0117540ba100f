"""agentctl github ...: register an agent's own GitHub App, rotate its key, show it.

Parses and renders only: the work (the manifest flow, its audit) is in
:mod:`agentctl.commands.github`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    show,
)
from agentctl.commands import github
from agentctl.commands.github import DEFAULT_REDIRECT_URL

app = typer.Typer(
    help="GitHub Apps: one per agent, so GitHub's audit log names the agent.",
    no_args_is_help=True,
)


def _open(path: Path) -> None:
    import webbrowser

    webbrowser.open(path.as_uri())


@app.command("register")
def register_command(
    ctx: typer.Context,
    name: str = typer.Argument(
        ..., help="Agent name (its contract names the App).", autocompletion=complete_agent_name
    ),
    contract: Path = typer.Option(
        Path("contracts"),
        "--contract",
        "-c",
        help="The agent's contract file, or a contracts folder.",
    ),
    code: str | None = typer.Option(
        None,
        "--code",
        help="Step 2: the whole redirect URL GitHub sent you to (it carries code and state), "
        "or just the code with --state.",
    ),
    state: str | None = typer.Option(
        None, "--state", help="Step 2 with a bare --code: the state=... of the redirect URL."
    ),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", help="Give the App a webhook (none by default)."
    ),
    events: list[str] = typer.Option(
        [], "--event", help="A webhook event to subscribe to (repeatable; needs --webhook-url)."
    ),
    redirect_url: str = typer.Option(
        DEFAULT_REDIRECT_URL, "--redirect-url", help="Where GitHub sends the code after creation."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the registration page."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Create the agent's own GitHub App from its contract (two steps).

    Example: agentctl github register pr-review-agent --open
    Then:    agentctl github register pr-review-agent --code 'http://127.0.0.1/...?code=...&state=...'
    """
    session = app_context(ctx)
    if code is None:
        started = github.start_registration(
            session,
            name,
            contract,
            webhook_url=webhook_url,
            events=events,
            redirect_url=redirect_url,
        )
        if open_browser:
            _open(started.form)
            started = dataclasses.replace(started, opened=True)
        show(started, output)
        return
    show(github.complete_registration(session, name, contract, code, state), output)


@app.command("register-pending")
def register_pending_command(
    ctx: typer.Context,
    contracts: Path = typer.Argument(Path("contracts"), help="A contracts folder or file."),
    codes: list[str] = typer.Option(
        [], "--code", help="Step 2: a redirect URL GitHub sent you to (repeatable)."
    ),
    codes_file: Path | None = typer.Option(
        None, "--codes", help="Step 2: a file of redirect URLs, one per line ('-': stdin)."
    ),
    redirect_url: str = typer.Option(
        DEFAULT_REDIRECT_URL, "--redirect-url", help="Where GitHub sends each code."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open the registration page."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Register every agent still without its own GitHub App: one page, codes in one go.

    Example: agentctl github register-pending contracts/ --open
    Then:    agentctl github register-pending contracts/ --codes urls.txt
    """
    import sys

    session = app_context(ctx)
    urls = list(codes)
    if codes_file is not None:
        text = sys.stdin.read() if str(codes_file) == "-" else codes_file.read_text("utf-8")
        urls += [line.strip() for line in text.splitlines() if line.strip()]
    if not urls:
        forms = github.start_pending(session, contracts, redirect_url=redirect_url)
        if open_browser and forms.agents:
            _open(forms.form)
            forms = dataclasses.replace(forms, opened=True)
        show(forms, output)
        return
    registered = github.complete_pending(session, contracts, urls)
    show(registered, output)
    if not registered.ok:
        raise typer.Exit(1)


@app.command("rotate-key")
def rotate_key_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    private_key: Path = typer.Option(
        ..., "--private-key", help="The new .pem generated on the App's settings page."
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Install a new private key for the agent's App, after verifying it with GitHub.

    Example: agentctl github rotate-key pr-review-agent --private-key ~/Downloads/new.pem
    """
    show(github.rotate_key(app_context(ctx), name, private_key), output)


@app.command("status")
def status_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The agent's App, its installation, whether it is suspended, live tokens.

    Example: agentctl github status pr-review-agent --output json
    """
    show(github.status(app_context(ctx), name), output)
