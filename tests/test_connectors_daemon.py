"""The real daemon: turning the calendar on syncs it at once, and GET /connectors says so."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.daemonsupport import start

#: Seconds the first sync may take on a loaded machine.
SYNC_WAIT = 60.0


def daily_ics(first: datetime) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//enttok tests//EN\r\n"
            "BEGIN:VEVENT\r\nUID:daily-standup\r\n"
            f"DTSTART:{first:%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{first + timedelta(minutes=15):%Y%m%dT%H%M%SZ}\r\n"
            "RRULE:FREQ=DAILY;COUNT=30\r\nSUMMARY:데일리 스탠드업\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n")


class CalendarDaemonTests(SynchronousTestCase):
    def calendar_state(self, daemon: Any) -> dict[str, Any]:
        listing = daemon.ok("GET", "/connectors")["connectors"]
        self.assertEqual([c["id"] for c in listing], ["github", "git", "calendar"])
        state: dict[str, Any] = listing[2]
        return state

    def test_turned_on_syncs_and_is_listed(self) -> None:
        today = datetime.now(UTC).date()
        first = datetime(today.year, today.month, today.day, 12, tzinfo=UTC) - timedelta(days=3)
        folder = Path(self.mktemp()).absolute()
        (folder / "캘린더").mkdir(parents=True)
        (folder / "캘린더" / "work.ics").write_text(daily_ics(first), encoding="utf-8")
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir()
        daemon = start(self, data_dir)
        before = self.calendar_state(daemon)
        self.assertEqual((before["configured"], before["enabled"], before["last_job"]),
                         (False, False, None))

        daemon.ok("POST", "/settings", {"timezone": "UTC", "connectors": {"calendar": {
            "enabled": True, "paths": [str(folder)]}}})
        deadline = time.monotonic() + SYNC_WAIT
        state = self.calendar_state(daemon)
        while (state["last_job"] or {}).get("status") not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                self.fail(f"no finished calendar sync after {SYNC_WAIT} s: {state}")
            time.sleep(0.1)
            state = self.calendar_state(daemon)
        self.assertEqual(state["last_job"]["status"], "succeeded", state)
        self.assertEqual((state["configured"], state["enabled"], state["interval_minutes"],
                          state["last_error"]), (True, True, 30, None))
        self.assertIsNotNone(state["last_sync_at"])
        job = daemon.job(state["last_job"]["job_id"])
        # Days -3 .. +14 of the window [today - 7, today + 15) in UTC.
        self.assertEqual((job["result"]["events"], job["result"]["warnings"]), (18, []))
        items = daemon.ok("GET", f"/activity?date={today.isoformat()}")["items"]
        self.assertEqual([(i["kind"], i["title"], i["occurred_at"]) for i in items],
                         [("event", "데일리 스탠드업", f"{today.isoformat()}T12:00:00Z")])
