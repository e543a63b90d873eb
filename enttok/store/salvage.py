"""Recovery from a corrupt C{index.db}: set it aside, start fresh, keep the jobs.

The index is derived from the vault and can be rebuilt; the job history, sync
cursors, activity and the (costly) embeddings cannot, so whatever of them is
still readable is copied over.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from twisted.logger import Logger

from enttok.store.db import connect, transaction
from enttok.store.meta import JOB_ID_FLOOR, set_meta
from enttok.store.migrations import migrate

log = Logger(namespace="enttok.store")

#: Tables copied from a corrupt database when they can still be read.
KEPT_TABLES = ("jobs", "job_events", "meta", "sync_state", "activity", "suggestions",
               "embeddings", "http_cache")


def set_aside(path: Path) -> Path:
    """Rename C{path} (and its WAL and shared-memory files) to C{<name>.corrupt-<time>}."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{aside}{suffix}"))
    return aside


def _copy_table(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> int:
    columns = [r[1] for r in new.execute(f"pragma table_info({table})")]
    have = {r[1] for r in old.execute(f"pragma table_info({table})")}
    shared = [c for c in columns if c in have]
    if not shared:
        return 0
    names = ", ".join(shared)
    rows = old.execute(f"select {names} from {table}").fetchall()
    marks = ", ".join("?" * len(shared))
    with transaction(new):
        new.executemany(f"insert or ignore into {table} ({names}) values ({marks})", rows)
    return len(rows)


_JOB_ID = re.compile(rb"job_[0-9]{8}_[0-9]{3,9}")
_SCAN_BLOCK = 1 << 20


def highest_job_id(files: Iterable[Path]) -> str | None:
    """
    The highest job id written anywhere in C{files} (a damaged database and its
    WAL), read as raw bytes: ids stay findable when the jobs table is not.
    """
    best: tuple[tuple[int, int], bytes] | None = None
    for path in files:
        try:
            with open(path, "rb") as f:
                tail = b""
                while block := f.read(_SCAN_BLOCK):
                    text = tail + block
                    for found in _JOB_ID.findall(text):
                        key = (int(found[4:12]), int(found[13:]))
                        if best is None or key > best[0]:
                            best = (key, found)
                    tail = text[-24:]  # an id cut by the block boundary
        except OSError:
            continue
    return None if best is None else best[1].decode("ascii")


def salvage(path: Path) -> Path:
    """
    Move a corrupt database aside, create a fresh one at C{path}, and copy the
    readable rows of L{KEPT_TABLES} into it.

    @return: where the corrupt file now is.
    """
    aside = set_aside(path)
    fresh = connect(path)
    try:
        migrate(fresh)
        # Job ids must not repeat even when the jobs table is lost (a client may
        # still hold one): new ids of the same day go on after the highest seen.
        floor = highest_job_id(Path(f"{aside}{suffix}") for suffix in ("", "-wal"))
        if floor is not None:
            set_meta(fresh, JOB_ID_FLOOR, floor)
        try:
            old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
        except sqlite3.Error:
            return aside
        try:
            # Tolerate damaged schema entries (say, one index's): without this,
            # SQLite refuses every query, even of the tables that are intact.
            old.execute("pragma writable_schema = on")
        except sqlite3.Error:
            old.close()
            return aside
        try:
            for table in KEPT_TABLES:
                try:
                    copied = _copy_table(old, fresh, table)
                except sqlite3.Error as e:
                    log.warn("could not recover {table}: {error}", table=table, error=str(e))
                    continue
                log.info("recovered {n} rows of {table}", n=copied, table=table)
        finally:
            old.close()
    finally:
        fresh.close()
    return aside
