"""Writing one repository's commits and its cursor (database thread)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from enttok.connectors import activity
from enttok.connectors.activity import Activity

SOURCE = "git"
#: Identities looked up per query (SQLite's default limit on variables is 999+).
_CHUNK = 500
#: Lists in C{raw_json} that grow as a commit is seen again (on a branch, rebased).
_GROWING = ("branches", "shas", "repos")


def _union(old: Any, new: Iterable[Any]) -> list[Any]:
    merged = list(old) if isinstance(old, list) else []
    merged += [value for value in new if value not in merged]
    return merged


def merge_raw(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """
    The stored record of a commit seen again: the lists of branches, commits and
    repositories it was seen in grow; the rest is the earliest sighting's.
    """
    merged = {**new, **old}
    for key in _GROWING:
        merged[key] = _union(old.get(key), new.get(key) or [])
    return merged


def _existing(conn: sqlite3.Connection, identities: Sequence[str]) -> dict[str, tuple[str, Any]]:
    """C{{identity: (occurred_at, raw)}} of those already stored."""
    found: dict[str, tuple[str, Any]] = {}
    for start in range(0, len(identities), _CHUNK):
        chunk = identities[start:start + _CHUNK]
        for identity, occurred, raw in conn.execute(
                f"select identity, occurred_at, raw_json from activity where identity in "
                f"({','.join('?' * len(chunk))})", chunk):
            try:
                found[identity] = (occurred, json.loads(raw))
            except ValueError:
                continue
    return found


def save_repo(conn: sqlite3.Connection, items: Sequence[Activity], now: str, state_key: str,
              cursor: Mapping[str, Any]) -> int:
    """
    Upsert one repository's commits, merged into what is stored under the same
    identity (the earliest time is kept), and set the connector's cursor, in
    one transaction.

    @return: how many items were new.
    """
    stored = _existing(conn, [item.identity for item in items])
    merged = []
    for item in items:
        if item.identity in stored:
            occurred, raw = stored[item.identity]
            if isinstance(raw, dict):
                item = Activity(item.identity, item.kind, raw.get("subject", item.title),
                                min(occurred, item.occurred_at), merge_raw(raw, item.raw),
                                raw.get("repo", item.repo), item.number, item.url)
        merged.append(item)
    return activity.save(conn, SOURCE, merged, now, state_key, cursor)


def get_cursor(conn: sqlite3.Connection, state_key: str) -> dict[str, Any]:
    return activity.json_cursor(activity.get_state(conn, state_key))
