"""Benchmark: `agentctl apply --yes` of N new AWS agents as a whole process, vs. its floor.

Issue 19, rows 1 and 2. Each round, on one moto server (its own process,
reset between runs, backend calls serialised: see wholeproc.SERIAL_MOTO):

- floor: a minimal boto3 script as its own process (interpreter start,
  ``import boto3``, one client, CreateRole + PutRolePolicy per agent on the
  same number of threads as apply's ``--parallelism``): what any tool must at
  least do to provision those roles;
- ``agentctl apply CONTRACTS --yes`` as a user runs it (the installed
  console script, output piped and read to the end), on a new SQLite state;
- the no-change re-apply of the same contracts, a new process on the state
  the first apply left (nothing to do: no AWS call).

Prints medians, the median of the per-round ratios apply/floor and
re-apply/apply, and each process's peak RSS. Targets: apply <= 1.3x the
floor; re-apply < 10% of the first apply.

With ``--vs CHECKOUT`` (a folder holding another version's ``agentctl``
package, e.g. ``git archive main | tar -x -C /tmp/before``) each round also
runs that version's apply and re-apply (the same console script, with
PYTHONPATH=CHECKOUT), in the same rounds, and prints new/before ratios.

    .venv/bin/python bench/bench_cli_apply.py [--agents 300] [--runs 3] [--parallelism 16] [--quick]
        [--vs CHECKOUT]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wholeproc import (
    ADMIN_KEYS,
    AGENTCTL,
    PYTHON,
    REGION,
    Moto,
    boundary,
    clean_env,
    console_script,
    interleave,
    load_average,
    ratio,
    row,
    run,
    write_contracts,
)

RUNTIME_PRINCIPAL = "arn:aws:iam::123456789012:user/agentctl-runtime"

# The floor: the same two IAM calls per agent agentctl makes for a new agent
# (same trust, boundary, tags and grant shapes), same threads, one client.
FLOOR = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config

endpoint, n, threads, boundary, runtime = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   config=Config(retries={"mode": "standard", "total_max_attempts": 8},
                                 max_pool_connections=max(threads, 10)))
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"AWS": runtime}, "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]}]})

def one(i):
    name = f"bench-agent-{i:04d}"
    role = f"agentctl-{name}"
    iam.create_role(RoleName=role, Path="/agentctl/", AssumeRolePolicyDocument=trust,
        Description=f"agentctl agent {name}: Generated agent number {i} for the benchmark",
        MaxSessionDuration=3600, PermissionsBoundary=boundary,
        Tags=[{"Key": "managed-by", "Value": "agentctl"}, {"Key": "agentctl:agent", "Value": name},
              {"Key": "agentctl:owner", "Value": f"team-{i}@company.com"},
              {"Key": "agentctl:expiry", "Value": "2027-01-01"},
              {"Key": "agentctl:contract-hash", "Value": "0" * 64}])
    document = {"Version": "2012-10-17", "Statement": [{"Sid": "ReadBucket", "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::bench-bucket-{i}", f"arn:aws:s3:::bench-bucket-{i}/*"]}]}
    iam.put_role_policy(RoleName=role, PolicyName="agentctl-grant", PolicyDocument=json.dumps(document))

with ThreadPoolExecutor(max_workers=threads) as pool:
    list(pool.map(one, range(n)))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="100 agents, 2 runs")
    parser.add_argument(
        "--vs", type=Path, help="another checkout of agentctl to compare with (PYTHONPATH)"
    )
    args = parser.parse_args()
    if args.quick:
        args.agents, args.runs = 100, 2

    work = Path(tempfile.mkdtemp(prefix="agentctl-bench-apply-"))
    contracts = work / "contracts"
    write_contracts(contracts, args.agents)
    state = work / "state.db"
    config = work / "agentctl.yaml"
    env = clean_env(
        work / "home",
        **ADMIN_KEYS,
        AGENTCTL_CONFIG=str(config),
        # No AGENTCTL_OPERATOR: who acts is verified (moto names the admin keys\' user).
    )
    print(f"{args.agents} new agents, parallelism {args.parallelism}; {load_average()}")
    try:
        with Moto() as moto:
            policy = {"arn": ""}

            def fresh(label: str) -> None:
                if label.startswith("reapply"):
                    return  # on what the first apply left
                moto.reset()
                policy["arn"] = boundary(moto)
                for leftover in work.glob("state.db*"):
                    leftover.unlink()
                # A first apply validates its contracts: the verdicts a previous
                # round left in the user's cache (keyed by the state file's
                # path, the same every round) would spare it that.
                for verdicts in (work / "home" / ".cache" / "agentctl").glob("contracts-*.json"):
                    verdicts.unlink()
                (work / "journal.jsonl").unlink(missing_ok=True)
                config.write_text(
                    yaml.safe_dump(
                        {
                            "state": str(state),
                            "journal": str(work / "journal.jsonl"),
                            "aws": {
                                "endpoint_url": moto.url,
                                "region": REGION,
                                "runtime_principal": RUNTIME_PRINCIPAL,
                                "permissions_boundary": policy["arn"],
                            },
                        }
                    ),
                    "utf-8",
                )

            def floor() -> object:
                return run(
                    [
                        PYTHON,
                        "-c",
                        FLOOR,
                        moto.url,
                        str(args.agents),
                        str(args.parallelism),
                        policy["arn"],
                        RUNTIME_PRINCIPAL,
                    ],
                    env=env,
                )

            def apply(
                environ: dict[str, str] = env, agentctl: Sequence[str] = (AGENTCTL,)
            ) -> object:
                sample = run(
                    [*agentctl, "apply", str(contracts), "--yes", "-p", str(args.parallelism)],
                    env=environ,
                    cwd=work,
                    capture=True,
                )
                return sample

            sides = {"floor": floor, "apply": apply, "reapply": apply}
            if args.vs is not None:
                before_env = {**env, "PYTHONPATH": str(args.vs.resolve())}
                agentctl_before = console_script(args.vs.resolve())
                sides["apply-before"] = lambda: apply(before_env, agentctl_before)
                sides["reapply-before"] = lambda: apply(before_env, agentctl_before)
            samples = interleave(sides, args.runs, before_each=fresh)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"medians of {args.runs} interleaved rounds (wall, CPU user+sys, peak RSS)")
    print(row("floor: boto3 CreateRole+PutRolePolicy script", samples["floor"]))
    print(row("agentctl apply --yes (new state)", samples["apply"]))
    print(row("agentctl apply --yes again (no change)", samples["reapply"]))
    if args.vs is not None:
        print(row(f"before ({args.vs}): apply --yes", samples["apply-before"]))
        print(row("before: apply --yes again (no change)", samples["reapply-before"]))
        before = ratio(samples["apply-before"], samples["floor"])
        print(f"  before: apply / floor    {before:5.2f}x")
        share = ratio(samples["reapply-before"], samples["apply-before"])
        print(f"  before: re-apply / apply {share:5.1%}")
        print(
            f"  new / before: apply {ratio(samples['apply'], samples['apply-before']):.2f}x wall, "
            f"re-apply {ratio(samples['reapply'], samples['reapply-before']):.2f}x wall"
        )
    first = ratio(samples["apply"], samples["floor"])
    share = ratio(samples["reapply"], samples["apply"])
    print(
        f"  apply / floor            {first:5.2f}x   target <= 1.3x: {'met' if first <= 1.3 else 'NOT met'}"
    )
    print(
        f"  re-apply / first apply   {share:5.1%}   target < 10%: {'met' if share < 0.10 else 'NOT met'}"
    )
    print(f"  after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
