"""``agentctl audit verify|seal``: vouch for the audit trail, or key an old one."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.audit import SealResult, VerifyResult
    from agentctl.commands.session import Session


def verify(session: Session) -> VerifyResult:
    """Check the keyed chain, its head and its latest anchor."""
    from agentctl.audit import verify_trail

    keys = session.chain_keys()
    result = verify_trail(session.state(), keys, session.anchors())
    return dataclasses.replace(result, can_key=keys.configured)


def _sealer(session: Session) -> str:
    """Who seals: the verified person when there is one. Sealing changes no agent,
    approval or event (it adds MACs and one seal event), so a host without AWS or
    GitHub credentials may still seal; the event then says it was not verified."""
    import getpass

    from agentctl.identity import IdentityError

    try:
        return session.require_person("audit seal", "audit").person
    except IdentityError:
        try:
            return f"unverified:{getpass.getuser()}"
        except (OSError, KeyError):
            return "unverified"


def seal(session: Session) -> SealResult:
    """Verify an old unkeyed trail's hash chain, then MAC every event with the
    chain key from the secret store (created if needed). Safe to re-run."""
    from agentctl.audit import seal_trail

    keys = session.chain_keys()
    return seal_trail(session.state(), keys, session.anchors(), operator=_sealer(session))
