"""Every script in bench/ still runs: each at its smallest size, as its own
process, against its own local servers, and prints its figure lines.

The benches are not run by anything else in the suite, so they rot silently
when the code they drive changes (a renamed option, a new identity rule). No
timing is asserted here (a 2-core shared machine): only that each finishes
with exit code 0 and prints the lines that carry its figures. The figures
themselves are produced by running the benches at full size (bench/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# script -> (tiny arguments, substrings its output must contain)
SMOKE: dict[str, tuple[list[str], list[str]]] = {
    "bench_validate.py": (
        ["--count", "20", "--runs", "1"],
        ["ratio agentctl/floor", "heavy modules imported: none"],
    ),
    "bench_cli_validate.py": (
        ["--count", "10", "--runs", "1"],
        ["agentctl validate (text, piped)", "validate / floor"],
    ),
    "bench_cli_status.py": (
        ["--agents", "20", "--runs", "1"],
        ["floor: sqlite3 rows to lines", "agentctl list (piped)", "agentctl status --output json"],
    ),
    "bench_audit.py": (
        ["--events", "200", "--runs", "1"],
        [
            "| `agentctl audit verify` |",
            "| `agentctl audit --output json` |",
            "`audit` (text) / `audit --output json`",
            "plan for --agent",
        ],
    ),
    "bench_cli_exec.py": (
        ["--runs", "1"],
        [
            "agentctl credentials NAME",
            "agentctl exec NAME -- true",
            "exec           / floor",
            "its GitHub requests: ['POST /app/installations/{installation_id}/access_tokens']",
            "exec's GitHub requests: ['POST /app/installations/{installation_id}/access_tokens', "
            "'DELETE /installation/token', 'GET /installation/repositories']",
            "agentctl credentials NAME (AWS + GitHub)",
            "agentctl exec NAME -- true (AWS + GitHub)",
            "gh-exec        / floor",
        ],
    ),
    "bench_cli_apply.py": (
        ["--agents", "3", "--runs", "1"],
        ["agentctl apply --yes (new state)", "apply / floor", "re-apply / first apply"],
    ),
    "bench_apply_aws.py": (
        ["--agents", "3", "--runs", "1", "--parallelism", "2"],
        ["AwsProvider observe/plan/apply", "agentctl apply (first)", "re-apply / first apply"],
    ),
    "bench_kill.py": (
        ["--agents", "3", "--baseline-agents", "2", "--runs", "1"],
        ["Engine.kill (in process)", "agentctl kill NAME --yes", "cli: 3 vs 2 agents"],
    ),
    "bench_exec_kill.py": (
        ["--runs", "1"],
        ["medians of 1: kill returned"],
    ),
    "soak.py": (
        ["--agents", "2", "--github-agents", "2", "--minutes", "0.1"],
        [
            "audit chain: intact",
            "state and cloud disagree on kill for 0",
            "GitHub tokens usable after their agent's kill: 0",
            "agents with live GitHub tokens the state does not record: 0",
        ],
    ),
}


def test_every_bench_script_has_a_smoke_run() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if p.name != "wholeproc.py"}
    assert scripts == set(SMOKE), "add the new bench to SMOKE with its smallest size"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_bench_runs_at_its_smallest_size(script: str, tmp_path: Path) -> None:
    arguments, expected = SMOKE[script]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENTCTL_"))}
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *arguments],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    missing = [line for line in expected if line not in output]
    assert not missing, f"{script} no longer prints {missing}:\n{output[-3000:]}"
