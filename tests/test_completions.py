"""The shipped completion scripts are current, and they complete real commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
