"""Every published IAM privilege-escalation technique, against the generated
operator and runtime policies: why each is blocked.

Sources of the table:
- Rhino Security Labs, "AWS IAM Privilege Escalation – Methods and Mitigation"
  (parts 1 and 2; https://rhinosecuritylabs.com/aws/aws-privilege-escalation-methods-mitigation/),
  numbered as there;
- NCC Group's Principal Mapper edge checks (principalmapper/graphing/*_edges.py:
  iam, sts, ec2, lambda, cloudformation, codebuild, sagemaker, ssm, autoscaling,
  ecs, glue, datapipeline, cross_account);
- what the issue reproduced against agentctl's own former policy.

Each row is checked two ways:
- **on the documents**, with an evaluator of AWS's documented policy logic
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html:
  an explicit Deny wins, else an Allow whose Action, Resource and every
  Condition match, else implicit deny; a condition key absent from the request
  does not match —
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html),
  including the conditions moto ignores (``iam:PermissionsBoundary``,
  ``iam:PolicyARN``: https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html);
- **live**, where moto can enforce it: the call is made as an IAM user holding
  only the generated operator policy (or runtime policy), with moto's IAM
  enforcement on, and must be refused. moto evaluates Allow/Deny by action and
  resource but no Conditions (see tests/aws_helpers.py), so a row whose block
  is a condition is checked on the documents only — and says so.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_helpers import ACCOUNT, DEFAULT_BOUNDARY, MotoServer, create_boundary, create_operator
from botocore.exceptions import ClientError

from agentctl.providers.aws.access import generate
from agentctl.providers.aws.settings import AwsSettings

SETTINGS = AwsSettings(permissions_boundary=DEFAULT_BOUNDARY)
OPERATOR = generate("operator", SETTINGS, secrets_prefix="agentctl/")
RUNTIME = generate("runtime", SETTINGS)

AGENT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/agentctl/agentctl-triage"
EVIL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/agentctl/agentctl-evil"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/admin"
ADMIN_USER = f"arn:aws:iam::{ACCOUNT}:user/admin"
ADMIN_GROUP = f"arn:aws:iam::{ACCOUNT}:group/admins"
OPERATOR_POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/agentctl-operator"
RUNTIME_POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/agentctl-runtime"
ANY_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/team-policy"
ADMIN_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
DENY_ALL = "arn:aws:iam::aws:policy/AWSDenyAll"
WEAK_BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/agentctl-weaker"
BOUNDED = {"iam:PermissionsBoundary": DEFAULT_BOUNDARY}


# -- AWS's evaluation logic, for the documents --------------------------------------


def _values(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _matches(statement: Mapping[str, Any], key: str, value: str, *, case: bool) -> bool:
    negated = f"Not{key}"
    patterns = _values(statement[negated] if negated in statement else statement[key])
    if case:
        hit = any(fnmatch.fnmatchcase(value, p) for p in patterns)
    else:
        hit = any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)
    return not hit if negated in statement else hit


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, str]) -> bool:
    if key not in context:
        return False  # absent key: a positive operator does not match
    actual = context[key]
    wanted = _values(expected)
    if operator in ("StringEquals", "ArnEquals"):
        return actual in wanted
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, w) for w in wanted)
    if operator == "StringNotEquals":
        return actual not in wanted
    if operator == "DateLessThan":
        return any(actual < w for w in wanted)  # ISO 8601 UTC strings order as time
    raise AssertionError(f"the evaluator does not know {operator}: extend it")


def evaluate(
    document: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str] = {}
) -> str:
    """ "Deny" (explicit), "Allow", or "implicit" for one request."""
    allowed = False
    for statement in document["Statement"]:
        if not _matches(statement, "Action", action, case=False):
            continue
        if not _matches(statement, "Resource", resource, case=True):
            continue
        conditions = statement.get("Condition", {})
        if not all(
            _condition_holds(op, key, expected, context)
            for op, pairs in conditions.items()
            for key, expected in pairs.items()
        ):
            continue
        if statement["Effect"] == "Deny":
            return "Deny"
        allowed = True
    return "Allow" if allowed else "implicit"


# -- the table -----------------------------------------------------------------------

Request = tuple[str, str, Mapping[str, str]]  # action, resource, request context


@dataclass(frozen=True)
class Technique:
    name: str
    source: str
    # The requests the technique needs; blocked if any one is refused.
    requests: tuple[Request, ...]
    why: str
    # A live attempt as the operator with moto enforcing, or None with the reason.
    live: Callable[[Any], Any] | None = None
    not_live: str = ""
    # Requests the operator / runtime is *meant* to make (bounded): blocked by another step.
    operator_may: tuple[int, ...] = field(default=())
    runtime_may: tuple[int, ...] = field(default=())


def _iam(clients: Any) -> Any:
    return clients("iam")


PASS_ANY_ROLE: Request = ("iam:PassRole", ADMIN_ROLE, {})

TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "new version of a policy it can edit",
        "Rhino 1; PMapper iam_edges",
        (
            ("iam:CreatePolicyVersion", DEFAULT_BOUNDARY, {}),
            ("iam:CreatePolicyVersion", OPERATOR_POLICY_ARN, {}),
            ("iam:CreatePolicyVersion", ANY_POLICY, {}),
        ),
        "NeverChangeTheBoundaryOrAgentctlPolicies denies it on the boundary and agentctl's "
        "own policies; nothing allows it elsewhere",
        live=lambda c: _iam(c).create_policy_version(
            PolicyArn=DEFAULT_BOUNDARY,
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
            SetAsDefault=True,
        ),
    ),
    Technique(
        "switch a policy's default version",
        "Rhino 2",
        (
            ("iam:SetDefaultPolicyVersion", DEFAULT_BOUNDARY, {}),
            ("iam:SetDefaultPolicyVersion", RUNTIME_POLICY_ARN, {}),
        ),
        "denied on the boundary and agentctl's policies; allowed nowhere",
        live=lambda c: _iam(c).set_default_policy_version(
            PolicyArn=DEFAULT_BOUNDARY, VersionId="v1"
        ),
    ),
    Technique(
        "PassRole to a new EC2 instance",
        "Rhino 3; PMapper ec2_edges",
        (PASS_ANY_ROLE, ("ec2:RunInstances", "*", {})),
        "no iam:PassRole and no ec2 action in either policy",
        live=lambda c: c("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1),
    ),
    Technique(
        "attach an instance profile to a running instance",
        "PMapper ec2_edges",
        (PASS_ANY_ROLE, ("ec2:AssociateIamInstanceProfile", "*", {})),
        "no iam:PassRole, no ec2 action",
        live=lambda c: c("ec2").associate_iam_instance_profile(
            IamInstanceProfile={"Name": "admin"}, InstanceId="i-0123456789abcdef0"
        ),
    ),
    Technique(
        "access key for another user",
        "Rhino 4; PMapper iam_edges",
        (("iam:CreateAccessKey", ADMIN_USER, {}),),
        "no user action in either policy",
        live=lambda c: _iam(c).create_access_key(UserName="admin"),
    ),
    Technique(
        "console password for a user",
        "Rhino 5; PMapper iam_edges",
        (("iam:CreateLoginProfile", ADMIN_USER, {}),),
        "no user action",
        live=lambda c: _iam(c).create_login_profile(
            UserName="admin", Password="Pa55word!Pa55word!"
        ),
    ),
    Technique(
        "reset a user's console password",
        "Rhino 6; PMapper iam_edges",
        (("iam:UpdateLoginProfile", ADMIN_USER, {}),),
        "no user action",
        live=lambda c: _iam(c).update_login_profile(
            UserName="admin", Password="Pa55word!Pa55word!"
        ),
    ),
    Technique(
        "attach a managed policy to a user",
        "Rhino 7",
        (("iam:AttachUserPolicy", ADMIN_USER, {"iam:PolicyARN": ADMIN_ACCESS}),),
        "no user action",
        live=lambda c: _iam(c).attach_user_policy(UserName="admin", PolicyArn=ADMIN_ACCESS),
    ),
    Technique(
        "attach a managed policy to a group",
        "Rhino 8",
        (("iam:AttachGroupPolicy", ADMIN_GROUP, {"iam:PolicyARN": ADMIN_ACCESS}),),
        "no group action",
        live=lambda c: _iam(c).attach_group_policy(GroupName="admins", PolicyArn=ADMIN_ACCESS),
    ),
    Technique(
        "attach AdministratorAccess to an agent role",
        "Rhino 9",
        (
            ("iam:AttachRolePolicy", AGENT_ROLE, {"iam:PolicyARN": ADMIN_ACCESS, **BOUNDED}),
            ("iam:AttachRolePolicy", ADMIN_ROLE, {"iam:PolicyARN": ADMIN_ACCESS}),
        ),
        "AttachOnlyAWSDenyAll: iam:PolicyARN must be AWSDenyAll; other roles are not the "
        "agent path",
        live=lambda c: _iam(c).attach_role_policy(RoleName="admin", PolicyArn=ADMIN_ACCESS),
        not_live="on an agent role the block is the iam:PolicyARN condition, which moto ignores",
    ),
    Technique(
        "inline policy on a user",
        "Rhino 10",
        (("iam:PutUserPolicy", ADMIN_USER, {}),),
        "no user action",
        live=lambda c: _iam(c).put_user_policy(
            UserName="admin", PolicyName="x", PolicyDocument=json.dumps(_ADMIN_DOC)
        ),
    ),
    Technique(
        "inline policy on a group",
        "Rhino 11",
        (("iam:PutGroupPolicy", ADMIN_GROUP, {}),),
        "no group action",
        live=lambda c: _iam(c).put_group_policy(
            GroupName="admins", PolicyName="x", PolicyDocument=json.dumps(_ADMIN_DOC)
        ),
    ),
    Technique(
        "inline Allow * on a role",
        "Rhino 12",
        (
            ("iam:PutRolePolicy", ADMIN_ROLE, {}),
            # A role on the agent path without the boundary (the agentctl-evil).
            ("iam:PutRolePolicy", EVIL_ROLE, {}),
        ),
        "WriteAgentPermissionsOnlyInsideTheBoundary: only agent roles, only while they carry "
        "the boundary (inside it, Allow * is still capped by the boundary)",
        live=lambda c: _iam(c).put_role_policy(
            RoleName="admin", PolicyName="x", PolicyDocument=json.dumps(_ADMIN_DOC)
        ),
        not_live="a boundary-less agent role: the iam:PermissionsBoundary condition, ignored by moto",
    ),
    Technique(
        "join a privileged group",
        "Rhino 13",
        (("iam:AddUserToGroup", ADMIN_GROUP, {}),),
        "no group action",
        live=lambda c: _iam(c).add_user_to_group(GroupName="admins", UserName="agentctl-operator"),
    ),
    Technique(
        "rewrite a trust policy, then assume the role",
        "Rhino 14; PMapper iam_edges, sts_edges",
        (
            ("iam:UpdateAssumeRolePolicy", ADMIN_ROLE, {}),
            ("iam:UpdateAssumeRolePolicy", AGENT_ROLE, {}),
            ("sts:AssumeRole", AGENT_ROLE, {}),
        ),
        "trust writes only on agent roles, and NoAgentSessionsForTheOperator denies it any "
        "agent session (an explicit Deny beats the trust policy's Allow). Residual: it can name "
        "another principal in an agent role's trust; that role stays capped by the boundary "
        "and plan reports the trust as drift (SECURITY.md)",
        live=lambda c: c("sts").assume_role(RoleArn=AGENT_ROLE, RoleSessionName="escalate"),
        operator_may=(1,),
        runtime_may=(2,),  # its job; it cannot write the trust or the permissions
    ),
    Technique(
        "PassRole to a new Lambda function, invoke it",
        "Rhino 15; PMapper lambda_edges",
        (PASS_ANY_ROLE, ("lambda:CreateFunction", "*", {}), ("lambda:InvokeFunction", "*", {})),
        "no iam:PassRole, no lambda action",
        live=lambda c: c("lambda").create_function(
            FunctionName="x",
            Runtime="python3.12",
            Role=ADMIN_ROLE,
            Handler="x.handler",
            Code={"ZipFile": b"x"},
        ),
    ),
    Technique(
        "PassRole to a new Lambda function triggered by DynamoDB",
        "Rhino 16",
        (
            PASS_ANY_ROLE,
            ("lambda:CreateFunction", "*", {}),
            ("lambda:CreateEventSourceMapping", "*", {}),
        ),
        "no iam:PassRole, no lambda action",
        live=lambda c: c("lambda").create_event_source_mapping(
            EventSourceArn=f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/x",
            FunctionName="x",
        ),
    ),
    Technique(
        "replace an existing function's code",
        "Rhino 17; PMapper lambda_edges",
        (("lambda:UpdateFunctionCode", "*", {}),),
        "no lambda action",
        live=lambda c: c("lambda").update_function_code(FunctionName="x", ZipFile=b"x"),
    ),
    Technique(
        "change an existing function's role or layers",
        "Rhino part 2; PMapper lambda_edges",
        (("lambda:UpdateFunctionConfiguration", "*", {}),),
        "no lambda action",
        live=lambda c: c("lambda").update_function_configuration(FunctionName="x", Role=ADMIN_ROLE),
    ),
    Technique(
        "PassRole to a Glue dev endpoint",
        "Rhino 18; PMapper glue_edges",
        (PASS_ANY_ROLE, ("glue:CreateDevEndpoint", "*", {})),
        "no iam:PassRole, no glue action",
        live=lambda c: c("glue").create_dev_endpoint(EndpointName="x", RoleArn=ADMIN_ROLE),
    ),
    Technique(
        "SSH key onto an existing Glue dev endpoint",
        "Rhino 19; PMapper glue_edges",
        (("glue:UpdateDevEndpoint", "*", {}),),
        "no glue action",
        live=None,
        not_live="moto has no Glue dev endpoints",
    ),
    Technique(
        "PassRole to a CloudFormation stack",
        "Rhino 20; PMapper cloudformation_edges",
        (PASS_ANY_ROLE, ("cloudformation:CreateStack", "*", {})),
        "no iam:PassRole, no cloudformation action",
        live=lambda c: c("cloudformation").create_stack(
            StackName="x", TemplateBody="{}", RoleARN=ADMIN_ROLE
        ),
    ),
    Technique(
        "update a stack that runs with a role, or its change sets",
        "PMapper cloudformation_edges",
        (
            ("cloudformation:UpdateStack", "*", {}),
            ("cloudformation:CreateChangeSet", "*", {}),
            ("cloudformation:ExecuteChangeSet", "*", {}),
        ),
        "no cloudformation action",
        live=lambda c: c("cloudformation").update_stack(StackName="x", TemplateBody="{}"),
    ),
    Technique(
        "PassRole to a Data Pipeline",
        "Rhino 21; PMapper datapipeline_edges",
        (
            PASS_ANY_ROLE,
            ("datapipeline:CreatePipeline", "*", {}),
            ("datapipeline:PutPipelineDefinition", "*", {}),
        ),
        "no iam:PassRole, no datapipeline action",
        live=None,
        not_live="moto dropped Data Pipeline",
    ),
    Technique(
        "PassRole to a CodeStar project, or join one",
        "Rhino part 2",
        (
            PASS_ANY_ROLE,
            ("codestar:CreateProject", "*", {}),
            ("codestar:AssociateTeamMember", "*", {}),
        ),
        "no iam:PassRole, no codestar action",
        live=None,
        not_live="moto has no CodeStar",
    ),
    Technique(
        "PassRole to a SageMaker notebook, training or processing job",
        "Rhino part 2; PMapper sagemaker_edges",
        (
            PASS_ANY_ROLE,
            ("sagemaker:CreateNotebookInstance", "*", {}),
            ("sagemaker:CreatePresignedNotebookInstanceUrl", "*", {}),
            ("sagemaker:CreateTrainingJob", "*", {}),
            ("sagemaker:CreateProcessingJob", "*", {}),
        ),
        "no iam:PassRole, no sagemaker action",
        live=lambda c: c("sagemaker").create_notebook_instance(
            NotebookInstanceName="x", InstanceType="ml.t2.medium", RoleArn=ADMIN_ROLE
        ),
    ),
    Technique(
        "PassRole to a CodeBuild project, or run one with a new buildspec",
        "PMapper codebuild_edges",
        (
            PASS_ANY_ROLE,
            ("codebuild:CreateProject", "*", {}),
            ("codebuild:StartBuild", "*", {}),
            ("codebuild:UpdateProject", "*", {}),
        ),
        "no iam:PassRole, no codebuild action",
        live=lambda c: c("codebuild").start_build(projectName="x"),
    ),
    Technique(
        "command or shell on an instance with its role",
        "Rhino part 2; PMapper ssm_edges",
        (("ssm:SendCommand", "*", {}), ("ssm:StartSession", "*", {})),
        "no ssm action",
        live=lambda c: c("ssm").send_command(
            InstanceIds=["i-0123456789abcdef0"], DocumentName="AWS-RunShellScript"
        ),
    ),
    Technique(
        "SSH key pushed to an instance",
        "Rhino part 2 (EC2 Instance Connect)",
        (("ec2-instance-connect:SendSSHPublicKey", "*", {}),),
        "no ec2-instance-connect action",
        live=None,
        not_live="moto does not enforce IAM on EC2 Instance Connect",
    ),
    Technique(
        "PassRole to an Auto Scaling group or launch configuration",
        "PMapper autoscaling_edges",
        (
            PASS_ANY_ROLE,
            ("autoscaling:CreateLaunchConfiguration", "*", {}),
            ("autoscaling:CreateAutoScalingGroup", "*", {}),
        ),
        "no iam:PassRole, no autoscaling action",
        live=lambda c: c("autoscaling").create_launch_configuration(
            LaunchConfigurationName="x",
            ImageId="ami-12345678",
            InstanceType="t2.micro",
            IamInstanceProfile="admin",
        ),
    ),
    Technique(
        "PassRole to an ECS task",
        "PMapper ecs_edges",
        (PASS_ANY_ROLE, ("ecs:RegisterTaskDefinition", "*", {}), ("ecs:RunTask", "*", {})),
        "no iam:PassRole, no ecs action",
        live=lambda c: c("ecs").run_task(taskDefinition="x"),
    ),
    Technique(
        "trust from another account",
        "PMapper cross_account_edges",
        (("iam:UpdateAssumeRolePolicy", ADMIN_ROLE, {}), ("iam:CreateRole", ADMIN_ROLE, BOUNDED)),
        "trust writes and creation only on the agent path. Residual as in Rhino 14: an agent "
        "role's trust may name another account; capped by the boundary, reported as drift",
        live=lambda c: _iam(c).update_assume_role_policy(RoleName="admin", PolicyDocument="{}"),
    ),
    Technique(
        "a role without the boundary, Allow *, assume it",
        "the issue's reproduction",
        (
            ("iam:CreateRole", EVIL_ROLE, {}),
            ("iam:CreateRole", EVIL_ROLE, {"iam:PermissionsBoundary": WEAK_BOUNDARY}),
            ("iam:PutRolePolicy", EVIL_ROLE, {}),
            ("sts:AssumeRole", EVIL_ROLE, {}),
        ),
        "CreateAgentRolesOnlyWithTheBoundary: iam:PermissionsBoundary must be the configured "
        "boundary; no permission write onto a role without it; no agent session for the operator",
        live=lambda c: c("sts").assume_role(RoleArn=EVIL_ROLE, RoleSessionName="escalate"),
        not_live="creation without the boundary: the condition, which moto ignores",
        runtime_may=(3,),  # but it cannot create such a role or write its policy
    ),
    Technique(
        "remove or weaken an agent role's boundary",
        "agentctl's own surface",
        (
            ("iam:DeleteRolePermissionsBoundary", AGENT_ROLE, BOUNDED),
            (
                "iam:PutRolePermissionsBoundary",
                AGENT_ROLE,
                {"iam:PermissionsBoundary": WEAK_BOUNDARY},
            ),
            ("iam:DeletePolicy", DEFAULT_BOUNDARY, {}),
        ),
        "NeverRemoveABoundary; PutRolePermissionsBoundary only with the configured boundary; "
        "the boundary policy itself can never be changed or deleted",
        live=lambda c: _iam(c).delete_role_permissions_boundary(RoleName="agentctl-triage"),
    ),
    Technique(
        "a new permissive managed policy, attached",
        "Rhino 9 variant",
        (
            ("iam:CreatePolicy", ANY_POLICY, {}),
            ("iam:AttachRolePolicy", AGENT_ROLE, {"iam:PolicyARN": ANY_POLICY, **BOUNDED}),
        ),
        "no iam:CreatePolicy; the only attachable policy is AWSDenyAll",
        live=lambda c: _iam(c).create_policy(PolicyName="x", PolicyDocument=json.dumps(_ADMIN_DOC)),
    ),
)

_ADMIN_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def test_the_table_names_every_rhino_method_and_pmapper_edge_checker() -> None:
    sources = " ".join(t.source for t in TECHNIQUES)
    for number in range(1, 22):
        assert re.search(rf"Rhino {number}\b", sources), number
    for checker in (
        "iam_edges", "sts_edges", "ec2_edges", "lambda_edges", "cloudformation_edges",
        "codebuild_edges", "sagemaker_edges", "ssm_edges", "autoscaling_edges", "ecs_edges",
        "glue_edges", "datapipeline_edges", "cross_account_edges",
    ):  # fmt: skip
        assert checker in sources, checker


@pytest.mark.parametrize("technique", TECHNIQUES, ids=lambda t: t.name)
def test_each_technique_is_blocked_on_the_documents(technique: Technique) -> None:
    for index, (action, resource, context) in enumerate(technique.requests):
        # The runtime principal may do none of it, but start agent sessions.
        runtime = evaluate(RUNTIME, action, resource, context)
        assert (runtime == "Allow") == (index in technique.runtime_may), (action, resource)
        verdict = evaluate(OPERATOR, action, resource, context)
        if index in technique.operator_may:
            assert verdict == "Allow", (action, resource)  # bounded: another step is refused
        else:
            assert verdict != "Allow", (technique.name, action, resource, verdict)


def test_what_the_operator_is_meant_to_do_is_allowed_and_only_with_the_boundary() -> None:
    # The evaluator is not vacuous: the operator's own work goes through ...
    assert evaluate(OPERATOR, "iam:CreateRole", AGENT_ROLE, BOUNDED) == "Allow"
    assert evaluate(OPERATOR, "iam:PutRolePolicy", AGENT_ROLE, BOUNDED) == "Allow"
    assert evaluate(OPERATOR, "iam:DetachRolePolicy", AGENT_ROLE, BOUNDED) == "Allow"
    assert (
        evaluate(OPERATOR, "iam:AttachRolePolicy", AGENT_ROLE, {"iam:PolicyARN": DENY_ALL})
        == "Allow"
    )
    assert evaluate(OPERATOR, "iam:UpdateAssumeRolePolicy", AGENT_ROLE) == "Allow"
    assert evaluate(OPERATOR, "iam:GetPolicyVersion", DEFAULT_BOUNDARY) == "Allow"
    assert evaluate(RUNTIME, "sts:AssumeRole", AGENT_ROLE) == "Allow"
    assert evaluate(RUNTIME, "sts:TagSession", AGENT_ROLE) == "Allow"
    # ... and the same writes without the boundary, or off the path, do not.
    assert evaluate(OPERATOR, "iam:CreateRole", AGENT_ROLE) == "implicit"
    assert evaluate(OPERATOR, "iam:CreateRole", ADMIN_ROLE, BOUNDED) == "Deny"
    assert evaluate(OPERATOR, "iam:PutRolePolicy", AGENT_ROLE) == "implicit"
    assert evaluate(OPERATOR, "iam:GetPolicyVersion", ANY_POLICY) == "Deny"
    assert evaluate(OPERATOR, "sts:AssumeRole", AGENT_ROLE) == "Deny"
    assert evaluate(RUNTIME, "sts:AssumeRole", ADMIN_ROLE) == "implicit"
    assert evaluate(RUNTIME, "iam:GetRole", AGENT_ROLE) == "implicit"


LIVE = [t for t in TECHNIQUES if t.live is not None]


@pytest.fixture
def attacker(aws: MotoServer) -> Callable[[str], Any]:
    """Clients signed as the operator (only the generated operator policy), IAM
    enforced; the targets exist, so a refusal is IAM's and not a missing thing."""
    operator = create_operator(aws)
    create_boundary(aws)
    iam = aws.client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": operator.arn}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    iam.create_role(RoleName="admin", AssumeRolePolicyDocument=trust)
    # Agent roles whose trust names the operator: the explicit Deny must still win.
    iam.create_role(
        RoleName="agentctl-triage", Path="/agentctl/", AssumeRolePolicyDocument=trust,
        PermissionsBoundary=DEFAULT_BOUNDARY,
    )  # fmt: skip
    iam.create_role(RoleName="agentctl-evil", Path="/agentctl/", AssumeRolePolicyDocument=trust)
    iam.create_user(UserName="admin")
    iam.create_group(GroupName="admins")
    aws.enforce_iam(0)
    return lambda service: aws.client(service, operator.credentials)


@pytest.mark.parametrize("technique", LIVE, ids=lambda t: t.name)
def test_each_technique_moto_can_enforce_is_refused_live(
    technique: Technique, attacker: Callable[[str], Any]
) -> None:
    assert technique.live is not None
    with pytest.raises(ClientError) as refused:
        technique.live(attacker)
    error = refused.value.response
    # Query services answer AccessDenied; moto's JSON services a bare 403.
    assert error["Error"]["Code"] in {"AccessDenied", "AccessDeniedException", "403"}, error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403, error
    assert "is not authorized to perform" in error["Error"]["Message"], error


def test_the_runtime_principal_is_refused_everything_but_agent_sessions(aws: MotoServer) -> None:
    operator = create_operator(aws)
    create_boundary(aws)
    aws.client("iam").create_user(UserName="admin")
    aws.enforce_iam(0)
    runtime = operator.runtime_credentials
    iam = aws.client("iam", runtime)
    for attempt in (
        lambda: iam.get_role(RoleName="agentctl-triage"),
        lambda: iam.create_access_key(UserName="admin"),
        lambda: iam.put_role_policy(RoleName="agentctl-triage", PolicyName="x", PolicyDocument=json.dumps(_ADMIN_DOC)),
        lambda: aws.client("sts", runtime).assume_role(RoleArn=ADMIN_ROLE, RoleSessionName="xx"),
    ):  # fmt: skip
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
