"""Shared pieces for the job engine tests: small job types and a synchronous engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, execute
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from enttok.events.bus import EventBus, Message
from enttok.jobs import store
from enttok.jobs.context import JobContext, JobFailed
from enttok.jobs.engine import JobEngine
from enttok.jobs.model import TERMINAL
from enttok.jobs.registry import JobRegistry, JobType
from enttok.store import Database
from enttok.threads import BlockingRunner, run_inline
from enttok.validation import Field, array, integer, text

#: 2024-05-01T12:00:00Z: job ids are job_20240501_NNN.
START = 1_714_564_800.0
DAY_PREFIX = "job_20240501_"
SHARED_LOCK = "shared"


def on_reactor(f: Callable[..., None], *args: Any) -> None:
    """The engine's C{call_from_thread} when everything runs on one thread."""
    f(*args)


class ManualRunner:
    """A L{BlockingRunner} whose calls wait until the test runs them, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any],
                               Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((f, args, kwargs, d))
        return d

    def run_next(self) -> None:
        f, args, kwargs, d = self.calls.pop(0)
        execute(f, *args, **kwargs).chainDeferred(d)


class Controls:
    """
    Test job types whose behaviour each test steers.

      - C{test.wait}: returns a Deferred kept in C{pending[job_id]} (no lock).
      - C{test.fail}: raises L{JobFailed} C{("boom", "it broke")}.
      - C{test.crash}: raises C{ValueError} (an unexpected error).
      - C{test.batches}: in C{run_blocking}, loops over C{batches} checking
        C{ctx.check_canceled} before each one (lock C{shared}).
      - C{test.blocking}: doubles C{n} through C{ctx.run_blocking}.
      - C{test.locked_a}, C{test.locked_b}: like C{test.wait}, lock C{shared}.
      - C{test.merge}: like C{test.wait}; queued payloads merge their C{paths}.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Deferred[Any]] = {}
        #: What each C{test.wait}-like handler's Deferred fired with (before the engine).
        self.outcomes: dict[str, Any] = {}
        self.contexts: dict[str, JobContext] = {}
        self.started: list[str] = []
        self.batches_done: list[int] = []
        #: Called as C{on_batch(ctx, index)} at the start of each batch.
        self.on_batch: Callable[[JobContext, int], None] = lambda ctx, i: None
        self.lock_holders: set[str] = set()
        self.max_lock_holders = 0

    def _waiting(self, ctx: JobContext) -> Deferred[Any]:
        self.started.append(ctx.job_id)
        self.contexts[ctx.job_id] = ctx
        d: Deferred[Any] = Deferred()
        self.pending[ctx.job_id] = d

        def note(result: object) -> object:
            self.outcomes[ctx.job_id] = result
            return result

        return d.addBoth(note)

    def _locked(self, ctx: JobContext) -> Deferred[Any]:
        self.lock_holders.add(ctx.job_id)
        self.max_lock_holders = max(self.max_lock_holders, len(self.lock_holders))

        def release(result: object) -> object:
            self.lock_holders.discard(ctx.job_id)
            return result

        return self._waiting(ctx).addBoth(release)

    def _fail(self, ctx: JobContext) -> None:
        self.started.append(ctx.job_id)
        raise JobFailed("boom", "it broke")

    def _crash(self, ctx: JobContext) -> None:
        self.started.append(ctx.job_id)
        raise ValueError("unexpected")

    def _batches(self, ctx: JobContext) -> Deferred[Any]:
        self.started.append(ctx.job_id)
        self.contexts[ctx.job_id] = ctx

        def work(count: int) -> dict[str, int]:
            done = 0
            for index in range(count):
                ctx.check_canceled()
                self.on_batch(ctx, index)
                self.batches_done.append(index)
                done += 1
                ctx.progress(done / count)
            return {"batches": done}

        return ctx.run_blocking(work, ctx.payload["batches"])

    def _blocking(self, ctx: JobContext) -> Deferred[Any]:
        self.started.append(ctx.job_id)
        return ctx.run_blocking(lambda n: {"doubled": n * 2}, ctx.payload["n"])

    @staticmethod
    def _merge(queued: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        return {"paths": sorted(set(queued["paths"]) | set(new["paths"]))}

    def types(self) -> list[JobType]:
        number = {"n": Field(integer(0, 1000), 0, "A number.")}
        return [
            JobType("test.wait", number, self._waiting),
            JobType("test.fail", {}, self._fail),
            JobType("test.crash", {}, self._crash),
            JobType("test.batches", {"batches": Field(integer(1, 100), 5, "How many.")},
                    self._batches, lock=SHARED_LOCK),
            JobType("test.blocking", number, self._blocking),
            JobType("test.locked_a", number, self._locked, lock=SHARED_LOCK),
            JobType("test.locked_b", number, self._locked, lock=SHARED_LOCK),
            JobType("test.merge", {"paths": Field(array(text()), [], "Paths.")},
                    self._waiting, merge=self._merge),
        ]


class Harness:
    """
    One engine over a database file, driven by a L{Clock}, everything inline.

    Several harnesses on the same file stand for successive daemon runs; one
    that is simply dropped stands for a run that was killed.
    """

    def __init__(self, case: SynchronousTestCase, path: str | Path | None = None,
                 workers: int = 2, runner: BlockingRunner = run_inline,
                 extra_types: Callable[[Harness], list[JobType]] | None = None,
                 db_runner: BlockingRunner = run_inline) -> None:
        self.path = path if path is not None else case.mktemp()
        self.clock = Clock()
        self.clock.advance(START)
        self.db = Database(self.path, db_runner)
        self.db.open()
        case.addCleanup(self.db.connection.close)
        self.bus = EventBus(store.max_event_id(self.db.connection))
        self.messages: list[Message] = []
        self.times: list[float] = []
        self.bus.subscribe(self._record)
        self.controls = Controls()
        self.registry = JobRegistry(self.controls.types())
        for job_type in (extra_types(self) if extra_types is not None else []):
            self.registry.register(job_type)
        self.engine = JobEngine(self.clock, self.db, self.registry, self.bus, runner,
                                on_reactor, workers=workers)

    def _record(self, message: Message) -> None:
        self.messages.append(dict(message))
        self.times.append(self.clock.seconds())

    def submit(self, case: SynchronousTestCase, job_type: str,
               payload: Any = None) -> tuple[str, bool]:
        """Submit and return C{(job_id, coalesced)} (the database is inline)."""
        job, coalesced = case.successResultOf(self.engine.submit(job_type, payload))
        return job.job_id, coalesced

    def stored(self, job_id: str) -> Any:
        job = store.get_job(self.db.connection, job_id)
        assert job is not None, job_id
        return job

    def statuses(self, job_id: str) -> list[str]:
        """The C{job.status} values published for C{job_id}, in order."""
        return [m["status"] for m in self.messages
                if m["type"] == "job.status" and m["job_id"] == job_id]

    def terminal_messages(self, job_id: str) -> list[Message]:
        return [m for m in self.messages if m["type"] == "job.status"
                and m["job_id"] == job_id and m["status"] in TERMINAL]

    def progress(self, job_id: str) -> list[tuple[float, float]]:
        """C{(clock time, progress)} of each C{job.progress} event of C{job_id}."""
        return [(t, m["progress"]) for m, t in zip(self.messages, self.times, strict=True)
                if m["type"] == "job.progress" and m["job_id"] == job_id]
