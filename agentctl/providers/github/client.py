"""GitHub over HTTP for the provider: clients, App JWTs, retries and errors.

Every call goes through :meth:`GitHubHttp.call`: 5xx, 429 and rate-limit
403s are retried with exponential backoff and jitter (honouring ``retry-after``
and ``x-ratelimit-reset``, capped), up to ``github.max_attempts``; anything else
becomes a :class:`GitHubApiError` that names the endpoint and the status, never
a githubkit traceback. githubkit, httpx, PyJWT and cryptography are imported
only when GitHub is first called.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agentctl.errors import ProviderError
from agentctl.providers.github import PROVIDER
from agentctl.providers.github.settings import GitHubSettings
from agentctl.secrets import Secret

if TYPE_CHECKING:
    from githubkit import GitHub, Response

# The REST API version every supported GitHub Enterprise Server release and
# github.com accept; the endpoints used here are identical in later versions.
API_VERSION = "2022-11-28"
HTTP_TIMEOUT_SECONDS = 30.0
# GitHub accepts App JWTs valid for at most 10 minutes; an `iat` 60 s in the
# past absorbs clock drift between this host and GitHub.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}


class GitHubApiError(ProviderError):
    """GitHub answered with an error (after retries); ``status`` is the HTTP status,
    None when GitHub could not be reached at all."""

    def __init__(self, message: str, *, status: int | None, hint: str | None = None) -> None:
        super().__init__(PROVIDER, message, hint=hint)
        self.status = status

    @property
    def suspended(self) -> bool:
        return self.status == 403 and "suspended" in self.message.lower()


@dataclass(frozen=True)
class AppIdentity:
    """An App agentctl can authenticate as: its id and its parsed private key."""

    app_id: int
    key: Any  # cryptography RSAPrivateKey, parsed once (parsing costs ~60 ms)


def times(count: int) -> str:
    return _TIMES.get(count, f"{count} times")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@functools.cache
def _authorization_class() -> type[Any]:
    """A githubkit auth strategy sending one fixed ``Authorization`` header.

    Built on first use (githubkit and httpx are imported lazily). agentctl signs
    App JWTs itself with a key parsed once, rather than letting githubkit parse
    the PEM for every JWT and cache tokens process-wide by App id.
    """
    import httpx
    from githubkit.auth.base import BaseAuthStrategy

    class _HeaderAuth(httpx.Auth):
        def __init__(self, value: Secret) -> None:
            self._value = value

        def auth_flow(self, request: httpx.Request) -> Any:
            request.headers["Authorization"] = self._value.reveal()
            yield request

    class AuthorizationHeader(BaseAuthStrategy):
        def __init__(self, value: Secret) -> None:
            self._value = value

        def get_auth_flow(self, github: Any) -> httpx.Auth:
            return _HeaderAuth(self._value)

        def __repr__(self) -> str:
            return "AuthorizationHeader(********)"

    return AuthorizationHeader


def _pin_api_version(request: Any) -> None:
    request.headers["X-GitHub-Api-Version"] = API_VERSION


class GitHubHttp:
    """GitHub clients sharing one TLS context, parsed App keys and a retry policy."""

    def __init__(
        self,
        settings: GitHubSettings,
        *,
        sleep: Callable[[float], None],
        backoff_seconds: float,
        max_backoff_seconds: float,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._tls: Any = None

    @property
    def _base_url(self) -> str:
        return self._settings.base_url.rstrip("/")

    def client(self, authorization: Secret | None) -> GitHub[Any]:
        from githubkit import GitHub, UnauthAuthStrategy
        from githubkit.cache import MemCacheStrategy

        auth = (
            UnauthAuthStrategy() if authorization is None else _authorization_class()(authorization)
        )
        return GitHub(
            auth,
            base_url=self._settings.base_url,
            ssl_verify=self._tls_context(),
            user_agent="agentctl",
            timeout=HTTP_TIMEOUT_SECONDS,
            # agentctl retries itself (see call); no HTTP cache: every answer
            # must be GitHub's current one; a private cache: githubkit's default
            # one is shared by the whole process.
            auto_retry=False,
            http_cache=False,
            cache_strategy=MemCacheStrategy(),
            # Bodies go out exactly as built: githubkit's model would silently
            # drop a permission it does not know, widening a token to everything.
            rest_api_validate_body=False,
            event_hooks={"request": [_pin_api_version], "response": []},
        )

    def _tls_context(self) -> Any:
        """One verifying TLS context for every client: each call gets a fresh
        client, and loading the CA bundle costs more than most GitHub calls."""
        with self._lock:
            if self._tls is None:
                import httpx

                self._tls = httpx.create_ssl_context()
            return self._tls

    def as_app(self, app: AppIdentity) -> GitHub[Any]:
        import jwt

        now = int(time.time())  # real time: GitHub judges the JWT, not agentctl's clock
        token = jwt.encode(
            {
                "iat": now - JWT_BACKDATE_SECONDS,
                "exp": now + JWT_LIFETIME_SECONDS,
                "iss": str(app.app_id),
            },
            app.key,
            algorithm="RS256",
        )
        return self.client(Secret(f"Bearer {token}"))

    def as_token(self, token: Secret) -> GitHub[Any]:
        return self.client(Secret(f"token {token.reveal()}"))

    def _path(self, url: Any) -> str:
        from httpx import URL

        base = URL(self._settings.base_url).path.rstrip("/")
        path = str(URL(str(url)).path)
        return path[len(base) :] if base and path.startswith(base) else path

    def call(self, doing: str, send: Callable[[], Response[Any]]) -> Response[Any]:
        """``send()`` with agentctl's retry policy; failures become GitHubApiError."""
        from githubkit.exception import (
            RateLimitExceeded,
            RequestError,
            RequestFailed,
            RequestTimeout,
        )

        attempts = max(1, self._settings.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return send()
            except RequestFailed as exc:
                status = exc.response.status_code
                limited = isinstance(exc, RateLimitExceeded) or status == 429
                if not (limited or status >= 500) or attempt == attempts:
                    raise self._failure(exc, doing, attempt, limited) from None
                wait = exc.retry_after.total_seconds() if isinstance(exc, RateLimitExceeded) else 0
                self._sleep(self._delay(attempt, wait))
            except RequestTimeout as exc:
                if attempt == attempts:
                    raise GitHubApiError(
                        f"{doing}: GitHub did not answer {exc.request.method} "
                        f"{self._path(exc.request.url)} within {HTTP_TIMEOUT_SECONDS:g}s, "
                        f"{times(attempt)}; GitHub may be down — retry later",
                        status=None,
                    ) from None
                self._sleep(self._delay(attempt, 0))
            except RequestError as exc:
                raise self._unreachable(exc, doing) from None
        raise AssertionError("the loop returns or raises")

    def _delay(self, attempt: int, wait: float) -> float:
        """Seconds before the next attempt: what GitHub asked for, capped, else
        exponential backoff with jitter (so parallel agents do not retry in step)."""
        if wait > 0:
            return min(wait, self._max_backoff)
        ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _failure(self, exc: Any, doing: str, attempts: int, limited: bool) -> GitHubApiError:
        status = int(exc.response.status_code)
        endpoint = f"{exc.request.method} {self._path(exc.request.url)}"
        message = ""
        try:
            body = exc.response.json()
            if isinstance(body, Mapping):
                message = " ".join(str(body.get("message") or "").split())[:200]
        except ValueError:
            pass
        if limited:
            reset = exc.response.headers.get("x-ratelimit-reset", "")
            when = (
                f"; the limit resets at {utc_text(datetime.fromtimestamp(int(reset), UTC))}"
                if reset.isdigit()
                else ""
            )
            return GitHubApiError(
                f"{doing}: GitHub rate-limited {endpoint} ({status}) {times(attempts)}{when}",
                status=status,
                hint="wait for the reset and retry, or lower --parallelism",
            )
        if status >= 500:
            return GitHubApiError(
                f"{doing}: GitHub answered {status} {times(attempts)} for {endpoint}; "
                "GitHub may be down — retry later",
                status=status,
                hint="https://www.githubstatus.com shows github.com incidents",
            )
        detail = f" ({message})" if message else ""
        return GitHubApiError(
            f"{doing}: GitHub answered {status} to {endpoint}{detail}", status=status
        )

    def _unreachable(self, exc: Any, doing: str) -> GitHubApiError:
        import httpx

        cause = getattr(exc, "exc", exc)
        if isinstance(cause, httpx.TransportError):
            return GitHubApiError(
                f"{doing}: cannot connect to GitHub at {self._base_url} ({type(cause).__name__})",
                status=None,
                hint="check github.base_url in agentctl.yaml (for GitHub Enterprise "
                "Server: https://HOST/api/v3) and the network",
            )
        # Anything else failed while building the request, e.g. signing with a
        # broken key: the class name only, the message could quote key material.
        return GitHubApiError(f"{doing}: failed ({type(cause).__name__})", status=None)

    def parse_key(self, pem: Secret, where: str) -> Any:
        fingerprint = pem.fingerprint()
        with self._lock:
            if fingerprint in self._keys:
                return self._keys[fingerprint]
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(pem.reveal().encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ProviderError(
                PROVIDER,
                f"{where} is not an unencrypted PEM RSA private key",
                hint="download a new private key from the App's settings page and run "
                "`agentctl github rotate-key NAME --private-key FILE`",
            )
        with self._lock:
            self._keys[fingerprint] = key
        return key
