"""``agentctl policy operator|runtime|boundary``: the IAM policy to attach,
filled in for this configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.model import JsonObject


@dataclass(frozen=True)
class PolicyDocument:
    kind: str  # operator | runtime | boundary
    document: JsonObject  # the IAM policy document, as AWS takes it


def policy_document(
    session: Session, kind: str, *, account_id: str | None = None
) -> PolicyDocument:
    from agentctl.providers.aws import SPEC
    from agentctl.providers.aws.access import generate

    config = session.config()
    # The Secrets Manager statements only where that backend is in use.
    secrets_prefix = (
        config.secrets.prefix if config.secrets.backend == "aws-secretsmanager" else None
    )
    document = generate(
        kind, config.settings(SPEC), secrets_prefix=secrets_prefix, account_id=account_id
    )
    return PolicyDocument(kind, document)
