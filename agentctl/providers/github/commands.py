"""``agentctl github register|register-pending|rotate-key|status``: an agent's own GitHub App.

The work, returning results; the command line is :mod:`agentctl.providers.github.cli`.

``register`` runs GitHub's manifest flow in two steps, because the App is
created by a person on GitHub's page, never by an API call:

1. :func:`start_registration` builds the manifest from the contract, keeps a
   fresh ``state`` in the secret store and writes a small local HTML page that
   POSTs it to ``{web_url}/organizations/{org}/settings/apps/new?state=...``
   (the flow needs a form POST; a link cannot carry the manifest). A person
   opens it and clicks "Create GitHub App"; GitHub redirects to the redirect
   URL with ``?code=...&state=...``. With the default redirect URL nothing
   listens, so the browser shows an error page: the code is in its address bar.
2. :func:`complete_registration` checks the URL's ``state`` against the kept
   one (before the code is used), exchanges the code for the App, refuses it if
   it is not owned by ``github.organization`` or its name or permissions differ
   from the contract, stores its private key (and webhook/client secrets) in
   the secret store and records the App in state.

Every registration and key change is audited, refused ones too. Secrets are
never in a result: only where they are stored.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agentctl.errors import AgentctlError, UsageError
from agentctl.model import JsonFields
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from agentctl.model import Contract
    from agentctl.providers.base import CommandSession
    from agentctl.providers.github.lifecycle import AppStatus, GitHubProvider, RotatedKey
    from agentctl.providers.github.manifest import RegisteredApp

# Nothing listens here: GitHub's redirect lands on an error page whose address
# bar carries the code. Pass --redirect-url to receive it somewhere else.
DEFAULT_REDIRECT_URL = "http://127.0.0.1/agentctl/github/registered"
# GitHub allows at most 100 Apps per organization.
APPS_PER_ORGANIZATION = 100


def _provider(session: CommandSession, contract_paths: Sequence[str] = ()) -> GitHubProvider:
    from agentctl.providers.github.lifecycle import GitHubProvider

    provider = session.provider("github", contract_paths)
    assert isinstance(provider, GitHubProvider)
    return provider


def _contract(session: CommandSession, name: str, path: Path) -> Contract:
    return session.contract(name, path, gets="GitHub App")


@contextlib.contextmanager
def _audit_failure(session: CommandSession, name: str, action: str) -> Iterator[None]:
    """A refused registration or key change is audited too, then re-raised."""
    try:
        yield
    except AgentctlError as exc:
        # A refused registration says why (e.g. who owns the App) for the audit trail.
        extra = getattr(exc, "detail", None)
        session.audit(
            AuditDraft(
                actor=name,
                action=action,
                target=f"github:{name}",
                result="failure",
                detail={"error": exc.message, **(extra if isinstance(extra, dict) else {})},
            ),
        )
        raise


def _audit_registered(session: CommandSession, name: str, registered: RegisteredApp) -> None:
    resumed = (
        {"resumed_from": registered.resumed_from, "key_stored": registered.key_stored}
        if registered.resumed_from
        else {}
    )
    session.audit(
        AuditDraft(
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
                **resumed,
            },
        ),
    )


def _auditor(session: CommandSession, name: str) -> Callable[[RegisteredApp], None]:
    return functools.partial(_audit_registered, session, name)


def _key_lost(name: str, registered: RegisteredApp) -> AgentctlError:
    """The App exists and is recorded, but its only key died with an earlier run."""
    from agentctl.errors import ProviderError

    return ProviderError(
        "github",
        f"GitHub App {registered.slug} (id {registered.app_id}) was created by the registration "
        f"of {name} begun {registered.resumed_from}, which was interrupted before agentctl "
        "stored the App's private key. The App is now recorded (and audited), but GitHub shows "
        "a private key only once: the App has no usable key",
        hint=f"in a browser, open {registered.settings_url} and under 'Private keys' click "
        "'Generate a private key' (the browser downloads a .pem file); then run "
        f"`agentctl github rotate-key {name} --private-key PATH/TO/THAT.pem`",
    )


# -- the registration page in the temp directory ---------------------------------------


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


# -- register: one agent ---------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationStarted:
    """Step 1: the page that posts the manifest to GitHub, and what to run next."""

    agent: str
    manifest: dict[str, Any]
    creation_url: str
    state: str
    form: Path
    next: str
    redirect_url: str
    # Set by the caller once it opened the page in a browser.
    opened: bool = False

    json_fields: ClassVar[JsonFields] = (
        "agent",
        "manifest",
        "creation_url",
        "state",
        "form",
        "next",
    )

    @property
    def permissions(self) -> str:
        granted = self.manifest["default_permissions"]
        return ", ".join(f"{k}:{v}" for k, v in sorted(granted.items()))


def start_registration(
    session: CommandSession,
    name: str,
    contract_path: Path,
    *,
    webhook_url: str | None = None,
    events: Sequence[str] = (),
    redirect_url: str = DEFAULT_REDIRECT_URL,
) -> RegistrationStarted | AppRegistered:
    """Step 1; or, when an earlier registration of ``name`` was interrupted after
    GitHub created its App, that App recorded instead (GitHub would refuse a
    second App of the same name)."""
    agent = _contract(session, name, contract_path)
    session.may_create_state = True  # registration may come before the first apply
    session.require_person("github register", name)  # verified person, never an agent
    provider = _provider(session, [str(contract_path)])
    with _audit_failure(session, name, "github.register"):
        resumed = provider.resume_registration(name, audit=_auditor(session, name))
    if resumed is not None:
        return _registered(name, agent, resumed)
    manifest = provider.app_manifest(
        agent, webhook_url=webhook_url, events=list(events), redirect_url=redirect_url
    )
    form = provider.start_registration(agent.name, manifest)
    return RegistrationStarted(
        agent=agent.name,
        manifest=form.manifest,
        creation_url=form.url,
        state=form.state,
        form=_write_form(agent.name, form.html),
        next=f"agentctl github register {agent.name} --code 'REDIRECT_URL'",
        redirect_url=redirect_url,
    )


@dataclass(frozen=True)
class AppRegistered:
    """Step 2: the App exists, its key is in the secret store, the state records it."""

    agent: str
    app_id: int
    slug: str
    owner: str
    html_url: str
    settings_url: str
    install_url: str
    permissions: dict[str, str]
    secret_refs: tuple[str, ...]
    # The repositories the contract limits the App to (none: all of the owner's).
    repositories: tuple[str, ...] = field(default=(), metadata={"json": False})


def complete_registration(
    session: CommandSession, name: str, contract_path: Path, code: str, state: str | None = None
) -> AppRegistered:
    """``code``: the whole redirect URL (it carries code and state), or the bare
    code with ``state``."""
    from agentctl.providers.github.manifest import parse_code

    agent = _contract(session, name, contract_path)
    session.may_create_state = True  # registration may come before the first apply
    session.require_person("github register", name)  # verified person, never an agent
    provider = _provider(session, [str(contract_path)])
    the_code, the_state = parse_code(code, state)
    with _audit_failure(session, name, "github.register"):
        registered = provider.complete_registration(
            agent, the_code, the_state, audit=_auditor(session, name)
        )
    return _registered(name, agent, registered)


def _registered(name: str, agent: Contract, registered: RegisteredApp) -> AppRegistered:
    from agentctl.providers.github import SPEC as GITHUB

    _remove_forms(name)
    if not registered.key_stored:
        raise _key_lost(name, registered)
    grant = agent.grant(GITHUB)
    return AppRegistered(
        agent=name,
        app_id=registered.app_id,
        slug=registered.slug,
        owner=registered.owner,
        html_url=registered.html_url,
        settings_url=registered.settings_url,
        install_url=registered.install_url,
        permissions=registered.permissions,
        secret_refs=tuple(registered.secret_refs),
        repositories=tuple(grant.repositories or ()) if grant is not None else (),
    )


# -- register-pending: every agent without its App, one page ---------------------------


@dataclass(frozen=True)
class PendingApp:
    agent: str
    app_name: str


@dataclass(frozen=True)
class PendingForms:
    """Step 1 for many agents: one page with a button per App to create."""

    form: Path
    agents: tuple[PendingApp, ...]
    over_limit: tuple[str, ...]
    next: str
    opened: bool = field(default=False, metadata={"json": False})


def start_pending(
    session: CommandSession, contracts: Path, *, redirect_url: str = DEFAULT_REDIRECT_URL
) -> PendingForms:
    from agentctl.contract import load_contracts
    from agentctl.providers.github.manifest import forms_page

    session.may_create_state = True  # registration may come before the first apply
    session.require_person("github register-pending", str(contracts))
    config = session.config([str(contracts)])
    report = load_contracts(
        [contracts], today=session.clock().date(), max_lifetime_days=config.max_lifetime_days
    )
    provider = _provider(session, [str(contracts)])
    pending = [c for c in report.contracts if provider.needs_app(c)]
    room = max(0, APPS_PER_ORGANIZATION - provider.dedicated_apps())
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
    return PendingForms(
        form=_write_form("pending", forms_page(forms)),
        agents=tuple(PendingApp(a, f.manifest["name"]) for a, f in forms),
        over_limit=tuple(c.name for c in over),
        next=f"agentctl github register-pending {contracts} --codes FILE",
    )


_OMIT_NONE = {"omit_none": True}


@dataclass(frozen=True)
class PendingOutcome:
    """One redirect URL of step 2: the App it registered, or why it was refused."""

    ok: bool
    agent: str | None = field(default=None, metadata=_OMIT_NONE)
    url: str | None = field(default=None, metadata=_OMIT_NONE)
    error: str | None = field(default=None, metadata=_OMIT_NONE)
    slug: str | None = field(default=None, metadata=_OMIT_NONE)
    app_id: int | None = field(default=None, metadata=_OMIT_NONE)
    install_url: str | None = field(default=None, metadata=_OMIT_NONE)

    json_fields: ClassVar[JsonFields] = (
        "url",
        "agent",
        "ok",
        "error",
        "slug",
        "app_id",
        "install_url",
    )


@dataclass(frozen=True)
class PendingRegistered:
    results: tuple[PendingOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def complete_pending(
    session: CommandSession, contracts: Path, urls: Sequence[str]
) -> PendingRegistered:
    """Step 2 for many agents: each redirect URL is matched to its agent by its state."""
    from agentctl.contract import load_contracts
    from agentctl.providers.github.manifest import parse_code

    session.may_create_state = True
    session.require_person("github register-pending", str(contracts))
    config = session.config([str(contracts)])
    report = load_contracts(
        [contracts], today=session.clock().date(), max_lifetime_days=config.max_lifetime_days
    )
    provider = _provider(session, [str(contracts)])
    by_name = {c.name: c for c in report.contracts}
    results: list[PendingOutcome] = []
    for url in urls:
        try:
            the_code, the_state = parse_code(url, None)
        except UsageError as exc:
            results.append(PendingOutcome(ok=False, url=url[:80], error=exc.message))
            continue
        name = provider.pending_agent(by_name, the_state)
        if name is None:
            results.append(
                PendingOutcome(
                    ok=False, error="no pending registration has this state (refused unused)"
                )
            )
            session.audit(
                AuditDraft(
                    actor="unknown",
                    action="github.register",
                    target="github:unknown",
                    result="failure",
                    detail={"reason": "state-mismatch", "error": "no pending registration"},
                ),
            )
            continue
        try:
            with _audit_failure(session, name, "github.register"):
                registered = provider.complete_registration(
                    by_name[name], the_code, the_state, audit=_auditor(session, name)
                )
            if not registered.key_stored:
                raise _key_lost(name, registered)
        except AgentctlError as exc:
            results.append(PendingOutcome(ok=False, agent=name, error=exc.message))
            continue
        results.append(
            PendingOutcome(
                ok=True,
                agent=name,
                slug=registered.slug,
                app_id=registered.app_id,
                install_url=registered.install_url,
            )
        )
    done = PendingRegistered(tuple(results))
    if done.ok:
        _remove_forms("pending")  # the page holds the registrations' states
    return done


# -- rotate-key, status ------------------------------------------------------------------


def rotate_key(
    session: CommandSession, name: str, private_key: Path, *, app_id: int | None = None
) -> RotatedKey:
    """Install a new private key for the agent's App, after GitHub accepted it;
    an App an interrupted registration created (and lost the key of) is adopted."""
    from agentctl.secrets import Secret

    try:
        pem = Secret(private_key.expanduser().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read {private_key} ({type(exc).__name__})",
            hint="pass the .pem file GitHub generated",
        ) from None
    session.require_person("github rotate-key", name)
    provider = _provider(session)
    with _audit_failure(session, name, "github.rotate-key"):
        rotated = provider.rotate_key(name, pem, app_id=app_id)
    if rotated.adopted is not None:
        # The App, its registration event and the settled intent: one transaction.
        provider.record_adopted(rotated.adopted, _auditor(session, name))
    session.audit(
        AuditDraft(
            actor=name,
            action="github.rotate-key",
            target=f"github:app/{rotated.slug}",
            result="success",
            detail={"app_id": rotated.app_id, "key_fingerprint": rotated.key_fingerprint},
        ),
    )
    return rotated


def status(session: CommandSession, name: str) -> AppStatus:
    return _provider(session).status(name)
