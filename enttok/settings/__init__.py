"""User settings: schema, validation and persistence."""

from enttok.settings.schema import SettingsError
from enttok.settings.store import SettingsStore

__all__ = ["SettingsError", "SettingsStore"]
