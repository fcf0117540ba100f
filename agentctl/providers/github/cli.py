"""agentctl github ...: register an agent's own GitHub App, rotate its key, show it.

Mounted by agentctl's CLI through ``ProviderSpec.commands``: it is handed a
:class:`agentctl.providers.base.CommandLine` and never imports the CLI. It
parses and renders only; the work (the manifest flow, its audit) is
:mod:`agentctl.providers.github.commands`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from agentctl.markup import escape
from agentctl.model import OutputFormat
from agentctl.providers.github import commands
from agentctl.providers.github.commands import DEFAULT_REDIRECT_URL

if TYPE_CHECKING:
    from agentctl.providers.base import CommandLine, TextOutput
    from agentctl.providers.github.commands import (
        AppRegistered,
        PendingForms,
        PendingRegistered,
        RegistrationStarted,
    )
    from agentctl.providers.github.lifecycle import AppStatus, RotatedKey


def _open(path: Path) -> None:
    import webbrowser

    webbrowser.open(path.as_uri())


def _registration_started(result: RegistrationStarted, out: TextOutput) -> None:
    out.line(
        f"GitHub App manifest for [bold]{escape(result.agent)}[/bold]: {escape(result.permissions)}"
    )
    opened = " (opened)" if result.opened else " (or pass --open)"
    out.line(f"1. Open {escape(str(result.form))} in a browser{opened}:")
    out.line(f"   it posts the manifest to {escape(result.creation_url)}")
    out.line('2. Click "Create GitHub App". GitHub then redirects to')
    out.line(f"   {escape(result.redirect_url)}?code=CODE&state=STATE")
    out.line(
        "   (the page need not load: copy the whole address from the address bar; agentctl "
        "checks its state)"
    )
    out.line(f"3. {escape(result.next)}")


def _registered(result: AppRegistered, out: TextOutput) -> None:
    out.line(
        f"Registered GitHub App [bold]{escape(result.slug)}[/bold] (id {result.app_id}) "
        f"owned by {escape(result.owner)}."
    )
    out.line(f"Its private key is in the secret store as {escape(result.secret_refs[0])}.")
    where = f", for {', '.join(result.repositories)} only" if result.repositories else ""
    out.line(f"Next: install it on {escape(result.owner)}{escape(where)}:")
    out.line(f"  {escape(result.install_url)}")
    out.line("then run `agentctl apply` to record the installation.")


def _pending_forms(result: PendingForms, out: TextOutput) -> None:
    if not result.agents:
        out.line("Every agent in dedicated mode already has its GitHub App.")
    else:
        out.line(
            f"{len(result.agents)} GitHub App(s) to create: open {escape(str(result.form))}"
            f"{' (opened)' if result.opened else ' (or pass --open)'}, click each button, "
            'then on GitHub "Create GitHub App".'
        )
        out.line(
            "Copy every address GitHub redirects to into a file, one per line, then: "
            f"{escape(result.next)}"
        )
    if result.over_limit:
        out.line(
            f"[yellow]warning[/yellow]: {len(result.over_limit)} agent(s) would pass GitHub's "
            f"100 Apps per organization ({escape(', '.join(result.over_limit))}): give them "
            "`mode: shared` in their github grant"
        )


def _pending_registered(result: PendingRegistered, out: TextOutput) -> None:
    for outcome in result.results:
        if outcome.ok:
            out.line(
                f"{escape(outcome.agent or '')}: registered {escape(outcome.slug or '')} "
                f"(id {outcome.app_id}); install it at {escape(outcome.install_url or '')}"
            )
        else:
            out.line(
                f"[red]{escape(outcome.agent or 'refused')}[/red]: {escape(outcome.error or '')}"
            )


def _rotated_key(result: RotatedKey, out: TextOutput) -> None:
    out.line(
        f"GitHub accepted the new key for App {escape(result.slug)} (id {result.app_id}, "
        f"key fingerprint {result.key_fingerprint}); it replaced the stored key "
        f"({escape(result.secret_ref)})."
    )
    if result.adopted is not None:
        out.line(
            f"Recorded App {escape(result.slug)}, created by the interrupted registration of "
            f"{escape(result.agent)}. Next: install it at {escape(result.adopted.install_url)}, "
            "then run `agentctl apply`."
        )
        return
    out.line(f"Delete the old key at {escape(result.settings_url)}.")


def _status(result: AppStatus, out: TextOutput) -> None:
    if not result.registered:
        out.line(f"{escape(result.agent)}: no GitHub App or grant recorded ({result.mode} mode).")
        if result.interrupted_registration:
            out.line(
                f"A registration begun {escape(result.interrupted_registration)} was interrupted: "
                f"`agentctl github register {escape(result.agent)}` finishes it."
            )
        return
    installation = (
        f"{result.installation_id} on {result.account}"
        if result.installation_id
        else "not installed"
    )
    rows = [
        ("mode", result.mode),
        ("app", f"{result.slug or '-'} (id {result.app_id}) {result.html_url or ''}"),
        ("installation", installation),
        ("suspended", "yes" if result.suspended else "no"),
        ("live tokens", str(result.live_tokens)),
    ]
    key = result.private_key
    if key is not None:
        if key.created_at is not None:
            age = f"{result.key_age_days} days old (stored {key.created_at.date().isoformat()})"
        else:
            age = (
                f"age unknown (stored before agentctl recorded key ages; tracked since "
                f"{key.tracked_since.date().isoformat()}, at least {result.key_at_least_days} days)"
            )
        rows.append(("private key", f"{key.fingerprint or 'fingerprint unknown'}, {age}"))
    for label, value in rows:
        out.line(f"{label:>13}: {escape(str(value))}")
    for line in result.drift:
        out.line(f"[yellow]drift[/yellow] {escape(line)}")


def build(cli: CommandLine) -> typer.Typer:
    """The ``agentctl github`` sub-commands (this package's ``ProviderSpec.commands``)."""
    for result_type, renderer in (
        ("commands.RegistrationStarted", _registration_started),
        ("commands.AppRegistered", _registered),
        ("commands.PendingForms", _pending_forms),
        ("commands.PendingRegistered", _pending_registered),
        ("lifecycle.RotatedKey", _rotated_key),
        ("lifecycle.AppStatus", _status),
    ):
        cli.text_renderer(f"agentctl.providers.github.{result_type}")(renderer)
    app = typer.Typer(
        help="GitHub Apps: one per agent, so GitHub's audit log names the agent.",
        no_args_is_help=True,
    )

    @app.command("register")
    def register_command(
        ctx: typer.Context,
        name: str = typer.Argument(
            ...,
            help="Agent name (its contract names the App).",
            autocompletion=cli.complete_agent_name,
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
            DEFAULT_REDIRECT_URL,
            "--redirect-url",
            help="Where GitHub sends the code after creation.",
        ),
        open_browser: bool = typer.Option(False, "--open", help="Open the registration page."),
        output: OutputFormat = cli.output_option,
    ) -> None:
        """Create the agent's own GitHub App from its contract (two steps).

        Example: agentctl github register pr-review-agent --open
        Then:    agentctl github register pr-review-agent --code 'http://127.0.0.1/...?code=...&state=...'
        """
        session = cli.session(ctx)
        if code is None:
            started = commands.start_registration(
                session,
                name,
                contract,
                webhook_url=webhook_url,
                events=events,
                redirect_url=redirect_url,
            )
            if open_browser and isinstance(started, commands.RegistrationStarted):
                _open(started.form)
                started = dataclasses.replace(started, opened=True)
            cli.show(started, output)
            return
        cli.show(commands.complete_registration(session, name, contract, code, state), output)

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
        output: OutputFormat = cli.output_option,
    ) -> None:
        """Register every agent still without its own GitHub App: one page, codes in one go.

        Example: agentctl github register-pending contracts/ --open
        Then:    agentctl github register-pending contracts/ --codes urls.txt
        """
        import sys

        session = cli.session(ctx)
        urls = list(codes)
        if codes_file is not None:
            text = sys.stdin.read() if str(codes_file) == "-" else codes_file.read_text("utf-8")
            urls += [line.strip() for line in text.splitlines() if line.strip()]
        if not urls:
            forms = commands.start_pending(session, contracts, redirect_url=redirect_url)
            if open_browser and forms.agents:
                _open(forms.form)
                forms = dataclasses.replace(forms, opened=True)
            cli.show(forms, output)
            return
        registered = commands.complete_pending(session, contracts, urls)
        cli.show(registered, output)
        if not registered.ok:
            raise typer.Exit(1)

    @app.command("rotate-key")
    def rotate_key_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Agent name.", autocompletion=cli.complete_agent_name),
        private_key: Path = typer.Option(
            ..., "--private-key", help="The new .pem generated on the App's settings page."
        ),
        app_id: int | None = typer.Option(
            None,
            "--app-id",
            min=1,
            max=2**63 - 1,
            help="The App ID shown on its settings page: only needed to adopt the App of an "
            "interrupted registration when GitHub does not show it to this machine (no GH_TOKEN).",
        ),
        output: OutputFormat = cli.output_option,
    ) -> None:
        """Install a new private key for the agent's App, after verifying it with GitHub.

        Example: agentctl github rotate-key pr-review-agent --private-key ~/Downloads/new.pem
        """
        cli.show(commands.rotate_key(cli.session(ctx), name, private_key, app_id=app_id), output)

    @app.command("status")
    def status_command(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="Agent name.", autocompletion=cli.complete_agent_name),
        output: OutputFormat = cli.output_option,
    ) -> None:
        """The agent's App, its installation, whether it is suspended, live tokens.

        Example: agentctl github status pr-review-agent --output json
        """
        cli.show(commands.status(cli.session(ctx), name), output)

    return app
