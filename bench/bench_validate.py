"""Benchmark: `load_contracts` on 10,000 generated contracts vs. the floor.

The floor is what any validator must at least do on the same files: read each
file, parse it with PyYAML's fastest safe loader (libyaml's CSafeLoader when
available) and validate it with a jsonschema Draft 2020-12 validator built once
from the same schema. agentctl does more (positions, duplicate keys, alias and
size limits, semantic and vocabulary checks); the target is to stay within
1.5x of the floor. Also reports the import cost of the CLI and whether
`agentctl validate` imports an SDK or keyring.

    .venv/bin/python bench/bench_validate.py [--count 10000] [--runs 3]
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
from collections.abc import Callable
from datetime import date
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentctl.contract import load_contracts, load_schema  # noqa: E402

TODAY = date(2026, 11, 28)
HEAVY = ("boto3", "botocore", "githubkit", "keyring")

TEMPLATE = """\
# yaml-language-server: $schema=https://agentctl.dev/schemas/agent-contract.schema.json
agent:
  name: {name}
  owner: team-{i}@company.com
  purpose: Generated agent number {i} for the benchmark

permissions:
  github:
    repositories:
      - acme/service-{i}
    scopes:
      - repo:read
      - pull_request:comment
  aws:
    - sid: ReadBucket
      actions:
        - s3:GetObject
        - s3:ListBucket
      resources:
        - arn:aws:s3:::bench-bucket-{i}
        - arn:aws:s3:::bench-bucket-{i}/*
  jira:
    - issue:read

execution_mode: {mode}
approvers: [release-lead@company.com]
expiry: 2027-0{month}-1{day}
kill_switch: /agents/{name}/disable
"""
MODES = ("autonomous", "approval_required", "on_behalf_of_user")


def generate(folder: Path, count: int) -> list[Path]:
    files = []
    for i in range(count):
        name = f"bench-agent-{i}"
        path = folder / f"{name}.yaml"
        path.write_text(
            TEMPLATE.format(name=name, i=i, mode=MODES[i % 3], month=1 + i % 9, day=i % 10),
            encoding="utf-8",
        )
        files.append(path)
    return files


def floor(files: list[Path]) -> int:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    validator = jsonschema.Draft202012Validator(load_schema())
    for path in files:
        document = yaml.load(path.read_bytes(), Loader=loader)
        document["expiry"] = str(document["expiry"])  # YAML gives a date; the schema wants a string
        validator.validate(document)
    return len(files)


def ours(folder: Path) -> int:
    report = load_contracts([folder], today=TODAY)
    assert report.ok and not report.warnings, report.problems[:3]
    return len(report.contracts)


def measure(runs: int, work: dict[str, Callable[[], int]]) -> dict[str, tuple[float, float, int]]:
    """Median wall-clock and CPU seconds per workload. Runs are interleaved so
    that noise from other processes on the machine hits both sides alike."""
    wall: dict[str, list[float]] = {label: [] for label in work}
    cpu: dict[str, list[float]] = {label: [] for label in work}
    counts: dict[str, int] = {}
    for _ in range(runs):
        for label, job in work.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            counts[label] = job()
            wall[label].append(time.perf_counter() - start_wall)
            cpu[label].append(time.process_time() - start_cpu)
    return {
        label: (statistics.median(wall[label]), statistics.median(cpu[label]), counts[label])
        for label in work
    }


def _python(code: str) -> list[object]:
    """Run ``code`` in a fresh interpreter at the repository root; its last
    stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    result: list[object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _heavy() -> str:
    return f"[m for m in {HEAVY!r} if m in sys.modules]"


def import_cost(module: str) -> None:
    seconds, heavy = _python(
        "import json, sys, time\n"
        "start = time.perf_counter()\n"
        f"import {module}\n"
        f"print(json.dumps([time.perf_counter() - start, {_heavy()}]))\n"
    )
    assert isinstance(seconds, float)
    print(
        f"import {module:<26} {seconds * 1000:>6.0f} ms   heavy modules imported: {heavy or 'none'}"
    )


def cli_imports() -> None:
    """`agentctl --help` and `agentctl validate <one file>` in one process."""
    if (ROOT / "agentctl" / "cli" / "app.py").exists():
        setup = "from agentctl.cli.app import run\n"
    else:  # before the main app exists: the command alone
        setup = (
            "import typer\n"
            "from agentctl.cli.validate import validate\n"
            "app = typer.Typer(); app.command()(validate)\n"
            "app.command()(lambda: None)\n"
            "def run(argv):\n"
            "    try:\n"
            "        app(argv)\n"
            "    except SystemExit as exc:\n"
            "        return exc.code\n"
        )
    codes, heavy = _python(
        "import contextlib, io, json, sys\n"
        + setup
        + "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [run(['--help']), run(['validate', 'contracts/pr-review-agent.yaml'])]\n"
        f"print(json.dumps([codes, {_heavy()}]))\n"
    )
    print(
        f"agentctl --help; agentctl validate <one file>: exit codes {codes}, heavy modules imported: {heavy or 'none'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"libyaml: {'yes' if getattr(yaml, '__with_libyaml__', False) else 'NO (pure-Python YAML)'}"
    )
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-") as tmp:
        folder = Path(tmp)
        files = generate(folder, args.count)
        ours(folder)  # warm the validator cache and the page cache for both
        results = measure(
            args.runs,
            {
                "floor: yaml.load + jsonschema": lambda: floor(files),
                "agentctl load_contracts": lambda: ours(folder),
            },
        )
    for label, (wall, cpu, count) in results.items():
        print(
            f"{label:<32} {count / wall:>8,.0f} contracts/s   (median of {args.runs}: {wall:.2f} s wall, {cpu:.2f} s CPU)"
        )
    (floor_wall, floor_cpu, _), (our_wall, our_cpu, _) = results.values()
    ratio = our_wall / floor_wall
    verdict = "within" if ratio <= 1.5 else "OVER"
    print(
        f"ratio agentctl/floor: {ratio:.2f}x wall, {our_cpu / floor_cpu:.2f}x CPU ({verdict} the 1.5x target)"
    )
    for module in ("agentctl.cli.app", "agentctl.cli.validate", "agentctl.contract"):
        if (ROOT / (module.replace(".", "/") + ".py")).exists():
            import_cost(module)
    cli_imports()
    # A bench reports; it does not judge. The verdict is in the ratio line, and at
    # the smoke test's size (20 files, one run) the ratio is noise.
    return 0


if __name__ == "__main__":
    sys.exit(main())
