"""The database as a service: opened (or salvaged) when the daemon is built, closed last."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from enttok.config import Config, ConfigError
from enttok.store.db import Database, SchemaTooNew, damage_marker, is_damage
from enttok.store.salvage import salvage
from enttok.threads import ThreadPoolService, pool_runner

log = Logger(namespace="enttok.service")


class DatabaseService(Service):
    """Closes the database when the daemon stops (after the services that use it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._db.close()


def open_database(reactor: Any, config: Config, parent: MultiService) -> Database:
    """
    Open (and migrate) C{index.db} with its own single writer thread.

    The thread pool (C{db-threads}) and the closing service (C{database}) become
    named children of C{parent}. A file that cannot be opened, or that was found
    damaged while running (see L{Database.note_damage}), is set aside and
    replaced by a fresh one that keeps what was readable of the jobs and
    embeddings; the vault is rescanned.
    """
    pool = ThreadPool(1, 1, "enttok-db")
    threads = ThreadPoolService(reactor, pool)
    threads.setName("db-threads")
    threads.setServiceParent(parent)
    db = Database(config.db_path, pool_runner(reactor, pool))
    marker = damage_marker(config.db_path)
    damage = _recorded_damage(marker)
    if damage is None:
        try:
            db.open()
        except SchemaTooNew as e:
            raise ConfigError(str(e)) from None
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and not is_damage(e):
                raise ConfigError(f"cannot open {config.db_path}: {e}{_if_full(config)}") from None
            damage = str(e)
    if damage is not None:
        aside = salvage(config.db_path)
        marker.unlink(missing_ok=True)
        # Once running, so that the JSON log (which starts with the services) has it too.
        reactor.callWhenRunning(
            log.warn, "{path} was corrupt ({error}); moved to {aside} and started afresh, "
            "keeping what was readable of the jobs; the index is rebuilt from the vault",
            path=str(config.db_path), error=damage, aside=str(aside))
        try:
            db.open()
        except sqlite3.DatabaseError as again:
            raise ConfigError(f"cannot open {config.db_path}: {again}") from None
        db.recovered = True
    closing = DatabaseService(db)
    closing.setName("database")
    closing.setServiceParent(parent)
    return db


def _recorded_damage(marker: Path) -> str | None:
    """The error a previous run recorded in C{marker}, if it did."""
    try:
        return marker.read_text(encoding="utf-8", errors="replace").strip() or "damaged"
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"damaged (the note of it is unreadable: {e.strerror})"


def _if_full(config: Config) -> str:
    """A note when the data folder's disk is full (SQLite may only say "disk I/O error")."""
    try:
        free = shutil.disk_usage(config.db_path.parent).free
    except OSError:
        return ""
    return " (the disk is full)" if free < 64 * 1024 else ""
