"""``agentctl jira register|rotate|status``: the work, returning results.

An organisation admin creates the service account and its scoped API token in
Atlassian Administration (there is no API for either); these commands check
them against the contract and keep the token in the secret store, and audit
every registration and rotation, refused ones too. The token is read from a
file or stdin, never from the command line (shell history, ps), and is never
in a result. The command line itself is :mod:`agentctl.providers.jira.cli`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.errors import AgentctlError, UsageError
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from agentctl.model import Contract
    from agentctl.providers.base import CommandSession
    from agentctl.providers.jira.lifecycle import AccountStatus, JiraProvider, RegisteredAccount
    from agentctl.secrets import Secret


def _provider(session: CommandSession, contract_paths: list[str] | None = None) -> JiraProvider:
    from agentctl.providers.jira.lifecycle import JiraProvider

    provider = session.provider("jira", contract_paths or [])
    assert isinstance(provider, JiraProvider)
    return provider


def _contract(session: CommandSession, name: str, path: Path) -> Contract:
    return session.contract(name, path, gets="Jira token", system="jira", system_title="Jira")


def read_token(path: Path | None) -> Secret:
    """The API token from ``path`` (None or '-': stdin, never a terminal)."""
    from agentctl.secrets import Secret

    try:
        if path is None or str(path) == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise UsageError(
                    "no token given",
                    hint="pass --token-file FILE, or pipe the token on stdin",
                )
            text = sys.stdin.read()
        else:
            text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read {path} ({type(exc).__name__})", hint="pass the file holding the token"
        ) from None
    value = text.strip()
    if not value or any(c.isspace() for c in value):
        raise UsageError(
            "the token file must hold one API token on one line",
            hint="paste only the token Atlassian showed when it was created",
        )
    return Secret(value)


@contextlib.contextmanager
def _audit_failure(session: CommandSession, name: str, action: str) -> Iterator[None]:
    """A refused registration or token is audited too, then re-raised."""
    try:
        yield
    except AgentctlError as exc:
        session.audit(
            AuditDraft(
                actor=name,
                action=action,
                target=f"jira:{name}",
                result="failure",
                detail={"error": exc.message},
            ),
        )
        raise


def _audit_success(session: CommandSession, action: str, done: RegisteredAccount) -> None:
    session.audit(
        AuditDraft(
            actor=done.agent,
            action=action,
            target=f"jira:{done.account_id}",
            scope=",".join(done.token_scopes),
            result="success",
            detail={
                "account_id": done.account_id,
                "token_id": done.token_id,
                "token_expires": done.token_expires.isoformat() if done.token_expires else None,
                "revoked_tokens": list(done.revoked_tokens),
            },
        ),
    )


def register(
    session: CommandSession,
    name: str,
    account_id: str,
    token_file: Path | None,
    contract_path: Path,
) -> RegisteredAccount:
    """Record the agent's service account and install its scoped API token."""
    session.may_create_state = True  # registration may come before the first apply
    agent = _contract(session, name, contract_path)
    session.require_person("jira register", name)  # a verified person, never an agent
    token = read_token(token_file)
    provider = _provider(session, [str(contract_path)])
    with _audit_failure(session, name, "jira.register"):
        done = provider.register(agent, account_id.strip(), token)
    _audit_success(session, "jira.register", done)
    return done


def rotate(
    session: CommandSession, name: str, token_file: Path | None, contract_path: Path
) -> RegisteredAccount:
    """Install a new API token after verifying it, then revoke the old ones."""
    agent = _contract(session, name, contract_path)
    session.require_person("jira rotate", name)  # a verified person, never an agent
    token = read_token(token_file)
    provider = _provider(session, [str(contract_path)])
    with _audit_failure(session, name, "jira.rotate"):
        done = provider.rotate_token(agent, token)
    _audit_success(session, "jira.rotate", done)
    return done


def status(session: CommandSession, name: str) -> AccountStatus:
    return _provider(session).status(name)
