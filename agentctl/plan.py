"""Desired (contracts) vs recorded (state) vs observed (providers) -> Plan.

The plan is pure data: which agent, which provider, which change and why.
Computing it never mutates anything; ``apply`` executes exactly it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeAlias

from agentctl.errors import AgentctlError
from agentctl.kills import KILL_UNDONE, kill_undone
from agentctl.model import AgentStatus, Contract, JsonFields
from agentctl.providers.base import Change, ChangeKind, NotesOnPlan, Observed, Provider

if TYPE_CHECKING:
    from agentctl.state.records import AgentRecord, ResourceRecord
    from agentctl.state.snapshot import RecordedAgent, RecordedResource

# What a plan for one agent is based on in the state (see state_basis): the
# agent's recorded status, its contract hash, and (provider, applied hash) per resource.
StateBasis: TypeAlias = "tuple[str | None, str | None, tuple[tuple[str, str | None], ...]]"


class RecordedState(Protocol):
    """What a plan reads of the state: a StateStore, or the sqlite3 snapshot a
    plan without --refresh reads instead (agentctl.state.snapshot)."""

    def list_agents(self) -> Sequence[AgentRecord] | Sequence[RecordedAgent]: ...

    def list_resources(self) -> Sequence[ResourceRecord] | Sequence[RecordedResource]: ...


class AgentDisposition:
    """Why an agent is in the plan."""

    ACTIVE = "active"
    EXPIRED = "expired"
    ORPHAN = "orphan"  # recorded in state, contract gone: removed only with --prune
    KILLED = "killed"


@dataclass(frozen=True)
class AgentPlan:
    """What apply would do for one agent, and the state it was planned against."""

    agent: str
    disposition: str
    owner: str | None
    contract: Contract | None
    changes: tuple[Change, ...] = ()
    declared: tuple[str, ...] = ()  # systems declared but with no provider installed
    errors: tuple[str, ...] = ()  # observe/plan failures, per provider
    # The providers need no change but the state does not record the agent as
    # its contract says (an earlier apply was interrupted between the provider
    # write and the state write): apply records and audits it.
    record: bool = False
    # What the state recorded for the agent when the plan was made (see
    # state_basis). apply, holding the lock, re-reads it: if another run changed
    # the agent meanwhile, this plan is stale for it and is not applied.
    basis: StateBasis | None = None
    # Killed agents only (refreshing plan): what of the kill no longer holds
    # (see kills.kill_undone); `agentctl kill NAME` restores it.
    kill_undone: tuple[str, ...] = ()

    json_fields: ClassVar[JsonFields] = (
        "agent",
        "disposition",
        "owner",
        "changes",
        ("declared_not_enforced", "declared"),
        "errors",
        "record",
        "kill_undone",
    )

    @property
    def mutating(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.mutating)

    @property
    def drift(self) -> tuple[Change, ...]:
        """Differences apply reports but does not change (see ChangeKind.DRIFT)."""
        return tuple(c for c in self.changes if c.kind == ChangeKind.DRIFT)

    @property
    def conflicts(self) -> tuple[Change, ...]:
        """Resources in the way that agentctl will not touch: need a human."""
        return tuple(c for c in self.changes if c.kind == ChangeKind.CONFLICT)

    @property
    def failed_to_plan(self) -> bool:
        return bool(self.errors or self.conflicts)


@dataclass(frozen=True)
class Plan:
    """What apply would do for every agent."""

    agents: tuple[AgentPlan, ...]
    prune: bool = False
    refreshed: bool = True
    notes: tuple[str, ...] = field(default=())

    json_fields: ClassVar[JsonFields] = ("agents", "summary", "prune", "refreshed", "notes")

    @property
    def has_changes(self) -> bool:
        """Whether apply has work: a change in a system, a state record to
        write, or a kill undone behind agentctl's back to restore."""
        return any(self.applicable(a) or a.record or a.kill_undone for a in self.agents)

    @property
    def needs_attention(self) -> bool:
        """What `plan --detailed-exitcode` exits 2 on: a change apply would make
        in a system, a kill undone, or drift apply cannot repair (an
        installation wider than the contract, a boundary that cuts a grant) —
        a nightly check must alert on all of them. A record-only difference
        (the systems are right; the state learns it at the next apply) is not
        one: right after an apply that said "No changes", this is False."""
        return any(self.applicable(a) or a.kill_undone or a.drift for a in self.agents)

    @property
    def has_errors(self) -> bool:
        return any(a.failed_to_plan for a in self.agents)

    def applicable(self, agent: AgentPlan) -> tuple[Change, ...]:
        """Mutating changes apply would make for this agent (orphans need --prune)."""
        if agent.disposition == AgentDisposition.ORPHAN and not self.prune:
            return ()
        return agent.mutating

    @property
    def summary(self) -> PlanSummary:
        counts: dict[str, int] = {}
        for agent in self.agents:
            for change in self.applicable(agent):
                counts[change.kind.value] = counts.get(change.kind.value, 0) + 1
        return PlanSummary(
            agents=len(self.agents),
            changes=counts,
            orphans=sum(1 for a in self.agents if a.disposition == AgentDisposition.ORPHAN),
            errors=sum(len(a.errors) + len(a.conflicts) for a in self.agents),
        )


@dataclass(frozen=True)
class PlanSummary:
    """A plan counted: agents, changes by kind, orphans."""

    agents: int
    changes: Mapping[str, int]  # change kind -> how many apply would make
    orphans: int
    errors: int


def state_basis(
    status: AgentStatus | None,
    contract_hash: str | None,
    resources: Iterable[tuple[str, str | None]],
) -> StateBasis:
    """What a plan for one agent is based on in the state: its status, the
    contract hash recorded for it and for each of its resources."""
    return (status.value if status else None, contract_hash, tuple(sorted(resources)))


_EXPECTED_STATUS = {
    AgentDisposition.ACTIVE: AgentStatus.ACTIVE,
    AgentDisposition.EXPIRED: AgentStatus.EXPIRED,
    AgentDisposition.KILLED: AgentStatus.KILLED,
}


def status_matches(recorded: AgentStatus | None, expected: AgentStatus | None) -> bool:
    """The recorded status is what the plan expects (an incomplete kill is a kill:
    apply leaves finishing it to `agentctl kill`)."""
    if recorded is None or expected is None:
        return recorded == expected
    return recorded == expected or (recorded.killed and expected.killed)


def _providers_for(
    contract: Contract | None, recorded: Sequence[str], providers: Mapping[str, Provider]
) -> list[str]:
    """Providers involved with an agent: granted in the contract or recorded in state.

    A provider recorded but no longer granted gets ``plan(None, ...)``: the grant
    was dropped from the contract, so its resources go (REMOVE).
    """
    names = set(recorded)
    if contract is not None:
        names |= {system for system in contract.permissions if system in providers}
    return sorted(n for n in names if n in providers)


def observe_unrecorded(provider: Provider, agent: str) -> Observed:
    return Observed(provider=provider.name, agent=agent, exists=False)


def compute_plan(
    *,
    contracts: Sequence[Contract],
    expired: Sequence[Contract],
    providers: Mapping[str, Provider],
    state: RecordedState | None,
    today: date,
    refresh: bool = True,
    prune: bool = False,
    parallelism: int = 8,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    by_name: dict[str, tuple[Contract, str]] = {}
    for contract in contracts:
        by_name[contract.name] = (contract, AgentDisposition.ACTIVE)
    for contract in expired:
        by_name[contract.name] = (contract, AgentDisposition.EXPIRED)

    recorded_resources: dict[str, list[str]] = {}
    applied_hash: dict[tuple[str, str], str | None] = {}
    recorded_status: dict[str, AgentStatus] = {}
    recorded_owner: dict[str, str] = {}
    recorded_hash: dict[str, str | None] = {}
    if state is not None:
        for record in state.list_agents():
            recorded_status[record.name] = record.status
            recorded_owner[record.name] = record.owner
            recorded_hash[record.name] = record.contract_hash
        for resource in state.list_resources():
            recorded_resources.setdefault(resource.agent, []).append(resource.provider)
            applied_hash[(resource.agent, resource.provider)] = resource.applied_hash

    orphans = sorted(
        name
        for name, status in recorded_status.items()
        if name not in by_name and status != AgentStatus.REMOVED
    )

    def disposition_of(name: str) -> tuple[Contract | None, str]:
        contract, disposition = by_name.get(name, (None, AgentDisposition.ORPHAN))
        if (
            name in recorded_status
            and recorded_status[name].killed
            and disposition != AgentDisposition.ORPHAN
        ):
            # Killed agents stay killed: only `agentctl revive` brings them back.
            disposition = AgentDisposition.KILLED
        return contract, disposition

    def trusted(name: str, provider_name: str, contract: Contract | None, disposition: str) -> bool:
        """Applied exactly this contract last time and nothing since: trust the
        state, ask the provider nothing (a refreshing plan is what detects
        out-of-band drift)."""
        return (
            not refresh
            and contract is not None
            and contract.grants_to(provider_name)
            and applied_hash.get((name, provider_name)) == contract.digest
            and status_matches(recorded_status.get(name), _EXPECTED_STATUS.get(disposition))
        )

    def asks_providers(name: str) -> bool:
        if refresh:
            return True
        contract, disposition = disposition_of(name)
        return not all(
            trusted(name, p, contract, disposition)
            for p in _providers_for(contract, recorded_resources.get(name, ()), providers)
        )

    def plan_agent(name: str) -> AgentPlan:
        contract, disposition = disposition_of(name)
        declared: tuple[str, ...] = ()
        if contract is not None:
            declared = tuple(sorted(s for s in contract.permissions if s not in providers))
        changes: list[Change] = []
        errors: list[str] = []
        unrecorded = False  # a provider's resource exists but the state does not record it
        for provider_name in _providers_for(contract, recorded_resources.get(name, ()), providers):
            provider = providers[provider_name]
            granted = contract is not None and contract.grants_to(provider_name)
            if trusted(name, provider_name, contract, disposition):
                continue
            try:
                if refresh or provider_name in recorded_resources.get(name, ()):
                    observed = provider.observe(name)
                else:
                    observed = observe_unrecorded(provider, name)
                if (
                    observed.exists
                    and observed.owned
                    and provider_name not in recorded_resources.get(name, ())
                ):
                    unrecorded = True
                changes.extend(
                    provider.plan(
                        contract if granted else None,
                        observed,
                        expired=disposition == AgentDisposition.EXPIRED,
                    )
                )
            except AgentctlError as exc:
                errors.append(f"{provider_name}: {exc.reason()}")
        for system in declared:
            changes.append(
                Change(
                    provider=system,
                    agent=name,
                    kind=ChangeKind.DECLARED,
                    summary=f"{system}: declared, not enforced (no provider for '{system}' is installed)",
                )
            )
        undone: tuple[str, ...] = ()
        if refresh and disposition == AgentDisposition.KILLED:
            undone = tuple(
                d for d in kill_undone(providers.values(), name) if d.startswith(KILL_UNDONE)
            )
        if progress:
            progress(name)
        record = (
            contract is not None
            and disposition != AgentDisposition.ORPHAN
            and not errors
            and not any(c.mutating for c in changes)
            and (
                unrecorded
                or not status_matches(recorded_status.get(name), _EXPECTED_STATUS.get(disposition))
                or recorded_hash.get(name) != contract.digest
                or any(
                    applied_hash.get((name, p)) != contract.digest
                    for p in recorded_resources.get(name, ())
                )
            )
        )
        return AgentPlan(
            agent=name,
            disposition=disposition,
            owner=contract.owner if contract else recorded_owner.get(name),
            contract=contract,
            changes=tuple(changes),
            declared=declared,
            errors=tuple(errors),
            record=record,
            kill_undone=undone,
            basis=state_basis(
                recorded_status.get(name),
                recorded_hash.get(name),
                [(p, applied_hash.get((name, p))) for p in recorded_resources.get(name, ())],
            )
            if state is not None
            else None,
        )

    names = sorted(by_name) + orphans
    # Agents whose plan may ask a provider are planned in parallel; the rest
    # (every agent of a no-change apply) here: a thread hand-off per agent
    # cost more than planning it (~0.1 s of a no-change apply of 300).
    asking = [name for name in names if asks_providers(name)]
    planned: dict[str, AgentPlan] = {}
    if asking:
        with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
            planned = dict(zip(asking, pool.map(plan_agent, asking), strict=True))
    agents = tuple(planned[name] if name in planned else plan_agent(name) for name in names)
    # Only a refreshing plan (the nightly check) asks: a plan that trusts the
    # state (apply's no-change path) must stay cheap.
    notes = _provider_notes(providers) if refresh else ()
    return Plan(agents=agents, prune=prune, refreshed=refresh, notes=notes)


def _provider_notes(providers: Mapping[str, Provider]) -> tuple[str, ...]:
    notes: list[str] = []
    for name, provider in sorted(providers.items()):
        if not isinstance(provider, NotesOnPlan):
            continue
        try:
            notes.extend(f"{name}: {note}" for note in provider.plan_notes())
        except AgentctlError as exc:
            notes.append(f"{name}: {exc.reason()}")
    return tuple(notes)
