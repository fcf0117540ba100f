"""AWS provider: one IAM role per agent.

The role is ``{role_prefix}{agent}`` under ``role_path``. It is agentctl's only
when tagged ``managed-by=agentctl`` *and* ``agentctl:agent`` equals this agent's
name exactly; any other role with that name is reported and never touched.

Kill (and DISABLE on expiry) is three writes in order of urgency:
1. inline policy ``agentctl-kill`` = explicit ``Deny *`` — existing sessions
   are denied on their next call, because IAM evaluates the role's policies on
   every request;
2. the trust policy is replaced by a deny-all lock, so no new session starts;
3. ``agentctl:status`` is tagged ``killed`` (``expired`` for DISABLE).
Revive undoes them, rebuilding the trust policy from settings (a trust policy
does not fit in a 256-character tag, and settings are the source of truth).

Rotate for roles is "revoke older sessions": an inline deny conditioned on
``aws:TokenIssueTime``. agentctl creates no IAM users, so there are no access
keys to rotate, and no two-key create/verify/delete dance.

boto3 is imported only when a client is first needed: ``agentctl validate``
constructs every provider to check grants and must not pay for it.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from agentctl.errors import NotOwnedError, ProviderError
from agentctl.model import Contract, canonical_json
from agentctl.providers.aws import PROVIDER, SPEC
from agentctl.providers.aws.client import (
    AwsClients,
    denied_caller,
    error_code,
    provider_error,
    same_principal,
)
from agentctl.providers.aws.kill import DENY_ALL_NAME, RoleKiller, deny_all_arn
from agentctl.providers.aws.policies import (
    GRANT_POLICY,
    KILL_DOCUMENT,
    KILL_POLICY,
    LOCKED_TRUST,
    MANAGED_BY_VALUE,
    MAX_ROLE_SESSION,
    MIN_ROLE_SESSION,
    MIN_SESSION,
    OWN_POLICIES,
    POLICY_VERSION,
    REVOKE_OLDER_POLICY,
    SESSION_ACTIONS,
    SESSION_CHECK_ACTION,
    SESSION_TAG_KEYS,
    STATUS_ACTIVE,
    STATUS_EXPIRED,
    STATUS_KILLED,
    TAG_AGENT,
    TAG_EXPIRY,
    TAG_HASH,
    TAG_KILLED_AT,
    TAG_KILLED_REASON,
    TAG_MANAGED_BY,
    TAG_MODE,
    TAG_OWNER,
    TAG_PURPOSE,
    TAG_STATUS,
    boundary_gaps,
    compact_policy,
    expiry_condition,
    grant_policy,
    is_owned,
    normalise_policy,
    role_description,
    session_field,
    tag_list,
    tag_value,
    tags_dict,
    utc_stamp,
)
from agentctl.providers.aws.settings import AwsSettings
from agentctl.providers.base import (
    ActionResult,
    Change,
    ChangeKind,
    FieldChange,
    IssuedCredential,
    Observed,
    ProviderContext,
    RunContext,
)

if TYPE_CHECKING:
    # What a plan carries (agentctl.providers.aws.changes) is imported where
    # plan and apply build or read it: `credentials`, `exec` and `kill` do not.
    from agentctl.providers.aws.changes import (
        DesiredRole,
        RoleDisable,
        RolePayload,
        RoleRemoval,
        RoleUpdate,
    )
    from agentctl.secrets import Secret

# -- the provider ------------------------------------------------------------------


# The resource attribute (in state) recording when agentctl last changed who
# may use the role: create, a trust or permission change, enable, revive.
ACCESS_CHANGED_AT = "access_changed_at"
# AssumeRole retry while IAM propagates such a change: 0.25 s, doubling, at most 4 s apart.
PROPAGATION_FIRST_DELAY = 0.25
PROPAGATION_MAX_DELAY = 4.0

PayloadType = TypeVar("PayloadType", "DesiredRole", "RoleUpdate", "RoleDisable", "RoleRemoval")


def _payload(change: Change[RolePayload], expected: type[PayloadType]) -> PayloadType:
    """The change's payload, which its kind says is an ``expected``."""
    payload = change.payload
    if not isinstance(payload, expected):
        raise ProviderError(
            PROVIDER,
            f"the {change.kind.value} change of {change.agent} carries no {expected.__name__}",
            hint="re-run `agentctl plan`, then apply that plan",
        )
    return payload


def _tagged_expiry(tags: Mapping[str, str]) -> date | None:
    try:
        return date.fromisoformat(tags[TAG_EXPIRY])
    except (KeyError, ValueError):
        return None


class AwsProvider:
    """One IAM role per agent; see the module docstring for the mechanisms.

    Endpoint, region and profile come from ``aws.*`` settings, else from the
    standard AWS environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``,
    ``AWS_PROFILE``, ...). ``context.client_options`` are passed to every
    client (tests: explicit credentials), except ``max_pool_connections``,
    which sizes the connection pool (default 64, enough for ``--parallelism``
    up to that).
    """

    name = PROVIDER

    def __init__(self, context: ProviderContext) -> None:
        self._context = context
        self._settings: AwsSettings = context.config.settings(SPEC)
        self._clients = AwsClients(self._settings, context.client_options)
        self._lock = threading.Lock()  # guards _issued
        # credential_id -> expiry of sessions this process issued (revoke_credential).
        self._issued: dict[str, datetime] = {}
        # Permissions boundary ARN -> its document, or why it could not be read:
        # fetched once per run (one provider per command) for the boundary lint.
        self._boundaries: dict[str, dict[str, Any] | ProviderError] = {}
        self._boundary_lock = threading.Lock()  # held while reading: one read per run
        self._account: tuple[str, str] | None = None  # (partition, account), found once

    # -- clients ---------------------------------------------------------------

    def client(self, service: str) -> Any:
        """The shared client for ``service`` ("iam", "sts"); tests hook its events."""
        return self._clients.client(service)

    def runtime_client(self, service: str) -> Any:
        """The client that starts agent sessions (aws.runtime_profile, else :meth:`client`'s)."""
        return self._clients.runtime_client(service)

    def region(self) -> str:
        return self._clients.region()

    def endpoint_url(self) -> str | None:
        """The endpoint explicitly configured, if any (exported to exec'd commands)."""
        return self._clients.endpoint_url()

    def _call(
        self, service: str, operation: str, doing: str, *, absent: Iterable[str] = (), **params: Any
    ) -> Any:
        return self._clients.call(service, operation, doing, absent=absent, **params)

    # -- names and desired state -------------------------------------------------

    def role_name(self, agent: str) -> str:
        name = f"{self._settings.role_prefix}{agent}"
        if len(name) > 64:
            raise ProviderError(
                PROVIDER,
                f"IAM role name {name} is {len(name)} characters; IAM allows 64",
                hint="shorten the agent name or aws.role_prefix",
            )
        return name

    def _role_path(self) -> str:
        path = self._settings.role_path
        if not (path.startswith("/") and path.endswith("/")):
            raise ProviderError(
                PROVIDER,
                f"aws.role_path {path!r} must start and end with '/'",
                hint="e.g. /agentctl/",
            )
        return path

    def trust_policy(self, expiry: date | None = None) -> dict[str, Any]:
        """Only the runtime principal may start sessions, and (with ``expiry``)
        only before the contract's expiry date: AWS itself refuses the agent
        afterwards, even if agentctl never runs again."""
        principal = self._settings.runtime_principal
        if not principal or not principal.startswith("arn:"):
            raise ProviderError(
                PROVIDER,
                "aws.runtime_principal is not configured"
                if not principal
                else f"aws.runtime_principal {principal!r} is not an ARN",
                hint="set aws.runtime_principal in agentctl.yaml to the ARN of the role or user "
                "that runs agents (agentctl exec), e.g. arn:aws:iam::123456789012:role/agent-runtime",
            )
        return normalise_policy(
            {
                "Version": POLICY_VERSION,
                "Statement": [
                    {
                        "Sid": "AgentctlRuntime",
                        "Effect": "Allow",
                        "Principal": {"AWS": principal},
                        "Action": list(SESSION_ACTIONS),
                        **({"Condition": expiry_condition(expiry)} if expiry else {}),
                    }
                ],
            }
        )

    def _own_role_pattern(self, agent: str) -> str:
        """The role's own ARN, any account (it is the role's own policy): known
        without a network call, so plan stays offline-cheap."""
        partition = "aws"
        for arn in (self._settings.permissions_boundary, self._settings.runtime_principal):
            parts = (arn or "").split(":")
            if len(parts) >= 6 and parts[0] == "arn":
                partition = parts[1]
                break
        return f"arn:{partition}:iam::*:role{self._role_path()}{self.role_name(agent)}"

    def max_session_duration(self) -> int:
        return min(MAX_ROLE_SESSION, max(MIN_ROLE_SESSION, self._settings.session_duration_seconds))

    def desired(self, contract: Contract, status: str) -> DesiredRole:
        """Everything about the role that follows from the contract and settings."""
        from agentctl.providers.aws.changes import DesiredRole

        tags = {
            TAG_MANAGED_BY: MANAGED_BY_VALUE,
            TAG_AGENT: contract.name,
            TAG_OWNER: tag_value(contract.owner),
            TAG_PURPOSE: tag_value(contract.purpose),
            TAG_EXPIRY: contract.expiry.isoformat(),
            TAG_MODE: contract.execution_mode.value,
            TAG_HASH: contract.digest,
            TAG_STATUS: status,
        }
        return DesiredRole(
            role_name=self.role_name(contract.name),
            path=self._role_path(),
            tags=tags,
            boundary=self._settings.permissions_boundary,
            trust=self.trust_policy(contract.expiry),
            grant=grant_policy(
                contract.name,
                contract.grant(SPEC),
                contract.expiry,
                session_check=self._own_role_pattern(contract.name),
            ),
            # The owner is a tag, not part of the description: changing owners
            # should show as one field, not two.
            description=role_description(f"agentctl agent {contract.name}: {contract.purpose}"),
            max_session_duration=self.max_session_duration(),
        )

    # -- observe -------------------------------------------------------------------

    def _get_role(self, role_name: str, doing: str) -> dict[str, Any] | None:
        response = self._call(
            "iam", "get_role", doing, absent=("NoSuchEntity",), RoleName=role_name
        )
        return None if response is None else dict(response["Role"])

    def _inline_policy_names(self, role_name: str) -> list[str]:
        names: list[str] = []
        params: dict[str, Any] = {"RoleName": role_name}
        while True:
            page = self._call(
                "iam", "list_role_policies", f"list inline policies of {role_name}", **params
            )
            names.extend(page.get("PolicyNames", []))
            if not page.get("IsTruncated"):
                return names
            params["Marker"] = page["Marker"]

    def _get_policy(self, role_name: str, policy: str) -> dict[str, Any] | None:
        response = self._call(
            "iam",
            "get_role_policy",
            f"read inline policy {policy} of {role_name}",
            absent=("NoSuchEntity",),
            RoleName=role_name,
            PolicyName=policy,
        )
        return None if response is None else normalise_policy(response["PolicyDocument"])

    def observe(self, agent: str) -> Observed:
        role_name = self.role_name(agent)
        role = self._get_role(role_name, f"look up role {role_name}")
        if role is None:
            return Observed(provider=PROVIDER, agent=agent, exists=False)
        tags = tags_dict(role.get("Tags"))
        base = {
            "role_name": role_name,
            "arn": role["Arn"],
            "role_id": role.get("RoleId"),
            "path": role.get("Path"),
        }
        if not is_owned(tags, agent):
            return Observed(
                provider=PROVIDER,
                agent=agent,
                exists=True,
                owned=False,
                resource_id=role["Arn"],
                attributes={**base, "tags": tags},
            )
        names = self._inline_policy_names(role_name)
        status = tags.get(TAG_STATUS, STATUS_ACTIVE)
        kill_policy = KILL_POLICY in names
        # Only a locked role can carry AWSDenyAll: the extra read is not paid
        # by the apply of active agents.
        deny_all = (status in {STATUS_KILLED, STATUS_EXPIRED} or kill_policy) and (
            RoleKiller(self).deny_all_attached(role_name, role["Arn"])
        )
        # A kill that stopped after its first write (a deny) is still a kill.
        killed = status == STATUS_KILLED or ((kill_policy or deny_all) and status != STATUS_EXPIRED)
        drift = [
            f"inline policy {name} on {role_name} was not written by agentctl"
            for name in sorted(set(names) - OWN_POLICIES)
        ]
        if role.get("Path") != self._settings.role_path:
            drift.append(
                f"{role_name} is under path {role.get('Path')}, aws.role_path is "
                f"{self._settings.role_path} (IAM cannot move a role: remove and re-create it)"
            )
        boundary = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
        return Observed(
            provider=PROVIDER,
            agent=agent,
            exists=True,
            owned=True,
            resource_id=role["Arn"],
            killed=killed,
            disabled=status == STATUS_EXPIRED,
            attributes={
                **base,
                "tags": tags,
                "status": status,
                "boundary": boundary,
                "trust": normalise_policy(role["AssumeRolePolicyDocument"]),
                "grant": self._get_policy(role_name, GRANT_POLICY)
                if GRANT_POLICY in names
                else None,
                "kill_policy": kill_policy,
                "deny_all": deny_all,
                "inline_policies": sorted(names),
                "description": role.get("Description", ""),
                "max_session_duration": role.get("MaxSessionDuration"),
            },
            drift=tuple(drift),
        )

    # -- plan ------------------------------------------------------------------------

    def plan(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[RolePayload]]:
        changes = self._plan_role(contract, observed, expired=expired)
        return (
            changes
            + self._boundary_drift(contract, observed, expired=expired)
            + self._kill_exceptions(contract, expired=expired)
        )

    def _kill_exceptions(
        self, contract: Contract | None, *, expired: bool
    ) -> list[Change[RolePayload]]:
        """Every plan names the contract's opt-ins to credentials a kill cannot
        reach (validate has checked each is named and needed)."""
        from agentctl.providers.aws.changes import KillException

        grant = contract.grant(SPEC) if contract is not None else None
        if grant is None or expired:
            return []
        assert contract is not None
        return [
            Change(
                provider=PROVIDER,
                agent=contract.name,
                kind=ChangeKind.DECLARED,
                summary=(
                    f"exception {statement.sid or index}: {', '.join(statement.actions)} on "
                    f"{', '.join(statement.resources)} mint(s) credentials that outlive "
                    f"`agentctl kill {contract.name}` ({statement.exception})"
                ),
                payload=KillException(statement.sid),
            )
            for index, statement in enumerate(grant.statements)
            if statement.exception is not None
        ]

    def _boundary_document(self, arn: str) -> dict[str, Any] | ProviderError:
        """The boundary's default policy version, read once per run."""
        with self._boundary_lock:
            if arn not in self._boundaries:
                self._boundaries[arn] = self._read_boundary(arn)
            return self._boundaries[arn]

    def _read_boundary(self, arn: str) -> dict[str, Any] | ProviderError:
        try:
            policy = self._call(
                "iam", "get_policy", f"read the permissions boundary {arn}", PolicyArn=arn
            )["Policy"]
            version = self._call(
                "iam",
                "get_policy_version",
                f"read the permissions boundary {arn}",
                PolicyArn=arn,
                VersionId=policy["DefaultVersionId"],
            )["PolicyVersion"]
            found: dict[str, Any] | ProviderError = normalise_policy(version["Document"])
        except ProviderError as exc:
            found = exc
        except (KeyError, ValueError, TypeError):
            found = ProviderError(
                PROVIDER, f"the permissions boundary {arn} is not a policy document"
            )
        return found

    def _boundary_drift(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[RolePayload]]:
        """Lint: grant actions the permissions boundary blocks (DRIFT, never applied).

        Such a grant is not a risk (the boundary wins) but the contract then
        says more than the agent can do, and the audit trail's scope with it.
        """
        from agentctl.providers.aws.changes import BoundaryUnreadable, GrantWiderThanBoundary

        arn = self._settings.permissions_boundary
        grant = contract.grant(SPEC) if contract is not None else None
        if (
            not arn
            or grant is None
            or not grant.statements
            or expired
            or (observed.exists and not observed.owned)
        ):
            return []
        assert contract is not None
        document = self._boundary_document(arn)
        if isinstance(document, ProviderError):
            return [
                Change(
                    provider=PROVIDER,
                    agent=contract.name,
                    kind=ChangeKind.DRIFT,
                    summary=f"cannot check the grant against the permissions boundary: {document.message}",
                    payload=BoundaryUnreadable(arn),
                )
            ]
        changes: list[Change[RolePayload]] = []
        for action, blocked, denied in boundary_gaps(grant, document):
            verb = "denied" if denied else "not allowed"
            if len(blocked) == 1 and blocked[0].lower() == action.lower():
                what = f"{blocked[0]} is {verb} by {arn}; it would silently have no effect"
            else:
                shown = ", ".join(blocked[:5]) + (", ..." if len(blocked) > 5 else "")
                what = (
                    f"{action} includes {len(blocked)} action(s) {verb} by {arn} ({shown}); "
                    "they would silently have no effect"
                )
            changes.append(
                Change(
                    provider=PROVIDER,
                    agent=contract.name,
                    kind=ChangeKind.DRIFT,
                    summary=f"grant wider than the permissions boundary: {what}",
                    payload=GrantWiderThanBoundary(arn, action, tuple(blocked)),
                )
            )
        return changes

    def _plan_role(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[RolePayload]]:
        from agentctl.providers.aws.changes import RoleDisable, RoleRemoval

        agent = observed.agent
        role_name = self.role_name(agent)
        # An empty `aws: []` grants nothing: no role (an existing one is an orphan).
        grant = contract.grant(SPEC) if contract is not None else None
        granted = grant is not None and bool(grant.statements)
        if not granted:
            if observed.exists and observed.owned:
                why = (
                    "its contract is gone"
                    if contract is None
                    else "its contract no longer grants aws"
                )
                return [
                    Change(
                        provider=PROVIDER,
                        agent=agent,
                        kind=ChangeKind.REMOVE,
                        summary=f"remove IAM role {role_name} ({why})",
                        payload=RoleRemoval(role_name),
                    )
                ]
            return []
        assert contract is not None  # granted implies a contract
        if not observed.exists:
            if expired:
                return []  # an expired contract is never provisioned
            desired = self.desired(contract, STATUS_ACTIVE)
            return [
                Change(
                    provider=PROVIDER,
                    agent=agent,
                    kind=ChangeKind.CREATE,
                    summary=f"create IAM role {role_name} under {desired.path}",
                    fields=(
                        FieldChange("role", None, role_name),
                        FieldChange("permissions_boundary", None, desired.boundary),
                        FieldChange("trust_policy", None, desired.trust),
                        FieldChange("grant_policy", None, desired.grant),
                        FieldChange("tags", None, desired.tags),
                    ),
                    payload=desired,
                )
            ]
        if not observed.owned:
            return [
                Change(
                    provider=PROVIDER,
                    agent=agent,
                    kind=ChangeKind.CONFLICT,
                    summary=(
                        f"role {role_name} exists but is not managed by agentctl "
                        f"(no {TAG_MANAGED_BY}={MANAGED_BY_VALUE} and {TAG_AGENT}={agent} tags): "
                        "rename the agent or remove/tag the role"
                    ),
                )
            ]
        attributes = observed.attributes
        if expired and not (observed.killed or observed.disabled):
            return [
                Change(
                    provider=PROVIDER,
                    agent=agent,
                    kind=ChangeKind.DISABLE,
                    summary=f"disable IAM role {role_name} (contract expired {contract.expiry.isoformat()})",
                    payload=RoleDisable(role_name, "expired"),
                )
            ]
        if observed.killed:
            status, locked = STATUS_KILLED, True
        elif observed.disabled:
            # Disabled only because the contract expired: a renewed contract
            # re-enables it (a killed agent, above, stays killed until revive).
            status, locked = (STATUS_EXPIRED, True) if expired else (STATUS_ACTIVE, False)
        else:
            status, locked = STATUS_ACTIVE, False
        desired = self.desired(contract, status)
        fields, payload = self._diff(attributes, desired, locked=locked)
        if not fields:
            return []
        if observed.disabled and not locked:
            # Enable re-opens the trust even when it already reads open (an
            # enable interrupted after that write): with this contract's expiry.
            payload = replace(
                payload,
                enable=True,
                trust=desired.trust if payload.trust is None else payload.trust,
            )
            fields.append(FieldChange("kill_policy", KILL_POLICY, None))
        summary = f"update IAM role {role_name}: " + ", ".join(f.field for f in fields)
        if locked:
            summary += f" (stays {status})"
        return [
            Change(
                provider=PROVIDER,
                agent=agent,
                kind=ChangeKind.UPDATE,
                summary=summary,
                fields=tuple(fields),
                payload=payload,
            )
        ]

    @staticmethod
    def _diff(
        observed: Mapping[str, Any], desired: DesiredRole, *, locked: bool
    ) -> tuple[list[FieldChange], RoleUpdate]:
        """Exactly the fields that differ, and what apply needs to change them.

        Only agentctl's own tags are compared: other tags (cost centres, the
        kill reason) are someone's information, not drift.
        """
        from agentctl.providers.aws.changes import RoleSettings, RoleUpdate

        fields: list[FieldChange] = []
        tags = observed.get("tags", {})
        changed_tags = {k: v for k, v in desired.tags.items() if tags.get(k) != v}
        for key, value in sorted(changed_tags.items()):
            fields.append(FieldChange(f"tags.{key}", tags.get(key), value))
        boundary_changed = observed.get("boundary") != desired.boundary
        if boundary_changed:
            fields.append(
                FieldChange("permissions_boundary", observed.get("boundary"), desired.boundary)
            )
        trust = normalise_policy(LOCKED_TRUST) if locked else desired.trust
        trust_changed = canonical_json(observed.get("trust")) != canonical_json(trust)
        if trust_changed:
            fields.append(FieldChange("trust_policy", observed.get("trust"), trust))
        grant_changed = canonical_json(observed.get("grant")) != canonical_json(desired.grant)
        if grant_changed:
            fields.append(FieldChange("grant_policy", observed.get("grant"), desired.grant))
        kill_policy = locked and not observed.get("kill_policy")
        if kill_policy:
            fields.append(FieldChange("kill_policy", None, KILL_POLICY))
        deny_all = locked and not observed.get("deny_all")
        if deny_all:
            fields.append(FieldChange("deny_all", None, DENY_ALL_NAME))
        settings = RoleSettings(desired.description, desired.max_session_duration)
        settings_fields = [
            FieldChange(key, observed.get(key), value)
            for key, value in (
                ("description", settings.description),
                ("max_session_duration", settings.max_session_duration),
            )
            if observed.get(key) != value
        ]
        fields.extend(settings_fields)
        return fields, RoleUpdate(
            role_name=desired.role_name,
            arn=observed.get("arn"),
            role_id=observed.get("role_id"),
            tags=changed_tags or None,
            set_boundary=desired.boundary if boundary_changed and desired.boundary else None,
            remove_boundary=boundary_changed and not desired.boundary,
            trust=trust if trust_changed else None,
            grant=desired.grant if grant_changed else None,
            settings=settings if settings_fields else None,
            kill_policy=kill_policy,
            deny_all=deny_all,
        )

    # -- apply ---------------------------------------------------------------------

    def apply(self, change: Change[RolePayload]) -> ActionResult:
        from agentctl.providers.aws.changes import RoleDisable

        handlers: dict[ChangeKind, Callable[[Change[RolePayload]], ActionResult]] = {
            ChangeKind.CREATE: self._create,
            ChangeKind.UPDATE: self._update,
            ChangeKind.DISABLE: lambda c: self._lock_role(
                c.agent, _payload(c, RoleDisable).reason, STATUS_EXPIRED, "disable"
            ),
            ChangeKind.REMOVE: self._remove,
        }
        handler = handlers.get(change.kind)
        if handler is None:
            return self._result(
                change.agent,
                change.kind.value,
                ok=False,
                detail=f"{change.kind.value} is not applied: {change.summary}",
            )
        try:
            return handler(change)
        except ProviderError as exc:
            return ActionResult.failed(
                PROVIDER,
                change.agent,
                change.kind.value,
                exc,
                remaining=f"re-run `agentctl apply` to {change.kind.value} role {self.role_name(change.agent)}",
            )

    # This provider's ActionResult: _result(agent, action, ok=..., detail=..., ...), checked by mypy.
    _result = functools.partial(ActionResult, PROVIDER)

    def _role_result(
        self,
        agent: str,
        action: str,
        detail: str,
        *,
        arn: str | None,
        role_name: str,
        role_id: str | None,
        access_changed: bool = False,
    ) -> ActionResult:
        attributes = {"arn": arn, "role_name": role_name, "role_id": role_id}
        if access_changed:
            attributes[ACCESS_CHANGED_AT] = utc_stamp(self._context.clock())
        return self._result(
            agent,
            action,
            ok=True,
            detail=detail,
            resource_id=arn,
            attributes=attributes,
        )

    def _create(self, change: Change[RolePayload]) -> ActionResult:
        from agentctl.providers.aws.changes import DesiredRole

        desired = _payload(change, DesiredRole)
        role_name = desired.role_name
        params: dict[str, Any] = {
            "RoleName": role_name,
            "Path": desired.path,
            "AssumeRolePolicyDocument": compact_policy(desired.trust),
            "Description": desired.description,
            "MaxSessionDuration": desired.max_session_duration,
            "Tags": tag_list(desired.tags),
        }
        if desired.boundary:
            params["PermissionsBoundary"] = desired.boundary
        response = self._call(
            "iam",
            "create_role",
            f"create role {role_name}",
            absent=("EntityAlreadyExists",),
            **params,
        )
        if response is None:
            # A crashed or concurrent earlier apply created it: converge if it is ours.
            return self._converge_existing(change.agent, change.summary, desired)
        role = response["Role"]
        self._put_policy(role_name, GRANT_POLICY, desired.grant)
        return self._role_result(
            change.agent,
            "create",
            f"created role {role_name}",
            arn=role["Arn"],
            role_name=role_name,
            role_id=role["RoleId"],
            access_changed=True,
        )

    def _converge_existing(self, agent: str, summary: str, desired: DesiredRole) -> ActionResult:
        observed = self.observe(agent)
        if not observed.owned:
            return self._result(
                agent,
                "create",
                ok=False,
                detail=f"role {desired.role_name} appeared meanwhile and is not managed by agentctl; not touched",
                remaining="rename the agent or remove/tag the role, then re-run apply",
            )
        locked = observed.killed or observed.disabled
        desired = replace(
            desired,
            tags={**desired.tags, TAG_STATUS: observed.attributes.get("status", STATUS_ACTIVE)},
        )
        _, payload = self._diff(observed.attributes, desired, locked=locked)
        return self._update(Change(PROVIDER, agent, ChangeKind.UPDATE, summary, payload=payload))

    def _put_policy(self, role_name: str, policy: str, document: Mapping[str, Any]) -> None:
        self._call(
            "iam",
            "put_role_policy",
            f"put inline policy {policy} on role {role_name}",
            RoleName=role_name,
            PolicyName=policy,
            PolicyDocument=compact_policy(document),
        )

    def _delete_policy(self, role_name: str, policy: str) -> None:
        self._call(
            "iam",
            "delete_role_policy",
            f"delete inline policy {policy} of role {role_name}",
            absent=("NoSuchEntity",),
            RoleName=role_name,
            PolicyName=policy,
        )

    def _set_trust(self, role_name: str, document: Mapping[str, Any]) -> None:
        self._call(
            "iam",
            "update_assume_role_policy",
            f"update the trust policy of role {role_name}",
            RoleName=role_name,
            PolicyDocument=compact_policy(document),
        )

    def _tag(self, role_name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam", "tag_role", f"tag role {role_name}", RoleName=role_name, Tags=tag_list(tags)
        )

    def _update(self, change: Change[RolePayload]) -> ActionResult:
        from agentctl.providers.aws.changes import RoleUpdate

        update = _payload(change, RoleUpdate)
        role_name = update.role_name
        if update.enable:
            # Renewed after expiry: open the trust first, then drop the deny,
            # so a crash in between still reads as disabled (deny present).
            if update.trust is not None:
                self._set_trust(role_name, update.trust)
            RoleKiller(self).detach_deny_all(role_name, update.arn)
            self._delete_policy(role_name, KILL_POLICY)
            self._call(
                "iam",
                "untag_role",
                f"untag role {role_name}",
                RoleName=role_name,
                TagKeys=[TAG_KILLED_REASON, TAG_KILLED_AT],
            )
        elif update.trust is not None:
            self._set_trust(role_name, update.trust)
        if update.deny_all:
            self._call(
                "iam",
                "attach_role_policy",
                f"attach {DENY_ALL_NAME} to role {role_name}",
                RoleName=role_name,
                PolicyArn=deny_all_arn(update.arn),
            )
        if update.kill_policy:
            self._put_policy(role_name, KILL_POLICY, KILL_DOCUMENT)
        if update.tags is not None:
            self._tag(role_name, update.tags)
        if update.set_boundary:
            self._call(
                "iam",
                "put_role_permissions_boundary",
                f"set the permissions boundary of role {role_name}",
                RoleName=role_name,
                PermissionsBoundary=update.set_boundary,
            )
        elif update.remove_boundary:
            self._call(
                "iam",
                "delete_role_permissions_boundary",
                f"remove the permissions boundary of role {role_name}",
                RoleName=role_name,
            )
        if update.grant is not None:
            self._put_policy(role_name, GRANT_POLICY, update.grant)
        if update.settings is not None:
            self._call(
                "iam",
                "update_role",
                f"update role {role_name}",
                RoleName=role_name,
                Description=update.settings.description,
                MaxSessionDuration=update.settings.max_session_duration,
            )
        return self._role_result(
            change.agent,
            "update",
            f"updated role {role_name}",
            arn=update.arn,
            role_name=role_name,
            role_id=update.role_id,
            access_changed=update.access_changed,
        )

    def _remove(self, change: Change[RolePayload]) -> ActionResult:
        from agentctl.providers.aws.changes import RoleRemoval

        role_name = _payload(change, RoleRemoval).role_name
        role = self._get_role(role_name, f"look up role {role_name}")
        if role is None:
            return self._result(
                change.agent,
                "remove",
                ok=True,
                already=True,
                detail=f"role {role_name} is already gone",
            )
        if not is_owned(tags_dict(role.get("Tags")), change.agent):
            return self._result(
                change.agent,
                "remove",
                ok=False,
                detail=f"role {role_name} is not managed by agentctl; not deleted",
                remaining=f"delete role {role_name} by hand if it is really unused",
            )
        profiles = self._call(
            "iam",
            "list_instance_profiles_for_role",
            f"list instance profiles of role {role_name}",
            RoleName=role_name,
        ).get("InstanceProfiles", [])
        if profiles:
            # Instance profiles are not agentctl's: say what to do, touch nothing.
            names = ", ".join(sorted(p["InstanceProfileName"] for p in profiles))
            return self._result(
                change.agent,
                "remove",
                ok=False,
                detail=f"role {role_name} is in instance profile(s) {names}; not deleted",
                remaining=f"remove role {role_name} from instance profile(s) {names}, then re-run apply --prune",
            )
        attached = self._call(
            "iam",
            "list_attached_role_policies",
            f"list managed policies attached to role {role_name}",
            RoleName=role_name,
        ).get("AttachedPolicies", [])
        inline = self._inline_policy_names(role_name)
        denies = {KILL_POLICY, REVOKE_OLDER_POLICY}
        # Permissions go first and the kill/revoke denies last, so the role
        # never has more access during the removal than before it.
        for name in inline:
            if name not in denies:
                self._delete_policy(role_name, name)
        deny_all = deny_all_arn(role["Arn"])
        for policy in sorted(attached, key=lambda p: p["PolicyArn"] == deny_all):
            self._call(
                "iam",
                "detach_role_policy",
                f"detach {policy['PolicyArn']} from role {role_name}",
                RoleName=role_name,
                PolicyArn=policy["PolicyArn"],
            )
        for name in inline:
            if name in denies:
                self._delete_policy(role_name, name)
        self._call(
            "iam",
            "delete_role",
            f"delete role {role_name}",
            absent=("NoSuchEntity",),
            RoleName=role_name,
        )
        return self._role_result(
            change.agent,
            "remove",
            f"deleted role {role_name}",
            arn=role["Arn"],
            role_name=role_name,
            role_id=role.get("RoleId"),
        )

    # -- kill / disable / revive -----------------------------------------------------

    def kill(self, agent: str, reason: str) -> ActionResult:
        return self._lock_role(agent, reason, STATUS_KILLED, "kill")

    def _lock_role(self, agent: str, reason: str, status: str, action: str) -> ActionResult:
        """Kill (status killed) or DISABLE (status expired), read back: see
        :mod:`agentctl.providers.aws.kill`."""
        return RoleKiller(self).lock(agent, reason, status, action)

    def check_killed(self, agent: str) -> ActionResult:
        """Read only: does the agent's kill still hold in IAM? (ChecksKill)"""
        return RoleKiller(self).check(agent)

    def revive(self, agent: str, reason: str) -> ActionResult:
        role_name = self.role_name(agent)
        role = self._get_role(role_name, f"look up role {role_name}")
        if role is None:
            return self._result(agent, "revive", ok=True, already=True, detail="no AWS role")
        info = {"arn": role["Arn"], "role_name": role_name, "role_id": role.get("RoleId")}
        tags = tags_dict(role.get("Tags"))
        if not is_owned(tags, agent):
            return self._result(
                agent,
                "revive",
                ok=False,
                detail=f"role {role_name} exists but is not managed by agentctl; not touched",
                remaining="nothing agentctl can revive in AWS",
            )
        # The expiry a trust policy carries is the contract's, as apply tagged it.
        trust = self.trust_policy(_tagged_expiry(tags))
        open_trust = canonical_json(
            normalise_policy(role["AssumeRolePolicyDocument"])
        ) == canonical_json(trust)
        if (
            tags.get(TAG_STATUS, STATUS_ACTIVE) == STATUS_ACTIVE
            and open_trust
            and KILL_POLICY not in self._inline_policy_names(role_name)
            and not RoleKiller(self).deny_all_attached(role_name, role["Arn"])
        ):
            return self._result(
                agent,
                "revive",
                ok=True,
                already=True,
                resource_id=role["Arn"],
                attributes=info,
                detail="not killed",
            )
        # Trust first, denies last: until they go, the role still reads as killed.
        self._set_trust(role_name, trust)
        RoleKiller(self).detach_deny_all(role_name, role["Arn"])
        self._delete_policy(role_name, KILL_POLICY)
        self._tag(role_name, {TAG_STATUS: STATUS_ACTIVE})
        self._call(
            "iam",
            "untag_role",
            f"untag role {role_name}",
            RoleName=role_name,
            TagKeys=[TAG_KILLED_REASON, TAG_KILLED_AT],
        )
        self._record_access_change(agent)
        return self._role_result(
            agent,
            "revive",
            f"revived role {role_name} ({tag_value(reason)})",
            arn=role["Arn"],
            role_name=role_name,
            role_id=role.get("RoleId"),
            access_changed=True,
        )

    # -- rotate ----------------------------------------------------------------------

    def rotate(self, agent: str) -> ActionResult:
        return self.begin_rotate(agent)()

    def begin_rotate(self, agent: str) -> Callable[[], ActionResult]:
        """Verify a fresh session; the returned step revokes every session issued
        before it (sessions running runs take in between are spared).

        The cut-off is the verified session's own issue time as AWS computed it
        (its expiry minus its duration), so skew between this host's clock and
        AWS's cannot revoke the new session or spare an old one.
        """
        role_name = self.role_name(agent)
        role = self._get_role(role_name, f"look up role {role_name}")
        if role is None:
            done = self._result(agent, "rotate", ok=True, already=True, detail="no AWS role")
            return lambda: done
        tags = tags_dict(role.get("Tags"))
        if not is_owned(tags, agent):
            raise NotOwnedError(
                PROVIDER, f"role {role_name} exists but is not managed by agentctl; not touched"
            )
        info = {"arn": role["Arn"], "role_name": role_name, "role_id": role.get("RoleId")}
        if tags.get(TAG_STATUS) in {STATUS_KILLED, STATUS_EXPIRED}:
            done = self._result(
                agent,
                "rotate",
                ok=True,
                already=True,
                resource_id=role["Arn"],
                attributes=info,
                detail=f"{tags[TAG_STATUS]}: every session is already denied",
            )
            return lambda: done
        run_id = uuid.uuid4().hex
        credentials = self._assume(role["Arn"], agent, None, "agentctl-rotate", run_id, MIN_SESSION)
        verifier = self._clients.session_client(
            "iam",
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            },
        )
        # A call IAM evaluates against the role's policies (GetCallerIdentity is
        # never denied, so it would prove nothing): the grant allows it on the
        # role itself; a kill, a boundary or a revocation would refuse it.
        try:
            tags = tags_dict(verifier.list_role_tags(RoleName=role_name).get("Tags"))
        except Exception as exc:
            if error_code(exc) in {"AccessDenied", "AccessDeniedException"}:
                raise ProviderError(
                    PROVIDER,
                    f"a new session of {role_name} was refused {SESSION_CHECK_ACTION} on its own "
                    "role; nothing revoked",
                    hint="`agentctl apply` restores the grant's session check; the permissions "
                    f"boundary must allow {SESSION_CHECK_ACTION} on agent roles",
                ) from None
            raise provider_error(exc, f"verify a new session of role {role_name}") from None
        if not is_owned(tags, agent):
            raise ProviderError(
                PROVIDER,
                f"a new session of {role_name} did not read that role's tags; nothing revoked",
            )
        cutoff = credentials["Expiration"] - timedelta(seconds=MIN_SESSION)
        return functools.partial(self._revoke_older, agent, role["Arn"], info, utc_stamp(cutoff))

    def _revoke_older(self, agent: str, arn: str, info: dict[str, Any], stamp: str) -> ActionResult:
        role_name = info["role_name"]
        self._put_policy(
            role_name,
            REVOKE_OLDER_POLICY,
            {
                "Version": POLICY_VERSION,
                "Statement": [
                    {
                        "Sid": "AgentctlRevokeOlderSessions",
                        "Effect": "Deny",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"DateLessThan": {"aws:TokenIssueTime": stamp}},
                    }
                ],
            },
        )
        return self._result(
            agent,
            "rotate",
            ok=True,
            resource_id=arn,
            attributes={**info, "rotated_at": stamp, "mechanism": "revoke-older-sessions"},
            detail=f"sessions of {role_name} issued before {stamp} are denied; a new session was verified first",
        )

    # -- credentials -------------------------------------------------------------------

    def agent_role_arn(self, agent: str) -> str:
        """The ARN of ``agent``'s role, derived, never looked up: the runtime
        principal needs no IAM read permission (only the three STS actions)."""
        partition, account = self._partition_and_account()
        return f"arn:{partition}:iam::{account}:role{self._role_path()}{self.role_name(agent)}"

    def _partition_and_account(self) -> tuple[str, str]:
        """From aws.account_id, else the boundary's ARN, else who we are
        (sts:GetCallerIdentity needs no permission)."""
        with self._lock:
            if self._account is not None:
                return self._account
        settings = self._settings
        partition = account = None
        for arn in (settings.permissions_boundary, settings.runtime_principal):
            parts = (arn or "").split(":")
            if len(parts) >= 6 and parts[0] == "arn" and parts[4].isdigit():
                partition = partition or parts[1]
                account = account or parts[4]
        account = settings.account_id or (account if settings.permissions_boundary else None)
        if account is None or partition is None:
            identity = self._call(
                "sts", "get_caller_identity", "find the AWS account", runtime=True
            )
            partition = partition or str(identity["Arn"]).split(":")[1]
            account = account or str(identity["Account"])
        with self._lock:
            self._account = (partition, account)
        return partition, account

    def _assume(
        self,
        role_arn: str,
        agent: str,
        on_behalf_of: str | None,
        trigger: str | None,
        run_id: str,
        duration: int,
    ) -> dict[str, Any]:
        """Start a session as the runtime principal, retrying a refusal while a
        change agentctl just made to the role may still be propagating."""
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_field(f"agentctl-{agent}-{run_id[:8]}"),
            "DurationSeconds": duration,
            # CloudTrail shows SourceIdentity on every call of the session and
            # any role it chains to: the person acted for, else the agent itself.
            "SourceIdentity": session_field(on_behalf_of or agent),
            "Tags": [
                {"Key": "agent", "Value": tag_value(agent)},
                {"Key": "on_behalf_of", "Value": tag_value(on_behalf_of or "")},
                {"Key": "trigger", "Value": tag_value(trigger or "")},
            ],
            # Transitive: a chained session cannot drop or rewrite who it is for.
            "TransitiveTagKeys": list(SESSION_TAG_KEYS),
        }
        role_name = role_arn.rsplit("/", 1)[-1]
        doing = f"assume role {role_name}"
        client = self._clients.runtime_client("sts")
        # A monotonic deadline: the bound holds whatever the wall clock does.
        deadline = time.monotonic() + self._propagation_remaining(agent)
        delay = PROPAGATION_FIRST_DELAY
        attempts = 0
        while True:
            attempts += 1
            try:
                return dict(client.assume_role(**params)["Credentials"])
            except ClientError as exc:
                left = deadline - time.monotonic()
                if self._not_the_runtime_principal(exc) is not None:
                    left = 0  # no IAM change makes a wrong caller right: say so at once
                if error_code(exc) == "AccessDenied" and left > 0:
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, PROPAGATION_MAX_DELAY)
                    continue
                raise self._assume_error(exc, doing, role_name, attempts) from None
            except (BotoCoreError, ResponseParserError) as exc:
                raise provider_error(
                    exc, doing, profile=self._clients.profile_name(runtime=True)
                ) from None

    def _not_the_runtime_principal(self, exc: Exception) -> str | None:
        """The caller AWS refused, when it is not aws.runtime_principal (the
        only principal agent roles trust): e.g. exec run as the operator."""
        runtime = self._settings.runtime_principal
        caller = denied_caller(exc) if error_code(exc) == "AccessDenied" else None
        if caller is None or not runtime or same_principal(caller, runtime):
            return None
        return caller

    def _assume_error(
        self, exc: Exception, doing: str, role_name: str, attempts: int
    ) -> ProviderError:
        code = error_code(exc)
        caller = self._not_the_runtime_principal(exc)
        if caller is not None:
            return ProviderError(
                PROVIDER,
                f"AWS refused a session of role {role_name}: these credentials ({caller}) "
                "are not the runtime principal",
                hint=f"{role_name} trusts only the runtime principal "
                f"{self._settings.runtime_principal} (aws.runtime_principal): run this on the "
                "runtime host, or set aws.runtime_profile to an AWS profile of that principal "
                "(`agentctl policy runtime` prints what it needs)",
            )
        if code == "AccessDenied":
            message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
            tried = (
                f" ({attempts} attempts while IAM propagated a recent change)"
                if attempts > 1
                else ""
            )
            return ProviderError(
                PROVIDER,
                f"AWS refused a session of role {role_name}{tried}: {message}",
                hint="the agent may be killed or expired (its trust policy is locked or past its "
                "expiry; `agentctl status` says), or its role may not exist yet (`agentctl apply`)"
                + (
                    ""
                    if denied_caller(exc)
                    else "; only aws.runtime_principal may start sessions "
                    "(`agentctl policy runtime` prints what it needs)"
                ),
            )
        if code == "ValidationError":
            return ProviderError(
                PROVIDER,
                f"AWS refused the session parameters for role {role_name}: "
                + getattr(exc, "response", {}).get("Error", {}).get("Message", ""),
                hint="pass a --duration within the role's maximum (aws.session_duration_seconds)",
            )
        return provider_error(exc, doing, profile=self._clients.profile_name(runtime=True))

    def _propagation_remaining(self, agent: str) -> float:
        """Seconds during which a refusal may still be IAM propagating a change
        agentctl made to this role (its time is recorded in state); 0: no retry."""
        seconds = self._settings.propagation_seconds
        if seconds <= 0 or self._context.state_factory is None:
            return 0.0
        record = self._context.state.get_resource(agent, PROVIDER)
        stamp = record.attributes.get(ACCESS_CHANGED_AT) if record is not None else None
        if not isinstance(stamp, str):
            return 0.0
        try:
            changed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return 0.0
        elapsed = (self._context.clock() - changed).total_seconds()
        # A change stamped in the future (clock skew) still gets only one window.
        return max(0.0, min(seconds, seconds - elapsed))

    def _record_access_change(self, agent: str) -> None:
        """Note in state that agentctl just changed who may use this role (for
        :meth:`_propagation_window_end`). Apply records it from the result's
        attributes; revive, which records no resource, writes it here."""
        if self._context.state_factory is None:
            return
        state = self._context.state
        record = state.get_resource(agent, PROVIDER)
        if record is None:
            return
        state.put_resource(
            agent=agent,
            provider=PROVIDER,
            resource_id=record.resource_id,
            attributes={**record.attributes, ACCESS_CHANGED_AT: utc_stamp(self._context.clock())},
            applied_hash=record.applied_hash,
        )

    def issue_credentials(self, contract: Contract, run: RunContext) -> IssuedCredential:
        from agentctl.secrets import Secret

        role_name = self.role_name(contract.name)
        # The role's limit is what apply set from settings; AWS checks it too.
        limit = self.max_session_duration()
        if not MIN_SESSION <= run.duration_seconds <= limit:
            raise ProviderError(
                PROVIDER,
                f"a session of {run.duration_seconds}s is outside {MIN_SESSION}..{limit}s allowed for {role_name}",
                hint="pass a --duration in that range, or raise aws.session_duration_seconds and apply",
            )
        issued_at = self._context.clock()
        credential_id = uuid.uuid4().hex
        state = self._context.state if self._context.state_factory is not None else None
        # Recorded before STS is asked, never after: a SIGKILL between the two must
        # not leave a live session nobody knows of. Metadata only; the fingerprint
        # follows once STS answered. (A provider used without a state just issues.)
        if state is not None:
            state.add_credential(
                id=credential_id,
                agent=contract.name,
                provider=PROVIDER,
                kind="session",
                fingerprint="",
                issued_at=issued_at,
                expires_at=issued_at + timedelta(seconds=run.duration_seconds),
                on_behalf_of=run.on_behalf_of,
                trigger=run.trigger,
            )
        try:
            credentials = self._assume(
                self.agent_role_arn(contract.name),
                contract.name,
                run.on_behalf_of,
                run.trigger,
                run.run_id,
                run.duration_seconds,
            )
        except BaseException:
            if state is not None:  # none was issued: not live
                state.mark_credential_revoked(credential_id, self._context.clock())
            raise
        expires_at = credentials["Expiration"]
        if isinstance(expires_at, datetime):
            expires_at = expires_at.astimezone(UTC)
        else:
            expires_at = issued_at + timedelta(seconds=run.duration_seconds)
        region = self.region()
        # Only the three credential values are secret; region and endpoint are not.
        environment: dict[str, Secret | str] = {
            "AWS_ACCESS_KEY_ID": Secret(credentials["AccessKeyId"]),
            "AWS_SECRET_ACCESS_KEY": Secret(credentials["SecretAccessKey"]),
            "AWS_SESSION_TOKEN": Secret(credentials["SessionToken"]),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }
        endpoint = self.endpoint_url()
        if endpoint:
            environment["AWS_ENDPOINT_URL"] = endpoint
        # Access key ids identify a session in CloudTrail; keep only a hash.
        fingerprint = hashlib.sha256(credentials["AccessKeyId"].encode()).hexdigest()[:16]
        with self._lock:
            self._issued[credential_id] = expires_at
        if state is not None:
            state.set_credential_fingerprint(credential_id, fingerprint)
        return IssuedCredential(
            provider=PROVIDER,
            credential_id=credential_id,
            fingerprint=fingerprint,
            issued_at=issued_at,
            expires_at=expires_at,
            environment=environment,
            description=f"session of IAM role {role_name} for {run.on_behalf_of or contract.name}",
        )

    def revoke_credential(self, agent: str, credential_id: str) -> ActionResult:
        """STS sessions cannot be revoked one by one; they expire on their own.
        (`agentctl kill` or `rotate` revoke all of an agent's sessions at once.)"""
        with self._lock:
            expires_at = self._issued.pop(credential_id, None)
        when = (
            f"expires at {utc_stamp(expires_at)}"
            if expires_at
            else "expires at the end of its duration"
        )
        return self._result(
            agent,
            "revoke",
            ok=True,
            already=True,
            detail=f"AWS sessions cannot be revoked individually; this one {when}",
        )
