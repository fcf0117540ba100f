"""The installed CLI reads the real clock only: AGENTCTL_NOW (or anything else
in the environment) does not move expiry judgements.

Contracts here are dated relative to the real day, so the test means the same
on any day it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contract_helpers import write_contract


def agentctl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_agentctl_now_in_the_environment_does_not_move_the_clock(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    folder = tmp_path / "contracts"
    write_contract(folder, "soon-agent", expiry=today + timedelta(days=5))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AGENTCTL_")},
        "AGENTCTL_CONFIG": str(tmp_path / "agentctl.yaml"),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    (tmp_path / "agentctl.yaml").write_text("{}\n", "utf-8")

    honest = agentctl("validate", str(folder), env=env)
    a_year_later = agentctl(
        "validate", str(folder), env={**env, "AGENTCTL_NOW": f"{today.year + 1}-06-01T00:00:00"}
    )

    assert honest.returncode == 0, honest.stdout + honest.stderr
    # With the clock moved a year on, this contract would have expired: it has not.
    assert a_year_later.returncode == 0, a_year_later.stdout + a_year_later.stderr
    assert "expired" not in a_year_later.stdout

    write_contract(folder, "gone-agent", expiry=today - timedelta(days=1))
    a_year_earlier = agentctl(
        "validate", str(folder), env={**env, "AGENTCTL_NOW": f"{today.year - 1}-06-01T00:00:00"}
    )
    # ... and one that expired yesterday stays expired, whatever the variable says.
    assert a_year_earlier.returncode == 1
    assert "expired" in a_year_earlier.stdout
