"""`python -m agentctl` runs the CLI."""

from agentctl.cli import main

main()
