"""The SQLite database: opened once, used from one thread, schema kept current."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from enttok.store.migrations import SchemaTooNew, migrate
from enttok.threads import BlockingRunner

__all__ = ["Database", "SchemaTooNew", "damage_marker", "is_damage", "transaction"]

T = TypeVar("T")
P = ParamSpec("P")

BUSY_TIMEOUT_MS = 5000

log = Logger(namespace="enttok.store")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction (C{BEGIN IMMEDIATE}), committed unless it raises."""
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def connect(path: Path | str) -> sqlite3.Connection:
    """Open C{path} in WAL mode with the daemon's pragmas, in autocommit mode."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("pragma journal_mode = wal")
    conn.execute("pragma synchronous = normal")
    conn.execute("pragma foreign_keys = on")
    return conn


#: SQLite's result codes for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB).
_DAMAGE_CODES = frozenset({11, 26})


def is_damage(error: BaseException) -> bool:
    """Whether C{error} is SQLite reporting a damaged database file."""
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # extended: the low byte is primary
    if code is not None and code & 0xFF in _DAMAGE_CODES:
        return True
    text = str(error).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def damage_marker(path: Path | str) -> Path:
    """The file that asks the next start to repair C{path} (see L{Database.note_damage})."""
    path = Path(path)
    return path.with_name(path.name + ".damaged")


def _create_private(path: Path | str) -> None:
    """Create the database file readable by its owner only (notes and tokens are private)."""
    if str(path) == ":memory:":
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """
    One connection, used only through L{run}, which sends each call to the
    database thread (a single-thread pool), so writes are serialised in order.

    @param run_blocking: a runner bound to exactly one thread
        (or L{enttok.threads.run_inline} in tests).
    """

    def __init__(self, path: Path | str, run_blocking: BlockingRunner) -> None:
        self.path = path
        self._run = run_blocking
        self._conn: sqlite3.Connection | None = None
        #: Whether start-up found the file corrupt and started afresh.
        self.recovered = False
        #: What SQLite said when it first found the file damaged while running.
        self.damage: str | None = None

    def open(self) -> None:
        """
        Connect and migrate (blocking: call before the reactor runs).

        @raise SchemaTooNew: when the database is newer than this code.
        @raise sqlite3.DatabaseError: when the file is not a usable database.
        """
        _create_private(self.path)
        conn = connect(self.path)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    def run(self, f: Callable[Concatenate[sqlite3.Connection, P], T],
            *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """Call C{f(connection, *args, **kwargs)} on the database thread."""
        return self._run(self._call, f, *args, **kwargs).addErrback(self._check_damage)

    def _check_damage(self, failure: Failure) -> Failure:
        if failure.value is not None and is_damage(failure.value):
            self.note_damage(failure.getErrorMessage())
        return failure

    def note_damage(self, error: str) -> None:
        """
        Record that the file is damaged (a corrupt page met by a query, or a
        failed integrity check): L{damage_marker} makes the next start set the
        file aside and rebuild, as for a file that cannot be opened at all.
        """
        if self.damage is not None:
            return
        self.damage = error
        log.error("{path} is damaged ({error}); it will be repaired at the next start",
                  path=str(self.path), error=error)
        if str(self.path) == ":memory:":
            return
        try:
            damage_marker(self.path).write_text(error + "\n", encoding="utf-8")
        except OSError as e:
            log.error("could not record the damage: {error}", error=str(e))

    def _call(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return f(self.connection, *args, **kwargs)

    def close(self) -> Deferred[None]:
        """Close the connection on the database thread, after queued work."""
        def close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None
        if self._conn is None:
            from twisted.internet.defer import succeed
            return succeed(None)
        return self.run(close)
