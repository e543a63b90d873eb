"""C{/notes/daily/{date}}: a day's note, its state, and appending accepted lines to it."""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from enttok.api.errors import APIError
from enttok.api.requests import json_bytes, read_json, refuse_unknown_args
from enttok.common.deferreds import Yielding
from enttok.common.times import user_timezone
from enttok.jobs.engine import JobEngine
from enttok.settings import SettingsStore
from enttok.store import Database
from enttok.suggest import store as suggest_store
from enttok.threads import BlockingRunner
from enttok.validation import ValidationError
from enttok.vault import daily
from enttok.vault.daily import Base, NoteChanged, NoteProblem, NoteState

log = Logger(namespace="enttok.api.notes")

_BODY = {"lines", "heading", "base"}
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: HTTP status of each L{NoteProblem} code.
_PROBLEMS = {"outside_vault": 400, "not_a_file": 409, "note_not_utf8": 422,
             "template_unreadable": 422}


def parse_day(text: str, today: date) -> date:
    """C{YYYY-MM-DD} or C{today}. @raise APIError: 400 otherwise."""
    if text == "today":
        return today
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise APIError(400, "invalid_date", "the date must be YYYY-MM-DD (a real day) or "
                       "'today'", {"field": "date"}) from None


def parse_base(value: Any) -> Base:
    """The C{base} of an append body: C{null}, or C{{sha256}} and/or C{{mtime_ns}}."""
    if value is None:
        return Base()
    if not isinstance(value, dict) or not value or set(value) - {"sha256", "mtime_ns"}:
        # {} would read as "no file": refused, a client that saw one must say so.
        raise ValidationError("base", "expected null or an object with sha256 and/or mtime_ns")
    sha = value.get("sha256")
    if "sha256" in value and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise ValidationError("base.sha256", "expected 64 hexadecimal digits")
    mtime = value.get("mtime_ns")
    if isinstance(mtime, str) and mtime.isascii() and mtime.isdigit() and len(mtime) < 25:
        mtime = int(mtime)
    if "mtime_ns" in value and (isinstance(mtime, bool) or not isinstance(mtime, int)
                                or mtime < 0):
        raise ValidationError("base.mtime_ns", "expected nanoseconds as a decimal string")
    return Base(sha.lower() if sha else None, mtime)


def parse_append(body: Any, default_heading: str) -> tuple[list[str], str, Base]:
    """(lines, heading, base) of an append body. @raise APIError: 400 naming the field."""
    if not isinstance(body, dict):
        raise APIError(400, "invalid_body", "expected an object {lines, heading, base}")
    unknown = sorted(set(body) - _BODY)
    if unknown:
        raise APIError(400, "invalid_body", f"unknown field {unknown[0]!r}",
                       {"field": unknown[0]})
    try:
        lines = daily.check_lines(body.get("lines"), "lines")
        heading = body.get("heading")
        heading = default_heading if heading is None else daily.check_heading(heading,
                                                                                "heading")
        return lines, heading, parse_base(body.get("base"))
    except ValidationError as e:
        raise APIError(400, "invalid_body", e.message, {"field": e.field}) from None


def _changed(state: NoteState) -> APIError:
    return APIError(409, "note_changed", f"{state.path} changed since it was read; read it "
                    f"again (GET /notes/daily/{{date}}) and retry", state.to_json())


def _problem(e: NoteProblem) -> APIError:
    return APIError(_PROBLEMS.get(e.code, 409), e.code, e.message)


class DailyNotes:
    """
    Finds a day's note and appends to it; one append at a time.

    The day's note is the file the C{daily_notes.path_pattern} setting names if it
    exists, else an indexed note named C{YYYY-MM-DD.md} in another folder (as
    suggestions find it), else a new file at the pattern's path.

    @param run_blocking: runs the file work off the reactor thread.
    @param db: finds indexed daily notes (C{None}: only the pattern's path).
    @param engine: re-indexes a written note (C{None}: the watcher will).
    """

    def __init__(self, clock: IReactorTime, settings: SettingsStore,
                 run_blocking: BlockingRunner, db: Database | None = None,
                 engine: JobEngine | None = None, pause: daily.Pause | None = None) -> None:
        self._clock = clock
        self._settings = settings
        self._run = run_blocking
        self._db = db
        self._engine = engine
        self._pause = pause
        self._lock = DeferredLock()

    def _day(self, text: str) -> date:
        zone = user_timezone(self._settings.get("timezone"))
        return parse_day(text, datetime.fromtimestamp(self._clock.seconds(), zone).date())

    def _root(self) -> str:
        vault = self._settings.get("vault_path")
        if not vault or not os.path.isdir(vault):
            raise APIError(409, "no_vault", "no vault folder: set vault_path in /settings")
        return os.path.realpath(str(vault))

    @inlineCallbacks
    def _locate(self, root: str, day: date) -> Yielding[str]:
        """The note's vault-relative path (see the class docstring)."""
        rel = daily.note_path(self._settings.get("daily_notes.path_pattern"), day)
        other = None
        if self._db is not None:
            indexed = yield self._db.run(suggest_store.daily_note, day.isoformat())
            if indexed is not None and (indexed.path.rsplit("/", 1)[-1]
                                        == f"{day.isoformat()}.md"):
                other = indexed.path
        found: str = yield self._run(daily.locate, root, rel, other)
        return found

    @inlineCallbacks
    def state(self, request: IRequest, day_text: str) -> Yielding[bytes]:
        """C{GET /notes/daily/{date}}: where the note is and its sha256/mtime."""
        refuse_unknown_args(request, set())
        day = self._day(day_text)
        root = self._root()
        rel = yield self._locate(root, day)
        try:
            found: NoteState = yield self._run(daily.read_state, root, rel)
        except NoteProblem as e:
            raise _problem(e) from None
        return json_bytes(request, {"date": day.isoformat(), **found.to_json()})

    def append(self, request: IRequest, day_text: str) -> Deferred[bytes]:
        """C{POST /notes/daily/{date}/append}."""
        refuse_unknown_args(request, set())
        day = self._day(day_text)
        lines, heading, base = parse_append(read_json(request),
                                            self._settings.get("daily_notes.heading"))
        root = self._root()
        return self._lock.run(self._append, request, root, day, lines, heading, base)

    @inlineCallbacks
    def _append(self, request: IRequest, root: str, day: date, lines: list[str], heading: str,
                base: Base) -> Yielding[bytes]:
        rel = yield self._locate(root, day)
        pause = [self._pause] if self._pause is not None else []
        try:
            template = yield self._run(daily.read_template, root,
                                       self._settings.get("daily_notes.template"))
            done: daily.Appended = yield self._run(daily.append, root, rel, lines, heading,
                                                   base, template, day, *pause)
        except NoteChanged as e:
            raise _changed(e.state) from None
        except NoteProblem as e:
            raise _problem(e) from None
        except OSError as e:
            raise APIError(503, "note_not_written", f"{rel} was not changed: "
                           f"{e.strerror or e}") from None
        job_id = None
        if done.appended or done.created:
            job_id = yield self._reindex(done.state.path)
        return json_bytes(request, {"date": day.isoformat(), **done.state.to_json(),
                                    "created": done.created, "appended": done.appended,
                                    "skipped": done.skipped, "index_job_id": job_id})

    @inlineCallbacks
    def _reindex(self, rel: str) -> Yielding[str | None]:
        """Queue C{index.update} for the note, as the watcher would; its job id or C{None}."""
        if self._engine is None:
            return None
        try:
            job, _ = yield self._engine.submit("index.update", {"changed_paths": [rel]})
        except Exception:
            # The note is written; the watcher or the next scan indexes it.
            log.failure("could not queue index.update for {path}", path=rel)
            return None
        job_id: str = job.job_id
        return job_id

