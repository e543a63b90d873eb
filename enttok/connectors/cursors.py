"""
A connector's cursor in a few fields, for C{GET /connectors}.

The cursors themselves grow with what they cover (git keeps every branch tip
of every repository; GitHub a timestamp per repository), so clients get
counts and the newest time instead. A cursor of an unexpected shape (a
connector's older format, a hand-edited database) is summarised as far as it
goes, never refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Summary = dict[str, Any]


def _object(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _newest(values: Iterable[Any]) -> str | None:
    """The latest of the ISO-8601 UTC strings among C{values} (they sort as text)."""
    return max((v for v in values if isinstance(v, str)), default=None)


def git(cursor: Mapping[str, Any]) -> Summary:
    """C{{repositories, branches, newest_sync_at}} of the git cursor."""
    branches = [branch for repo in _mapping(cursor.get("repos")).values()
                for branch in _mapping(_mapping(repo).get("branches")).values()]
    return {"repositories": len(_mapping(cursor.get("repos"))), "branches": len(branches),
            "newest_sync_at": _newest(_mapping(b).get("synced_at") for b in branches)}


def calendar(cursor: Mapping[str, Any]) -> Summary:
    """C{{window: {start, end} or None, files, events}} of the calendar cursor."""
    window = cursor.get("window")
    bounds = (window if isinstance(window, list) and len(window) == 2
              and all(isinstance(b, str) for b in window) else None)
    return {"window": {"start": bounds[0], "end": bounds[1]} if bounds else None,
            "files": _count(cursor.get("files")), "events": _count(cursor.get("events"))}


def github(cursor: Mapping[str, Any]) -> Summary:
    """
    C{{since, repositories, newest, title_misses}} of the GitHub cursor:
    C{newest} is the latest issues or commits time of any repository.
    """
    repos = _mapping(cursor.get("repos"))
    return {"since": _text(cursor.get("since")), "repositories": len(repos),
            "newest": _newest(t for repo in repos.values() for t in _mapping(repo).values()),
            "title_misses": len(_mapping(cursor.get("title_misses")))}


#: Summaries of the built-in connectors' cursors, by connector id.
SUMMARIES: Mapping[str, Callable[[Mapping[str, Any]], Summary]] = {
    "git": git, "calendar": calendar, "github": github}


def summarize(connector_id: str, text: str | None) -> Summary | None:
    """
    The summary of connector C{connector_id}'s cursor C{text}; C{None} when it
    has none. Another plugin's cursor, of a shape unknown here, is given by
    its size alone (C{{"chars": n}}).
    """
    if text is None:
        return None
    summary = SUMMARIES.get(connector_id)
    return {"chars": len(text)} if summary is None else summary(_object(text))
