"""The job engine: states, workers, locks, coalescing, cancel, progress, recovery."""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from enttok.config import prepare_directories, resolve_config
from enttok.jobs import store
from enttok.jobs.context import HEARTBEAT, JobContext
from enttok.jobs.engine import (
    CANCEL_WAIT,
    MAX_ATTEMPTS,
    PROGRESS_INTERVAL,
    STOP_WAIT,
    JobFinished,
    JobNotFound,
)
from enttok.jobs.model import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    IllegalTransition,
    Job,
    check_transition,
)
from enttok.jobs.registry import UnknownJobType
from enttok.jobs.store import EventRow
from enttok.maintenance import compact as compact_module
from enttok.maintenance.compact import DAY, compact_job
from enttok.service import from_config
from enttok.validation import Field, ValidationError
from tests.jobsupport import DAY_PREFIX, Harness, ManualRunner


class TransitionTests(SynchronousTestCase):
    ALLOWED = {(QUEUED, RUNNING), (QUEUED, CANCELED), (QUEUED, FAILED),
               (RUNNING, SUCCEEDED), (RUNNING, FAILED), (RUNNING, CANCELED),
               (RUNNING, QUEUED)}

    def test_every_pair(self) -> None:
        for old in STATUSES:
            for new in STATUSES:
                if (old, new) in self.ALLOWED:
                    check_transition(old, new)
                else:
                    self.assertRaises(IllegalTransition, check_transition, old, new)

    def test_terminal_states_are_final(self) -> None:
        for old in TERMINAL:
            for new in [*STATUSES, "bogus"]:
                self.assertRaises(IllegalTransition, check_transition, old, new)
        self.assertRaises(IllegalTransition, check_transition, "bogus", QUEUED)


class LifecycleTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(self)
        self.h.engine.startService()
        self.addCleanup(self.h.engine.stopService)

    def test_success(self) -> None:
        job_id, coalesced = self.h.submit(self, "test.wait", {"n": 3})
        self.assertFalse(coalesced)
        self.assertTrue(re.fullmatch(r"job_20240501_\d{3}", job_id), job_id)
        stored = self.h.stored(job_id)
        self.assertEqual((stored.status, stored.attempts, stored.payload),
                         (RUNNING, 1, {"n": 3}))
        self.h.clock.advance(5)
        self.h.controls.pending[job_id].callback({"answer": 42})
        stored = self.h.stored(job_id)
        self.assertEqual((stored.status, stored.result, stored.progress, stored.error),
                         (SUCCEEDED, {"answer": 42}, 1.0, None))
        self.assertEqual(stored.updated_at, "2024-05-01T12:00:05Z")
        self.assertEqual(stored.created_at, "2024-05-01T12:00:00Z")
        self.assertEqual(self.h.statuses(job_id), [QUEUED, RUNNING, SUCCEEDED])
        self.assertEqual(len(self.h.terminal_messages(job_id)), 1)
        recorded = store.recent_events(self.h.db.connection, job_id)
        self.assertEqual([e.meta["status"] for e in recorded], [QUEUED, RUNNING, SUCCEEDED])
        self.assertEqual([e.event_id for e in recorded],
                         [m["seq"] for m in self.h.messages if m["job_id"] == job_id])
        self.assertEqual(self.h.engine.status(),
                         {"queue_depth": 0, "workers": {"active": 0, "idle": 2}})

    def test_expected_failure(self) -> None:
        job_id, _ = self.h.submit(self, "test.fail")
        error = {"code": "boom", "message": "it broke"}
        stored = self.h.stored(job_id)
        self.assertEqual((stored.status, stored.error), (FAILED, error))
        self.assertEqual(self.h.statuses(job_id), [QUEUED, RUNNING, FAILED])
        [terminal] = self.h.terminal_messages(job_id)
        self.assertEqual(terminal["error"], error)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_unexpected_exception(self) -> None:
        job_id, _ = self.h.submit(self, "test.crash")
        stored = self.h.stored(job_id)
        self.assertEqual(stored.status, FAILED)
        self.assertEqual(stored.error, {"code": "internal", "message": "ValueError: unexpected"})
        self.assertEqual(len(self.h.terminal_messages(job_id)), 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_result_that_is_not_json(self) -> None:
        job_id, _ = self.h.submit(self, "test.wait")
        self.h.controls.pending[job_id].callback(object())
        stored = self.h.stored(job_id)
        self.assertEqual((stored.status, stored.error["code"]), (FAILED, "internal"))
        self.assertEqual(len(self.h.terminal_messages(job_id)), 1)

    def test_run_blocking(self) -> None:
        job_id, _ = self.h.submit(self, "test.blocking", {"n": 21})
        stored = self.h.stored(job_id)
        self.assertEqual((stored.status, stored.result), (SUCCEEDED, {"doubled": 42}))

    def test_batches_report_progress(self) -> None:
        job_id, _ = self.h.submit(self, "test.batches", {"batches": 4})
        stored = self.h.stored(job_id)
        self.assertEqual((stored.status, stored.result), (SUCCEEDED, {"batches": 4}))
        self.assertEqual(self.h.controls.batches_done, [0, 1, 2, 3])
        # All four reports came within one instant: the first is sent, the last flushed.
        self.assertEqual([p for _, p in self.h.progress(job_id)], [0.25, 1.0])

    def test_notes_are_recorded(self) -> None:
        job_id, _ = self.h.submit(self, "test.wait")
        ctx = self.h.controls.contexts[job_id]
        ctx.warn("disk almost full", free=12)
        ctx.info("halfway")
        self.h.controls.pending[job_id].callback(None)
        logs = [m for m in self.h.messages if m["type"] == "log"]
        self.assertEqual([(m["level"], m["message"]) for m in logs],
                         [("warn", "disk almost full"), ("info", "halfway")])
        recorded = [e for e in store.recent_events(self.h.db.connection, job_id)
                    if e.level == "warn"]
        self.assertEqual(len(recorded), 1)
        self.assertEqual(recorded[0].meta["details"], {"free": 12})
        self.assertEqual(recorded[0].meta, logs[0])  # a replay sends what was sent live
        ctx.warn("after the end")  # ignored: the job is finished
        self.assertEqual(len([m for m in self.h.messages if m["type"] == "log"]), 2)

    def test_ids_are_sequential_per_day(self) -> None:
        ids = [self.h.submit(self, "test.wait", {"n": n})[0] for n in range(3)]
        self.assertEqual(ids, [f"{DAY_PREFIX}{n:03d}" for n in (1, 2, 3)])
        self.h.clock.advance(DAY)
        self.assertEqual(self.h.submit(self, "test.wait", {"n": 9})[0], "job_20240502_001")

    def test_get_and_list(self) -> None:
        first, _ = self.h.submit(self, "test.fail")
        second, _ = self.h.submit(self, "test.wait")
        job, events = self.successResultOf(self.h.engine.get(first))
        self.assertEqual(job.status, FAILED)
        self.assertEqual([e.meta["status"] for e in events], [QUEUED, RUNNING, FAILED])
        self.failureResultOf(self.h.engine.get("job_19990101_001"), JobNotFound)
        jobs, cursor = self.successResultOf(self.h.engine.list_jobs([], [], 10, None))
        self.assertEqual(([j.job_id for j in jobs], cursor), ([second, first], None))
        jobs, _ = self.successResultOf(self.h.engine.list_jobs([FAILED], [], 10, None))
        self.assertEqual([j.job_id for j in jobs], [first])


class SubmitTests(SynchronousTestCase):
    def test_unknown_type(self) -> None:
        h = Harness(self)
        error = self.assertRaises(UnknownJobType, h.engine.submit, "no.such", {})
        self.assertIn("test.wait", error.known)
        self.assertEqual(error.known, sorted(error.known))

    def test_invalid_payload(self) -> None:
        h = Harness(self)
        error = self.assertRaises(ValidationError, h.engine.submit, "test.wait", {"n": "x"})
        self.assertEqual(error.field, "payload.n")
        self.assertEqual(store.list_jobs(h.db.connection), ([], None))

    def test_ids_unique_across_restart(self) -> None:
        first = Harness(self)
        first.engine.startService()
        ids = [first.submit(self, "test.wait", {"n": n})[0] for n in range(3)]
        # No stop: the next run opens the same file as after a crash.
        second = Harness(self, first.path)
        second.engine.startService()
        ids += [second.submit(self, "test.wait", {"n": n})[0] for n in range(10, 12)]
        self.assertEqual(ids, [f"{DAY_PREFIX}{n:03d}" for n in range(1, 6)])
        self.assertEqual(len(store.list_jobs(second.db.connection)[0]), 5)


class WorkerTests(SynchronousTestCase):
    def test_workers_limit(self) -> None:
        h = Harness(self, workers=2)
        h.engine.startService()
        ids = [h.submit(self, "test.wait", {"n": n})[0] for n in range(3)]
        self.assertEqual([h.stored(i).status for i in ids], [RUNNING, RUNNING, QUEUED])
        self.assertEqual(h.engine.status(),
                         {"queue_depth": 1, "workers": {"active": 2, "idle": 0}})
        h.controls.pending[ids[0]].callback(None)
        self.assertEqual([h.stored(i).status for i in ids], [SUCCEEDED, RUNNING, RUNNING])
        self.assertEqual(h.engine.status()["queue_depth"], 0)

    def test_set_workers(self) -> None:
        h = Harness(self, workers=2)
        h.engine.startService()
        ids = [h.submit(self, "test.wait", {"n": n})[0] for n in range(4)]
        h.engine.set_workers(1)
        h.controls.pending[ids[0]].callback(None)
        self.assertEqual([h.stored(i).status for i in ids], [SUCCEEDED, RUNNING, QUEUED, QUEUED])
        h.controls.pending[ids[1]].callback(None)
        self.assertEqual(h.controls.started, ids[:3])
        h.engine.set_workers(3)
        self.assertEqual([h.stored(i).status for i in ids],
                         [SUCCEEDED, SUCCEEDED, RUNNING, RUNNING])
        self.assertEqual(h.engine.status(),
                         {"queue_depth": 0, "workers": {"active": 2, "idle": 1}})

    def test_many_jobs_that_end_at_once(self) -> None:
        h = Harness(self, workers=1)
        ids = [h.submit(self, "test.blocking", {"n": n})[0] for n in range(400)]
        h.submit(self, "test.fail")
        h.engine.startService()
        self.assertEqual({h.stored(i).status for i in ids}, {SUCCEEDED})
        self.assertEqual(h.engine.status(),
                         {"queue_depth": 0, "workers": {"active": 0, "idle": 1}})

    def test_nothing_runs_before_start(self) -> None:
        h = Harness(self)
        job_id, _ = h.submit(self, "test.wait")
        self.assertEqual((h.stored(job_id).status, h.controls.started), (QUEUED, []))
        h.engine.startService()
        self.assertEqual(h.controls.started, [job_id])


class LockTests(SynchronousTestCase):
    def test_jobs_sharing_a_lock_never_overlap(self) -> None:
        h = Harness(self, workers=4)
        h.engine.startService()
        a, _ = h.submit(self, "test.locked_a", {"n": 1})
        b, _ = h.submit(self, "test.locked_b", {"n": 1})
        a2, _ = h.submit(self, "test.locked_a", {"n": 2})
        free, _ = h.submit(self, "test.wait")
        # The unlocked job overtakes the ones waiting for the lock.
        self.assertEqual(h.controls.started, [a, free])
        self.assertEqual([h.stored(i).status for i in (a, b, a2)], [RUNNING, QUEUED, QUEUED])
        h.controls.pending[a].callback(None)
        self.assertEqual(h.controls.started, [a, free, b])
        h.controls.pending[b].errback(ValueError("b failed"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(h.stored(b).status, FAILED)
        self.assertEqual(h.controls.started, [a, free, b, a2])
        h.controls.pending[a2].callback(None)
        self.assertEqual(h.controls.max_lock_holders, 1)
        self.assertEqual(h.stored(a2).status, SUCCEEDED)

    def test_lock_released_after_cancel_of_queued_job(self) -> None:
        h = Harness(self, workers=2)
        h.engine.startService()
        a, _ = h.submit(self, "test.locked_a")
        b, _ = h.submit(self, "test.locked_b")
        c, _ = h.submit(self, "test.locked_b", {"n": 5})
        self.assertEqual(self.successResultOf(h.engine.cancel(b)).status, CANCELED)
        h.controls.pending[a].callback(None)
        self.assertEqual(h.controls.started, [a, c])


class CoalesceTests(SynchronousTestCase):
    def test_equal_queued_job_is_returned(self) -> None:
        h = Harness(self)
        first, coalesced = h.submit(self, "test.wait", {"n": 1})
        self.assertFalse(coalesced)
        self.assertEqual(h.submit(self, "test.wait", {"n": 1}), (first, True))
        other, coalesced = h.submit(self, "test.wait", {"n": 2})
        self.assertNotEqual(other, first)
        self.assertFalse(coalesced)
        # Defaults are filled in before comparing.
        zero, _ = h.submit(self, "test.wait", {})
        self.assertEqual(h.submit(self, "test.wait", {"n": 0}), (zero, True))
        self.assertEqual(h.submit(self, "test.wait", None), (zero, True))
        self.assertEqual(len(store.list_jobs(h.db.connection)[0]), 3)
        self.assertEqual(h.statuses(first), [QUEUED])

    def test_not_coalesced_once_running(self) -> None:
        h = Harness(self, workers=1)
        h.engine.startService()
        first, _ = h.submit(self, "test.wait", {"n": 1})
        self.assertEqual(h.stored(first).status, RUNNING)
        second, coalesced = h.submit(self, "test.wait", {"n": 1})
        self.assertNotEqual(second, first)
        self.assertFalse(coalesced)
        self.assertEqual(h.submit(self, "test.wait", {"n": 1}), (second, True))

    def test_not_coalesced_after_cancel(self) -> None:
        h = Harness(self)
        first, _ = h.submit(self, "test.wait", {"n": 1})
        self.successResultOf(h.engine.cancel(first))
        second, coalesced = h.submit(self, "test.wait", {"n": 1})
        self.assertNotEqual(second, first)
        self.assertFalse(coalesced)

    def test_merge_rule(self) -> None:
        h = Harness(self, workers=1)
        first, _ = h.submit(self, "test.merge", {"paths": ["b"]})
        job, coalesced = self.successResultOf(
            h.engine.submit("test.merge", {"paths": ["a", "c"]}))
        self.assertEqual((job.job_id, coalesced, job.payload),
                         (first, True, {"paths": ["a", "b", "c"]}))
        self.assertEqual(h.stored(first).payload, {"paths": ["a", "b", "c"]})
        # The merged payload is now the queued job's key.
        self.assertEqual(h.submit(self, "test.merge", {"paths": ["a", "b", "c"]}),
                         (first, True))
        self.assertEqual(len(store.list_jobs(h.db.connection)[0]), 1)
        h.engine.startService()
        self.assertEqual(h.controls.contexts[first].payload, {"paths": ["a", "b", "c"]})
        second, coalesced = h.submit(self, "test.merge", {"paths": ["a"]})
        self.assertNotEqual(second, first)
        self.assertFalse(coalesced)


class CancelTests(SynchronousTestCase):
    def test_cancel_queued(self) -> None:
        h = Harness(self)
        job_id, _ = h.submit(self, "test.wait")
        job = self.successResultOf(h.engine.cancel(job_id))
        self.assertEqual(job.status, CANCELED)
        self.assertEqual(h.stored(job_id).status, CANCELED)
        self.assertEqual(h.statuses(job_id), [QUEUED, CANCELED])
        h.engine.startService()
        self.assertEqual(h.controls.started, [])
        self.assertEqual(h.engine.status()["queue_depth"], 0)

    def test_cancel_running_deferred(self) -> None:
        h = Harness(self)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.wait")
        job = self.successResultOf(h.engine.cancel(job_id))
        self.assertEqual(job.status, CANCELED)
        self.assertEqual(h.stored(job_id).status, CANCELED)
        self.assertIsInstance(h.controls.outcomes[job_id].value, CancelledError)
        self.assertEqual(h.statuses(job_id), [QUEUED, RUNNING, CANCELED])
        self.assertEqual(h.engine.status()["workers"]["active"], 0)

    def test_cancel_flag_stops_batches(self) -> None:
        h = Harness(self)
        h.engine.startService()

        def on_batch(ctx: JobContext, index: int) -> None:
            if index == 2:  # a cancel request arrives while batch 2 runs
                h.engine.cancel(ctx.job_id)
        h.controls.on_batch = on_batch
        job_id, _ = h.submit(self, "test.batches", {"batches": 10})
        self.assertEqual(h.controls.batches_done, [0, 1, 2])
        self.assertEqual(h.stored(job_id).status, CANCELED)
        self.assertEqual(len(h.terminal_messages(job_id)), 1)

    def test_cancel_running_waits_for_tracked_work(self) -> None:
        runner = ManualRunner()
        h = Harness(self, runner=runner)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.batches", {"batches": 3})
        waiting, _ = h.submit(self, "test.locked_a")
        self.assertEqual((len(runner.calls), h.controls.started), (1, [job_id]))
        canceled = h.engine.cancel(job_id)
        self.assertNoResult(canceled)
        # The handler is canceled but its thread work is still in flight: the
        # job keeps its lock and stays running.
        self.assertEqual(h.stored(job_id).status, RUNNING)
        self.assertEqual(h.controls.started, [job_id])
        runner.run_next()
        self.assertEqual(h.controls.batches_done, [])
        self.assertEqual(self.successResultOf(canceled).status, CANCELED)
        self.assertEqual(h.stored(job_id).status, CANCELED)
        self.assertEqual(h.controls.started, [job_id, waiting])

    def test_repeated_cancel_still_waits_for_tracked_work(self) -> None:
        runner = ManualRunner()
        h = Harness(self, runner=runner)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.batches", {"batches": 3})
        waiting, _ = h.submit(self, "test.locked_a")
        first = h.engine.cancel(job_id)
        second = h.engine.cancel(job_id)
        stopped = h.engine.stopService()
        self.assertEqual(h.stored(job_id).status, RUNNING)
        self.assertEqual(h.controls.started, [job_id])
        for d in (first, second, stopped):
            self.assertNoResult(d)
        runner.run_next()
        # Canceled before the stop: not requeued to run again at the next start.
        self.assertEqual(h.stored(job_id).status, CANCELED)
        self.assertEqual(len(h.terminal_messages(job_id)), 1)
        self.assertEqual(self.successResultOf(first).status, CANCELED)
        self.assertEqual(self.successResultOf(second).status, CANCELED)
        self.successResultOf(stopped)
        self.assertEqual(h.controls.started, [job_id])  # stopping: nothing else starts
        self.assertEqual(h.stored(waiting).status, QUEUED)

    def test_cancel_that_does_not_stop_in_time(self) -> None:
        runner = ManualRunner()
        h = Harness(self, runner=runner)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.batches", {"batches": 1})
        canceled = h.engine.cancel(job_id)
        h.clock.advance(CANCEL_WAIT - 0.01)
        self.assertNoResult(canceled)
        h.clock.advance(0.01)
        self.assertEqual(self.successResultOf(canceled).status, RUNNING)
        runner.run_next()
        self.assertEqual(h.stored(job_id).status, CANCELED)
        self.assertEqual(len(h.terminal_messages(job_id)), 1)

    def test_cancel_finished(self) -> None:
        h = Harness(self)
        h.engine.startService()
        done, _ = h.submit(self, "test.blocking", {"n": 1})
        failed, _ = h.submit(self, "test.fail")
        canceled, _ = h.submit(self, "test.wait")
        self.successResultOf(h.engine.cancel(canceled))
        for job_id, status in ((done, SUCCEEDED), (failed, FAILED), (canceled, CANCELED)):
            failure = self.failureResultOf(h.engine.cancel(job_id), JobFinished)
            self.assertEqual(failure.value.job.status, status)
            self.assertEqual(h.stored(job_id).status, status)
            self.assertEqual(len(h.terminal_messages(job_id)), 1)

    def test_cancel_unknown(self) -> None:
        h = Harness(self)
        h.engine.startService()
        self.failureResultOf(h.engine.cancel("job_20240501_999"), JobNotFound)

    def test_cancel_during_start_waits_for_the_queue(self) -> None:
        h = Harness(self)
        job_id, _ = h.submit(self, "test.wait")
        h.engine._queue.clear()  # as if the engine had not loaded its queue yet
        h.engine._queued_by_key.clear()
        d = h.engine.cancel(job_id)
        self.assertNoResult(d)
        h.engine.startService()
        self.assertEqual(self.successResultOf(d).status, CANCELED)


class ProgressTests(SynchronousTestCase):
    def test_throttled_to_one_event_per_interval(self) -> None:
        h = Harness(self)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.wait")
        ctx = h.controls.contexts[job_id]
        step = PROGRESS_INTERVAL / 20
        reported = []
        for i in range(1, 101):  # 100 reports over 0.5 s
            ctx.progress(i / 100, f"step {i}")
            reported.append(i / 100)
            h.clock.advance(step)
        ctx.progress(2.0)  # clamped to 1.0; still pending when the job ends
        h.controls.pending[job_id].callback(None)
        sent = h.progress(job_id)
        self.assertLessEqual(len(sent), 7)
        self.assertGreaterEqual(len(sent), 5)
        # Only the flush at the end may come sooner than the interval.
        times = [t for t, _ in sent][:-1]
        for earlier, later in itertools.pairwise(times):
            self.assertGreaterEqual(later - earlier, PROGRESS_INTERVAL - 1e-6)
        values = [p for _, p in sent]
        self.assertEqual(values, sorted(values))
        self.assertEqual(values[0], 0.01)
        self.assertEqual(values[-1], 1.0)
        types = [m["type"] for m in h.messages if m["job_id"] == job_id]
        self.assertEqual(types[-2:], ["job.progress", "job.status"])
        stored = h.stored(job_id)
        self.assertEqual((stored.progress, stored.message), (1.0, "step 100"))

    def test_latest_value_flushed_before_terminal_status(self) -> None:
        h = Harness(self)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.wait")
        ctx = h.controls.contexts[job_id]
        ctx.progress(0.5, "half")
        ctx.progress(0.7, "most")
        self.assertEqual([p for _, p in h.progress(job_id)], [0.5])
        h.controls.pending[job_id].errback(CancelledError())
        tail = [m for m in h.messages if m["job_id"] == job_id][-2:]
        self.assertEqual((tail[0]["type"], tail[0]["progress"], tail[0]["message"]),
                         ("job.progress", 0.7, "most"))
        self.assertEqual((tail[1]["type"], tail[1]["status"]), ("job.status", CANCELED))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_pending_flush_fires_on_the_clock(self) -> None:
        h = Harness(self)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.wait")
        ctx = h.controls.contexts[job_id]
        ctx.progress(0.1)
        h.clock.advance(0.05)
        ctx.progress(0.2)
        ctx.progress(0.3)
        h.clock.advance(0.049)
        self.assertEqual([p for _, p in h.progress(job_id)], [0.1])
        h.clock.advance(0.002)
        self.assertEqual([p for _, p in h.progress(job_id)], [0.1, 0.3])
        self.assertEqual(h.stored(job_id).progress, 0.3)


    def test_progress_while_waiting(self) -> None:
        """A long wait is reported every second, and only until it ends."""
        h = Harness(self)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.wait")
        ctx = h.controls.contexts[job_id]
        work: Deferred[str] = Deferred()
        waited = ctx.progress_while(work, 0.4, lambda s: f"loading the model ({s} s)")
        h.clock.advance(0.5)
        self.assertEqual(h.progress(job_id), [])
        for _ in range(3):
            h.clock.advance(HEARTBEAT)
        self.assertEqual([(m["progress"], m["message"]) for m in h.messages
                          if m["job_id"] == job_id and m["type"] == "job.progress"],
                         [(0.4, f"loading the model ({s} s)") for s in (1, 2, 3)])
        work.callback("loaded")
        self.assertEqual(self.successResultOf(waited), "loaded")
        h.clock.advance(10 * HEARTBEAT)
        self.assertEqual(len(h.progress(job_id)), 3)


class RecoveryTests(SynchronousTestCase):
    def test_crash_requeues_running_job_and_keeps_queued_ones(self) -> None:
        first = Harness(self, workers=1)
        first.engine.startService()
        running, _ = first.submit(self, "test.wait", {"n": 1})
        queued, _ = first.submit(self, "test.wait", {"n": 2})
        self.assertEqual(first.stored(running).attempts, 1)

        second = Harness(self, first.path, workers=1)
        second.engine.startService()
        self.assertEqual(second.statuses(running), [QUEUED, RUNNING])
        self.assertTrue(all(m["seq"] > first.bus.seq for m in second.messages))
        self.assertEqual(second.controls.started, [running])
        self.assertEqual(second.stored(running).attempts, 2)
        self.assertEqual(second.stored(queued).status, QUEUED)
        second.controls.pending[running].callback("again")
        self.assertEqual(second.controls.started, [running, queued])
        second.controls.pending[queued].callback("late")
        self.assertEqual([second.stored(i).status for i in (running, queued)],
                         [SUCCEEDED, SUCCEEDED])
        self.assertEqual(second.stored(queued).attempts, 1)

    def test_fails_after_max_attempts(self) -> None:
        run = Harness(self)
        run.engine.startService()
        job_id, _ = run.submit(self, "test.wait")
        for attempt in range(2, MAX_ATTEMPTS + 1):
            run = Harness(self, run.path)
            run.engine.startService()
            self.assertEqual(run.stored(job_id).attempts, attempt)
            self.assertEqual(run.stored(job_id).status, RUNNING)
        last = Harness(self, run.path)
        last.engine.startService()
        stored = last.stored(job_id)
        self.assertEqual((stored.status, stored.error["code"], stored.attempts),
                         (FAILED, "interrupted", MAX_ATTEMPTS))
        self.assertEqual(last.controls.started, [])
        [terminal] = last.terminal_messages(job_id)
        self.assertEqual(terminal["error"]["code"], "interrupted")
        recorded = store.recent_events(last.db.connection, job_id)
        self.assertEqual(recorded[-1].meta["status"], FAILED)

    def test_unknown_type_in_queue_fails(self) -> None:
        first = Harness(self)
        job_id, _ = first.submit(self, "test.wait")
        second = Harness(self, first.path)
        second.registry._types.pop("test.wait")
        second.engine.startService()
        stored = second.stored(job_id)
        self.assertEqual((stored.status, stored.error["code"]), (FAILED, "unknown_type"))

    def test_graceful_stop_requeues_running_jobs(self) -> None:
        first = Harness(self, workers=2)
        first.engine.startService()
        job_id, _ = first.submit(self, "test.wait")
        stopped = first.engine.stopService()
        self.successResultOf(stopped)
        self.assertIsInstance(first.controls.outcomes[job_id].value, CancelledError)
        self.assertEqual(first.stored(job_id).status, QUEUED)
        self.assertEqual(first.statuses(job_id), [QUEUED, RUNNING, QUEUED])
        self.assertEqual(first.controls.started, [job_id])  # not started again

        second = Harness(self, first.path)
        second.engine.startService()
        self.assertEqual(second.controls.started, [job_id])
        self.assertEqual(second.stored(job_id).attempts, 2)
        second.controls.pending[job_id].callback(None)
        self.assertEqual(second.stored(job_id).status, SUCCEEDED)

    def test_stop_does_not_wait_forever(self) -> None:
        runner = ManualRunner()
        h = Harness(self, runner=runner)
        h.engine.startService()
        job_id, _ = h.submit(self, "test.batches", {"batches": 2})
        stopped = h.engine.stopService()
        self.assertNoResult(stopped)
        h.clock.advance(STOP_WAIT)
        self.successResultOf(stopped)
        self.assertEqual(h.stored(job_id).status, RUNNING)  # left to recovery
        runner.run_next()
        self.assertEqual(h.stored(job_id).status, QUEUED)

    def test_submit_while_starting_runs_once(self) -> None:
        db_runner = ManualRunner()
        first = Harness(self)
        old, _ = first.submit(self, "test.wait", {"n": 1})
        h = Harness(self, first.path, workers=1, db_runner=db_runner)
        submitted = h.engine.submit("test.wait", {"n": 2})
        h.engine.startService()
        # The new job is stored before start-up reads the queue, so that read
        # finds it as well as the engine's memory does.
        while db_runner.calls:
            db_runner.run_next()
        new = self.successResultOf(submitted)[0].job_id
        self.assertEqual((h.controls.started, h.engine.status()["queue_depth"]), ([old], 1))
        h.controls.pending[old].callback(None)
        while db_runner.calls:
            db_runner.run_next()
        self.assertEqual(h.controls.started, [old, new])
        h.controls.pending[new].callback(None)
        while db_runner.calls:
            db_runner.run_next()
        self.assertEqual(h.controls.started, [old, new])
        self.assertEqual(h.engine.status()["queue_depth"], 0)
        self.assertEqual([h.stored(i).status for i in (old, new)], [SUCCEEDED, SUCCEEDED])


class CompactTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.retention = 30
        self.h = Harness(self, extra_types=lambda h: [
            compact_job(h.db, h.clock.seconds, lambda: self.retention)])
        self.h.engine.startService()
        conn = self.h.db.connection
        # Event ids as an earlier run (before a restart gap) would have left them.
        rows = [("old_done", SUCCEEDED, "2024-03-01T00:00:00Z", [-9, -8]),
                ("old_failed", FAILED, "2024-03-20T00:00:00Z", [-7]),
                ("recent_done", SUCCEEDED, "2024-04-20T00:00:00Z", [-6, -5]),
                ("old_queued", QUEUED, "2024-01-01T00:00:00Z", [-4])]
        for job_id, status, updated, events in rows:
            job = Job(job_id=job_id, type="test.wait", status=status, created_at=updated,
                      updated_at=updated, payload={})
            store.insert_job(conn, job, [EventRow(e, job_id, updated, "info", "x", {})
                                         for e in events])

    def compact(self, payload: dict[str, Any] | None = None) -> Any:
        job_id, coalesced = self.h.submit(self, "maintenance.compact", payload)
        self.assertFalse(coalesced)
        stored = self.h.stored(job_id)
        self.assertEqual(stored.status, SUCCEEDED, stored.error)
        return stored.result

    def remaining(self) -> set[str]:
        return {j.job_id for j in store.list_jobs(self.h.db.connection, types=["test.wait"])[0]}

    def test_prunes_per_retention(self) -> None:
        result = self.compact()
        self.assertEqual((result["pruned_jobs"], result["pruned_events"]), (2, 3))
        self.assertEqual(result["integrity_check"], "ok")
        self.assertEqual((result["analyzed"], result["vacuumed"]), (True, False))
        self.assertEqual(self.remaining(), {"recent_done", "old_queued"})
        self.assertEqual(store.pruned_through(self.h.db.connection), 0)
        self.retention = 5
        result = self.compact()
        self.assertEqual((result["pruned_jobs"], result["pruned_events"]), (1, 2))
        self.assertEqual(self.remaining(), {"old_queued"})

    def test_flags(self) -> None:
        result = self.compact({"vacuum": True})
        self.assertEqual((result["analyzed"], result["vacuumed"]), (True, True))
        self.assertEqual(result["integrity_check"], "ok")
        self.assertIsInstance(result["size_after"], int)
        result = self.compact({"analyze": False})
        self.assertEqual((result["analyzed"], result["vacuumed"]), (False, False))

    def test_failed_integrity_check_marks_the_file_for_repair(self) -> None:
        problems = ["*** in database main ***", "Page 7: btreeInitPage() returns error code 11"]
        self.patch(compact_module, "_integrity", lambda conn: problems)
        result = self.compact()
        self.assertEqual(result["integrity_check"], problems)
        self.assertEqual(self.h.db.damage, "integrity check: *** in database main ***")

    def test_reports_progress(self) -> None:
        job_id, _ = self.h.submit(self, "maintenance.compact")
        messages = [e.message for e in store.recent_events(self.h.db.connection, job_id)]
        self.assertIn("pruning finished jobs", messages)
        self.assertEqual(messages[-1], "succeeded")


def schema_fields(schema: Any, prefix: str = "") -> list[tuple[str, Field]]:
    """Every field of a (possibly nested) schema, with its dotted path."""
    found: list[tuple[str, Field]] = []
    for key, spec in schema.items():
        if isinstance(spec, Field):
            found.append((prefix + key, spec))
        else:
            found.extend(schema_fields(spec, f"{prefix}{key}."))
    return found


def nested(dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    return {head: nested(rest, value) if rest else value}


class PayloadValidationTests(TestCase):
    """Every job type the daemon registers refuses malformed payloads."""

    WRONG: list[Any] = ["text", 12345, 1.5, True, [], {}, None, [1, 2]]

    def setUp(self) -> None:
        # The registry exactly as the daemon builds it (bound, never started),
        # with a vault, which some types need to check their paths.
        vault = self.mktemp()
        os.makedirs(vault)
        config = resolve_config({"port": "0", "token": "t" * 20, "data-dir": self.mktemp(),
                                 "vault": vault}, {})
        prepare_directories(config)
        daemon = from_config(reactor, config)
        self.addCleanup(daemon.getServiceNamed("web").stopService)
        self.registry = daemon.getServiceNamed("jobs").registry
        self.types = [self.registry.get(name) for name in self.registry.names()]

    def test_known_types(self) -> None:
        self.assertIn("maintenance.compact", self.registry.names())

    def test_defaults(self) -> None:
        for spec in self.types:
            defaults = spec.validate(None)
            self.assertEqual(spec.validate({}), defaults, spec.name)
            for dotted, field in schema_fields(spec.payload):
                value: Any = defaults
                for part in dotted.split("."):
                    value = value[part]
                self.assertEqual(value, field.default, f"{spec.name} {dotted}")

    def test_unknown_field(self) -> None:
        for spec in self.types:
            error = self.assertRaises(ValidationError, spec.validate, {"x": 1})
            self.assertEqual(error.field, "payload.x", spec.name)

    def test_not_an_object(self) -> None:
        for spec in self.types:
            for payload in ([], "x", 3):
                error = self.assertRaises(ValidationError, spec.validate, payload)
                self.assertEqual(error.field, "payload", spec.name)

    def test_wrong_types(self) -> None:
        for spec in self.types:
            for dotted, _ in schema_fields(spec.payload):
                refused = 0
                for value in self.WRONG:
                    try:
                        spec.validate(nested(dotted, value))
                    except ValidationError as e:
                        refused += 1
                        # The field itself, or one of its items.
                        self.assertIn(e.field.split("[")[0], (f"payload.{dotted}",),
                                      f"{spec.name}: {e.field}")
                self.assertGreater(refused, len(self.WRONG) // 2, f"{spec.name} {dotted}")

    def test_through_the_engine(self) -> None:
        h = Harness(self, extra_types=lambda h: [
            self.registry.get(name) for name in self.registry.names()])
        for spec in self.types:
            error = self.assertRaises(ValidationError, h.engine.submit, spec.name,
                                      {"x": True})
            self.assertEqual(error.field, "payload.x")
        self.assertEqual(store.list_jobs(h.db.connection), ([], None))
