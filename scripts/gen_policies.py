"""Write policies/*.json: the documents `agentctl policy` prints, with placeholders.

    python scripts/gen_policies.py          # rewrite the files
    python scripts/gen_policies.py --check  # exit 1 if they are out of step

The documents are built in agentctl/providers/aws/access.py; these files are
for reading and review. Fill them in with `agentctl policy operator|runtime`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentctl.providers.aws.access import DOCUMENTS, template_values  # noqa: E402

POLICIES = ROOT / "policies"


def rendered() -> dict[Path, str]:
    values = template_values()
    return {
        POLICIES / f"{kind}-policy.json": json.dumps(build(values), indent=2) + "\n"
        for kind, build in DOCUMENTS.items()
    }


def main(argv: list[str]) -> int:
    stale = [
        path
        for path, text in rendered().items()
        if not path.exists() or path.read_text("utf-8") != text
    ]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of step: run python scripts/gen_policies.py")
        return 1 if stale else 0
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
