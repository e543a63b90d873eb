"""SQL for activity items, sync cursors and ETags (runs on the database thread).

Items, the cursor that covers them and the ETag of the response they came from
are written in one transaction: a crash can never leave a cursor (or a 304)
pointing past items that were not stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from enttok.connectors import activity
from enttok.connectors.github.normalize import ActivityItem
from enttok.store.db import transaction

#: The kinds of item whose C{number} is a pull request's: they share its title.
PULL_KINDS = ("pr_opened", "pr_closed", "pr_merged", "pr_reviewed")
_IN_PULL_KINDS = f"kind in ({', '.join(repr(k) for k in PULL_KINDS)})"


def get_cursor(conn: sqlite3.Connection, connector: str) -> dict[str, Any]:
    row = conn.execute("select cursor from sync_state where connector = ?",
                       (connector,)).fetchone()
    if row is None or not row[0]:
        return {}
    try:
        cursor = json.loads(row[0])
    except ValueError:
        return {}
    return cursor if isinstance(cursor, dict) else {}


def get_etag(conn: sqlite3.Connection, url: str) -> str | None:
    row = conn.execute("select etag from http_cache where url = ?", (url,)).fetchone()
    return None if row is None else str(row[0])


def save(conn: sqlite3.Connection, workspace: str, items: Sequence[ActivityItem], now: str,
         connector: str | None = None, cursor: dict[str, Any] | None = None,
         etags: Sequence[tuple[str, str]] = ()) -> int:
    """
    Upsert C{items}; with C{cursor}, also move the connector's cursor; with
    C{etags}, remember (url, etag) validators. All in one transaction.

    @return: how many items were new.
    """
    with transaction(conn):
        before = conn.execute("select count(*) from activity").fetchone()[0]
        conn.executemany(
            "insert into activity (identity, workspace, source, kind, repo, number, title, url, "
            "occurred_at, raw_json, updated_at) values (?, ?, 'github', ?, ?, ?, ?, ?, ?, ?, ?) "
            # Events carry less than the issue lists (no PR titles): never blank a field.
            # (Titles still missing are filled in later: see untitled_pulls.)
            "on conflict(identity) do update set title = coalesce(excluded.title, title), "
            "url = coalesce(excluded.url, url), "
            "occurred_at = excluded.occurred_at, raw_json = excluded.raw_json, "
            "updated_at = excluded.updated_at",
            [(f"{workspace}:{i.identity}", workspace, i.kind, i.repo, i.number, i.title, i.url,
              i.occurred_at, json.dumps(i.raw, ensure_ascii=False), now) for i in items])
        new = conn.execute("select count(*) from activity").fetchone()[0] - before
        if connector is not None and cursor is not None:
            conn.execute(
                "insert into sync_state (connector, cursor, last_sync_at) values (?, ?, ?) "
                "on conflict(connector) do update set cursor = excluded.cursor, "
                "last_sync_at = excluded.last_sync_at",
                (connector, json.dumps(cursor, sort_keys=True), now))
        conn.executemany(
            "insert into http_cache (url, etag, updated_at) values (?, ?, ?) "
            "on conflict(url) do update set etag = excluded.etag, updated_at = excluded.updated_at",
            [(url, etag, now) for url, etag in etags])
    return int(new)


def untitled_pulls(conn: sqlite3.Connection, workspace: str, now: str,
                   limit: int) -> list[tuple[str, int]]:
    """
    Give each pull-request item without a title the title another item of the
    same pull request has, then list the pull requests still without one.

    @return: at most C{limit} C{(repo, number)}, the most recent activity first.
    """
    with transaction(conn):
        known = conn.execute(
            # A bare column beside max() comes from the row holding the max:
            # the title most recently stored.
            f"select repo, number, title, max(updated_at) from activity "
            f"where workspace = ? and {_IN_PULL_KINDS} and title is not null "
            f"and repo is not null and number is not null group by repo, number",
            (workspace,)).fetchall()
        untitled = {(r[0], r[1]) for r in conn.execute(
            f"select distinct repo, number from activity where workspace = ? "
            f"and {_IN_PULL_KINDS} and title is null", (workspace,))}
        conn.executemany(
            f"update activity set title = ?, updated_at = ? where workspace = ? "
            f"and repo = ? and number = ? and {_IN_PULL_KINDS} and title is null",
            [(title, now, workspace, repo, number) for repo, number, title, _ in known
             if (repo, number) in untitled])
    rows = conn.execute(
        f"select repo, number, max(occurred_at) as newest from activity "
        f"where workspace = ? and {_IN_PULL_KINDS} and title is null "
        f"and repo is not null and number is not null "
        f"group by repo, number order by newest desc, repo, number limit ?",
        (workspace, limit)).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def set_pull_title(conn: sqlite3.Connection, workspace: str, repo: str, number: int,
                   title: str, url: str | None, now: str) -> int:
    """
    Title the items of one pull request that have none (and give those without
    a URL C{url}).

    @return: how many items were titled.
    """
    with transaction(conn):
        cursor = conn.execute(
            f"update activity set title = ?, url = coalesce(url, ?), updated_at = ? "
            f"where workspace = ? and repo = ? and number = ? and {_IN_PULL_KINDS} "
            f"and title is null", (title, url, now, workspace, repo, number))
    return int(cursor.rowcount)


def list_activity(conn: sqlite3.Connection, workspace: str, start: str, end: str,
                  repo: str | None = None, kinds: Sequence[str] = (),
                  limit: int = 1000) -> list[dict[str, Any]]:
    """Items of every source in C{[start, end)}: see L{activity.list_items}."""
    return activity.list_items(conn, workspace, start, end, repo, kinds, limit=limit)
