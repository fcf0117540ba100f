"""`make demo`: the whole agentctl story against local servers.

Starts a local AWS (moto, IAM enforcement on) and the local GitHub emulator in
this process, sets up a throw-away world (an operator holding only the shipped
least-privilege policy, an org with repositories and a pull request), then runs
the real CLI as a user would — every command is printed before it runs:

    validate → github register → jira register → plan → apply → exec on behalf
    of a user (GitHub and Jira) → audit → kill one agent: its running
    credentials are denied while another agent keeps working → status → audit
    verify → expiring → kill the PR agent: its Jira token and role are gone

The servers stop when it ends; nothing is left running. ``--summary FILE``
writes the key outcomes as JSON (the end-to-end test reads it).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx

from agentctl.supervise import EXIT_KILLED
from testing.demo.world import FINDINGS_BUCKET, ORG, build_world, local_servers
from testing.github import GitHubEmulator

BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


@dataclass
class Demo:
    workdir: Path
    env: dict[str, str]
    color: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        print(f"\n{BOLD if self.color else ''}## {text}{RESET if self.color else ''}", flush=True)

    def note(self, text: str) -> None:
        print(f"{DIM if self.color else ''}   {text}{RESET if self.color else ''}", flush=True)

    def agentctl(
        self, *args: str, expect: Sequence[int] = (0,), show: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI, show the command and its output, check its exit code.
        ``show=False`` is for the demo's own checks of what happened."""
        if show:
            print(f"\n$ agentctl {shlex.join(args)}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "agentctl", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if show:
            sys.stdout.write(result.stdout)
            sys.stdout.write(result.stderr)
            sys.stdout.flush()
        if result.returncode not in expect:
            raise SystemExit(
                f"demo: `agentctl {shlex.join(args)}` exited {result.returncode}, "
                f"expected {' or '.join(map(str, expect))}"
            )
        return result

    def background(self, *args: str) -> subprocess.Popen[str]:
        print(f"\n$ agentctl {shlex.join(args)} &", flush=True)
        return subprocess.Popen(
            [sys.executable, "-m", "agentctl", *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def must_find(pattern: str, text: str, what: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"demo: expected {what} in the output above")
    return match.group(1)


def first_report(process: subprocess.Popen[str]) -> str:
    """The first line a watcher prints about its calls (agentctl's own line aside)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("["):
            return line.rstrip()
    raise SystemExit("demo: an agent stopped before reporting")


def last_report(output: str) -> str:
    return [line for line in output.splitlines() if line.startswith("[")][-1]


def ended_line(output: str) -> str:
    """What `agentctl exec` said when it ended a killed agent's command."""
    return must_find(r"(?m)^(agentctl: .* was killed: .*)$", output, "exec's line about the kill")


def register_app(
    demo: Demo, github: GitHubEmulator, agent: str, repositories: list[str] | None
) -> None:
    """`agentctl github register`, then what a person does in the browser."""
    first = demo.agentctl("github", "register", agent, "--contract", "contracts/")
    page = Path(must_find(r"Open (\S+\.html)", first.stdout, "the manifest page")).read_text(
        "utf-8"
    )
    manifest = json.loads(
        unescape(must_find(r"name='manifest' value='([^']*)'", page, "a manifest"))
    )
    action = unescape(must_find(r"action='([^']*)'", page, "the form's address"))
    # The browser: the page posts the manifest, the person clicks "Create GitHub
    # App", GitHub redirects with ?code=...&state=... (the address bar's URL).
    created = httpx.post(action, data={"manifest": json.dumps(manifest)}, timeout=30)
    redirect = created.headers.get("location", "")
    if created.status_code != 302 or "code=" not in redirect:
        raise SystemExit(f"demo: GitHub's new-App page answered {created.status_code}")
    demo.note("(browser) the page posts the manifest to GitHub; you click Create; GitHub redirects")
    second = demo.agentctl(
        "github", "register", agent, "--contract", "contracts/", "--code", redirect
    )
    app_id = int(must_find(r"\(id (\d+)\)", second.stdout, "the App id"))
    github.install_app(app_id, ORG, repositories=repositories)
    where = ", ".join(repositories) if repositories else "all repositories"
    demo.note(f"(browser) an {ORG} admin installs the App on {where}")


def run_demo(workdir: Path, color: bool) -> dict[str, Any]:
    with local_servers() as (aws_url, github, jira):
        env = build_world(aws_url, github, jira, workdir)
        demo = Demo(workdir, env, color)
        pull = env["DEMO_PULL_NUMBER"]
        # bob's keys stay out of the environment every command (and agent) inherits.
        bob_keys = (env.pop("DEMO_BOB_ACCESS_KEY_ID"), env.pop("DEMO_BOB_SECRET_ACCESS_KEY"))
        demo.note(
            f"local AWS (moto, IAM enforced): {aws_url}   local GitHub: {github.url}   "
            f"local Jira: {jira.url}"
        )
        demo.note(
            f"working directory: {workdir}  (operator: alice@company.com, holding only "
            "`agentctl policy operator`; exec runs as a runtime principal holding only "
            "`agentctl policy runtime`)"
        )

        demo.say("1. Validate the contracts (what CI runs on every pull request)")
        demo.agentctl("validate", "contracts/")

        demo.say("2. Give the agents that use GitHub their own GitHub App")
        register_app(demo, github, "pr-review-agent", ["api"])
        register_app(demo, github, "security-triage-agent", ["security-triage"])
        register_app(demo, github, "release-agent", ["api"])

        demo.say("2b. Give the PR-review agent its own Jira service account")
        demo.note(
            "(admin.atlassian.com) an org admin created service account pr-review-agent and a "
            "scoped API token for it, handed over in a file"
        )
        demo.agentctl(
            "jira",
            "register",
            "pr-review-agent",
            "--account-id",
            env["DEMO_JIRA_ACCOUNT_ID"],
            "--token-file",
            env["DEMO_JIRA_TOKEN_FILE"],
            "--contract",
            "contracts/",
        )

        demo.say("3. Plan, then apply: one IAM role per agent, Apps recorded, Jira project roles")
        demo.agentctl("plan", "contracts/")
        demo.agentctl("apply", "contracts/", "--yes")
        demo.agentctl("apply", "contracts/", "--yes")
        demo.note("a second apply changes nothing")

        demo.say("4. The PR-review agent reviews a pull request for Amit")
        review = demo.agentctl(
            "exec",
            "pr-review-agent",
            "--on-behalf-of",
            "amit@company.com",
            "--trigger",
            f"webhook/pr-opened/{pull}",
            "--",
            "python",
            "-m",
            "testing.demo_agent",
            "review",
            f"{ORG}/api",
            pull,
        )
        demo.summary["review_author"] = must_find(
            r" as (\S+) ", review.stdout, "the comment author"
        )

        demo.say("4b. In Jira it works its own project (SEC) and cannot touch another (OPS)")
        worked = demo.agentctl(
            "exec",
            "pr-review-agent",
            "--on-behalf-of",
            "amit@company.com",
            "--trigger",
            f"webhook/pr-opened/{pull}",
            "--",
            "python",
            "-m",
            "testing.demo_agent",
            "jira",
            "SEC-1",
            "OPS-1",
        )
        demo.summary["jira_own_project"] = must_find(r"jira SEC-1: (.*)", worked.stdout, "SEC-1")
        demo.summary["jira_other_project"] = must_find(r"jira OPS-1: (.*)", worked.stdout, "OPS-1")

        demo.say("5. The audit trail has both sides: the agent acted, for Amit")
        demo.agentctl("audit", "--agent", "pr-review-agent")
        listing = demo.agentctl(
            "audit", "--agent", "pr-review-agent", "--output", "json", show=False
        )
        grants = [
            e for e in json.loads(listing.stdout)["events"] if e["action"] == "credentials.issue"
        ]
        demo.summary["audit_grant"] = {
            k: grants[-1][k] for k in ("actor", "on_behalf_of", "trigger", "scope")
        }

        demo.say("6. An approval-required agent cannot run without someone else's approval")
        request = demo.agentctl("exec", "release-agent", "--", "true", expect=(1,))
        approval = must_find(r"agentctl approve (apr-\w+)", request.stderr, "an approval id")
        demo.agentctl("approvals")
        demo.agentctl("approve", approval, expect=(1,))
        demo.note("alice asked for the run, so she cannot approve it; bob (an approver) can")
        alice_keys = (demo.env["AWS_ACCESS_KEY_ID"], demo.env["AWS_SECRET_ACCESS_KEY"])
        demo.env["AWS_ACCESS_KEY_ID"], demo.env["AWS_SECRET_ACCESS_KEY"] = bob_keys
        demo.note("(bob's AWS credentials: agentctl asks AWS who is calling)")
        demo.agentctl("approve", approval)
        demo.env["AWS_ACCESS_KEY_ID"], demo.env["AWS_SECRET_ACCESS_KEY"] = alice_keys
        demo.agentctl("exec", "release-agent", "--approval", approval, "--", "true")

        demo.say("7. Incident: the triage agent misbehaves. Two agents are running right now")
        stop = workdir / "stop-watchers"
        triage = demo.background(
            "exec",
            "security-triage-agent",
            "--trigger",
            "schedule/hourly",
            "--",
            "python",
            "-m",
            "testing.demo_agent",
            "watch",
            str(stop),
            "--github",
            f"{ORG}/security-triage",
            "--s3",
            FINDINGS_BUCKET,
        )
        reviewer = demo.background(
            "exec",
            "pr-review-agent",
            "--on-behalf-of",
            "amit@company.com",
            "--trigger",
            f"webhook/pr-synchronize/{pull}",
            "--",
            "python",
            "-m",
            "testing.demo_agent",
            "watch",
            str(stop),
            "--github",
            f"{ORG}/api",
            "--jira",
            "SEC-1",
        )
        before = [first_report(triage), first_report(reviewer)]
        demo.note("both agents work with their own credentials:")
        for line in before:
            print(f"   {line}")
        started = time.monotonic()
        demo.agentctl(
            "kill",
            "security-triage-agent",
            "--reason",
            "INC-4521: filing hundreds of issues",
            "--yes",
        )
        demo.summary["kill_seconds"] = round(time.monotonic() - started, 2)
        # The killed agent's `exec` notices the kill and ends its process; the
        # watcher makes one last round of calls first, with what it holds.
        triage_out, _ = triage.communicate(timeout=120)
        stop.touch()
        reviewer_out, _ = reviewer.communicate(timeout=120)
        after = [last_report(triage_out), last_report(reviewer_out)]
        demo.note("after the kill, with the very same credentials:")
        for line in after:
            print(f"   {line}")
        demo.summary["killed_was_ok_before"] = "DENIED" not in before[0]
        demo.summary["killed_denied"] = after[0].count("DENIED") == 2
        demo.summary["killed_run_ended"] = triage.returncode == EXIT_KILLED
        demo.note(f"the triage agent's exec ended its process (exit {triage.returncode}):")
        print("   " + ended_line(triage_out))
        demo.summary["other_still_ok"] = "DENIED" not in after[1] and "DENIED" not in reviewer_out

        demo.say("8. A killed agent stays killed: apply does not revive it; exec refuses it")
        demo.agentctl("apply", "contracts/", "--yes")
        demo.agentctl("exec", "security-triage-agent", "--", "true", expect=(1,))
        demo.agentctl("status")

        demo.say("9. Prove the audit trail is intact")
        demo.agentctl("audit", "verify")

        demo.say(
            "10. From cron: what expires soon, grouped by owner (exit 1 when something is due)"
        )
        demo.agentctl("expiring", "--days", "90", "contracts/", expect=(1,))

        demo.say("11. Kill the PR-review agent: its Jira token and project role go with it")
        stop_again = workdir / "stop-jira-watcher"
        watcher = demo.background(
            "exec",
            "pr-review-agent",
            "--on-behalf-of",
            "amit@company.com",
            "--",
            "python",
            "-m",
            "testing.demo_agent",
            "watch",
            str(stop_again),
            "--jira",
            "SEC-1",
        )
        first = first_report(watcher)
        print(f"   {first}")
        demo.agentctl("kill", "pr-review-agent", "--reason", "demo: the end", "--yes")
        watcher_out, _ = watcher.communicate(timeout=120)  # exec ends it (see step 7)
        stop_again.touch()
        last = last_report(watcher_out)
        demo.note("with the very same token, after the kill:")
        print(f"   {last}")
        world = jira.state()
        account = env["DEMO_JIRA_ACCOUNT_ID"]
        demo.summary["jira_ok_before_kill"] = "jira ok" in first
        demo.summary["jira_denied_after_kill"] = "jira DENIED (401)" in last
        demo.summary["jira_roles_after_kill"] = sorted(
            f"{role} in {key}"
            for key, project in world["projects"].items()
            for role, actors in project["actors"].items()
            if account in actors["users"]
        )
        demo.summary["jira_live_tokens_after_kill"] = sum(
            1 for t in world["tokens"] if t["accountId"] == account and not t["revoked"]
        )
        demo.agentctl("jira", "status", "pr-review-agent")
        demo.summary["ok"] = True
        return demo.summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, help="write the key outcomes as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="agentctl-demo-"))
    try:
        summary = run_demo(workdir, color=sys.stdout.isatty())
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print("\nDemo finished: every agent had its own identity; one was switched off, alone.")
    return 0
