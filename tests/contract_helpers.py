"""Write real contract files for tests (the loader under test reads them)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

# Every test judges expiry against this day (the session's "today").
TODAY = date(2026, 11, 28)
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def frozen_now() -> datetime:
    return NOW


def contract_document(
    name: str,
    *,
    owner: str = "platform-team@company.com",
    purpose: str = "Test agent",
    aws: list[dict[str, Any]] | None = None,
    github: Any = None,
    extra: dict[str, Any] | None = None,
    mode: str = "autonomous",
    expiry: date = date(2027, 3, 1),
    approvers: list[str] | None = None,
    acts_for: list[str] | None = None,
) -> dict[str, Any]:
    permissions: dict[str, Any] = {}
    if github is not None:
        permissions["github"] = github
    if aws is not None:
        permissions["aws"] = aws
    permissions.update(extra or {})
    document: dict[str, Any] = {
        "agent": {"name": name, "owner": owner, "purpose": purpose},
        "permissions": permissions,
        "execution_mode": mode,
        "expiry": expiry,
        "kill_switch": f"/agents/{name}/disable",
    }
    if approvers is None and mode == "approval_required":
        approvers = ["lead@company.com"]
    if approvers is not None:
        document["approvers"] = approvers
    if acts_for is not None:
        document["acts_for"] = acts_for
    return document


def write_contract(folder: Path, name: str, **kwargs: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(contract_document(name, **kwargs), sort_keys=False), "utf-8")
    return path


def s3_read(bucket: str) -> list[dict[str, Any]]:
    return [
        {
            "actions": ["s3:GetObject", "s3:ListBucket"],
            "resources": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }
    ]
