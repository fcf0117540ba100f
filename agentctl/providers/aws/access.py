"""The IAM policies people attach for agentctl: the operator's, the runtime host's
and a starting permissions boundary (pure: no boto3, no network).

``agentctl policy operator|runtime|boundary`` prints them filled in for the
configured account, partition, role path, prefix and boundary; ``policies/``
holds the same documents with placeholders (``scripts/gen_policies.py``
writes them; a test keeps them in step).

The operator policy is AWS's delegated-administration pattern
(https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html,
"Delegating responsibility to others using permissions boundaries"): every
action that writes a role's permissions is allowed only on agentctl's role path
and only while the role carries the configured boundary
(``iam:PermissionsBoundary``), so the operator can never make a role more
powerful than the boundary; the boundary itself, and the operator's and
runtime's own policies, can never be changed or removed by it; and it may not
start agent sessions — that is the runtime principal's job, and only its job.

Two statement pairs (``Allow`` on ``*`` cut back by a ``Deny`` with
``NotResource``) exist because some calls cannot always be matched against the
final ARN: ``CreateRole`` and ``GetRole`` of a role that does not exist yet, and
``GetPolicy`` (local AWS emulators authorise them against ``*``). In AWS the net
effect is the same as naming the ARN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentctl.errors import ConfigError
from agentctl.model import JsonObject
from agentctl.providers.aws.policies import POLICY_VERSION, SESSION_ACTIONS
from agentctl.providers.aws.settings import AwsSettings

# The AWS-managed policy kill attaches besides its inline deny: no inline size
# quota applies to it, and it is the only managed policy the operator may attach.
DENY_ALL_POLICY_NAME = "AWSDenyAll"
OPERATOR_POLICY_NAME = "agentctl-operator"
RUNTIME_POLICY_NAME = "agentctl-runtime"

PLACEHOLDERS = {
    "partition": "<PARTITION>",
    "account_id": "<ACCOUNT_ID>",
    "boundary": "arn:<PARTITION>:iam::<ACCOUNT_ID>:policy/<BOUNDARY_POLICY_NAME>",
}

_ARN = re.compile(r"arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?P<account>\d{12}):\S+")
_ACCOUNT = re.compile(r"\d{12}")

# Actions that write what a role may do; each needs the configured boundary on the role.
ROLE_PERMISSION_WRITES = (
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
)
# Role writes with no permission content (tags, description, trust, deletion).
ROLE_WRITES = (
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateRole",
    "iam:UpdateAssumeRolePolicy",
)
ROLE_READS = (
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
)
# Every way to change what a managed policy says or whether it exists.
POLICY_WRITES = (
    "iam:CreatePolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeletePolicy",
    "iam:TagPolicy",
    "iam:UntagPolicy",
)
BOUNDARY_REMOVALS = ("iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary")

SECRETS_ACTIONS = (
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
    "secretsmanager:DescribeSecret",
    "secretsmanager:TagResource",
)

# What a starting boundary denies every agent, whatever its contract says:
# administering identities, and minting credentials the kill cannot reach.
BOUNDARY_DENIES = (
    "iam:Add*",
    "iam:Attach*",
    "iam:Create*",
    "iam:Delete*",
    "iam:Detach*",
    "iam:PassRole",
    "iam:Put*",
    "iam:Remove*",
    "iam:Set*",
    "iam:Update*",
    "iam:Upload*",
    "organizations:*",
    "account:*",
    "sts:AssumeRole",
    "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity",
    "sts:GetFederationToken",
    "sts:GetSessionToken",
    "sso:*",
    "identitystore:*",
)


@dataclass(frozen=True)
class PolicyValues:
    """What the generated documents are filled in with."""

    partition: str
    account_id: str
    role_path: str
    role_prefix: str
    boundary: str
    secrets_prefix: str | None = None  # aws-secretsmanager in use: its name prefix

    @property
    def agent_roles(self) -> str:
        """Every agent role, and nothing else: ``role<path><prefix>*``."""
        return (
            f"arn:{self.partition}:iam::{self.account_id}:role{self.role_path}{self.role_prefix}*"
        )

    @property
    def deny_all_policy(self) -> str:
        return f"arn:{self.partition}:iam::aws:policy/{DENY_ALL_POLICY_NAME}"

    def own_policies(self) -> list[str]:
        """The boundary and agentctl's own managed policies (at any path)."""
        base = f"arn:{self.partition}:iam::{self.account_id}:policy/"
        return [self.boundary, f"{base}*{OPERATOR_POLICY_NAME}", f"{base}*{RUNTIME_POLICY_NAME}"]


def template_values(secrets: bool = True) -> PolicyValues:
    """The placeholders ``policies/`` is written with (default path and prefix)."""
    defaults = AwsSettings()
    return PolicyValues(
        partition=PLACEHOLDERS["partition"],
        account_id=PLACEHOLDERS["account_id"],
        role_path=defaults.role_path,
        role_prefix=defaults.role_prefix,
        boundary=PLACEHOLDERS["boundary"],
        secrets_prefix="agentctl/" if secrets else None,
    )


def policy_values(
    settings: AwsSettings,
    *,
    account_id: str | None = None,
    partition: str | None = None,
    secrets_prefix: str | None = None,
) -> PolicyValues:
    """The values for this configuration; raises ConfigError saying what is missing.

    The account and partition come from ``account_id``/``partition`` (a flag),
    else ``aws.account_id``, else the boundary's ARN (a customer-managed policy
    lives in the account whose roles it bounds).
    """
    boundary = settings.permissions_boundary
    if not boundary:
        raise ConfigError(
            "aws.permissions_boundary is not configured: the operator may only write agent "
            "roles that carry it, so every agent stays inside it",
            hint="create the boundary first (`agentctl policy boundary`), then set "
            "aws.permissions_boundary in agentctl.yaml to its ARN",
        )
    match = _ARN.fullmatch(boundary)
    if match is None or ":policy/" not in boundary:
        raise ConfigError(
            f"aws.permissions_boundary {boundary!r} is not the ARN of a customer-managed policy",
            hint="e.g. arn:aws:iam::123456789012:policy/agentctl-boundary",
        )
    account = account_id or settings.account_id or match["account"]
    if not _ACCOUNT.fullmatch(account):
        raise ConfigError(
            f"account id {account!r} is not 12 digits", hint="set aws.account_id or --account"
        )
    path = settings.role_path
    if not (path.startswith("/") and path.endswith("/")):
        raise ConfigError(
            f"aws.role_path {path!r} must start and end with '/'", hint="e.g. /agentctl/"
        )
    return PolicyValues(
        partition=partition or match["partition"],
        account_id=account,
        role_path=path,
        role_prefix=settings.role_prefix,
        boundary=boundary,
        secrets_prefix=secrets_prefix,
    )


def operator_policy(values: PolicyValues) -> JsonObject:
    """Everything the operator (apply, kill, revive, rotate, prune) needs, and no
    way to raise itself or any agent above the boundary."""
    roles = values.agent_roles
    path_roles = f"arn:{values.partition}:iam::{values.account_id}:role/*{values.role_prefix}*"
    with_boundary = {"StringEquals": {"iam:PermissionsBoundary": values.boundary}}
    statements: list[JsonObject] = [
        {"Sid": "ReadAgentRoles", "Effect": "Allow", "Action": list(ROLE_READS), "Resource": roles},
        {
            "Sid": "ManageAgentRoles",
            "Effect": "Allow",
            "Action": list(ROLE_WRITES),
            "Resource": roles,
        },
        {
            "Sid": "WriteAgentPermissionsOnlyInsideTheBoundary",
            "Effect": "Allow",
            "Action": list(ROLE_PERMISSION_WRITES),
            "Resource": roles,
            "Condition": with_boundary,
        },
        {
            "Sid": "CreateAgentRolesOnlyWithTheBoundary",
            "Effect": "Allow",
            "Action": ["iam:CreateRole"],
            "Resource": "*",
            "Condition": with_boundary,
        },
        {
            "Sid": "CreateRolesOnlyOnTheAgentPath",
            "Effect": "Deny",
            "Action": ["iam:CreateRole"],
            "NotResource": roles,
        },
        {
            # Kill attaches AWSDenyAll (no inline-size quota). Attaching a
            # deny-all is never an escalation, so it needs no boundary: kill
            # works even on a role created before the boundary was configured.
            "Sid": "AttachOnlyAWSDenyAll",
            "Effect": "Allow",
            "Action": ["iam:AttachRolePolicy"],
            "Resource": roles,
            "Condition": {"ArnEquals": {"iam:PolicyARN": values.deny_all_policy}},
        },
        {
            # Kill finds an agent's role by its tags when the state does not
            # know it (another operator's machine): reads only.
            "Sid": "KillFindsAgentRolesByTag",
            "Effect": "Allow",
            "Action": ["iam:ListRoles", "iam:ListRoleTags"],
            "Resource": "*",
        },
        {
            # A role with an agent's name at another path is reported as a
            # conflict, not an AccessDenied.
            "Sid": "LookUpAgentRoleNames",
            "Effect": "Allow",
            "Action": ["iam:GetRole"],
            "Resource": "*",
        },
        {
            "Sid": "LookUpOnlyAgentRoleNames",
            "Effect": "Deny",
            "Action": ["iam:GetRole"],
            "NotResource": path_roles,
        },
        {
            # plan reads the boundary once per run for the boundary lint.
            "Sid": "ReadTheBoundary",
            "Effect": "Allow",
            "Action": ["iam:GetPolicy", "iam:GetPolicyVersion"],
            "Resource": "*",
        },
        {
            "Sid": "ReadOnlyTheBoundary",
            "Effect": "Deny",
            "Action": ["iam:GetPolicy", "iam:GetPolicyVersion"],
            "NotResource": values.boundary,
        },
        {
            "Sid": "NeverRemoveABoundary",
            "Effect": "Deny",
            "Action": list(BOUNDARY_REMOVALS),
            "Resource": "*",
        },
        {
            "Sid": "NeverChangeTheBoundaryOrAgentctlPolicies",
            "Effect": "Deny",
            "Action": list(POLICY_WRITES),
            "Resource": values.own_policies(),
        },
        {
            # Sessions are the runtime principal's; a trust policy naming the
            # operator must not be enough (an explicit Deny beats a
            # resource-based Allow).
            "Sid": "NoAgentSessionsForTheOperator",
            "Effect": "Deny",
            "Action": list(SESSION_ACTIONS),
            "Resource": roles,
        },
    ]
    if values.secrets_prefix is not None:
        statements += _secrets_statements(values)
    return {"Version": POLICY_VERSION, "Statement": statements}


def _secrets_statements(values: PolicyValues) -> list[JsonObject]:
    secret = f"arn:{values.partition}:secretsmanager:*:{values.account_id}:secret:{values.secrets_prefix}*"
    return [
        {
            "Sid": "AgentctlSecretsReadWrite",
            "Effect": "Allow",
            "Action": list(SECRETS_ACTIONS),
            "Resource": secret,
        },
        {
            # ListSecrets has no resource-level permissions; it returns names, never values.
            "Sid": "AgentctlSecretsList",
            "Effect": "Allow",
            "Action": ["secretsmanager:ListSecrets"],
            "Resource": "*",
        },
        {
            "Sid": "AgentctlSecretsKmsThroughSecretsManager",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
        },
    ]


def runtime_policy(values: PolicyValues) -> JsonObject:
    """All ``agentctl exec`` / ``credentials`` need: start a tagged session of an
    agent role, nothing else (the role ARN is derived, never looked up)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "StartAgentSessions",
                "Effect": "Allow",
                "Action": list(SESSION_ACTIONS),
                "Resource": values.agent_roles,
            }
        ],
    }


def boundary_policy(values: PolicyValues) -> JsonObject:
    """A starting permissions boundary: the most any contract can grant.

    Everything, except administering identities and minting credentials out
    of the kill's reach; narrow the Allow to the services your agents use.
    """
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Sid": "AgentCeiling", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "NoIdentityAdministrationNoUnkillableCredentials",
                "Effect": "Deny",
                "Action": list(BOUNDARY_DENIES),
                "Resource": "*",
            },
        ],
    }


DOCUMENTS = {
    "operator": operator_policy,
    "runtime": runtime_policy,
    "boundary": boundary_policy,
}


def generate(
    kind: str,
    settings: AwsSettings,
    *,
    secrets_prefix: str | None = None,
    account_id: str | None = None,
    partition: str | None = None,
) -> JsonObject:
    """The ``kind`` document (operator, runtime, boundary) for this configuration."""
    if kind not in DOCUMENTS:
        raise ConfigError(
            f"unknown policy {kind!r}", hint="one of: " + ", ".join(sorted(DOCUMENTS))
        )
    if kind == "boundary":
        # Step one of the set-up: nothing is configured yet, and nothing is needed.
        return boundary_policy(template_values(secrets=False))
    values = policy_values(
        settings, account_id=account_id, partition=partition, secrets_prefix=secrets_prefix
    )
    return DOCUMENTS[kind](values)
