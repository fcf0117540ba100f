"""GitHub provider: a GitHub App per agent, scoped installation tokens.

Two modes (``github.mode`` in agentctl.yaml):

* **dedicated** (default): every agent has its own GitHub App, created from a
  manifest by ``agentctl github register NAME`` and owned by
  ``github.organization``. GitHub's audit log then names the agent
  (``pr-review-agent[bot]``). The App's id and private key live in the secret
  store under the agent's exact name (``github/app/<agent>/app-id`` and
  ``.../private-key``), so kill finds the App even when the state store is lost.
  Kill revokes every live token minted for the agent, then suspends every
  installation of the agent's App.
* **shared**: one configured App (``app_id``, ``installation_id``, key from
  ``private_key_file`` or the secret ``github/shared-app/private-key``) mints
  tokens for many agents. Kill only revokes that agent's tokens: the shared
  installation is never suspended.

Either way a token for a run is minted down-scoped to the contract's resolved
permissions and repositories (``POST /app/installations/{id}/access_tokens``);
its metadata goes to the state store and its value to the secret store
(``github/token/<credential id>``) so kill can revoke it
(``DELETE /installation/token``). Tokens are revoked *before* a suspension:
GitHub answers every token endpoint of a suspended installation with 403.

agentctl cannot change what an App or installation grants (GitHub has no API for
App permissions; installations are an org owner's choice), so anything wider than
the contract is reported as DRIFT; the minted tokens stay limited to the contract.

HTTP, retries and error mapping live in :mod:`.client`; the manifest flow's pure
parts in :mod:`.manifest`. githubkit, httpx, PyJWT and cryptography are imported
only when GitHub is first called: ``agentctl validate`` constructs providers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agentctl.errors import (
    AgentctlError,
    DamagedStateRow,
    ProviderError,
    SecretStoreError,
    StateError,
    StateNotFound,
)
from agentctl.model import Contract, canonical_json
from agentctl.providers.base import (
    ActionResult,
    Change,
    ChangeKind,
    FieldChange,
    IssuedCredential,
    LongLivedSecret,
    Observed,
    ProviderContext,
    RunContext,
    SecretRows,
)
from agentctl.providers.github import PROVIDER, SPEC
from agentctl.providers.github.client import (
    AppIdentity,
    GitHubApiError,
    GitHubHttp,
    token_authorization,
    utc_text,
)
from agentctl.providers.github.grant import GitHubGrant
from agentctl.providers.github.manifest import (
    ManifestForm,
    RegisteredApp,
    build_manifest,
    manifest_form,
)
from agentctl.providers.github.naming import (
    app_name,
    app_slug,
    name_problem,
    template_problem,
)
from agentctl.providers.github.scopes import resolve_github_permissions
from agentctl.secrets import Secret

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from agentctl.state.records import (
        CredentialRecord,
        IntentRecord,
        LongLivedSecretRecord,
        ResourceRecord,
    )

DEDICATED = "dedicated"
SHARED = "shared"
# GitHub: "An organization can own up to 100 GitHub Apps"; plan warns from 90.
ORG_APP_LIMIT = 100
ORG_APP_WARN_AT = 90
TOKEN_KIND = "installation-token"
KEY_KIND = "app-private-key"
SHARED_KEY_REF = "github/shared-app/private-key"
_LEVEL_RANK = {"read": 1, "write": 2, "admin": 3}


# The resource attributes recorded in state. Dedicated: the App, its
# installation on the organization (None until installed; ``repositories`` only
# for a "selected" installation) and the contract's grant. Shared: the grant.
_APP_KEYS = (
    "mode",
    "app_id",
    "slug",
    "name",
    "html_url",
    "owner",
    "owner_type",
    "app_permissions",
)
_INSTALLATION_KEYS = (
    "installation_id",
    "account",
    "installation_html_url",
    "installation_permissions",
    "repository_selection",
    "repositories",
    "installation_updated_at",
)
_GRANT_KEYS = ("grant_permissions", "grant_repositories")
_DEDICATED_KEYS = _APP_KEYS + _INSTALLATION_KEYS + _GRANT_KEYS
_SHARED_KEYS = (
    "mode",
    "app_id",
    "installation_id",
    "account",
    "grant_permissions",
    "grant_repositories",
)


@dataclass(frozen=True)
class GitHubChange:
    """What a GitHub change carries from plan to apply."""

    mode: str  # DEDICATED or SHARED
    # CREATE/UPDATE: the resource attributes to record (the engine records them).
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # Re-enabling after a renewal: the installations to unsuspend.
    unsuspend: tuple[int, ...] = ()


def _registered_info(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the state records of an App, from GitHub's App object."""
    return {
        "mode": DEDICATED,
        "app_id": int(body["id"]),
        "slug": body["slug"],
        "name": body["name"],
        "html_url": body["html_url"],
        "owner": body["owner"]["login"],
        "owner_type": body["owner"].get("type", "Organization"),
        "app_permissions": dict(sorted((body.get("permissions") or {}).items())),
    }


class RegistrationRefused(ProviderError):
    """The manifest flow's answer was refused; ``detail`` goes to the audit event."""

    def __init__(self, message: str, *, hint: str | None, detail: Mapping[str, Any]) -> None:
        super().__init__(PROVIDER, message, hint=hint)
        self.detail = dict(detail)


def _state_digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


# The intent `github register` records before converting a manifest code.
REGISTER_INTENT = "register"


def manifest_state_ref(agent: str) -> str:
    """The pending manifest flow's ``state`` (a nonce, kept with the App's secrets)."""
    return f"github/app/{agent}/manifest-state"


# A token's record before its value is known: requested (the process may have
# died since), or requested and the answer lost. Neither value is in the secret
# store, so only a suspension (dedicated mode) or expiry ends such a token.
PENDING = "pending"
UNCONFIRMED = "unconfirmed"
NOT_MINTED = "not-minted"
GITHUB_TOKEN_LIFETIME = timedelta(hours=1)  # fixed by GitHub
_EXPIRY_MARGIN = timedelta(minutes=5)  # clock drift between this host and GitHub


def _surely_expired(expires_at: datetime, now: datetime) -> bool:
    """Whether GitHub has certainly stopped accepting a token recorded to
    expire at ``expires_at``: GitHub's expiry is second-truncated and read
    against this host's clock, so a token "expired" here by less than the drift
    margin may still work there. Until then it is revoked (a 401 answer means
    already dead) and its value kept for that."""
    return expires_at + _EXPIRY_MARGIN <= now


@dataclass(frozen=True)
class MintedToken:
    credential_id: str
    token: Secret
    data: dict[str, Any]
    issued_at: datetime
    expires_at: datetime


def app_key_ref(agent: str) -> str:
    return f"github/app/{agent}/private-key"


def app_id_ref(agent: str) -> str:
    return f"github/app/{agent}/app-id"


def token_ref(credential_id: str) -> str:
    return f"github/token/{credential_id}"


def _permission_text(permissions: Mapping[str, str] | None) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted((permissions or {}).items())) or "none"


def _excess_permissions(held: Mapping[str, str], allowed: Mapping[str, str]) -> dict[str, str]:
    """Permissions in ``held`` beyond ``allowed`` (absent, or at a higher level)."""
    return {
        name: level
        for name, level in held.items()
        if _LEVEL_RANK.get(level, 0) > _LEVEL_RANK.get(allowed.get(name, ""), 0)
    }


def _same(left: Any, right: Any) -> bool:
    """Equal as recorded in state (JSON): tuples and lists, key order do not matter."""
    return canonical_json(left) == canonical_json(right)


def _contract_repositories(grant: GitHubGrant) -> list[str] | None:
    repositories = grant.repositories
    return None if repositories is None else sorted(set(repositories))


@dataclass(frozen=True)
class RotatedKey:
    """A new App private key GitHub accepted and the secret store now holds
    (``agentctl github rotate-key``); never the key itself."""

    agent: str
    app_id: int
    slug: str
    secret_ref: str
    key_fingerprint: str
    settings_url: str
    # The App an interrupted registration created, adopted with this key: the
    # command records it (and its audit event) in one transaction.
    adopted: RegisteredApp | None = field(default=None, metadata={"json": False})


def key_fingerprint(key: RSAPrivateKey) -> str:
    """The fingerprint GitHub shows for an App key on its settings page
    ("SHA256:..."): base64 of the SHA-256 of the public key's DER
    SubjectPublicKeyInfo (GitHub docs, "Verifying private keys":
    ``openssl rsa -in KEY -pubout -outform DER | openssl sha256 -binary | openssl base64``).
    Identifies the key without revealing it, so a person can tell which key on
    the page to delete."""
    import base64

    from cryptography.hazmat.primitives import serialization

    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


@dataclass(frozen=True)
class AppStatus:
    """The agent's App as GitHub and the state see it (``agentctl github status``)."""

    agent: str
    mode: str
    registered: bool
    app_id: int | None
    slug: str | None
    html_url: str | None
    installation_id: int | None
    account: str | None
    installation_html_url: str | None
    suspended: bool
    live_tokens: int
    drift: tuple[str, ...]
    # The App's private key as the state dates it (None: no dedicated App key).
    private_key: LongLivedSecret | None = None
    key_age_days: int | None = None  # None: unknown (stored before it was recorded)
    key_at_least_days: int | None = None
    # When a registration of the agent was interrupted and is not finished yet.
    interrupted_registration: str | None = field(default=None, metadata={"omit_none": True})


@dataclass
class _Evidence:
    """What this machine knows about an agent's GitHub App and tokens (kill)."""

    record: ResourceRecord | None = None
    live: list[CredentialRecord] | None = None  # None: the state store is unreachable
    agent_known: bool = False  # the state store records the agent
    mode: str = DEDICATED
    app: AppIdentity | None = None  # its App, with the key from the secret store
    store_answered: bool = False
    store_shared: bool = False  # the team's secret store answered
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        """Something says the agent has a GitHub App or token."""
        return self.record is not None or bool(self.live) or self.app is not None


class GitHubProvider:
    """GitHub Apps and installation tokens; see the module docstring."""

    name = PROVIDER

    def __init__(
        self,
        context: ProviderContext,
        *,
        sleep: Callable[[float], None] = time.sleep,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        now: Callable[[], float] = time.time,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """``sleep``, ``now`` and the backoff bounds are injectable so tests never
        wait for real; ``notify`` gets the rate-limit waits (default: stderr)."""
        self._context = context
        self._settings = context.config.settings(SPEC)
        self._http = GitHubHttp(
            self._settings,
            sleep=sleep,
            backoff_seconds=backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
            now=now,
            notify=notify,
        )

    # -- configuration ---------------------------------------------------------

    @property
    def mode(self) -> str:
        mode = self._settings.mode
        if mode not in (DEDICATED, SHARED):
            raise ProviderError(
                PROVIDER,
                f"github.mode {mode!r} is not a mode",
                hint="set github.mode to dedicated (one App per agent) or shared",
            )
        return mode

    def configured(self, mode: str | None = None) -> bool:
        if (mode or self.mode) == SHARED:
            return self._settings.app_id is not None
        return bool(self._settings.organization)

    def mode_of(self, contract: Contract | None, record: ResourceRecord | None = None) -> str:
        """An agent's mode: as recorded, else its contract's ``github.mode``, else github.mode."""
        if record is not None and record.attributes.get("mode") in (DEDICATED, SHARED):
            return str(record.attributes["mode"])
        grant = contract.grant(SPEC) if contract is not None else None
        if grant is not None and grant.mode in (DEDICATED, SHARED):
            return grant.mode
        return self.mode

    def dedicated_apps(self) -> int:
        """Apps the organization holds for agentctl's agents (dedicated mode, recorded)
        plus ``github.other_apps``: what counts toward GitHub's 100 per organization."""
        recorded = sum(
            1
            for resource in self._context.state.list_resources()
            if resource.provider == PROVIDER and resource.attributes.get("mode") == DEDICATED
        )
        return recorded + max(0, self._settings.other_apps)

    def plan_notes(self) -> tuple[str, ...]:
        """A refreshing plan's warning while the organization nears (or holds)
        GitHub's limit of Apps, also when every agent already has its App: the
        next agent that needs one is when it is too late to choose calmly."""
        if not self._settings.organization:
            return ()
        try:
            held = self.dedicated_apps()
        except StateNotFound:  # nothing recorded yet (a pull request's CI)
            held = max(0, self._settings.other_apps)
        if held < ORG_APP_WARN_AT:
            return ()
        org = self._settings.organization
        if held >= ORG_APP_LIMIT:
            where = (
                f"the organization {org} holds {held} GitHub Apps, GitHub's limit of "
                f"{ORG_APP_LIMIT}: no further agent can get its own App"
            )
        else:
            where = (
                f"the organization {org} holds {held} of GitHub's {ORG_APP_LIMIT} Apps per "
                f"organization (room for {ORG_APP_LIMIT - held} more)"
            )
        return (f"{where}. Choose: {self._app_choice()}",)

    def _app_choice(self) -> str:
        return (
            "dedicated Apps for the agents that need their own identity in GitHub's logs; "
            "for the rest, `mode: shared` in the contract's github grant (tokens from the "
            "shared App, down-scoped to each contract; set github.app_id and "
            "github.installation_id)"
        )

    def app_room(self, agent: str) -> str | None:
        """Why ``agent`` cannot get a new dedicated App (the organization holds GitHub's
        maximum), or a warning as it nears it; None when there is room to spare."""
        held = self.dedicated_apps()
        org = self._settings.organization
        choice = self._app_choice()
        if held >= ORG_APP_LIMIT:
            return (
                f"the organization {org} holds {held} GitHub Apps, GitHub's limit of "
                f"{ORG_APP_LIMIT}: {agent} cannot get its own App. Choose: {choice}"
            )
        if held >= ORG_APP_WARN_AT:
            return (
                f"the organization {org} holds {held} of GitHub's {ORG_APP_LIMIT} Apps per "
                f"organization. Choose: {choice}"
            )
        return None

    def _not_configured(self, mode: str | None = None) -> ProviderError:
        if (mode or self.mode) == SHARED:
            hint = (
                "set github.app_id and github.installation_id in agentctl.yaml, and "
                "github.private_key_file (or store the key as secret "
                f"{SHARED_KEY_REF})"
            )
        else:
            hint = (
                "set github.organization in agentctl.yaml (and github.base_url / "
                "github.web_url for GitHub Enterprise Server), then run "
                "`agentctl github register NAME`"
            )
        # The plan shows only the message, so it says what is missing.
        missing = "github.app_id" if (mode or self.mode) == SHARED else "github.organization"
        return ProviderError(
            PROVIDER, f"GitHub is not configured ({missing} is not set in agentctl.yaml)", hint=hint
        )

    @property
    def base_url(self) -> str:
        return self._settings.base_url.rstrip("/")

    @property
    def web_url(self) -> str:
        return self._settings.web_url.rstrip("/")

    def _org_settings_url(self, org: str | None) -> str:
        if org:
            return f"{self.web_url}/organizations/{org}/settings/installations"
        return f"{self.web_url}/settings/installations"

    # -- stores ----------------------------------------------------------------

    def secret_refs(self) -> list[str]:
        """App keys and ids of every agent the state knows, and live token values."""
        state = self._context.state
        refs = {SHARED_KEY_REF}
        agents = {record.name for record in state.list_agents()}
        for resource in state.list_resources():
            if resource.provider == PROVIDER:
                agents.add(resource.agent)
        for agent in agents:
            refs.update(
                (
                    app_key_ref(agent),
                    app_id_ref(agent),
                    f"github/app/{agent}/webhook-secret",
                    f"github/app/{agent}/client-secret",
                    manifest_state_ref(agent),
                )
            )
        for credential in state.list_credentials(
            provider=PROVIDER, live_at=self._context.clock() - _EXPIRY_MARGIN
        ):
            refs.add(credential.secret_ref or token_ref(credential.id))
        return sorted(refs)

    def _record(self, agent: str) -> ResourceRecord | None:
        return self._context.state.get_resource(agent, PROVIDER)

    def _live_tokens(self, agent: str) -> list[CredentialRecord]:
        """Tokens GitHub may still accept: not revoked, and not surely expired
        (see _surely_expired: expired here by less than the drift margin counts
        as live, so rotate, kill and plan still revoke it)."""
        return [
            c
            for c in self._context.state.list_credentials(
                agent=agent, provider=PROVIDER, live_at=self._context.clock() - _EXPIRY_MARGIN
            )
            if c.kind == TOKEN_KIND
        ]

    def _dedicated_app(self, agent: str, record: ResourceRecord | None) -> AppIdentity | None:
        """The agent's own App: id from state (or the secret store), key from the
        secret store under the agent's exact name. None when no key is stored."""
        pem = self._context.secrets.get(app_key_ref(agent))
        if pem is None:
            return None
        app_id: int | None = None
        if record is not None and record.attributes.get("app_id") is not None:
            app_id = int(record.attributes["app_id"])
        else:
            stored = self._context.secrets.get(app_id_ref(agent))
            if stored is not None and stored.reveal().isdigit():
                app_id = int(stored.reveal())
        if app_id is None:
            return None
        return AppIdentity(app_id, self._http.parse_key(pem, f"secret {app_key_ref(agent)}"))

    def _shared_app(self) -> AppIdentity:
        settings = self._settings
        if settings.app_id is None or settings.installation_id is None:
            raise self._not_configured()
        if settings.private_key_file:
            from pathlib import Path

            path = Path(settings.private_key_file).expanduser()
            try:
                pem = Secret(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise ProviderError(
                    PROVIDER,
                    f"cannot read github.private_key_file {path} ({type(exc).__name__})",
                    hint="point github.private_key_file at the shared App's .pem file",
                ) from None
            where = f"github.private_key_file {path}"
        else:
            stored = self._context.secrets.get(SHARED_KEY_REF)
            if stored is None:
                raise ProviderError(
                    PROVIDER,
                    "no private key for the shared GitHub App",
                    hint=f"set github.private_key_file, or store the key as secret {SHARED_KEY_REF}",
                )
            pem, where = stored, f"secret {SHARED_KEY_REF}"
        return AppIdentity(int(settings.app_id), self._http.parse_key(pem, where))

    # -- GitHub reads ------------------------------------------------------------

    def _get_app(self, app: AppIdentity, doing: str) -> dict[str, Any]:
        client = self._http.as_app(app)
        body: dict[str, Any] = self._http.call(doing, client.rest.apps.get_authenticated).json()
        if int(body.get("id", -1)) != app.app_id:
            raise ProviderError(
                PROVIDER,
                f"{doing}: GitHub answered for App {body.get('id')}, expected App {app.app_id}",
            )
        return body

    def _installations(self, app: AppIdentity, doing: str) -> list[dict[str, Any]]:
        client = self._http.as_app(app)
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._http.call(
                doing,
                functools.partial(client.rest.apps.list_installations, per_page=100, page=page),
            ).json()
            found.extend(batch)
            if len(batch) < 100:
                return found
            page += 1

    def _get_installation(
        self, app: AppIdentity, installation_id: int, doing: str
    ) -> dict[str, Any]:
        client = self._http.as_app(app)
        body: dict[str, Any] = self._http.call(
            doing, lambda: client.rest.apps.get_installation(installation_id)
        ).json()
        return body

    def _pick_installation(
        self, installations: list[dict[str, Any]], owner: str | None
    ) -> dict[str, Any] | None:
        """The installation on the configured organization (else the App owner's)."""
        wanted = (self._settings.organization or owner or "").lower()
        for installation in installations:
            if str(installation["account"]["login"]).lower() == wanted:
                return installation
        return installations[0] if len(installations) == 1 else None

    def _installation_repositories(
        self, agent: str, app: AppIdentity, installation_id: int, doing: str
    ) -> list[str]:
        """Full names of what a "selected" installation reaches.

        Only an installation token can list them, so this mints a metadata-only
        token and revokes it at once: two writes, made only when the
        installation changed since it was last recorded (see observe).
        """
        minted = self._mint(
            agent,
            app,
            installation_id,
            {"metadata": "read"},
            None,
            doing,
            purpose="agentctl:list-installation-repositories",
        )
        try:
            client = self._http.as_token(minted.token)
            names: list[str] = []
            page = 1
            while True:
                body = self._http.call(
                    doing,
                    functools.partial(
                        client.rest.apps.list_repos_accessible_to_installation,
                        per_page=100,
                        page=page,
                    ),
                ).json()
                names.extend(r["full_name"] for r in body["repositories"])
                if len(names) >= int(body["total_count"]) or not body["repositories"]:
                    return sorted(names)
                page += 1
        finally:
            # Recorded: if this revocation fails, kill and revive still find it.
            with contextlib.suppress(GitHubApiError):
                self._retire(minted, f"{doing} (revoke the listing token)")

    # -- GitHub writes -----------------------------------------------------------

    def _mint(
        self,
        agent: str,
        app: AppIdentity,
        installation_id: int,
        permissions: Mapping[str, str],
        repositories: list[str] | None,
        doing: str,
        *,
        purpose: str,
        on_behalf_of: str | None = None,
    ) -> MintedToken:
        """``POST /app/installations/{id}/access_tokens``, never unrecorded.

        The token is recorded as an intent (state) before the request, and settled
        after it: its fingerprint and expiry, its value in the secret store. A
        request whose answer is lost (5xx, timeout) is not retried — GitHub may
        have minted a token nobody holds — and stays recorded as unconfirmed until
        it would expire: kill's suspension blocks it, and revive waits it out.
        """
        body: dict[str, Any] = {"permissions": dict(permissions)}
        if repositories is not None:
            body["repositories"] = [name.rpartition("/")[2] for name in repositories]
        credential_id = uuid.uuid4().hex
        ref = token_ref(credential_id)
        issued_at = self._context.clock()
        state = self._context.state
        state.add_credential(
            id=credential_id,
            agent=agent,
            provider=PROVIDER,
            kind=TOKEN_KIND,
            fingerprint=PENDING,
            issued_at=issued_at,
            # The longest a token GitHub mints now can live.
            expires_at=issued_at + GITHUB_TOKEN_LIFETIME + _EXPIRY_MARGIN,
            on_behalf_of=on_behalf_of,
            trigger=purpose,
            secret_ref=ref,
        )
        signed = self._http.app_authorization(app)
        real_now = datetime.now(UTC)
        try:
            response = self._http.call(
                doing,
                # Without githubkit (see GitHubHttp.send); the body goes as built.
                lambda: self._http.send(
                    "POST", f"/app/installations/{installation_id}/access_tokens", signed, json=body
                ),
                idempotent=False,
            )
        except GitHubApiError as exc:
            if exc.outcome_unknown:
                state.settle_credential(credential_id, fingerprint=UNCONFIRMED)
                raise self._lost_token(agent, credential_id, issued_at, exc) from None
            state.settle_credential(credential_id, fingerprint=NOT_MINTED)
            state.mark_credential_revoked(credential_id, self._context.clock())
            raise self._mint_refused(
                exc, doing, installation_id, permissions, repositories
            ) from None
        except AgentctlError:
            # Failed before anything was sent (a key that cannot sign, ...).
            state.settle_credential(credential_id, fingerprint=NOT_MINTED)
            state.mark_credential_revoked(credential_id, self._context.clock())
            raise
        data: dict[str, Any] = response.json()
        token = Secret(str(data["token"]))
        # Recorded on agentctl's clock (which tests and rehearsals may pin), for
        # as long as GitHub says the token lives.
        expires_at = issued_at + (datetime.fromisoformat(str(data["expires_at"])) - real_now)
        try:
            self._context.secrets.put(ref, token)
            state.settle_credential(
                credential_id, fingerprint=token.fingerprint(), expires_at=expires_at
            )
        except AgentctlError:
            # Unrecorded means unrevocable by kill: take it back before failing.
            self._revoke_value(token, f"revoke an unrecorded token of {agent}")
            with contextlib.suppress(AgentctlError):
                state.mark_credential_revoked(credential_id, self._context.clock())
            with contextlib.suppress(SecretStoreError):
                self._context.secrets.delete(ref)
            raise
        minted = MintedToken(credential_id, token, data, issued_at, expires_at)
        excess = _excess_permissions(data.get("permissions") or {}, permissions)
        if excess:
            # Never hand out more than asked, whatever GitHub did.
            self._retire(minted, f"{doing} (revoke an over-wide token)")
            raise ProviderError(
                PROVIDER,
                f"{doing}: GitHub minted a token with {_permission_text(excess)} beyond the "
                "request; it was revoked",
            )
        return minted

    def _mint_refused(
        self,
        exc: GitHubApiError,
        doing: str,
        installation_id: int,
        permissions: Mapping[str, str],
        repositories: list[str] | None,
    ) -> GitHubApiError:
        if exc.suspended:
            return GitHubApiError(
                f"{doing}: installation {installation_id} is suspended (the agent is "
                "killed or disabled): no token issued",
                status=exc.status,
                hint="`agentctl revive NAME --reason ...` if it should run again",
            )
        if exc.status == 422:
            return GitHubApiError(
                f"{exc.message.removeprefix('github: ')}: installation {installation_id} "
                f"does not grant {_permission_text(permissions)}"
                + (f" on {', '.join(repositories)}" if repositories else ""),
                status=422,
                hint="run `agentctl plan` to see what the installation lacks",
            )
        return exc

    def _lost_token(
        self, agent: str, credential_id: str, issued_at: datetime, exc: GitHubApiError
    ) -> ProviderError:
        until = utc_text(issued_at + GITHUB_TOKEN_LIFETIME + _EXPIRY_MARGIN)
        return ProviderError(
            PROVIDER,
            f"{exc.message.removeprefix('github: ')}. If GitHub minted a token, nobody "
            f"received it; it is recorded as unconfirmed token {credential_id} (live at most "
            f"until {until}): `agentctl kill {agent}` blocks it by suspending the agent's "
            "installation (dedicated mode), and revive waits until it has expired",
            hint=f"retry the run; `agentctl github status {agent}` shows unconfirmed tokens",
        )

    def _retire(self, minted: MintedToken, doing: str) -> str:
        """Revoke a token agentctl minted for its own use (listing, verification) and
        settle its record; failures are left recorded for kill."""
        outcome = self._revoke_value(minted.token, doing)
        if outcome != "suspended":
            self._context.state.mark_credential_revoked(minted.credential_id, self._context.clock())
            self._context.secrets.delete(token_ref(minted.credential_id))
        return outcome

    def _revoke_value(self, token: Secret, doing: str) -> str:
        """``DELETE /installation/token``: "revoked", "invalid" (already revoked or
        expired: 401) or "suspended" (403: refused while the installation is suspended)."""
        try:
            self._http.call(
                doing,
                lambda: self._http.send(
                    "DELETE", "/installation/token", token_authorization(token)
                ),
            )
        except GitHubApiError as exc:
            if exc.status == 401:
                return "invalid"
            if exc.suspended:
                return "suspended"
            raise
        return "revoked"

    def _set_suspended(
        self, app: AppIdentity, installation_id: int, suspended: bool, doing: str
    ) -> None:
        client = self._http.as_app(app)
        if suspended:
            self._http.call(doing, lambda: client.rest.apps.suspend_installation(installation_id))
        else:
            self._http.call(doing, lambda: client.rest.apps.unsuspend_installation(installation_id))

    # -- Provider protocol: vocabulary ------------------------------------------

    def observe(self, agent: str) -> Observed:
        record = self._record(agent)
        mode = record.attributes.get("mode", self.mode) if record is not None else self.mode
        if mode == SHARED:
            if not self.configured():
                return self._absent(agent, record)
            return self._observe_shared(agent, record)
        if record is None:
            return self._rediscover(agent)
        return self._observe_dedicated(agent, record)

    def _rediscover(self, agent: str) -> Observed:
        """No App recorded: the state may have been lost. The secret store keeps
        every registered App's id and key under the agent's name; GitHub confirms
        the App is the one github.app_name_template names (by slug), and plan
        records it again."""
        absent = Observed(provider=PROVIDER, agent=agent, exists=False)
        try:
            app = self._dedicated_app(agent, None)
        except SecretStoreError:
            return absent
        if app is None:
            return absent
        info = self._get_app(app, f"look up the GitHub App of {agent} in the secret store")
        # Apps registered before the template named the App after the agent alone.
        expected = {self.app_slug(agent), app_slug(agent)}
        if info["slug"] not in expected:
            raise ProviderError(
                PROVIDER,
                f"the secret store holds App {info['slug']} (id {app.app_id}) for {agent}, "
                f"but {agent}'s App is {self.app_slug(agent)}: agentctl does not adopt it",
                hint=f"check {app_id_ref(agent)} in the secret store, or register {agent} again",
            )
        return self._observe_dedicated(agent, None, app=app)

    def _absent(self, agent: str, record: ResourceRecord | None) -> Observed:
        return Observed(
            provider=PROVIDER,
            agent=agent,
            exists=record is not None,
            resource_id=record.resource_id if record else None,
            attributes={"recorded": dict(record.attributes) if record else None},
        )

    def _observe_dedicated(
        self, agent: str, record: ResourceRecord | None, *, app: AppIdentity | None = None
    ) -> Observed:
        recorded = dict(record.attributes) if record is not None else {}
        doing = f"look up the GitHub App of {agent}"
        app = app or self._dedicated_app(agent, record)
        if app is None:
            raise ProviderError(
                PROVIDER,
                f"App {recorded.get('slug')} of {agent} is recorded, but its private key is "
                f"not in the secret store ({app_key_ref(agent)})",
                hint=f"`agentctl github rotate-key {agent} --private-key FILE` with a key "
                f"generated at {recorded.get('html_url')}",
            )
        info = self._get_app(app, doing)
        owner = info["owner"]
        live: dict[str, Any] = {
            "mode": DEDICATED,
            "app_id": app.app_id,
            "slug": info["slug"],
            "name": info["name"],
            "html_url": info["html_url"],
            "owner": owner["login"],
            "owner_type": owner.get("type", "Organization"),
            "app_permissions": dict(sorted((info.get("permissions") or {}).items())),
        }
        installations = self._installations(app, doing)
        chosen = self._pick_installation(installations, owner["login"])
        drift = [
            f"App {info['slug']} is also installed on {i['account']['login']}: agentctl "
            "manages only its installation on "
            f"{self._settings.organization or owner['login']}"
            for i in installations
            if chosen is not None and i["id"] != chosen["id"]
        ]
        suspended = False
        if chosen is None:
            live.update(dict.fromkeys(_INSTALLATION_KEYS))
        else:
            suspended = chosen.get("suspended_at") is not None
            live.update(
                installation_id=chosen["id"],
                account=chosen["account"]["login"],
                installation_html_url=chosen["html_url"],
                installation_permissions=dict(sorted(chosen["permissions"].items())),
                repository_selection=chosen["repository_selection"],
                repositories=None,
                installation_updated_at=None,
            )
            if chosen["repository_selection"] == "selected":
                same = (
                    recorded.get("installation_id") == chosen["id"]
                    and recorded.get("repositories") is not None
                )
                if same and (
                    suspended or recorded.get("installation_updated_at") == chosen["updated_at"]
                ):
                    # Unchanged (or unlistable while suspended): keep the snapshot,
                    # and the time it was taken, so the next look re-lists if needed.
                    live["repositories"] = recorded["repositories"]
                    live["installation_updated_at"] = recorded["installation_updated_at"]
                elif not suspended:
                    live["repositories"] = self._installation_repositories(
                        agent,
                        app,
                        chosen["id"],
                        f"list the repositories of installation {chosen['id']}",
                    )
                    live["installation_updated_at"] = chosen["updated_at"]
        expired_disable = recorded.get("disabled") == "expired"
        return Observed(
            provider=PROVIDER,
            agent=agent,
            exists=True,
            resource_id=str(app.app_id),
            killed=suspended and not expired_disable,
            disabled=suspended and expired_disable,
            attributes={
                **live,
                "suspended": suspended,
                "settings_url": self._app_settings_url(live),
                "suspended_installations": [
                    i["id"] for i in installations if i.get("suspended_at") is not None
                ],
                "recorded": recorded,
            },
            drift=tuple(drift),
        )

    def _observe_shared(self, agent: str, record: ResourceRecord | None) -> Observed:
        app = self._shared_app()
        installation_id = int(self._settings.installation_id or 0)
        installation = self._get_installation(
            app, installation_id, f"look up shared installation {installation_id}"
        )
        return Observed(
            provider=PROVIDER,
            agent=agent,
            exists=record is not None,
            resource_id=record.resource_id if record else None,
            attributes={
                "mode": SHARED,
                "app_id": app.app_id,
                "installation_id": installation_id,
                "account": installation["account"]["login"],
                "installation_html_url": installation["html_url"],
                "installation_permissions": dict(installation["permissions"]),
                "repository_selection": installation["repository_selection"],
                "suspended": installation.get("suspended_at") is not None,
                "recorded": dict(record.attributes) if record else None,
            },
        )

    def _app_settings_url(self, app: Mapping[str, Any]) -> str:
        if app.get("owner_type") == "User":
            return f"{self.web_url}/settings/apps/{app.get('slug')}"
        return f"{self.web_url}/organizations/{app.get('owner')}/settings/apps/{app.get('slug')}"

    # -- plan ------------------------------------------------------------------------

    def plan(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[GitHubChange]]:
        agent = observed.agent
        recorded = observed.attributes.get("recorded") or {}
        mode = recorded.get("mode") or observed.attributes.get("mode") or self.mode
        if contract is None:
            return self._plan_remove(agent, observed, mode)
        if not recorded.get("mode"):
            mode = self.mode_of(contract)
        if mode == SHARED:
            if not self.configured(SHARED):
                raise self._not_configured(SHARED)
            if observed.attributes.get("mode") != SHARED:
                # Observed as github.mode says; this contract asks for the shared App.
                observed = self._observe_shared(agent, self._record(agent))
            return self._plan_shared(contract, observed, expired=expired)
        if not observed.exists and not self.configured(DEDICATED):
            raise self._not_configured(DEDICATED)
        return self._plan_dedicated(contract, observed, expired=expired)

    def _plan_remove(self, agent: str, observed: Observed, mode: str) -> list[Change[GitHubChange]]:
        if not observed.exists:
            return []
        recorded = observed.attributes.get("recorded") or {}
        if mode == SHARED:
            summary = f"drop the GitHub grant of {agent} and revoke its live tokens"
        else:
            summary = (
                f"revoke the live tokens of {agent} and suspend App {recorded.get('slug')}'s "
                "installation (agentctl never deletes an App: its owner can at "
                f"{self._app_settings_url(recorded)}/advanced)"
            )
        return [
            Change(
                provider=PROVIDER,
                agent=agent,
                kind=ChangeKind.REMOVE,
                summary=summary,
                payload=GitHubChange(mode),
            )
        ]

    def _grant(self, contract: Contract) -> tuple[dict[str, str], list[str] | None]:
        grant = contract.grant(SPEC) or GitHubGrant(())
        return resolve_github_permissions(grant), _contract_repositories(grant)

    def _disable_change(self, agent: str, mode: str, why: str) -> Change[GitHubChange]:
        return Change(
            provider=PROVIDER,
            agent=agent,
            kind=ChangeKind.DISABLE,
            summary=f"disable {agent} in GitHub ({why}): revoke its live tokens"
            + ("" if mode == SHARED else " and suspend its App's installation"),
            payload=GitHubChange(mode),
        )

    def _plan_dedicated(
        self, contract: Contract, observed: Observed, *, expired: bool
    ) -> list[Change[GitHubChange]]:
        agent = contract.name
        attrs = observed.attributes
        if not observed.exists:
            if expired:
                return []  # an expired contract is never provisioned
            room = self.app_room(agent)
            if room is not None and self.dedicated_apps() >= ORG_APP_LIMIT:
                raise ProviderError(PROVIDER, room, hint="agentctl github register --help")
            raise ProviderError(
                PROVIDER,
                f"no GitHub App is registered for {agent}: run "
                f"`agentctl github register {agent}` (then install the App on "
                f"{self._settings.organization} and apply again)"
                + (f". Note: {room}" if room else ""),
                hint=f"agentctl github register {agent} --contract PATH",
            )
        if expired:
            active = attrs.get("installation_id") is not None and not attrs.get("suspended")
            if active or self._live_tokens(agent):
                return [self._disable_change(agent, DEDICATED, "contract expired")]
            return []
        permissions, repositories = self._grant(contract)
        recorded = attrs.get("recorded") or {}
        desired: dict[str, Any] = {key: attrs.get(key) for key in _DEDICATED_KEYS}
        desired.update(grant_permissions=permissions, grant_repositories=repositories)
        reenable = observed.disabled and not self._killed_in_state(agent)
        if attrs.get("suspended") and not reenable and recorded.get("disabled"):
            desired["disabled"] = recorded["disabled"]
        changes: list[Change[GitHubChange]] = []
        if reenable or not _same(desired, recorded):
            fields = tuple(
                FieldChange(key, recorded.get(key), desired.get(key))
                for key in sorted(set(desired) | set(recorded))
                if not _same(desired.get(key), recorded.get(key))
            )
            summary = (
                f"re-enable App {desired['slug']} (its contract was renewed): unsuspend its installation"
                if reenable
                else f"record GitHub App {desired['slug']}: "
                + ", ".join(f.field for f in fields)
                + " (no change in GitHub)"
            )
            changes.append(
                Change(
                    provider=PROVIDER,
                    agent=agent,
                    kind=ChangeKind.UPDATE,
                    summary=summary,
                    fields=fields,
                    payload=GitHubChange(
                        DEDICATED,
                        desired,
                        tuple(int(i) for i in attrs.get("suspended_installations") or ())
                        if reenable
                        else (),
                    ),
                )
            )
        changes.extend(self._dedicated_drift(agent, attrs, permissions, repositories))
        changes.extend(
            Change(provider=PROVIDER, agent=agent, kind=ChangeKind.DRIFT, summary=text)
            for text in observed.drift
        )
        return changes

    def _killed_in_state(self, agent: str) -> bool:
        record = self._context.state.get_agent(agent)
        return record is not None and record.status.killed

    def _dedicated_drift(
        self,
        agent: str,
        attrs: Mapping[str, Any],
        permissions: Mapping[str, str],
        repositories: list[str] | None,
    ) -> list[Change[GitHubChange]]:
        def drift(summary: str, fields: Iterable[FieldChange] = ()) -> Change[GitHubChange]:
            return Change(
                provider=PROVIDER,
                agent=agent,
                kind=ChangeKind.DRIFT,
                summary=summary,
                fields=tuple(fields),
            )

        changes: list[Change[GitHubChange]] = []
        app_permissions = attrs.get("app_permissions") or {}
        if not _same(app_permissions, permissions):
            changes.append(
                drift(
                    f"App {attrs.get('slug')} has {_permission_text(app_permissions)}; the "
                    f"contract asks {_permission_text(permissions)}: update the App's "
                    f"permissions at {attrs.get('settings_url')}/permissions (GitHub has no "
                    "API to change App permissions; tokens stay limited to the contract)",
                    (
                        FieldChange(
                            f"app.permissions.{name}",
                            app_permissions.get(name),
                            permissions.get(name),
                        )
                        for name in sorted(set(app_permissions) | set(permissions))
                        if app_permissions.get(name) != permissions.get(name)
                    ),
                )
            )
        org = self._settings.organization or attrs.get("owner")
        if attrs.get("installation_id") is None:
            changes.append(
                drift(
                    f"App {attrs.get('slug')} not installed on {org}: install it at "
                    f"{attrs.get('html_url')}/installations/new"
                    + (f" (only for {', '.join(repositories)})" if repositories else "")
                )
            )
            return changes
        where = attrs.get("installation_html_url")
        held = attrs.get("installation_permissions") or {}
        excess = _excess_permissions(held, permissions)
        if excess:
            changes.append(
                drift(
                    f"installation on {attrs.get('account')} grants more than the contract: "
                    f"{_permission_text(excess)} (contract: {_permission_text(permissions)}); "
                    f"reduce it at {where} — tokens agentctl mints stay limited to the contract",
                    (
                        FieldChange(f"installation.permissions.{n}", level, permissions.get(n))
                        for n, level in sorted(excess.items())
                    ),
                )
            )
        lacking = _excess_permissions(permissions, held)
        if lacking:
            changes.append(
                drift(
                    f"installation on {attrs.get('account')} lacks "
                    f"{_permission_text(lacking)}: an owner of {attrs.get('account')} must "
                    f"accept the App's permissions at {where}; until then minting fails"
                )
            )
        if repositories is not None:
            account = str(attrs.get("account") or "").lower()
            foreign = [r for r in repositories if r.partition("/")[0].lower() != account]
            if foreign:
                changes.append(
                    drift(
                        f"{', '.join(foreign)} not owned by {attrs.get('account')}: the "
                        "installation cannot reach them; minting fails"
                    )
                )
            if attrs.get("repository_selection") == "all":
                changes.append(
                    drift(
                        f"installation on {attrs.get('account')} covers all repositories; "
                        f"the contract needs only {', '.join(repositories)}: select them at {where}",
                        [FieldChange("installation.repository_selection", "all", "selected")],
                    )
                )
            elif attrs.get("repositories") is not None:
                reached = {r.lower(): r for r in attrs["repositories"]}
                wanted = {r.lower() for r in repositories}
                extra = sorted(v for k, v in reached.items() if k not in wanted)
                missing = sorted(r for r in repositories if r.lower() not in reached)
                if extra:
                    changes.append(
                        drift(
                            f"installation on {attrs.get('account')} reaches repositories "
                            f"beyond the contract: {', '.join(extra)}; remove them at {where}",
                            (FieldChange(f"installation.repositories.{r}", r, None) for r in extra),
                        )
                    )
                if missing:
                    changes.append(
                        drift(
                            f"installation on {attrs.get('account')} does not reach "
                            f"{', '.join(missing)}: add them at {where}; until then minting fails"
                        )
                    )
        return changes

    def _plan_shared(
        self, contract: Contract, observed: Observed, *, expired: bool
    ) -> list[Change[GitHubChange]]:
        agent = contract.name
        if expired:
            if self._live_tokens(agent):
                return [self._disable_change(agent, SHARED, "contract expired")]
            return []
        attrs = observed.attributes
        permissions, repositories = self._grant(contract)
        conflicts = self._shared_conflicts(attrs, permissions, repositories)
        if conflicts:
            return [
                Change(provider=PROVIDER, agent=agent, kind=ChangeKind.CONFLICT, summary=text)
                for text in conflicts
            ]
        desired = {
            "mode": SHARED,
            "app_id": attrs["app_id"],
            "installation_id": attrs["installation_id"],
            "account": attrs["account"],
            "grant_permissions": permissions,
            "grant_repositories": repositories,
        }
        recorded = attrs.get("recorded")
        if recorded is not None and _same(desired, recorded):
            return []
        where = f"shared App {attrs['app_id']} (installation {attrs['installation_id']})"
        fields = tuple(
            FieldChange(key, (recorded or {}).get(key), desired[key])
            for key in _SHARED_KEYS
            if recorded is None or not _same(desired[key], recorded.get(key))
        )
        return [
            Change(
                provider=PROVIDER,
                agent=agent,
                kind=ChangeKind.CREATE if recorded is None else ChangeKind.UPDATE,
                summary=f"record the GitHub grant of {agent} on {where}: tokens limited to "
                f"{_permission_text(permissions)}"
                + (f" on {', '.join(repositories)}" if repositories else "")
                + " (no change in GitHub)",
                fields=fields,
                payload=GitHubChange(SHARED, desired),
            )
        ]

    def _shared_conflicts(
        self,
        attrs: Mapping[str, Any],
        permissions: Mapping[str, str],
        repositories: list[str] | None,
    ) -> list[str]:
        installation_id = int(attrs["installation_id"])
        where = f"the shared installation {installation_id} on {attrs['account']}"
        conflicts: list[str] = []
        if attrs.get("suspended"):
            conflicts.append(f"{where} is suspended: no agent can get a token from it")
        lacking = _excess_permissions(permissions, attrs.get("installation_permissions") or {})
        if lacking:
            conflicts.append(
                f"{where} lacks {_permission_text(lacking)}: minting would fail (422); grant them "
                f"at {attrs.get('installation_html_url')} or use dedicated mode"
            )
        if repositories:
            app = self._shared_app()
            client = self._http.as_app(app)
            for repository in repositories:
                owner, _, name = repository.partition("/")
                try:
                    found = self._http.call(
                        f"check that {where} reaches {repository}",
                        functools.partial(client.rest.apps.get_repo_installation, owner, name),
                    ).json()
                except GitHubApiError as exc:
                    if exc.status != 404:
                        raise
                    found = None
                if found is None or int(found["id"]) != installation_id:
                    conflicts.append(
                        f"{where} does not reach {repository}: minting would fail (422)"
                    )
        return conflicts

    # -- apply -----------------------------------------------------------------------

    def apply(self, change: Change[GitHubChange]) -> ActionResult:
        try:
            if change.kind in (ChangeKind.CREATE, ChangeKind.UPDATE):
                return self._record_change(change)
            if change.kind == ChangeKind.DISABLE:
                return self._shut(change.agent, "disable", mode=self._payload(change).mode)
            if change.kind == ChangeKind.REMOVE:
                return self._shut(change.agent, "remove", mode=self._payload(change).mode)
        except AgentctlError as exc:
            return ActionResult.failed(
                PROVIDER,
                change.agent,
                change.kind.value,
                exc,
                remaining=f"re-run `agentctl apply` to {change.kind.value} {change.agent} in GitHub",
            )
        return self._result(
            change.agent,
            change.kind.value,
            ok=False,
            detail=f"{change.kind.value} is not applied: {change.summary}",
        )

    @staticmethod
    def _payload(change: Change[GitHubChange]) -> GitHubChange:
        if change.payload is None:
            raise ProviderError(
                PROVIDER, f"the {change.kind.value} change of {change.agent} has no plan"
            )
        return change.payload

    def _record_change(self, change: Change[GitHubChange]) -> ActionResult:
        """CREATE/UPDATE: nothing changes in GitHub except re-enabling after a renewal;
        the engine records the returned attributes."""
        payload = self._payload(change)
        attributes = dict(payload.attributes)
        unsuspend = payload.unsuspend
        detail = "recorded (no change in GitHub)"
        if unsuspend:
            app = self._dedicated_app(change.agent, self._record(change.agent))
            if app is None:
                raise ProviderError(
                    PROVIDER, f"the private key of {change.agent}'s App is not in the secret store"
                )
            for installation_id in unsuspend:
                self._set_suspended(
                    app, installation_id, False, f"unsuspend installation {installation_id}"
                )
            detail = f"unsuspended installation {', '.join(map(str, unsuspend))}"
        return self._result(
            change.agent,
            change.kind.value,
            ok=True,
            detail=detail,
            resource_id=str(attributes["app_id"]),
            attributes=attributes,
        )

    # This provider's ActionResult: _result(agent, action, ok=..., detail=..., ...), checked by mypy.
    _result = functools.partial(ActionResult, PROVIDER)

    # -- kill / disable / remove ------------------------------------------------------

    def kill(self, agent: str, reason: str) -> ActionResult:
        """Revoke every live token of ``agent``, then (dedicated) suspend its App's
        installations, then read both back. Never raises for a GitHub failure:
        ``remaining`` says what is left, precisely."""
        try:
            return self._shut(agent, "kill", mode=None)
        except AgentctlError as exc:
            return ActionResult.failed(
                PROVIDER,
                agent,
                "kill",
                exc,
                remaining=f"run `agentctl kill {agent}` again, or suspend the App's installation "
                f"by hand at {self._org_settings_url(self._settings.organization)}",
            )

    def _evidence(self, agent: str) -> _Evidence:
        """Everything this machine can know about the agent's GitHub App and tokens."""
        evidence = _Evidence()
        try:
            evidence.record = self._record(agent)
            evidence.live = self._live_tokens(agent)
            evidence.agent_known = self._state_knows(agent)
        except StateError:
            evidence.notes.append("state store unreachable: tokens could not be looked up")
        recorded = dict(evidence.record.attributes) if evidence.record is not None else {}
        evidence.mode = recorded.get("mode") or self.mode
        if evidence.mode == DEDICATED:
            # The discovery by the agent's exact name: agentctl keeps every App
            # it registers under github/app/<agent>/ in the secret store.
            try:
                evidence.app = self._dedicated_app(agent, evidence.record)
                evidence.store_shared = self._context.secrets.shared
                evidence.store_answered = True
            except (SecretStoreError, ProviderError) as exc:  # no store, or a broken key
                evidence.notes.append(exc.message)
        return evidence

    def _state_knows(self, agent: str) -> bool:
        try:
            return self._context.state.get_agent(agent) is not None
        except DamagedStateRow:
            return True  # its row is there, only damaged (its resources still read)

    def _not_here(self, agent: str, action: str, evidence: _Evidence) -> ActionResult:
        """GitHub is not configured on this machine: never a ✓ for an agent that
        has, or may have, a GitHub App."""
        recorded = dict(evidence.record.attributes) if evidence.record is not None else {}
        if not evidence.known and evidence.agent_known:
            # The state knows this agent and records no App and no token: it
            # records every App agentctl registers (`github register`).
            return self._result(
                agent,
                action,
                ok=True,
                detail="no GitHub App or token recorded for it (GitHub is not configured here)",
            )
        setting = "github.app_id" if evidence.mode == SHARED else "github.organization"
        account = recorded.get("account") or recorded.get("owner")
        configure = (
            f"set {setting}"
            + (f": {account}" if account and evidence.mode == DEDICATED else "")
            + " (and github.base_url for GitHub Enterprise Server) in agentctl.yaml and run "
            f"`agentctl {action} {agent}` again"
        )
        if evidence.known:
            where = recorded.get("installation_html_url") or self._org_settings_url(
                account if isinstance(account, str) else None
            )
            what = (
                f"App {recorded.get('slug') or agent} (id {recorded.get('app_id')})"
                if recorded.get("app_id")
                else f"the GitHub App of {agent}"
            )
            tokens = (
                f"; its {len(evidence.live)} live token(s) stop working once it is suspended"
                if evidence.live
                else ""
            )
            return self._result(
                agent,
                action,
                ok=False,
                resource_id=evidence.record.resource_id if evidence.record else None,
                detail=f"GitHub is not configured here ({setting} is not set), so {what} "
                "could not be suspended",
                remaining=f"{configure}, or suspend {what}'s installation by hand at {where} "
                f"(Danger zone: Suspend){tokens}",
            )
        return self._result(
            agent,
            action,
            ok=False,
            undetermined=True,
            detail="GitHub is not configured here and nothing here says whether "
            f"{agent} has a GitHub App"
            + (f" ({'; '.join(evidence.notes)})" if evidence.notes else ""),
            remaining=f"{configure}; or look for an App named {self._named(agent)} at "
            f"{self.web_url}/organizations/ORG/settings/apps and suspend its installation "
            f"at {self.web_url}/organizations/ORG/settings/installations",
        )

    def _shut(self, agent: str, action: str, *, mode: str | None) -> ActionResult:
        """kill, DISABLE (expired) and REMOVE: tokens first, then (dedicated)
        suspension, then both read back.

        One failure never stops the rest; each becomes a ``remaining`` entry.
        """
        evidence = self._evidence(agent)
        if mode is not None:
            evidence.mode = mode
        mode = evidence.mode
        notes = evidence.notes
        record, live, app = evidence.record, evidence.live, evidence.app
        recorded = dict(record.attributes) if record is not None else {}
        if not self.configured():
            return self._not_here(agent, action, evidence)
        remaining: list[str] = []
        verified: list[str] = []
        revoked, blocked, dead, unheld = self._revoke_all(agent, live or [], mode, remaining)
        if dead:
            verified.append(f"{dead} token(s) answer 401")
        resource_id = record.resource_id if record is not None else None
        suspended: list[int] = []
        installed = 0
        if mode == SHARED:
            if live is None:
                remaining.append(
                    f"revoke {agent}'s GitHub tokens: with the state store unreachable they "
                    f"cannot be found; re-run `agentctl {action} {agent}` once it is back "
                    "(each expires within an hour of minting)"
                )
        elif app is not None:
            resource_id = str(app.app_id)
            installed, suspended = self._suspend_all(agent, app, remaining)
            if installed:
                verified.extend(self._verify_suspended(agent, app, remaining))
        elif record is not None or live:
            # No key where agentctl keeps every App it registers, but the
            # state says the agent has one: only a person can act now.
            remaining.append(
                f"suspend the installation of {agent}'s GitHub App by hand at "
                + (
                    recorded.get("installation_html_url")
                    or self._org_settings_url(self._settings.organization)
                )
                + f" (Danger zone: Suspend; its private key is not in the secret store as "
                f"{app_key_ref(agent)}: `agentctl secrets migrate --to aws-secretsmanager` on "
                "the machine that registered it shares it with the team)"
            )
        elif not evidence.agent_known and not (evidence.store_answered and evidence.store_shared):
            # Neither this state nor this (personal) secret store can rule an App out.
            org = self._settings.organization
            return self._result(
                agent,
                action,
                ok=False,
                undetermined=True,
                detail=f"this state store does not know {agent} and the secret store here is "
                "not the team's: its GitHub App, if any, could not be looked up",
                remaining=f"look for an App named {self._named(agent)} at "
                f"{self.web_url}/organizations/{org}/settings/apps and suspend its installation "
                f"at {self._org_settings_url(org)}, or use the team's state and secret store "
                "(see README: running agentctl as a team)",
            )

        parts: list[str] = []
        if revoked:
            parts.append(f"revoked {revoked} token{'s' if revoked != 1 else ''}")
        if blocked:
            parts.append(f"{blocked} token(s) refused while suspended (revive revokes them)")
        if unheld:
            parts.append(
                f"{unheld} token(s) whose value agentctl never received (an answer lost): "
                "held by the suspension until they expire; revive waits for that"
            )
        if suspended:
            parts.append(f"suspended installation {', '.join(map(str, suspended))}")
        if mode == SHARED and (revoked or resource_id):
            parts.append("shared installation left running")
        found = resource_id is not None or bool(live)
        already = found and not (revoked or blocked or unheld or suspended or remaining)
        if already:
            if mode == DEDICATED and not installed:
                parts.insert(0, "App not installed and no live tokens: nothing to revoke")
            else:
                parts.insert(0, f"already {'killed' if action == 'kill' else action + 'd'}")
        elif not found and not remaining:
            parts.append(
                f"no GitHub App or token of {agent}: none recorded"
                + (", no App key in the team's secret store" if evidence.store_shared else "")
            )
        if verified:
            parts.append("read back: " + ", ".join(verified))
        attributes: dict[str, Any] = {}
        if action == "disable" and record is not None:
            attributes = {**recorded, "disabled": "expired"}
        if action == "remove" and mode == DEDICATED and record is not None:
            parts.append(
                f"App {recorded.get('slug')} kept (agentctl never deletes an App): its owner "
                f"can delete it at {self._app_settings_url(recorded)}/advanced"
            )
        return self._result(
            agent,
            action,
            ok=not remaining,
            already=already,
            detail="; ".join(parts + notes),
            resource_id=resource_id,
            attributes=attributes,
            remaining="; ".join(remaining),
            verified=tuple(verified),
        )

    def _verify_suspended(self, agent: str, app: AppIdentity, remaining: list[str]) -> list[str]:
        """Read every installation of the App back: each must be suspended."""
        try:
            installations = self._installations(
                app, f"read back the installations of {agent}'s App"
            )
        except GitHubApiError as exc:
            remaining.append(
                f"confirm the installations of App {app.app_id} are suspended at "
                f"{self._org_settings_url(self._settings.organization)} ({exc.message})"
            )
            return []
        verified = []
        for installation in installations:
            if installation.get("suspended_at") is None:
                remaining.append(
                    f"installation {installation['id']} still reads as not suspended: suspend it "
                    f"at {installation.get('html_url')} or run `agentctl kill {agent}` again"
                )
            else:
                verified.append(f"installation {installation['id']} suspended")
        return verified

    def check_killed(self, agent: str) -> ActionResult:
        """Read only: is every installation of the agent's App still suspended,
        and is every live token it was minted dead? (ChecksKill)"""
        action = "check-kill"
        evidence = self._evidence(agent)
        if not evidence.known:
            return self._result(agent, action, ok=True, detail="no GitHub App or token recorded")
        if not self.configured():
            result = self._not_here(agent, action, evidence)
            return replace(result, undetermined=True, detail="cannot check: " + result.detail)
        undone: list[str] = []
        verified: list[str] = []
        if evidence.app is not None:
            try:
                installations = self._installations(
                    evidence.app, f"find the installations of {agent}'s App"
                )
            except GitHubApiError as exc:
                return self._result(
                    agent,
                    action,
                    ok=False,
                    undetermined=True,
                    detail=f"cannot check: {exc.reason()}",
                )
            for installation in installations:
                if installation.get("suspended_at") is None:
                    undone.append(f"installation {installation['id']} is not suspended")
                else:
                    verified.append(f"installation {installation['id']} suspended")
        elif evidence.mode == DEDICATED:
            return self._result(
                agent,
                action,
                ok=False,
                undetermined=True,
                detail=f"cannot check: the private key of {agent}'s App is not in the secret "
                f"store ({app_key_ref(agent)})",
            )
        if evidence.mode == SHARED or not verified:
            for credential in evidence.live or []:
                value = self._context.secrets.get(credential.secret_ref or token_ref(credential.id))
                if value is not None and self._token_alive(value, credential.id):
                    undone.append(f"token {credential.id} still works")
        if undone:
            return self._result(
                agent,
                action,
                ok=False,
                detail="; ".join(undone),
                verified=tuple(verified),
                remaining=f"run `agentctl kill {agent}` to restore the kill",
            )
        return self._result(
            agent,
            action,
            ok=True,
            detail=", ".join(verified) or "no live token",
            verified=tuple(verified),
        )

    def _token_alive(self, token: Secret, credential_id: str) -> bool:
        """Whether GitHub still accepts a token (401: revoked or expired; 403:
        its installation is suspended)."""
        try:
            self._http.call(
                f"read back token {credential_id}",
                lambda: self._http.send(
                    "GET",
                    "/installation/repositories",
                    token_authorization(token),
                    params={"per_page": 1},
                ),
            )
        except GitHubApiError as exc:
            if exc.status in (401, 403):
                return False
            raise
        return True

    def _suspend_all(
        self, agent: str, app: AppIdentity, remaining: list[str]
    ) -> tuple[int, list[int]]:
        """Suspend every installation of the agent's own App (it serves no one else).

        Returns (installations found, newly suspended ids).
        """
        try:
            installations = self._installations(app, f"find the installations of {agent}'s App")
        except GitHubApiError as exc:
            remaining.append(
                f"suspend the installations of App {app.app_id} at "
                f"{self._org_settings_url(self._settings.organization)} ({exc.message})"
            )
            return 0, []
        suspended: list[int] = []
        for installation in installations:
            if installation.get("suspended_at") is not None:
                continue
            installation_id = int(installation["id"])
            try:
                self._set_suspended(
                    app,
                    installation_id,
                    True,
                    f"suspend installation {installation_id} of {agent}'s App",
                )
                suspended.append(installation_id)
            except GitHubApiError as exc:
                remaining.append(
                    f"suspend installation {installation_id} at {installation.get('html_url')} "
                    f"({exc.message})"
                )
        return len(installations), suspended

    def _revoke_all(
        self, agent: str, live: list[CredentialRecord], mode: str, remaining: list[str]
    ) -> tuple[int, int, int, int]:
        """Revoke each live token, then read it back; one failure never stops the others.

        Returns (revoked, refused-while-suspended, read back dead, never received).
        A token refused because its installation is suspended is harmless in
        dedicated mode (revive revokes it right after unsuspending); in shared
        mode it is left for a human. One whose value agentctl never received (its
        answer was lost) is held by a dedicated installation's suspension until
        it expires; revive waits for that.
        """
        revoked = blocked = dead = unheld = 0
        for credential in live:
            label = f"token {credential.id} (fingerprint {credential.fingerprint})"
            expires = utc_text(credential.expires_at)
            try:
                outcome = self._revoke_credential_record(credential)
            except AgentctlError as exc:
                remaining.append(f"revoke {label} ({exc.message}); it expires at {expires}")
                continue
            if outcome in ("revoked", "invalid"):
                revoked += 1
                dead += 1
            elif outcome == "alive":
                remaining.append(
                    f"revoke {label}: GitHub accepted the revocation but still accepts the "
                    f"token; it expires at {expires}"
                )
            elif outcome == "suspended" and mode == DEDICATED:
                blocked += 1
            elif outcome == "missing" and mode == DEDICATED:
                # Its answer was lost (or the process died): no value to revoke, but
                # the suspension holds it until it expires; revive waits for that.
                unheld += 1
            elif outcome == "suspended":
                remaining.append(
                    f"revoke {label}: GitHub refuses to while the shared installation is "
                    f"suspended; it expires at {expires}"
                )
            else:
                remaining.append(
                    f"revoke {label}: its value is not in the secret store, so agentctl cannot; "
                    f"it expires at {expires}"
                )
        return revoked, blocked, dead, unheld

    def _revoke_credential_record(self, credential: CredentialRecord) -> str:
        """Revoke one recorded token and settle state and secret store.

        "revoked"/"invalid": gone (marked revoked, value deleted); "suspended":
        GitHub refuses it until the installation is unsuspended; "missing": no
        value stored, nothing agentctl can send.
        """
        ref = credential.secret_ref or token_ref(credential.id)
        value = self._context.secrets.get(ref)
        if value is None:
            return "missing"
        outcome = self._revoke_value(value, f"revoke token {credential.id}")
        if outcome == "revoked" and self._token_alive(value, credential.id):
            return "alive"  # kept: the next kill tries again
        if outcome != "suspended":
            self._context.state.mark_credential_revoked(credential.id, self._context.clock())
            self._context.secrets.delete(ref)
        return outcome

    # -- revive / rotate ------------------------------------------------------------

    def revive(self, agent: str, reason: str) -> ActionResult:
        record = self._record(agent)
        recorded = dict(record.attributes) if record is not None else {}
        mode = recorded.get("mode") or self.mode
        if mode == SHARED:
            return self._result(
                agent,
                "revive",
                ok=True,
                already=True,
                detail="shared installation was never suspended: new tokens can be minted",
            )
        if record is None and not self.configured():
            return self._result(
                agent, "revive", ok=True, already=True, detail="GitHub not configured"
            )
        app = self._dedicated_app(agent, record)
        if app is None:
            if record is None:
                return self._result(agent, "revive", ok=True, already=True, detail="no GitHub App")
            raise ProviderError(
                PROVIDER,
                f"the private key of {agent}'s App is not in the secret store ({app_key_ref(agent)})",
                hint=f"unsuspend it by hand at {self._org_settings_url(self._settings.organization)}",
            )
        # A token whose value agentctl never received (its answer was lost) cannot
        # be revoked: unsuspending would bring it back, so revive waits it out.
        unheld = [
            t
            for t in self._live_tokens(agent)
            if self._context.secrets.get(t.secret_ref or token_ref(t.id)) is None
        ]
        if unheld:
            latest = max(t.expires_at for t in unheld) + _EXPIRY_MARGIN
            return self._result(
                agent,
                "revive",
                ok=False,
                detail=f"{len(unheld)} token(s) minted before the kill were never received by "
                f"agentctl ({', '.join(t.id for t in unheld)}): they cannot be revoked, and "
                "unsuspending the installation would bring them back",
                resource_id=str(app.app_id),
                remaining=f"revive {agent} after {utc_text(latest)}, when they have expired",
            )
        unsuspended = []
        for installation in self._installations(app, f"find the installations of {agent}'s App"):
            if installation.get("suspended_at") is not None:
                self._set_suspended(
                    app,
                    int(installation["id"]),
                    False,
                    f"unsuspend installation {installation['id']}",
                )
                unsuspended.append(int(installation["id"]))
        # Tokens minted before the kill could not be revoked while suspended:
        # they must not come back to life with the installation.
        remaining: list[str] = []
        revoked, _, _, _ = self._revoke_all(agent, self._live_tokens(agent), DEDICATED, remaining)
        parts = (
            [f"unsuspended installation {', '.join(map(str, unsuspended))}"] if unsuspended else []
        )
        if revoked:
            parts.append(f"revoked {revoked} token(s) minted before the kill")
        return self._result(
            agent,
            "revive",
            ok=not remaining,
            already=not unsuspended,
            detail="; ".join(parts) or "not suspended",
            resource_id=str(app.app_id),
            remaining="; ".join(remaining),
        )

    def rotate(self, agent: str) -> ActionResult:
        return self.begin_rotate(agent)()

    def begin_rotate(self, agent: str) -> Callable[[], ActionResult]:
        """Fix which tokens go (every live one so far); the returned step mints a
        token with the recorded grant and uses it (the App, its key and the
        installation still work), then revokes those older tokens; stored values
        of expired tokens are dropped too. Tokens minted in between (running
        runs taking new ones during rotate's overlap) are spared."""
        record = self._record(agent)
        if record is None:
            done = self._result(
                agent, "rotate", ok=True, already=True, detail="no GitHub grant recorded"
            )
            return lambda: done
        older = self._live_tokens(agent)
        return functools.partial(self._finish_rotate, agent, record, older)

    def _finish_rotate(
        self, agent: str, record: ResourceRecord, older: list[CredentialRecord]
    ) -> ActionResult:
        attrs = dict(record.attributes)
        app, installation_id = self._app_and_installation(agent, record)
        minted = self._mint(
            agent,
            app,
            installation_id,
            attrs.get("grant_permissions") or {"metadata": "read"},
            attrs.get("grant_repositories"),
            f"mint a token to verify {agent}'s App",
            purpose="agentctl:rotate-verification",
        )
        remaining: list[str] = []
        try:
            client = self._http.as_token(minted.token)
            self._http.call(
                f"use a new token of {agent}",
                functools.partial(
                    client.rest.apps.list_repos_accessible_to_installation, per_page=1
                ),
            )
        finally:
            try:
                self._retire(minted, f"revoke the verification token of {agent}")
            except GitHubApiError as exc:
                remaining.append(
                    f"the verification token {minted.credential_id} (fingerprint "
                    f"{minted.token.fingerprint()}) could not be revoked ({exc.message}); it "
                    "stays recorded for kill and expires within the hour"
                )
        revoked, _, _, _ = self._revoke_all(
            agent, older, str(attrs.get("mode") or self.mode), remaining
        )
        self._drop_expired_values(agent)
        return self._result(
            agent,
            "rotate",
            ok=not remaining,
            detail=f"a new token worked; revoked {revoked} older token(s)",
            resource_id=record.resource_id,
            remaining="; ".join(remaining),
        )

    def _drop_expired_values(self, agent: str) -> None:
        now = self._context.clock()
        for credential in self._context.state.list_credentials(agent=agent, provider=PROVIDER):
            if credential.revoked_at is None and _surely_expired(credential.expires_at, now):
                self._context.secrets.delete(credential.secret_ref or token_ref(credential.id))

    # -- credentials -------------------------------------------------------------------

    def _app_and_installation(
        self, agent: str, record: ResourceRecord | None, mode: str | None = None
    ) -> tuple[AppIdentity, int]:
        recorded = dict(record.attributes) if record is not None else {}
        if (recorded.get("mode") or mode or self.mode) == SHARED:
            if not self.configured(SHARED):
                raise self._not_configured(SHARED)
            return self._shared_app(), int(self._settings.installation_id or 0)
        if record is None:
            if not self.configured():
                raise self._not_configured()
            raise ProviderError(
                PROVIDER,
                f"no GitHub App is registered for {agent}",
                hint=f"agentctl github register {agent}, install it, then agentctl apply",
            )
        app = self._dedicated_app(agent, record)
        if app is None:
            raise ProviderError(
                PROVIDER,
                f"the private key of {agent}'s App is not in the secret store ({app_key_ref(agent)})",
                hint=f"agentctl github rotate-key {agent} --private-key FILE",
            )
        installation_id = recorded.get("installation_id")
        if installation_id is None:
            found = self._pick_installation(
                self._installations(app, f"find the installation of {agent}'s App"),
                recorded.get("owner"),
            )
            if found is None:
                raise ProviderError(
                    PROVIDER,
                    f"App {recorded.get('slug')} of {agent} is not installed on "
                    f"{self._settings.organization or recorded.get('owner')}",
                    hint=f"install it at {recorded.get('html_url')}/installations/new",
                )
            installation_id = found["id"]
        return app, int(installation_id)

    def issue_credentials(self, contract: Contract, run: RunContext) -> IssuedCredential:
        agent = contract.name
        if not contract.grants_to(PROVIDER):
            raise ProviderError(PROVIDER, f"the contract of {agent} grants nothing in GitHub")
        record = self._record(agent)
        shared = self.mode_of(contract, record) == SHARED
        if shared and self._killed_in_state(agent):
            # Dedicated: GitHub refuses a suspended installation itself. Shared: a
            # kill suspends nothing, so the recorded status is the only guard here.
            raise ProviderError(
                PROVIDER,
                f"{agent} is killed: no GitHub token issued",
                hint=f"`agentctl revive {agent} --reason ...` if it should run again",
            )
        app, installation_id = self._app_and_installation(
            agent, record, SHARED if shared else DEDICATED
        )
        permissions, repositories = self._grant(contract)
        minted = self._mint(
            agent,
            app,
            installation_id,
            permissions,
            repositories,
            f"mint a GitHub token for {agent}",
            purpose=run.trigger or "agentctl:run",
            on_behalf_of=run.on_behalf_of,
        )
        token, credential_id = minted.token, minted.credential_id
        issued_at, expires_at = minted.issued_at, minted.expires_at
        where = f" on {', '.join(repositories)}" if repositories else ""
        return IssuedCredential(
            provider=PROVIDER,
            credential_id=credential_id,
            fingerprint=token.fingerprint(),
            issued_at=issued_at,
            expires_at=expires_at,
            # gh reads GH_TOKEN, most other tools GITHUB_TOKEN; the API URL is not
            # secret and points both at GitHub Enterprise Server or the emulator.
            environment={
                "GITHUB_TOKEN": token,
                "GH_TOKEN": token,
                "GITHUB_API_URL": self.base_url,
            },
            description=f"GitHub installation token of {agent} ({_permission_text(permissions)}{where})",
        )

    def revoke_credential(self, agent: str, credential_id: str) -> ActionResult:
        matches = [
            c
            for c in self._context.state.list_credentials(agent=agent, provider=PROVIDER)
            if c.id == credential_id
        ]
        if not matches:
            return self._result(
                agent,
                "revoke",
                ok=False,
                detail=f"no GitHub credential {credential_id} recorded for {agent}",
                remaining=f"`agentctl kill {agent}` revokes every token of {agent}",
            )
        credential = matches[0]
        if credential.revoked_at is not None or _surely_expired(
            credential.expires_at, self._context.clock()
        ):
            self._context.secrets.delete(credential.secret_ref or token_ref(credential_id))
            return self._result(
                agent, "revoke", ok=True, already=True, detail="already revoked or expired"
            )
        outcome = self._revoke_credential_record(credential)
        if outcome == "missing":
            return self._result(
                agent,
                "revoke",
                ok=False,
                detail=f"token {credential_id} has no value in the secret store",
                remaining=f"it expires at {utc_text(credential.expires_at)}; `agentctl kill {agent}` "
                "suspends the agent's installation at once",
            )
        if outcome == "suspended":
            # Not revoked, only refused: it stays live in state so that revive
            # revokes it right after unsuspending the installation.
            return self._result(
                agent,
                "revoke",
                ok=False,
                detail=f"token {credential_id} is refused while the installation is suspended, "
                "but GitHub does not let it be revoked until then",
                remaining=f"`agentctl revive {agent}` revokes it; otherwise it expires at "
                f"{utc_text(credential.expires_at)}",
            )
        if outcome == "invalid":
            return self._result(
                agent,
                "revoke",
                ok=True,
                already=True,
                detail=f"token {credential_id} was already invalid",
            )
        return self._result(agent, "revoke", ok=True, detail=f"revoked token {credential_id}")

    # -- registration (agentctl github register / rotate-key) --------------------------

    def app_manifest(
        self,
        contract: Contract,
        *,
        webhook_url: str | None = None,
        events: Iterable[str] = (),
        redirect_url: str | None = None,
    ) -> dict[str, Any]:
        """The manifest of ``contract``'s App: named after the agent, its permissions
        exactly the contract's, private, no webhook or events unless asked for."""
        events = sorted(set(events))
        if events and not webhook_url:
            raise ProviderError(
                PROVIDER,
                "webhook events need a webhook",
                hint="pass --webhook-url URL together with --event",
            )
        if self.mode_of(contract) != DEDICATED:
            raise ProviderError(
                PROVIDER,
                f"{contract.name} uses the shared GitHub App (github mode shared): the shared "
                "App is configured, not registered per agent",
            )
        org = self._settings.organization
        if not org:
            raise self._not_configured()
        if self.dedicated_apps() >= ORG_APP_LIMIT and self._record(contract.name) is None:
            raise ProviderError(PROVIDER, str(self.app_room(contract.name)))
        if not contract.grants_to(PROVIDER):
            raise ProviderError(
                PROVIDER,
                f"the contract of {contract.name} has no github permissions",
                hint="add a `github:` grant under permissions",
            )
        permissions, _ = self._grant(contract)
        return build_manifest(
            contract,
            permissions,
            name=self.app_name(contract.name),
            owner_url=f"{self.web_url}/{org}",
            events=events,
            webhook_url=webhook_url,
            redirect_url=redirect_url,
        )

    def app_name(self, agent: str) -> str:
        """The name ``agent``'s dedicated App gets (github.app_name_template);
        refused when GitHub would refuse it."""
        template, org = self._settings.app_name_template, self._settings.organization
        problem = name_problem(template, org, agent)
        if problem:
            raise ProviderError(
                PROVIDER,
                f"{agent}: {problem}",
                hint="`agentctl validate` checks every contract's App name",
            )
        return app_name(template, org, agent)

    def _named(self, agent: str) -> str:
        """The App name to look for by hand (``ORG`` when the organization is unknown)."""
        template, org = self._settings.app_name_template, self._settings.organization
        if template_problem(template):
            return agent
        return template.format(org=org.lower() if org else "ORG", name=agent)

    def app_slug(self, agent: str) -> str:
        """The slug GitHub gives ``agent``'s App (``<slug>[bot]`` in its logs)."""
        return app_slug(self.app_name(agent))

    def start_registration(self, agent: str, manifest: Mapping[str, Any]) -> ManifestForm:
        """The page that POSTs ``manifest`` to the organization's "new App" page; its
        ``state`` is kept in the secret store until the code comes back."""
        form = manifest_form(
            manifest, f"{self.web_url}/organizations/{self._settings.organization}"
        )
        # Only its digest is kept: the state itself is in the page and the URL.
        self._context.secrets.put(manifest_state_ref(agent), Secret(_state_digest(form.state)))
        return form

    def pending_agent(self, agents: Iterable[str], state: str) -> str | None:
        """Which of ``agents`` has a registration pending with ``state`` (the codes of
        a multi-agent registration come back in any order)."""
        digest = _state_digest(state)
        for agent in agents:
            pending = self._context.secrets.get(manifest_state_ref(agent))
            if pending is not None and hmac.compare_digest(pending.reveal(), digest):
                return agent
        return None

    def needs_app(self, contract: Contract) -> bool:
        """Whether ``contract``'s agent should get a dedicated App it does not have yet."""
        return (
            contract.grants_to(PROVIDER)
            and self.mode_of(contract, self._record(contract.name)) == DEDICATED
            and self._record(contract.name) is None
            and self._context.secrets.get(app_id_ref(contract.name)) is None
        )

    def _check_state(self, agent: str, state: str) -> None:
        """Refuse a code that does not come back with the state of the registration
        agentctl started for ``agent`` (before the code is used)."""
        pending = self._context.secrets.get(manifest_state_ref(agent))
        if pending is None:
            raise RegistrationRefused(
                f"no registration of {agent} is pending: the code was not used",
                hint=f"start one with `agentctl github register {agent}`, then pass the "
                "redirect URL GitHub sends back",
                detail={"reason": "no-pending-registration"},
            )
        if not hmac.compare_digest(pending.reveal(), _state_digest(state)):
            raise RegistrationRefused(
                f"the state GitHub sent back with this code is not the one of the registration "
                f"agentctl started for {agent}: the code comes from another registration or a "
                "forged link, and was not used",
                hint=f"run `agentctl github register {agent}` again and use the redirect URL "
                "of that registration",
                detail={"reason": "state-mismatch"},
            )

    def registration_intent(self, agent: str) -> IntentRecord | None:
        """The registration of ``agent`` an earlier run began and did not finish
        (it recorded the intent, then died around the manifest conversion)."""
        return self._context.state.get_intent(agent, PROVIDER, REGISTER_INTENT)

    def _refuse_if_registered(self, agent: str) -> None:
        existing = self._record(agent)
        stored_id = self._context.secrets.get(app_id_ref(agent))
        if existing is not None or stored_id is not None:
            known = existing.resource_id if existing is not None else stored_id
            raise ProviderError(
                PROVIDER,
                f"{agent} already has GitHub App {known}: nothing was registered",
                hint=f"`agentctl github rotate-key {agent} --private-key FILE` replaces its key",
            )

    def complete_registration(
        self,
        contract: Contract,
        code: str,
        state: str,
        *,
        audit: Callable[[RegisteredApp], None] | None = None,
    ) -> RegisteredApp:
        """Exchange a manifest ``code`` for the App, check it against the contract and
        the configured organization, store its secrets and record it in state.

        ``state`` must be the one :meth:`start_registration` kept for this agent;
        the code is used only then. The conversion cannot be repeated (the code
        works once and the App's key is shown once), so an intent is recorded
        before it: a run killed around it is finished by the next one
        (:meth:`resume_registration`). ``audit`` records the registration in the
        same state transaction that records the App and settles the intent."""
        agent = contract.name
        manifest = self.app_manifest(contract)
        org = str(self._settings.organization)
        state_store = self._context.state
        intent = self.registration_intent(agent)
        if intent is None:
            self._refuse_if_registered(agent)
        else:
            finished = self._finish_with_stored_key(agent, intent, audit)
            if finished is not None:
                return finished
        self._check_state(agent, state)
        if intent is None:
            state_store.put_intent(
                agent,
                PROVIDER,
                REGISTER_INTENT,
                {"name": manifest["name"], "slug": app_slug(manifest["name"]), "owner": org},
            )
        # Keep the client referenced: githubkit's namespaces hold it weakly.
        client = self._http.client(None)
        try:
            body: dict[str, Any] = self._http.call(
                "convert the App manifest code",
                functools.partial(client.rest.apps.create_from_manifest, code),
                idempotent=False,  # a lost answer holds the only copy of the App's key
            ).json()
        except GitHubApiError as exc:
            if exc.outcome_unknown:
                raise ProviderError(
                    PROVIDER,
                    exc.message,
                    hint=f"run `agentctl github register {agent} --code ...` again with the same "
                    "redirect URL: the registration is recorded as under way, and the next run "
                    "finds the App if GitHub created it",
                ) from None
            if exc.status not in (404, 422):
                if intent is None:
                    # GitHub refused it or was never reached: nothing was created.
                    state_store.clear_intent(agent, PROVIDER, REGISTER_INTENT)
                raise
            if intent is not None:
                # The interrupted run used the code: GitHub created the App and
                # its key was lost with that process.
                return self._adopt_interrupted(agent, intent, audit)
            state_store.clear_intent(agent, PROVIDER, REGISTER_INTENT)
            self._context.secrets.delete(manifest_state_ref(agent))
            raise ProviderError(
                PROVIDER,
                f"GitHub does not accept this code ({exc.status}): a code works once, within an "
                "hour of creating the App; nothing was registered",
                hint=f"start again with `agentctl github register {agent}`",
            ) from None
        # The code is used: this registration's state is spent.
        self._context.secrets.delete(manifest_state_ref(agent))
        info = _registered_info(body)
        settings_url = self._app_settings_url(info)
        if info["owner"].lower() != org.lower() or info["owner_type"] != "Organization":
            state_store.clear_intent(agent, PROVIDER, REGISTER_INTENT)
            # Someone else's App (a personal one, or another organization's): its
            # key is not stored, so agentctl can never act as it.
            raise RegistrationRefused(
                f"the App created from this code, {info['slug']} (id {info['app_id']}), is owned "
                f"by {info['owner']} ({info['owner_type']}), not by the organization {org}: "
                "its key was not stored",
                hint=f"register again from {org}'s settings (the page `agentctl github register "
                f"{agent}` writes posts there); ask {info['owner']} to delete {settings_url}",
                detail={
                    "reason": "foreign-owner",
                    "app_id": info["app_id"],
                    "slug": info["slug"],
                    "owner": info["owner"],
                    "owner_type": info["owner_type"],
                    "expected_owner": org,
                },
            )
        wanted = manifest["default_permissions"]
        if info["name"] != manifest["name"] or not _same(info["app_permissions"], wanted):
            state_store.clear_intent(agent, PROVIDER, REGISTER_INTENT)
            raise ProviderError(
                PROVIDER,
                f"the App created from this code is {info['name']!r} with "
                f"{_permission_text(info['app_permissions'])}; the contract needs "
                f"{manifest['name']!r} with "
                f"{_permission_text(wanted)}: its key was not stored",
                hint=f"delete it at {settings_url}/advanced and register again without editing "
                "the name or permissions",
            )
        pem = Secret(str(body["pem"]))
        refs = [app_key_ref(agent), app_id_ref(agent)]
        secrets_store = self._context.secrets
        # The key first: GitHub shows it only in this answer.
        secrets_store.put(app_key_ref(agent), pem)
        secrets_store.put(app_id_ref(agent), Secret(str(info["app_id"])))
        for field_name, suffix in (
            ("webhook_secret", "webhook-secret"),
            ("client_secret", "client-secret"),
        ):
            if body.get(field_name):
                ref = f"github/app/{agent}/{suffix}"
                secrets_store.put(ref, Secret(str(body[field_name])))
                refs.append(ref)
        # GitHub accepts the stored key for this App before it is recorded as usable.
        app = AppIdentity(info["app_id"], self._http.parse_key(pem, "the App's private key"))
        self._get_app(app, f"verify the private key of App {info['slug']}")
        return self._record_registration(
            agent,
            info,
            refs,
            audit,
            # GitHub made the key in this very conversion: its age starts now.
            key=app.key,
            resumed_from=intent.created_at.isoformat() if intent is not None else None,
        )

    def resume_registration(
        self, agent: str, *, audit: Callable[[RegisteredApp], None] | None = None
    ) -> RegisteredApp | None:
        """Finish the registration of ``agent`` an interrupted run left (`github
        register` step 1 calls this before starting a new one, whose App name
        GitHub would refuse as taken). None: nothing was pending, or GitHub
        confirms the App was never created (the intent is settled)."""
        intent = self.registration_intent(agent)
        if intent is None:
            return None
        finished = self._finish_with_stored_key(agent, intent, audit)
        if finished is not None:
            return finished
        body, signed_in = self._app_by_slug(str(intent.detail["slug"]))
        if body is None and signed_in:
            # GitHub shows a signed-in caller its organization's private Apps too:
            # the interrupted run never got as far as creating it.
            self._context.state.clear_intent(agent, PROVIDER, REGISTER_INTENT)
            return None
        return self._adopt_interrupted(agent, intent, audit, body=body, signed_in=signed_in)

    def _finish_with_stored_key(
        self, agent: str, intent: IntentRecord, audit: Callable[[RegisteredApp], None] | None
    ) -> RegisteredApp | None:
        """The interrupted run stored the App's key and id, then died before the
        state recorded the App: verify the key with GitHub and record it."""
        pem = self._context.secrets.get(app_key_ref(agent))
        stored = self._context.secrets.get(app_id_ref(agent))
        if pem is None or stored is None or not stored.reveal().isdigit():
            return None
        app = AppIdentity(int(stored.reveal()), self._http.parse_key(pem, "the stored key"))
        body = self._get_app(app, f"verify the stored private key of {agent}'s App")
        info = _registered_info(body)
        self._check_adoptable(agent, intent, info)
        refs = [app_key_ref(agent), app_id_ref(agent)] + [
            f"github/app/{agent}/{suffix}"
            for suffix in ("webhook-secret", "client-secret")
            if self._context.secrets.get(f"github/app/{agent}/{suffix}") is not None
        ]
        return self._record_registration(
            agent, info, refs, audit, key=app.key, resumed_from=intent.created_at.isoformat()
        )

    def _check_adoptable(self, agent: str, intent: IntentRecord, info: Mapping[str, Any]) -> None:
        """The App found is the one the interrupted registration was creating."""
        org = str(intent.detail.get("owner") or self._settings.organization)
        if (
            info["slug"] != intent.detail.get("slug")
            or info["owner"].lower() != org.lower()
            or info["owner_type"] != "Organization"
        ):
            raise ProviderError(
                PROVIDER,
                f"the registration of {agent} begun {utc_text(intent.created_at)} was to create "
                f"App {intent.detail.get('slug')} owned by {org}; GitHub shows "
                f"{info['slug']} (id {info['app_id']}) owned by {info['owner']}: agentctl does "
                "not adopt it",
                hint=f"check {self._app_settings_url(info)}; delete the wrong App there, then run "
                f"`agentctl github register {agent}` again",
            )

    def _app_by_slug(self, slug: str) -> tuple[dict[str, Any] | None, bool]:
        """``GET /apps/{slug}``, signed in with the operator's GitHub token when the
        environment has one (GitHub shows a private App only to a signed-in
        request); the App (None: 404) and whether the request was signed in."""
        import os

        from agentctl.identity import GITHUB_TOKEN_VARIABLES

        token = next((os.environ[v] for v in GITHUB_TOKEN_VARIABLES if os.environ.get(v)), None)
        client = self._http.client(None) if token is None else self._http.as_token(Secret(token))
        try:
            body: dict[str, Any] = self._http.call(
                f"look up App {slug}", functools.partial(client.rest.apps.get_by_slug, slug)
            ).json()
        except GitHubApiError as exc:
            if exc.status == 404:
                return None, token is not None
            raise
        return body, token is not None

    def _adopt_interrupted(
        self,
        agent: str,
        intent: IntentRecord,
        audit: Callable[[RegisteredApp], None] | None,
        *,
        body: dict[str, Any] | None = None,
        signed_in: bool | None = None,
    ) -> RegisteredApp:
        """GitHub created the App for a run that died before storing its key:
        record the App (its key lost) so `rotate-key` can install a new one."""
        slug = str(intent.detail["slug"])
        org = str(intent.detail.get("owner") or self._settings.organization)
        if signed_in is None:
            body, signed_in = self._app_by_slug(slug)
        settings_url = self._app_settings_url({"owner": org, "slug": slug})
        if body is None:
            since = utc_text(intent.created_at)
            if signed_in:
                self._context.state.clear_intent(agent, PROVIDER, REGISTER_INTENT)
                raise ProviderError(
                    PROVIDER,
                    f"the registration of {agent} begun {since} was interrupted and GitHub has "
                    f"no App {slug}: nothing was registered",
                    hint=f"start again with `agentctl github register {agent}`",
                )
            raise ProviderError(
                PROVIDER,
                f"the registration of {agent} begun {since} was interrupted before its App's "
                f"private key was stored, and GitHub does not show App {slug} to a request "
                "that is not signed in (Apps are private)",
                hint=f"set GH_TOKEN to your GitHub token (`gh auth token`) and run this again; or "
                f"open {settings_url}: if the App is there, generate a private key under "
                f"'Private keys' and run `agentctl github rotate-key {agent} --private-key FILE "
                "--app-id ID` with the App ID shown there",
            )
        info = _registered_info(body)
        self._check_adoptable(agent, intent, info)
        return self._record_registration(
            agent, info, [], audit, key_stored=False, resumed_from=intent.created_at.isoformat()
        )

    def _record_registration(
        self,
        agent: str,
        info: Mapping[str, Any],
        refs: list[str],
        audit: Callable[[RegisteredApp], None] | None,
        *,
        key: RSAPrivateKey | None = None,
        key_stored: bool = True,
        resumed_from: str | None = None,
    ) -> RegisteredApp:
        """Record the App (and date its stored ``key``), audit it and settle the
        intent: one state transaction."""
        attributes = {
            **info,
            **dict.fromkeys(_INSTALLATION_KEYS),
            "grant_permissions": None,
            "grant_repositories": None,
        }
        registered = RegisteredApp(
            agent=agent,
            app_id=info["app_id"],
            slug=info["slug"],
            html_url=info["html_url"],
            owner=info["owner"],
            settings_url=self._app_settings_url(info),
            install_url=f"{info['html_url']}/installations/new",
            permissions=info["app_permissions"],
            secret_refs=tuple(refs),
            attributes=attributes,
            key_stored=key_stored,
            resumed_from=resumed_from,
        )
        state_store = self._context.state
        with state_store.batch():
            state_store.put_resource(agent, PROVIDER, str(info["app_id"]), attributes)
            if key is not None:
                self._record_key(agent, int(info["app_id"]), key)
            if audit is not None:
                audit(registered)
            state_store.clear_intent(agent, PROVIDER, REGISTER_INTENT)
        return registered

    def rotate_key(self, agent: str, pem: Secret, *, app_id: int | None = None) -> RotatedKey:
        """Install a new private key for ``agent``'s App, only after a JWT signed with
        it is accepted by ``GET /app`` for the same App.

        With no App recorded but an interrupted registration pending, the App
        it created is adopted (found by slug, or by ``app_id`` from its settings
        page) once the new key proves to be its key; :attr:`RotatedKey.adopted`
        then carries what to record."""
        record = self._record(agent)
        stored = self._context.secrets.get(app_id_ref(agent))
        # An App recorded nowhere but an interrupted registration's: adopted with this key.
        intent = self.registration_intent(agent) if record is None else None
        if record is not None and record.attributes.get("app_id") is not None:
            known = int(record.attributes["app_id"])
        elif stored is not None and stored.reveal().isdigit():
            known = int(stored.reveal())
        elif intent is not None:
            known = app_id if app_id is not None else self._interrupted_app_id(agent, intent)
        else:
            raise ProviderError(
                PROVIDER,
                f"no GitHub App is recorded for {agent}",
                hint=f"agentctl github register {agent}",
            )
        if app_id is not None and app_id != known:
            raise ProviderError(
                PROVIDER,
                f"{agent}'s App is {known}, not {app_id}: nothing was changed",
                hint=f"drop --app-id, or check {app_id_ref(agent)}",
            )
        app = AppIdentity(known, self._http.parse_key(pem, "the new private key"))
        info = self._get_app(app, f"verify the new private key of App {known}")
        adopted: RegisteredApp | None = None
        if intent is not None:
            found = _registered_info(info)
            self._check_adoptable(agent, intent, found)
            adopted = RegisteredApp(
                agent=agent,
                app_id=known,
                slug=found["slug"],
                html_url=found["html_url"],
                owner=found["owner"],
                settings_url=self._app_settings_url(found),
                install_url=f"{found['html_url']}/installations/new",
                permissions=found["app_permissions"],
                secret_refs=(app_key_ref(agent), app_id_ref(agent)),
                attributes=found,
                resumed_from=intent.created_at.isoformat(),
            )
        self._context.secrets.put(app_key_ref(agent), pem)
        self._context.secrets.put(app_id_ref(agent), Secret(str(known)))
        # The key was generated on the App's settings page moments before (GitHub's
        # API neither makes nor lists App keys): its age starts when it is stored.
        recorded = self._record_key(agent, known, app.key)
        return RotatedKey(
            agent=agent,
            app_id=known,
            slug=info["slug"],
            secret_ref=app_key_ref(agent),
            key_fingerprint=str(recorded.fingerprint),
            settings_url=self._app_settings_url(
                {
                    "owner": info["owner"]["login"],
                    "owner_type": info["owner"].get("type"),
                    "slug": info["slug"],
                }
            ),
            adopted=adopted,
        )

    def record_adopted(
        self, adopted: RegisteredApp, audit: Callable[[RegisteredApp], None] | None
    ) -> RegisteredApp:
        """Record an App `rotate-key` adopted from an interrupted registration."""
        return self._record_registration(
            adopted.agent,
            adopted.attributes,
            list(adopted.secret_refs),
            audit,
            resumed_from=adopted.resumed_from,
        )

    def _interrupted_app_id(self, agent: str, intent: IntentRecord) -> int:
        slug = str(intent.detail["slug"])
        body, signed_in = self._app_by_slug(slug)
        if body is None:
            settings_url = self._app_settings_url(
                {"owner": intent.detail.get("owner"), "slug": slug}
            )
            raise ProviderError(
                PROVIDER,
                f"no GitHub App is recorded for {agent}; its registration begun "
                f"{utc_text(intent.created_at)} was interrupted, and GitHub does not show App "
                f"{slug}" + ("" if signed_in else " to a request that is not signed in"),
                hint=f"pass --app-id ID with the App ID shown at {settings_url}"
                + ("" if signed_in else ", or set GH_TOKEN to your GitHub token (`gh auth token`)"),
            )
        return int(body["id"])

    def _record_key(self, agent: str, app_id: int, key: RSAPrivateKey) -> LongLivedSecretRecord:
        from agentctl.state.records import LongLivedSecretRecord

        now = self._context.clock()
        return self._context.state.put_long_lived_secret(
            LongLivedSecretRecord(
                agent=agent,
                provider=PROVIDER,
                kind=KEY_KIND,
                key_id=str(app_id),
                fingerprint=key_fingerprint(key),
                created_at=now,
                tracked_since=now,
            )
        )

    def long_lived_secrets(self, rows: SecretRows | None = None) -> list[LongLivedSecret]:
        """Each dedicated App's private key, as the state dates it: GitHub App keys
        never expire, so only their age says when one is due."""
        return [
            LongLivedSecret(
                agent=row.agent,
                provider=PROVIDER,
                kind=row.kind,
                id=row.key_id,
                fingerprint=row.fingerprint,
                created_at=row.created_at,
                tracked_since=row.tracked_since,
                expires_at=row.expires_at,
            )
            for row in (self._context.state if rows is None else rows).list_long_lived_secrets(
                provider=PROVIDER
            )
            if row.kind == KEY_KIND
        ]

    def replacement_steps(self, secret: LongLivedSecret) -> str:
        agent = secret.agent
        record = self._record(agent)
        attrs = record.attributes if record is not None else {}
        if attrs.get("slug"):
            page = self._app_settings_url(attrs)
        else:
            page = f"{self.web_url}/organizations/{self._settings.organization}/settings/apps"
        old = f"the old key ({secret.fingerprint})" if secret.fingerprint else "the old key"
        return (
            f'generate a new private key at {page} ("Private keys" > "Generate a private '
            f'key"), run `agentctl github rotate-key {agent} --private-key FILE` with the '
            f"downloaded .pem, then delete {old} on the same page: GitHub keeps every key "
            "of an App valid until it is deleted there"
        )

    def status(self, agent: str) -> AppStatus:
        """What ``agentctl github status`` shows: App, installation, suspended, live tokens."""
        observed = self.observe(agent)
        attrs = observed.attributes
        key = next((k for k in self.long_lived_secrets() if k.agent == agent), None)
        at_least = key.min_age_days(self._context.clock()) if key is not None else None
        return AppStatus(
            agent=agent,
            mode=attrs.get("mode") or self.mode,
            registered=observed.exists,
            app_id=attrs.get("app_id"),
            slug=attrs.get("slug"),
            html_url=attrs.get("html_url"),
            installation_id=attrs.get("installation_id"),
            account=attrs.get("account"),
            installation_html_url=attrs.get("installation_html_url"),
            suspended=bool(attrs.get("suspended")),
            live_tokens=len(self._live_tokens(agent)),
            drift=tuple(observed.drift),
            private_key=key,
            key_age_days=None if key is None or key.created_at is None else at_least,
            key_at_least_days=None if key is None else at_least,
            interrupted_registration=(
                None
                if observed.exists or (intent := self.registration_intent(agent)) is None
                else intent.created_at.isoformat()
            ),
        )
