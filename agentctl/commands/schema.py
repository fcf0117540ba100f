"""``agentctl schema``: the JSON Schemas of the installed agentctl and its providers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Schemas:
    """The files written (``--write``) and the schema text to print, if asked."""

    written: tuple[Path, ...]
    text: str | None


def schemas(*, config: bool = False, write: Path | None = None, print_: bool = False) -> Schemas:
    from agentctl.schema import CONFIG_SCHEMA_FILE, CONTRACT_SCHEMA_FILE, generated, write_schemas

    written = tuple(write_schemas(write)) if write is not None else ()
    text = None
    if write is None or print_:
        text = generated()[CONFIG_SCHEMA_FILE if config else CONTRACT_SCHEMA_FILE]
    return Schemas(written, text)
