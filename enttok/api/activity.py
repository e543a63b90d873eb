"""Parsing and answering for C{GET /activity}: stored items, days in the user's time zone."""

from __future__ import annotations

from datetime import date
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from enttok.api.errors import APIError
from enttok.api.requests import json_bytes, query_arg, query_day, refuse_unknown_args
from enttok.common.times import day_bounds, user_timezone
from enttok.connectors.github import store as gh_store
from enttok.store import Database

_PARAMS = {"date", "from", "to", "repo", "kind", "workspace_id"}
#: Python 3.11's date.fromisoformat also takes 20240501 and 2024-W18-3.
MAX_DAYS = 366


def activity(db: Database, request: IRequest, timezone: str | None,
             today: date) -> Deferred[bytes]:
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
    start, end = day_bounds(first, last, user_timezone(timezone))
    d = db.run(gh_store.list_activity, query_arg(request, "workspace_id") or "default", start, end,
               query_arg(request, "repo"), kinds)

    def answer(items: list[dict[str, Any]]) -> bytes:
        return json_bytes(request, {"from": first.isoformat(), "to": last.isoformat(),
                                    "timezone": timezone or "system", "items": items})

    return d.addCallback(answer)
