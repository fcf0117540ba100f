"""``agentctl exec``, ``credentials``, ``approve``, ``deny``, ``approvals``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from agentctl.errors import UsageError
from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.execution import RunGrant, RunRequest, Runs
    from agentctl.providers.base import ActionResult, IssuedCredential
    from agentctl.run_supply import RunSupply
    from agentctl.state.records import ApprovalRecord

# Variables the child must never inherit: agentctl's own secrets and the
# operator's credentials. The child gets the agent's minted ones instead.
SCRUBBED_PREFIXES = ("AGENTCTL_", "AWS_", "GITHUB_", "GH_", "JIRA_")


def parse_duration_seconds(text: str) -> int:
    """``--duration`` (15m .. 12h, e.g. 45m, 1h30m) in seconds."""
    from agentctl.durations import MAX_DURATION_SECONDS, MIN_DURATION_SECONDS, parse_duration

    # The range is checked here, where the hint can name the forms too.
    duration = parse_duration(
        text, option="--duration", minimum=MIN_DURATION_SECONDS, maximum=MAX_DURATION_SECONDS
    )
    return int(duration.total_seconds())


def child_environment(grant: RunGrant, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The command's environment: ours without agentctl's and the operator's
    credentials, plus the agent's minted ones and who it runs as."""
    base = os.environ if environ is None else environ
    env = {k: v for k, v in base.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(grant.child_environment())
    env["AGENTCTL_AGENT"] = grant.agent
    env["AGENTCTL_RUN_ID"] = grant.run_id
    if grant.on_behalf_of:
        env["AGENTCTL_ON_BEHALF_OF"] = grant.on_behalf_of
    return env


def _runs(session: Session, fetch: RunRequest | None = None) -> Runs:
    """The Runs of this session; ``fetch``: for minting this request's credentials."""
    from agentctl.errors import AgentctlError
    from agentctl.execution import Runs

    if fetch is None or not session.use_run_state():
        return Runs(session.engine())
    # A runtime host fetches credentials many times an hour: the state's rows
    # go through sqlite3 (same rows, same audit chain; agentctl.state.runstate),
    # and only the providers the agent has resources with are loaded (the
    # grant mints from exactly those; an AWS-only agent does not import the
    # GitHub and Jira providers).
    try:
        names: set[str] | None = {r.provider for r in session.state().list_resources(fetch.agent)}
    except AgentctlError:
        names = None  # the grant reads the state again and says what is wrong
    if names is not None and fetch.providers is not None:
        names &= set(fetch.providers)
    return Runs(session.engine(provider_names=names))


@dataclass(frozen=True)
class ExecResult:
    """How an ``exec`` run ended (its output went to the command's own streams)."""

    agent: str
    exit_code: int
    not_started: str | None = None  # why the command could not start
    killed_with: tuple[str, ...] | None = None  # the agent was killed: signals sent
    not_revoked: tuple[ActionResult, ...] = ()


def run(
    session: Session,
    request: RunRequest,
    *,
    kill_grace: float | None = None,
    on_start: Callable[[RunGrant], None] | None = None,
) -> ExecResult:
    """Mint, run the command under supervision (ended if the agent is killed
    meanwhile), revoke what can be revoked and audit the end, whatever happens."""
    from agentctl.run_supply import AWS_SECRET_KEYS
    from agentctl.supervise import CommandNotStarted

    if not request.command:
        raise UsageError(
            "no command given", hint="agentctl exec NAME [options] -- COMMAND [ARGS...]"
        )
    runs = _runs(session, request)
    # Each AWS session lives at most an hour; exec mints the next one before it
    # ends, until the run's --duration is up (see agentctl.run_supply).
    grant = runs.grant(
        replace(request, duration_seconds=min(request.duration_seconds, SESSION_SECONDS))
    )
    if on_start is not None:
        on_start(grant)
    grace = kill_grace if kill_grace is not None else runs.engine.config.exec_kill_grace_seconds
    code = 1
    not_started: str | None = None
    killed_with: tuple[str, ...] | None = None
    supply = _supply(session, runs, grant)
    refreshed: list[IssuedCredential] = []
    try:
        try:
            env = child_environment(grant)
            for key in AWS_SECRET_KEYS:  # the profile supplies them, refreshed
                env.pop(key, None)
            env.update(supply.child_environment(grant.credentials, env))
            supply.hold(grant.credentials)
            tick = _refresher(runs, grant, request, supply, refreshed)
            outcome = runs.run(grant, request.command, env, grace_seconds=grace, tick=tick)
            code = outcome.exit_code
            if outcome.killed:
                killed_with = outcome.signals
        except CommandNotStarted as exc:
            not_started = str(exc)
            code = exc.exit_code
    finally:
        supply.close()
        results = runs.finish(grant, code, request.command, refreshed)
    return ExecResult(
        agent=request.agent,
        exit_code=code,
        not_started=not_started,
        killed_with=killed_with,
        not_revoked=tuple(r for r in results if not r.ok),
    )


SESSION_SECONDS = 3600
RETRY_SECONDS = 30  # after a failed (not refused) refresh: the old credentials still work


def _supply(session: Session, runs: Runs, grant: RunGrant) -> RunSupply:
    from urllib.parse import urlsplit

    from agentctl.run_supply import RunSupply

    github_host = None
    if any(c.provider == "github" for c in grant.credentials):
        from agentctl.providers.github import SPEC as GITHUB

        web = urlsplit(session.config().settings(GITHUB).web_url)
        github_host = f"{web.scheme}://{web.netloc}"
    # The run's own engine: session.engine() would build another (every provider loaded).
    margin = timedelta(seconds=runs.engine.config.exec_refresh_margin_seconds)
    return RunSupply(agent=grant.agent, github_host=github_host, margin=margin)


def _refresher(
    runs: Runs,
    grant: RunGrant,
    request: RunRequest,
    supply: RunSupply,
    refreshed: list[IssuedCredential],
) -> Callable[[], None]:
    """exec's tick: mint what is due (gated, audited with the run id) and hand
    it to the child's files; a refusal cuts the child off."""
    from agentctl.durations import MIN_DURATION_SECONDS
    from agentctl.errors import AgentctlError, GateRefused

    deadline = supply.wall() + timedelta(seconds=request.duration_seconds)
    handoffs = [_handoff(runs, grant.agent)]  # rotate's latest, as this run last saw it

    def tick() -> None:
        due = supply.due()
        handoff = _handoff(runs, grant.agent)
        answering: str | None = None
        if handoff is not None and handoff != handoffs[-1]:
            # rotate is waiting to revoke the old credentials: take new ones now.
            handoffs.append(handoff)
            due, answering = supply.held(), handoff
        if not due:
            return
        left = int((deadline - supply.wall()).total_seconds())
        if left < MIN_DURATION_SECONDS:
            supply.stop_refreshing()  # --duration is the run's credential horizon
            return
        try:
            new = runs.refresh(
                grant,
                request.command,
                due,
                duration_seconds=min(left, SESSION_SECONDS),
                handoff=answering,
            )
        except GateRefused as exc:
            supply.cut_off(exc.message)
            return
        except (AgentctlError, OSError) as exc:  # GitHub/AWS blinked: try again soon
            supply.retry_later(due, timedelta(seconds=RETRY_SECONDS), str(exc))
            return
        refreshed.extend(new)
        supply.hold(new)

    return tick


def _handoff(runs: Runs, agent: str) -> str | None:
    from agentctl.execution import latest_handoff

    try:
        return latest_handoff(runs.engine.state, agent)
    except Exception:  # the state store blinked: no news, ask again at the next poll
        return None


@dataclass(frozen=True)
class Credentials:
    """Credentials minted for a runtime ``exec`` cannot wrap: the values are the
    point of the command (shown once, on stdout, never logged)."""

    grant: RunGrant
    environment: Mapping[str, str]

    def __json__(self) -> Mapping[str, object]:
        grant = {key: getattr(self.grant, key) for key in self.grant.json_fields}
        return {**grant, "environment": self.environment}


def in_helper_run(request: RunRequest, run_id: str | None) -> RunRequest:
    """A fetch outside exec (``credentials``, ``git-credential``) joins the run of
    the process that asked: ``--run-id``, else AGENTCTL_RUN_ID, else the
    starting process (see :mod:`agentctl.helper_runs`), so every refresh of one
    SDK session is audited under one run id."""
    from agentctl.helper_runs import helper_run

    found = helper_run(run_id)
    return replace(request, run_id=found.run_id, run_detail=found.audit_detail())


def credentials(session: Session, request: RunRequest) -> Credentials:
    grant = _runs(session, request).grant(request)
    return Credentials(grant, grant.child_environment())


@dataclass(frozen=True)
class AwsProcessCredentials:
    """One AWS session in the shape of the AWS SDKs' ``credential_process``
    contract (Version 1): the SDK runs the command again before Expiration, so
    every refresh is a new gated, audited issue."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    def __json__(self) -> Mapping[str, object]:
        # Key names and Version are fixed by the SDKs, not ours to choose:
        # https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": self.expiration.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


def aws_process_credentials(session: Session, request: RunRequest) -> AwsProcessCredentials:
    """Only the AWS session (an SDK refresh must not mint GitHub or Jira
    credentials nobody will use), through the same gates and audit as
    :func:`credentials`."""
    request = replace(request, providers=("aws",))
    grant = _runs(session, request).grant(request)
    aws = [c for c in grant.credentials if c.provider == "aws"]
    if not aws:
        raise UsageError(
            f"{request.agent} has no AWS role to take credentials for",
            hint="grant it `aws:` in its contract and `agentctl apply`, or use --output env",
        )
    env = aws[0].environment

    def value(key: str) -> str:
        item = env[key]
        return item if isinstance(item, str) else item.reveal()

    return AwsProcessCredentials(
        access_key_id=value("AWS_ACCESS_KEY_ID"),
        secret_access_key=value("AWS_SECRET_ACCESS_KEY"),
        session_token=value("AWS_SESSION_TOKEN"),
        expiration=aws[0].expires_at,
    )


@dataclass(frozen=True)
class ApprovalDecision:
    """``agentctl approve`` / ``deny``: the approval as decided."""

    approval: ApprovalRecord
    approved: bool

    def __json__(self) -> ApprovalRecord:
        return self.approval


def decide(
    session: Session, approval_id: str, *, approve: bool, reason: str | None
) -> ApprovalDecision:
    record = _runs(session).decide(approval_id, approve=approve, reason=reason)
    return ApprovalDecision(record, approve)


@dataclass(frozen=True)
class PendingApprovals:
    """``agentctl approvals``: the requests waiting for a decision."""

    pending: tuple[ApprovalRecord, ...]

    json_fields: ClassVar[JsonFields] = ("pending",)


def pending(session: Session, agent: str | None = None) -> PendingApprovals:
    return PendingApprovals(tuple(_runs(session).pending(agent)))


@dataclass(frozen=True)
class GitCredential:
    """git's credential-helper answer (``key=value`` lines). ``password`` is
    None when the request is not for the configured GitHub host: git then asks
    its next helper, as the protocol intends."""

    password: str | None = None
    expires_at: datetime | None = None

    def __json__(self) -> Mapping[str, object]:
        return {"answered": self.password is not None}

    def lines(self) -> str:
        if self.password is None:
            return ""
        text = f"username=x-access-token\npassword={self.password}\n"
        if self.expires_at is not None:
            # git >= 2.41 drops the token from its caches once it has expired.
            text += f"password_expiry_utc={int(self.expires_at.timestamp())}\n"
        return text


def parse_git_credential_request(text: str) -> dict[str, str]:
    """git's ``key=value`` lines up to a blank line (git-credential(1))."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition("=")
        if not sep:
            raise UsageError(
                f"git sent a credential line without '=': {line[:40]!r}",
                hint="use this as a git credential helper: git config credential.helper "
                "'!agentctl git-credential NAME'",
            )
        fields[key] = value
    return fields


def git_credential(
    session: Session, request: RunRequest, fields: Mapping[str, str]
) -> GitCredential:
    """``get``: a fresh installation token scoped by the contract, through the
    same gates and audit as ``credentials`` (GitHub only), for the configured
    GitHub host; any other host gets no answer."""
    from urllib.parse import urlsplit

    from agentctl.providers.github import SPEC as GITHUB

    web = urlsplit(session.config().settings(GITHUB).web_url)
    if (
        fields.get("host", "").lower() != web.netloc.lower()
        or fields.get("protocol", web.scheme) != web.scheme
    ):
        return GitCredential()
    request = replace(request, providers=("github",))
    grant = _runs(session, request).grant(request)
    github = [c for c in grant.credentials if c.provider == "github"]
    if not github:
        raise UsageError(
            f"{request.agent} has no GitHub access to take a token for",
            hint="grant it `github:` in its contract and `agentctl apply`",
        )
    token = github[0].environment["GITHUB_TOKEN"]
    return GitCredential(
        password=token if isinstance(token, str) else token.reveal(),
        expires_at=github[0].expires_at,
    )
