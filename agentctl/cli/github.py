"""agentctl github ...: register an agent's own GitHub App, rotate its key, show it.

``register`` runs GitHub's manifest flow in two steps, because the App is
created by a person on GitHub's page, never by an API call:

1. ``agentctl github register NAME`` builds the manifest from the contract,
   keeps a fresh ``state`` in the secret store and writes a small local HTML
   page that POSTs it to
   ``{web_url}/organizations/{org}/settings/apps/new?state=...`` (the flow needs
   a form POST; a link cannot carry the manifest). Open it (``--open`` does),
   click "Create GitHub App"; GitHub redirects to the redirect URL with
   ``?code=...&state=...``. With the default redirect URL nothing listens, so
   the browser shows an error page: the code is in its address bar.
2. ``agentctl github register NAME --code REDIRECT_URL`` checks the URL's
   ``state`` against the kept one (before the code is used), exchanges the code
   for the App, refuses it if it is not owned by ``github.organization`` or its
   name or permissions differ from the contract (audited), stores
   its private key (and webhook/client secrets) in the secret store, records
   the App in state and audits ``github.register``.

Secrets are never printed: only where they are stored.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from agentctl.cli.common import (
    OUTPUT_OPTION,
    OutputFormat,
    app_context,
    complete_agent_name,
    stdout,
)
from agentctl.errors import AgentctlError, NotFound, UsageError
from agentctl.providers.github import SPEC as GITHUB
from agentctl.render import print_json

if TYPE_CHECKING:
    from agentctl.model import Contract
    from agentctl.providers.github.lifecycle import GitHubProvider
    from agentctl.providers.github.manifest import RegisteredApp

app = typer.Typer(
    help="GitHub Apps: one per agent, so GitHub's audit log names the agent.",
    no_args_is_help=True,
)

# Nothing listens here: GitHub's redirect lands on an error page whose address
# bar carries the code. Pass --redirect-url to receive it somewhere else.
DEFAULT_REDIRECT_URL = "http://127.0.0.1/agentctl/github/registered"


def _provider(ctx: typer.Context, contract_paths: list[str] | None = None) -> GitHubProvider:
    from agentctl.providers.base import ProviderContext
    from agentctl.providers.github.lifecycle import GitHubProvider

    context = app_context(ctx)
    return GitHubProvider(
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

    context = app_context(ctx)
    config = context.config([str(path)])
    report = load_contracts(
        [path], today=context.clock().date(), max_lifetime_days=config.max_lifetime_days
    )
    for contract in report.contracts:
        if contract.name == name:
            return contract
    for contract in report.expired:
        if contract.name == name:
            raise UsageError(
                f"the contract of {name} expired on {contract.expiry.isoformat()}: "
                "an expired agent gets no GitHub App",
                hint=f"extend `expiry` in {contract.source}",
            )
    raise NotFound(
        f"no valid contract named {name!r} in {path}",
        hint=f"`agentctl validate {path}` shows every contract and what is wrong with it",
    )


def _audit(ctx: typer.Context, **fields: Any) -> None:
    context = app_context(ctx)
    context.state().append_audit(operator=context.resolved_operator(), **fields)


def _audit_registered(ctx: typer.Context, name: str, registered: RegisteredApp) -> None:
    _audit(
        ctx,
        actor=name,
        action="github.register",
        target=f"github:app/{registered.slug}",
        scope=",".join(f"{k}:{v}" for k, v in sorted(registered.permissions.items())),
        result="success",
        detail={
            "app_id": registered.app_id,
            "slug": registered.slug,
            "owner": registered.owner,
            "html_url": registered.html_url,
            "secret_refs": list(registered.secret_refs),
        },
    )


@contextlib.contextmanager
def _audit_failure(ctx: typer.Context, name: str, action: str) -> Iterator[None]:
    """A refused registration or key change is audited too, then re-raised."""
    try:
        yield
    except AgentctlError as exc:
        # A refused registration says why (e.g. who owns the App) for the audit trail.
        extra = getattr(exc, "detail", None)
        _audit(
            ctx,
            actor=name,
            action=action,
            target=f"github:{name}",
            result="failure",
            detail={"error": exc.message, **(extra if isinstance(extra, dict) else {})},
        )
        raise


def _forms(name: str) -> list[Path]:
    """Registration pages step 1 left for ``name`` in the temp directory: only
    our own, in real directories (another user may plant look-alikes in /tmp)."""
    found = []
    for path in Path(tempfile.gettempdir()).glob(f"agentctl-github-*/register-{name}.html"):
        try:
            folder, page = os.lstat(path.parent), os.lstat(path)
        except OSError:
            continue
        mine = folder.st_uid == page.st_uid == os.getuid()
        if mine and stat.S_ISDIR(folder.st_mode) and stat.S_ISREG(page.st_mode):
            found.append(path)
    return found


def _remove_forms(name: str) -> None:
    # The page holds the manifest and the registration's state value: once the
    # App exists (or a new page replaces it) it must not linger in /tmp.
    for path in _forms(name):
        with contextlib.suppress(OSError):
            path.unlink()
            path.parent.rmdir()  # only when empty: something else there is left alone


def _write_form(name: str, page: str) -> Path:
    _remove_forms(name)
    folder = Path(tempfile.mkdtemp(prefix="agentctl-github-"))
    path = folder / f"register-{name}.html"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path


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
    agent = _load_contract(ctx, name, contract)
    app_context(ctx).may_create_state = True  # registration may come before the first apply
    provider = _provider(ctx, [str(contract)])
    if code is None:
        manifest = provider.app_manifest(
            agent, webhook_url=webhook_url, events=events, redirect_url=redirect_url
        )
        _start_registration(provider, agent, manifest, redirect_url, open_browser, output)
        return
    from agentctl.providers.github.manifest import parse_code

    the_code, the_state = parse_code(code, state)
    with _audit_failure(ctx, name, "github.register"):
        registered = provider.complete_registration(agent, the_code, the_state)
    _remove_forms(name)
    _audit_registered(ctx, name, registered)
    data = {
        "agent": name,
        "app_id": registered.app_id,
        "slug": registered.slug,
        "owner": registered.owner,
        "html_url": registered.html_url,
        "settings_url": registered.settings_url,
        "install_url": registered.install_url,
        "permissions": registered.permissions,
        "secret_refs": list(registered.secret_refs),
    }
    if output == OutputFormat.JSON:
        print_json(data)
        return
    stdout.print(
        f"Registered GitHub App [bold]{escape(registered.slug)}[/bold] (id {registered.app_id}) "
        f"owned by {escape(registered.owner)}."
    )
    stdout.print(f"Its private key is in the secret store as {escape(registered.secret_refs[0])}.")
    grant = agent.grant(GITHUB)
    limited = grant.repositories if grant is not None else None
    where = f", for {', '.join(limited)} only" if limited else ""
    stdout.print(f"Next: install it on {escape(registered.owner)}{escape(where)}:")
    stdout.print(f"  {escape(registered.install_url)}")
    stdout.print("then run `agentctl apply` to record the installation.")


def _start_registration(
    provider: GitHubProvider,
    agent: Contract,
    manifest: dict[str, Any],
    redirect_url: str,
    open_browser: bool,
    output: OutputFormat,
) -> None:
    form = provider.start_registration(agent.name, manifest)
    path = _write_form(agent.name, form.html)
    if open_browser:
        import webbrowser

        webbrowser.open(path.as_uri())
    finish = f"agentctl github register {agent.name} --code 'REDIRECT_URL'"
    if output == OutputFormat.JSON:
        print_json(
            {
                "agent": agent.name,
                "manifest": form.manifest,
                "creation_url": form.url,
                "state": form.state,
                "form": str(path),
                "next": finish,
            }
        )
        return
    permissions = ", ".join(f"{k}:{v}" for k, v in sorted(manifest["default_permissions"].items()))
    stdout.print(
        f"GitHub App manifest for [bold]{escape(agent.name)}[/bold]: {escape(permissions)}"
    )
    stdout.print(
        f"1. Open {escape(str(path))} in a browser{' (opened)' if open_browser else ' (or pass --open)'}:"
    )
    stdout.print(f"   it posts the manifest to {escape(form.url)}")
    stdout.print('2. Click "Create GitHub App". GitHub then redirects to')
    stdout.print(f"   {escape(redirect_url)}?code=CODE&state=STATE")
    stdout.print(
        "   (the page need not load: copy the whole address from the address bar; agentctl "
        "checks its state)"
    )
    stdout.print(f"3. {escape(finish)}")


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

    from agentctl.contract import load_contracts
    from agentctl.providers.github.manifest import forms_page, parse_code

    context = app_context(ctx)
    context.may_create_state = True  # registration may come before the first apply
    config = context.config([str(contracts)])
    report = load_contracts(
        [contracts], today=context.clock().date(), max_lifetime_days=config.max_lifetime_days
    )
    provider = _provider(ctx, [str(contracts)])
    urls = list(codes)
    if codes_file is not None:
        text = sys.stdin.read() if str(codes_file) == "-" else codes_file.read_text("utf-8")
        urls += [line.strip() for line in text.splitlines() if line.strip()]
    if not urls:
        pending = [c for c in report.contracts if provider.needs_app(c)]
        room = max(0, 100 - provider.dedicated_apps())
        chosen, over = pending[:room], pending[room:]
        forms = [
            (
                c.name,
                provider.start_registration(
                    c.name, provider.app_manifest(c, redirect_url=redirect_url)
                ),
            )
            for c in chosen
        ]
        path = _write_form("pending", forms_page(forms))
        if open_browser and forms:
            import webbrowser

            webbrowser.open(path.as_uri())
        finish = f"agentctl github register-pending {contracts} --codes FILE"
        data: dict[str, Any] = {
            "form": str(path),
            "agents": [{"agent": a, "app_name": f.manifest["name"]} for a, f in forms],
            "over_limit": [c.name for c in over],
            "next": finish,
        }
        if output == OutputFormat.JSON:
            print_json(data)
            return
        if not forms:
            stdout.print("Every agent in dedicated mode already has its GitHub App.")
        else:
            stdout.print(
                f"{len(forms)} GitHub App(s) to create: open {escape(str(path))}"
                f"{' (opened)' if open_browser else ' (or pass --open)'}, click each button, "
                'then on GitHub "Create GitHub App".'
            )
            stdout.print(
                "Copy every address GitHub redirects to into a file, one per line, then: "
                f"{escape(finish)}"
            )
        if over:
            stdout.print(
                f"[yellow]warning[/yellow]: {len(over)} agent(s) would pass GitHub's 100 Apps per "
                f"organization ({escape(', '.join(c.name for c in over))}): give them "
                "`mode: shared` in their github grant"
            )
        return
    by_name = {c.name: c for c in report.contracts}
    results: list[dict[str, Any]] = []
    for url in urls:
        try:
            the_code, the_state = parse_code(url, None)
        except UsageError as exc:
            results.append({"url": url[:80], "ok": False, "error": exc.message})
            continue
        name = provider.pending_agent(by_name, the_state)
        if name is None:
            results.append(
                {"ok": False, "error": "no pending registration has this state (refused unused)"}
            )
            _audit(
                ctx,
                actor="unknown",
                action="github.register",
                target="github:unknown",
                result="failure",
                detail={"reason": "state-mismatch", "error": "no pending registration"},
            )
            continue
        try:
            with _audit_failure(ctx, name, "github.register"):
                registered = provider.complete_registration(by_name[name], the_code, the_state)
        except AgentctlError as exc:
            results.append({"agent": name, "ok": False, "error": exc.message})
            continue
        _audit_registered(ctx, name, registered)
        results.append(
            {
                "agent": name,
                "ok": True,
                "slug": registered.slug,
                "app_id": registered.app_id,
                "install_url": registered.install_url,
            }
        )
    if all(r["ok"] for r in results):
        _remove_forms("pending")  # the page holds the registrations' states
    if output == OutputFormat.JSON:
        print_json({"results": results})
    else:
        for result in results:
            if result["ok"]:
                stdout.print(
                    f"{escape(result['agent'])}: registered {escape(result['slug'])} "
                    f"(id {result['app_id']}); install it at {escape(result['install_url'])}"
                )
            else:
                stdout.print(
                    f"[red]{escape(result.get('agent', 'refused'))}[/red]: "
                    f"{escape(result['error'])}"
                )
    if not all(r["ok"] for r in results):
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
    from agentctl.secrets import Secret

    try:
        pem = Secret(private_key.expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read {private_key} ({type(exc).__name__})",
            hint="pass the .pem file GitHub generated",
        ) from None
    provider = _provider(ctx)
    with _audit_failure(ctx, name, "github.rotate-key"):
        result = provider.rotate_key(name, pem)
    _audit(
        ctx,
        actor=name,
        action="github.rotate-key",
        target=f"github:app/{result['slug']}",
        result="success",
        detail={"app_id": result["app_id"], "key_fingerprint": result["key_fingerprint"]},
    )
    if output == OutputFormat.JSON:
        print_json(result)
        return
    stdout.print(
        f"GitHub accepted the new key for App {escape(result['slug'])} (id {result['app_id']}, "
        f"key fingerprint {result['key_fingerprint']}); it replaced the stored key "
        f"({escape(result['secret_ref'])})."
    )
    stdout.print(f"Delete the old key at {escape(result['settings_url'])}.")


@app.command("status")
def status_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Agent name.", autocompletion=complete_agent_name),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """The agent's App, its installation, whether it is suspended, live tokens.

    Example: agentctl github status pr-review-agent --output json
    """
    data = _provider(ctx).status(name)
    if output == OutputFormat.JSON:
        print_json(data)
        return
    if not data["registered"]:
        stdout.print(f"{escape(name)}: no GitHub App or grant recorded ({data['mode']} mode).")
        return
    rows = [
        ("mode", data["mode"]),
        ("app", f"{data['slug'] or '-'} (id {data['app_id']}) {data['html_url'] or ''}"),
        (
            "installation",
            f"{data['installation_id']} on {data['account']}"
            if data["installation_id"]
            else "not installed",
        ),
        ("suspended", "yes" if data["suspended"] else "no"),
        ("live tokens", str(data["live_tokens"])),
    ]
    for label, value in rows:
        stdout.print(f"{label:>13}: {escape(str(value))}")
    for line in data["drift"]:
        stdout.print(f"[yellow]drift[/yellow] {escape(line)}")
