"""A stand-in AI agent for the demo: it only uses what `agentctl exec` gives it.

    python -m testing.demo_agent review OWNER/REPO NUMBER
        comment on a pull request with GITHUB_TOKEN (GitHub names the author)
    python -m testing.demo_agent jira ISSUE [ISSUE...]
        read each Jira issue and move it to In Progress, with JIRA_USER and
        JIRA_API_TOKEN through JIRA_BASE_URL, and print what Jira answered
    python -m testing.demo_agent watch STOP_FILE [--github OWNER/REPO] [--s3 BUCKET] [--jira ISSUE]
        every half second, make one GitHub, AWS and/or Jira call with the
        credentials it was started with and print "ok" or the refusal, until
        STOP_FILE exists (at most five minutes), or until `agentctl exec`
        ends it because the agent was killed: then it makes one last round of
        calls first, so the demo shows the very same credentials refused

It never prints a credential.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def _github(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        os.environ["GITHUB_API_URL"].rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {os.environ['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _jira(method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """One Jira call as the agent's own service account; the HTTP status."""
    pair = f"{os.environ['JIRA_USER']}:{os.environ['JIRA_API_TOKEN']}".encode()
    request = urllib.request.Request(
        os.environ["JIRA_BASE_URL"].rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": "Basic " + base64.b64encode(pair).decode(),
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def jira(issues: list[str]) -> int:
    for issue in issues:
        read = _jira("GET", f"/rest/api/3/issue/{issue}")
        moved = _jira(
            "POST", f"/rest/api/3/issue/{issue}/transitions", {"transition": {"id": "21"}}
        )
        verdict = (
            "read ok" if read == 200 else f"read DENIED ({read})",
            "moved to In Progress" if moved == 204 else f"transition DENIED ({moved})",
        )
        print(f"jira {issue}: {', '.join(verdict)}")
    return 0


def review(repo: str, number: str) -> int:
    status, body = _github(
        "POST",
        f"/repos/{repo}/issues/{number}/comments",
        {"body": "Automated review: no secrets or risky patterns found in this diff."},
    )
    if status != 201:
        print(f"comment refused: HTTP {status} {body.get('message') if body else ''}")
        return 1
    author = body["user"]["login"]
    on_behalf = os.environ.get("AGENTCTL_ON_BEHALF_OF", "nobody")
    print(f"commented on {repo}#{number} as {author} (acting for {on_behalf})")
    return 0


def _aws_probe(bucket: str) -> str:
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    s3 = boto3.client(
        "s3", config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})
    )
    try:
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
        return "ok"
    except botocore.exceptions.ClientError as exc:
        return f"DENIED ({exc.response['Error']['Code']})"


def watch(
    stop_file: Path, github_repo: str | None, bucket: str | None, issue: str | None = None
) -> int:
    agent = os.environ.get("AGENTCTL_AGENT", "?")
    # `agentctl exec` sends SIGTERM once the kill is recorded, and the kill is
    # recorded only after every provider revoked: a round of calls started
    # after the signal is made with revoked credentials. Without this, a loaded
    # machine could end the watcher before it ever called again after the kill.
    ending: list[int] = []
    signal.signal(signal.SIGTERM, lambda _signum, _frame: ending.append(1))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not stop_file.exists():
        signalled_before_round = bool(ending)
        results = []
        if github_repo:
            status, _ = _github("GET", f"/repos/{github_repo}")
            results.append("github ok" if status == 200 else f"github DENIED ({status})")
        if bucket:
            results.append(f"aws {_aws_probe(bucket)}")
        if issue:
            status = _jira("GET", f"/rest/api/3/issue/{issue}")
            results.append("jira ok" if status == 200 else f"jira DENIED ({status})")
        print(f"[{agent}] {', '.join(results)}", flush=True)
        if signalled_before_round:
            return 0
        if not ending:
            time.sleep(0.5)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "review":
        return review(argv[1], argv[2])
    if len(argv) >= 2 and argv[0] == "watch":
        github_repo = argv[argv.index("--github") + 1] if "--github" in argv else None
        bucket = argv[argv.index("--s3") + 1] if "--s3" in argv else None
        issue = argv[argv.index("--jira") + 1] if "--jira" in argv else None
        return watch(Path(argv[1]), github_repo, bucket, issue)
    if len(argv) >= 2 and argv[0] == "jira":
        return jira(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
