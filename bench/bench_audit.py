"""Benchmark: `agentctl audit`, `audit verify` and `audit export` on a long keyed trail.

Builds a SQLite state holding a keyed audit trail of N events (default
1,000,000: plain hash chain + HMAC per event, the chain key in an
encrypted-file secret store, an anchor file holding the last event), then runs
each command as its own process, as a user pays for it, and reports wall time
and the process's peak RSS (``wait4`` rusage of that child alone), median of
``--runs``. The three commands are interleaved run by run. Output goes to
/dev/null (``audit``: plain lines, as off a terminal) or a file (``export``).
Also: ``audit --output json`` (the issue's baseline for the text listing; the
ratio of the two is printed), ``audit --agent/--action/--since`` on the same
trail (index-served), and the query plans SQLite chooses for them.

Target (issue 19): peak RSS <= 150 MB at 1,000,000 events for all three; flat
(the same at 100,000 and at 1,000,000).

    .venv/bin/python bench/bench_audit.py [--events 1000000] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentctl.audit_anchor import Anchor, LocalAnchorFile  # noqa: E402
from agentctl.audit_key import ChainKeySource  # noqa: E402
from agentctl.config import SecretsSettings  # noqa: E402
from agentctl.runtime import once  # noqa: E402
from agentctl.secrets import open_secret_store  # noqa: E402
from agentctl.state import AuditEvent, create_state_engine, open_state  # noqa: E402
from agentctl.state.records import GENESIS_HASH  # noqa: E402

PASSPHRASE = "bench-audit-passphrase"
START = datetime(2026, 1, 1, tzinfo=UTC)
AGENTS = [f"agent-{n:03d}" for n in range(200)]
ACTIONS = ["credentials.issue", "exec.start", "exec.end", "apply.update", "rotate", "kill"]


def build(folder: Path, count: int) -> tuple[str, Path]:
    """The state, secret store, anchor file and agentctl.yaml for a trail of ``count``."""
    import sqlalchemy as sa

    state = folder / "state.db"
    url = f"sqlite:///{state}"
    config = folder / "agentctl.yaml"
    config.write_text(
        f"state: {state}\n"
        f"secrets:\n  backend: encrypted-file\n  path: {folder / 'secrets.enc'}\n"
        f"audit:\n  anchor: file\n  anchor_file: {folder / 'anchors.jsonl'}\n",
        encoding="utf-8",
    )
    settings = SecretsSettings(backend="encrypted-file", path=str(folder / "secrets.enc"))
    secrets = once(
        lambda: open_secret_store(settings, environ={"AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE})
    )
    with open_state(url) as store:
        head = store.audit_head()
        assert head is not None and head.trail
        trail = head.trail
    key = ChainKeySource(secrets, configured=True).for_append(trail, 1)
    assert key is not None
    engine = create_state_engine(url)
    columns = [*AuditEvent.__dataclass_fields__]
    insert = sa.text(
        f"INSERT INTO audit_events ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)})"
    )
    prev = GENESIS_HASH
    batch: list[dict[str, object]] = []
    started = time.monotonic()
    last: AuditEvent | None = None
    with engine.begin() as conn:
        for seq in range(1, count + 1):
            agent = AGENTS[seq % len(AGENTS)]
            event = AuditEvent(
                seq=seq,
                id=uuid.uuid4().hex,
                time=START + timedelta(seconds=seq * 30),
                actor=agent,
                on_behalf_of="amit@company.com",
                action=ACTIONS[seq % len(ACTIONS)],
                scope="github:repo:read,pull_request:comment",
                trigger=f"webhook/pr-opened/{seq}",
                target=agent,
                result="success",
                operator="ci-bot",
                detail={"run": seq},
                prev_hash=prev,
            )
            event = replace(event, hash=event.compute_hash())
            event = replace(event, mac=key.event_mac(event.hash))
            row = event.as_dict()
            row["detail"] = json.dumps(row["detail"], sort_keys=True, separators=(",", ":"))
            batch.append(row)
            prev, last = event.hash, event
            if len(batch) == 20_000:
                conn.execute(insert, batch)
                batch.clear()
        if batch:
            conn.execute(insert, batch)
        assert last is not None
        conn.execute(
            sa.text("UPDATE audit_head SET seq = :seq, hash = :hash, mac = :mac, key_id = :kid"),
            {
                "seq": last.seq,
                "hash": last.hash,
                "mac": key.head_mac(last.seq, last.hash),
                "kid": key.key_id,
            },
        )
    engine.dispose()
    LocalAnchorFile(folder / "anchors.jsonl").append(Anchor.of(trail, last, key, datetime.now(UTC)))
    print(f"built {count:,} events in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return url, config


def run(
    argv: list[str], env: dict[str, str], stdout_path: str = os.devnull
) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds user+system) of one agentctl process."""
    with open(stdout_path, "wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "agentctl", *argv], stdout=out, stderr=subprocess.PIPE, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0,):
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"agentctl {' '.join(argv)} exited {process.returncode}: {err[-800:]}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min), {os.cpu_count()} CPUs"


def plans(url: str) -> dict[str, str]:
    """SQLite's query plan for each filter, as the store issues it."""
    import sqlalchemy as sa

    from agentctl.state import schema as s

    e = s.audit_events.c
    queries = {
        "--agent": sa.select(s.audit_events).where(sa.or_(e.actor == "x", e.target == "x")),
        "--action": sa.select(s.audit_events).where(e.action == "kill"),
        "--since": sa.select(s.audit_events).where(e.time >= "2026-12-01"),
    }
    engine = create_state_engine(url)
    found = {}
    with engine.connect() as conn:
        for name, query in queries.items():
            order = e.seq + 0 if name == "--since" else e.seq  # as iter_audit_events does
            compiled = query.order_by(order).compile(
                dialect=engine.dialect, compile_kwargs={"literal_binds": True}
            )
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            found[name] = "; ".join(str(r[-1]) for r in rows)
    engine.dispose()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the trail in this folder")
    options = parser.parse_args()
    folder = options.keep or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "state.db").exists():
        url, config = f"sqlite:///{folder / 'state.db'}", folder / "agentctl.yaml"
    else:
        url, config = build(folder, options.events)
    env = {
        **os.environ,
        "AGENTCTL_CONFIG": str(config),
        "AGENTCTL_KEYRING_PASSPHRASE": PASSPHRASE,
        "PYTHONPATH": str(ROOT),
    }
    export_file = str(folder / "export.jsonl")
    commands = {
        "audit": (["audit"], os.devnull),
        # The baseline for the text listing: the same events as JSON.
        "audit --output json": (["audit", "--output", "json"], os.devnull),
        "audit verify": (["audit", "verify"], os.devnull),
        "audit export": (["audit", "export"], export_file),
        "audit --agent X": (["audit", "--agent", "agent-007"], os.devnull),
        "audit --action kill": (["audit", "--action", "kill"], os.devnull),
        "audit --since (last days)": (["audit", "--since", "2026-12-10"], os.devnull),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
    loads = [load_average()]
    for round_ in range(options.runs):
        for name, (argv, target) in commands.items():  # interleaved, round by round
            wall, rss, cpu = run(argv, env, target)
            results[name].append((wall, rss, cpu))
            print(
                f"run {round_ + 1} {name}: {wall:.1f}s CPU {cpu:.1f}s {rss:.0f} MB",
                file=sys.stderr,
            )
    loads.append(load_average())
    print(f"\n{options.events:,} keyed events, SQLite, median of {options.runs}")
    print(f"before: {loads[0]}; after: {loads[1]}\n")
    print("| command | wall | CPU (user+sys) | peak RSS (max) | <= 150 MB |")
    print("|---|---|---|---|---|")
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[2] for s in samples)
        rss = max(s[1] for s in samples)
        met = "met" if rss <= 150 else "NOT met"
        print(f"| `agentctl {name}` | {wall:.1f} s | {cpu:.1f} s | {rss:.0f} MB | {met} |")
    per_round = [
        t[0] / j[0] for t, j in zip(results["audit"], results["audit --output json"], strict=True)
    ]
    print(
        f"\n`audit` (text) / `audit --output json` (the issue's baseline, same rounds): "
        f"{statistics.median(per_round):.2f}x wall"
    )
    print()
    for name, plan in plans(url).items():
        print(f"- plan for {name}: {plan}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
