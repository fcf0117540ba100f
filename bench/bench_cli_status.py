"""Benchmark: `agentctl status` / `agentctl list` at N recorded agents, as whole processes.

Issue 19, row 4. Builds a SQLite state holding N agents (each with an AWS
resource row, every tenth with a live credential and one expired, a few
killed), then runs, interleaved round by round, each as its own process with
its output piped and read to the end (what `agentctl list | grep NAME`
pays): ``agentctl list``, ``agentctl status``, ``agentctl status
--output json``, and for scale ``python -c "import sqlite3; ..."`` reading the
same rows (a floor: no CLI, no checks, no rendering). Reports wall time, CPU
and the process's own peak RSS (``wait4``). Targets: < 2 s and <= 150 MB
at 10,000 agents.

    .venv/bin/python bench/bench_cli_status.py [--agents 10000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wholeproc import AGENTCTL, PYTHON, ROOT, clean_env, interleave, load_average, median, row, run

FLOOR = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
agents = db.execute("SELECT name, owner, execution_mode, expiry, status FROM agents ORDER BY name").fetchall()
resources = db.execute("SELECT agent, provider FROM resources").fetchall()
live = dict(db.execute("SELECT agent, count(*) FROM credentials WHERE revoked_at IS NULL "
                       "AND expires_at > ? GROUP BY agent", (sys.argv[2],)).fetchall())
out = [f"{a[0]}  {a[1]}  {a[2]}  {a[3]}  {a[4]}  {live.get(a[0], 0)}" for a in agents]
sys.stdout.write("\\n".join(out) + "\\n")
"""


def build(state: Path, n_agents: int) -> None:
    """Run in a child process (``--build``): a forked child's peak RSS starts
    from its parent's, so the measuring process stays free of agentctl."""
    sys.path.insert(0, str(ROOT))
    from agentctl.model import AgentStatus
    from agentctl.state import open_state

    now = datetime.now(UTC)
    with open_state(f"sqlite:///{state}", create=True) as store, store.batch():
        for i in range(n_agents):
            name = f"bench-agent-{i:05d}"
            store.upsert_agent(
                name,
                owner=f"team-{i % 50}@company.com",
                purpose=f"Generated agent number {i}",
                execution_mode="autonomous",
                expiry=date.today() + timedelta(days=30 + i % 300),
                contract_hash="0" * 64,
                status=AgentStatus.KILLED if i % 97 == 0 else None,
            )
            store.put_resource(
                name,
                "aws",
                f"arn:aws:iam::123456789012:role/agentctl/agentctl-{name}",
                {"path": "/agentctl/"},
                applied_hash="0" * 64,
            )
            if i % 10 == 0:
                for n, ends in enumerate((now + timedelta(hours=1), now - timedelta(hours=1))):
                    store.add_credential(
                        id=f"cred-{i}-{n}",
                        agent=name,
                        provider="aws",
                        kind="sts-session",
                        fingerprint=f"fp-{i}-{n}",
                        issued_at=ends - timedelta(hours=1),
                        expires_at=ends,
                    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 agents, 3 runs")
    parser.add_argument("--build", metavar="STATE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(Path(args.build), args.agents)
        return 0
    if args.quick:
        args.agents = 2000
    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-status-"))
    try:
        state = work / "state.db"
        run([PYTHON, __file__, "--build", str(state), "--agents", str(args.agents)])
        config = work / "agentctl.yaml"
        config.write_text(f"state: {state}\n", "utf-8")
        env = clean_env(work / "home", AGENTCTL_CONFIG=str(config))
        check = run([AGENTCTL, "list"], env=env, cwd=work, capture=True)
        lines = check.stdout.splitlines()
        assert len(lines) == args.agents + 1, (len(lines), lines[:3])
        assert all(len(line.split()) >= 6 for line in lines[1:]), lines[1]
        print(f"{args.agents} agents; {load_average()}")
        now = datetime.now(UTC).isoformat(sep=" ")
        samples = interleave(
            {
                "floor": lambda: run([PYTHON, "-c", FLOOR, str(state), now], env=env, capture=True),
                "list": lambda: run([AGENTCTL, "list"], env=env, cwd=work, capture=True),
                "status": lambda: run([AGENTCTL, "status"], env=env, cwd=work, capture=True),
                "json": lambda: run(
                    [AGENTCTL, "status", "--output", "json"], env=env, cwd=work, capture=True
                ),
            },
            args.runs,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"medians of {args.runs} interleaved rounds (wall, CPU user+sys, peak RSS)")
    print(row("floor: sqlite3 rows to lines (no CLI)", samples["floor"]))
    print(row("agentctl list (piped)", samples["list"]))
    print(row("agentctl status (piped)", samples["status"]))
    print(row("agentctl status --output json", samples["json"]))
    for label in ("list", "status", "json"):
        wall = median([s.wall for s in samples[label]])
        rss = max(s.rss_mb for s in samples[label])
        verdict = "met" if wall < 2 and rss <= 150 else "NOT met"
        print(
            f"  {label:<7} {wall:5.2f} s, peak {rss:4.0f} MB   target < 2 s, <= 150 MB: {verdict}"
        )
    print(f"  after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
