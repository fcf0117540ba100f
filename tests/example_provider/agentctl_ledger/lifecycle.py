"""The ledger provider: one account per agent in a JSON file."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentctl.errors import ProviderError
from agentctl.model import Contract
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
from agentctl.secrets import Secret
from agentctl_ledger import SPEC, LedgerGrant

NAME = SPEC.name


@dataclass(frozen=True)
class Account:
    """What apply writes: the account as the contract wants it."""

    books: tuple[str, ...]
    scopes: tuple[str, ...]


class LedgerProvider:
    name = NAME

    def __init__(self, context: ProviderContext) -> None:
        path = context.config.settings(SPEC).path
        if path is None:
            raise ProviderError(NAME, "ledger.path is not set", hint="set ledger.path")
        self._path = Path(path)
        self._context = context
        self._lock = threading.Lock()

    # -- the ledger file -------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        if not self._path.exists():
            return {}
        data: dict[str, Any] = json.loads(self._path.read_text(encoding="utf-8"))
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self._path.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")

    def _result(self, agent: str, action: str, **kwargs: Any) -> ActionResult:
        return ActionResult(provider=NAME, agent=agent, action=action, **kwargs)

    # -- the Provider protocol -------------------------------------------------------

    def observe(self, agent: str) -> Observed:
        account = self._read().get(agent)
        if account is None:
            return Observed(NAME, agent, exists=False)
        return Observed(
            NAME,
            agent,
            exists=True,
            resource_id=f"ledger:{agent}",
            killed=account["killed"],
            attributes={"books": account["books"], "scopes": account["scopes"]},
        )

    def plan(
        self, contract: Contract | None, observed: Observed, *, expired: bool
    ) -> list[Change[Account]]:
        agent = observed.agent
        grant: LedgerGrant | None = contract.grant(SPEC) if contract is not None else None
        if grant is None:
            if observed.exists:
                return [Change(NAME, agent, ChangeKind.REMOVE, f"remove account {agent}")]
            return []
        wanted = Account(grant.books, grant.scopes)
        if not observed.exists:
            if expired:
                return []
            return [
                Change(
                    NAME,
                    agent,
                    ChangeKind.CREATE,
                    f"create ledger account {agent}",
                    fields=(FieldChange("scopes", None, list(wanted.scopes)),),
                    payload=wanted,
                )
            ]
        held = observed.attributes
        if [list(wanted.books), list(wanted.scopes)] == [held["books"], held["scopes"]]:
            return []
        return [
            Change(
                NAME,
                agent,
                ChangeKind.UPDATE,
                f"update ledger account {agent}",
                fields=(FieldChange("scopes", held["scopes"], list(wanted.scopes)),),
                payload=wanted,
            )
        ]

    def apply(self, change: Change[Account]) -> ActionResult:
        with self._lock:
            data = self._read()
            if change.kind is ChangeKind.REMOVE:
                data.pop(change.agent, None)
            elif change.payload is not None:
                account = data.setdefault(change.agent, {"killed": False, "tokens": {}})
                account.update(books=list(change.payload.books), scopes=list(change.payload.scopes))
            else:
                raise ProviderError(NAME, f"{change.kind.value} needs a planned account")
            self._write(data)
        return self._result(
            change.agent,
            change.kind.value,
            ok=True,
            detail=change.summary,
            resource_id=f"ledger:{change.agent}",
        )

    def _set_killed(self, agent: str, killed: bool, action: str) -> ActionResult:
        with self._lock:
            data = self._read()
            account = data.get(agent)
            if account is None:
                return self._result(agent, action, ok=True, detail="no ledger account")
            already = account["killed"] == killed
            account["killed"] = killed
            if killed:
                account["tokens"] = {}
            self._write(data)
        return self._result(agent, action, ok=True, already=already, resource_id=f"ledger:{agent}")

    def kill(self, agent: str, reason: str) -> ActionResult:
        return self._set_killed(agent, True, "kill")

    def revive(self, agent: str, reason: str) -> ActionResult:
        return self._set_killed(agent, False, "revive")

    def rotate(self, agent: str) -> ActionResult:
        with self._lock:
            data = self._read()
            if agent in data:
                data[agent]["tokens"] = {}
                self._write(data)
        return self._result(agent, "rotate", ok=True, detail="revoked every token")

    def issue_credentials(self, contract: Contract, run: RunContext) -> IssuedCredential:
        token = secrets.token_urlsafe(24)
        credential_id = uuid.uuid4().hex
        with self._lock:
            data = self._read()
            account = data.get(contract.name)
            if account is None or account["killed"]:
                raise ProviderError(NAME, f"{contract.name} has no live ledger account")
            account["tokens"][credential_id] = token[:4]
            self._write(data)
        now = self._context.clock()
        return IssuedCredential(
            provider=NAME,
            credential_id=credential_id,
            fingerprint=token[:4],
            issued_at=now,
            expires_at=now + timedelta(seconds=run.duration_seconds),
            environment={"LEDGER_TOKEN": Secret(token)},
        )

    def revoke_credential(self, agent: str, credential_id: str) -> ActionResult:
        with self._lock:
            data = self._read()
            data.get(agent, {}).get("tokens", {}).pop(credential_id, None)
            self._write(data)
        return self._result(agent, "revoke", ok=True)
