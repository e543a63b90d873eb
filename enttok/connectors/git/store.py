"""Writing one repository's commits and its cursor (database thread)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import frozen

from enttok.connectors import activity
from enttok.connectors.activity import Activity
from enttok.connectors.git.parse import Commit

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
    The stored record of a change seen again: the lists of branches, commits and
    repositories it was seen in grow; the subject is the most recently committed
    version's (an amended message wins); the rest stays as first stored.
    """
    merged = {**new, **old}
    for key in _GROWING:
        merged[key] = _union(old.get(key), new.get(key) or [])
    if str(new.get("committed_at") or "") > str(old.get("committed_at") or ""):
        merged["subject"] = new.get("subject")
        merged["committed_at"] = new.get("committed_at")
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


@frozen
class ReadWalk:
    """
    The commits one walk read on C{branch}, and their patch ids by sha (a
    commit without one changed nothing: it stands for itself).
    """

    branch: str
    commits: Sequence[Commit]
    patch_ids: Mapping[str, str]


def commit_item(commit: Commit, patch_id: str | None, repo: str, path: str,
                branch: str) -> Activity:
    """The activity row of C{commit} seen on C{branch} of the repository at C{path}."""
    return Activity(
        identity=f"git:{patch_id or commit.sha}", kind="commit", title=commit.subject,
        occurred_at=commit.authored_at, repo=repo,
        raw={"sha": commit.sha, "shas": [commit.sha], "patch_id": patch_id,
             "branch": branch, "branches": [branch], "repo": repo, "repos": [repo],
             "path": path, "subject": commit.subject, "author_email": commit.author_email,
             "author_name": commit.author_name, "committed_at": commit.committed_at,
             "files": list(commit.files), "files_changed": commit.files_changed,
             "insertions": commit.insertions, "deletions": commit.deletions})


def _merged(identity: str, occurred_at: str, raw: Mapping[str, Any], later: Activity) -> Activity:
    """One item for two sightings of a change (see L{merge_raw}), at the earliest time."""
    merged = merge_raw(raw, later.raw)
    return Activity(identity, later.kind, merged.get("subject", later.title),
                    min(occurred_at, later.occurred_at), merged, merged.get("repo", later.repo))


def items_of(walks: Sequence[ReadWalk], repo: str, path: str) -> list[Activity]:
    """One item per change (patch id) among the commits of C{walks}, in their order."""
    items: dict[str, Activity] = {}
    for walk in walks:
        for commit in walk.commits:
            item = commit_item(commit, walk.patch_ids.get(commit.sha), repo, path, walk.branch)
            earlier = items.get(item.identity)
            items[item.identity] = item if earlier is None else _merged(
                item.identity, earlier.occurred_at, earlier.raw, item)
    return list(items.values())


def save_repo(conn: sqlite3.Connection, walks: Sequence[ReadWalk], repo: str, path: str,
              now: str, state_key: str, cursor: Mapping[str, Any]) -> int:
    """
    Upsert the commits read in one repository (built here, off the reactor
    thread), merged into what is stored under the same identity (the earliest
    time is kept), and set the connector's cursor, in one transaction.

    @return: how many items were new.
    """
    items = items_of(walks, repo, path)
    stored = _existing(conn, [item.identity for item in items])
    merged = []
    for item in items:
        occurred, raw = stored.get(item.identity, (None, None))
        merged.append(_merged(item.identity, occurred, raw, item)
                      if occurred is not None and isinstance(raw, dict) else item)
    return activity.save(conn, SOURCE, merged, now, state_key, cursor)


def get_cursor(conn: sqlite3.Connection, state_key: str) -> dict[str, Any]:
    return activity.json_cursor(activity.get_state(conn, state_key))
