"""The daemon's side of the vector host (L{enttok.index.vector_host}).

L{VectorHost} is the host process, started at the first call; each of its
L{RemoteVectorIndex}es stands for one hnsw index there and is a drop-in for
L{enttok.index.vectors.VectorIndex}: the same blocking methods (call them from
a thread; the call waits on a pipe, without the GIL), the same attributes,
mirrored from the host after each call.

If the host dies, the call in progress raises L{WorkerDied}, and every index
it held reports what a fresh L{VectorIndex} would (not L{ready}, C{version}
-1), so that its owner loads or rebuilds it again from the saved file and the
database; the next call starts a new host.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from zope.interface import implementer

from enttok.index.pipe_worker import IWorker, PipeWorker, WorkerDied
from enttok.index.vector_host import Request, State
from enttok.index.vectors import IVectorIndex
from enttok.threads import BlockingRunner

__all__ = ["RemoteVectorIndex", "VectorHost", "VectorHostService", "WorkerDied"]

HOST_MODULE = "enttok.index.vector_host"


def host_argv() -> list[str]:
    from enttok.runtime import worker_argv

    return worker_argv(HOST_MODULE)


class VectorHost:
    """
    One host process for all of the daemon's hnsw indexes.

    @param worker: the process (default: C{python -m enttok.index.vector_host},
        or the frozen runtime's equivalent, started at the first call).
    """

    def __init__(self, worker: IWorker | None = None) -> None:
        self._worker: IWorker = worker or PipeWorker(host_argv)
        self._keys = itertools.count(1)
        self._released: list[int] = []
        self._released_lock = threading.Lock()

    def index(self, path: Path) -> RemoteVectorIndex:
        """A new, empty index of the hnsw file C{path} (like C{VectorIndex(path)})."""
        key = next(self._keys)
        index = RemoteVectorIndex(self, key, path)
        # Its hnsw index in the host is dropped with the next call after it is gone.
        weakref.finalize(index, self._release, key)
        return index

    def _release(self, key: int) -> None:
        with self._released_lock:
            self._released.append(key)

    def call(self, key: int, path: Path, method: str, args: tuple[Any, ...],
             version: int) -> tuple[tuple[str, Any, State], int]:
        """
        Run C{method(*args)} on the host's index C{key}.

        @return: the host's answer (see L{enttok.index.vector_host}) and its generation.
        @raise WorkerDied: the host died (or could not start).
        """
        with self._released_lock:
            released, self._released = self._released, []
        request = tuple(Request(released, key, str(path), method, args, version))
        try:
            (outcome, value, state), generation = self._worker.call(request)
        except OSError as e:  # could not start
            raise WorkerDied(f"cannot start the vector host: {e}") from e
        return (outcome, value, State(*state)), generation

    def serving(self, generation: int) -> bool:
        """Whether the host process of C{generation} still runs."""
        return self._worker.serving(generation)

    def close(self) -> None:
        """End the host process (blocks briefly); a later call starts another."""
        self._worker.stop()


@implementer(IVectorIndex)
class RemoteVectorIndex:
    """
    An hnsw index held by the vector host (see L{VectorHost.index}).

    @ivar version: the database's C{vectors_version} this index reflects:
        assigned here, sent to the host with each call (L{save} writes it).
    """

    def __init__(self, host: VectorHost, key: int, path: Path) -> None:
        self.path = path
        self._host = host
        self._key = key
        #: The host process whose index the state below mirrors (0: none yet).
        self._generation = 0
        self._state = State(False, 0, "", -1, False, 0)
        self._version = -1

    # State (mirrored; a dead host's indexes read as fresh ones)

    def _current(self) -> State:
        if self._generation and not self._host.serving(self._generation):
            self._forget()
        return self._state

    def _forget(self) -> None:
        state = self._state
        self._generation = 0
        self._state = State(False, state.dimension, state.model_id, -1, False, 0)
        self._version = -1

    @property
    def ready(self) -> bool:
        return self._current().ready

    @property
    def dirty(self) -> bool:
        return self._current().dirty

    @property
    def live_count(self) -> int:
        return self._current().live_count

    @property
    def dimension(self) -> int:
        return self._state.dimension

    @property
    def model_id(self) -> str:
        return self._state.model_id

    @property
    def version(self) -> int:
        self._current()
        return self._version

    @version.setter
    def version(self, value: int) -> None:
        self._version = value

    def _call(self, method: str, *args: Any) -> Any:
        try:
            (outcome, value, state), generation = self._host.call(
                self._key, self.path, method, args, self.version)
        except WorkerDied:
            self._forget()
            raise
        self._generation, self._state, self._version = generation, state, state.version
        if outcome == "raise":
            raise value
        return value

    # Building

    def deleted_fraction(self) -> float:
        fraction: float = self._call("deleted_fraction")
        return fraction

    def reset(self, model_id: str, dimension: int, version: int) -> None:
        self._call("reset", model_id, dimension, version)

    def load(self, model_id: str, dimension: int, version: int,
             live_ids: Callable[[], Iterable[int]]) -> list[int] | None:
        missing: list[int] | None = self._call("load_ids", model_id, dimension, version,
                                               list(live_ids()))
        return missing

    def add(self, ids: Sequence[int], vectors: Any) -> None:
        if len(ids):
            self._call("add", list(ids), vectors)

    def delete(self, ids: Iterable[int]) -> None:
        self._call("delete", list(ids))

    def compact_if_needed(self) -> bool:
        compacted: bool = self._call("compact_if_needed")
        return compacted

    # Querying

    def query(self, vector: Any, k: int,
              allowed: Callable[[int], bool] | None = None) -> list[tuple[int, float]]:
        """
        See L{VectorIndex.query}. A set's C{__contains__} goes to the host as it
        is; another filter is applied here to the host's live ids first.
        """
        if allowed is not None and not _set_membership(allowed):
            chosen = {label for label in self._call("live_ids") if allowed(label)}
            allowed = chosen.__contains__
        found: list[tuple[int, float]] = self._call("query", vector, k, allowed)
        return found

    # Saving

    def save(self) -> None:
        self._call("save")


def _set_membership(f: Callable[[int], bool]) -> bool:
    """Whether C{f} is a set's (or frozenset's) C{__contains__}: it pickles with its set."""
    owner = getattr(f, "__self__", None)
    return isinstance(owner, (set, frozenset)) and getattr(f, "__name__", "") == "__contains__"


class VectorHostService(Service):
    """
    Ends the vector host process when the service tree stops (its users stop first).

    @param run_blocking: where L{VectorHost.close} runs (it waits for the process).
    """

    def __init__(self, host: VectorHost, run_blocking: BlockingRunner) -> None:
        self.host = host
        self._run_blocking = run_blocking

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._run_blocking(self.host.close)
