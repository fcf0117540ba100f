"""Orchestration: apply, kill, revive, rotate, expiring, status.

The engine returns frozen dataclasses and never prints, prompts or exits.
It is built from injected parts (config, clock, state, providers, journal) so
tests run it against real local servers with temporary state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from agentctl.clock import Clock, system_clock
from agentctl.config import Config
from agentctl.durations import MAX_DURATION_SECONDS
from agentctl.errors import (
    AgentctlError,
    DamagedStateRow,
    GateRefused,
    NotFound,
    StateError,
    StateNotFound,
)
from agentctl.identity import Actor
from agentctl.kills import KILL_UNDONE, kill_undone
from agentctl.model import AgentStatus, Contract, JsonFields
from agentctl.providers.base import (
    ActionResult,
    Change,
    ChangeKind,
    HoldsLongLivedSecrets,
    LongLivedSecret,
    Provider,
    RotatesInSteps,
)
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from agentctl.audit_journal import AuditJournal

    # Imported by plan and apply where they need it: exec, credentials and kill
    # build an Engine too, and never plan.
    from agentctl.plan import AgentPlan, Plan, RecordedState
    from agentctl.providers.base import SecretRows
    from agentctl.reports import (
        AgentApplyResult,
        AgentView,
        ApplyReport,
        ExpiringItem,
        ExpiringReport,
        SecretAge,
    )
    from agentctl.state import StateStore
    from agentctl.state.records import AgentRecord, AgentSummary, ResourceRecord

DEFAULT_PARALLELISM = 16


@dataclass(frozen=True)
class LifecycleReport:
    """Outcome of kill / revive / rotate for one agent across providers."""

    agent: str
    action: str
    results: tuple[ActionResult, ...]
    already: bool = False
    state_recorded: bool = True
    audit_recorded_in: str = "state"  # "state" | "journal" | "nowhere" (kill only)
    notes: tuple[str, ...] = ()

    json_fields: ClassVar[JsonFields] = (
        "agent",
        "action",
        "ok",
        "already",
        ("providers", "results"),
        "state_recorded",
        "audit_recorded_in",
        "notes",
    )

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def recorded(self) -> bool:
        return self.audit_recorded_in != "nowhere"


# What the runtime principal (aws.runtime_principal, the host agent runs start
# on) may do: start agent sessions, and kill.
RUNTIME_COMMANDS = frozenset({"exec", "credentials", "kill"})


@dataclass
class Engine:
    """The core: plans, applies, kills and records, with injected parts."""

    config: Config
    providers: Mapping[str, Provider]
    state_factory: Callable[[], StateStore]
    # Who is acting, verified on first use (agentctl.identity); the CLI passes
    # a memoised resolver, so a command asks AWS or GitHub at most once.
    identify: Callable[[], Actor]
    clock: Clock = system_clock
    journal: AuditJournal | None = None
    # The URL state_factory opens, when the caller knows it: a plan without
    # --refresh then reads it with sqlite3 (agentctl.state.snapshot) instead of
    # opening the store, which costs the SQLAlchemy import.
    snapshot_url: str | None = None
    _state: StateStore | None = field(default=None, init=False, repr=False)
    # Set only while a kill runs whose caller could not be verified because
    # the identity service was unreachable (see kill).
    _unverified: Actor | None = field(default=None, init=False, repr=False)

    # -- who is acting ------------------------------------------------------------

    def actor(self) -> Actor:
        if self._unverified is not None:
            return self._unverified
        return self.identify()

    @property
    def operator(self) -> str:
        """The verified person acting (recorded in every audit event)."""
        return self.actor().person

    def require_person(self, command: str, target: str) -> Actor:
        """The verified person running a mutating ``command``; an agent's own
        session is refused (and the refusal audited): an agent never manages
        agents. Raises IdentityError when nobody could be verified."""
        actor = self.actor()
        reason = None
        if actor.agent is not None:
            reason = (
                f"{actor.principal.arn} is a session of agent {actor.agent}: "
                "an agent never manages agents"
            )
        elif command not in RUNTIME_COMMANDS and self._is_runtime_principal(actor):
            # Agent runs share the runtime host: a shell inside one that drops
            # the agent's keys falls back to the runtime profile, so that
            # principal may start sessions and pull the brake, nothing more.
            reason = (
                f"{actor.principal.arn} is the runtime principal (aws.runtime_principal): "
                "it starts agent sessions and manages nothing"
            )
        if reason is not None:
            # Refusing matters more than recording the refusal.
            with contextlib.suppress(StateError):
                self.audit(
                    AuditDraft(
                        actor=actor.agent or actor.person,
                        action="refused",
                        target=target,
                        result="denied",
                        detail={"command": command, "reason": reason},
                    ),
                )
            raise GateRefused(
                f"refused: {reason}",
                hint=f"run `agentctl {command}` as a person (your own AWS or GitHub credentials), "
                "not from inside an agent run or as the runtime host",
            )
        return actor

    def _is_runtime_principal(self, actor: Actor) -> bool:
        from agentctl.identity import is_principal

        aws = self.config.provider_settings.get("aws")
        return is_principal(actor.principal, getattr(aws, "runtime_principal", None))

    # -- plumbing -----------------------------------------------------------------

    @property
    def state(self) -> StateStore:
        if self._state is None:
            self._state = self.state_factory()
        return self._state

    def _try_state(self) -> StateStore | None:
        try:
            return self.state
        except StateError:
            return None

    def today(self) -> date:
        return self.clock().date()

    def audit(self, draft: AuditDraft, *, state: StateStore | None = None) -> str:
        """Record ``draft`` for the verified operator; fall back to the local journal
        if the state is down.

        Returns where the event went ("state" or "journal").
        """
        who = self.actor()
        draft = draft.with_detail(**who.proof())
        store = state if state is not None else self._try_state()
        if store is not None:
            try:
                store.append_audit(draft, operator=who.person)
                return "state"
            except StateError:
                pass
        if self.journal is None:
            raise StateError(
                f"cannot record the audit event for {draft.action} {draft.target}: the state "
                "store is unreachable and no fallback journal is configured",
                hint="set 'journal:' in agentctl.yaml",
            )
        self.journal.append(draft, operator=who.person, time=self.clock())
        return "journal"

    # -- plan / apply -----------------------------------------------------------

    def plan(
        self,
        contracts: Sequence[Contract],
        expired: Sequence[Contract] = (),
        *,
        refresh: bool = True,
        prune: bool = False,
        parallelism: int = DEFAULT_PARALLELISM,
        progress: Callable[[str], None] | None = None,
        recorded: bool = True,
    ) -> Plan:
        """``recorded=False``: the caller knows no state exists yet (see
        Session.state_file_absent); every agent is new, nothing is opened."""
        from agentctl.plan import compute_plan

        state: RecordedState | None = None
        if recorded and self._state is None and self.snapshot_url is not None:
            from agentctl.state.snapshot import read_plan_snapshot

            state = read_plan_snapshot(self.snapshot_url)
        if state is None and recorded:
            try:
                state = self.state.plan_snapshot()
            except StateNotFound:
                # Nothing recorded yet (a first plan, or a pull request's CI with no
                # state): every agent is new. Planning never creates the store.
                state = None
        return compute_plan(
            contracts=contracts,
            expired=expired,
            providers=self.providers,
            state=state,
            today=self.today(),
            refresh=refresh,
            prune=prune,
            parallelism=parallelism,
            progress=progress,
        )

    def apply(
        self,
        plan: Plan,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        progress: Callable[[AgentApplyResult], None] | None = None,
        on_lock_wait: Callable[[str], None] | None = None,
    ) -> ApplyReport:
        from agentctl.reports import ApplyReport

        self.require_person("apply", "contracts")
        state = self.state
        state.require_room()
        with state.apply_lock(
            self.config.lock_timeout_seconds, on_wait=on_lock_wait, operator=self.operator
        ):
            self.import_journal()
            with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
                results = []
                for outcome in pool.map(lambda a: self._apply_and_rekill(plan, a), plan.agents):
                    results.append(outcome)
                    if progress:
                        progress(outcome)
        return ApplyReport(agents=tuple(results))

    def _apply_and_rekill(self, plan: Plan, agent_plan: AgentPlan) -> AgentApplyResult:
        """Apply one agent; a killed agent whose kill was undone behind agentctl's
        back (the plan found it) is killed again, read back like any kill."""
        from agentctl.plan import AgentDisposition

        outcome = self._apply_agent(plan, agent_plan)
        if not agent_plan.kill_undone or agent_plan.disposition != AgentDisposition.KILLED:
            return outcome
        try:
            report = self.kill(
                agent_plan.agent,
                "kill undone behind agentctl's back: restored by apply",
                trigger=f"apply/{self.operator}",
            )
        except AgentctlError as exc:
            return dataclasses.replace(outcome, ok=False, error=exc.message)
        failed = "; ".join(f"{r.provider}: {r.detail}" for r in report.results if not r.ok)
        return dataclasses.replace(
            outcome,
            ok=outcome.ok and report.ok,
            results=outcome.results + tuple(r for r in report.results if not r.already),
            error="; ".join(e for e in (outcome.error, failed) if e) or None,
        )

    def import_journal(self) -> None:
        """Move audit events journaled while the state store was unreachable into
        its chain, and record the kills among them in the state: a kill whose
        event only reached the journal could not record the agent as killed
        either, and until it does the state would show it active.

        apply runs this first, also when it has nothing else to do. The person
        is verified only when there is something to import: an apply with
        nothing to write is a read, like plan (and then costs no STS call).
        """
        if self.journal is None or not self.journal.events():
            return
        self.require_person("apply", "contracts")
        from agentctl.audit import import_journal

        state = self.state
        # The kills' state first, then the events (which empties the journal):
        # a crash in between repeats the first part, never loses it.
        for event in self.journal.events():
            if event.action != "kill" or event.result not in {"success", "partial"}:
                continue
            reason = str(event.detail.get("reason") or "killed while the state store was down")
            killed = (
                AgentStatus.KILL_INCOMPLETE if event.result == "partial" else AgentStatus.KILLED
            )
            record = state.get_agent(event.target)
            if record is None:
                state.upsert_agent(
                    name=event.target,
                    owner="unknown",
                    purpose="",
                    execution_mode="autonomous",
                    expiry=None,
                    status=killed,
                    contract_hash=None,
                    status_reason=reason,
                )
            elif not record.status.killed and record.updated_at <= event.time:
                state.set_agent_status(event.target, killed, reason, expected=record.status)
        actor = self.actor()
        import_journal(state, self.journal, operator=actor.person, proof=actor.proof())

    def _apply_agent(self, plan: Plan, agent_plan: AgentPlan) -> AgentApplyResult:
        from agentctl.plan import AgentDisposition
        from agentctl.reports import AgentApplyResult

        state = self.state
        name = agent_plan.agent
        changes = plan.applicable(agent_plan)
        # A provider that could not be planned fails the agent, but the other
        # providers' changes still go through: one broken system never blocks
        # revoking or updating the rest.
        plan_errors = (
            "; ".join([*agent_plan.errors, *(c.summary for c in agent_plan.conflicts)]) or None
        )
        try:
            record, resources = state.get_agent_and_resources(name)
            if (
                record is not None
                and record.status.killed
                and agent_plan.disposition != AgentDisposition.KILLED
            ):
                # Killed after the plan was made: never undo a kill.
                return AgentApplyResult(
                    agent=name, ok=True, skipped="killed since the plan was made"
                )
            stale = self._stale_plan(agent_plan, record, resources)
            if stale is not None:
                return stale
            results: list[ActionResult] = []
            failed: str | None = None
            # Each change is recorded (resource + audit event, one commit) before the
            # next is made; the last one is recorded with the agent itself, so the
            # common one-change agent costs a single commit. A crash in between is
            # caught up by the next apply (see _catch_up).
            pending: tuple[Change, ActionResult] | None = None
            for change in changes:
                if pending is not None:
                    # Committed (with other agents' records: group commit)
                    # before the next change is made.
                    state.batched(functools.partial(self._record_one, agent_plan, *pending))
                result = self._apply_change(change)
                results.append(result)
                pending = (change, result)
                if not result.ok:
                    failed = f"{change.provider}: {result.detail}"
                    break
            complete = failed is None and plan_errors is None
            if complete and not changes:
                caught_up = self._catch_up(agent_plan)  # asks providers: outside the batch
                if caught_up is not None:
                    results.append(caught_up)
            last = pending

            def record_agent() -> tuple[AgentRecord | None, bool]:
                # Read in the write transaction: a kill recorded while the changes
                # were made is seen here, and none can land before the commit.
                record, resources = state.get_agent_and_resources(name)
                killed_meanwhile = (
                    bool(changes)
                    and agent_plan.disposition != AgentDisposition.KILLED
                    and record is not None
                    and record.status.killed
                )
                if last is not None:
                    self._record_change(agent_plan, *last, resources)
                if complete and not killed_meanwhile:
                    self._record_agent(agent_plan, changes, record, resources)
                return record, killed_meanwhile

            # One transaction for the agent, committed (with other agents'
            # records: group commit) before this returns.
            record, killed_meanwhile = state.batched(record_agent)
            if killed_meanwhile:
                assert record is not None
                return self._kill_again(agent_plan, record, changes, results)
            error = "; ".join(e for e in (plan_errors, failed) if e) or None
            return AgentApplyResult(
                agent=name, ok=error is None, results=tuple(results), error=error
            )
        except AgentctlError as exc:
            return AgentApplyResult(agent=name, ok=False, error=exc.message)

    def _stale_plan(
        self,
        agent_plan: AgentPlan,
        record: AgentRecord | None,
        resources: Mapping[str, ResourceRecord],
    ) -> AgentApplyResult | None:
        """None if the state still records the agent as it did when the plan was
        made; otherwise another run changed it since, and this plan is not applied
        to it (it would record this contract over changes the plan never saw)."""
        if agent_plan.basis is None:
            return None
        from agentctl.plan import AgentDisposition, state_basis
        from agentctl.reports import AgentApplyResult

        current = state_basis(
            record.status if record is not None else None,
            record.contract_hash if record is not None else None,
            [(r.provider, r.applied_hash) for r in resources.values()],
        )
        if current == agent_plan.basis:
            return None
        contract = agent_plan.contract
        expected = {
            AgentDisposition.EXPIRED: AgentStatus.EXPIRED,
            AgentDisposition.KILLED: AgentStatus.KILLED,
            AgentDisposition.ORPHAN: AgentStatus.REMOVED,
        }.get(agent_plan.disposition, AgentStatus.ACTIVE)
        if (
            record is not None
            and (record.status == expected or (expected.killed and record.status.killed))
            and (
                contract is None
                or (
                    record.contract_hash == contract.digest
                    and all(r.applied_hash == contract.digest for r in resources.values())
                )
            )
        ):
            return AgentApplyResult(
                agent=agent_plan.agent, ok=True, skipped="already applied by another agentctl run"
            )
        return AgentApplyResult(
            agent=agent_plan.agent,
            ok=False,
            error=f"{agent_plan.agent} was changed by another agentctl run after this plan was "
            "made; nothing was changed for it: run apply again to plan it afresh",
        )

    def _kill_again(
        self,
        agent_plan: AgentPlan,
        record: AgentRecord,
        changes: Sequence[Change],
        results: list[ActionResult],
    ) -> AgentApplyResult:
        """A kill landed while this agent's changes were written, and one of them
        may have reopened what the kill closed (a trust policy): kill it again in
        the providers written to."""
        from agentctl.reports import AgentApplyResult

        reason = record.status_reason or "killed during apply"
        killed = [
            self.providers[p].kill(agent_plan.agent, reason)
            for p in sorted({c.provider for c in changes})
        ]
        ok = all(r.ok for r in killed)
        return AgentApplyResult(
            agent=agent_plan.agent,
            ok=ok,
            results=tuple(results + killed),
            error=None
            if ok
            else "killed during apply; "
            + "; ".join(f"{r.provider}: {r.detail}" for r in killed if not r.ok),
            skipped="killed during this apply: the kill was asserted again",
        )

    def _apply_change(self, change: Change) -> ActionResult:
        provider = self.providers[change.provider]
        try:
            return provider.apply(change)
        except AgentctlError as exc:
            return ActionResult.failed(
                change.provider,
                change.agent,
                change.kind.value,
                exc,
                remaining=f"re-run apply to {change.kind.value} {change.agent} in {change.provider}",
            )

    def _record_one(self, agent_plan: AgentPlan, change: Change, result: ActionResult) -> None:
        """Record one change of an agent with more to come (inside a batch)."""
        _, recorded = self.state.get_agent_and_resources(agent_plan.agent)
        self._record_change(agent_plan, change, result, recorded)

    def _record_change(
        self,
        agent_plan: AgentPlan,
        change: Change,
        result: ActionResult,
        resources: dict[str, ResourceRecord],
    ) -> None:
        """Record one change's resource and audit event; ``resources`` (the
        agent's, read in this batch) is kept up to date."""
        state = self.state
        if result.ok:
            if change.kind == ChangeKind.REMOVE:
                state.delete_resource(change.agent, change.provider)
                resources.pop(change.provider, None)
            else:
                previous = resources.get(change.provider)
                resources[change.provider] = state.put_resource(
                    agent=change.agent,
                    provider=change.provider,
                    resource_id=result.resource_id or (previous.resource_id if previous else ""),
                    attributes={**(previous.attributes if previous else {}), **result.attributes},
                    applied_hash=agent_plan.contract.digest if agent_plan.contract else None,
                )
        self.audit(
            AuditDraft(
                actor=change.agent,
                action=f"apply.{change.kind.value}",
                scope=change.provider,
                target=f"{change.provider}:{result.resource_id or change.agent}",
                result="success" if result.ok else "failure",
                detail={
                    "summary": change.summary,
                    "detail": result.detail,
                    # Which contract the agent was converged to: with it, the chain
                    # alone says what each agent was left as.
                    "contract_hash": agent_plan.contract.digest if agent_plan.contract else None,
                },
            ),
            state=state,
        )

    def _catch_up(self, agent_plan: AgentPlan) -> ActionResult | None:
        """Record an agent whose providers already match its contract but whose
        state does not say so, with an audit event (``apply.record``).

        That is what an apply killed between a provider write and its state
        write leaves: the provider change stands, its record or audit event may
        be lost with the process. The next apply finds no provider change to
        make, so without this the state would keep the old contract (or no
        agent at all) and no audit event would ever cover the change.
        """
        from agentctl.plan import AgentDisposition, status_matches

        contract = agent_plan.contract
        if contract is None or agent_plan.disposition == AgentDisposition.ORPHAN:
            return None
        state = self.state
        name = contract.name
        expected = {
            AgentDisposition.EXPIRED: AgentStatus.EXPIRED,
            AgentDisposition.KILLED: AgentStatus.KILLED,
        }.get(agent_plan.disposition, AgentStatus.ACTIVE)
        stale: list[str] = []
        record, resources = state.get_agent_and_resources(name)
        if record is None:
            stale.append("agent not recorded")
        elif record.contract_hash != contract.digest or not status_matches(record.status, expected):
            stale.append(f"recorded as {record.status.value} with another contract version")
        recorded = set(resources)
        stale.extend(
            f"{r.provider} recorded with another contract version"
            for r in resources.values()
            if r.applied_hash != contract.digest
        )
        if agent_plan.record:
            # A granted provider with no record and no change planned: its
            # resource may exist already (a refreshing plan found it so).
            for provider_name, provider in self.providers.items():
                if provider_name in recorded or not contract.grants_to(provider_name):
                    continue
                observed = provider.observe(name)
                if observed.exists and observed.owned:
                    state.put_resource(
                        agent=name,
                        provider=provider_name,
                        resource_id=observed.resource_id or "",
                        attributes={
                            k: v
                            for k, v in observed.attributes.items()
                            if isinstance(v, str | int | float | bool) or v is None
                        },
                        applied_hash=contract.digest,
                    )
                    stale.append(f"{provider_name} resource {observed.resource_id} not recorded")
        if not stale:
            return None
        detail = (
            "the providers already match the contract; recorded it in the state "
            f"({'; '.join(stale)}: an earlier apply was interrupted)"
        )
        self.audit(
            AuditDraft(
                actor=name,
                action="apply.record",
                scope=",".join(sorted(recorded)) or None,
                target=name,
                result="success",
                detail={"summary": detail, "contract_hash": contract.digest},
            ),
            state=state,
        )
        return ActionResult(provider="state", agent=name, action="record", ok=True, detail=detail)

    def _record_agent(
        self,
        agent_plan: AgentPlan,
        changes: Sequence[Change],
        existing: AgentRecord | None,
        resources: Mapping[str, ResourceRecord],
    ) -> None:
        """Record the agent as converged to its contract; ``existing`` and
        ``resources`` are its records read in this batch."""
        from agentctl.plan import AgentDisposition, status_matches

        state = self.state
        contract = agent_plan.contract
        if agent_plan.disposition == AgentDisposition.ORPHAN:
            if changes:  # pruned
                state.set_agent_status(
                    agent_plan.agent, AgentStatus.REMOVED, "contract removed; pruned"
                )
            return
        if contract is None:
            return
        status = {
            AgentDisposition.EXPIRED: AgentStatus.EXPIRED,
            AgentDisposition.KILLED: AgentStatus.KILLED,
        }.get(agent_plan.disposition, AgentStatus.ACTIVE)
        # Every provider of this agent now matches this contract: record it, so the
        # next apply can skip the agent without asking the providers again.
        for resource in resources.values():
            if resource.applied_hash != contract.digest:
                state.put_resource(
                    agent=resource.agent,
                    provider=resource.provider,
                    resource_id=resource.resource_id,
                    attributes=dict(resource.attributes),
                    applied_hash=contract.digest,
                )
        if (
            existing is not None
            and existing.contract_hash == contract.digest
            and status_matches(existing.status, status)
            and existing.document is not None
            and not changes
        ):
            return  # nothing changed: keep the second apply free of writes
        # The facts first, keeping whatever status is recorded; then the status,
        # compare-and-set: a kill recorded meanwhile (by a concurrent `agentctl
        # kill`, which never takes the apply lock) is never overwritten.
        recorded = state.upsert_agent(
            name=contract.name,
            owner=contract.owner,
            purpose=contract.purpose,
            execution_mode=contract.execution_mode.value,
            expiry=contract.expiry,
            status=None,
            contract_hash=contract.digest,
            status_reason="expired" if status == AgentStatus.EXPIRED else None,
            document=contract.document(),
        )
        # A kill, complete or not, is never overwritten by apply (an incomplete
        # one is finished only by `agentctl kill`).
        if recorded.status != status and not recorded.status.killed:
            state.set_agent_status(
                contract.name,
                status,
                "expired" if status == AgentStatus.EXPIRED else None,
                expected=recorded.status,
            )

    # -- kill / revive --------------------------------------------------------------

    def _for_each_provider(
        self, fn: Callable[[Provider], ActionResult], action: str, agent: str
    ) -> tuple[ActionResult, ...]:
        def guarded(name: str) -> ActionResult:
            # Each provider is constructed here, inside the guard: one that
            # cannot be (a half-installed plug-in, its SDK missing) is that
            # system's failure, and the other systems are still revoked.
            again = f"run `agentctl {action} {agent}` again"
            try:
                provider = self.providers[name]
            except Exception as exc:
                return ActionResult.failed(
                    name, agent, action, exc, remaining=f"{again} once the {name} provider loads"
                )
            try:
                return fn(provider)
            except Exception as exc:  # one provider failing must never stop the others
                return ActionResult.failed(
                    name, agent, action, exc, remaining=f"{again} once {name} is reachable"
                )

        names = list(self.providers)
        if not names:
            return ()
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            return tuple(pool.map(guarded, names))

    def kill(self, name: str, reason: str, *, trigger: str | None = None) -> LifecycleReport:
        """Revoke one agent everywhere. Never takes the apply lock; works with no
        contract and with the state store empty or unreachable. ``trigger``
        says what asked for it (default: the operator).

        Kill is the emergency brake, so it alone is not stopped by an identity
        service that cannot be asked (STS or GitHub down, no network): it goes
        on and its events name the operator ``unverified (<why>)``. A caller
        who *is* verified and not allowed (an agent's session) is refused, and
        so are rejected or missing credentials."""
        from agentctl.identity import IdentityError

        try:
            self.require_person("kill", name)
        except IdentityError as exc:
            if exc.unreachable is None or self._inside_agent_run():
                raise
            self._unverified = Actor.unverified(exc.unreachable)
        try:
            return self._kill(name, reason, trigger=trigger)
        finally:
            self._unverified = None

    def _inside_agent_run(self) -> bool:
        # `agentctl exec` sets AGENTCTL_AGENT in its child. A child can unset
        # it, so this is no boundary; it only keeps an agent that merely cut
        # itself off from STS from being let through as "unverified".
        return bool(self.config.identity_sources().environ.get("AGENTCTL_AGENT"))

    def _kill(self, name: str, reason: str, *, trigger: str | None) -> LifecycleReport:
        notes: list[str] = []
        if self._unverified is not None:
            notes.append(
                f"operator {self._unverified.person}: kill is the emergency brake, so it "
                "went ahead, and its audit event says nobody was verified"
            )

        damaged: list[DamagedStateRow] = []
        recorded_in: list[str] = []  # the providers the state records resources in

        def look_up() -> tuple[StateStore | None, AgentRecord | None]:
            state = self._try_state()
            if state is None:
                return None, None
            try:
                record = state.get_agent(name)
            except DamagedStateRow as exc:
                # Its row holds what agentctl never wrote: the state itself
                # works, and the kill is recorded over that row below.
                damaged.append(exc)
                record = None
            except StateError:
                return None, None
            with contextlib.suppress(StateError):  # a damaged resource row: found by tag
                recorded_in.extend(r.provider for r in state.list_resources(name))
            return state, record

        # Revocation does not wait for the state store: the providers find the
        # agent by its exact name and tags, while the record is read alongside.
        with ThreadPoolExecutor(max_workers=1) as side:
            lookup = side.submit(look_up)
            results = self._for_each_provider(lambda p: p.kill(name, reason), "kill", name)
            state, record = lookup.result()
        results += _not_installed(name, recorded_in, self.providers)
        if state is None:
            notes.append("state store unreachable: providers were searched by tag")
        for exc in damaged:
            notes.append(
                f"{exc.message}; the providers were searched by the agent's name and tags, "
                "and the kill is recorded over that row (restore the state from a backup "
                "to recover its other columns)"
            )
        # A provider that found nothing returns no resource id; one that could
        # not tell (not configured, unreachable, nothing recorded) is no
        # evidence either way.
        found_anywhere = (
            record is not None
            or bool(damaged)
            or any(r.resource_id or not (r.ok or r.undetermined) for r in results)
        )
        if not found_anywhere and (state is not None or not any(r.undetermined for r in results)):
            unsure = [r for r in results if r.undetermined]
            raise NotFound(
                f"no agent named {name!r} in the state store or in any provider",
                hint="check the name with `agentctl list` (names are matched exactly)"
                + "".join(
                    f"; {r.provider} could not be searched ({r.detail}): {r.remaining}"
                    for r in unsure
                ),
            )
        ok = all(r.ok for r in results)
        status = AgentStatus.KILLED if ok else AgentStatus.KILL_INCOMPLETE
        already = (
            record is not None
            and record.status == AgentStatus.KILLED
            and all(r.already or r.resource_id is None for r in results if r.ok)
            and ok
        )
        state_recorded = False
        if state is not None:
            try:
                if damaged:
                    # Only the status columns are written: nothing of the
                    # damaged row is read, and nothing else of it is guessed.
                    state_recorded = state.set_agent_status(name, status, reason)
                elif record is None:
                    state.upsert_agent(
                        name=name,
                        owner="unknown",
                        purpose="",
                        execution_mode="autonomous",
                        expiry=None,
                        status=status,
                        contract_hash=None,
                        status_reason=reason,
                    )
                elif record.status != status:
                    state.set_agent_status(name, status, reason)
                if not damaged:
                    state_recorded = True
            except StateError as exc:
                notes.append(
                    f"the state store did not take the kill ({exc.message}): "
                    "the audit event goes to the journal"
                )
        ok = all(r.ok for r in results)
        # The revocation stands whatever happens to its record (a kill switch
        # that a full disk could stop is none); an event nothing would take is
        # reported, and the next `agentctl kill` records it.
        try:
            where = self._audit_kill(name, reason, trigger, already, ok, status, results, state)
        except StateError as exc:
            where = "nowhere"
            notes.append(
                f"the kill is NOT in the audit trail: {exc.message} ({exc.hint}); "
                f"then run `agentctl kill {name}` again to record it"
            )
        return LifecycleReport(
            agent=name,
            action="kill",
            results=results,
            already=already,
            state_recorded=state_recorded,
            audit_recorded_in=where,
            notes=tuple(notes),
        )

    def _audit_kill(
        self,
        name: str,
        reason: str,
        trigger: str | None,
        already: bool,
        ok: bool,
        status: AgentStatus,
        results: Sequence[ActionResult],
        state: StateStore | None,
    ) -> str:
        return self.audit(
            AuditDraft(
                actor=name,
                action="kill",
                target=name,
                result="already-killed" if already else ("success" if ok else "partial"),
                trigger=trigger or f"operator/{self.operator}",
                detail={
                    "reason": reason,
                    "status": status.value,
                    "providers": {r.provider: ("ok" if r.ok else r.detail) for r in results},
                    "verified": {r.provider: list(r.verified) for r in results if r.verified},
                },
            ),
            state=state,
        )

    def revive(self, name: str, reason: str) -> LifecycleReport:
        self.require_person("revive", name)
        state = self.state
        record = state.get_agent(name)
        if record is None:
            raise NotFound(f"no agent named {name!r} in the state store")
        if not record.status.killed:
            raise AgentctlError(
                f"{name} is {record.status.value}, not killed: nothing to revive",
                hint="revive only undoes `agentctl kill`",
            )
        state.require_room()
        results = self._for_each_provider(lambda p: p.revive(name, reason), "revive", name)
        ok = all(r.ok for r in results)
        if ok:
            status = AgentStatus.ACTIVE
            if record.expiry is not None and self.today() >= record.expiry:
                status = AgentStatus.EXPIRED
            state.set_agent_status(name, status, reason)
        self.audit(
            AuditDraft(
                actor=name,
                action="revive",
                target=name,
                result="success" if ok else "partial",
                trigger=f"operator/{self.operator}",
                detail={"reason": reason},
            ),
            state=state,
        )
        return LifecycleReport(agent=name, action="revive", results=results)

    # -- rotate -----------------------------------------------------------------------

    def rotate(
        self, names: Iterable[str] | None, provider: str | None = None
    ) -> list[LifecycleReport]:
        given = list(names) if names is not None else None
        self.require_person("rotate", ",".join(given) if given is not None else "--all")
        state = self.state
        state.require_room()
        if given is None:
            targets = [a.name for a in state.list_agents() if a.status == AgentStatus.ACTIVE]
        else:
            targets = given
        reports = []
        for name in targets:
            record = state.get_agent(name)
            if record is None:
                raise NotFound(f"no agent named {name!r} in the state store")
            if record.status != AgentStatus.ACTIVE:
                raise AgentctlError(
                    f"{name} is {record.status.value}: only active agents are rotated",
                )
            involved = {r.provider for r in state.list_resources(name)}
            chosen = [
                p for n, p in self.providers.items() if n in involved and provider in (None, n)
            ]
            results: list[ActionResult] = []
            # First every provider mints and verifies the new credentials and fixes
            # which old ones go; running runs then take new credentials (exec's
            # refresh); only then are the old ones revoked.
            steps: list[tuple[Provider, Callable[[], ActionResult]]] = []
            for prov in chosen:
                try:
                    if isinstance(prov, RotatesInSteps):
                        steps.append((prov, prov.begin_rotate(name)))
                    else:
                        steps.append((prov, functools.partial(prov.rotate, name)))
                except AgentctlError as exc:
                    results.append(_rotate_failed(prov, name, exc))
            handed, missed = self._hand_over(name) if steps else ((), ())
            for prov, finish in steps:
                try:
                    results.append(finish())
                except AgentctlError as exc:
                    results.append(_rotate_failed(prov, name, exc))
            ok = all(r.ok for r in results)
            if ok and results:
                state.mark_rotated(name, self.clock())
            self.audit(
                AuditDraft(
                    actor=name,
                    action="rotate",
                    target=name,
                    scope=",".join(r.provider for r in results) or None,
                    result="success" if ok else "failure",
                    trigger=f"operator/{self.operator}",
                    detail={
                        **{r.provider: r.detail for r in results},
                        "runs_handed_over": list(handed),
                        "runs_not_handed_over": list(missed),
                    },
                ),
                state=state,
            )
            notes: tuple[str, ...] = () if results else ("no provisioned resources to rotate",)
            notes += tuple(
                f"run {run} took the new credentials before the old ones went" for run in handed
            )
            notes += tuple(
                f"run {run} did not take new credentials within "
                f"{self.config.rotation_overlap_seconds:g}s: its old ones are revoked now"
                for run in missed
            )
            reports.append(
                LifecycleReport(agent=name, action="rotate", results=tuple(results), notes=notes)
            )
        return reports

    def _running_runs(self, name: str) -> list[str]:
        """exec runs of ``name`` that started (within the longest run) and have
        not ended, by the audit trail (a crashed exec counts until then)."""
        state = self.state
        since = self.clock() - timedelta(seconds=MAX_DURATION_SECONDS)
        started = [
            str(e.detail["run_id"])
            for e in state.audit_events(agent=name, since=since, action="credentials.issue")
            if e.actor == name
            and e.detail.get("run_id")
            and e.detail.get("command") not in ONE_OFF_ISSUES
        ]
        ended = {
            str(e.detail.get("run_id"))
            for e in state.audit_events(agent=name, since=since, action="exec.end")
        }
        return [run for run in started if run not in ended]

    def _hand_over(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Ask running exec runs of ``name`` to take new credentials now (an
        audited ``rotate.handoff`` they watch for) and wait up to
        ``rotation_overlap_seconds`` until each has; returns (took, did not)."""
        import time

        running = self._running_runs(name)
        if not running:
            return (), ()
        handoff = uuid.uuid4().hex[:12]
        overlap = self.config.rotation_overlap_seconds
        self.audit(
            AuditDraft(
                actor=name,
                action=HANDOFF_ACTION,
                target=name,
                result="pending",
                trigger=f"operator/{self.operator}",
                detail={"handoff": handoff, "runs": running, "overlap_seconds": overlap},
            ),
        )
        deadline = time.monotonic() + overlap
        waiting = set(running)
        while True:
            took = {
                str(e.detail.get("run_id"))
                for e in self.state.audit_events(
                    agent=name, action="credentials.refresh", limit=10 * len(running) + 10
                )
                if e.detail.get("handoff") == handoff
            }
            waiting -= took
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        return (
            tuple(r for r in running if r not in waiting),
            tuple(r for r in running if r in waiting),
        )

    # -- expiring / status --------------------------------------------------------

    def expiring(
        self,
        contracts: Sequence[Contract],
        expired: Sequence[Contract],
        *,
        days: int,
        include_credentials: bool = True,
        recorded: bool = True,
    ) -> ExpiringReport:
        """What is due within ``days``. ``recorded=False``: no state exists to
        read (agentctl's own default store, never created: nothing was applied
        from here, so nothing issued, rotated or killed): the contracts alone,
        without opening, and so creating, a store."""
        from agentctl.durations import check_days
        from agentctl.reports import ExpiringItem, ExpiringReport

        today = self.today()
        horizon = today + timedelta(days=check_days(days))
        items: list[ExpiringItem] = []

        def due(
            agent: str,
            owner: str,
            kind: str,
            when: date,
            detail: str,
            *,
            file: str | None = None,
            secret: LongLivedSecret | None = None,
        ) -> None:
            items.append(
                ExpiringItem(
                    agent, owner, kind, when, (when - today).days, detail, file=file, secret=secret
                )
            )

        for contract in expired:
            due(
                contract.name,
                contract.owner,
                "contract-expired",
                contract.expiry,
                f"expired on {contract.expiry.isoformat()}: renew the contract or remove it",
                file=contract.source or None,
            )
        for contract in contracts:
            if contract.expiry <= horizon:
                left = (contract.expiry - today).days
                due(
                    contract.name,
                    contract.owner,
                    "contract-expiring",
                    contract.expiry,
                    f"expires in {_days(left)} ({contract.expiry.isoformat()}): "
                    "extend the expiry or let it lapse",
                    file=contract.source or None,
                )
        owners = {c.name: c.owner for c in [*contracts, *expired]}
        # Cron runs this: a state store that cannot be read fails the run (exit
        # 1, one line), never reports "nothing due". Only a state that does not
        # exist yet (nothing applied, so nothing issued or killed) is empty.
        records: Sequence[AgentRecord] = []
        # An agent row holding what agentctl never writes is an item of its
        # own (cron mails it), not the end of the report for every other agent.
        damaged: list[DamagedStateRow] = []
        try:
            if recorded:
                records = self.state.list_agents(damaged)
        except StateNotFound:
            if include_credentials:
                raise
        if include_credentials and recorded:
            for kind, record, when, detail in self._credentials_due(records, today, horizon):
                due(record.name, owners.get(record.name, record.owner), kind, when, detail)
            for kind, record, when, detail, secret in self._long_lived_due(records, today, horizon):
                owner = owners.get(record.name, record.owner)
                due(record.name, owner, kind, when, detail, secret=secret)
        for row in damaged:
            agent = row.agent or "(unreadable name)"
            due(
                agent,
                owners.get(agent, "unknown"),
                "state-damaged",
                today,
                f"its row in the state is damaged (table {row.table}, column {row.column}): "
                "restore the state database from a backup or correct that column, and run "
                f"`agentctl audit verify`; `agentctl kill {agent}` still revokes it everywhere",
            )
        for record in records:
            if record.status == AgentStatus.KILL_INCOMPLETE:
                since = (record.killed_at or record.updated_at).date()
                due(
                    record.name,
                    owners.get(record.name, record.owner),
                    "kill-incomplete",
                    since,
                    f"killed on {since.isoformat()} but not confirmed in every system: "
                    f"run `agentctl kill {record.name}` again (it says what is left to do)",
                )
        return ExpiringReport(days=days, today=today, items=tuple(items))

    def _credentials_due(
        self, records: Sequence[AgentRecord], today: date, horizon: date
    ) -> Iterator[tuple[str, AgentRecord, date, str]]:
        """(kind, agent, due, detail) for each active agent whose credentials are
        older than the rotation age, then for each credential a provider holds
        across runs (a service account's API token, not an hour-long session)
        that expires within the horizon or is older than the rotation age.
        Short-lived ones (under a day) renew themselves on every run."""
        state = self.state
        now = self.clock()
        max_days = self.config.rotation_max_age_days
        max_age = timedelta(days=max_days)
        active = {r.name: r for r in records if r.status == AgentStatus.ACTIVE}
        for record in active.values():
            since = record.last_rotated_at or record.created_at
            when = (since + max_age).date()
            if when <= today and state.list_resources(record.name):
                yield (
                    "credential-rotation-due",
                    record,
                    when,
                    f"credentials last rotated {since.date().isoformat()} "
                    f"(older than {max_days} days): run `agentctl rotate {record.name}`",
                )
        # Those providers report their own, with the steps (_long_lived_due).
        reported = {name for name, _ in self._secret_holders()}
        for credential in state.list_credentials(live_at=now):
            holder = active.get(credential.agent)
            if holder is None or credential.provider in reported:
                continue
            if credential.expires_at - credential.issued_at < timedelta(days=1):
                continue
            age = (now - credential.issued_at).days
            expires = credential.expires_at.date()
            what = (
                f"{credential.provider} {credential.kind} {credential.id} "
                f"(fingerprint {credential.fingerprint}, {age} days old)"
            )
            how = f"`agentctl rotate {credential.agent}` says how to replace it"
            if expires <= horizon:
                left = (expires - today).days
                yield (
                    "credential-expiring",
                    holder,
                    expires,
                    f"{what} expires in {_days(left)} ({expires.isoformat()}): {how}",
                )
            elif now - credential.issued_at >= max_age:
                yield (
                    "credential-rotation-due",
                    holder,
                    (credential.issued_at + max_age).date(),
                    f"{what} is older than {max_days} days: {how}",
                )

    def _secret_holders(self) -> list[tuple[str, HoldsLongLivedSecrets]]:
        return [
            (name, provider)
            for name, provider in self.providers.items()
            if isinstance(provider, HoldsLongLivedSecrets)
        ]

    def _long_lived_due(
        self, records: Sequence[AgentRecord], today: date, horizon: date
    ) -> Iterator[tuple[str, AgentRecord, date, str, LongLivedSecret]]:
        """Each active agent's long-lived secret (a GitHub App key, a Jira API
        token) that expires within the horizon or is older than
        ``rotation_max_age_days``, with the provider's exact replacement steps.
        A secret of unknown age is due once it is certainly that old: it was
        stored before its tracking began."""
        now = self.clock()
        max_days = self.config.rotation_max_age_days
        max_age = timedelta(days=max_days)
        active = {r.name: r for r in records if r.status == AgentStatus.ACTIVE}
        for _, provider in self._secret_holders():
            for secret in provider.long_lived_secrets():
                holder = active.get(secret.agent)
                if holder is None:
                    continue
                at_least = secret.min_age_days(now)
                if secret.created_at is not None:
                    age = f"{_days(at_least)} old"
                else:
                    age = (
                        "age unknown: stored before agentctl recorded key ages, tracked since "
                        f"{secret.tracked_since.date().isoformat()}, so at least "
                        f"{_days(at_least)} old"
                    )
                what = f"{secret.provider} {secret.kind} {secret.id} (" + (
                    f"fingerprint {secret.fingerprint}, " if secret.fingerprint else ""
                )
                what += f"{age})"
                expires = secret.expires_at.date() if secret.expires_at else None
                if expires is not None and expires <= horizon:
                    left = (expires - today).days
                    steps = provider.replacement_steps(secret)
                    yield (
                        "credential-expiring",
                        holder,
                        expires,
                        f"{what} expires in {_days(left)} ({expires.isoformat()}): {steps}",
                        secret,
                    )
                elif at_least >= max_days:
                    since = secret.created_at or secret.tracked_since
                    steps = provider.replacement_steps(secret)
                    yield (
                        "credential-rotation-due",
                        holder,
                        (since + max_age).date(),
                        f"{what} is older than {max_days} days: {steps}",
                        secret,
                    )

    def drift(self, record: AgentRecord) -> tuple[str, ...]:
        """What differs between the agent's providers and its applied contract;
        for a killed agent, what of its kill no longer holds."""
        if record.status.killed:
            return kill_undone(self.providers.values(), record.name)
        if record.document is None or record.status != AgentStatus.ACTIVE:
            return ()
        contract = Contract.from_document(record.document, source=f"state:{record.name}")
        found: list[str] = []
        for resource in self.state.list_resources(record.name):
            provider = self.providers.get(resource.provider)
            if provider is None:
                continue
            try:
                observed = provider.observe(record.name)
                changes = provider.plan(contract, observed, expired=False)
            except AgentctlError as exc:
                found.append(f"{resource.provider}: cannot observe ({exc.reason()})")
                continue
            found.extend(
                f"{c.provider}: {c.summary}"
                for c in changes
                if c.mutating or c.kind in (ChangeKind.DRIFT, ChangeKind.CONFLICT)
            )
        return tuple(found)

    def status(
        self,
        name: str | None = None,
        *,
        refresh: bool = False,
        progress: Callable[[str], None] | None = None,
        damaged: list[DamagedStateRow] | None = None,
    ) -> list[AgentView]:
        """Agents as recorded; ``refresh`` also asks the providers, to report drift
        (``progress`` is called with each agent's name once its providers answered).
        ``damaged``: an agent row holding what agentctl never writes is added
        there and left out, and the others are shown (without it: raised)."""
        now = self.clock()
        if not name and not refresh and self._state is None and self.snapshot_url is not None:
            from agentctl.state.snapshot import NotInSnapshot, read_status_snapshot

            # Every agent on a plain SQLite state: read with sqlite3, without
            # the SQLAlchemy import (None: the store decides, as below).
            seen: list[DamagedStateRow] | None = None if damaged is None else []
            snapshot = read_status_snapshot(self.snapshot_url, now, seen)
            if snapshot is not None:
                try:
                    secrets = self._secret_ages(None, now, snapshot)
                except NotInSnapshot:
                    # a provider asked for rows it did not read (a clock that
                    # stepped back): the store answers everything, as below
                    pass
                else:
                    if damaged is not None and seen:
                        damaged.extend(seen)
                    return self._views(
                        snapshot.agents,
                        snapshot.providers,
                        snapshot.live_credential_counts(),
                        secrets,
                        {},
                        now,
                    )
        state = self.state
        full: list[AgentRecord | None] = []
        if name or refresh:  # drift needs each agent's applied contract
            full = [state.get_agent(name)] if name else list(state.list_agents(damaged))
        if name and full[0] is None:
            raise NotFound(
                f"no agent named {name!r} in the state store", hint="see `agentctl list`"
            )
        drift: dict[str, tuple[str, ...]] = {}
        if refresh:

            def drift_of(record: AgentRecord) -> tuple[str, tuple[str, ...]]:
                found = self.drift(record)
                if progress:
                    progress(record.name)
                return record.name, found

            with ThreadPoolExecutor(max_workers=DEFAULT_PARALLELISM) as pool:
                drift = dict(pool.map(drift_of, [r for r in full if r]))
        # Without --refresh, every agent's row is read without its applied
        # contract and bookkeeping timestamps (most of the read at 10,000).
        records: Sequence[AgentRecord | AgentSummary | None] = (
            full if name or refresh else state.agent_summaries(damaged)
        )
        # Three queries whatever the number of agents (10,000 agents took two
        # queries each, 37 s): resources and live credential counts in bulk.
        if name:
            providers_of = {name: [r.provider for r in state.list_resources(name)]}
            live_counts = {name: len(state.list_credentials(agent=name, live_at=now))}
        else:
            providers_of = state.providers_by_agent()
            live_counts = state.live_credential_counts(now)
        secrets = self._secret_ages(name, now, None)
        return self._views(records, providers_of, live_counts, secrets, drift, now)

    def _secret_ages(
        self, name: str | None, now: datetime, rows: SecretRows | None
    ) -> dict[str, list[SecretAge]]:
        from agentctl.reports import SecretAge

        secrets: dict[str, list[SecretAge]] = {}
        for _, holder in self._secret_holders():
            for secret in holder.long_lived_secrets(rows):
                if name is None or secret.agent == name:
                    secrets.setdefault(secret.agent, []).append(SecretAge.of(secret, now))
        return secrets

    @staticmethod
    def _views(
        records: Sequence[AgentRecord | AgentSummary | None],
        providers_of: Mapping[str, Sequence[str]],
        live_counts: Mapping[str, int],
        secrets: Mapping[str, Sequence[SecretAge]],
        drift: Mapping[str, tuple[str, ...]],
        now: datetime,
    ) -> list[AgentView]:
        from agentctl.reports import AgentView

        today = now.date()
        active = AgentStatus.ACTIVE
        views = []
        for record in records:
            assert record is not None
            agent_drift = drift.get(record.name, ())
            # AgentStatus is a StrEnum: the member is its value (10,000 `.value`
            # lookups were a measurable part of `status`).
            status: str = record.status
            if record.status.killed and any(d.startswith(KILL_UNDONE) for d in agent_drift):
                status = KILL_UNDONE
            if status == active:
                if record.expiry is not None and today >= record.expiry:
                    status = AgentStatus.EXPIRED
                elif agent_drift:
                    status = "drifted"
            views.append(
                AgentView(
                    name=record.name,
                    owner=record.owner,
                    execution_mode=record.execution_mode,
                    expiry=record.expiry,
                    status=str(status),
                    providers=tuple(sorted(providers_of.get(record.name, ()))),
                    last_rotated_at=record.last_rotated_at,
                    live_credentials=live_counts.get(record.name, 0),
                    status_reason=record.status_reason,
                    drift=agent_drift,
                    long_lived_secrets=tuple(secrets.get(record.name, ())),
                )
            )
        return views


def _days(count: int) -> str:
    return f"{count} day{'s' if count != 1 else ''}"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# The audit action running exec runs watch for: take new credentials now.
HANDOFF_ACTION = "rotate.handoff"
# credentials.issue commands that are one-off fetches, not running exec runs.
ONE_OFF_ISSUES = ("credentials", "git-credential")


def _rotate_failed(provider: Provider, agent: str, exc: AgentctlError) -> ActionResult:
    return ActionResult.failed(
        provider.name, agent, "rotate", exc, remaining="old credentials were left in place"
    )


_PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _not_installed(
    agent: str, recorded_in: Iterable[str], installed: Mapping[str, object]
) -> tuple[ActionResult, ...]:
    """A ✗ for each provider the state records a resource of ``agent`` in that
    is not installed here: a kill must not say "killed" while a system it
    could not even ask may still hold the agent's access (a provider package
    missing on this machine, or a row written outside agentctl)."""
    results = []
    for provider in sorted(set(recorded_in)):
        if provider in installed:
            continue
        shown = provider if _PROVIDER_NAME.fullmatch(provider) else "(unreadable name)"
        results.append(
            ActionResult(
                provider=shown,
                agent=agent,
                action="kill",
                ok=False,
                detail=f"the state records a {shown} resource for {agent}, but no provider "
                f"named {shown} is installed here: nothing in that system was revoked",
                remaining=f"install the package that provides the {shown} provider and run "
                f"`agentctl kill {agent}` again, or revoke {agent} in that system by hand; "
                "if agentctl never wrote that row (`agentctl audit verify` shows what it "
                "recorded), restore the state database from a backup",
            )
        )
    return tuple(results)
