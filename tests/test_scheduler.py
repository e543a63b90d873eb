"""The scheduler: periodic, coalesced submissions whose intervals follow the settings."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.jobs import store
from enttok.jobs.context import JobContext
from enttok.jobs.registry import JobType
from enttok.jobs.scheduler import Scheduler
from enttok.settings import SettingsStore
from enttok.threads import run_inline
from tests.jobsupport import Harness

MINUTE = 60.0
HOUR = 3600.0
#: The defaults: vault scan every 30 min, GitHub sync every 15 min, compaction daily.
SCAN, SYNC, COMPACT = 30 * MINUTE, 15 * MINUTE, 24 * HOUR


def stand_ins(names: tuple[str, ...]) -> Any:
    """Job types under the scheduled names that succeed at once."""
    def handler(ctx: JobContext) -> dict[str, str]:
        return {"ran": ctx.job_type}

    return lambda h: [JobType(name, {}, handler) for name in names]


class SchedulerCase(SynchronousTestCase):
    NAMES: tuple[str, ...] = ("vault.scan", "connector.github.sync", "maintenance.compact")

    def setUp(self) -> None:
        self.h = Harness(self, workers=4, extra_types=stand_ins(self.NAMES))
        self.settings = SettingsStore(Path(self.mktemp()), run_inline)
        # Scanning needs a vault and syncing a GitHub token.
        vault = os.path.abspath(self.mktemp())
        os.makedirs(vault)
        self.successResultOf(self.settings.update(
            {"vault_path": vault, "github": {"token": "ghp_test"}}))
        self.scheduler = Scheduler(self.h.clock, self.h.engine, self.settings, at_start=False)

    def start(self, engine: bool = True) -> None:
        if engine:
            self.h.engine.startService()
        self.scheduler.startService()
        self.addCleanup(self.scheduler.stopService)

    def counts(self) -> Counter[str]:
        jobs, _ = store.list_jobs(self.h.db.connection, limit=1000)
        return Counter(job.type for job in jobs)

    def advance(self, seconds: float, step: float = MINUTE) -> None:
        while seconds > 0:
            self.h.clock.advance(min(step, seconds))
            seconds -= step


class IntervalTests(SchedulerCase):
    def test_nothing_at_start(self) -> None:
        self.start()
        self.assertEqual(self.counts(), Counter())

    def test_scan_and_sync_once_at_start(self) -> None:
        self.scheduler = Scheduler(self.h.clock, self.h.engine, self.settings)
        self.start()
        self.assertEqual(self.counts(), Counter({"vault.scan": 1, "connector.github.sync": 1}))
        self.advance(SYNC)
        self.assertEqual(self.counts(), Counter({"vault.scan": 1, "connector.github.sync": 2}))

    def test_submits_at_each_interval(self) -> None:
        self.start()
        self.advance(SYNC - 1)
        self.assertEqual(self.counts(), Counter())
        self.advance(1)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 1}))
        self.advance(SCAN - SYNC)
        self.assertEqual(self.counts(),
                         Counter({"connector.github.sync": 2, "vault.scan": 1}))
        self.advance(COMPACT - SCAN)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 96,
                                                 "vault.scan": 48,
                                                 "maintenance.compact": 1}))
        jobs, _ = store.list_jobs(self.h.db.connection, limit=1)
        self.assertEqual((jobs[0].status, jobs[0].payload), ("succeeded", {}))

    def test_submissions_coalesce_while_queued(self) -> None:
        self.start(engine=False)  # nothing runs: every submission finds one queued
        self.advance(3 * SCAN)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 1, "vault.scan": 1}))
        self.h.engine.startService()
        self.assertEqual({j.status for j in store.list_jobs(self.h.db.connection)[0]},
                         {"succeeded"})
        self.advance(SYNC)
        self.assertEqual(self.counts()["connector.github.sync"], 2)

    def test_status(self) -> None:
        self.assertEqual(self.scheduler.status(), {"running": False, "jobs": 3})
        self.start()
        self.assertEqual(self.scheduler.status(), {"running": True, "jobs": 3})
        self.successResultOf(self.scheduler.stopService())
        self.assertEqual(self.scheduler.status(), {"running": False, "jobs": 3})
        self.advance(2 * COMPACT, step=HOUR)
        self.assertEqual(self.counts(), Counter())


class SettingsTests(SchedulerCase):
    def update(self, schedule: dict[str, int]) -> None:
        self.successResultOf(self.settings.update({"schedule": schedule}))

    def test_zero_turns_an_entry_off(self) -> None:
        self.start()
        self.update({"github_sync_minutes": 0})
        self.assertEqual(self.scheduler.status(), {"running": True, "jobs": 2})
        self.advance(2 * SCAN)
        self.assertEqual(self.counts(), Counter({"vault.scan": 2}))
        self.update({"github_sync_minutes": 10})
        self.assertEqual(self.scheduler.status()["jobs"], 3)
        self.advance(10 * MINUTE)
        self.assertEqual(self.counts()["connector.github.sync"], 1)

    def test_interval_changes_without_restart(self) -> None:
        self.start()
        self.advance(20 * MINUTE)
        self.assertEqual(self.counts()["vault.scan"], 0)
        self.update({"vault_scan_minutes": 5})
        # The new interval counts from the change.
        self.advance(5 * MINUTE)
        self.assertEqual(self.counts()["vault.scan"], 1)
        self.advance(25 * MINUTE)
        self.assertEqual(self.counts()["vault.scan"], 6)
        self.update({"compact_hours": 1})
        self.advance(HOUR)
        self.assertEqual(self.counts()["maintenance.compact"], 1)

    def test_off_from_the_start(self) -> None:
        self.update({"vault_scan_minutes": 0, "github_sync_minutes": 0, "compact_hours": 0})
        self.scheduler = Scheduler(self.h.clock, self.h.engine, self.settings, at_start=False)
        self.start()
        self.assertEqual(self.scheduler.status(), {"running": True, "jobs": 0})
        self.advance(2 * COMPACT, step=HOUR)
        self.assertEqual(self.counts(), Counter())

    def test_unrelated_settings_change_keeps_the_timers(self) -> None:
        self.start()
        self.advance(10 * MINUTE)
        self.successResultOf(self.settings.update({"workers": 3}))
        self.advance(5 * MINUTE)
        self.assertEqual(self.counts()["connector.github.sync"], 1)


class RequirementTests(SchedulerCase):
    def test_entries_wait_for_their_settings(self) -> None:
        self.start()
        self.successResultOf(self.settings.update({"vault_path": None,
                                                   "github": {"token": None}}))
        self.advance(COMPACT, step=HOUR)
        self.assertEqual(self.counts(), Counter({"maintenance.compact": 1}))
        self.successResultOf(self.settings.update({"github": {"token": "ghp_again"}}))
        self.advance(SYNC)
        self.assertEqual(self.counts()["connector.github.sync"], 1)
        self.assertEqual(self.counts()["vault.scan"], 0)


class UnregisteredTests(SchedulerCase):
    NAMES = ("maintenance.compact",)

    def test_only_registered_types_are_scheduled(self) -> None:
        self.start()
        self.assertEqual(self.scheduler.status(), {"running": True, "jobs": 1})
        self.advance(COMPACT, step=HOUR)
        self.assertEqual(self.counts(), Counter({"maintenance.compact": 1}))


class FailingSubmitTests(SchedulerCase):
    def test_a_failed_submission_does_not_stop_the_timer(self) -> None:
        self.start()
        real = self.h.engine.submit
        calls: list[str] = []

        def broken(job_type: str, payload: Any) -> Any:
            calls.append(job_type)
            if len(calls) == 1:
                raise RuntimeError("database is gone")
            return real(job_type, payload)

        self.h.engine.submit = broken  # type: ignore[method-assign]
        self.advance(SYNC)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.advance(SYNC)
        self.assertEqual(calls.count("connector.github.sync"), 2)
        self.assertEqual(self.counts()["connector.github.sync"], 1)
