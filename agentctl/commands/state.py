"""``agentctl state init|migrate``: create or upgrade the state store on purpose.

Only ``apply``, registrations and this command create a state store; every
other command reports a missing one (a typo in --state must not become a new,
empty store that tells cron "no agents").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session


@dataclass(frozen=True)
class StateReady:
    url: str
    dialect: str
    schema_version: int

    json_fields: ClassVar[JsonFields] = (("state", "url"), "dialect", "schema_version")


def init(session: Session) -> StateReady:
    """Create the configured state store if it is missing, and bring its tables
    to this version."""
    session.may_create_state = True
    store = session.state()
    version = store.migrate()
    return StateReady(store.url, store.dialect, version)
