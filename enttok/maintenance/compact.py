"""C{maintenance.compact}: prune old jobs, ANALYZE, optional VACUUM, integrity check."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import inlineCallbacks

from enttok.common.deferreds import Yielding
from enttok.common.locks import INDEX_LOCK
from enttok.common.times import utc_iso
from enttok.jobs import store
from enttok.jobs.context import JobContext
from enttok.jobs.registry import JobType
from enttok.store import Database
from enttok.store.db import transaction
from enttok.validation import Field, boolean

DAY = 24 * 60 * 60

PAYLOAD = {
    "vacuum": Field(boolean, False, "Rewrite the database file to reclaim space (slow)."),
    "analyze": Field(boolean, True, "Refresh the query planner's statistics."),
}


def _size(path: str | os.PathLike[str]) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(f"{path}{suffix}")
    return total


def _prune_embeddings(conn: sqlite3.Connection) -> int:
    """Drop stored vectors whose text no chunk has any more (of every model)."""
    with transaction(conn):
        return int(conn.execute("delete from embeddings where content_hash not in "
                                "(select content_hash from chunks)").rowcount)


def _integrity(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("pragma integrity_check").fetchall()]


def _vacuum(conn: sqlite3.Connection) -> None:
    conn.execute("vacuum")
    conn.execute("pragma wal_checkpoint(truncate)")


def compact_job(db: Database, now: Callable[[], float],
                retention_days: Callable[[], int]) -> JobType:
    """
    The C{maintenance.compact} job type.

    @param now: the current time in seconds (the reactor's clock).
    @param retention_days: how long finished jobs are kept.
    """

    @inlineCallbacks
    def handle(ctx: JobContext) -> Yielding[dict[str, Any]]:
        before = _size(db.path)
        cutoff = utc_iso(now() - retention_days() * DAY)
        ctx.progress(0.0, "pruning finished jobs")
        pruned_jobs, pruned_events = yield ctx.track(db.run(store.prune_finished, cutoff))
        ctx.check_canceled()
        ctx.progress(0.1, "pruning unused embeddings")
        pruned_vectors = yield ctx.track(db.run(_prune_embeddings))
        ctx.check_canceled()
        if ctx.payload["analyze"]:
            ctx.progress(0.25, "analyzing")
            yield ctx.track(db.run(lambda conn: conn.execute("analyze")))
            ctx.check_canceled()
        if ctx.payload["vacuum"]:
            ctx.progress(0.5, "vacuuming")
            yield ctx.track(db.run(_vacuum))
            ctx.check_canceled()
        ctx.progress(0.75, "checking integrity")
        problems = yield ctx.track(db.run(_integrity))
        integrity = "ok" if problems == ["ok"] else problems
        if integrity != "ok":
            ctx.warn("integrity check found problems", problems=problems[:20])
            db.note_damage(f"integrity check: {problems[0]}")
        return {"integrity_check": integrity, "pruned_jobs": pruned_jobs,
                "pruned_events": pruned_events, "pruned_embeddings": pruned_vectors,
                "analyzed": ctx.payload["analyze"],
                "vacuumed": ctx.payload["vacuum"], "size_before": before,
                "size_after": _size(db.path)}

    return JobType(name="maintenance.compact", payload=PAYLOAD, handler=handle,
                   lock=INDEX_LOCK, description="Database maintenance and integrity check.")
