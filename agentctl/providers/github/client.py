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
import sys
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
    import ssl

    import httpx
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from githubkit import GitHub

# The REST API version every supported GitHub Enterprise Server release and
# github.com accept; the endpoints used here are identical in later versions.
API_VERSION = "2022-11-28"
HTTP_TIMEOUT_SECONDS = 30.0
# GitHub accepts App JWTs valid for at most 10 minutes; an `iat` 60 s in the
# past absorbs clock drift between this host and GitHub.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}
# GitHub: without retry-after or reset, wait "at least one minute" after a
# secondary rate limit, and exponentially longer while it persists.
SECONDARY_MIN_WAIT_SECONDS = 60
MAX_RATE_LIMIT_WAITS = 8
# The documented wording of secondary limits (and its older name).
_SECONDARY_MARKERS = ("secondary rate limit", "abuse detection")


def _says_secondary(response: Any) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    message = str(body.get("message") or "") if isinstance(body, Mapping) else ""
    return any(marker in message.lower() for marker in _SECONDARY_MARKERS)


def _to_stderr(line: str) -> None:
    # Progress, not a result: stderr, so `--output json` stays clean.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def httpx_connect_timeout() -> type[Exception]:
    import httpx

    return httpx.ConnectTimeout


def _never_sent(exc: Any) -> bool:
    """Whether a transport failure happened before the request left (safe to report
    as "not done"): the connection was never made."""
    import httpx

    return isinstance(getattr(exc, "exc", None), httpx.ConnectError | httpx.ConnectTimeout)


def _transient(exc: Any) -> bool:
    """A transport failure worth another attempt (a reset, a refused or dropped
    connection), not one that will fail the same way (a request agentctl could
    not even build, e.g. a key that cannot sign)."""
    import httpx

    return isinstance(getattr(exc, "exc", None), httpx.TransportError)


class _PlainFailed(Exception):
    """GitHub answered an error status on the plain lane (:meth:`GitHubHttp.send`);
    shaped like githubkit's ``RequestFailed`` (``response``, ``request``)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"GitHub answered {response.status_code}")
        self.response = response
        self.request = response.request


class _PlainTimeout(Exception):
    """Like githubkit's ``RequestTimeout``: ``exc`` is httpx's, ``request`` its request."""

    def __init__(self, exc: httpx.TimeoutException) -> None:
        super().__init__(type(exc).__name__)
        self.exc = exc
        self.request = exc.request


class _PlainError(Exception):
    """Like githubkit's ``RequestError``: anything else while sending (``exc``)."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(type(exc).__name__)
        self.exc = exc


def _kind_of_failure(exc: Exception) -> str | None:
    """ "failed", "timeout" or "error" for a request failure of either lane, None
    for anything else. githubkit's classes are looked up only once one of them
    can exist: a githubkit error is raised by a githubkit already imported, and
    the plain lane must not import it (pydantic: ~0.2 s of `exec`)."""
    githubkit = sys.modules.get("githubkit.exception")
    if isinstance(exc, _PlainFailed) or (
        githubkit is not None and isinstance(exc, githubkit.RequestFailed)
    ):
        return "failed"
    if isinstance(exc, _PlainTimeout) or (
        githubkit is not None and isinstance(exc, githubkit.RequestTimeout)
    ):
        return "timeout"
    if isinstance(exc, _PlainError) or (
        githubkit is not None and isinstance(exc, githubkit.RequestError)
    ):
        return "error"
    return None


class GitHubApiError(ProviderError):
    """GitHub answered with an error (after retries); ``status`` is the HTTP status,
    None when GitHub could not be reached at all. ``outcome_unknown``: a request
    that creates something failed in a way that leaves open whether it did."""

    def __init__(self, message: str, *, status: int | None, hint: str | None = None) -> None:
        super().__init__(PROVIDER, message, hint=hint)
        self.status = status
        self.outcome_unknown = False

    @property
    def suspended(self) -> bool:
        return self.status == 403 and "suspended" in self.message.lower()


@dataclass(frozen=True)
class AppIdentity:
    """An App agentctl can authenticate as: its id and its parsed private key."""

    app_id: int
    key: RSAPrivateKey  # parsed once (parsing costs ~60 ms)


def token_authorization(token: Secret) -> Secret:
    return Secret(f"token {token.reveal()}")


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
        def __init__(self, value: Secret | Callable[[], Secret]) -> None:
            self._value = value

        def auth_flow(self, request: httpx.Request) -> Any:
            # A callable is asked at every request: an App JWT is signed afresh, so
            # a retry after a long rate-limit wait never sends an expired one.
            value = self._value if isinstance(self._value, Secret) else self._value()
            request.headers["Authorization"] = value.reveal()
            yield request

    class AuthorizationHeader(BaseAuthStrategy):
        def __init__(self, value: Secret | Callable[[], Secret]) -> None:
            self._value = value

        def get_auth_flow(self, github: Any) -> httpx.Auth:
            return _HeaderAuth(self._value)

        def __repr__(self) -> str:
            return "AuthorizationHeader(********)"

    return AuthorizationHeader


def _pin_api_version(request: httpx.Request) -> None:
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
        now: Callable[[], float] = time.time,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """``sleep``, ``now`` (epoch seconds, GitHub's clock: rate limits reset on
        it) and ``notify`` (where waits are announced; default stderr) are
        injectable so tests never wait for real."""
        self._settings = settings
        self._sleep = sleep
        self._now = now
        self._notify = notify or _to_stderr
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._lock = threading.Lock()
        self._keys: dict[str, RSAPrivateKey] = {}
        self._tls: ssl.SSLContext | None = None

    @property
    def _base_url(self) -> str:
        return self._settings.base_url.rstrip("/")

    def client(self, authorization: Secret | Callable[[], Secret] | None) -> GitHub[Any]:
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

    def _tls_context(self) -> ssl.SSLContext:
        """One verifying TLS context for every client: each call gets a fresh
        client, and loading the CA bundle costs more than most GitHub calls."""
        with self._lock:
            if self._tls is None:
                import httpx

                self._tls = httpx.create_ssl_context()
            return self._tls

    def as_app(self, app: AppIdentity) -> GitHub[Any]:
        return self.client(functools.partial(self._app_jwt, app))

    def _app_jwt(self, app: AppIdentity) -> Secret:
        import jwt

        now = int(self._now())  # GitHub's (real) time: it judges the JWT, not agentctl's clock
        token = jwt.encode(
            {
                "iat": now - JWT_BACKDATE_SECONDS,
                "exp": now + JWT_LIFETIME_SECONDS,
                "iss": str(app.app_id),
            },
            app.key,
            algorithm="RS256",
        )
        return Secret(f"Bearer {token}")

    def as_token(self, token: Secret) -> GitHub[Any]:
        return self.client(token_authorization(token))

    def app_authorization(self, app: AppIdentity) -> Callable[[], Secret]:
        """An App JWT, signed afresh each time it is asked for."""
        return functools.partial(self._app_jwt, app)

    def send(
        self,
        method: str,
        path: str,
        authorization: Secret | Callable[[], Secret],
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        """One request with httpx alone, for :meth:`call` like a githubkit one.

        The run path (`exec`, `credentials`, `git-credential`) mints, revokes and
        reads back tokens with this: githubkit brings pydantic, ~0.2 s of every
        run of an agent with a GitHub grant, for three requests whose answers
        agentctl reads as JSON anyway. What goes out is what githubkit's client
        (:meth:`client`) sends: the same headers, TLS context, timeout, redirects
        and proxy environment; failures are raised in the shapes of githubkit's
        errors, so :meth:`call` retries and reports them the same way."""
        import httpx

        headers = {
            "User-Agent": "agentctl",
            "Accept": "application/vnd.github+json",
            "Cache-Control": "no-cache",
            "X-GitHub-Api-Version": API_VERSION,
        }
        try:
            value = authorization if isinstance(authorization, Secret) else authorization()
            headers["Authorization"] = value.reveal()
            with httpx.Client(
                base_url=self._settings.base_url,
                verify=self._tls_context(),
                timeout=HTTP_TIMEOUT_SECONDS,
                follow_redirects=True,
            ) as client:
                response = client.request(method, path, headers=headers, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise _PlainTimeout(exc) from None
        except Exception as exc:  # as githubkit: anything while sending, signing included
            raise _PlainError(exc) from None
        if response.is_error:
            raise _PlainFailed(response)
        return response

    def _path(self, url: Any) -> str:
        from httpx import URL

        base = URL(self._settings.base_url).path.rstrip("/")
        path = str(URL(str(url)).path)
        return path[len(base) :] if base and path.startswith(base) else path

    def call(self, doing: str, send: Callable[[], Any], *, idempotent: bool = True) -> Any:
        """``send()`` with agentctl's retry policy; failures become GitHubApiError.

        Rate limits are waited out as GitHub documents (:meth:`_rate_limit_wait`),
        within ``github.rate_limit_max_wait_seconds`` in all, each wait announced.
        5xx answers and timeouts are retried only when ``idempotent``: a request
        that creates something (a token) may have succeeded before its answer was
        lost, so it fails with ``outcome_unknown`` instead, for the caller to settle.
        """
        attempts = max(1, self._settings.max_attempts)
        attempt = limited = backoffs = 0
        waited = 0.0
        while True:
            attempt += 1
            try:
                return send()
            except Exception as failure:
                kind = _kind_of_failure(failure)
                if kind is None:
                    raise
                exc: Any = failure
            if kind == "failed":
                status = int(exc.response.status_code)
                wait, exponential = self._rate_limit_wait(exc.response, backoffs)
                if wait is not None:
                    limited += 1
                    backoffs += exponential
                    if limited > MAX_RATE_LIMIT_WAITS or waited + wait > self._max_wait:
                        raise self._limited(exc, doing, limited, wait, waited) from None
                    self._announce(doing, wait)
                    self._sleep(wait)
                    waited += wait
                    attempt -= 1  # a rate limit is GitHub's pacing, not a failure
                    continue
                if status < 500 or attempt >= attempts:
                    raise self._failure(exc, doing, attempt) from None
                if not idempotent:
                    raise self._unknown_outcome(
                        doing, f"GitHub answered {status} to {self._endpoint(exc.request)}"
                    ) from None
                self._sleep(self._delay(attempt, 0))
            elif kind == "timeout":
                sent = not isinstance(exc.exc, httpx_connect_timeout())
                if not idempotent and sent:
                    raise self._unknown_outcome(
                        doing,
                        f"GitHub did not answer {self._endpoint(exc.request)} within "
                        f"{HTTP_TIMEOUT_SECONDS:g}s",
                    ) from None
                if attempt >= attempts:
                    raise GitHubApiError(
                        f"{doing}: GitHub did not answer {exc.request.method} "
                        f"{self._path(exc.request.url)} within {HTTP_TIMEOUT_SECONDS:g}s, "
                        f"{times(attempt)}; GitHub may be down — retry later",
                        status=None,
                    ) from None
                self._sleep(self._delay(attempt, 0))
            else:
                if not idempotent and not _never_sent(exc):
                    raise self._unknown_outcome(
                        doing, f"the connection failed ({type(exc.exc).__name__})"
                    ) from None
                # A reset or refused connection is as transient as a 5xx: a read
                # (or a request that never left) is tried again, with backoff.
                if attempt >= attempts or not _transient(exc):
                    raise self._unreachable(exc, doing, attempt) from None
                self._sleep(self._delay(attempt, 0))

    @property
    def _max_wait(self) -> float:
        return float(max(0, self._settings.rate_limit_max_wait_seconds))

    def _rate_limit_wait(self, response: Any, earlier: int) -> tuple[float | None, bool]:
        """Seconds to wait before retrying, if ``response`` is a rate limit (else
        None), and whether that is the exponential backoff (``earlier`` of them
        before in this call).

        GitHub's rules (docs.github.com, "Rate limits for the REST API"): a 403
        or 429 is a rate limit when ``x-ratelimit-remaining`` is 0 (the primary
        limit: wait until ``x-ratelimit-reset``) or when it says so (a secondary
        limit): then honour ``retry-after``; else, with ``remaining`` 0, wait for
        the reset; else wait at least a minute, exponentially longer each time.
        """
        status = int(response.status_code)
        if status not in (403, 429):
            return None, False
        headers = response.headers
        remaining = headers.get("x-ratelimit-remaining", "")
        retry_after = headers.get("retry-after", "")
        secondary = status == 429 or _says_secondary(response)
        if retry_after.strip().isdigit() and (secondary or remaining == "0"):
            return float(int(retry_after)), False
        if remaining == "0":
            reset = headers.get("x-ratelimit-reset", "")
            if reset.isdigit():
                return max(0.0, int(reset) - self._now()) + 1.0, False
            secondary = True
        if secondary:
            return float(SECONDARY_MIN_WAIT_SECONDS * 2 ** min(earlier, 6)), True
        return None, False  # a 403 that is not a limit: a permission, a suspension

    def _announce(self, doing: str, wait: float) -> None:
        if wait < 1:
            return
        until = datetime.fromtimestamp(self._now() + wait, UTC)
        self._notify(
            f"waiting for GitHub's rate limit until {utc_text(until)} ({wait:.0f} s; {doing}; "
            f"at most {self._max_wait:.0f} s in all, github.rate_limit_max_wait_seconds)"
        )

    def _limited(
        self, exc: Any, doing: str, count: int, wait: float, waited: float
    ) -> GitHubApiError:
        endpoint = self._endpoint(exc.request)
        until = utc_text(datetime.fromtimestamp(self._now() + wait, UTC))
        why = (
            f"it would wait {wait:.0f} s more (until {until}) after {waited:.0f} s, beyond "
            f"github.rate_limit_max_wait_seconds ({self._max_wait:.0f} s)"
            if count <= MAX_RATE_LIMIT_WAITS
            else f"still limited after {MAX_RATE_LIMIT_WAITS} waits ({waited:.0f} s)"
        )
        return GitHubApiError(
            f"{doing}: GitHub rate-limited {endpoint} ({exc.response.status_code}); {why}",
            status=int(exc.response.status_code),
            hint=f"retry after {until}, raise github.rate_limit_max_wait_seconds, or lower "
            "--parallelism",
        )

    def _unknown_outcome(self, doing: str, what: str) -> GitHubApiError:
        error = GitHubApiError(
            f"{doing}: {what}; GitHub may have done it anyway, so agentctl did not retry",
            status=None,
        )
        error.outcome_unknown = True
        return error

    def _endpoint(self, request: httpx.Request) -> str:
        return f"{request.method} {self._path(request.url)}"

    def _delay(self, attempt: int, wait: float) -> float:
        """Seconds before the next attempt after a 5xx or a timeout: exponential
        backoff with jitter (so parallel agents do not retry in step)."""
        if wait > 0:
            return min(wait, self._max_backoff)
        ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _failure(self, exc: Any, doing: str, attempts: int) -> GitHubApiError:
        status = int(exc.response.status_code)
        endpoint = f"{exc.request.method} {self._path(exc.request.url)}"
        message = ""
        try:
            body = exc.response.json()
            if isinstance(body, Mapping):
                message = " ".join(str(body.get("message") or "").split())[:200]
        except ValueError:
            pass
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

    def _unreachable(self, exc: Any, doing: str, attempts: int = 1) -> GitHubApiError:
        import httpx

        cause = getattr(exc, "exc", exc)
        if isinstance(cause, httpx.TransportError):
            tried = f", {times(attempts)}" if attempts > 1 else ""
            return GitHubApiError(
                f"{doing}: cannot connect to GitHub at {self._base_url} "
                f"({type(cause).__name__}{tried})",
                status=None,
                hint="check github.base_url in agentctl.yaml (for GitHub Enterprise "
                "Server: https://HOST/api/v3) and the network",
            )
        # Anything else failed while building the request, e.g. signing with a
        # broken key: the class name only, the message could quote key material.
        return GitHubApiError(f"{doing}: failed ({type(cause).__name__})", status=None)

    def parse_key(self, pem: Secret, where: str) -> RSAPrivateKey:
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
