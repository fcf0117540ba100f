"""Benchmark: `agentctl credentials NAME` and `agentctl exec NAME -- true` as whole processes, vs. their floor.

Issue 19, row 5. One moto server, a few agents applied by `agentctl apply`
(SQLite state), then, interleaved round by round, each its own process:

- floor (credentials): a minimal boto3 script: ``import boto3``, one STS
  client, ``AssumeRole`` of the agent's role (source identity and session
  tag, as agentctl sends them), print the three ``export`` lines;
- ``agentctl credentials NAME`` (gates, state, audit event, then the same
  AssumeRole);
- floor (exec): the same script, then runs ``true`` with the credentials in
  its environment;
- ``agentctl exec NAME -- true``.

Prints medians and the median of per-round ratios. Target: each <= 1.5x its
floor. With ``--vs CHECKOUT`` (a folder holding another version's ``agentctl``
package, e.g. a ``git worktree``), that version's ``credentials`` and ``exec``
run too (PYTHONPATH=CHECKOUT), in the same rounds, with new/before ratios.

    .venv/bin/python bench/bench_cli_exec.py [--runs 5] [--quick] [--vs CHECKOUT]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli_apply import RUNTIME_PRINCIPAL
from wholeproc import (
    ADMIN_KEYS,
    AGENTCTL,
    PYTHON,
    REGION,
    Moto,
    agent_name,
    boundary,
    clean_env,
    interleave,
    load_average,
    ratio,
    row,
    run,
    write_contracts,
)

FLOOR = """
import subprocess, sys
import boto3
endpoint, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
c = sts.assume_role(RoleArn=f"arn:aws:iam::123456789012:role/agentctl/agentctl-{name}",
                    RoleSessionName=f"agentctl-{name}", SourceIdentity=name, DurationSeconds=900,
                    Tags=[{"Key": "agent", "Value": name}])["Credentials"]
env = {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
       "AWS_SESSION_TOKEN": c["SessionToken"]}
if mode == "exec":
    sys.exit(subprocess.run(["true"], env=env).returncode)
for k, v in env.items():
    print(f"export {k}={v}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    parser.add_argument(
        "--vs", type=Path, help="another checkout of agentctl to compare with (PYTHONPATH)"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs = 3
    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-exec-"))
    name = agent_name(1)
    try:
        with Moto() as moto:
            write_contracts(work / "contracts", 3)
            config = work / "agentctl.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "state": str(work / "state.db"),
                        "journal": str(work / "journal.jsonl"),
                        "aws": {
                            "endpoint_url": moto.url,
                            "region": REGION,
                            "runtime_principal": RUNTIME_PRINCIPAL,
                            "permissions_boundary": boundary(moto),
                        },
                    }
                ),
                "utf-8",
            )
            env = clean_env(
                work / "home",
                **ADMIN_KEYS,
                AGENTCTL_CONFIG=str(config),
                # No AGENTCTL_OPERATOR: who acts is verified (moto names the admin keys\' user).
            )
            run([AGENTCTL, "apply", str(work / "contracts"), "--yes"], env=env, cwd=work)
            print(f"agent {name}; {load_average()}")
            sides = {
                "floor-cred": lambda: run(
                    [PYTHON, "-c", FLOOR, moto.url, name, "credentials"], env=env, capture=True
                ),
                "credentials": lambda: run(
                    [AGENTCTL, "credentials", name], env=env, cwd=work, capture=True
                ),
                "floor-exec": lambda: run(
                    [PYTHON, "-c", FLOOR, moto.url, name, "exec"], env=env, capture=True
                ),
                "exec": lambda: run(
                    [AGENTCTL, "exec", name, "--", "true"], env=env, cwd=work, capture=True
                ),
            }
            if args.vs is not None:
                before = {**env, "PYTHONPATH": str(args.vs.resolve())}
                sides["credentials-before"] = lambda: run(
                    [AGENTCTL, "credentials", name], env=before, cwd=work, capture=True
                )
                sides["exec-before"] = lambda: run(
                    [AGENTCTL, "exec", name, "--", "true"], env=before, cwd=work, capture=True
                )
            samples = interleave(sides, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"medians of {args.runs} interleaved rounds (wall, CPU user+sys, peak RSS)")
    print(row("floor: boto3 AssumeRole script, print exports", samples["floor-cred"]))
    print(row("agentctl credentials NAME", samples["credentials"]))
    print(row("floor: boto3 AssumeRole script, then `true`", samples["floor-exec"]))
    print(row("agentctl exec NAME -- true", samples["exec"]))
    if args.vs is not None:
        print(row(f"before ({args.vs}): credentials NAME", samples["credentials-before"]))
        print(row("before: exec NAME -- true", samples["exec-before"]))
        for label, floor in (("credentials", "floor-cred"), ("exec", "floor-exec")):
            was = ratio(samples[f"{label}-before"], samples[floor])
            now = ratio(samples[label], samples[f"{label}-before"])
            print(f"  before: {label:<12} / floor  {was:5.2f}x   new / before {now:.2f}x wall")
    for label, floor in (("credentials", "floor-cred"), ("exec", "floor-exec")):
        r = ratio(samples[label], samples[floor])
        print(
            f"  {label:<12} / floor  {r:5.2f}x   target <= 1.5x: {'met' if r <= 1.5 else 'NOT met'}"
        )
    print(f"  after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
