"""``agentctl policy operator|runtime|boundary``: the IAM policies to attach,
filled in for this configuration (account, partition, role path and prefix,
permissions boundary)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from agentctl.cli.common import app_context, stderr
from agentctl.errors import UsageError


class PolicyKind(StrEnum):
    OPERATOR = "operator"
    RUNTIME = "runtime"
    BOUNDARY = "boundary"


HELP = """\
Print an IAM policy for this configuration, as JSON.

  [bold]boundary[/bold]  a starting permissions boundary (create it first; set aws.permissions_boundary)
  [bold]operator[/bold]  what `apply`, `kill`, `revive`, `rotate` and prune need: agent roles only,
            never above the boundary, never an agent session
  [bold]runtime[/bold]   what `exec` / `credentials` need: start agent sessions, nothing else

Set-up order on a real account: boundary, operator, runtime, then `agentctl apply`.
"""


def policy(
    ctx: typer.Context,
    kind: PolicyKind = typer.Argument(..., help="operator, runtime or boundary."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the document to this file instead of stdout."
    ),
    account: str | None = typer.Option(
        None, "--account", help="AWS account id (default: aws.account_id, else the boundary's)."
    ),
) -> None:
    from agentctl.commands.policy import policy_document

    result = policy_document(app_context(ctx), kind.value, account_id=account)
    # The output is the document itself, exactly what `aws iam create-policy` takes.
    document = result.document
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write {output}: {exc.strerror}", hint="choose a writable --output path"
        ) from None
    stderr.print(f"wrote the {kind.value} policy to {output}")
