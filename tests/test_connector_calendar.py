"""connector.calendar.sync: events of .ics files, recurrences expanded in a window."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors.calendar.connector import CalendarConnector
from enttok.connectors.calendar.parse import read_calendars
from enttok.connectors.interface import ConnectorDeps
from enttok.connectors.loader import connector_job
from enttok.settings import SettingsStore
from enttok.threads import run_inline
from enttok.validation import ValidationError
from tests.jobsupport import Harness, ManualRunner

JOB = "connector.calendar.sync"

# The harness clock stands at 2024-05-01T12:00:00Z: 21:00 on Wednesday 1 May in Seoul.
# With the defaults (7 days back, 14 ahead) the window is Seoul's 24 April to 15 May.

WEEKLY_SEOUL = """BEGIN:VEVENT
UID:weekly-seoul
DTSTART;TZID=Asia/Seoul:20240422T100000
DTEND;TZID=Asia/Seoul:20240422T110000
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10
EXDATE;TZID=Asia/Seoul:20240506T100000
SUMMARY:주간 팀 회의
LOCATION:회의실 3
END:VEVENT
"""

WEEKLY_NEW_YORK = """BEGIN:VEVENT
UID:weekly-ny
DTSTART;TZID=America/New_York:20240301T090000
DTEND;TZID=America/New_York:20240301T093000
RRULE:FREQ=WEEKLY;BYDAY=FR
SUMMARY:NY standup
END:VEVENT
"""

ALL_DAY = """BEGIN:VEVENT
UID:all-day
DTSTART;VALUE=DATE:20240502
DTEND;VALUE=DATE:20240503
SUMMARY:어린이날 준비
END:VEVENT
"""

ONE_OFF = """BEGIN:VEVENT
UID:one-off
DTSTART:20240502T050000Z
DTEND:20240502T060000Z
SUMMARY:Design review
END:VEVENT
"""


def calendar(*events: str, name: str | None = None) -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//enttok tests//EN\r\n"
    if name:
        head += f"X-WR-CALNAME:{name}\r\n"
    body = "".join(e.replace("\n", "\r\n") for e in events)
    return head + body + "END:VCALENDAR\r\n"


class CalendarCase(SynchronousTestCase):
    runner: Any = staticmethod(run_inline)

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir()
        self.settings = SettingsStore(self.folder / "settings.json", run_inline)
        self.successResultOf(self.settings.update({"timezone": "Asia/Seoul"}))
        self.harness()

    def harness(self) -> None:
        def types(h: Harness) -> list[Any]:
            self.connector = CalendarConnector(ConnectorDeps(
                h.clock, h.db, lambda: self.settings.current, None))  # type: ignore[arg-type]
            return [connector_job(self.connector)]

        self.h = Harness(self, path=str(self.folder / "index.db"), runner=self.runner,
                         extra_types=types)
        self.h.engine.startService()
        self.addCleanup(self.h.engine.stopService)

    def write(self, name: str, text: str) -> str:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return str(path)

    def use(self, *paths: str) -> None:
        self.successResultOf(self.settings.update(
            {"connectors": {"calendar": {"enabled": True, "paths": list(paths)}}}))

    def sync(self, payload: Any = None) -> dict[str, Any]:
        job_id, _ = self.h.submit(self, JOB, payload)
        job = self.h.stored(job_id)
        self.assertEqual(job.status, "succeeded", job.error)
        result: dict[str, Any] = job.result
        return result

    def events(self) -> dict[str, tuple[str | None, str, dict[str, Any]]]:
        rows = self.h.db.connection.execute(
            "select identity, title, occurred_at, raw_json, kind, workspace from activity "
            "where source = 'calendar' order by occurred_at, identity").fetchall()
        for row in rows:
            self.assertEqual((row[4], row[5]), ("event", "default"))
        return {r[0]: (r[1], r[2], json.loads(r[3])) for r in rows}


class ExpansionTests(CalendarCase):
    def test_weekly_with_exdate_in_seoul(self) -> None:
        self.use(self.write("work.ics", calendar(WEEKLY_SEOUL, name="업무")))
        result = self.sync()
        events = self.events()
        # 22 April is before the window; 6 May is excluded; 10:00 KST is 01:00 UTC.
        self.assertEqual([e[1] for e in events.values()],
                         ["2024-04-29T01:00:00Z", "2024-05-13T01:00:00Z"])
        self.assertEqual(sorted(events), ["calendar:weekly-seoul:2024-04-29T01:00:00Z",
                                          "calendar:weekly-seoul:2024-05-13T01:00:00Z"])
        title, _, raw = events["calendar:weekly-seoul:2024-04-29T01:00:00Z"]
        self.assertEqual(title, "주간 팀 회의")
        self.assertEqual((raw["start"], raw["end"], raw["all_day"], raw["location"],
                          raw["uid"], raw["calendar_name"]),
                         ("2024-04-29T10:00:00+09:00", "2024-04-29T02:00:00Z", False,
                          "회의실 3", "weekly-seoul", "업무"))
        self.assertEqual(raw["recurrence_id"], "2024-04-29T01:00:00Z")
        self.assertEqual((result["items_new"], result["events"], result["files"],
                          result["warnings"]), (2, 2, 1, []))
        self.assertEqual(result["window"], {"start": "2024-04-23T15:00:00Z",
                                            "end": "2024-05-15T15:00:00Z"})

    def test_new_york_across_daylight_saving(self) -> None:
        self.use(self.write("ny.ics", calendar(WEEKLY_NEW_YORK)))
        self.sync({"days_back": 70, "days_ahead": 0})
        starts = [e[1] for e in self.events().values()]
        # EST (UTC-5) until 10 March 2024, then EDT (UTC-4).
        self.assertEqual(starts[:3], ["2024-03-01T14:00:00Z", "2024-03-08T14:00:00Z",
                                      "2024-03-15T13:00:00Z"])
        self.assertEqual(starts[-1], "2024-04-26T13:00:00Z")
        self.assertEqual(len(starts), 9)

    def test_all_day_and_floating_events_are_read_in_the_users_zone(self) -> None:
        floating = ("BEGIN:VEVENT\nUID:floating\nDTSTART:20240503T090000\n"
                    "DURATION:PT30M\nSUMMARY:Floating\nEND:VEVENT\n")
        self.use(self.write("days.ics", calendar(ALL_DAY, floating)))
        self.sync()
        events = self.events()
        title, start, raw = events["calendar:all-day:2024-05-01T15:00:00Z"]
        self.assertEqual((title, start, raw["all_day"], raw["start"], raw["end"]),
                         ("어린이날 준비", "2024-05-01T15:00:00Z", True, "2024-05-02",
                          "2024-05-02T15:00:00Z"))
        self.assertEqual(events["calendar:floating:2024-05-03T00:00:00Z"][1],
                         "2024-05-03T00:00:00Z")
        self.successResultOf(self.settings.update({"timezone": "America/New_York"}))
        self.sync()
        self.assertIn("calendar:floating:2024-05-03T13:00:00Z", self.events())

    def test_decomposed_korean_is_stored_composed(self) -> None:
        nfd = unicodedata.normalize("NFD", "주간 팀 회의")
        self.use(self.write("nfd.ics", calendar(WEEKLY_SEOUL.replace("주간 팀 회의", nfd))))
        self.sync()
        titles = {e[0] for e in self.events().values()}
        self.assertEqual(titles, {"주간 팀 회의"})

    def test_moved_occurrence_keeps_its_recurrence_identity(self) -> None:
        moved = ("BEGIN:VEVENT\nUID:weekly-seoul\n"
                 "RECURRENCE-ID;TZID=Asia/Seoul:20240429T100000\n"
                 "DTSTART;TZID=Asia/Seoul:20240430T150000\n"
                 "DTEND;TZID=Asia/Seoul:20240430T160000\nSUMMARY:주간 팀 회의 (화요일)\n"
                 "END:VEVENT\n")
        self.use(self.write("work.ics", calendar(WEEKLY_SEOUL, moved)))
        self.sync()
        title, start, raw = self.events()["calendar:weekly-seoul:2024-04-29T01:00:00Z"]
        self.assertEqual((title, start, raw["recurrence_id"]),
                         ("주간 팀 회의 (화요일)", "2024-04-30T06:00:00Z", "2024-04-29T01:00:00Z"))
        self.assertEqual(len(self.events()), 2)

    def test_cancelled_events_are_left_out(self) -> None:
        cancelled = ONE_OFF.replace("SUMMARY:", "STATUS:CANCELLED\nSUMMARY:")
        self.use(self.write("c.ics", calendar(cancelled, ALL_DAY)))
        self.sync()
        self.assertEqual([e[0] for e in self.events().values()], ["어린이날 준비"])


class ResyncTests(CalendarCase):
    def test_events_removed_from_the_file_disappear(self) -> None:
        path = self.write("work.ics", calendar(WEEKLY_SEOUL, ONE_OFF))
        self.use(path)
        self.assertEqual(self.sync()["items_new"], 3)
        self.write("work.ics", calendar(WEEKLY_SEOUL.replace(
            "EXDATE;TZID=Asia/Seoul:20240506T100000", "EXDATE;TZID=Asia/Seoul:20240513T100000")))
        self.h.clock.advance(60)
        result = self.sync()
        self.assertEqual((result["items_new"], result["removed"]), (1, 2))
        self.assertEqual(sorted(self.events()), ["calendar:weekly-seoul:2024-04-29T01:00:00Z",
                                                 "calendar:weekly-seoul:2024-05-06T01:00:00Z"])

    def test_a_sync_twice_adds_nothing_and_moves_the_cursor(self) -> None:
        self.use(self.write("work.ics", calendar(WEEKLY_SEOUL)))
        self.sync()
        self.h.clock.advance(3600)
        result = self.sync()
        self.assertEqual((result["items_new"], result["removed"], result["events"]), (0, 0, 2))
        cursor, last = self.h.db.connection.execute(
            "select cursor, last_sync_at from sync_state where connector = 'calendar'"
        ).fetchone()
        self.assertEqual(last, "2024-05-01T13:00:00Z")
        self.assertEqual(json.loads(cursor)["events"], 2)

    def test_events_outside_the_window_are_kept(self) -> None:
        self.use(self.write("work.ics", calendar(WEEKLY_SEOUL, ONE_OFF)))
        self.sync()
        # A month later the old window's events are history, not deletions.
        self.h.clock.advance(30 * 86400)
        self.write("work.ics", calendar(ALL_DAY))
        self.assertEqual(self.sync()["removed"], 0)
        self.assertEqual(len(self.events()), 3)


class UnchangedTests(CalendarCase):
    def test_unchanged_files_are_not_parsed_again(self) -> None:
        path = self.write("work.ics", calendar(WEEKLY_SEOUL))
        self.use(path)
        self.assertEqual(self.sync()["status"], "ok")
        self.h.clock.advance(1800)
        again = self.sync()
        self.assertEqual((again["status"], again["events"], again["files"], again["removed"]),
                         ("unchanged", 2, 1, 0))
        last = self.h.db.connection.execute(
            "select last_sync_at from sync_state where connector = 'calendar'").fetchone()[0]
        self.assertEqual(last, "2024-05-01T12:30:00Z")
        self.assertEqual(self.sync({"force": True})["status"], "ok")

    def test_a_change_of_content_or_window_is_read(self) -> None:
        path = self.write("work.ics", calendar(WEEKLY_SEOUL))
        self.use(path)
        self.sync()
        # Same size, same modification second: only the content tells.
        stat = os.stat(path)
        self.write("work.ics", calendar(WEEKLY_SEOUL.replace("20240506T1", "20240513T1")))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        changed = self.sync()
        self.assertEqual((changed["status"], changed["items_new"], changed["removed"]),
                         ("ok", 1, 1))
        self.h.clock.advance(86400)  # tomorrow: the window moves
        self.assertEqual(self.sync()["status"], "ok")
        self.assertEqual(self.sync()["status"], "unchanged")

    def test_with_a_warning_every_sync_reads_and_warns(self) -> None:
        self.use(self.write("work.ics", calendar(WEEKLY_SEOUL)), str(self.folder / "gone.ics"))
        for _ in range(2):
            result = self.sync()
            self.assertEqual((result["status"], len(result["warnings"])), ("ok", 1))


class ProblemTests(CalendarCase):
    def test_bad_paths_and_unparsable_files_are_warnings(self) -> None:
        good = self.write("good.ics", calendar(ONE_OFF))
        bad = self.write("bad.ics", "BEGIN:VCALENDAR\r\nthis is not a calendar\r\n")
        missing = str(self.folder / "없는 파일.ics")
        self.use(missing, bad, good)
        result = self.sync()
        self.assertEqual(len(result["warnings"]), 2)
        self.assertIn("없는 파일.ics: no such file or folder", result["warnings"][0])
        self.assertTrue(result["warnings"][1].startswith(f"{bad}: cannot be read"))
        self.assertEqual(list(self.events()), ["calendar:one-off:2024-05-02T05:00:00Z"])

    def test_a_file_that_fails_keeps_its_events_until_it_reads_again(self) -> None:
        path = self.write("work.ics", calendar(WEEKLY_SEOUL))
        self.use(path)
        self.sync()
        self.write("work.ics", "garbage")
        result = self.sync()
        self.assertEqual((result["removed"], len(result["warnings"])), (0, 1))
        self.assertEqual(len(self.events()), 2)
        self.write("work.ics", calendar(ALL_DAY))
        self.assertEqual(self.sync()["removed"], 2)

    def test_payload_is_validated(self) -> None:
        with self.assertRaises(ValidationError) as caught:
            self.h.registry.get(JOB).validate({"days_back": -1})
        self.assertEqual(caught.exception.field, "payload.days_back")
        with self.assertRaises(ValidationError):
            self.h.registry.get(JOB).validate({"path": "/etc"})


class FolderTests(CalendarCase):
    def test_folders_are_searched_with_korean_and_decomposed_names(self) -> None:
        nfd_name = unicodedata.normalize("NFD", "개인 일정.ics")
        self.write(os.path.join("cals", "sub", nfd_name), calendar(ALL_DAY))
        self.write(os.path.join("cals", "업무.ICS"), calendar(ONE_OFF))
        self.write(os.path.join("cals", ".hidden", "x.ics"), calendar(WEEKLY_SEOUL))
        self.write(os.path.join("cals", "notes.txt"), calendar(WEEKLY_NEW_YORK))
        self.use(str(self.folder / "cals"))
        result = self.sync()
        self.assertEqual(result["files"], 2)
        self.assertEqual(sorted(self.events()), ["calendar:all-day:2024-05-01T15:00:00Z",
                                                 "calendar:one-off:2024-05-02T05:00:00Z"])
        files = {raw["calendar"] for _, _, raw in self.events().values()}
        self.assertIn(str(self.folder / "cals" / "sub" / nfd_name), files)

    def test_the_same_calendar_twice_is_stored_once(self) -> None:
        self.write("a/work.ics", calendar(WEEKLY_SEOUL))
        self.write("b/work.ics", calendar(WEEKLY_SEOUL))
        self.use(str(self.folder / "a"), str(self.folder / "b"))
        self.assertEqual(self.sync()["events"], 2)


class ThreadTests(CalendarCase):
    def setUp(self) -> None:
        self.manual = self.runner = ManualRunner()
        super().setUp()

    def test_files_are_parsed_off_the_reactor(self) -> None:
        self.use(self.write("work.ics", calendar(WEEKLY_SEOUL)))
        job_id, _ = self.h.submit(self, JOB)
        self.assertEqual([call[0] for call in self.manual.calls], [read_calendars])
        self.assertEqual(self.h.stored(job_id).status, "running")
        self.manual.run_next()
        self.assertEqual(self.h.stored(job_id).status, "succeeded")
        self.assertEqual(len(self.events()), 2)


class ConnectorTests(CalendarCase):
    def test_configured_enabled_and_interval_follow_the_settings(self) -> None:
        current = self.settings.current
        self.assertEqual((self.connector.configured(current), self.connector.enabled(current),
                          self.connector.interval_minutes(current)), (False, False, None))
        self.use(str(self.folder))
        current = self.settings.current
        self.assertEqual((self.connector.configured(current), self.connector.enabled(current),
                          self.connector.interval_minutes(current)), (True, True, 30))
        self.successResultOf(self.settings.update(
            {"connectors": {"calendar": {"interval_minutes": 0}}}))
        self.assertIsNone(self.connector.interval_minutes(self.settings.current))
