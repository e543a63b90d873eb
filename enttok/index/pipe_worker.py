"""A child process that answers requests over its stdin and stdout, one at a time.

The embedding worker (L{enttok.index.embed_worker}) and the vector host
(L{enttok.index.vector_host}) are such processes: each reads one
length-prefixed pickle frame (L{read_frame}), answers with one frame
(L{write_frame}), and exits when its standard input closes, so it never
outlives the daemon. L{PipeWorker} is the daemon's side.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from zope.interface import Interface, implementer

#: How long L{PipeWorker.stop} waits for a call in progress, then for the
#: process to exit, before it kills the process.
STOP_GRACE = 2.0


class WorkerDied(Exception):
    """The worker process ended, or its pipe broke, before it answered."""


def write_frame(stream: IO[bytes], value: Any) -> None:
    """Send one pickled value, length-prefixed (only between this program's own processes)."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!I", len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """Receive one value sent by L{write_frame}. @raise EOFError: at end of stream."""
    head = stream.read(4)
    if len(head) < 4:
        raise EOFError("the worker process closed its pipe")
    (size,) = struct.unpack("!I", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the worker process closed its pipe")
    return pickle.loads(data)


class IWorker(Interface):
    """Something that answers requests, one at a time, in a process that may die."""

    def call(request: Any) -> tuple[Any, int]:
        """
        Send C{request} and wait for the answer (blocks).

        @return: the answer and the I{generation} that gave it (a number that
            changes each time the process is started again).
        @raise WorkerDied: it ended before answering.
        """

    def serving(generation: int) -> bool:
        """Whether the process of C{generation} still runs (never blocks)."""

    def stop() -> None:
        """End the process (blocks a little); the next call starts a new one."""


@implementer(IWorker)
class PipeWorker:
    """
    A worker process started at the first call and again at the first call
    after it died; calls are serialised.

    @param argv: its command line (see L{enttok.runtime.worker_argv}), built at each start.
    @param env: its environment, built at each start (C{None}: this process's).
    """

    def __init__(self, argv: Callable[[], Sequence[str]],
                 env: Callable[[], Mapping[str, str]] | None = None) -> None:
        self._argv = argv
        self._env = env
        self._lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        #: Incremented at each start: which process an answer came from.
        self.generation = 0

    def call(self, request: Any) -> tuple[Any, int]:
        with self._lock:
            if not self._running():
                self._stop()
                self._start()
            process = self.process
            assert process is not None and process.stdin is not None
            assert process.stdout is not None
            try:
                write_frame(process.stdin, request)
                return read_frame(process.stdout), self.generation
            except (EOFError, OSError, pickle.UnpicklingError) as e:
                self._stop()
                raise WorkerDied(f"worker process died: {e}") from e

    def serving(self, generation: int) -> bool:
        # Popen.poll never waits for another thread's wait (it then reports running).
        return generation == self.generation and self._running()

    def _running(self) -> bool:
        process = self.process
        return process is not None and process.poll() is None

    def _start(self) -> None:
        env = None if self._env is None else dict(self._env())
        self.process = subprocess.Popen(list(self._argv()), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=None, close_fds=True,
                                        env=env)
        self.generation += 1

    def stop(self) -> None:
        """
        Close its standard input (it exits) and wait; a call still running after
        L{STOP_GRACE} seconds is ended by killing the process.
        """
        if self._lock.acquire(timeout=STOP_GRACE):
            try:
                self._stop()
            finally:
                self._lock.release()
            return
        process = self.process  # a call hangs: its read fails once the process is gone
        if process is not None:
            process.kill()
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
