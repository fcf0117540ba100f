"""Generate the shell completion scripts shipped in ``completions/``.

The scripts are produced by the CLI framework for this program, and a test
regenerates them and compares, so they can never drift.

    python -m agentctl.cli.completions completions/
"""

from __future__ import annotations

import sys
from pathlib import Path

SHELLS = {"bash": "agentctl.bash", "zsh": "_agentctl", "fish": "agentctl.fish"}
COMPLETE_VAR = "_AGENTCTL_COMPLETE"


def completion_script(shell: str) -> str:
    """The same script `agentctl --show-completion` prints for ``shell``.

    The scripts call back into agentctl (``_AGENTCTL_COMPLETE``), so commands,
    options and agent names always complete from the installed version.
    """
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="agentctl", complete_var=COMPLETE_VAR, shell=shell)


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, filename in SHELLS.items():
        path = folder / filename
        path.write_text(completion_script(shell), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "completions")):
        print(path)
