"""How blocking work leaves the reactor thread.

Components take a L{BlockingRunner} instead of calling C{deferToThread}
themselves, so tests can pass L{run_inline} and stay synchronous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, execute
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThread, deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class BlockingRunner(Protocol):
    """Runs a blocking callable somewhere and fires with its result."""

    def __call__(self, f: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]: ...


def run_inline(f: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]:
    """Run C{f} right now on the calling thread (for tests)."""
    return execute(f, *args, **kwargs)


def pool_runner(reactor: IReactorFromThreads, pool: ThreadPool) -> BlockingRunner:
    """Return a runner that sends work to C{pool} and fires on the reactor thread."""

    def run(f: Callable[..., T], /, *args: Any, **kwargs: Any) -> Deferred[T]:
        return deferToThreadPool(reactor, pool, f, *args, **kwargs)

    return run


class ThreadPoolService(Service):
    """Starts a thread pool with the service tree and stops it, off the reactor, at the end."""

    def __init__(self, reactor: IReactorFromThreads, pool: ThreadPool) -> None:
        self._reactor = reactor
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return deferToThread(self.pool.stop)
