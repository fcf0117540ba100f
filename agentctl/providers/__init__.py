"""Providers turn a contract's grant for one system into real identities."""
