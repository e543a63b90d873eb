"""Connectors: activity from outside the vault."""
