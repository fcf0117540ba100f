"""agentctl: lifecycle manager for AI-agent identities."""

__version__ = "0.1.0"
