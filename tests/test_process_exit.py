"""How the console script's process starts (agentctl.cli.main) and ends (agentctl.cli.app.main).

The objects the imports made are frozen out of the interpreter's last full
collection (a fifth of a short command's CPU, bench/README.md); everything a
user relies on at exit must still happen: the exit code, atexit handlers,
buffered output flushed, files left open still written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentctl import __version__
from agentctl.cli.app import GC_THRESHOLDS
from agentctl.schema import SCHEMA_VERSION

PROBE = """
import atexit, gc, sys
from agentctl.cli.app import main
left_open = open(sys.argv[1], "w")
left_open.write("written before exit, never closed")
atexit.register(lambda: print("atexit ran; frozen:", gc.get_freeze_count() > 0, gc.get_threshold()))
sys.argv = ["agentctl", *sys.argv[2:]]
main()
"""


def _probe(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    left_open = tmp_path / "left-open.txt"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(left_open), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, left_open.read_text("utf-8")


def test_a_finished_command_exits_with_its_code_after_atexit_with_files_flushed(
    tmp_path: Path,
) -> None:
    out, left_open = _probe(tmp_path, "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"agentctl {__version__} (contract schema {SCHEMA_VERSION})",
        f"atexit ran; frozen: True {GC_THRESHOLDS}",
    ]
    assert left_open == "written before exit, never closed"


def test_a_failing_command_keeps_its_exit_code_and_message(tmp_path: Path) -> None:
    out, left_open = _probe(tmp_path, "no-such-command")
    assert out.returncode == 2
    assert "No such command" in out.stderr
    assert out.stdout.splitlines() == [f"atexit ran; frozen: True {GC_THRESHOLDS}"]
    assert left_open == "written before exit, never closed"


# The console script's own start: agentctl.cli.main tunes the collector before
# importing the app, then a short command runs without one collection (each
# young collection over freshly imported modules costs milliseconds).
START_PROBE = """
import atexit, gc, sys
from agentctl.cli import main
imported_early = sorted(m for m in ("typer", "agentctl.cli.app") if m in sys.modules)
before = sum(generation["collections"] for generation in gc.get_stats())
atexit.register(lambda: print(
    "collections:", sum(generation["collections"] for generation in gc.get_stats()) - before,
    "imported before main:", imported_early,
))
sys.argv = ["agentctl", *sys.argv[1:]]
main()
"""


def test_the_console_script_is_agentctl_cli_main() -> None:
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="agentctl")
    assert script.value == "agentctl.cli:main"


def test_a_short_command_imports_and_runs_without_a_collection() -> None:
    out = subprocess.run(
        [sys.executable, "-c", START_PROBE, "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"agentctl {__version__} (contract schema {SCHEMA_VERSION})",
        "collections: 0 imported before main: []",
    ]
