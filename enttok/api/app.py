"""The REST routes. Each one parses its input, calls a service, and returns JSON."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from enttok import __version__
from enttok.api import activity as activity_api
from enttok.api import connectors as connectors_api
from enttok.api import jobs
from enttok.api import notes as notes_api
from enttok.api import search as search_api
from enttok.api.errors import APIError, install_error_handlers
from enttok.api.requests import json_bytes, query_day, read_json, refuse_unknown_args
from enttok.common.times import user_timezone
from enttok.connectors.interface import IConnector
from enttok.index.indexer import VaultIndex
from enttok.index.search import Searcher
from enttok.jobs.engine import JobEngine
from enttok.settings import SettingsError, SettingsStore
from enttok.settings.schema import public_view
from enttok.store import Database
from enttok.suggest import store as suggest_store
from enttok.threads import BlockingRunner

StatusSource = Callable[[], Mapping[str, Any]]


def idle_status() -> Mapping[str, Any]:
    """The status of a daemon that runs no job engine."""
    return {"queue_depth": 0, "workers": {"active": 0, "idle": 0},
            "scheduler": {"running": False, "jobs": 0}}


class BackendAPI:
    """
    The Klein application behind the guard.

    @param clock: the reactor's clock, for uptime.
    @param settings: the settings store.
    @param status: returns the engine's part of C{/status}.
    @param engine: the job engine (C{None}: the C{/jobs} routes answer 404).
    @param index: the vault index (C{None}: C{/search} and C{/index/status} answer 404).
    @param db: the database (C{None}: C{/activity} answers 404).
    @param connectors: those C{/connectors} lists.
    @param run_blocking: file work of C{/notes} (C{None}: the index's thread; without
        an index, C{/notes} answers 404).
    """

    app = Klein()
    install_error_handlers(app)

    def __init__(self, clock: IReactorTime, settings: SettingsStore,
                 status: StatusSource = idle_status, engine: JobEngine | None = None,
                 index: VaultIndex | None = None, db: Database | None = None,
                 run_blocking: BlockingRunner | None = None,
                 connectors: Sequence[IConnector] = ()) -> None:
        self._clock = clock
        self._started = clock.seconds()
        self._settings = settings
        self._status = status
        self._engine = engine
        self._index = index
        self._db = db
        self._connectors = tuple(connectors)
        self._searcher = Searcher(index) if index is not None else None
        runner = run_blocking or (index.file_runner if index is not None else None)
        self._notes = None if runner is None else notes_api.DailyNotes(
            clock, settings, runner, db, engine)

    def resource(self) -> Any:
        return self.app.resource()

    def _uptime(self) -> int:
        return int(self._clock.seconds() - self._started)

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        return json_bytes(request, {"status": "ok", "version": __version__,
                                    "uptime_sec": self._uptime()})

    @app.route("/status", methods=["GET"])
    def status(self, request: IRequest) -> bytes:
        return json_bytes(request, {"uptime_sec": self._uptime(), **self._status()})

    @app.route("/settings", methods=["GET"])
    def get_settings(self, request: IRequest) -> bytes:
        return json_bytes(request, public_view(self._settings.current))

    @app.route("/settings", methods=["POST"])
    def post_settings(self, request: IRequest) -> Deferred[bytes]:
        update = read_json(request)
        try:
            d = self._settings.update(update)
        except SettingsError as e:
            raise APIError(400, "invalid_setting", e.message, {"field": e.field}) from None
        def not_saved(failure: Failure) -> None:
            failure.trap(OSError)
            error = failure.value
            assert isinstance(error, OSError)
            raise APIError(500, "settings_not_saved",
                           f"could not save the settings: {error.strerror}")

        d.addErrback(not_saved)
        return d.addCallback(lambda new: json_bytes(request, public_view(new)))

    def _jobs(self) -> JobEngine:
        if self._engine is None:
            raise APIError(404, "not_found", "no such route")
        return self._engine

    @app.route("/jobs", methods=["POST"])
    def submit_job(self, request: IRequest) -> Deferred[bytes]:
        return jobs.submit(self._jobs(), request)

    @app.route("/jobs", methods=["GET"])
    def list_jobs(self, request: IRequest) -> Deferred[bytes]:
        return jobs.listing(self._jobs(), request)

    @app.route("/jobs/<string:job_id>", methods=["GET"])
    def get_job(self, request: IRequest, job_id: str) -> Deferred[bytes]:
        return jobs.detail(self._jobs(), request, job_id)

    @app.route("/jobs/<string:job_id>/cancel", methods=["POST"])
    def cancel_job(self, request: IRequest, job_id: str) -> Deferred[bytes]:
        return jobs.cancel(self._jobs(), request, job_id)

    def _vault_index(self) -> VaultIndex:
        if self._index is None:
            raise APIError(404, "not_found", "no such route")
        return self._index

    @app.route("/search", methods=["GET"])
    def search_notes(self, request: IRequest) -> Deferred[bytes]:
        self._vault_index()
        assert self._searcher is not None
        return search_api.search(self._searcher, request)

    @app.route("/index/status", methods=["GET"])
    def get_index_status(self, request: IRequest) -> Deferred[bytes]:
        return search_api.status(self._vault_index(), request)

    @app.route("/suggestions", methods=["GET"])
    def get_suggestions(self, request: IRequest) -> Deferred[bytes]:
        if self._db is None:
            raise APIError(404, "not_found", "no such route")
        zone = user_timezone(self._settings.get("timezone"))
        refuse_unknown_args(request, {"date"})
        day = (query_day(request, "date")
               or datetime.fromtimestamp(self._clock.seconds(), zone).date()).isoformat()

        def answer(found: dict[str, Any] | None) -> bytes:
            if found is None:
                raise APIError(404, "no_suggestions", f"no suggestions for {day} yet: "
                               "POST /jobs {\"type\": \"suggest.generate\"}", {"date": day})
            return json_bytes(request, found)

        return self._db.run(suggest_store.latest, day).addCallback(answer)

    @app.route("/activity", methods=["GET"])
    def get_activity(self, request: IRequest) -> Deferred[bytes]:
        if self._db is None:
            raise APIError(404, "not_found", "no such route")
        zone = self._settings.get("timezone")
        today = datetime.fromtimestamp(self._clock.seconds(),
                                       user_timezone(zone)).date()
        return activity_api.activity(self._db, request, zone, today)

    @app.route("/connectors", methods=["GET"])
    def get_connectors(self, request: IRequest) -> Deferred[bytes]:
        if self._db is None:
            raise APIError(404, "not_found", "no such route")
        return connectors_api.listing(self._db, self._connectors, self._settings.current,
                                      request)

    def _daily_notes(self) -> notes_api.DailyNotes:
        if self._notes is None:
            raise APIError(404, "not_found", "no such route")
        return self._notes

    @app.route("/notes/daily/<string:date>", methods=["GET"])
    def get_daily_note(self, request: IRequest, date: str) -> Deferred[bytes]:
        return self._daily_notes().state(request, date)

    @app.route("/notes/daily/<string:date>/append", methods=["POST"])
    def append_daily_note(self, request: IRequest, date: str) -> Deferred[bytes]:
        return self._daily_notes().append(request, date)
