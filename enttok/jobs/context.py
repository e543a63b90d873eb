"""What a running job's handler sees: its payload, progress, warnings, cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.python.threadable import isInIOThread

from enttok.threads import BlockingRunner

T = TypeVar("T")

#: Seconds between the reports of L{JobContext.progress_while}.
HEARTBEAT = 1.0


def _fire_and_pass(result: Any, done: Deferred[None]) -> Any:
    done.callback(None)
    return result


class JobCanceled(Exception):
    """Raised inside a job (often in a thread) when its cancellation was requested."""


class JobFailed(Exception):
    """A job's expected failure, reported as C{error: {code, message}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Reporter(Protocol):
    """The engine's side of a context (always called on the reactor thread)."""

    def progress(self, job_id: str, fraction: float, message: str | None) -> None: ...

    def note(self, job_id: str, level: str, message: str, meta: dict[str, Any]) -> None: ...


class JobContext:
    """
    Handed to a job's handler. Progress and notes may be reported from any thread.

    @ivar payload: the validated payload.
    """

    def __init__(self, job_id: str, job_type: str, payload: dict[str, Any], reporter: Reporter,
                 run_blocking: BlockingRunner, call_from_thread: Callable[..., None],
                 clock: IReactorTime) -> None:
        self.job_id = job_id
        self.job_type = job_type
        self.payload = payload
        self._reporter = reporter
        self._run = run_blocking
        self._call_from_thread = call_from_thread
        self._clock = clock
        self._cancel = threading.Event()
        self._inflight: set[Deferred[Any]] = set()

    # Cancellation

    @property
    def canceled(self) -> bool:
        """Whether cancellation was requested (safe from any thread)."""
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        self._cancel.set()

    def check_canceled(self) -> None:
        """@raise JobCanceled: if cancellation was requested (call between batches)."""
        if self._cancel.is_set():
            raise JobCanceled()

    # Reporting

    def _on_reactor(self, f: Callable[..., None], *args: Any) -> None:
        if isInIOThread():
            f(*args)
        else:
            self._call_from_thread(f, *args)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress in [0, 1] with an optional message (throttled by the engine)."""
        fraction = min(1.0, max(0.0, float(fraction)))
        self._on_reactor(self._reporter.progress, self.job_id, fraction, message)

    def progress_while(self, work: Deferred[T], fraction: float,
                       message: Callable[[int], str]) -> Deferred[T]:
        """
        Report C{message(seconds waited)} at C{fraction} every L{HEARTBEAT} until
        C{work} fires: a model load or a long batch must not look like a stall.

        @return: C{work}.
        """
        waited = 0

        def beat() -> None:
            nonlocal waited
            waited += 1
            self.progress(fraction, message(waited))

        beats = LoopingCall(beat)
        beats.clock = self._clock
        beats.start(HEARTBEAT, now=False)

        def stop(result: Any) -> Any:
            beats.stop()
            return result

        return work.addBoth(stop)

    def warn(self, message: str, **meta: Any) -> None:
        """Record a warning event (the job goes on)."""
        self._on_reactor(self._reporter.note, self.job_id, "warn", message, meta)

    def info(self, message: str, **meta: Any) -> None:
        self._on_reactor(self._reporter.note, self.job_id, "info", message, meta)

    # Blocking work

    def run_blocking(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """Run C{f} on the job thread pool; see L{track}."""
        return self.track(self._run(f, *args, **kwargs))

    def track(self, work: Deferred[T]) -> Deferred[T]:
        """
        Follow blocking work (a thread call) that C{work} stands for.

        Canceling the returned Deferred requests the job's cancellation; the
        engine still waits for C{work} itself before it releases the job's lock
        (see L{idle}), so two conflicting jobs never touch the same data at once.
        """
        self._inflight.add(work)
        outer: Deferred[T] = Deferred(lambda _: self.request_cancel())

        def settle(result: Any) -> None:
            self._inflight.discard(work)
            if not outer.called:
                outer.callback(result)
            elif isinstance(result, Failure):
                result.trap(Exception)

        work.addBoth(settle)
        return outer

    def idle(self) -> Deferred[Any]:
        """Fires once every call made through L{run_blocking} has returned."""
        if not self._inflight:
            return succeed(None)
        waits = []
        for inner in list(self._inflight):
            done: Deferred[None] = Deferred()
            inner.addBoth(_fire_and_pass, done)
            waits.append(done)
        return DeferredList(waits)
