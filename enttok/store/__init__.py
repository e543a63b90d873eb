"""SQLite persistence: one connection on one thread, versioned schema."""

from enttok.store.db import Database, SchemaTooNew

__all__ = ["Database", "SchemaTooNew"]
