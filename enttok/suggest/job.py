"""C{suggest.generate}: suggestions for one day's note, stored for C{GET /suggestions}."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IReactorTime

from enttok.common.deferreds import Yielding
from enttok.common.paths import on_disk
from enttok.common.times import day_bounds, user_timezone, utc_iso
from enttok.index.search import Searcher, SearchQuery
from enttok.jobs.context import JobContext, JobFailed
from enttok.jobs.registry import JobType
from enttok.store import Database
from enttok.suggest import store as suggest_store
from enttok.suggest.compose import (
    Note,
    Suggestion,
    Target,
    carryover_suggestions,
    edited_suggestions,
    related_suggestions,
    target_for,
)
from enttok.suggest.day import day_suggestions
from enttok.suggest.llm import LLMSettings, LLMUnavailable, summarise
from enttok.validation import Field, ValidationError, integer, optional, text

CARRY_OVER_DAYS = 7
QUERY_CHARS = 400


def _read_text(vault: str, rel: str) -> str:
    """The note's text as on disk (C{""} if it cannot be read). Blocking."""
    try:
        with open(on_disk(vault, rel), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _check_date(payload: dict[str, Any]) -> dict[str, Any]:
    if payload["note_date"] is not None:
        try:
            date.fromisoformat(payload["note_date"])
        except ValueError:
            raise ValidationError("payload.note_date", "expected YYYY-MM-DD") from None
    return payload


def suggest_job(db: Database, clock: IReactorTime, searcher: Searcher,
                settings: Callable[[], Mapping[str, Any]], http: Any) -> JobType:
    """
    The C{suggest.generate} job type.

    @param settings: returns the settings in force (vault_path, timezone, llm).
    @param http: a L{treq.client.HTTPClient} for the optional summary.
    """

    @inlineCallbacks
    def handle(ctx: JobContext) -> Yielding[dict[str, Any]]:
        current = settings()
        zone = user_timezone(current["timezone"])
        day = (date.fromisoformat(ctx.payload["note_date"]) if ctx.payload["note_date"]
               else datetime.fromtimestamp(clock.seconds(), zone).date())
        iso_day = day.isoformat()
        vault = current["vault_path"]
        ctx.progress(0.1, "reading the day's note")
        # Indexed paths are NFC; a Mac may send (and keep on disk) NFD names.
        wanted = unicodedata.normalize("NFC", ctx.payload["note_path"] or "")
        note: Note | None = yield ctx.track(db.run(
            suggest_store.note_at, wanted) if wanted
            else db.run(suggest_store.daily_note, iso_day))
        if wanted and note is None:
            raise JobFailed("note_not_found", f"no indexed note {ctx.payload['note_path']!r}")
        raw = ""
        if note is not None and vault:
            raw = yield ctx.run_blocking(_read_text, vault, note.path)
        target = target_for(note.path if note else None, raw,
                            note.links if note else (),
                            [str(t.get("text", "")) for t in (note.tasks if note else ())])
        start, end = day_bounds(day, day, zone)
        items = yield ctx.track(db.run(suggest_store.day_activity, "default", start, end))
        ctx.progress(0.3, f"{len(items)} activity items (GitHub, git, calendar)")
        previous = yield ctx.track(db.run(
            suggest_store.daily_notes_between,
            (day - timedelta(days=CARRY_OVER_DAYS)).isoformat(),
            (day - timedelta(days=1)).isoformat()))
        local_start = datetime.combine(day, time(), zone)
        edited = yield ctx.track(db.run(
            suggest_store.edited_between, int(local_start.timestamp() * 1e9),
            int((local_start + timedelta(days=1)).timestamp() * 1e9)))
        activity = day_suggestions(items, target, zone)
        tasks = carryover_suggestions(previous, target, day)
        edits = edited_suggestions(edited, target)
        ctx.progress(0.5, "finding related notes")
        related, degraded = yield _related(searcher, note, items, target, edits,
                                           ctx.payload["context_limit"])
        suggestions = [*activity, *tasks, *edits, *related]
        summary = None
        llm = LLMSettings.of(current["llm"])
        if llm.base_url:
            ctx.progress(0.8, "asking the language model for a summary")
            try:
                summary = yield ctx.track(summarise(http, clock, llm,
                                                    [s.text for s in [*activity, *tasks]]))
            except LLMUnavailable as e:
                ctx.warn(f"summary skipped: {e}")
        result = {"note_date": iso_day, "note_path": note.path if note else None,
                  "suggestions": [s.to_json() for s in suggestions], "summary": summary,
                  "degraded": degraded,
                  "counts": {"activity": len(items), "suggestions": len(suggestions)}}
        yield ctx.track(db.run(suggest_store.save_result, iso_day, ctx.job_id,
                               utc_iso(clock.seconds()), result))
        return {"note_date": iso_day, "suggestions": len(suggestions), "degraded": degraded}

    return JobType(
        name="suggest.generate",
        payload={"note_date": Field(optional(text(r"\d{4}-\d{2}-\d{2}", 10, "YYYY-MM-DD")),
                                    None, "Day to suggest for (default: today)."),
                 "note_path": Field(optional(text(max_length=4096)), None,
                                    "Vault-relative path of the note (default: the daily "
                                    "note of that day)."),
                 "context_limit": Field(integer(0, 50), 5, "How many related notes.")},
        handler=handle, check=_check_date, description="Suggest lines for a daily note.")


@inlineCallbacks
def _related(searcher: Searcher, note: Note | None, items: list[dict[str, Any]],
             target: Target, edits: list[Any],
             limit: int) -> Yielding[tuple[list[Suggestion], bool]]:
    """Related notes by hybrid search over the note's title and the day's activity."""
    if limit == 0:
        return [], False
    words = [note.title] if note else []
    words += [str(i.get("title")) for i in items if i.get("title")]
    words += [str(t.get("text", "")) for t in (note.tasks if note else ())]
    query = " ".join(words)[:QUERY_CHARS].strip()
    if not query:
        return [], False
    found = yield searcher.search(SearchQuery(q=query, k=limit * 3, mode="hybrid",
                                              any_term=True))
    exclude = {s.sources[0]["path"] for s in edits}
    return related_suggestions(found["hits"], target, exclude, limit), found["degraded"]
