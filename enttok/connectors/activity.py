"""Normalised activity items and the sync cursor, written together (database thread).

Items and the cursor that covers them are written in one transaction, so a
crash never leaves a cursor pointing past items that were not stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from enttok.store.db import transaction

DEFAULT_WORKSPACE = "default"


@frozen
class Activity:
    """
    One row of the C{activity} table.

    @ivar identity: unique across sources, prefixed by the source
        (C{"git:<patch-id>"}, C{"calendar:<uid>:<start>"}).
    @ivar occurred_at: ISO-8601 UTC (C{2024-05-01T09:00:00Z}).
    """

    identity: str
    kind: str
    title: str | None
    occurred_at: str
    raw: Mapping[str, Any] = field(factory=dict)
    repo: str | None = None
    number: int | None = None
    url: str | None = None


@frozen
class SyncState:
    """A connector's C{sync_state} row (C{None}s when it never synced)."""

    cursor: str | None
    last_sync_at: str | None


def get_state(conn: sqlite3.Connection, key: str) -> SyncState:
    row = conn.execute("select cursor, last_sync_at from sync_state where connector = ?",
                       (key,)).fetchone()
    return SyncState(None, None) if row is None else SyncState(row[0], row[1])


def json_cursor(state: SyncState) -> dict[str, Any]:
    """The cursor as the JSON object it was saved as (C{{}} when absent or not one)."""
    try:
        cursor = json.loads(state.cursor or "")
    except ValueError:
        return {}
    return cursor if isinstance(cursor, dict) else {}


def save(conn: sqlite3.Connection, source: str, items: Sequence[Activity], now: str,
         state_key: str | None = None, cursor: str | Mapping[str, Any] | None = None,
         delete: Sequence[str] = (), workspace: str = DEFAULT_WORKSPACE) -> int:
    """
    Upsert C{items} of C{source}; with C{state_key}, set its cursor (a mapping is
    stored as JSON) and C{last_sync_at}; first delete the source's items whose
    identities are in C{delete} (what the source no longer has). All in one
    transaction.

    @return: how many items were new.
    """
    with transaction(conn):
        conn.executemany("delete from activity where identity = ? and source = ?",
                         [(i, source) for i in delete])
        before = conn.execute("select count(*) from activity").fetchone()[0]
        conn.executemany(
            "insert into activity (identity, workspace, source, kind, repo, number, title, url, "
            "occurred_at, raw_json, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict(identity) do update set kind = excluded.kind, repo = excluded.repo, "
            "number = excluded.number, title = excluded.title, url = excluded.url, "
            "occurred_at = excluded.occurred_at, raw_json = excluded.raw_json, "
            "updated_at = excluded.updated_at",
            [(i.identity, workspace, source, i.kind, i.repo, i.number, i.title, i.url,
              i.occurred_at, json.dumps(dict(i.raw), ensure_ascii=False, sort_keys=True), now)
             for i in items])
        new = conn.execute("select count(*) from activity").fetchone()[0] - before
        if state_key is not None:
            text = cursor if cursor is None or isinstance(cursor, str) else json.dumps(
                dict(cursor), sort_keys=True, ensure_ascii=False)
            conn.execute(
                "insert into sync_state (connector, cursor, last_sync_at) values (?, ?, ?) "
                "on conflict(connector) do update set cursor = excluded.cursor, "
                "last_sync_at = excluded.last_sync_at", (state_key, text, now))
    return int(new)


#: The C{source} values the built-in connectors write (C{GET /activity?source=}).
SOURCES = ("github", "git", "calendar")


def public_id(source: str, identity: str) -> str:
    """
    The id clients see: a GitHub identity without its C{"{workspace}:"}
    prefix (as it always was), any other source's identity whole
    (C{"git:<patch-id>"}, C{"calendar:<uid>:<start>"}).
    """
    return identity.split(":", 1)[1] if source == "github" else identity


def list_items(conn: sqlite3.Connection, workspace: str, start: str, end: str,
               repo: str | None = None, kinds: Sequence[str] = (),
               sources: Sequence[str] = (), limit: int = 1000) -> list[dict[str, Any]]:
    """
    Items of every source with C{start <= occurred_at < end} (UTC ISO
    strings), oldest first; C{repo}, C{kinds} and C{sources} narrow them
    when given.
    """
    where = ["workspace = ?", "occurred_at >= ?", "occurred_at < ?"]
    args: list[Any] = [workspace, start, end]
    if repo:
        where.append("repo = ?")
        args.append(repo)
    for column, values in (("kind", kinds), ("source", sources)):
        if values:
            where.append(f"{column} in ({','.join('?' * len(values))})")
            args.extend(values)
    rows = conn.execute(
        f"select source, kind, repo, number, title, url, occurred_at, identity from activity "
        f"where {' and '.join(where)} order by occurred_at, item_id limit ?",
        (*args, limit)).fetchall()
    return [{"source": r[0], "kind": r[1], "repo": r[2], "number": r[3], "title": r[4],
             "url": r[5], "occurred_at": r[6], "id": public_id(r[0], r[7])} for r in rows]
