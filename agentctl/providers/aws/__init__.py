"""AWS provider: one IAM role per agent.

This package exports :data:`SPEC` (registered as the ``aws`` entry point of
``agentctl.providers``); importing it never imports boto3. Its modules:
``settings`` (agentctl.yaml's ``aws:``), ``grant`` (the grant's schema and
typed value), ``vocabulary`` (IAM actions and lint), ``policies`` (pure names,
tags and policy documents), ``client`` (boto3 session, clients and error
mapping) and ``lifecycle`` (the Provider).
"""

from __future__ import annotations

from agentctl.providers.aws.grant import (
    GRANT_SCHEMA,
    SCHEMA_DEFS,
    AwsGrant,
    describe_aws_grant,
    parse_aws_grant,
)
from agentctl.providers.aws.settings import AwsSettings
from agentctl.providers.base import GrantFinding, NameLimit, ProviderSpec, SchemaHints

PROVIDER = "aws"
# IAM role names are at most 64 characters; the role is "<role_prefix><agent>".
IAM_ROLE_NAME_MAX = 64


def _check(grant: AwsGrant, settings: AwsSettings) -> list[GrantFinding]:
    # The action table is imported on the first check, not with the package.
    from agentctl.providers.aws.vocabulary import check_aws_grant

    return check_aws_grant(grant, role_prefix=settings.role_prefix, role_path=settings.role_path)


_DEFAULT_PREFIX = AwsSettings().role_prefix

SPEC: ProviderSpec[AwsGrant, AwsSettings] = ProviderSpec(
    name=PROVIDER,
    summary="one IAM role per agent, its inline policy exactly the contract's statements",
    grant_schema=GRANT_SCHEMA,
    schema_defs=SCHEMA_DEFS,
    parse_grant=parse_aws_grant,
    check_grant=_check,
    describe_grant=describe_aws_grant,
    settings_type=AwsSettings,
    provider="agentctl.providers.aws.lifecycle:AwsProvider",
    hints=SchemaHints(
        unknown_key={
            "effect": "every statement is an Allow; remove 'effect' (a Deny cannot be expressed)",
            "condition": "conditions are not supported; narrow 'resources' instead",
            "notaction": "NotAction is not supported: list the allowed actions",
            "notresource": "NotResource is not supported: list the allowed resources",
        },
        missing_key={
            "[].actions": "add 'actions:' with the IAM actions, e.g. [s3:GetObject]",
            "[].resources": "add 'resources:' with the ARNs the actions apply to",
        },
        expected_type={
            "": "a list of statements, each with actions and resources",
            "[]": "a statement: a mapping with actions and resources",
        },
    ),
    name_limit=NameLimit(
        IAM_ROLE_NAME_MAX - len(_DEFAULT_PREFIX),
        f"the IAM role {_DEFAULT_PREFIX}<name> is at most {IAM_ROLE_NAME_MAX} characters",
    ),
)
