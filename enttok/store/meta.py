"""The C{meta} table: small named values kept beside the data (versions, cursors)."""

from __future__ import annotations

import sqlite3

#: The C{meta} key of the highest job id a damaged database held (see salvage).
JOB_ID_FLOOR = "job_id_floor"


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    """The value stored under C{key}, or C{None}."""
    row = conn.execute("select value from meta where key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Store C{value} under C{key} (in the caller's transaction)."""
    conn.execute("insert into meta (key, value) values (?, ?) "
                 "on conflict(key) do update set value = excluded.value", (key, value))
