"""SQL for jobs, job events and engine metadata.

Every function takes the connection first and runs on the database thread
(through L{enttok.store.Database.run}).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from attrs import frozen

from enttok.jobs.model import RUNNING, TERMINAL, Job, check_transition
from enttok.store.db import transaction
from enttok.store.meta import JOB_ID_FLOOR as JOB_ID_FLOOR
from enttok.store.meta import get_meta as get_meta
from enttok.store.meta import set_meta as set_meta

_JOB_COLUMNS = ("job_id, type, status, created_at, updated_at, progress, message, "
                "payload_json, result_json, error_json, attempts, payload_key")


@frozen
class EventRow:
    """One recorded event; C{event_id} is the event stream's C{seq}."""

    event_id: int
    job_id: str
    created_at: str
    level: str
    message: str
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "created_at": self.created_at,
                "level": self.level, "message": self.message, "meta": self.meta}


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _job(row: Sequence[Any]) -> Job:
    return Job(job_id=row[0], type=row[1], status=row[2], created_at=row[3],
               updated_at=row[4], progress=row[5] or 0.0, message=row[6],
               payload=_loads(row[7]) or {}, result=_loads(row[8]), error=_loads(row[9]),
               attempts=row[10], key=row[11] or "")


def _insert_events(conn: sqlite3.Connection, events: Iterable[EventRow]) -> None:
    conn.executemany(
        "insert into job_events (event_id, job_id, created_at, level, message, meta_json) "
        "values (?, ?, ?, ?, ?, ?)",
        [(e.event_id, e.job_id, e.created_at, e.level, e.message, _dumps(e.meta))
         for e in events])


def insert_job(conn: sqlite3.Connection, job: Job, events: Sequence[EventRow] = ()) -> None:
    """Store a new job and its first events in one transaction."""
    with transaction(conn):
        conn.execute(
            f"insert into jobs ({_JOB_COLUMNS}, seq) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            f"(select coalesce(max(seq), 0) + 1 from jobs))",
            (job.job_id, job.type, job.status, job.created_at, job.updated_at, job.progress,
             job.message, _dumps(job.payload), _dumps(job.result), _dumps(job.error),
             job.attempts, job.key))
        _insert_events(conn, events)


def save_job(conn: sqlite3.Connection, job: Job, expected_status: str,
             events: Sequence[EventRow] = ()) -> bool:
    """
    Write C{job}'s mutable fields if its stored status is still C{expected_status}.

    @raise IllegalTransition: when C{expected_status -> job.status} is not allowed.
    @return: whether the row was updated (false: someone changed it first).
    """
    if job.status != expected_status:
        check_transition(expected_status, job.status)
    with transaction(conn):
        cursor = conn.execute(
            "update jobs set status = ?, updated_at = ?, progress = ?, message = ?, "
            "payload_json = ?, result_json = ?, error_json = ?, attempts = ?, payload_key = ? "
            "where job_id = ? and status = ?",
            (job.status, job.updated_at, job.progress, job.message, _dumps(job.payload),
             _dumps(job.result), _dumps(job.error), job.attempts, job.key, job.job_id,
             expected_status))
        if cursor.rowcount != 1:
            return False  # nothing was written; the empty transaction commits
        _insert_events(conn, events)
    return True


def add_events(conn: sqlite3.Connection, events: Sequence[EventRow]) -> None:
    with transaction(conn):
        _insert_events(conn, events)


def get_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(f"select {_JOB_COLUMNS} from jobs where job_id = ?",
                       (job_id,)).fetchone()
    return None if row is None else _job(row)


def list_jobs(conn: sqlite3.Connection, statuses: Sequence[str] = (),
              types: Sequence[str] = (), limit: int = 50,
              before: int | None = None) -> tuple[list[Job], int | None]:
    """
    Jobs newest first, filtered; C{before} is a cursor from a previous page.

    @return: the jobs and the cursor of the next page (C{None} on the last).
    """
    where: list[str] = []
    args: list[Any] = []
    if statuses:
        where.append(f"status in ({','.join('?' * len(statuses))})")
        args.extend(statuses)
    if types:
        where.append(f"type in ({','.join('?' * len(types))})")
        args.extend(types)
    if before is not None:
        where.append("seq < ?")
        args.append(before)
    clause = ("where " + " and ".join(where)) if where else ""
    rows = conn.execute(
        f"select {_JOB_COLUMNS}, seq from jobs {clause} order by seq desc limit ?",
        (*args, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_job(r) for r in rows], (rows[-1][-1] if more else None)


def jobs_with_status(conn: sqlite3.Connection, status: str) -> list[Job]:
    """Every job in C{status}, oldest first."""
    rows = conn.execute(f"select {_JOB_COLUMNS} from jobs where status = ? order by seq",
                        (status,)).fetchall()
    return [_job(r) for r in rows]


def recent_events(conn: sqlite3.Connection, job_id: str, limit: int = 50) -> list[EventRow]:
    """A job's last C{limit} events, oldest first."""
    rows = conn.execute(
        "select event_id, job_id, created_at, level, message, meta_json from job_events "
        "where job_id = ? order by event_id desc limit ?", (job_id, limit)).fetchall()
    return [EventRow(r[0], r[1], r[2], r[3], r[4], _loads(r[5]) or {}) for r in reversed(rows)]


def events_after(conn: sqlite3.Connection, since: int, limit: int = 10000) -> list[EventRow]:
    rows = conn.execute(
        "select event_id, job_id, created_at, level, message, meta_json from job_events "
        "where event_id > ? order by event_id limit ?", (since, limit)).fetchall()
    return [EventRow(r[0], r[1], r[2], r[3], r[4], _loads(r[5]) or {}) for r in rows]


def max_event_id(conn: sqlite3.Connection) -> int:
    value = conn.execute("select max(event_id) from job_events").fetchone()[0]
    return int(value or 0)


def max_job_number(conn: sqlite3.Connection, day_prefix: str) -> int:
    """The highest C{NNN} among ids C{<day_prefix>NNN} (C{job_YYYYMMDD_}), counting
    the L{JOB_ID_FLOOR} left by a salvage."""
    rows = conn.execute("select job_id from jobs where job_id >= ? and job_id < ?",
                        (day_prefix, day_prefix + "~")).fetchall()
    ids = [r[0] for r in rows]
    floor = get_meta(conn, JOB_ID_FLOOR)
    if floor is not None and floor.startswith(day_prefix):
        ids.append(floor)
    numbers = [int(i[len(day_prefix):]) for i in ids if i[len(day_prefix):].isdigit()]
    return max(numbers, default=0)


PRUNED_THROUGH = "events_pruned_through"


def prune_finished(conn: sqlite3.Connection, updated_before: str) -> tuple[int, int]:
    """
    Delete finished jobs last updated before C{updated_before}, with their events.

    @return: (jobs deleted, events deleted).
    """
    terminal = tuple(TERMINAL)
    marks = ",".join("?" * len(terminal))
    with transaction(conn):
        old = f"select job_id from jobs where status in ({marks}) and updated_at < ?"
        top = conn.execute(f"select max(event_id) from job_events where job_id in ({old})",
                           (*terminal, updated_before)).fetchone()[0]
        events = conn.execute(f"delete from job_events where job_id in ({old})",
                              (*terminal, updated_before)).rowcount
        jobs = conn.execute(f"delete from jobs where status in ({marks}) and updated_at < ?",
                            (*terminal, updated_before)).rowcount
        if top is not None:
            previous = int(get_meta(conn, PRUNED_THROUGH) or 0)
            set_meta(conn, PRUNED_THROUGH, str(max(previous, int(top))))
    return jobs, events


def pruned_through(conn: sqlite3.Connection) -> int:
    return int(get_meta(conn, PRUNED_THROUGH) or 0)


def running_jobs(conn: sqlite3.Connection) -> list[Job]:
    return jobs_with_status(conn, RUNNING)
