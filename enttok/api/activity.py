"""Parsing and answering for C{GET /activity}: stored items, days in the user's time zone."""

from __future__ import annotations

from datetime import date
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from enttok.api.errors import APIError
from enttok.api.requests import json_bytes, query_arg, query_day, refuse_unknown_args
from enttok.common.times import day_bounds, user_timezone
from enttok.connectors import activity as activity_store
from enttok.store import Database

_PARAMS = {"date", "from", "to", "repo", "kind", "source", "workspace_id"}
#: Python 3.11's date.fromisoformat also takes 20240501 and 2024-W18-3.
MAX_DAYS = 366


def _sources(request: IRequest) -> list[str]:
    """The comma-separated C{source} filter, each a known source (400 otherwise)."""
    sources = [s for s in (query_arg(request, "source") or "").split(",") if s]
    unknown = sorted(set(sources) - set(activity_store.SOURCES))
    if unknown:
        raise APIError(400, "invalid_query",
                       f"unknown source {unknown[0]!r}: one of {', '.join(activity_store.SOURCES)}",
                       {"field": "source"})
    return sources


def activity(db: Database, request: IRequest, timezone: str | None,
             today: date) -> Deferred[bytes]:
    """
    Answer C{GET /activity}: the items of every source (or those of
    C{source}) in the days asked, whose bounds are in C{timezone}.

    @raise APIError: 400 on an unknown argument, a bad day or range, an unknown source.
    """
    refuse_unknown_args(request, _PARAMS)
    day, first, last = (query_day(request, name) for name in ("date", "from", "to"))
    if day is not None and (first or last):
        raise APIError(400, "invalid_query", "give date, or from/to, not both",
                       {"field": "date"})
    first = day or first or last or today
    last = day or last or first
    if last < first or (last - first).days >= MAX_DAYS:
        raise APIError(400, "invalid_query", f"from..to must be 1 to {MAX_DAYS} days",
                       {"field": "to"})
    kinds = [k for k in (query_arg(request, "kind") or "").split(",") if k]
    sources = _sources(request)
    start, end = day_bounds(first, last, user_timezone(timezone))
    d = db.run(activity_store.list_items,
               query_arg(request, "workspace_id") or activity_store.DEFAULT_WORKSPACE,
               start, end, query_arg(request, "repo"), kinds, sources)

    def answer(items: list[dict[str, Any]]) -> bytes:
        return json_bytes(request, {"from": first.isoformat(), "to": last.isoformat(),
                                    "timezone": timezone or "system", "items": items})

    return d.addCallback(answer)
