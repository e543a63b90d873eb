"""The job engine: a persistent queue, N workers, locks, cancellation, recovery.

The database is the record; the engine keeps the queued and running jobs in
memory and writes every change through the database thread, in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from attrs import define, evolve, field
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredLock,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from enttok.common.times import utc_iso
from enttok.events.bus import EventBus
from enttok.jobs import store
from enttok.jobs.context import JobCanceled, JobContext, JobFailed
from enttok.jobs.model import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    check_transition,
    job_id_for,
    payload_key,
)
from enttok.jobs.registry import JobRegistry
from enttok.jobs.store import EventRow
from enttok.store import Database
from enttok.threads import BlockingRunner

MAX_ATTEMPTS = 3
#: Progress events of one job are sent at most this often (seconds).
PROGRESS_INTERVAL = 0.1
#: How long a cancel request waits for a running job to stop before answering.
CANCEL_WAIT = 2.0
#: How long stopping waits for running jobs before leaving them to recovery.
STOP_WAIT = 3.0


class JobNotFound(KeyError):
    """No job has that id."""


class JobFinished(Exception):
    """The job is already in a terminal state."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.status)
        self.job = job


@define
class _Run:
    """A job being run: its context, its handler's Deferred and throttling state."""

    job: Job
    ctx: JobContext
    lock: str | None
    deferred: Deferred[Any] | None = None
    finished: Deferred[Job] = field(factory=Deferred)
    shutdown: bool = False
    last_emit: float = -1.0
    pending: tuple[float, str | None] | None = None
    flush_call: IDelayedCall | None = None


def _status_message(job: Job) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "job.status", "job_id": job.job_id,
                               "job_type": job.type, "status": job.status}
    if job.error is not None:
        message["error"] = job.error
    return message


def _is_json(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class JobEngine(Service):
    """
    Runs jobs from the persistent queue with at most C{workers} at once.

    @param clock: time and timers (a L{twisted.internet.task.Clock} in tests).
    @param run_blocking: where handlers' blocking work runs (see L{JobContext}).
    @param call_from_thread: hands calls from threads to the reactor thread.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, db: Database, registry: JobRegistry,
                 bus: EventBus, run_blocking: BlockingRunner,
                 call_from_thread: Callable[..., None], workers: int = 2) -> None:
        self._clock = clock
        self._db = db
        self.registry = registry
        self._bus = bus
        self._run_blocking = run_blocking
        self._call_from_thread = call_from_thread
        self.workers = workers
        self._queue: list[Job] = []
        self._queued_by_key: dict[str, Job] = {}
        self._running: dict[str, _Run] = {}
        self._held_locks: set[str] = set()
        self._submit_lock = DeferredLock()
        self._id_day = ""
        self._id_number = 0
        self._ready = False
        self._waiting_for_ready: list[Deferred[None]] = []
        self._pumping = False

    # Status

    def status(self) -> dict[str, Any]:
        """The engine's part of C{/status}."""
        active = len(self._running)
        return {"queue_depth": len(self._queue),
                "workers": {"active": active, "idle": max(0, self.workers - active)}}

    def set_workers(self, workers: int) -> None:
        """Change the number of workers; extra ones start at once."""
        self.workers = workers
        self._pump()

    # Submitting

    def submit(self, job_type: str, payload: Any) -> Deferred[tuple[Job, bool]]:
        """
        Validate and queue a job, or return an equal queued one.

        @raise enttok.jobs.registry.UnknownJobType: synchronously.
        @raise enttok.validation.ValidationError: synchronously, naming the field.
        @return: fires with C{(job, coalesced)} once the job is persisted.
        """
        spec = self.registry.get(job_type)
        clean = spec.validate(payload)
        return self._submit_lock.run(self._enqueue, job_type, clean)

    def _enqueue(self, job_type: str, payload: dict[str, Any]) -> Deferred[tuple[Job, bool]]:
        key = payload_key(job_type, payload)
        existing = self._queued_by_key.get(key)
        if existing is not None:
            return succeed((existing, True))
        spec = self.registry.get(job_type)
        if spec.merge is not None:
            for queued in self._queue:
                if queued.type == job_type:
                    return self._merge_into(queued, spec.merge(queued.payload, payload))
        return self._next_job_id().addCallback(self._insert, job_type, payload, key)

    def _next_job_id(self) -> Deferred[str]:
        now = self._clock.seconds()
        day_prefix = job_id_for(now, 0)[:-3]
        if day_prefix == self._id_day:
            self._id_number += 1
            return succeed(job_id_for(now, self._id_number))

        def known(highest: int) -> str:
            self._id_day, self._id_number = day_prefix, highest + 1
            return job_id_for(now, self._id_number)

        return self._db.run(store.max_job_number, day_prefix).addCallback(known)

    def _insert(self, job_id: str, job_type: str, payload: dict[str, Any],
                key: str) -> Deferred[tuple[Job, bool]]:
        now = utc_iso(self._clock.seconds())
        job = Job(job_id=job_id, type=job_type, status=QUEUED, created_at=now, updated_at=now,
                  payload=payload, key=key)
        event = self._publish(job, _status_message(job), "info", "queued")
        d = self._db.run(store.insert_job, evolve(job), [event])

        def persisted(_: object) -> tuple[Job, bool]:
            snapshot = evolve(job)  # as queued, before a worker may start it
            self._queue.append(job)
            self._queued_by_key[key] = job
            self._pump()
            return snapshot, False

        return d.addCallback(persisted)

    def _merge_into(self, queued: Job, payload: dict[str, Any]) -> Deferred[tuple[Job, bool]]:
        self._queued_by_key.pop(queued.key, None)
        queued.payload = payload
        queued.key = payload_key(queued.type, payload)
        queued.updated_at = utc_iso(self._clock.seconds())
        self._queued_by_key[queued.key] = queued
        d = self._save(queued, QUEUED, [])
        return d.addCallback(lambda _: (evolve(queued), True))

    # Events

    def _publish(self, job: Job, message: dict[str, Any], level: str, text: str) -> EventRow:
        """Send C{message} now and return the row that records it."""
        sent = self._bus.publish(message)
        return EventRow(event_id=sent["seq"], job_id=job.job_id,
                        created_at=utc_iso(self._clock.seconds()), level=level,
                        message=text, meta=sent)

    def _save(self, job: Job, expected: str, events: list[EventRow]) -> Deferred[bool]:
        # The database thread gets a copy: the engine keeps changing the job.
        d = self._db.run(store.save_job, evolve(job), expected, events)

        def check(saved: bool) -> bool:
            if not saved:
                self.log.error("job {job_id} changed underneath the engine", job_id=job.job_id)
            return saved

        d.addCallback(check)
        d.addErrback(lambda f: self.log.failure("could not save {job_id}", f,
                                                job_id=job.job_id))
        return d

    def _transition(self, job: Job, new_status: str, text: str,
                    **changes: Any) -> Deferred[bool]:
        old = job.status
        check_transition(old, new_status)
        job.status = new_status
        job.updated_at = utc_iso(self._clock.seconds())
        for name, value in changes.items():
            setattr(job, name, value)
        event = self._publish(job, _status_message(job), "info", text)
        return self._save(job, old, [event])

    # Running

    def _pump(self) -> None:
        # A job that ends at once calls back into here from _start; the loop below
        # picks up what that frees, so nested calls need not recurse (one per job).
        if not self._ready or not self.running or self._pumping:
            return
        self._pumping = True
        try:
            while len(self._running) < self.workers:
                job = next((j for j in self._queue
                            if self._lock_of(j) not in self._held_locks), None)
                if job is None:
                    return
                self._start(job)
        finally:
            self._pumping = False

    def _lock_of(self, job: Job) -> str | None:
        return self.registry.get(job.type).lock if job.type in self.registry else None

    def _dequeue(self, job: Job) -> None:
        self._queue.remove(job)
        if self._queued_by_key.get(job.key) is job:
            del self._queued_by_key[job.key]

    def _start(self, job: Job) -> None:
        self._dequeue(job)
        spec = self.registry.get(job.type)
        ctx = JobContext(job.job_id, job.type, job.payload, self, self._run_blocking,
                         self._call_from_thread, self._clock)
        run = _Run(job=job, ctx=ctx, lock=spec.lock)
        if spec.lock is not None:
            self._held_locks.add(spec.lock)
        self._running[job.job_id] = run
        self._transition(job, RUNNING, "running", attempts=job.attempts + 1,
                         progress=0.0, error=None)
        run.deferred = maybeDeferred(spec.handler, ctx)
        run.deferred.addBoth(self._handler_done, run)

    def _handler_done(self, result: object, run: _Run) -> None:
        d = run.ctx.idle()
        d.addCallback(lambda _: self._finish(run, result))
        d.addErrback(lambda f: self.log.failure("finishing {job_id} failed", f,
                                                job_id=run.job.job_id))
        # Not returned: a second cancel of run.deferred would cancel this wait
        # and release the job's lock while its thread work still runs.

    def _finish(self, run: _Run, result: object) -> None:
        job = run.job
        self._flush_progress(run)
        if isinstance(result, Failure):
            if result.check(CancelledError, JobCanceled) and run.shutdown:
                self._transition(job, QUEUED, "requeued at shutdown")
            elif result.check(CancelledError, JobCanceled):
                self._transition(job, CANCELED, "canceled", message="canceled")
            elif result.check(JobFailed):
                failure = result.value
                assert isinstance(failure, JobFailed)
                self._transition(job, FAILED, f"failed: {failure.message}",
                                 error={"code": failure.code, "message": failure.message})
            else:
                self.log.failure("job {job_id} ({type}) crashed", result, job_id=job.job_id,
                                 type=job.type)
                self._transition(job, FAILED, "failed: internal error",
                                 error={"code": "internal",
                                        "message": f"{type(result.value).__name__}: "
                                                   f"{result.getErrorMessage()}"})
        elif not _is_json(result):
            self.log.error("job {job_id} returned a result that is not JSON", job_id=job.job_id)
            self._transition(job, FAILED, "failed: internal error",
                             error={"code": "internal", "message": "result is not JSON"})
        else:
            self._transition(job, SUCCEEDED, "succeeded", progress=1.0, result=result)
        del self._running[job.job_id]
        if run.lock is not None:
            self._held_locks.discard(run.lock)
        run.finished.callback(job)
        self._pump()

    # Progress (the Reporter protocol of JobContext)

    def progress(self, job_id: str, fraction: float, message: str | None) -> None:
        run = self._running.get(job_id)
        if run is None:
            return
        run.pending = (fraction, message)
        if run.flush_call is not None:
            return
        delay = run.last_emit + PROGRESS_INTERVAL - self._clock.seconds()
        if delay <= 0:
            self._flush_progress(run)
        else:
            run.flush_call = self._clock.callLater(delay, self._flush_progress, run)

    def _flush_progress(self, run: _Run) -> None:
        if run.flush_call is not None and run.flush_call.active():
            run.flush_call.cancel()
        run.flush_call = None
        if run.pending is None:
            return
        (fraction, message), run.pending = run.pending, None
        run.last_emit = self._clock.seconds()
        job = run.job
        job.progress = fraction
        if message is not None:
            job.message = message
        job.updated_at = utc_iso(run.last_emit)
        event = self._publish(job, {"type": "job.progress", "job_id": job.job_id,
                                    "progress": fraction, "message": job.message},
                              "info", job.message or f"{fraction:.0%}")
        self._save(job, RUNNING, [event])

    def note(self, job_id: str, level: str, message: str, meta: dict[str, Any]) -> None:
        run = self._running.get(job_id)
        if run is None:
            return
        sent = self._bus.publish({"type": "log", "level": level, "message": message,
                                  "job_id": job_id, **({"details": meta} if meta else {})})
        row = EventRow(event_id=sent["seq"], job_id=job_id,
                       created_at=utc_iso(self._clock.seconds()), level=level,
                       message=message, meta=sent)
        self._db.run(store.add_events, [row]).addErrback(
            lambda f: self.log.failure("could not record an event", f))

    # Cancel

    def cancel(self, job_id: str) -> Deferred[Job]:
        """
        Cancel a job: a queued one at once, a running one cooperatively.

        @return: fires with the job: C{canceled}, or still C{running} when it did
            not stop within L{CANCEL_WAIT}; errbacks with L{JobNotFound} or
            L{JobFinished}.
        """
        queued = next((j for j in self._queue if j.job_id == job_id), None)
        if queued is not None:
            self._dequeue(queued)
            d = self._transition(queued, CANCELED, "canceled", message="canceled")
            return d.addCallback(lambda _: queued)
        run = self._running.get(job_id)
        if run is not None:
            run.ctx.request_cancel()
            if run.deferred is not None:
                run.deferred.cancel()
            return self._wait(run.finished, CANCEL_WAIT, run.job)
        if not self._ready:
            # Still loading the queue at start: the job may be in it.
            waiting: Deferred[None] = Deferred()
            self._waiting_for_ready.append(waiting)
            return waiting.addCallback(lambda _: self.cancel(job_id))
        return self._db.run(store.get_job, job_id).addCallback(self._not_cancelable, job_id)

    @staticmethod
    def _not_cancelable(job: Job | None, job_id: str) -> Job:
        if job is None:
            raise JobNotFound(job_id)
        raise JobFinished(job)

    def _wait(self, finished: Deferred[Job], timeout: float, fallback: Job) -> Deferred[Job]:
        """Fire with C{finished}'s job, or with C{fallback} after C{timeout} seconds."""
        result: Deferred[Job] = Deferred()
        timer = self._clock.callLater(timeout, lambda: result.callback(fallback))

        def done(job: Job) -> Job:
            if timer.active():
                timer.cancel()
                result.callback(job)
            return job

        finished.addCallback(done)
        return result

    # Reading

    def get(self, job_id: str) -> Deferred[tuple[Job, list[EventRow]]]:
        """@return: fires with the job and its recent events; errbacks L{JobNotFound}."""
        def read(conn: Any) -> tuple[Job, list[EventRow]]:
            job = store.get_job(conn, job_id)
            if job is None:
                raise JobNotFound(job_id)
            return job, store.recent_events(conn, job_id)
        return self._db.run(read)

    def list_jobs(self, statuses: list[str], types: list[str], limit: int,
             before: int | None) -> Deferred[tuple[list[Job], int | None]]:
        """Jobs newest first; see L{enttok.jobs.store.list_jobs}."""
        return self._db.run(store.list_jobs, statuses, types, limit, before)

    # Service

    def startService(self) -> None:
        super().startService()
        d = self._db.run(store.running_jobs)
        d.addCallback(self._recover)
        d.addCallback(lambda _: self._db.run(store.jobs_with_status, QUEUED))
        d.addCallback(self._load_queue)

        def failed(failure: Failure) -> None:
            self.log.failure("job recovery failed; running new jobs only", failure)
            if not self._ready:
                self._load_queue([])

        d.addErrback(failed)

    def _recover(self, interrupted: list[Job]) -> Deferred[Any]:
        saves = []
        for job in interrupted:
            if job.attempts >= MAX_ATTEMPTS:
                saves.append(self._transition(
                    job, FAILED, "failed: interrupted",
                    error={"code": "interrupted",
                           "message": f"interrupted {job.attempts} times; not retried"}))
            else:
                saves.append(self._transition(job, QUEUED, "requeued after an interruption",
                                              message="requeued after an interruption"))
        if interrupted:
            self.log.info("recovered {n} interrupted jobs", n=len(interrupted))
        return DeferredList(saves)

    def _load_queue(self, queued: list[Job]) -> None:
        # Jobs submitted while starting are in memory already; the read saw them too.
        submitted = {job.job_id for job in self._queue}
        recovered = []
        for job in queued:
            if job.job_id in submitted:
                continue
            if job.type not in self.registry:
                self._transition(job, FAILED, "failed: unknown type",
                                 error={"code": "unknown_type",
                                        "message": f"this version cannot run {job.type!r}"})
                continue
            recovered.append(job)
            self._queued_by_key.setdefault(job.key, job)
        self._queue[:0] = recovered  # older than anything submitted meanwhile
        self._ready = True
        waiting, self._waiting_for_ready = self._waiting_for_ready, []
        for d in waiting:
            d.callback(None)
        self._pump()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        waits = []
        for run in list(self._running.values()):
            run.shutdown = not run.ctx.canceled  # a job canceled already stays canceled
            run.ctx.request_cancel()
            if run.deferred is not None:
                run.deferred.cancel()
            waits.append(self._wait(run.finished, STOP_WAIT, run.job))
        return DeferredList(waits)
