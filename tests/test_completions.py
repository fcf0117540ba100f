"""The shipped completion scripts are current, and they complete real commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentctl.cli.completions import SHELLS, completion_script

COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_shipped_script_is_current(shell: str) -> None:
    shipped = (COMPLETIONS / SHELLS[shell]).read_text(encoding="utf-8")
    assert shipped == completion_script(shell), (
        f"completions/{SHELLS[shell]} is stale: run `make completions`"
    )


def test_bash_completion_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_AGENTCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        }
        result = subprocess.run(
            [sys.executable, "-m", "agentctl"], env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.split()

    assert complete("agentctl ki") == ["kill"]
    assert "--on-behalf-of" in complete("agentctl exec name --on")


@pytest.fixture
def named_world(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Agents in a state store (alpha-agent, alder-agent) and in ./contracts
    (alpine-agent), and an agentctl.yaml naming that state."""
    from contract_helpers import write_contract

    from agentctl.state import open_state

    state = tmp_path / "state.db"
    with open_state(f"sqlite:///{state}") as store:
        for name in ("alpha-agent", "alder-agent", "zulu-agent"):
            store.upsert_agent(
                name, owner="ops@company.com", purpose="t", execution_mode="autonomous", expiry=None
            )
    write_contract(tmp_path / "contracts", "alpine-agent")
    config = tmp_path / "agentctl.yaml"
    config.write_text(f"state: {state}\n", "utf-8")
    env = {**os.environ, "AGENTCTL_CONFIG": str(config)}
    env.pop("AGENTCTL_STATE", None)
    return tmp_path, env


def _complete(cwd: Path, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "agentctl"], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize(
    "command",
    [
        "kill",
        "revive",
        "status",
        "exec",
        "credentials",
        "rotate",
        # A provider's own commands complete names through ProviderSpec.commands' CommandLine.
        "github register",
        "github rotate-key",
        "github status",
        "jira register",
        "jira rotate",
        "jira status",
    ],
)
def test_bash_completes_agent_names_from_state_and_contracts(
    named_world: tuple[Path, dict[str, str]], command: str
) -> None:
    cwd, env = named_world
    words = f"agentctl {command} al"
    cword = str(len(words.split()) - 1)
    env = {**env, "_AGENTCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    assert _complete(cwd, env) == ["alder-agent", "alpha-agent", "alpine-agent"]


def test_zsh_and_fish_complete_agent_names(named_world: tuple[Path, dict[str, str]]) -> None:
    cwd, env = named_world
    zsh = _complete(
        cwd,
        {**env, "_AGENTCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "agentctl kill alp"},
    )
    # zsh gets one `_arguments` spec: _arguments '*: :(("NAME" "NAME"))'
    assert re.findall(r'"([a-z0-9-]+)"', " ".join(zsh)) == ["alpha-agent", "alpine-agent"]
    fish = _complete(
        cwd,
        {
            **env,
            "_AGENTCTL_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_ARGS": "agentctl kill zu",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        },
    )
    assert fish == ["zulu-agent"]


def test_completion_never_creates_a_state_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    env = {
        **os.environ,
        "AGENTCTL_STATE": str(missing),
        "_AGENTCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "agentctl kill a",
        "COMP_CWORD": "2",
    }
    env.pop("AGENTCTL_CONFIG", None)
    assert _complete(tmp_path, env) == []
    assert not missing.exists()


def test_every_agent_name_argument_completes() -> None:
    """Issue 20: agent names complete "for every command that takes one" — also
    a command added later, a provider's included (they are mounted here)."""
    import typer

    from agentctl.cli.app import app

    root = typer.main.get_command(app)
    context = type(root).context_class
    missing: list[str] = []

    def walk(command: Any, ctx: Any, path: list[str]) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, context(sub, parent=ctx, info_name=name), [*path, name])
            return
        for param in command.params:
            takes_agent = param.name == "name" and path[:2] != ["serve", "token"]  # a caller
            if takes_agent and getattr(param, "_custom_shell_complete", None) is None:
                missing.append(" ".join(path))

    walk(root, context(root, info_name="agentctl"), [])
    assert missing == []
