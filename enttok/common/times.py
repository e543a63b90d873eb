"""Timestamps as stored (UTC ISO) and local days in the user's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

_ISO = "%Y-%m-%dT%H:%M:%SZ"


def utc_iso(seconds: float) -> str:
    """Seconds since the epoch as C{YYYY-MM-DDTHH:MM:SSZ}."""
    return datetime.fromtimestamp(seconds, UTC).strftime(_ISO)


def user_timezone(name: str | None) -> tzinfo:
    """The C{timezone} setting, or the system's zone."""
    if name:
        return ZoneInfo(name)
    local = datetime.now().astimezone().tzinfo
    return local if local is not None else UTC


def day_bounds(first: date, last: date, zone: tzinfo) -> tuple[str, str]:
    """UTC ISO bounds [start, end) covering local days C{first}..C{last}."""
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    return start.strftime(_ISO), end.strftime(_ISO)
