"""What agentctl writes into IAM: names, tags and policy documents (pure, no boto3).

Every function here shapes or compares values; nothing calls AWS, so plan,
validate and the policy generators share them without importing boto3.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

from agentctl.errors import ProviderError
from agentctl.providers.aws import PROVIDER
from agentctl.providers.aws.grant import AwsGrant

GRANT_POLICY = "agentctl-grant"
KILL_POLICY = "agentctl-kill"
REVOKE_OLDER_POLICY = "agentctl-revoke-older-sessions"
# Inline policies agentctl itself writes; any other inline policy is drift.
OWN_POLICIES = frozenset({GRANT_POLICY, KILL_POLICY, REVOKE_OLDER_POLICY})

TAG_MANAGED_BY = "managed-by"
MANAGED_BY_VALUE = "agentctl"
TAG_AGENT = "agentctl:agent"
TAG_OWNER = "agentctl:owner"
TAG_PURPOSE = "agentctl:purpose"
TAG_EXPIRY = "agentctl:expiry"
TAG_MODE = "agentctl:execution-mode"
TAG_HASH = "agentctl:contract-hash"
TAG_STATUS = "agentctl:status"
TAG_KILLED_REASON = "agentctl:killed-reason"
TAG_KILLED_AT = "agentctl:killed-at"

STATUS_ACTIVE = "active"
STATUS_KILLED = "killed"
STATUS_EXPIRED = "expired"

POLICY_VERSION = "2012-10-17"
SESSION_ACTIONS = ("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession")
SESSION_TAG_KEYS = ("agent", "on_behalf_of", "trigger")

# IAM accepts 3600..43200 for a role's MaxSessionDuration and 900.. for a session.
MIN_ROLE_SESSION = 3600
MAX_ROLE_SESSION = 43200
MIN_SESSION = 900
# IAM's limit on all inline policies of one role together (whitespace excluded).
INLINE_POLICY_LIMIT = 10240

KILL_DOCUMENT: dict[str, Any] = {
    "Version": POLICY_VERSION,
    "Statement": [{"Sid": "AgentctlKill", "Effect": "Deny", "Action": "*", "Resource": "*"}],
}
# The killed trust policy names no one to allow and denies everyone: no new
# session can start, whatever the caller's own permissions say.
LOCKED_TRUST: dict[str, Any] = {
    "Version": POLICY_VERSION,
    "Statement": [
        {
            "Sid": "AgentctlKilled",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": list(SESSION_ACTIONS),
        }
    ],
}

_TAG_SYMBOLS = frozenset("_.:/=+-@")
_DESCRIPTION_OK = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]")
_SESSION_OK = re.compile(r"[A-Za-z0-9_+=,.@-]")


def _tag_char_ok(ch: str) -> bool:
    return ch in _TAG_SYMBOLS or unicodedata.category(ch)[0] in "LZN"


def _ascii_table(ok: Callable[[str], bool], replacement: str) -> dict[int, str]:
    """A str.translate table giving, for every ASCII character, what the
    per-character rule ``ok`` gives it: an ASCII text (nearly every owner,
    purpose and name) is shaped in one C call instead of a check per
    character. Built from the same rule, so the two cannot disagree."""
    return {code: replacement for code in range(128) if not ok(chr(code))}


_TAG_ASCII = _ascii_table(_tag_char_ok, "_")
_DESCRIPTION_ASCII = _ascii_table(lambda ch: _DESCRIPTION_OK.fullmatch(ch) is not None, "?")
_SESSION_ASCII = _ascii_table(lambda ch: _SESSION_OK.fullmatch(ch) is not None, "_")


# -- value shaping -----------------------------------------------------------------


def tag_value(text: str, limit: int = 256) -> str:
    """Fit ``text`` to IAM/STS tag values: ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``, ≤ limit.

    Deterministic, so the tags plan expects equal the tags it wrote.
    """
    if text.isascii():
        return text.translate(_TAG_ASCII)[:limit]
    return "".join(ch if _tag_char_ok(ch) else "_" for ch in text)[:limit]


def _bounded(text: str, limit: int) -> str:
    """Shorten to ``limit`` keeping a hash suffix, so distinct long values stay distinct."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 9]}-{digest}"


def session_field(text: str, limit: int = 64) -> str:
    """Fit ``text`` to RoleSessionName / SourceIdentity: ``[\\w+=,.@-]``, 2..limit chars."""
    if text.isascii():
        clean = text.translate(_SESSION_ASCII)
    else:
        clean = "".join(ch if _SESSION_OK.fullmatch(ch) else "_" for ch in text)
    return _bounded(clean, limit).ljust(2, "_")


def role_description(text: str) -> str:
    if text.isascii():
        return text.translate(_DESCRIPTION_ASCII)[:1000]
    return "".join(ch if _DESCRIPTION_OK.fullmatch(ch) else "?" for ch in text)[:1000]


def _as_document(value: Any) -> dict[str, Any]:
    """Policy documents arrive as dicts from boto3, or URL-encoded JSON from raw IAM."""
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value)
    if text.startswith("%7B") or text.startswith("%7b"):
        text = unquote(text)
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError("a policy document must be a JSON object")
    return loaded


def _as_sorted_list(value: Any) -> list[Any]:
    items = [value] if isinstance(value, str) else list(value)
    return sorted(set(items))


def normalise_policy(value: Any) -> dict[str, Any]:
    """A canonical form of a policy document, so equal policies compare equal
    whatever order or single-value shorthand IAM hands back."""
    document = _as_document(value)
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    normal: list[dict[str, Any]] = []
    for statement in statements:
        item: dict[str, Any] = {}
        for key, entry in statement.items():
            if key in {"Action", "NotAction", "Resource", "NotResource"}:
                item[key] = _as_sorted_list(entry)
            elif key in {"Principal", "NotPrincipal"} and isinstance(entry, Mapping):
                item[key] = {kind: _as_sorted_list(who) for kind, who in entry.items()}
            else:
                item[key] = entry
        normal.append(item)
    return {"Version": document.get("Version", POLICY_VERSION), "Statement": normal}


def compact_policy(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def expiry_condition(expiry: date) -> dict[str, Any]:
    """AWS refuses from the start (00:00 UTC) of the expiry date on: the grant
    ends *on* that date, as agentctl's own expiry check says."""
    return {"DateLessThan": {"aws:CurrentTime": f"{expiry.isoformat()}T00:00:00Z"}}


SESSION_CHECK_SID = "AgentctlSessionCheck"
# The one call agentctl adds to every grant, on the role itself: rotate proves a
# new session works with it. Unlike sts:GetCallerIdentity it needs an Allow, so
# the kill's Deny (or a boundary, or a revoked session) stops it; it reads only
# the role's own tags.
SESSION_CHECK_ACTION = "iam:ListRoleTags"


def grant_policy(
    agent: str,
    grant: AwsGrant | None,
    expiry: date | None = None,
    session_check: str | None = None,
) -> dict[str, Any]:
    """The inline policy for a contract's ``aws`` statements.

    Validation has checked the vocabulary; this only shapes the document (and
    refuses what IAM would, for a contract that skipped validation). With
    ``expiry`` every statement holds only before that date; ``session_check``
    (the role's own ARN) adds :data:`SESSION_CHECK_ACTION` on it.
    """
    if grant is None or not grant.statements:
        raise ProviderError(
            PROVIDER,
            f"the aws grant of {agent} must be a list of {{actions, resources}} statements",
            hint="run `agentctl validate` on the contract",
        )
    statements = []
    for index, entry in enumerate(grant.statements):
        if not entry.actions or not entry.resources:
            raise ProviderError(
                PROVIDER,
                f"statement {index} of the aws grant of {agent} needs 'actions' and 'resources'",
                hint="run `agentctl validate` on the contract",
            )
        statements.append(
            {
                # The contract's own sid is kept: people grep policies for it.
                "Sid": entry.sid or f"Grant{index}",
                "Effect": "Allow",
                "Action": _as_sorted_list(entry.actions),
                "Resource": _as_sorted_list(entry.resources),
                **({"Condition": expiry_condition(expiry)} if expiry else {}),
            }
        )
    if session_check is not None:
        statements.append(
            {
                "Sid": SESSION_CHECK_SID,
                "Effect": "Allow",
                "Action": [SESSION_CHECK_ACTION],
                "Resource": [session_check],
                **({"Condition": expiry_condition(expiry)} if expiry else {}),
            }
        )
    sids = [statement["Sid"] for statement in statements]
    if len(set(sids)) != len(sids):
        raise ProviderError(
            PROVIDER,
            f"the aws grant of {agent} repeats a statement sid; IAM needs them unique",
            hint="rename or drop the repeated sid",
        )
    document = {"Version": POLICY_VERSION, "Statement": statements}
    size = len(compact_policy(document))
    if size > INLINE_POLICY_LIMIT:
        raise ProviderError(
            PROVIDER,
            f"the aws grant of {agent} is {size} characters as an IAM policy; "
            f"IAM allows {INLINE_POLICY_LIMIT} per role",
            hint="merge statements or use wildcards on resource paths",
        )
    return normalise_policy(document)


def _iam_pattern(pattern: str) -> re.Pattern[str]:
    # IAM action wildcards: '*' any run, '?' one character; case-insensitive.
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), re.IGNORECASE)


def boundary_gaps(
    grant: AwsGrant, boundary: Mapping[str, Any]
) -> list[tuple[str, list[str], bool]]:
    """Granted actions a permissions boundary does not let through.

    Returns ``(action as written, [known actions it names that the boundary
    blocks], whether all of those are explicitly denied)`` per grant action
    with any such action. An
    action passes when an ``Allow`` statement of the boundary names it
    (``Action`` pattern, or ``NotAction`` not naming it) and no unconditional
    ``Deny`` on every resource names it. Compared by action only: an Allow
    limited by resource or condition counts as allowing, and a Deny limited so
    is not counted, so every gap reported is certain. Wildcard grants are
    expanded with the known action table; an action of an unknown service is
    compared as written.
    """
    from agentctl.providers.aws.vocabulary import expand_action

    document = normalise_policy(boundary)

    def names(statement: Mapping[str, Any], key: str) -> list[re.Pattern[str]]:
        return [_iam_pattern(str(p)) for p in statement.get(key, [])]

    allows: list[tuple[list[re.Pattern[str]], bool]] = []
    denies: list[tuple[list[re.Pattern[str]], bool]] = []
    for statement in document["Statement"]:
        negated = "NotAction" in statement
        patterns = names(statement, "NotAction" if negated else "Action")
        if statement.get("Effect") == "Allow":
            allows.append((patterns, negated))
        elif (
            statement.get("Effect") == "Deny"
            and not statement.get("Condition")
            and "NotResource" not in statement
            and statement.get("Resource", ["*"]) == ["*"]
        ):
            denies.append((patterns, negated))

    def named(action: str, patterns: list[re.Pattern[str]], negated: bool) -> bool:
        hit = any(p.fullmatch(action) for p in patterns)
        return not hit if negated else hit

    gaps: list[tuple[str, list[str], bool]] = []
    for action in grant.actions:
        concrete = sorted(expand_action(action)) or [action]
        denied = [a for a in concrete if any(named(a, p, n) for p, n in denies)]
        blocked = [a for a in concrete if a in denied or not any(named(a, p, n) for p, n in allows)]
        if blocked:
            gaps.append((action, blocked, set(blocked) <= set(denied)))
    return gaps


def tags_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or ()}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def is_owned(tags: Mapping[str, str], agent: str) -> bool:
    # Exact match on both tags: a role of agent "foo-bar" is never "foo"'s.
    return tags.get(TAG_MANAGED_BY) == MANAGED_BY_VALUE and tags.get(TAG_AGENT) == agent


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
