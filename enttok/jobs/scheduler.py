"""Periodic jobs from the C{schedule} settings and the connectors' intervals,
changed live when settings change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from enttok.connectors.interface import IConnector, job_type_name
from enttok.jobs.engine import JobEngine
from enttok.periodic import PeriodicService
from enttok.settings import SettingsStore


@frozen
class Entry:
    """A job type run every C{settings[schedule][key] * unit} seconds (0: off)."""

    job_type: str
    key: str
    unit: float
    #: A dotted setting that must be set for the job to be submitted.
    requires: str | None = None
    #: Also submit once when the daemon starts (a scan catches edits made while it was off).
    at_start: bool = False


ENTRIES = (
    Entry("vault.scan", "vault_scan_minutes", 60.0, "vault_path", at_start=True),
    Entry("connector.github.sync", "github_sync_minutes", 60.0, "github.token", at_start=True),
    Entry("maintenance.compact", "compact_hours", 3600.0),
)


def _section(settings: Mapping[str, Any], connector: IConnector) -> Any:
    """What the connector syncs (C{connectors.<id>} but its interval), if it has a section."""
    section = settings.get("connectors", {}).get(connector.connector_id)
    if not isinstance(section, Mapping):
        return section
    return {key: value for key, value in section.items() if key != "interval_minutes"}


class Scheduler(MultiService):
    """Submits coalesced jobs on timers; only registered job types are scheduled."""

    log = Logger()

    def __init__(self, clock: IReactorTime, engine: JobEngine, settings: SettingsStore,
                 entries: tuple[Entry, ...] = ENTRIES, at_start: bool = True,
                 connectors: Sequence[IConnector] = ()) -> None:
        """
        @param connectors: each is synced every C{interval_minutes(settings)}
            (and once at start) unless an entry already schedules its job type
            (GitHub's: C{schedule.github_sync_minutes}).
        """
        super().__init__()
        self._engine = engine
        self._settings = settings
        self._timers: dict[Entry, PeriodicService] = {}
        self._connector_timers: dict[str, tuple[IConnector, PeriodicService]] = {}
        for entry in entries:
            if entry.job_type not in engine.registry:
                continue
            timer = PeriodicService(clock, self._interval(entry, settings.current),
                                    self._submitter(entry), entry.job_type,
                                    now=at_start and entry.at_start)
            timer.setServiceParent(self)
            self._timers[entry] = timer
        scheduled = {entry.job_type for entry in self._timers}
        for connector in connectors:
            job_type = job_type_name(connector.connector_id)
            if job_type in scheduled or job_type not in engine.registry:
                continue
            timer = PeriodicService(clock, self._connector_interval(connector, settings.current),
                                    self._connector_submitter(connector), job_type,
                                    now=at_start)
            timer.setServiceParent(self)
            self._connector_timers[job_type] = (connector, timer)
        settings.subscribe(self._settings_changed)

    @staticmethod
    def _interval(entry: Entry, settings: Mapping[str, Any]) -> float:
        return float(settings["schedule"][entry.key]) * entry.unit

    def _submitter(self, entry: Entry) -> Any:
        def submit() -> Deferred[Any] | None:
            if entry.requires is not None and not self._settings.get(entry.requires):
                return None
            return self._engine.submit(entry.job_type, {})
        return submit

    def _settings_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for entry, timer in self._timers.items():
            interval = self._interval(entry, new)
            if interval != timer.interval:
                self.log.info("{job_type} now every {seconds:.0f} s", job_type=entry.job_type,
                              seconds=interval)
                timer.set_interval(interval)
        for job_type, (connector, timer) in self._connector_timers.items():
            interval = self._connector_interval(connector, new)
            was_off = timer.interval <= 0
            if interval != timer.interval:
                self.log.info("{job_type} now every {seconds:.0f} s", job_type=job_type,
                              seconds=interval)
                timer.set_interval(interval)
            if interval > 0 and self.running and (
                    was_off or _section(old, connector) != _section(new, connector)):
                # Just turned on, or its paths or options changed: sync now, not an
                # interval later (a sync already queued absorbs it).
                maybeDeferred(self._connector_submitter(connector)).addErrback(
                    self._not_queued, job_type)

    def _not_queued(self, failure: Failure, job_type: str) -> None:
        self.log.failure("could not queue {job_type}", failure, job_type=job_type)

    @staticmethod
    def _connector_interval(connector: IConnector, settings: Mapping[str, Any]) -> float:
        if not (connector.enabled(settings) and connector.configured(settings)):
            return 0.0
        return float(connector.interval_minutes(settings) or 0) * 60.0

    def _connector_submitter(self, connector: IConnector) -> Any:
        job_type = job_type_name(connector.connector_id)

        def submit() -> Deferred[Any] | None:
            if self._connector_interval(connector, self._settings.current) <= 0:
                return None
            return self._engine.submit(job_type, {})
        return submit

    def status(self) -> dict[str, Any]:
        """The C{scheduler} part of C{/status}."""
        timers = [*self._timers.values(), *(t for _, t in self._connector_timers.values())]
        active = sum(1 for t in timers if t.interval > 0)
        return {"running": bool(self.running), "jobs": active}
