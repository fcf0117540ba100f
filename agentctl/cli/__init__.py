"""Command-line interface: parses arguments, calls the core, renders results."""
