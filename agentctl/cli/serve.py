"""``agentctl serve``: the kill switch over HTTP, and its callers' credentials."""

from __future__ import annotations

import typer

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, show, stderr
from agentctl.markup import escape

HELP = """\
Serve the contracts' kill switch over HTTP for automation (paging, SIEM hooks).

[bold]POST /agents/NAME/disable[/bold]: kill that agent (body: optional {"reason": "..."}).

[bold]GET /agents/NAME[/bold]: its status.  [bold]GET /healthz[/bold]: 200 while the state store answers.

Callers authenticate with a credential from `agentctl serve token create`.
Plain HTTP on 127.0.0.1 by default: put TLS in front with a reverse proxy
(README, "agentctl serve"). Stops cleanly on Ctrl-C or SIGTERM.
"""

app = typer.Typer(help=HELP, invoke_without_command=True, rich_markup_mode="rich")
token_app = typer.Typer(help="Callers of `agentctl serve` and their credentials.")
app.add_typer(token_app, name="token")


@app.callback()
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8787, "--port", min=0, max=65535, help="Port to listen on."),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Reverse proxies whose X-Forwarded-For is trusted (comma-separated addresses).",
    ),
    max_body_bytes: int = typer.Option(4096, "--max-body-bytes", min=64, max=1024 * 1024),
    requests_per_minute: int = typer.Option(
        60, "--requests-per-minute", min=1, max=1_000_000, help="Per client address and per caller."
    ),
    burst: int = typer.Option(
        20,
        "--burst",
        min=1,
        max=1_000_000,
        help="Requests allowed at once before the rate applies.",
    ),
    signature_window: int = typer.Option(
        300, "--signature-window", min=5, max=3600, help="Seconds a signed request stays valid."
    ),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from agentctl.serve import ServeOptions, bind, create_app, uvicorn_server
    from agentctl.serve_auth import Authenticator

    context = app_context(ctx)
    engine = context.engine()
    # Kills over HTTP are recorded as this host's verified principal (and the caller).
    engine.require_person("serve", "http")
    authenticator = Authenticator(
        engine.state, context.secrets, clock=context.clock, window_seconds=signature_window
    )
    options = ServeOptions(
        max_body_bytes=max_body_bytes,
        requests_per_minute=requests_per_minute,
        burst=burst,
        signature_window_seconds=signature_window,
    )
    server = uvicorn_server(
        create_app(engine, authenticator, options, after_kill=context.anchor_appended),
        forwarded_allow_ips=forwarded_allow_ips,
    )
    sock = bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    stderr.print(
        f"agentctl serve listening on http://{shown_host}:{sock.getsockname()[1]} "
        f"(state {escape(engine.state.url)})"
    )
    if not context.state().list_serve_callers():
        stderr.print(
            "[yellow]warning[/yellow]: no callers yet: every request will be refused; "
            "create one with `agentctl serve token create --name NAME`"
        )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Who will call, e.g. pager or siem."),
    hmac: bool = typer.Option(
        False,
        "--hmac",
        help="Issue a signing key (HMAC-signed requests) instead of a bearer token.",
    ),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Issue a caller's credential. It is shown once: store it where the caller runs."""
    from agentctl.commands import serve

    show(serve.create(app_context(ctx), name, hmac=hmac), output)


@token_app.command("list")
def token_list(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Callers, live and revoked (never their credentials)."""
    from agentctl.commands import serve

    show(serve.callers(app_context(ctx)), output)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The caller to revoke."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Revoke a caller: its next request is refused, by every running serve."""
    from agentctl.commands import serve

    show(serve.revoke(app_context(ctx), name), output)
