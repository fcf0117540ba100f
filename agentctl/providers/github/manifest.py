"""GitHub's App manifest flow: the manifest built from a contract, and the form that posts it.

The App is created by a person on GitHub's page, never by an API call: the
manifest goes to ``{web_url}/organizations/{org}/settings/apps/new`` in a form
POST, GitHub redirects back with a code, and the provider exchanges the code
for the App (:meth:`GitHubProvider.complete_registration`). Everything here is
pure: no network, no secret.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentctl.errors import UsageError
from agentctl.model import Contract

# GitHub's manifest codes are short hex strings; anything else never reaches a URL path.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True)
class ManifestForm:
    """What the manifest flow needs: a form POST of ``manifest`` to ``url``."""

    manifest: dict[str, Any]
    url: str
    state: str
    html: str


@dataclass(frozen=True)
class RegisteredApp:
    """A dedicated App after the manifest conversion (never holds a secret)."""

    agent: str
    app_id: int
    slug: str
    html_url: str
    owner: str
    settings_url: str
    install_url: str
    permissions: dict[str, str]
    secret_refs: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)
    # False: adopted after a registration that died once GitHub had created the
    # App but before its private key was stored; a person generates a new one.
    key_stored: bool = True
    # When this run finished a registration an earlier, interrupted run began.
    resumed_from: str | None = None


def build_manifest(
    contract: Contract,
    permissions: Mapping[str, str],
    *,
    owner_url: str,
    name: str | None = None,
    events: Iterable[str] = (),
    webhook_url: str | None = None,
    redirect_url: str | None = None,
) -> dict[str, Any]:
    """The manifest of ``contract``'s App: named ``name`` (github.app_name_template;
    default the agent's name), its permissions exactly ``permissions``, private, no
    webhook or events unless asked for."""
    manifest: dict[str, Any] = {
        "name": name or contract.name,
        "url": owner_url,
        "description": (
            f"agentctl agent {contract.name}: {contract.purpose} "
            f"(owner {contract.owner}; managed by agentctl)"
        )[:1000],
        "public": False,
        "default_permissions": dict(permissions),
        "default_events": sorted(set(events)),
    }
    if webhook_url:
        manifest["hook_attributes"] = {"url": webhook_url, "active": True}
    if redirect_url:
        manifest["redirect_url"] = redirect_url
    return manifest


def new_state() -> str:
    """The manifest flow's ``state``: GitHub hands it back with the code, so a code
    from any other registration (or a forged link) is refused before it is used."""
    return secrets.token_urlsafe(24)


def parse_code(code_or_url: str, state: str | None) -> tuple[str, str]:
    """(code, state) from what the person pasted: the whole redirect URL
    (``...?code=...&state=...``) or the bare code with ``--state``."""
    text = code_or_url.strip()
    if "?" in text or "://" in text:
        query = parse_qs(urlsplit(text).query)
        codes, states = query.get("code", []), query.get("state", [])
        if len(codes) != 1:
            raise UsageError(
                "the redirect URL has no code=... parameter",
                hint="paste the whole address GitHub redirected to after "
                '"Create GitHub App", e.g. http://127.0.0.1/...?code=...&state=...',
            )
        text = codes[0]
        if len(states) == 1:
            if state is not None and state != states[0]:
                raise UsageError(
                    "--state differs from the state in the redirect URL",
                    hint="pass only the redirect URL",
                )
            state = states[0]
    if not _CODE.fullmatch(text):
        raise UsageError(
            "that is not a GitHub manifest code",
            hint="pass the code=... value GitHub appended to the redirect URL, or the whole URL",
        )
    if not state:
        raise UsageError(
            "the manifest flow's state is missing: agentctl checks it so that only the "
            "registration it started can complete",
            hint="pass the whole redirect URL as --code (it carries code and state), "
            "or add --state STATE",
        )
    return text, state


def manifest_form(
    manifest: Mapping[str, Any], organization_url: str, state: str | None = None
) -> ManifestForm:
    """A page that POSTs the manifest to GitHub: the manifest flow needs a form POST,
    which a plain link cannot make."""
    state = state or new_state()
    url = f"{organization_url}/settings/apps/new?state={state}"
    value = html.escape(json.dumps(manifest, sort_keys=True), quote=True)
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>Register {html.escape(str(manifest['name']))}</title></head>\n<body>\n"
        f"<form id='register' method='post' action='{html.escape(url, quote=True)}'>\n"
        f"<input type='hidden' name='manifest' value='{value}'>\n"
        "<p>Submitting the App manifest to GitHub&hellip;</p>\n"
        "<button type='submit'>Create the GitHub App</button>\n</form>\n"
        "<script>document.getElementById('register').submit();</script>\n"
        "</body></html>\n"
    )
    return ManifestForm(dict(manifest), url, state, page)


def forms_page(forms: Iterable[tuple[str, ManifestForm]]) -> str:
    """One page for many registrations: a form per agent, each opening GitHub's
    "create App" page in its own tab (one person clicks through them in a row)."""
    rows = []
    for agent, form in forms:
        value = html.escape(json.dumps(form.manifest, sort_keys=True), quote=True)
        name = html.escape(str(form.manifest["name"]))
        rows.append(
            f"<li><form method='post' target='_blank' "
            f"action='{html.escape(form.url, quote=True)}'>\n"
            f"<input type='hidden' name='manifest' value='{value}'>\n"
            f"<button type='submit'>Create {name}</button> for agent "
            f"{html.escape(agent)}</form></li>"
        )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        "<title>Register GitHub Apps</title></head>\n<body>\n"
        '<p>Click each button; on GitHub click "Create GitHub App", then copy the address '
        "GitHub redirects to. Paste all of them into <code>agentctl github register-pending "
        "--codes FILE</code>.</p>\n<ol>\n" + "\n".join(rows) + "\n</ol>\n</body></html>\n"
    )
