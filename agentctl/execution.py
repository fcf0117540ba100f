"""exec / credentials: gates, approvals, minting, and the end of a run.

The execution mode is an application-level gate the model cannot bypass: it is
enforced here, before anything is minted, from the recorded agent (not from
anything the agent or its prompt can influence). Every grant, refusal and run
end is an audit event in the article's shape: actor, on_behalf_of, action,
scope, trigger.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from agentctl.durations import MAX_DURATION_SECONDS, MIN_DURATION_SECONDS
from agentctl.errors import AgentctlError, GateRefused, NotFound, StateError, UsageError
from agentctl.identity import Actor, acts_for_problem, matches_person
from agentctl.model import AgentStatus, Contract, ExecutionMode
from agentctl.providers.base import ActionResult, IssuedCredential, RunContext
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from agentctl.engine import Engine
    from agentctl.state import StateStore
    from agentctl.state.records import AgentRecord, ApprovalRecord
    from agentctl.supervise import ChildOutcome


class _RunParty(Protocol):
    """A run as its audit events name it (a request, a grant, an approval)."""

    @property
    def agent(self) -> str: ...
    @property
    def on_behalf_of(self) -> str | None: ...
    @property
    def trigger(self) -> str | None: ...


def _run_event(
    run: _RunParty,
    *,
    action: str,
    target: str,
    result: str,
    scope: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditDraft:
    """An exec-path audit event: the agent acts, for whom and started by what the run says."""
    return AuditDraft(
        actor=run.agent,
        on_behalf_of=run.on_behalf_of,
        trigger=run.trigger,
        action=action,
        target=target,
        result=result,
        scope=scope,
        detail=detail,
    )


class ApprovalPending(GateRefused):
    """approval_required: a request was recorded; an owner must approve it."""

    def __init__(self, approval: ApprovalRecord) -> None:
        super().__init__(
            f"{approval.agent} needs approval to run: request {approval.id} is pending",
            hint=(
                f"an owner runs `agentctl approve {approval.id}` (or `agentctl deny {approval.id}`), "
                f"then re-run with --approval {approval.id}"
            ),
        )
        self.approval = approval


@dataclass(frozen=True)
class RunRequest:
    """What ``exec`` / ``credentials`` were asked for: the agent, for whom, why, how long."""

    agent: str
    command: tuple[str, ...]
    on_behalf_of: str | None = None
    trigger: str | None = None
    approval_id: str | None = None
    duration_seconds: int = 3600
    providers: tuple[str, ...] | None = None  # None: every provider the agent has
    # A fetch outside exec that belongs to a longer run (agentctl.helper_runs):
    # its run id (None: a new one) and how it was found, for the audit event.
    run_id: str | None = None
    run_detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunGrant:
    """A run the gates allowed: its id, scope and the credentials issued for it."""

    run_id: str
    agent: str
    execution_mode: str
    on_behalf_of: str | None
    trigger: str | None
    approval_id: str | None
    scope: str
    credentials: tuple[IssuedCredential, ...] = field(default=())

    json_fields: ClassVar[tuple[str, ...]] = (
        "run_id",
        "agent",
        "execution_mode",
        "on_behalf_of",
        "trigger",
        "approval_id",
        "scope",
        "expires_at",
        "credentials",
    )

    @property
    def expires_at(self) -> datetime | None:
        return min((c.expires_at for c in self.credentials), default=None)

    def child_environment(self) -> dict[str, str]:
        """The only place secret values leave their :class:`Secret` wrapper:
        into the environment of the command agentctl runs for this grant."""
        env: dict[str, str] = {}
        for credential in self.credentials:
            for key, value in credential.environment.items():
                env[key] = value if isinstance(value, str) else value.reveal()
        return env


def contract_from_record(record: AgentRecord) -> Contract:
    """The applied contract, as recorded in state at the last apply."""
    if not record.document:
        raise GateRefused(
            f"{record.name} has no applied contract recorded",
            hint="run `agentctl apply` for its contract first",
        )
    return Contract.from_document(record.document, source=f"state:{record.name}")


class Runs:
    """Gates, approvals and credential minting on top of an :class:`Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def _state(self) -> StateStore:
        return self.engine.state

    def _refuse(
        self,
        request: RunRequest,
        reason: str,
        hint: str | None = None,
        *,
        run_id: str | None = None,
    ) -> GateRefused:
        detail = {"reason": reason, "command": _command_text(request.command)}
        if run_id is not None:  # a refused refresh of a running run
            detail["run_id"] = run_id
        try:
            self._audit_refusal(request, detail)
        except StateError as exc:
            # Refused all the same: a gate never opens because its record failed.
            reason = f"{reason} (this refusal is not in the audit trail: {exc.message})"
        return GateRefused(reason, hint=hint)

    def _audit_refusal(self, request: RunRequest, detail: dict[str, str]) -> None:
        self.engine.audit(
            _run_event(
                request, action="exec.refused", target=request.agent, result="denied", detail=detail
            ),
        )

    def _check_gates(
        self, request: RunRequest, *, run_id: str | None = None
    ) -> tuple[AgentRecord, Contract]:
        record = self._state.get_agent(request.agent)
        if record is None or record.status == AgentStatus.REMOVED:
            raise self._refuse(
                request,
                f"{request.agent} has never been provisioned",
                hint="add its contract and run `agentctl apply`",
                run_id=run_id,
            )
        if record.status.killed:
            raise self._refuse(
                request,
                f"{request.agent} is killed ({record.status_reason or 'no reason recorded'})",
                hint=f"only `agentctl revive {request.agent} --reason ...` brings it back",
                run_id=run_id,
            )
        today: date = self.engine.today()
        if record.status == AgentStatus.EXPIRED or (
            record.expiry is not None and today >= record.expiry
        ):
            raise self._refuse(
                request,
                f"{request.agent}'s contract expired on {record.expiry}",
                hint="extend `expiry` in its contract and run `agentctl apply`",
                run_id=run_id,
            )
        contract = contract_from_record(record)
        mode = contract.execution_mode
        if mode == ExecutionMode.ON_BEHALF_OF_USER and not request.on_behalf_of:
            raise self._refuse(
                request,
                f"{request.agent} acts on behalf of a user: --on-behalf-of is required",
                hint="pass --on-behalf-of USER (the person the agent acts for)",
                run_id=run_id,
            )
        if request.on_behalf_of is not None:
            # It becomes the AWS SourceIdentity and the audit's on_behalf_of: a
            # person's e-mail, one the contract allows (acts_for), never "root".
            problem = acts_for_problem(request.on_behalf_of, contract.acts_for)
            if problem:
                raise self._refuse(
                    request,
                    problem,
                    hint="pass the e-mail of the person the agent acts for"
                    + (
                        f" (acts_for in its contract: {', '.join(contract.acts_for)})"
                        if contract.acts_for
                        else ""
                    ),
                )
        return record, contract

    def _consume_approval(self, request: RunRequest, contract: Contract) -> str | None:
        if contract.execution_mode != ExecutionMode.APPROVAL_REQUIRED:
            return None
        state = self._state
        now = self.engine.clock()
        command = _command_text(request.command)
        if request.approval_id is None:
            pending = state.create_approval(
                id=_approval_id(),
                agent=request.agent,
                requester=self.engine.operator,
                on_behalf_of=request.on_behalf_of,
                trigger=request.trigger,
                command=command,
                created_at=now,
                expires_at=now + timedelta(minutes=self.engine.config.approval_ttl_minutes),
            )
            self.engine.audit(
                _run_event(
                    request,
                    action="approval.request",
                    target=pending.id,
                    result="pending",
                    detail={"command": command},
                ),
            )
            raise ApprovalPending(pending)
        approval = state.get_approval(request.approval_id)
        problem = None
        if approval is None or approval.agent != request.agent:
            problem = f"approval {request.approval_id} does not exist for {request.agent}"
        elif approval.status == "pending":
            problem = f"approval {approval.id} is still pending"
        elif approval.status != "approved":
            problem = f"approval {approval.id} is {approval.status}"
        elif approval.expires_at <= now:
            problem = f"approval {approval.id} expired at {approval.expires_at:%Y-%m-%d %H:%M} UTC"
        elif approval.command != command or approval.on_behalf_of != request.on_behalf_of:
            problem = f"approval {approval.id} was given for a different command or user"
        elif approval.requester != self.engine.operator or not self._is_requester(approval):
            problem = (
                f"approval {approval.id} was requested by {approval.requester}; "
                f"only they can use it, not {self.engine.operator} ({self.engine.actor().arn})"
            )
        elif not state.transition_approval(approval.id, "approved", "used", used_at=now):
            problem = f"approval {approval.id} has already been used"
        if problem:
            raise self._refuse(
                request, problem, hint="request a new approval: run exec without --approval"
            )
        return request.approval_id

    def grant(self, request: RunRequest) -> RunGrant:
        if not request.command:
            raise UsageError("no command given", hint="agentctl exec NAME -- COMMAND [ARGS...]")
        if not MIN_DURATION_SECONDS <= request.duration_seconds <= MAX_DURATION_SECONDS:
            raise UsageError(
                f"--duration must be between {MIN_DURATION_SECONDS // 60} minutes and "
                f"{MAX_DURATION_SECONDS // 3600} hours",
                hint="e.g. --duration 45m or --duration 1h30m",
            )
        # Who asks is verified first; an agent's own session is refused.
        self.engine.require_person(
            "credentials" if request.command == ("credentials",) else "exec", request.agent
        )
        _, contract = self._check_gates(request)
        state = self._state
        state.require_room()  # before an approval is used or anything minted
        approval_id = self._consume_approval(request, contract)
        run = RunContext(
            agent=request.agent,
            on_behalf_of=request.on_behalf_of,
            trigger=request.trigger,
            duration_seconds=request.duration_seconds,
            run_id=request.run_id or uuid.uuid4().hex[:12],
        )
        involved = sorted({r.provider for r in state.list_resources(request.agent)})
        if request.providers is not None:
            involved = [p for p in involved if p in request.providers]
        scope = _scope_text(contract, [p for p in involved if p in self.engine.providers])
        issued: list[IssuedCredential] = []
        try:
            for name in involved:
                provider = self.engine.providers.get(name)
                if provider is None:
                    continue
                # The provider records what it issued (metadata in state, and for
                # revocable credentials the value in the secret store, for kill).
                issued.append(provider.issue_credentials(contract, run))
        except AgentctlError as exc:
            for credential in issued:  # never leave half a grant alive
                self._revoke(request.agent, credential)
            raise self._refuse(
                request, f"could not mint credentials: {exc.message}", exc.hint
            ) from None
        grant = RunGrant(
            run_id=run.run_id,
            agent=request.agent,
            execution_mode=contract.execution_mode.value,
            on_behalf_of=request.on_behalf_of,
            trigger=request.trigger,
            approval_id=approval_id,
            scope=scope,
            credentials=tuple(issued),
        )
        try:
            self._audit_issue(request, run, scope, approval_id, issued)
        except StateError:
            # No credential lives without its audit event: take back what can
            # be taken back (AWS sessions are in the state, which kill reads).
            for credential in issued:
                self._revoke(request.agent, credential)
            raise
        return grant

    def _audit_issue(
        self,
        request: RunRequest,
        run: RunContext,
        scope: str,
        approval_id: str | None,
        issued: Sequence[IssuedCredential],
    ) -> None:
        self.engine.audit(
            _run_event(
                request,
                action="credentials.issue",
                scope=scope,
                target=request.agent,
                result="success",
                detail={
                    "run_id": run.run_id,
                    "command": _command_text(request.command),
                    "approval_id": approval_id,
                    "credentials": _credential_facts(issued),
                    **(request.run_detail or {}),
                },
            ),
        )

    def refresh(
        self,
        grant: RunGrant,
        command: Sequence[str],
        providers: Sequence[str],
        *,
        duration_seconds: int,
        handoff: str | None = None,
    ) -> tuple[IssuedCredential, ...]:
        """New credentials from ``providers`` for a running run, through the same
        gates as its start (killed, expired, on-behalf-of; the run's approval
        covers the whole run) and audited as ``credentials.refresh`` with the
        run id. Raises GateRefused (audited as ``exec.refused``) otherwise."""
        request = RunRequest(
            agent=grant.agent,
            command=tuple(command),
            on_behalf_of=grant.on_behalf_of,
            trigger=grant.trigger,
            duration_seconds=duration_seconds,
        )
        _, contract = self._check_gates(request, run_id=grant.run_id)
        run = RunContext(
            agent=grant.agent,
            on_behalf_of=grant.on_behalf_of,
            trigger=grant.trigger,
            duration_seconds=duration_seconds,
            run_id=grant.run_id,
        )
        issued: list[IssuedCredential] = []
        try:
            for name in providers:
                provider = self.engine.providers.get(name)
                if provider is not None:
                    issued.append(provider.issue_credentials(contract, run))
        except AgentctlError as exc:
            for credential in issued:
                self._revoke(grant.agent, credential)
            raise self._refuse(
                request,
                f"could not refresh credentials: {exc.message}",
                exc.hint,
                run_id=grant.run_id,
            ) from None
        try:
            self.engine.audit(
                _run_event(
                    grant,
                    action="credentials.refresh",
                    scope=grant.scope,
                    target=grant.agent,
                    result="success",
                    detail={
                        "run_id": grant.run_id,
                        "credentials": _credential_facts(issued),
                        # rotate's handoff this refresh answers (rotate waits for it).
                        "handoff": handoff,
                    },
                ),
            )
        except StateError:
            for credential in issued:  # no credential lives without its event
                self._revoke(grant.agent, credential)
            raise
        return tuple(issued)

    def _revoke(self, agent: str, credential: IssuedCredential) -> ActionResult:
        provider = self.engine.providers[credential.provider]
        try:
            result = provider.revoke_credential(agent, credential.credential_id)
        except AgentctlError as exc:
            return ActionResult(
                provider=credential.provider,
                agent=agent,
                action="revoke",
                ok=False,
                detail=exc.message,
                remaining=f"revoke credential {credential.credential_id} (`agentctl kill {agent}` revokes all)",
            )
        # The provider marks what it revoked: only it knows whether GitHub accepted.
        return result

    def finish(
        self,
        grant: RunGrant,
        exit_code: int,
        command: Sequence[str],
        refreshed: Sequence[IssuedCredential] = (),
    ) -> tuple[ActionResult, ...]:
        """End of an exec run: revoke what can be revoked (what the run started
        with and every refresh), audit the outcome."""
        held = (*grant.credentials, *refreshed)
        results = tuple(self._revoke(grant.agent, c) for c in held)
        self.engine.audit(
            _run_event(
                grant,
                action="exec.end",
                scope=grant.scope,
                target=grant.agent,
                result="success" if exit_code == 0 else "failure",
                detail={
                    "run_id": grant.run_id,
                    "exit_code": exit_code,
                    "command": _command_text(command),
                    "revoked": {r.provider: r.detail for r in results},
                },
            ),
        )
        return results

    def run(
        self,
        grant: RunGrant,
        command: Sequence[str],
        env: Mapping[str, str],
        *,
        grace_seconds: float,
        poll_seconds: float = 1.0,
        tick: Callable[[], None] | None = None,
    ) -> ChildOutcome:
        """Run ``command`` for ``grant``, ending it if the agent is killed meanwhile
        (the state store is asked at most ``poll_seconds`` apart, so a kill from any
        operator's machine reaches it). Raises CommandNotStarted (126/127)."""
        from agentctl.supervise import run_watched

        agent = grant.agent

        def is_killed() -> bool:
            record = self._state.get_agent(agent)
            return record is not None and record.status.killed

        outcome = run_watched(
            command,
            env,
            is_killed=is_killed,
            poll_seconds=min(1.0, poll_seconds),
            grace_seconds=grace_seconds,
            tick=tick,
        )
        if outcome.killed:
            self.engine.audit(
                AuditDraft(
                    actor=agent,
                    on_behalf_of=grant.on_behalf_of,
                    action="exec.killed",
                    scope=grant.scope,
                    trigger=grant.trigger,
                    target=agent,
                    result="success",
                    detail={
                        "run_id": grant.run_id,
                        "command": _command_text(command),
                        "signals": list(outcome.signals),
                        "grace_seconds": grace_seconds,
                        "noticed_after_seconds": round(outcome.noticed_after or 0.0, 3),
                        "ended_after_seconds": round(outcome.ended_after or 0.0, 3),
                    },
                ),
            )
        return outcome

    # -- approvals ------------------------------------------------------------------

    def decide(self, approval_id: str, *, approve: bool, reason: str | None) -> ApprovalRecord:
        verb = "approve" if approve else "deny"
        actor = self.engine.require_person(verb, approval_id)
        who = actor.person
        state = self._state
        approval = state.get_approval(approval_id)
        if approval is None:
            raise NotFound(f"no approval request {approval_id}", hint="see `agentctl approvals`")
        now = self.engine.clock()
        if approval.status != "pending":
            raise AgentctlError(f"approval {approval_id} is {approval.status}, not pending")
        if approval.expires_at <= now:
            state.transition_approval(approval_id, "pending", "expired")
            raise AgentctlError(
                f"approval {approval_id} expired at {approval.expires_at:%Y-%m-%d %H:%M} UTC",
                hint="the requester runs exec again to ask anew",
            )
        refusal = self._approver_refusal(approval, actor)
        if refusal is not None:
            reason, hint = refusal
            self.engine.audit(
                _run_event(
                    approval,
                    action=f"approval.{verb}",
                    target=approval_id,
                    result="denied",
                    detail={"reason": reason, "approver": who},
                ),
            )
            raise GateRefused(reason, hint=hint)
        changed = state.transition_approval(
            approval_id,
            "pending",
            "approved" if approve else "denied",
            decided_by=who,
            decided_at=now,
            reason=reason,
        )
        if not changed:
            raise AgentctlError(f"approval {approval_id} was decided by someone else meanwhile")
        self.engine.audit(
            _run_event(
                approval,
                action=f"approval.{verb}",
                target=approval_id,
                result="success",
                detail={"approver": who, "reason": reason, "command": approval.command},
            ),
        )
        updated = state.get_approval(approval_id)
        assert updated is not None
        return updated

    def _approver_refusal(self, approval: ApprovalRecord, actor: Actor) -> tuple[str, str] | None:
        """Why ``actor`` may not decide ``approval`` (None: they may): they asked
        for the run, or the agent's applied contract does not name them."""
        requested_by = self._requester_principal(approval)
        if actor.person.casefold() == approval.requester.casefold() or (
            requested_by is not None and requested_by == actor.arn
        ):
            return (
                f"{actor.person} requested {approval.id} and cannot also approve or deny it",
                "another of the agent's approvers decides it",
            )
        record = self._state.get_agent(approval.agent)
        approvers = contract_from_record(record).approvers if record is not None else ()
        if matches_person(actor, approvers) is None:
            listed = ", ".join(approvers) or "nobody (its contract names no approvers)"
            return (
                f"{actor.person} ({actor.arn}) is not an approver of {approval.agent}",
                f"its contract's approvers: {listed}",
            )
        return None

    def _is_requester(self, approval: ApprovalRecord) -> bool:
        """Whether this run's verified caller is the one that asked for
        ``approval``: by principal, not only by the person's name, which a
        people: rule in the caller's own agentctl.yaml could borrow."""
        from agentctl.identity import same_caller

        requested_by = self._requester_principal(approval)
        return requested_by is None or same_caller(requested_by, self.engine.actor())

    def _requester_principal(self, approval: ApprovalRecord) -> str | None:
        """The verified principal that asked for ``approval``, as its audit event recorded it."""
        for event in self._state.audit_events(agent=approval.id, action="approval.request"):
            if event.target == approval.id:
                principal = event.detail.get("principal")
                return str(principal) if principal else None
        return None

    def pending(self, agent: str | None = None) -> list[ApprovalRecord]:
        now = self.engine.clock()
        return [
            a
            for a in self._state.list_approvals(status="pending", agent=agent)
            if a.expires_at > now
        ]


def _approval_id() -> str:
    return "apr-" + uuid.uuid4().hex[:10]


def _credential_facts(issued: Sequence[IssuedCredential]) -> list[dict[str, str]]:
    """What the audit says of issued credentials (never their values)."""
    return [
        {
            "provider": c.provider,
            "id": c.credential_id,
            "fingerprint": c.fingerprint,
            "expires_at": c.expires_at.isoformat(),
        }
        for c in issued
    ]


def _command_text(command: Sequence[str]) -> str:
    return shlex.join(command)


def _scope_text(contract: Contract, enforced: Sequence[str]) -> str:
    """Compact scope string for the audit trail: the permissions the run's
    credentials carry, each system's as its provider describes it. Only the
    systems whose providers issued credentials for this run: a grant declared
    for a system with no provider is enforced by nothing, so it is not scope."""
    from agentctl.providers.registry import provider_specs

    specs = provider_specs()
    parts: list[str] = []
    for system in sorted(set(enforced) & set(contract.permissions)):
        spec = specs.get(system)
        grant = contract.grant(spec) if spec is not None else None
        if spec is None or grant is None:
            continue
        parts.append(f"{system}:{spec.describe_grant(grant)}")
    return "; ".join(parts)


def latest_handoff(state: StateStore, agent: str) -> str | None:
    """The id of the latest ``rotate.handoff`` for ``agent`` (running exec runs
    take new credentials when it changes)."""
    from agentctl.engine import HANDOFF_ACTION

    events = state.audit_events(agent=agent, action=HANDOFF_ACTION, limit=1)
    return str(events[-1].detail.get("handoff")) if events else None
