"""`python -m agentctl` runs the CLI."""

from agentctl.cli.app import main

main()
