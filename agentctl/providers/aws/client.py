"""AWS clients for the provider: one boto3 session, shared clients, errors mapped.

boto3 is imported only when a client is first needed: ``agentctl validate``
never pays for it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from agentctl.errors import ProviderError
from agentctl.providers.aws import PROVIDER
from agentctl.providers.aws.settings import AwsSettings

# A pool is a maximum, not an allocation: a generous default costs nothing and
# keeps `apply --parallelism N` from queueing on urllib3's pool (N <= 64).
DEFAULT_POOL_CONNECTIONS = 64

CREDENTIALS_HINT = (
    "configure AWS credentials: AWS_PROFILE (or aws.profile in agentctl.yaml), `aws configure`, "
    "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)
ENDPOINT_HINT = (
    "check the network, or AWS_ENDPOINT_URL / aws.endpoint_url in agentctl.yaml "
    "if you use a local or private endpoint"
)
OPERATOR_HINT = "`agentctl policy operator` prints the permissions the operator needs"
THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


_DENIED_CALLER = re.compile(r"\b(?:User|Principal): (arn:[^\s]+) is not authorized")


def denied_caller(exc: BaseException) -> str | None:
    """The ARN an AccessDenied names as the caller (``User: arn:... is not
    authorized to perform ...``), if it names one."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return None
    found = _DENIED_CALLER.search(str(response.get("Error", {}).get("Message", "")))
    return found.group(1) if found else None


def same_principal(caller: str, configured: str) -> bool:
    """``caller`` (as STS reports it) is the ``configured`` principal: equal,
    or a session of the configured role (``arn:aws:sts::A:assumed-role/NAME/S``
    is ``arn:aws:iam::A:role/[path/]NAME``)."""
    if caller == configured:
        return True
    partition, _, rest = caller.removeprefix("arn:").partition(":sts::")
    account, _, resource = rest.partition(":assumed-role/")
    if not resource:
        return False
    role = resource.split("/")[0]
    return configured.startswith(f"arn:{partition}:iam::{account}:role/") and (
        configured.rsplit("/", 1)[-1] == role
    )


def provider_error(exc: Exception, doing: str, *, profile: str | None = None) -> ProviderError:
    """Map a botocore failure to a ProviderError that says what to do.

    AWS error messages name ARNs and actions, never credentials, so they may be
    quoted; botocore exceptions are reduced to their class name and our text.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(exc, (SSOError, TokenRetrievalError)):
        # IAM Identity Center: the cached sign-in is missing or expired. The fix
        # is a browser sign-in, not an access key.
        return ProviderError(
            PROVIDER,
            f"the AWS SSO sign-in has expired or was never made ({doing})",
            hint=f"run `aws sso login --profile {profile}`, then run this again"
            if profile
            else "run `aws sso login --profile PROFILE` for the profile agentctl uses "
            "(aws.profile in agentctl.yaml, else AWS_PROFILE), then run this again",
        )
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ProviderError(
            PROVIDER, f"no usable AWS credentials to {doing}", hint=CREDENTIALS_HINT
        )
    if isinstance(exc, ProfileNotFound):
        return ProviderError(
            PROVIDER, f"the AWS profile is not configured ({doing})", hint=CREDENTIALS_HINT
        )
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return ProviderError(
            PROVIDER,
            f"cannot reach the AWS endpoint to {doing} ({exc.__class__.__name__})",
            hint=ENDPOINT_HINT,
        )
    if isinstance(exc, ClientError):
        code = error_code(exc) or "Unknown"
        operation = getattr(exc, "operation_name", "") or "request"
        message = exc.response.get("Error", {}).get("Message", "")
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            return ProviderError(
                PROVIDER, f"access denied: {operation} to {doing} ({message})", hint=OPERATOR_HINT
            )
        if code in THROTTLE_CODES:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            return ProviderError(
                PROVIDER,
                f"AWS throttled {operation} to {doing} ({attempts} attempts)",
                hint="retry later, lower --parallelism, or raise aws.max_attempts",
            )
        if code in {
            "InvalidClientTokenId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "UnrecognizedClientException",
        }:
            return ProviderError(
                PROVIDER, f"AWS rejected the credentials ({code}) to {doing}", hint=CREDENTIALS_HINT
            )
        if code.isdigit() and int(code) >= 500:  # a bare HTTP 5xx (see _generic_5xx), retried
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            return ProviderError(
                PROVIDER,
                f"the endpoint did not answer like AWS when asked to {doing} "
                f"(HTTP {code}, {attempts} attempts)",
                hint="retry; if it persists, " + ENDPOINT_HINT,
            )
        return ProviderError(PROVIDER, f"{operation} to {doing} failed: {code}: {message}")
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):
        # Not an AWS error document (e.g. a proxy's or emulator's HTML 500 page);
        # botocore does not retry these.
        return ProviderError(
            PROVIDER,
            f"the endpoint did not answer like AWS when asked to {doing}",
            hint="retry; if it persists, " + ENDPOINT_HINT,
        )
    return ProviderError(PROVIDER, f"{doing} failed ({exc.__class__.__name__})")


def _generic_5xx(response_dict: dict[str, Any], **_: Any) -> None:
    """Let the retry mode see a 5xx that is not an AWS error document.

    botocore retries a 5xx only once it has parsed it, and it parses an empty
    body or one starting ``<html>`` as a generic error, but any other page
    (werkzeug's ``<!doctype html>``, a proxy's plain text) raises
    ResponseParserError, which is never retried. Such a body says nothing an
    AWS error would, so it is dropped: the answer becomes the generic HTTP 5xx
    it is, and the standard retry mode retries it with backoff."""
    if int(response_dict.get("status_code") or 0) < 500:
        return
    body = response_dict.get("body") or b""
    if isinstance(body, bytes) and b"<Code>" not in body and not body.lstrip().startswith(b"{"):
        response_dict["body"] = b""


class AwsClients:
    """One boto3 session and one client per service, shared by a provider's threads.

    Endpoint, region and profile come from ``aws.*`` settings, else from the
    standard AWS environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    ``AWS_PROFILE``, ...). ``client_options`` are passed to every client
    (tests: explicit credentials), except ``max_pool_connections``, which sizes
    the connection pool (default 64, enough for ``--parallelism`` up to that).
    """

    def __init__(self, settings: AwsSettings, client_options: Mapping[str, Any]) -> None:
        self._settings = settings
        self._client_options = client_options
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The shared client for ``service`` ("iam", "sts").

        boto3 clients are thread-safe but sessions are not, so both are created
        once under a lock; callers (and tests hooking events) get the same object.
        """
        client = self._clients.get(service)
        if client is not None:
            return client
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._make_client(service, {})
            return self._clients[service]

    def runtime_client(self, service: str) -> Any:
        """The client that starts agent sessions: the runtime principal's.

        With ``aws.runtime_profile`` it signs with that profile (the operator
        may not start agent sessions); else it is :meth:`client`'s — on the
        runtime host the standard AWS environment *is* the runtime principal.
        """
        profile = self._settings.runtime_profile
        if not profile:
            return self.client(service)
        key = f"runtime:{service}"
        with self._lock:
            if key not in self._clients:
                from agentctl.aws_sessions import new_session

                try:
                    session = new_session(profile_name=profile)
                except Exception as exc:
                    raise provider_error(
                        exc, f"open the AWS profile {profile}", profile=profile
                    ) from None
                self._clients[key] = self._make_client(service, {}, session=session)
            return self._clients[key]

    def profile_name(self, *, runtime: bool = False) -> str:
        """The AWS profile a client signs with (what `aws sso login --profile`
        needs): aws.runtime_profile for runtime clients, else aws.profile, else
        the standard environment's."""
        if runtime and self._settings.runtime_profile:
            return self._settings.runtime_profile
        return (
            self._settings.profile
            or os.environ.get("AWS_PROFILE")
            or os.environ.get("AWS_DEFAULT_PROFILE")
            or "default"
        )

    def _base_session(self) -> Any:
        # Caller holds self._lock.
        if self._session is None:
            from agentctl.aws_sessions import new_session

            try:
                self._session = new_session(profile_name=self._settings.profile)
            except Exception as exc:
                raise provider_error(
                    exc, "open the AWS session", profile=self.profile_name()
                ) from None
        return self._session

    def region(self) -> str:
        with self._lock:
            return self._region(self._base_session())

    def _region(self, session: Any) -> str:
        # botocore reads only AWS_DEFAULT_REGION; the other SDKs and CLI v2
        # prefer AWS_REGION. IAM is global, but signing needs a region and STS
        # is regional, so fall back to us-east-1 rather than fail.
        return (
            self._settings.region
            or os.environ.get("AWS_REGION")
            or session.region_name
            or "us-east-1"
        )

    def endpoint_url(self) -> str | None:
        """The endpoint explicitly configured, if any (exported to exec'd commands)."""
        configured = self._client_options.get("endpoint_url")
        return self._settings.endpoint_url or configured or os.environ.get("AWS_ENDPOINT_URL")

    def session_client(self, service: str, credentials: Mapping[str, str]) -> Any:
        """A new client of ``service`` signed with explicit session credentials."""
        with self._lock:
            return self._make_client(service, credentials)

    def _make_client(
        self, service: str, credentials: Mapping[str, str], session: Any = None
    ) -> Any:
        # Caller holds self._lock.
        from botocore.config import Config as BotoConfig

        options = dict(self._client_options)
        if session is None:
            session = self._base_session()
        else:
            # Another principal's session: none of the default principal's keys.
            for key in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
                options.pop(key, None)
        pool = int(options.pop("max_pool_connections", DEFAULT_POOL_CONNECTIONS))
        options.update(credentials)
        if self._settings.endpoint_url:
            options.setdefault("endpoint_url", self._settings.endpoint_url)
        config = BotoConfig(
            # total_max_attempts counts the first try, like `max_attempts` in
            # ~/.aws/config; standard mode retries throttling and 5xx with backoff.
            retries={"mode": "standard", "total_max_attempts": max(1, self._settings.max_attempts)},
            max_pool_connections=pool,
            user_agent_extra="agentctl",
        )
        client = session.client(
            service, region_name=self._region(session), config=config, **options
        )
        client.meta.events.register("before-parse", _generic_5xx)
        return client

    def call(
        self,
        service: str,
        operation: str,
        doing: str,
        *,
        absent: Iterable[str] = (),
        runtime: bool = False,
        **params: Any,
    ) -> Any:
        """Call one API operation; ``absent`` error codes return None (e.g.
        NoSuchEntity); ``runtime`` signs as the runtime principal."""
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        client = self.runtime_client(service) if runtime else self.client(service)
        try:
            return getattr(client, operation)(**params)
        except ClientError as exc:
            if error_code(exc) in set(absent):
                return None
            raise provider_error(exc, doing, profile=self.profile_name(runtime=runtime)) from None
        except (BotoCoreError, ResponseParserError) as exc:
            raise provider_error(exc, doing, profile=self.profile_name(runtime=runtime)) from None
