"""``agentctl validate``: check access contracts, for people and for CI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from agentctl.errors import UsageError
from agentctl.model import JsonFields

if TYPE_CHECKING:
    from agentctl.commands.session import Session
    from agentctl.contract import ValidationReport
    from agentctl.model import Problem

DEFAULT_PATH = Path("contracts")


@dataclass(frozen=True)
class LoadedContract:
    name: str
    file: str
    owner: str
    expiry: date
    expired: bool


@dataclass(frozen=True)
class ValidateSummary:
    files: int
    contracts: int
    expired: int
    errors: int
    warnings: int
    notes: int


@dataclass(frozen=True)
class ValidateResult:
    report: ValidationReport

    json_fields: ClassVar[JsonFields] = ("ok", "contracts", "problems", "summary")

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.report.problems

    @property
    def contracts(self) -> tuple[LoadedContract, ...]:
        """Every contract loaded, expired ones included, by file."""
        loaded = [
            LoadedContract(c.name, c.source, c.owner, c.expiry, expired)
            for expired, group in ((False, self.report.contracts), (True, self.report.expired))
            for c in group
        ]
        return tuple(sorted(loaded, key=lambda c: str(c.file)))

    @property
    def summary(self) -> ValidateSummary:
        report = self.report
        return ValidateSummary(
            files=len(report.files),
            contracts=len(report.contracts) + len(report.expired),
            expired=len(report.expired),
            errors=len(report.errors),
            warnings=len(report.warnings),
            notes=len(report.notes),
        )


def validate(
    session: Session,
    paths: Sequence[Path] | None,
    *,
    strict: bool = False,
    max_lifetime_days: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidateResult:
    if not paths:
        if not DEFAULT_PATH.is_dir():
            raise UsageError(
                "no PATH given and there is no ./contracts directory",
                hint="agentctl validate contracts/  (files or directories)",
            )
        paths = [DEFAULT_PATH]
    # Providers check grants against their settings (e.g. jira.default_projects).
    config = session.config([str(p) for p in paths])
    if max_lifetime_days is None:
        configured = config.max_lifetime_days
        if isinstance(configured, bool) or not isinstance(configured, int) or configured < 1:
            raise UsageError(
                "max_lifetime_days in agentctl.yaml must be a positive whole number, "
                f"not {configured!r}"
            )
        max_lifetime_days = configured

    # Imported here, not at module level: `agentctl --help` must not pay for jsonschema.
    from agentctl.contract import load_contracts

    report = load_contracts(
        paths,
        today=session.clock().date(),
        max_lifetime_days=max_lifetime_days,
        strict=strict,
        config=config,
        progress=progress,
    )
    return ValidateResult(report)
