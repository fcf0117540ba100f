"""Who is acting: a person agentctl verifies, never a name someone typed.

The caller is whoever the credentials in this process belong to, as the
system that issued them says:

- **AWS** (the default when AWS is configured): ``sts:GetCallerIdentity``,
  once per command. It needs no permission and cannot be denied.
- **GitHub** (when AWS is not configured): ``GET /user`` with the user token in
  ``GH_TOKEN`` / ``GITHUB_TOKEN``; the login is the person. Installation tokens
  (what agents get) cannot call it, so an agent's token never passes.

The principal (an ARN, or ``github:user/LOGIN``) becomes a person by the
first rule that matches:

1. ``people:`` in agentctl.yaml, in order: ``principal`` is a glob pattern over
   the principal, ``person`` the name recorded; ``{name}`` in it stands for the
   principal's own name (user name, session name or login).
2. An IAM user: its user name.
3. An IAM Identity Center (SSO) session (role ``AWSReservedSSO_*``): the session
   name, which AWS sets to the person's user name or e-mail.
4. Any other assumed role: ``role:ROLE``. Whoever assumes a role picks its
   session name, so the session name of an ordinary role proves nothing;
   a ``people:`` rule with ``person: "{name}"`` says a role's sessions are
   trustworthy (e.g. its trust policy pins ``sts:RoleSessionName``).
5. A federated user (``GetFederationToken``): ``federated:NAME``. The name is
   whatever the IAM user who called GetFederationToken passed, and
   GetCallerIdentity does not say which IAM user that was, so it names
   nobody: never an approver by name, unless a ``people:`` rule vouches.
6. The account root user is refused unless ``people:`` names it.

A caller whose principal is one of agentctl's own agent roles is an *agent*:
:attr:`Actor.agent` names it and every mutating command refuses it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentctl.errors import AgentctlError
from agentctl.helper_runs import FETCHING_ENV

GITHUB_TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN")
SSO_ROLE_PREFIX = "AWSReservedSSO_"
# What `agentctl exec` / `credentials` name an agent's AWS session (see the AWS
# provider's issue_credentials): agentctl-<agent>-<run id>.
AGENT_SESSION_PREFIX = "agentctl-"
SOURCES = ("auto", "aws", "github")
# STS error codes that say "ask again later", not "these credentials are bad".
_STS_DOWN_CODES = frozenset(
    {
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

_AWS_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<rest>.+)$"
)


class IdentityError(AgentctlError):
    """Who is calling could not be verified: nothing was done.

    ``unreachable`` is set (e.g. ``"sts unreachable: ServiceUnavailable"``)
    only when the identity service itself could not be asked: a network error,
    a timeout, a 5xx or throttling answer. Credentials that were rejected,
    missing or unusable leave it None. ``agentctl kill`` alone goes on without
    a verified caller in the first case (see Engine.kill).
    """

    def __init__(
        self, message: str, *, hint: str | None = None, unreachable: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Principal:
    """A caller as the system that issued its credentials names it."""

    arn: str  # an AWS ARN, or github:user/LOGIN
    source: str  # aws | github | in-process
    kind: str  # iam-user | assumed-role | federated-user | root | github-user | declared
    name: str  # user name, session name, login
    role: str | None = None  # assumed-role: the role's name
    account: str | None = None


@dataclass(frozen=True)
class PersonRule:
    """One ``people:`` entry: principal glob -> person (``{name}`` = the principal's name)."""

    principal: str
    person: str
    where: str = "people"  # file:line, for messages

    def matches(self, principal: Principal) -> bool:
        return fnmatch.fnmatchcase(principal.arn, self.principal)

    def person_for(self, principal: Principal) -> str:
        return self.person.replace("{name}", principal.name)


@dataclass(frozen=True)
class Actor:
    """The verified caller of one command: a person, and the principal that proves it."""

    person: str
    principal: Principal
    via: str  # the rule that named the person
    agent: str | None = None  # set when the principal is one of agentctl's agent sessions
    # The name AWS or GitHub itself vouches for (IAM user name, SSO session name,
    # login), without people: rules: what approvals are judged by.
    verified_name: str | None = None

    @property
    def arn(self) -> str:
        return self.principal.arn

    @classmethod
    def declared(cls, person: str) -> Actor:
        """An actor named by code in this process (tests, benchmarks, library
        use): never reachable from the command line."""
        return cls(
            person=person,
            principal=Principal(
                arn=f"in-process:{person}", source="in-process", kind="declared", name=person
            ),
            via="declared in-process",
            verified_name=person,
        )

    @classmethod
    def unverified(cls, unreachable: str) -> Actor:
        """Nobody verified, because the identity service could not be asked
        (``unreachable``, e.g. ``"sts unreachable: ServiceUnavailable"``).
        Only ``agentctl kill`` acts as this: the emergency brake must work while
        STS or GitHub is down, and its audit event says nobody was verified."""
        label = f"unverified ({unreachable})"
        return cls(
            person=label,
            principal=Principal(arn="unverified", source="none", kind="unverified", name=label),
            via="not verified: the identity service was unreachable during a kill",
        )

    def proof(self) -> dict[str, str]:
        """What an audit event records beside the person: the principal that
        proved who it is (an ARN, github:user/LOGIN) and the rule that named the
        person (a people: rule is the caller's own file)."""
        return {"principal": self.principal.arn, "identified_by": self.via}

    def as_dict(self) -> dict[str, str | None]:
        return {
            "person": self.person,
            "principal": self.principal.arn,
            "source": self.principal.source,
            "via": self.via,
            "agent": self.agent,
        }


# -- principal -> person -----------------------------------------------------------


def parse_aws_arn(arn: str) -> Principal:
    """What GetCallerIdentity's ARN says about the caller."""
    match = _AWS_ARN.match(arn)
    if match is None:
        raise IdentityError(f"AWS named the caller {arn!r}, which is not an IAM or STS ARN")
    account, rest = match.group("account"), match.group("rest")
    if rest == "root":
        return Principal(arn, "aws", "root", "root", account=account)
    kind, _, path = rest.partition("/")
    if kind == "user" and path:
        return Principal(arn, "aws", "iam-user", path.rsplit("/", 1)[-1], account=account)
    if kind == "assumed-role" and "/" in path:
        role, session = path.split("/", 1)
        return Principal(arn, "aws", "assumed-role", session, role=role, account=account)
    if kind == "federated-user" and path:
        return Principal(arn, "aws", "federated-user", path, account=account)
    raise IdentityError(f"AWS named the caller {arn!r}: not a user, role session or federated user")


def person_of(principal: Principal, people: Sequence[PersonRule]) -> tuple[str, str]:
    """(person, the rule that named them) for a verified principal."""
    for rule in people:
        if rule.matches(principal):
            person = rule.person_for(principal).strip()
            if not person:
                raise IdentityError(f"{rule.where}: maps {principal.arn} to an empty name")
            return person, f"{rule.where} ({rule.principal})"
    if principal.kind == "iam-user":
        return principal.name, "IAM user name"
    if principal.kind == "assumed-role" and (principal.role or "").startswith(SSO_ROLE_PREFIX):
        return principal.name, "IAM Identity Center session name"
    if principal.kind == "assumed-role":
        return f"role:{principal.role}", "role name (its session names are chosen by the caller)"
    if principal.kind == "federated-user":
        return (
            f"federated:{principal.name}",
            "federated user (its name is chosen by whoever called GetFederationToken)",
        )
    if principal.kind == "github-user":
        return principal.name, "GitHub login"
    if principal.kind == "root":
        raise IdentityError(
            f"{principal.arn} is the AWS account root user, not a person agentctl can name",
            hint="sign in as an IAM user or through IAM Identity Center, or map it in people: "
            "in agentctl.yaml",
        )
    raise IdentityError(f"cannot name a person for {principal.arn}")


def agent_of(
    principal: Principal,
    role_prefix: str,
    is_agent: Callable[[str], bool] | None = None,
) -> str | None:
    """The agent whose session ``principal`` is, if any.

    An agent's AWS session is a session of its role (``<role_prefix><agent>``);
    the sessions agentctl starts are named ``agentctl-<agent>-<run>``. Either
    is enough when the role name has the prefix; ``is_agent`` (the state's
    agents) also catches sessions started outside agentctl.
    """
    if principal.kind != "assumed-role" or not principal.role:
        return None
    if not principal.role.startswith(role_prefix):
        return None
    agent = principal.role[len(role_prefix) :]
    if principal.name.startswith(f"{AGENT_SESSION_PREFIX}{agent}"[:64]):
        return agent
    if is_agent is not None and is_agent(agent):
        return agent
    return None


def is_principal(principal: Principal, arn: str | None) -> bool:
    """Whether ``principal`` is the IAM user or role ``arn`` names (a role's
    sessions included: GetCallerIdentity names a session, not its role)."""
    if not arn or principal.source != "aws":
        return False
    if principal.arn == arn:
        return True
    match = _AWS_ARN.match(arn)
    if (
        principal.kind != "assumed-role"
        or match is None
        or match.group("account") != principal.account
    ):
        return False
    kind, _, path = match.group("rest").partition("/")
    return kind == "role" and path.rsplit("/", 1)[-1] == principal.role


# -- the verifying calls ------------------------------------------------------------


@dataclass(frozen=True)
class IdentitySources:
    """Where to ask: the AWS and GitHub settings of agentctl.yaml (any may be None)."""

    source: str = "auto"
    aws: Any = None  # AwsSettings, or None when agentctl.yaml has no aws: section
    github: Any = None  # GitHubSettings, or None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


def verify_principal(sources: IdentitySources) -> Principal:
    """Ask AWS (or GitHub) who the credentials of this process belong to."""
    source = sources.source
    if source == "auto":
        source = "aws" if sources.aws is not None or _aws_credentials_present() else "github"
        if source == "github" and not _github_token(sources.environ):
            raise IdentityError(
                "cannot verify who you are: no AWS credentials and no GitHub token",
                hint="configure AWS credentials (AWS_PROFILE, `aws sso login`, ...) or set "
                "GH_TOKEN to a GitHub user token; see README, 'Who is acting'",
            )
    if source == "aws":
        return _aws_caller(sources.aws)
    return _github_caller(sources.github, sources.environ)


def _aws_credentials_present(profile: str | None = None) -> bool:
    try:
        import botocore.session

        session = botocore.session.Session(profile=profile)
        if os.environ.get(FETCHING_ENV):
            # Inside `credentials` / `git-credential`, a profile's credential_process
            # is not run to see whether it has credentials: when AWS_PROFILE names
            # the agent's own profile (the SDK's child inherits it), that process is
            # agentctl itself, and starting it only to be refused costs a whole
            # agentctl per fetch. Not found here, the caller takes aws.runtime_profile.
            session.get_component("credential_provider").remove("custom-process")
        return session.get_credentials() is not None
    except Exception:  # a broken profile is "not configured" here; the AWS path says more
        return False


def _aws_caller(settings: Any) -> Principal:
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ProfileNotFound
    from botocore.exceptions import ConnectionError as BotoConnectionError

    from agentctl.aws_sessions import hand_back, new_session

    profile = getattr(settings, "profile", None)
    runtime_profile = getattr(settings, "runtime_profile", None)
    if runtime_profile and not _aws_credentials_present(profile):
        # A runtime host (exec, credentials, an SDK's credential_process) may
        # hold only the runtime principal's profile: that principal is who acts.
        profile = runtime_profile
    region = getattr(settings, "region", None) or os.environ.get("AWS_REGION") or None
    endpoint = getattr(settings, "endpoint_url", None)
    attempts = max(1, int(getattr(settings, "max_attempts", 3) or 3))
    try:
        session = new_session(profile_name=profile)
        client = session.client(
            "sts",
            region_name=region or session.region_name or "us-east-1",
            endpoint_url=endpoint,
            config=BotoConfig(
                retries={"mode": "standard", "total_max_attempts": attempts},
                user_agent_extra="agentctl",
            ),
        )
        # This check needs no other client: the provider's next session for
        # the same profile (the same principal) is this one (agentctl.aws_sessions).
        hand_back(session, profile_name=profile)
        arn = str(client.get_caller_identity()["Arn"])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "error")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or code in _STS_DOWN_CODES:
            # STS answered, but only to say it cannot answer now: nothing is
            # known about the credentials either way.
            raise IdentityError(
                f"cannot verify who you are: STS is unavailable ({code})",
                hint="check the AWS service health and the network, and run again",
                unreachable=f"sts unreachable: {code}",
            ) from None
        raise IdentityError(
            f"cannot verify who you are: AWS rejected the credentials ({code})",
            hint="refresh them (`aws sso login`, a new session) and run again",
        ) from None
    except (BotoConnectionError, HTTPClientError) as exc:
        raise IdentityError(
            f"cannot verify who you are: sts:GetCallerIdentity failed ({exc.__class__.__name__})",
            hint="check the network (and aws.endpoint_url in agentctl.yaml), then run again",
            unreachable=f"sts unreachable: {exc.__class__.__name__}",
        ) from None
    except ProfileNotFound:
        named = profile or os.environ.get("AWS_PROFILE") or "default"
        if profile and profile == runtime_profile:
            where = "aws.runtime_profile in agentctl.yaml"
        elif profile:
            where = "aws.profile in agentctl.yaml"
        else:
            where = "AWS_PROFILE"
        raise IdentityError(
            f"cannot verify who you are: the AWS profile {named!r} is not configured on this host",
            hint=f"create it (`aws configure --profile {named}` or `aws configure sso`) "
            f"or correct {where}",
        ) from None
    except BotoCoreError as exc:
        raise IdentityError(
            f"cannot verify who you are: sts:GetCallerIdentity failed ({exc.__class__.__name__})",
            hint="configure AWS credentials (AWS_PROFILE, `aws sso login`, or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and check the network",
        ) from None
    except Exception as exc:  # a profile that does not exist, a malformed config
        raise IdentityError(
            f"cannot verify who you are: the AWS configuration is unusable ({exc.__class__.__name__})",
            hint="check AWS_PROFILE / aws.profile and ~/.aws/config",
        ) from None
    return parse_aws_arn(arn)


def _github_token(environ: Mapping[str, str]) -> str | None:
    for name in GITHUB_TOKEN_VARIABLES:
        if environ.get(name):
            return environ[name]
    return None


def _github_caller(settings: Any, environ: Mapping[str, str]) -> Principal:
    import urllib.error
    import urllib.request

    token = _github_token(environ)
    if not token:
        raise IdentityError(
            "cannot verify who you are: no GitHub user token in GH_TOKEN or GITHUB_TOKEN",
            hint="set GH_TOKEN (e.g. `export GH_TOKEN=$(gh auth token)`)",
        )
    base = (getattr(settings, "base_url", None) or "https://api.github.com").rstrip("/")
    request = urllib.request.Request(
        f"{base}/user",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "agentctl",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:  # down or throttling: says nothing of the token
            raise IdentityError(
                f"cannot verify who you are: GitHub answered {exc.code}",
                hint="check githubstatus.com and the network, and run again",
                unreachable=f"github unreachable: HTTP {exc.code}",
            ) from None
        why = {
            401: "GitHub rejected the token",
            403: "the token cannot read its user (an App installation token is not a person)",
        }.get(exc.code, f"GitHub answered {exc.code}")
        raise IdentityError(
            f"cannot verify who you are: {why}",
            hint="use a GitHub user token (`gh auth token`) in GH_TOKEN",
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise IdentityError(
            f"cannot verify who you are: GET {base}/user failed ({exc.__class__.__name__})",
            hint="check the network and github.base_url in agentctl.yaml",
            unreachable=f"github unreachable: {exc.__class__.__name__}",
        ) from None
    except ValueError as exc:  # an answer that is not JSON: not GitHub's API
        raise IdentityError(
            f"cannot verify who you are: GET {base}/user failed ({exc.__class__.__name__})",
            hint="check the network and github.base_url in agentctl.yaml",
        ) from None
    login = body.get("login") if isinstance(body, dict) else None
    if not isinstance(login, str) or not login or body.get("type") not in (None, "User"):
        raise IdentityError("cannot verify who you are: GitHub did not name a user for the token")
    return Principal(f"github:user/{login}", "github", "github-user", login)


def resolve_actor(
    sources: IdentitySources,
    people: Sequence[PersonRule],
    *,
    role_prefix: str = "agentctl-",
    is_agent: Callable[[str], bool] | None = None,
) -> Actor:
    """The verified actor of this process: one call to AWS or GitHub."""
    return actor_of(
        verify_principal(sources),
        people,
        role_prefix=role_prefix,
        is_agent=is_agent,
        running_as=sources.environ.get("AGENTCTL_AGENT"),
    )


def actor_of(
    principal: Principal,
    people: Sequence[PersonRule],
    *,
    role_prefix: str = "agentctl-",
    is_agent: Callable[[str], bool] | None = None,
    running_as: str | None = None,
) -> Actor:
    """Who a verified ``principal`` is: an agent, or a person (``running_as``:
    AGENTCTL_AGENT, set inside ``agentctl exec``)."""
    agent = agent_of(principal, role_prefix, is_agent)
    if agent is None and running_as:
        # Inside `agentctl exec`: the variable alone proves nothing (a child can
        # unset it), but where it is set the caller is an agent run.
        agent = running_as
    if agent is not None:
        return Actor(person=f"agent:{agent}", principal=principal, via="agent session", agent=agent)
    person, via = person_of(principal, people)
    try:
        verified_name: str | None = person_of(principal, ())[0]
    except IdentityError:  # the root user, named only by a people: rule
        verified_name = None
    if principal.kind == "federated-user":
        verified_name = None  # a name its caller picked vouches for nobody
    return Actor(person=person, principal=principal, via=via, verified_name=verified_name)


def same_caller(arn: str, actor: Actor) -> bool:
    """Whether the principal ``arn`` (recorded earlier) and ``actor`` are the same
    caller by what AWS or GitHub vouches for, never by a people: label: the same
    ARN, or the same account and the same verified name (an IAM user, the
    person of an Identity Center session, ``role:ROLE`` for any session of an
    ordinary role)."""
    if arn == actor.arn:
        return True
    if actor.principal.source != "aws" or actor.verified_name is None:
        return False
    try:
        earlier = parse_aws_arn(arn)
        name = person_of(earlier, ())[0]
    except IdentityError:
        return False
    return (
        earlier.account == actor.principal.account
        and earlier.kind == actor.principal.kind
        and name == actor.verified_name
    )


def matches_person(actor: Actor, patterns: Sequence[str]) -> str | None:
    """The first of ``patterns`` (names, e-mails, ``*`` globs, or principal
    patterns) that names ``actor``; None if none does.

    Names are compared with the name AWS or GitHub vouches for, never with a
    people: rule: agentctl.yaml is a file its user can edit, so it may name
    people in the trail but cannot make anyone an approver.
    """
    name = (actor.verified_name or "").casefold()
    for pattern in patterns:
        if pattern.startswith(("arn:", "github:")):
            if fnmatch.fnmatchcase(actor.arn, pattern):
                return pattern
        elif name and fnmatch.fnmatchcase(name, pattern.casefold()):
            return pattern
    return None


_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def acts_for_problem(user: str, patterns: Sequence[str]) -> str | None:
    """Why the agent may not act for ``user`` (None: it may). Always an e-mail
    address; when the contract has ``acts_for``, one of its patterns."""
    if len(user) > 254 or not _EMAIL.fullmatch(user):
        return f"--on-behalf-of {user!r} is not an e-mail address: an agent acts for a person"
    if patterns and not any(fnmatch.fnmatchcase(user.casefold(), p.casefold()) for p in patterns):
        return f"this agent may act only for {', '.join(patterns)}, not {user}"
    return None
