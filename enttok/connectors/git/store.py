"""One repository's commits as activity items (on a thread), and their write with the cursor."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import frozen

from enttok.connectors import activity
from enttok.connectors.activity import Activity
from enttok.connectors.git.parse import Commit, parse_log, parse_patch_ids

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
    What one walk read on C{branch}: C{git log} output (see
    L{enttok.connectors.git.parse.LOG_OPTIONS}) and C{git patch-id} output.
    """

    branch: str
    log: bytes
    patch_ids: bytes


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


def items_of(walks: Sequence[ReadWalk], repo: str, path: str) -> tuple[list[Activity], int]:
    """
    Parse what C{walks} read (blocking: run it on a thread): one item per change
    (patch id; a commit without one changed nothing and stands for itself), in
    the order read.

    @return: the items, and how many commits they stand for.
    @raise BadLogOutput: when the output is not what was asked for.
    """
    items: dict[str, Activity] = {}
    count = 0
    for walk in walks:
        ids = parse_patch_ids(walk.patch_ids)
        commits = parse_log(walk.log)
        count += len(commits)
        for commit in commits:
            item = commit_item(commit, ids.get(commit.sha), repo, path, walk.branch)
            earlier = items.get(item.identity)
            items[item.identity] = item if earlier is None else _merged(
                item.identity, earlier.occurred_at, earlier.raw, item)
    return list(items.values()), count


def save_items(conn: sqlite3.Connection, items: Sequence[Activity], now: str, state_key: str,
               cursor: Mapping[str, Any]) -> int:
    """
    Upsert one repository's items, merged into what is stored under the same
    identity (see L{merge_raw}; the earliest time is kept), and set the
    connector's cursor, in one transaction.

    @return: how many items were new.
    """
    stored = _existing(conn, [item.identity for item in items])
    merged = []
    for item in items:
        occurred, raw = stored.get(item.identity, (None, None))
        merged.append(_merged(item.identity, occurred, raw, item)
                      if occurred is not None and isinstance(raw, dict) else item)
    return activity.save(conn, SOURCE, merged, now, state_key, cursor)


def get_cursor(conn: sqlite3.Connection, state_key: str) -> dict[str, Any]:
    return activity.json_cursor(activity.get_state(conn, state_key))
