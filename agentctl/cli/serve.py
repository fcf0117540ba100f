"""``agentctl serve``: the kill switch over HTTP, and its callers' credentials."""

from __future__ import annotations

import typer
from rich.markup import escape

from agentctl.cli.common import OUTPUT_OPTION, OutputFormat, app_context, stderr, stdout
from agentctl.render import print_json

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
    from agentctl.serve_auth import HMAC, TOKEN, create_caller

    context = app_context(ctx)
    context.may_create_state = True  # a first caller may come before the first apply
    engine = context.engine()
    issued = create_caller(
        context.state(),
        context.secrets,
        name=name,
        kind=HMAC if hmac else TOKEN,
        created_by=engine.operator,
        clock=context.clock,
    )
    record = issued.record
    engine.audit(
        actor=engine.operator,
        action="serve.caller.create",
        target=record.name,
        result="success",
        trigger=f"operator/{engine.operator}",
        detail={"kind": record.kind, "fingerprint": record.fingerprint},
    )
    if output == OutputFormat.JSON:
        print_json(
            {
                "name": record.name,
                "kind": record.kind,
                "fingerprint": record.fingerprint,
                # Shown once: only its hash (token) or the secret store (key) keeps it.
                "credential": issued.credential.reveal(),
            }
        )
        return
    what = "signing key" if record.kind == HMAC else "bearer token"
    stderr.print(
        f"Created caller [bold]{escape(record.name)}[/bold] ({what}, fingerprint "
        f"{record.fingerprint}). It is shown once, now:"
    )
    # The credential alone on stdout, so `... > file` captures exactly it.
    stdout.print(issued.credential.reveal(), markup=False, highlight=False)


@token_app.command("list")
def token_list(ctx: typer.Context, output: OutputFormat = OUTPUT_OPTION) -> None:
    """Callers, live and revoked (never their credentials)."""
    context = app_context(ctx)
    callers = context.state().list_serve_callers()
    rows = [
        {
            "name": c.name,
            "kind": c.kind,
            "status": "live" if c.live else "revoked",
            "fingerprint": c.fingerprint,
            "created_at": c.created_at.isoformat(timespec="seconds"),
            "created_by": c.created_by,
            "last_used_at": c.last_used_at.isoformat(timespec="seconds")
            if c.last_used_at
            else None,
            "revoked_at": c.revoked_at.isoformat(timespec="seconds") if c.revoked_at else None,
        }
        for c in callers
    ]
    if output == OutputFormat.JSON:
        print_json({"callers": rows})
        return
    if not rows:
        stdout.print("No callers. Create one with `agentctl serve token create --name NAME`.")
        return
    for row in rows:
        style = "green" if row["status"] == "live" else "dim"
        stdout.print(
            f"[{style}]{escape(str(row['name']))}[/{style}]  {row['kind']}  {row['status']}  "
            f"fingerprint {row['fingerprint']}  created {row['created_at']} by "
            f"{escape(str(row['created_by']))}  last used {row['last_used_at'] or 'never'}"
        )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The caller to revoke."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Revoke a caller: its next request is refused, by every running serve."""
    from agentctl.serve_auth import revoke_caller

    context = app_context(ctx)
    engine = context.engine()
    record = revoke_caller(context.state(), context.secrets, name, clock=context.clock)
    engine.audit(
        actor=engine.operator,
        action="serve.caller.revoke",
        target=record.name,
        result="success",
        trigger=f"operator/{engine.operator}",
        detail={"kind": record.kind, "fingerprint": record.fingerprint},
    )
    if output == OutputFormat.JSON:
        print_json({"name": record.name, "status": "revoked"})
        return
    stdout.print(f"Revoked caller [bold]{escape(record.name)}[/bold].")
