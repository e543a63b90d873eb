"""Periodic work that survives its own errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger


class PeriodicService(Service):
    """
    Calls C{work} every C{interval} seconds while running.

    A failure is logged and the loop goes on; a run still in progress is never
    overlapped; C{stopService} waits for it. C{interval} may change while running.

    @param clock: where time comes from (a L{twisted.internet.task.Clock} in tests).
    @param now: also run once at start.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, interval: float,
                 work: Callable[[], Any], name: str, now: bool = False) -> None:
        self._clock = clock
        self.interval = interval
        self._work = work
        self.setName(name)
        self._now = now
        self._loop: LoopingCall | None = None
        self._running: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self._start_loop(self._now)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stop_loop()
        return self._running if self._running is not None else succeed(None)

    def set_interval(self, interval: float) -> None:
        """Change the interval; the next run is C{interval} seconds from now."""
        self.interval = interval
        if self.running:
            self._stop_loop()
            self._start_loop(False)

    def _start_loop(self, now: bool) -> None:
        if self.interval <= 0:
            return
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=now)

    def _stop_loop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self) -> None:
        if self._running is not None:
            return
        d = maybeDeferred(self._work)
        self._running = d

        def done(result: object) -> None:
            self._running = None

        d.addErrback(lambda f: self.log.failure("periodic {name} failed", f, name=self.name))
        d.addBoth(done)
