"""The calendar as an L{IConnector}: the C{connectors.calendar} settings, synced by window."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred, ensureDeferred
from zope.interface import implementer

from enttok.common.times import utc_iso
from enttok.connectors import activity
from enttok.connectors.calendar.parse import (
    SOURCE,
    Harvest,
    Window,
    read_calendars,
    stale_identities,
)
from enttok.connectors.interface import ConnectorDeps, IConnector, SectionSettings, Settings
from enttok.jobs.context import JobContext
from enttok.validation import Field, boolean, integer, optional

STATE_KEY = "calendar"

PAYLOAD = {
    "days_back": Field(optional(integer(0, 366)), None,
                       "Days before today to sync (default: the setting)."),
    "days_ahead": Field(optional(integer(0, 366)), None,
                        "Days after today to sync (default: the setting)."),
    "force": Field(boolean, False, "Parse the files even when they did not change."),
}



def user_zone(name: str | None) -> tzinfo:
    """The C{timezone} setting, or the system's zone."""
    if name:
        return ZoneInfo(name)
    local = datetime.now().astimezone().tzinfo
    return local if local is not None else UTC


def store_window(conn: sqlite3.Connection, harvest: Harvest, window: Window, now: str,
                 cursor: Mapping[str, Any]) -> tuple[int, int]:
    """
    Replace the calendar's items in C{window} by C{harvest}'s, keeping those of
    files that failed to read; move the cursor. One transaction.

    @return: (items new, items removed).
    """
    start, end = window.bounds()
    rows = conn.execute(
        "select identity, raw_json from activity where workspace = ? and source = ? "
        "and occurred_at >= ? and occurred_at < ?",
        (activity.DEFAULT_WORKSPACE, SOURCE, start, end)).fetchall()
    stale = stale_identities(rows, {i.identity for i in harvest.items},
                             set(harvest.files_failed))
    new = activity.save(conn, SOURCE, harvest.items, now, STATE_KEY, cursor, delete=stale)
    return new, len(stale)


@implementer(IConnector)
class CalendarConnector(SectionSettings):
    """Events of the C{.ics} files and folders in C{connectors.calendar.paths}."""

    connector_id = "calendar"
    display_name = "Calendar"
    payload_schema = PAYLOAD
    state_key = STATE_KEY

    def __init__(self, deps: ConnectorDeps) -> None:
        self._deps = deps

    def configured(self, settings: Settings) -> bool:
        return bool(self.section(settings)["paths"])

    def sync(self, ctx: JobContext) -> Deferred[dict[str, Any]]:
        return ensureDeferred(self._sync(ctx))

    async def _sync(self, ctx: JobContext) -> dict[str, Any]:
        settings = self._deps.settings()
        section = self.section(settings)
        days_back = ctx.payload["days_back"]
        days_ahead = ctx.payload["days_ahead"]
        zone = user_zone(settings.get("timezone"))
        now = self._deps.reactor.seconds()
        window = Window.around(now, zone, section["days_back"] if days_back is None
                               else days_back,
                               section["days_ahead"] if days_ahead is None else days_ahead)
        paths = list(section["paths"])
        state = await ctx.track(self._deps.db.run(activity.get_state, STATE_KEY))
        previous = activity.json_cursor(state)
        unless = None if ctx.payload["force"] else previous.get("fingerprint")
        ctx.progress(0.05, f"reading {len(paths)} calendar path(s)")
        harvest: Harvest = await ctx.run_blocking(read_calendars, paths, window, zone,
                                                  ctx.check_canceled, unless)
        start, end = window.bounds()
        if harvest.unchanged:
            await ctx.track(self._deps.db.run(activity.save, SOURCE, [], utc_iso(now),
                                              STATE_KEY, previous))
            return {"status": "unchanged", "items_new": 0, "events": previous.get("events", 0),
                    "removed": 0, "files": previous.get("files", 0),
                    "window": {"start": start, "end": end}, "warnings": []}
        for warning in harvest.warnings:
            ctx.warn(warning)
        ctx.progress(0.8, f"{len(harvest.items)} events in {len(harvest.files_read)} file(s)")
        cursor = {"window": [start, end], "files": len(harvest.files_read),
                  "events": len(harvest.items),
                  # With warnings, the next sync reads again (and warns again).
                  "fingerprint": None if harvest.warnings else harvest.fingerprint}
        new, removed = await ctx.track(self._deps.db.run(
            store_window, harvest, window, utc_iso(now), cursor))
        return {"status": "ok", "items_new": new, "events": len(harvest.items),
                "removed": removed, "files": len(harvest.files_read),
                "window": {"start": start, "end": end}, "warnings": harvest.warnings}

