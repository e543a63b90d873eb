"""Process lifecycle: listening, the ready line, and leaving with the parent."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import IService, MultiService, Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IListeningPort, IReactorCore, IReactorTCP
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from enttok import __version__

log = Logger(namespace="enttok.lifecycle")


def stop_reactor(reactor: IReactorCore) -> None:
    """Stop the reactor unless it is stopping already (SIGTERM and EOF often come together)."""
    with contextlib.suppress(ReactorNotRunning):
        reactor.stop()


def write_ready_line(port: int, fd: int = 1) -> None:
    """Write the one line Electron waits for to the process's real stdout."""
    line = json.dumps({"event": "ready", "port": port, "pid": os.getpid(),
                       "version": __version__})
    os.write(fd, (line + "\n").encode("utf-8"))


class PortHolder(Protocol):
    """What must know the port actually listened on (the guard, for its Host check)."""

    port: int


class WebService(Service):
    """
    Serves the site on 127.0.0.1 only, through a TCP server endpoint.

    L{bind} listens before the reactor runs, so a busy port is a start-up error;
    once the reactor is running, the port is announced with the ready line.
    """

    def __init__(self, reactor: IReactorTCP, port: int, site: Site, guard: PortHolder,
                 announce: Callable[[int], None] = write_ready_line) -> None:
        self._reactor = reactor
        self._endpoint = TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
        self._site = site
        self._guard = guard
        self._announce = announce
        self._listening: IListeningPort | None = None

    def bind(self) -> int:
        """
        Start listening and return the port.

        @raise twisted.internet.error.CannotListenError: when the port is taken.
        """
        outcome: list[IListeningPort | Failure] = []
        self._endpoint.listen(self._site).addBoth(outcome.append)
        # A TCP endpoint listens at once: its Deferred has fired.
        [result] = outcome
        if isinstance(result, Failure):
            result.raiseException()
        self._listening = result
        address = result.getHost()
        assert isinstance(address, IPv4Address)
        self._guard.port = address.port
        return address.port

    @property
    def port(self) -> int:
        return self._guard.port

    def startService(self) -> None:
        super().startService()
        if self._listening is None:
            self.bind()
        log.info("listening on http://127.0.0.1:{port}", port=self.port)
        # twistd starts services before the reactor runs and installs its signal
        # handlers; a parent that sends SIGTERM as soon as it reads the ready line
        # must find them in place, so announce only once the reactor is running.
        self._reactor.callWhenRunning(  # type: ignore[attr-defined]
            self._announce, self.port)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        return listening.stopListening() or succeed(None)


class OrderedServices(MultiService):
    """
    A parent that stops its children one at a time, last started first, each
    after the previous one finished: users of a thread pool or of the database
    stop before the pool and the database do.
    """

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        children = list(self)
        children.reverse()
        d: Deferred[None] = succeed(None)

        def stop(_: object, child: IService) -> Deferred[None]:
            return maybeDeferred(child.stopService).addErrback(
                lambda f: log.failure("stopping {child} failed", f, child=child))

        for child in children:
            d.addCallback(stop, child)
        return d


class StdinWatcher(Service):
    """Stops the reactor when standard input closes (the parent died or let go)."""

    def __init__(self, reactor: IReactorCore, fd: int = 0) -> None:
        self._reactor = reactor
        self._fd = fd

    def startService(self) -> None:
        super().startService()
        threading.Thread(target=self._wait, name="stdin-watcher", daemon=True).start()

    def _wait(self) -> None:
        try:
            while os.read(self._fd, 4096):
                pass
        except OSError:
            pass
        self._reactor.callFromThread(self._parent_gone)  # type: ignore[attr-defined]

    def _parent_gone(self) -> None:
        if self.running:
            log.info("standard input closed; stopping")
            stop_reactor(self._reactor)


def parent_watch(reactor: IReactorCore, parent_pid: int,
                 getppid: Callable[[], int] = os.getppid) -> Callable[[], None]:
    """Return a check, for a periodic service, that stops the reactor once orphaned."""
    stopped: list[bool] = []

    def check() -> None:
        if getppid() != parent_pid and not stopped:
            stopped.append(True)
            log.info("parent process {pid} is gone; stopping", pid=parent_pid)
            stop_reactor(reactor)

    return check


def exit_cleanly_on_sigterm(reactor: IReactorCore) -> None:
    """
    Make a stop requested by SIGTERM end the process with status 0.

    twistd and twist re-raise the signal that stopped the reactor once it has
    stopped, so the parent would see the process killed by SIGTERM; but SIGTERM
    is how the desktop app asks the backend to quit, and a clean quit is status 0.
    """

    def forget_sigterm() -> None:
        # The reactor records the stopping signal here (_ISupportsExitSignalCapturing).
        if getattr(reactor, "_exitSignal", None) == signal.SIGTERM:
            reactor._exitSignal = None  # type: ignore[attr-defined]

    reactor.addSystemEventTrigger("after", "shutdown", forget_sigterm)
