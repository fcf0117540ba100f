"""`agentctl schema`: the JSON Schemas of the installed agentctl and its providers.

Editors validate contracts against these offline: print one, or write both into
a folder and point `# yaml-language-server: $schema=` at the local file.
"""

from __future__ import annotations

from pathlib import Path

import typer

from agentctl.cli.common import show

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
    from agentctl.commands.schema import schemas

    show(schemas(config=config, write=write, print_=print_))
