"""SQL for suggestions: the notes and activity of a day, and stored results."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from enttok.store.db import transaction
from enttok.suggest.compose import Note

#: File names of daily notes: C{YYYY-MM-DD.md} in any folder (the whole name: a
#: C{Standup 2024-04-30.md} is a meeting, not a daily note).
_DAILY_NAME = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].md"


def _note(row: tuple[Any, ...]) -> Note:
    path, title, note_date, tasks_json, links_json = row
    links = tuple(str(link.get("target", "")) for link in json.loads(links_json or "[]"))
    return Note(path, title, note_date, tuple(json.loads(tasks_json or "[]")), links)


_COLUMNS = "path, title, note_date, tasks_json, links_json"


def note_at(conn: sqlite3.Connection, path: str) -> Note | None:
    row = conn.execute(f"select {_COLUMNS} from notes where path = ?", (path,)).fetchone()
    return None if row is None else _note(row)


def daily_note(conn: sqlite3.Connection, day: str) -> Note | None:
    """The daily note of C{day}: a file named C{YYYY-MM-DD.md}, else one dated that day."""
    rows = conn.execute(f"select {_COLUMNS} from notes where note_date = ? order by path",
                        (day,)).fetchall()
    named = [r for r in rows if r[0].rsplit("/", 1)[-1] == f"{day}.md"]
    chosen = named or rows
    return _note(chosen[0]) if chosen else None


def daily_notes_between(conn: sqlite3.Connection, first: str, last: str) -> list[Note]:
    """Daily notes (named C{YYYY-MM-DD.md}) dated C{first}..C{last} (inclusive)."""
    rows = conn.execute(f"select {_COLUMNS} from notes where note_date between ? and ? "
                        f"and (path glob ? or path glob ?) order by note_date desc, path",
                        (first, last, _DAILY_NAME, f"*/{_DAILY_NAME}")).fetchall()
    return [_note(r) for r in rows]


def edited_between(conn: sqlite3.Connection, start_ns: int, end_ns: int,
                   limit: int = 50) -> list[Note]:
    rows = conn.execute(f"select {_COLUMNS} from notes where mtime_ns >= ? and mtime_ns < ? "
                        f"order by mtime_ns desc limit ?", (start_ns, end_ns, limit)).fetchall()
    return [_note(r) for r in rows]


def day_activity(conn: sqlite3.Connection, workspace: str, start: str, end: str,
                 limit: int = 2000) -> list[dict[str, Any]]:
    """
    Activity of every source with C{start <= occurred_at < end}, oldest first:
    the fields of C{GET /activity} plus C{source} and the parsed C{raw}.
    """
    rows = conn.execute(
        "select source, kind, repo, number, title, url, occurred_at, identity, raw_json "
        "from activity where workspace = ? and occurred_at >= ? and occurred_at < ? "
        "order by occurred_at, item_id limit ?", (workspace, start, end, limit)).fetchall()
    items = []
    for r in rows:
        try:
            raw = json.loads(r[8] or "{}")
        except ValueError:
            raw = {}
        items.append({"source": r[0], "kind": r[1], "repo": r[2], "number": r[3],
                      "title": r[4], "url": r[5], "occurred_at": r[6],
                      "id": r[7].split(":", 1)[1], "raw": raw if isinstance(raw, dict) else {}})
    return items


def save_result(conn: sqlite3.Connection, day: str, job_id: str, now: str,
                result: dict[str, Any]) -> None:
    with transaction(conn):
        conn.execute("insert into suggestions (note_date, job_id, created_at, result_json) "
                     "values (?, ?, ?, ?) on conflict(note_date) do update set "
                     "job_id = excluded.job_id, created_at = excluded.created_at, "
                     "result_json = excluded.result_json",
                     (day, job_id, now, json.dumps(result, ensure_ascii=False)))


def latest(conn: sqlite3.Connection, day: str) -> dict[str, Any] | None:
    row = conn.execute("select job_id, created_at, result_json from suggestions "
                       "where note_date = ?", (day,)).fetchone()
    if row is None:
        return None
    return {"job_id": row[0], "created_at": row[1], **json.loads(row[2])}
