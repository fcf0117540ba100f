"""`make demo` end to end: the real CLI against local servers, checked by its outcomes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(660)  # the demo's own bound (600 s below) says more when hit
def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [sys.executable, "-m", "testing.demo", "--summary", str(summary_file)],
        cwd=Path(__file__).resolve().parents[1],  # the test world lives in the checkout
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(summary_file.read_text())

    # GitHub names the agent, and the audit trail keeps both sides.
    # github.app_name_template's default, {org}-{name}: App names are global on github.com.
    assert summary["review_author"] == "acme-pr-review-agent[bot]"
    assert summary["audit_grant"]["actor"] == "pr-review-agent"
    assert summary["audit_grant"]["on_behalf_of"] == "amit@company.com"
    assert summary["audit_grant"]["trigger"].startswith("webhook/pr-opened/")
    # The killed agent worked, then was denied in both systems with the same
    # credentials; the other agent kept working.
    assert summary["killed_was_ok_before"] is True
    assert summary["killed_denied"] is True
    # ...and the run that held them was ended by its own `exec` (exit 3).
    assert summary["killed_run_ended"] is True
    assert summary["other_still_ok"] is True
    # Jira: the PR agent reads and transitions in its project, cannot touch another;
    # after its kill the same token is refused and no role or token of it is left.
    assert summary["jira_own_project"] == "read ok, moved to In Progress"
    assert summary["jira_other_project"] == "read DENIED (404), transition DENIED (404)"
    assert summary["audit_grant"]["scope"].endswith("; jira:issue:read,issue:transition")
    assert summary["jira_ok_before_kill"] is True
    assert summary["jira_denied_after_kill"] is True
    assert summary["jira_roles_after_kill"] == []
    assert summary["jira_live_tokens_after_kill"] == 0
    # Every step printed the command a user would type; nothing is left behind.
    assert "$ agentctl validate contracts/" in result.stdout
    assert "$ agentctl kill security-triage-agent" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
