"""The process lifecycle pieces, with fake reactors (the real process is in test_daemon)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactor, RaisingMemoryReactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from enttok import __version__
from enttok.api.guard import Guard
from enttok.lifecycle import (
    StdinWatcher,
    WebService,
    exit_cleanly_on_sigterm,
    parent_watch,
    write_ready_line,
)


def make_guard() -> Guard:
    return Guard(Resource(), None, "t" * 32, lambda: [])


class WebServiceTests(SynchronousTestCase):
    """L{WebService} listens on 127.0.0.1 and announces its port once running."""

    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        self.guard = make_guard()
        self.announced: list[int] = []
        self.web = WebService(self.reactor, 4321, Site(self.guard), self.guard,
                              announce=self.announced.append)

    def test_bind_listens_on_loopback_only(self) -> None:
        self.assertEqual(self.web.bind(), 4321)
        [(port, _, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (4321, "127.0.0.1"))
        self.assertEqual(self.guard.port, 4321)
        self.assertEqual(self.web.port, 4321)

    def test_announces_once_reactor_runs(self) -> None:
        self.web.bind()
        self.web.startService()
        # twistd starts services before the reactor installs its signal handlers.
        self.assertEqual(self.announced, [])
        self.reactor.run()
        self.assertEqual(self.announced, [4321])
        self.assertEqual(len(self.reactor.tcpServers), 1)

    def test_start_binds_when_not_bound(self) -> None:
        self.web.startService()
        self.reactor.run()
        self.assertEqual(len(self.reactor.tcpServers), 1)
        self.assertEqual(self.announced, [4321])

    def test_stop(self) -> None:
        self.web.startService()
        self.successResultOf(self.web.stopService())
        self.assertFalse(self.web.running)

    def test_busy_port_raises(self) -> None:
        error = CannotListenError("127.0.0.1", 4321, OSError("in use"))
        web = WebService(RaisingMemoryReactor(listenException=error), 4321,
                         Site(self.guard), self.guard, announce=self.announced.append)
        self.assertRaises(CannotListenError, web.bind)


class RealPortTests(TestCase):
    """With the real reactor, before it runs: the endpoint listens at once, so a busy
    port is an error of L{WebService.bind} itself (the daemon's one-line exit 2)."""

    def web(self, port: int) -> WebService:
        from twisted.internet import reactor

        guard = make_guard()
        return WebService(reactor, port, Site(guard), guard, announce=lambda port: None)

    def test_free_then_busy(self) -> None:
        first = self.web(0)
        port = first.bind()
        self.addCleanup(first.stopService)
        self.assertNotEqual(port, 0)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # something listens there
        error = self.assertRaises(CannotListenError, self.web(port).bind)
        self.assertEqual(error.port, port)


class ReadyLineTests(SynchronousTestCase):
    def test_ready_line(self) -> None:
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        try:
            write_ready_line(5555, fd=write_fd)
        finally:
            os.close(write_fd)
        data = os.read(read_fd, 4096)
        self.assertTrue(data.endswith(b"\n"))
        self.assertEqual(data.count(b"\n"), 1)
        self.assertEqual(json.loads(data), {"event": "ready", "port": 5555,
                                            "pid": os.getpid(), "version": __version__})


class SigtermTests(SynchronousTestCase):
    """A SIGTERM stop counts as a clean exit; other signals keep their meaning."""

    def fire_after_shutdown(self, reactor: MemoryReactor) -> None:
        for f, args, kwargs in reactor.triggers["after"]["shutdown"]:
            f(*args, **kwargs)

    def test_sigterm_forgotten(self) -> None:
        reactor = MemoryReactor()
        exit_cleanly_on_sigterm(reactor)
        reactor._exitSignal = signal.SIGTERM  # type: ignore[attr-defined]
        self.fire_after_shutdown(reactor)
        self.assertIsNone(reactor._exitSignal)  # type: ignore[attr-defined]

    def test_sigint_kept(self) -> None:
        reactor = MemoryReactor()
        exit_cleanly_on_sigterm(reactor)
        reactor._exitSignal = signal.SIGINT  # type: ignore[attr-defined]
        self.fire_after_shutdown(reactor)
        self.assertEqual(reactor._exitSignal, signal.SIGINT)  # type: ignore[attr-defined]

    def test_reactor_without_exit_signal(self) -> None:
        reactor = MemoryReactor()
        exit_cleanly_on_sigterm(reactor)
        self.fire_after_shutdown(reactor)
        self.assertFalse(hasattr(reactor, "_exitSignal"))


class FakeReactor:
    """Records C{stop} and C{callFromThread}."""

    def __init__(self) -> None:
        self.stops = 0
        self.from_thread: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.called = threading.Event()

    def stop(self) -> None:
        self.stops += 1

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.from_thread.append((f, args))
        self.called.set()


class ParentWatchTests(SynchronousTestCase):
    def test_stops_once_when_orphaned(self) -> None:
        reactor = FakeReactor()
        parents = [100, 100, 1, 1]
        check = parent_watch(reactor, 100, getppid=lambda: parents.pop(0))  # type: ignore[arg-type]
        check()
        check()
        self.assertEqual(reactor.stops, 0)
        check()
        check()
        self.assertEqual(reactor.stops, 1)


class StdinWatcherTests(SynchronousTestCase):
    def test_stops_reactor_when_input_closes(self) -> None:
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        reactor = FakeReactor()
        watcher = StdinWatcher(reactor, fd=read_fd)  # type: ignore[arg-type]
        watcher.startService()
        os.write(write_fd, b"data is ignored\n")
        self.assertFalse(reactor.called.wait(0.05))
        os.close(write_fd)
        self.assertTrue(reactor.called.wait(5), "watcher never noticed EOF")
        [(f, args)] = reactor.from_thread
        f(*args)
        self.assertEqual(reactor.stops, 1)

    def test_no_stop_after_service_stopped(self) -> None:
        read_fd, write_fd = os.pipe()
        self.addCleanup(os.close, read_fd)
        reactor = FakeReactor()
        watcher = StdinWatcher(reactor, fd=read_fd)  # type: ignore[arg-type]
        watcher.startService()
        watcher.stopService()
        os.close(write_fd)
        self.assertTrue(reactor.called.wait(5))
        [(f, args)] = reactor.from_thread
        f(*args)
        self.assertEqual(reactor.stops, 0)
