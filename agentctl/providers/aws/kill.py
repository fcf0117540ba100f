"""Kill (and DISABLE) of an agent's IAM role, each step read back.

Three independent locks, so one failing never skips the others:

1. the AWS-managed policy ``AWSDenyAll`` attached: an explicit ``Deny *`` with
   no size quota (a role's inline policies share 10,240 characters, and kill
   and rotate add inline policies; a role takes up to 10 managed policies by
   default, 20 at most);
2. the inline policy ``agentctl-kill`` (the same deny, readable without
   ListAttachedRolePolicies and kept for roles killed by older versions);
3. the trust policy replaced by the deny-all lock: no new session starts.

Either deny stops existing sessions on their next call (IAM evaluates the
role's policies on every request); the trust lock stops new ones. After the
writes everything is read back, and the role counts as dead only when the
trust lock and at least one deny are confirmed there. What could not be done
is returned as pasteable ``aws iam ...`` commands.

The role is found by its configured name, else by the ARN the state records,
else by its ``agentctl:agent`` tag (an operator whose ``aws.role_prefix`` or
state differs from whoever applied it still finds it).
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agentctl.errors import AgentctlError, ProviderError
from agentctl.model import canonical_json
from agentctl.providers.aws import PROVIDER
from agentctl.providers.aws.policies import (
    KILL_DOCUMENT,
    KILL_POLICY,
    LOCKED_TRUST,
    STATUS_EXPIRED,
    STATUS_KILLED,
    TAG_KILLED_AT,
    TAG_KILLED_REASON,
    TAG_STATUS,
    compact_policy,
    is_owned,
    normalise_policy,
    tag_value,
    tags_dict,
    utc_stamp,
)
from agentctl.providers.base import ActionResult

if TYPE_CHECKING:
    from agentctl.providers.base import ProviderContext


class RoleAccess(Protocol):
    """What the kill path uses of the AWS provider (``AwsProvider`` is one): its
    IAM calls and context. A protocol, so this module does not import the
    provider that imports it."""

    _context: ProviderContext

    def role_name(self, agent: str) -> str: ...

    def _call(
        self, service: str, operation: str, doing: str, *, absent: Iterable[str] = (), **params: Any
    ) -> Any: ...

    def _get_role(self, role_name: str, doing: str) -> dict[str, Any] | None: ...

    def _get_policy(self, role_name: str, policy: str) -> dict[str, Any] | None: ...

    def _put_policy(self, role_name: str, policy: str, document: Mapping[str, Any]) -> None: ...

    def _tag(self, role_name: str, tags: Mapping[str, str]) -> None: ...


DENY_ALL_NAME = "AWSDenyAll"


def deny_all_arn(role_arn: str | None) -> str:
    """``arn:<partition>:iam::aws:policy/AWSDenyAll`` in the role's partition."""
    partition = "aws"
    if role_arn and role_arn.startswith("arn:"):
        partition = role_arn.split(":")[1] or "aws"
    return f"arn:{partition}:iam::aws:policy/{DENY_ALL_NAME}"


def _json_arg(document: Mapping[str, Any]) -> str:
    return shlex.quote(json.dumps(normalise_policy(document), separators=(",", ":")))


def put_deny_command(role_name: str) -> str:
    return (
        f"aws iam put-role-policy --role-name {shlex.quote(role_name)} "
        f"--policy-name {KILL_POLICY} --policy-document {_json_arg(KILL_DOCUMENT)}"
    )


def attach_deny_all_command(role_name: str, role_arn: str | None) -> str:
    return (
        f"aws iam attach-role-policy --role-name {shlex.quote(role_name)} "
        f"--policy-arn {deny_all_arn(role_arn)}"
    )


def lock_trust_command(role_name: str) -> str:
    return (
        f"aws iam update-assume-role-policy --role-name {shlex.quote(role_name)} "
        f"--policy-document {_json_arg(LOCKED_TRUST)}"
    )


@dataclass
class RoleLocks:
    """What a read-back found on one role."""

    inline_deny: bool = False
    deny_all: bool = False
    trust_locked: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def dead(self) -> bool:
        return self.trust_locked and (self.inline_deny or self.deny_all)

    def verified(self) -> tuple[str, ...]:
        found = []
        if self.deny_all:
            found.append(f"{DENY_ALL_NAME} attached")
        if self.inline_deny:
            found.append(f"inline deny {KILL_POLICY} present")
        if self.trust_locked:
            found.append("trust policy locked")
        return tuple(found)

    def missing(self) -> list[str]:
        gone = []
        if not self.deny_all:
            gone.append(f"{DENY_ALL_NAME} not attached")
        if not self.inline_deny:
            gone.append(f"inline deny {KILL_POLICY} missing")
        if not self.trust_locked:
            gone.append("trust policy not locked")
        return gone


def _locked(role: Mapping[str, Any]) -> bool:
    return canonical_json(normalise_policy(role["AssumeRolePolicyDocument"])) == canonical_json(
        normalise_policy(LOCKED_TRUST)
    )


def _together(calls: list[Callable[[], None]]) -> None:
    """Run independent IAM calls at once (boto3 clients are thread-safe): a
    kill's latency is its number of round trips in sequence."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


class RoleKiller:
    """Kill, DISABLE, read-back and revive of one provider's roles."""

    def __init__(self, provider: RoleAccess) -> None:
        self._p = provider

    # -- finding the role --------------------------------------------------------

    def _recorded_role_name(self, agent: str) -> str | None:
        """The role name in the ARN the state records for the agent, if any."""
        try:
            record = self._p._context.state.get_resource(agent, PROVIDER)
        except AgentctlError:
            return None
        if record is None or not record.resource_id:
            return None
        return record.resource_id.rpartition("/")[2] or None

    def _recorded(self, agent: str) -> bool | None:
        """Whether the state records an AWS role for the agent (None: cannot tell)."""
        try:
            return self._p._context.state.get_resource(agent, PROVIDER) is not None
        except AgentctlError:
            return None

    def _state_knows_without_role(self, agent: str) -> bool:
        try:
            state = self._p._context.state
            return (
                state.get_agent(agent) is not None and state.get_resource(agent, PROVIDER) is None
            )
        except AgentctlError:
            return False

    def _discover_by_tag(self, agent: str) -> str | None:
        """A role tagged ``agentctl:agent=<agent>`` (and managed-by agentctl),
        found among roles whose name ends with the agent's name."""
        params: dict[str, Any] = {}
        while True:
            page = self._p._call("iam", "list_roles", f"find the role of {agent} by tag", **params)
            for role in page.get("Roles", []):
                name = str(role["RoleName"])
                if not name.endswith(agent):
                    continue
                tags = self._p._call(
                    "iam", "list_role_tags", f"read the tags of role {name}", RoleName=name
                ).get("Tags", [])
                if is_owned(tags_dict(tags), agent):
                    return name
            if not page.get("IsTruncated"):
                return None
            params["Marker"] = page["Marker"]

    def find(self, agent: str) -> tuple[str, dict[str, Any] | None]:
        """(role name, role) — the configured name when no role is found."""
        configured = self._p.role_name(agent)
        role = self._p._get_role(configured, f"look up role {configured}")
        if role is not None:
            return configured, role
        candidates = []
        recorded = self._recorded_role_name(agent)
        if recorded and recorded != configured:
            candidates.append(recorded)
        for name in candidates:
            role = self._p._get_role(name, f"look up role {name}")
            if role is not None and is_owned(tags_dict(role.get("Tags")), agent):
                return name, role
        if self._state_knows_without_role(agent):
            # The state records every role agentctl creates: it knows this
            # agent and records none, so there is nothing to search for.
            return configured, None
        found = self._discover_by_tag(agent)
        if found is not None:
            role = self._p._get_role(found, f"look up role {found}")
            if role is not None:
                return found, role
        return configured, None

    # -- read-back ---------------------------------------------------------------

    def read_back(
        self, role_name: str, role_arn: str | None, *, role: Mapping[str, Any] | None = None
    ) -> RoleLocks:
        """The three locks as IAM has them now (read concurrently); ``role``:
        a GetRole answer just read, whose trust policy need not be re-read."""
        locks = RoleLocks()

        def inline() -> None:
            present = self._p._get_policy(role_name, KILL_POLICY)
            locks.inline_deny = present is not None and canonical_json(present) == canonical_json(
                normalise_policy(KILL_DOCUMENT)
            )

        def managed() -> None:
            locks.deny_all = deny_all_arn(role_arn) in self._attached(role_name)

        def trust() -> None:
            current = role or self._p._get_role(role_name, f"read back role {role_name}")
            locks.trust_locked = current is not None and _locked(current)

        def guarded(read: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    read()
                except ProviderError as exc:
                    locks.errors.append(exc.message)

            return run

        _together([guarded(inline), guarded(managed), guarded(trust)])
        return locks

    def _attached(self, role_name: str) -> set[str]:
        arns: set[str] = set()
        params: dict[str, Any] = {"RoleName": role_name}
        while True:
            page = self._p._call(
                "iam",
                "list_attached_role_policies",
                f"list managed policies attached to role {role_name}",
                **params,
            )
            arns.update(p["PolicyArn"] for p in page.get("AttachedPolicies", []))
            if not page.get("IsTruncated"):
                return arns
            params["Marker"] = page["Marker"]

    # -- kill / disable ----------------------------------------------------------

    # This provider's ActionResult: _result(agent, action, ok=..., detail=..., ...), checked by mypy.
    _result = functools.partial(ActionResult, PROVIDER)

    def _unreachable(
        self, agent: str, action: str, role_name: str, exc: ProviderError
    ) -> ActionResult:
        recorded = self._recorded(agent)
        commands = [
            attach_deny_all_command(role_name, None),
            put_deny_command(role_name),
            lock_trust_command(role_name),
        ]
        return self._result(
            agent,
            action,
            ok=False,
            detail=exc.reason(),
            remaining=(
                ("" if recorded else f"if role {role_name} exists: ")
                + "; ".join(commands)
                + f" (or fix the access and run `agentctl {action} {agent}` again)"
            ),
            undetermined=recorded is not True,
        )

    def lock(self, agent: str, reason: str, status: str, action: str) -> ActionResult:
        """Kill (status killed) or DISABLE (status expired). Never raises for an
        AWS failure: the result says which locks remain, as commands."""
        try:
            role_name = self._p.role_name(agent)
        except ProviderError as exc:
            return ActionResult.failed(
                PROVIDER, agent, action, exc, remaining="fix aws.role_prefix"
            )
        try:
            role_name, role = self.find(agent)
        except ProviderError as exc:
            return self._unreachable(agent, action, role_name, exc)
        if role is None:
            return self._result(agent, action, ok=True, already=True, detail="no AWS role")
        arn = str(role["Arn"])
        info = {"arn": arn, "role_name": role_name, "role_id": role.get("RoleId")}
        tags = tags_dict(role.get("Tags"))
        if not is_owned(tags, agent):
            return self._result(
                agent,
                action,
                ok=False,
                resource_id=arn,
                detail=f"role {role_name} exists but is not managed by agentctl; not touched",
                remaining=f"{role_name} is not agentctl's: if this agent uses it, revoke it by hand "
                f"({attach_deny_all_command(role_name, arn)})",
            )
        current = tags.get(TAG_STATUS)
        trust_locked = _locked(role)
        if trust_locked and current in {STATUS_KILLED, STATUS_EXPIRED}:
            # Looks locked already: confirm both denies are there before saying so.
            before = self.read_back(role_name, arn, role=role)
            complete = before.deny_all and before.inline_deny and not before.errors
            if complete and current in (status, STATUS_KILLED):
                return self._result(
                    agent,
                    action,
                    ok=True,
                    already=True,
                    resource_id=arn,
                    attributes=info,
                    detail=f"already {current}: " + ", ".join(before.verified()),
                    verified=before.verified(),
                )
        else:
            before = RoleLocks(trust_locked=trust_locked)
        stamp = {
            TAG_STATUS: status,
            TAG_KILLED_REASON: tag_value(reason or action),
            TAG_KILLED_AT: utc_stamp(self._p._context.clock()),
        }
        failures: list[str] = []

        def attempt(what: str, write: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                try:
                    write()
                except ProviderError as exc:
                    failures.append(f"{what}: {exc.message}")

            return run

        if status == STATUS_EXPIRED and current not in {STATUS_EXPIRED, STATUS_KILLED}:
            # Expiry is not an incident: mark the role expired *first*, so a
            # DISABLE interrupted after its deny reads back as disabled and the
            # next apply completes it (read back as a kill, it would stay killed
            # until a `revive` the state could not allow).
            attempt("tag the role expired", lambda: self._p._tag(role_name, stamp))()
            current = status
        # The denies go first (together): they stop existing sessions on their
        # next call. Each is tried whatever happens to the other.
        denies = []
        if not before.deny_all:
            denies.append(
                attempt(
                    f"attach {DENY_ALL_NAME}",
                    lambda: self._p._call(
                        "iam",
                        "attach_role_policy",
                        f"attach {DENY_ALL_NAME} to role {role_name}",
                        RoleName=role_name,
                        PolicyArn=deny_all_arn(arn),
                    ),
                )
            )
        if not before.inline_deny:
            denies.append(
                attempt(
                    f"put inline deny {KILL_POLICY}",
                    lambda: self._p._put_policy(role_name, KILL_POLICY, KILL_DOCUMENT),
                )
            )
        _together(denies)
        then = []
        if not trust_locked:
            then.append(
                attempt(
                    "lock the trust policy",
                    lambda: self._p._call(
                        "iam",
                        "update_assume_role_policy",
                        f"update the trust policy of role {role_name}",
                        RoleName=role_name,
                        PolicyDocument=compact_policy(LOCKED_TRUST),
                    ),
                )
            )
        if current != status and current != STATUS_KILLED:
            then.append(attempt(f"tag the role {status}", lambda: self._p._tag(role_name, stamp)))
        _together(then)
        after = self.read_back(role_name, arn)
        verb = "killed" if status == STATUS_KILLED else "disabled"
        notes = [f"could not {f}" for f in failures] + [
            f"read-back failed: {e}" for e in after.errors
        ]
        if after.dead:
            detail = f"{verb} role {role_name}, read back: " + ", ".join(after.verified())
            if not (after.deny_all and after.inline_deny):
                detail += " (" + "; ".join([*after.missing(), *notes]) + ")"
            return self._result(
                agent,
                action,
                ok=True,
                detail=detail,
                resource_id=arn,
                attributes=info,
                verified=after.verified(),
            )
        commands = []
        if not after.deny_all:
            commands.append(attach_deny_all_command(role_name, arn))
        if not after.inline_deny:
            commands.append(put_deny_command(role_name))
        if not after.trust_locked:
            commands.append(lock_trust_command(role_name))
        return self._result(
            agent,
            action,
            ok=False,
            detail=f"role {role_name} not verified {verb}: "
            + "; ".join([*after.missing(), *notes]),
            resource_id=arn,
            attributes=info,
            verified=after.verified(),
            remaining="; ".join(commands) + f" (or run `agentctl {action} {agent}` again)",
        )

    # -- still dead? -------------------------------------------------------------

    def check(self, agent: str) -> ActionResult:
        """Read only: does the kill of ``agent``'s role still hold?"""
        action = "check-kill"
        try:
            role_name, role = self.find(agent)
        except ProviderError as exc:
            return self._result(
                agent,
                action,
                ok=False,
                undetermined=True,
                detail=f"cannot check: {exc.reason()}",
                remaining="fix AWS access and run `agentctl status --refresh` again",
            )
        if role is None:
            return self._result(agent, action, ok=True, detail="no AWS role")
        arn = str(role["Arn"])
        if not is_owned(tags_dict(role.get("Tags")), agent):
            return self._result(
                agent, action, ok=True, detail=f"role {role_name} is not agentctl's"
            )
        locks = self.read_back(role_name, arn, role=role)
        if locks.errors:
            return self._result(
                agent,
                action,
                ok=False,
                undetermined=True,
                resource_id=arn,
                detail="cannot check: " + "; ".join(locks.errors),
                remaining="fix AWS access and run `agentctl status --refresh` again",
            )
        if locks.dead:
            # Dead is dead: one deny gone (say, the inline one deleted by hand)
            # still leaves the other, and the detail says which is missing.
            missing = locks.missing()
            return self._result(
                agent,
                action,
                ok=True,
                resource_id=arn,
                detail=", ".join(locks.verified())
                + (f" ({', '.join(missing)})" if missing else ""),
                verified=locks.verified(),
            )
        still = (
            "new sessions can start"
            if locks.deny_all or locks.inline_deny
            else "the agent's sessions are no longer denied"
        )
        return self._result(
            agent,
            action,
            ok=False,
            resource_id=arn,
            detail=f"role {role_name}: " + ", ".join(locks.missing()) + f" ({still})",
            verified=locks.verified(),
            remaining=f"run `agentctl kill {agent}` to restore the kill",
        )

    def deny_all_attached(self, role_name: str, role_arn: str | None) -> bool:
        return deny_all_arn(role_arn) in self._attached(role_name)

    def detach_deny_all(self, role_name: str, role_arn: str | None) -> None:
        """Revive / re-enable: drop the managed deny if attached."""
        if deny_all_arn(role_arn) in self._attached(role_name):
            self._p._call(
                "iam",
                "detach_role_policy",
                f"detach {DENY_ALL_NAME} from role {role_name}",
                absent=("NoSuchEntity",),
                RoleName=role_name,
                PolicyArn=deny_all_arn(role_arn),
            )
