"""``agentctl secrets migrate``: move every secret agentctl keeps into another store.

The usual move is from one operator's keyring into the team's AWS Secrets
Manager, so that any operator with the team's AWS access can kill, rotate or
revoke what another registered or minted.

Which keys: everything the source backend can list (encrypted-file, Secret
Service, Secrets Manager) and, for backends that cannot list (macOS, Windows),
every key the state says a value may exist under (providers' App keys and live
tokens, ``agentctl serve`` signing keys).

Each key is copied, read back from the target and compared, and only then
deleted from the source (``keep_source`` keeps it). A key already in the
target with the same value is not written again, so running it twice is safe;
a key whose target value differs is a conflict, left alone in both stores.
Values are never shown: results name keys and outcomes only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from agentctl.errors import SecretStoreError
from agentctl.model import JsonFields
from agentctl.secrets import SecretStore

if TYPE_CHECKING:
    from agentctl.engine import Engine


class MoveOutcome(StrEnum):
    MOVED = "moved"  # now in the target only
    COPIED = "copied"  # in both (keep_source)
    CONFLICT = "conflict"  # the target holds a different value: nothing changed
    FAILED = "failed"  # a store refused; the source still holds it


@dataclass(frozen=True)
class SecretMove:
    key: str
    outcome: MoveOutcome
    # The target already held this value before this run (nothing written).
    already: bool = False
    detail: str = ""

    json_fields: ClassVar[JsonFields] = ("key", "outcome", "already", ("detail", "shown_detail"))

    @property
    def shown_detail(self) -> str | None:
        return self.detail or None


@dataclass(frozen=True)
class SecretMigrationResult:
    source: str
    target: str
    moves: tuple[SecretMove, ...]
    source_listed: bool  # False: keys came from the state only
    keep_source: bool

    json_fields: ClassVar[JsonFields] = (
        "ok",
        ("from", "source"),
        ("to", "target"),
        "source_listed",
        "keep_source",
        ("secrets", "moves"),
    )

    @property
    def ok(self) -> bool:
        return not any(m.outcome in (MoveOutcome.CONFLICT, MoveOutcome.FAILED) for m in self.moves)

    def count(self, outcome: MoveOutcome) -> int:
        return sum(1 for m in self.moves if m.outcome == outcome)


def migrate_secrets(
    source: SecretStore,
    target: SecretStore,
    referenced: Iterable[str],
    *,
    keep_source: bool = False,
    on_move: Callable[[SecretMove], None] | None = None,
) -> SecretMigrationResult:
    """Move the source's keys (and the ``referenced`` ones) into ``target``."""
    if source.name == target.name and type(source) is type(target):
        raise SecretStoreError(
            f"the source and the target are the same backend ({source.name})",
            hint="name the backend the secrets are in now with --from",
        )
    listed = source.keys()
    keys = sorted({*(listed or ()), *referenced})
    moves = []
    for key in keys:
        move = _move_one(source, target, key, keep_source=keep_source)
        if move is None:
            continue
        moves.append(move)
        if on_move is not None:
            on_move(move)
    return SecretMigrationResult(
        source=source.name,
        target=target.name,
        moves=tuple(moves),
        source_listed=listed is not None,
        keep_source=keep_source,
    )


def _move_one(
    source: SecretStore,
    target: SecretStore,
    key: str,
    *,
    keep_source: bool,
) -> SecretMove | None:
    try:
        value = source.get(key)
        existing = target.get(key)
        if value is None:
            if existing is not None:
                # Moved by an earlier run (or by another operator): nothing to do.
                return SecretMove(key, MoveOutcome.MOVED, already=True)
            # A key the state might use (e.g. an App's optional webhook secret)
            # that was never stored.
            return None
        already = existing is not None
        if already and existing != value:
            return SecretMove(
                key,
                MoveOutcome.CONFLICT,
                detail=f"{target.name} already holds a different value (fingerprint "
                f"{existing.fingerprint() if existing else '-'}, {source.name} has "
                f"{value.fingerprint()}); decide which is current, delete the other, run again",
            )
        if not already:
            target.put(key, value)
            if target.get(key) != value:
                return SecretMove(
                    key,
                    MoveOutcome.FAILED,
                    detail=f"{target.name} did not read back what was written; "
                    f"the value stays in {source.name}",
                )
        if keep_source:
            return SecretMove(key, MoveOutcome.COPIED, already=already)
        source.delete(key)
        return SecretMove(key, MoveOutcome.MOVED, already=already)
    except SecretStoreError as exc:
        return SecretMove(key, MoveOutcome.FAILED, detail=exc.explained())


def referenced_keys(engine: Engine) -> list[str]:
    """Every key the state says a value may exist under: what providers keep
    (App keys, live tokens), ``agentctl serve``'s signing keys and the audit
    trail's chain key."""
    from agentctl.audit_key import chain_key_name
    from agentctl.providers.base import HoldsSecrets
    from agentctl.serve_auth import signing_key_refs

    keys: set[str] = set()
    for provider in engine.providers.values():
        if isinstance(provider, HoldsSecrets):
            keys.update(provider.secret_refs())
    keys.update(signing_key_refs(engine.state))
    head = engine.state.audit_head()
    if head is not None and head.trail:
        keys.add(chain_key_name(head.trail))
    return sorted(keys)
