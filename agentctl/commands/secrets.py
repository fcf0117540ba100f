"""``agentctl secrets migrate``: move agentctl's secrets into the team's store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentctl.errors import UsageError
from agentctl.state.records import AuditDraft

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.secrets_migration import SecretMigrationResult


def migrate(
    session: Session, to: str, source: str | None = None, *, keep_source: bool = False
) -> SecretMigrationResult:
    """Each value written, read back and compared before it leaves the source;
    audited as ``secrets.migrate`` (keys and outcomes, never values)."""
    from agentctl.secrets import open_secret_store
    from agentctl.secrets_migration import migrate_secrets, referenced_keys

    config = session.config()
    session.require_person("secrets migrate", to)
    chosen_source = source or config.secrets.backend
    if not chosen_source:
        raise UsageError(
            "no source backend: secrets.backend is not set",
            hint="name the backend the secrets are in now with --from",
        )
    # The target first: a mistyped --to is reported before the source asks
    # for its passphrase or is touched.
    target_store = open_secret_store(config.secrets, backend=to)
    source_store = open_secret_store(config.secrets, backend=chosen_source)
    engine = session.engine()
    referenced = referenced_keys(engine)
    # The audit chain key may be among what moves: hold it, so this command's own
    # event is still sealed (later commands find it in the new backend).
    engine.state.load_chain_key()
    result = migrate_secrets(source_store, target_store, referenced, keep_source=keep_source)
    engine.audit(
        AuditDraft(
            actor=engine.operator,
            action="secrets.migrate",
            target=result.target,
            result="success" if result.ok else "partial",
            trigger=f"operator/{engine.operator}",
            detail={
                "from": result.source,
                "to": result.target,
                "moves": {m.key: m.outcome.value for m in result.moves},
            },
        ),
    )
    return result
