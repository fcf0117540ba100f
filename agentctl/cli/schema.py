"""`agentctl schema`: the JSON Schemas of the installed agentctl and its providers.

Editors validate contracts against these offline: print one, or write both into
a folder and point `# yaml-language-server: $schema=` at the local file.
"""

from __future__ import annotations

from pathlib import Path

import typer

from agentctl.cli.common import stdout

HELP = (
    "Print the contract (or agentctl.yaml) JSON Schema of this installation, "
    "or write both into a folder for editors."
)


def schema(
    print_: bool = typer.Option(
        False, "--print", help="Print the schema on stdout (the default when --write is not given)."
    ),
    config: bool = typer.Option(
        False, "--config", help="The agentctl.yaml schema instead of the contract schema."
    ),
    write: Path | None = typer.Option(
        None,
        "--write",
        help="Write agent-contract.schema.json and agentctl-config.schema.json into this folder.",
        file_okay=False,
    ),
) -> None:
    from agentctl.schema import CONFIG_SCHEMA_FILE, CONTRACT_SCHEMA_FILE, generated, write_schemas

    if write is not None:
        for path in write_schemas(write):
            stdout.print(f"wrote {path}", highlight=False, soft_wrap=True)
        if not print_:
            return
    text = generated()[CONFIG_SCHEMA_FILE if config else CONTRACT_SCHEMA_FILE]
    # Raw text, not rich: the output is piped into files and tools.
    typer.echo(text, nl=False)
