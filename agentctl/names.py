"""Agent names a shell can complete: from the state store and from the
contracts in the working directory.

Completion runs on every <TAB>, so this is read-only and best effort: it
never creates a state store (a read must not), gives up quietly on anything
it cannot read, and reads at most a bounded number of small contract files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MAX_CONTRACT_FILES = 2000
MAX_CONTRACT_BYTES = 64 * 1024


def names_in_contracts(folder: Path) -> set[str]:
    """``agent.name`` of the contracts under ``folder`` (never following a
    symlink out of it, never reading a special or oversized file)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: set[str] = set()
    if not folder.is_dir():
        return found
    root = folder.resolve()
    files = sorted(p for suffix in ("*.yaml", "*.yml") for p in folder.rglob(suffix))
    for path in files[:MAX_CONTRACT_FILES]:
        try:
            real = path.resolve()
            if not real.is_relative_to(root) or not real.is_file():
                continue
            if real.stat().st_size > MAX_CONTRACT_BYTES:
                continue
            document = yaml.load(real.read_text("utf-8"), Loader=loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
            continue
        agent = document.get("agent") if isinstance(document, dict) else None
        name = agent.get("name") if isinstance(agent, dict) else None
        if isinstance(name, str):
            found.add(name)
    return found


def names_in_state(state_url: str) -> set[str]:
    """Agent names recorded in the state store at ``state_url``; empty when it
    does not exist or cannot be read."""
    from agentctl.errors import AgentctlError
    from agentctl.state import open_state

    try:
        with open_state(state_url, create=False) as store:
            return {record.name for record in store.list_agents()}
    except (AgentctlError, OSError):
        return set()


def complete_names(incomplete: str, *, state_url: str | None, cwd: Path) -> list[str]:
    candidates: Iterable[str] = names_in_contracts(cwd / "contracts")
    if state_url:
        candidates = {*candidates, *names_in_state(state_url)}
    return sorted(n for n in candidates if n.startswith(incomplete))


def state_url_for_completion(config_path: str | None, state: str | None) -> str | None:
    """The state URL the command would use, or None when agentctl.yaml cannot be read."""
    from agentctl.config_file import load_config
    from agentctl.errors import AgentctlError

    try:
        return load_config(config_path).resolved_state_url(state)
    except AgentctlError:
        return None
