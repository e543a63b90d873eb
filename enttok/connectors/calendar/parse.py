"""Reading C{.ics} files into activity items for a window of time (blocking: a thread).

Recurring events are expanded (RRULE, RDATE, EXDATE, moved occurrences) by
C{recurring-ical-events}; times are converted to UTC; events without a time
zone ("floating") and all-day events are read in the user's zone.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

from attrs import define, field, frozen

from enttok.connectors.activity import Activity

#: A file larger than this is skipped with a warning (exports of years of
#: calendar are a few MB).
MAX_FILE_BYTES = 64 * 1024 * 1024
#: At most this many files are read from the folders of one sync.
MAX_FILES = 2000
SOURCE = "calendar"


@frozen
class Window:
    """The UTC instants C{start <= t < end} being synced."""

    start: datetime
    end: datetime

    @classmethod
    def around(cls, now: float, zone: tzinfo, days_back: int, days_ahead: int) -> Window:
        """Whole local days: C{days_back} before today through C{days_ahead} after it."""
        today = datetime.fromtimestamp(now, zone).date()
        first = datetime.combine(today - timedelta(days=days_back), time(), zone)
        last = datetime.combine(today + timedelta(days=days_ahead + 1), time(), zone)
        return cls(first.astimezone(UTC), last.astimezone(UTC))

    def bounds(self) -> tuple[str, str]:
        return iso(self.start), iso(self.end)


@define
class Harvest:
    """What reading the files gave: events, the files read, the files that failed."""

    items: list[Activity] = field(factory=list)
    files_read: list[str] = field(factory=list)
    files_failed: list[str] = field(factory=list)
    warnings: list[str] = field(factory=list)
    #: Digest of the window, the zone and every file's path and content.
    fingerprint: str = ""
    #: Nothing changed since the sync that saw C{fingerprint}: nothing was parsed.
    unchanged: bool = False


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_files(paths: Sequence[str], warnings: list[str]) -> list[Path]:
    """
    The C{.ics} files named in C{paths}, or found below those that are folders
    (hidden folders skipped), in a stable order; problems go to C{warnings}.
    """
    found: dict[str, Path] = {}
    for name in paths:
        path = Path(name)
        if path.is_file():
            found.setdefault(str(path), path)
        elif path.is_dir():
            for one in _ics_below(path):
                if len(found) >= MAX_FILES:
                    warnings.append(f"more than {MAX_FILES} .ics files: the rest are skipped")
                    return list(found.values())
                found.setdefault(str(one), one)
        elif path.exists():
            warnings.append(f"{name}: not a file or folder")
        else:
            warnings.append(f"{name}: no such file or folder")
    return list(found.values())


def _ics_below(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(".ics") and not name.startswith("."):
                yield Path(root, name)


def fingerprint(files: Sequence[Path], window: Window, zone: tzinfo,
                check_canceled: Callable[[], None] = lambda: None) -> str:
    """A digest of what a sync would read (unreadable files count by their error)."""
    digest = hashlib.sha256(f"{window.bounds()}\0{zone}".encode())
    for path in files:
        check_canceled()
        digest.update(os.fsencode(path) + b"\0")
        try:
            with path.open("rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        except OSError as e:
            digest.update(f"error {e.errno}".encode())
    return digest.hexdigest()


def read_calendars(paths: Sequence[str], window: Window, zone: tzinfo,
                   check_canceled: Callable[[], None] = lambda: None,
                   unless: str | None = None) -> Harvest:
    """
    Every event occurring in C{window} in the calendars at C{paths}; a file
    that cannot be read or parsed is named in the warnings and skipped.
    Identities repeated across files (a calendar exported twice) are kept once.

    @param unless: a previous L{Harvest.fingerprint}: when the files (and the
        window) are the same and no path is missing, nothing is parsed and the
        harvest is C{unchanged} (parsing is the costly part: seconds for a
        calendar of a few thousand events).
    """
    harvest = Harvest()
    files = find_files(paths, harvest.warnings)
    harvest.fingerprint = fingerprint(files, window, zone, check_canceled)
    if unless is not None and unless == harvest.fingerprint and not harvest.warnings:
        harvest.unchanged = True
        return harvest
    seen: set[str] = set()
    for path in files:
        check_canceled()
        try:
            events = _events_of(path, window, zone)
        except (OSError, ValueError, TypeError, KeyError) as e:
            harvest.files_failed.append(str(path))
            harvest.warnings.append(f"{path}: cannot be read: {_reason(e)}")
            continue
        harvest.files_read.append(str(path))
        for item in events:
            if item.identity not in seen:
                seen.add(item.identity)
                harvest.items.append(item)
    harvest.items.sort(key=lambda i: (i.occurred_at, i.identity))
    return harvest


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)[:200] or type(error).__name__


def _events_of(path: Path, window: Window, zone: tzinfo) -> list[Activity]:
    # Imported here, on the job's thread: together they take a second or more to import.
    import icalendar
    import recurring_ical_events

    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    calendar = icalendar.Calendar.from_ical(path.read_bytes())
    name = str(calendar.get("X-WR-CALNAME") or path.stem)
    occurrences = recurring_ical_events.of(calendar, skip_bad_series=True).between(
        window.start, window.end)
    # Only those starting in the window: the next sync replaces exactly these.
    start, end = window.bounds()
    return [item for item in (_item(e, str(path), name, zone) for e in occurrences)
            if item is not None and start <= item.occurred_at < end]


def _moment(value: Any, zone: tzinfo) -> tuple[datetime, bool]:
    """(UTC instant, all day) of a DTSTART/DTEND value; floating times are local."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return aware.astimezone(UTC), False
    if isinstance(value, date):
        return datetime.combine(value, time(), zone).astimezone(UTC), True
    raise ValueError(f"not a date or date-time: {value!r}")


def _item(event: Any, path: str, calendar_name: str, zone: tzinfo) -> Activity | None:
    if str(event.get("STATUS", "")).upper() == "CANCELLED" or "DTSTART" not in event:
        return None
    start_value = event["DTSTART"].dt
    start, all_day = _moment(start_value, zone)
    end = _moment(event["DTEND"].dt, zone)[0] if "DTEND" in event else (
        start + (timedelta(days=1) if all_day else timedelta()))
    recurrence = event.get("RECURRENCE-ID")
    recurrence_start = _moment(recurrence.dt, zone)[0] if recurrence is not None else start
    summary = _text(event.get("SUMMARY"))
    uid = str(event.get("UID") or "") or _stand_in_uid(path, summary, start)
    location = _text(event.get("LOCATION"))
    raw = {"start": _value_text(start_value), "end": iso(end), "all_day": all_day,
           "location": location, "calendar": path, "calendar_name": calendar_name,
           "uid": uid, "recurrence_id": iso(recurrence_start) if recurrence else None,
           "attendees": _count(event.get("ATTENDEE"))}
    return Activity(identity=f"{SOURCE}:{uid}:{iso(recurrence_start)}", kind="event",
                    title=summary, occurred_at=iso(start), raw=raw)


def _text(value: Any) -> str | None:
    """A text property, NFC (a macOS export may hold decomposed Hangul), or C{None}."""
    text = unicodedata.normalize("NFC", str(value or "")).strip()
    return text or None


def _value_text(value: Any) -> str:
    """DTSTART as written: a date, or an ISO date-time (with its offset unless floating)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value.isoformat())


def _count(attendees: Any) -> int:
    if attendees is None:
        return 0
    return len(attendees) if isinstance(attendees, list) else 1


def _stand_in_uid(path: str, summary: str | None, start: datetime) -> str:
    """Events without a UID (rare exports) are told apart by file, summary and start."""
    digest = hashlib.sha256(f"{path}\0{summary}\0{iso(start)}".encode()).hexdigest()
    return f"no-uid-{digest[:16]}"


def stale_identities(rows: Iterable[tuple[str, str]], keep: set[str],
                     failed_files: set[str]) -> list[str]:
    """
    Of the stored C{(identity, raw_json)} rows in the window, those no longer
    in the calendars: not in C{keep}, and not from a file that failed to read
    this time (its events stay until it reads again).
    """
    stale = []
    for identity, raw_json in rows:
        if identity in keep:
            continue
        try:
            source_file = json.loads(raw_json).get("calendar")
        except (ValueError, AttributeError):
            source_file = None
        if source_file not in failed_files:
            stale.append(identity)
    return stale
