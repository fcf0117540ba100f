"""Benchmark: `agentctl validate` of N contracts as a whole process, vs. its floor.

Issue 19, row 3. N generated contract files (aws, github and jira grants: the
jira grant gives each file a note, so the run also pays for reporting
problems), then, interleaved round by round:

- floor: one Python process doing what any validator must at least do: import
  PyYAML and jsonschema, build one Draft 2020-12 validator from agentctl's
  contract schema, then read, parse (libyaml's CSafeLoader) and validate every
  file;
- ``agentctl validate FOLDER`` as a user runs it, output piped (plain text,
  as in CI logs) and read to the end;
- ``agentctl validate FOLDER --output json`` (information).

Prints medians, the median of the per-round ratios and contracts per second.
Target: validate <= 1.5x the floor.

    .venv/bin/python bench/bench_cli_validate.py [--count 3000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_validate import generate
from wholeproc import AGENTCTL, PYTHON, ROOT, clean_env, interleave, load_average, ratio, row, run

FLOOR = """
import json, sys
from pathlib import Path
import jsonschema, yaml
schema = json.loads(Path(sys.argv[1]).read_text())
validator = jsonschema.Draft202012Validator(schema)
loader = yaml.CSafeLoader
count = 0
for path in sorted(Path(sys.argv[2]).glob("*.yaml")):
    document = yaml.load(path.read_bytes(), Loader=loader)
    document["expiry"] = str(document["expiry"])  # YAML gives a date; the schema wants a string
    for error in validator.iter_errors(document):
        print(path, error.message)
    count += 1
print(count, "files")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 contracts, 3 runs")
    args = parser.parse_args()
    if args.quick:
        args.count, args.runs = 1000, 3
    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-validate-"))
    try:
        folder = work / "contracts"
        folder.mkdir()
        generate(folder, args.count)
        schema = ROOT / "schemas" / "agent-contract.schema.json"
        env = clean_env(work / "home", AGENTCTL_CONFIG=str(work / "agentctl.yaml"))
        (work / "agentctl.yaml").write_text("max_lifetime_days: 3650\n", "utf-8")
        check = run(
            [AGENTCTL, "validate", str(folder)], env=env, cwd=work, capture=True, check=False
        )
        if check.returncode != 0:
            raise SystemExit(f"the generated contracts do not validate:\n{check.stdout[-2000:]}")
        print(f"{args.count} contracts; {load_average()}")
        samples = interleave(
            {
                "floor": lambda: run(
                    [PYTHON, "-c", FLOOR, str(schema), str(folder)], env=env, capture=True
                ),
                "validate": lambda: run(
                    [AGENTCTL, "validate", str(folder)], env=env, cwd=work, capture=True
                ),
                "json": lambda: run(
                    [AGENTCTL, "validate", str(folder), "--output", "json"],
                    env=env,
                    cwd=work,
                    capture=True,
                ),
            },
            args.runs,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"medians of {args.runs} interleaved rounds (wall, CPU user+sys, peak RSS)")
    print(row("floor: CSafeLoader + compiled jsonschema validator", samples["floor"]))
    print(row("agentctl validate (text, piped)", samples["validate"]))
    print(row("agentctl validate --output json (info)", samples["json"]))
    for label in ("floor", "validate"):
        wall = sorted(s.wall for s in samples[label])[len(samples[label]) // 2]
        print(f"  {label:<10} {args.count / wall:8,.0f} contracts/s")
    r = ratio(samples["validate"], samples["floor"])
    print(f"  validate / floor   {r:5.2f}x   target <= 1.5x: {'met' if r <= 1.5 else 'NOT met'}")
    print(f"  json / floor       {ratio(samples['json'], samples['floor']):5.2f}x")
    print(f"  after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
