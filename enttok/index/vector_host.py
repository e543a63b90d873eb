"""The vector host process: C{python -m enttok.index.vector_host}.

It holds the daemon's hnsw indexes (L{enttok.index.vectors.VectorIndex}) and
runs every operation on them, so that hnswlib's long calls that hold Python's
GIL (saving and loading a file: about 2 s at 360,000 vectors) stall this
process, never the daemon's reactor. The daemon's side is
L{enttok.index.vector_client}.

Protocol (frames of L{enttok.index.pipe_worker}): a request is C{(released,
key, path, method, args, version)}: C{released}, the keys of indexes the
daemon no longer uses (dropped first); C{key}, the index (created empty for
the file C{path} at its first request); C{method} and C{args}, the call;
C{version}, the daemon's value of its C{version} attribute (which the daemon
assigns: it is what L{VectorIndex.save} writes). The answer is C{(outcome,
value, state)}: C{outcome} C{"ok"} (C{value} returned) or C{"raise"}
(C{value} raised), and C{state} the index's L{State} after the call (both
plain tuples). It exits
when its standard input closes.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

from enttok.index.pipe_worker import read_frame, write_frame
from enttok.index.vectors import VectorIndex


class State(NamedTuple):
    """What the daemon mirrors of an index after each call."""

    ready: bool
    dimension: int
    model_id: str
    version: int
    dirty: bool
    live_count: int


class Request(NamedTuple):
    released: Sequence[int]
    key: int
    path: str
    method: str
    args: tuple[Any, ...]
    version: int


class HostedIndex(VectorIndex):
    """A L{VectorIndex} that can also list its live ids (for a filter that stays in the daemon)."""

    def live_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._live)

    def load_ids(self, model_id: str, dimension: int, version: int,
                 ids: Iterable[int]) -> list[int] | None:
        """L{load} with the live ids given (the daemon read them from its database)."""
        return self.load(model_id, dimension, version, lambda: ids)

    def state(self) -> State:
        return State(self.ready, self.dimension, self.model_id, self.version, self.dirty,
                     self.live_count)


#: What the daemon may call.
METHODS = frozenset({"reset", "load_ids", "add", "delete", "compact_if_needed", "query",
                     "save", "deleted_fraction", "live_ids"})


class Host:
    """The indexes of one daemon, by key."""

    def __init__(self) -> None:
        self.indexes: dict[int, HostedIndex] = {}

    def answer(self, request: Request) -> tuple[str, Any, tuple[Any, ...]]:
        """
        Run one request (see the module's description); the state goes as a plain
        tuple (this module runs as C{__main__} here, under another name there).
        """
        for key in request.released:
            self.indexes.pop(key, None)
        index = self.indexes.get(request.key)
        if index is None:
            index = self.indexes[request.key] = HostedIndex(Path(request.path))
        index.version = request.version
        try:
            if request.method not in METHODS:
                raise ValueError(f"unknown vector index method {request.method!r}")
            method: Callable[..., Any] = getattr(index, request.method)
            return "ok", method(*request.args), tuple(index.state())
        except Exception as e:
            return "raise", portable(e), tuple(index.state())


def portable(error: Exception) -> Exception:
    """C{error}, or a L{RuntimeError} saying what it was if it cannot be pickled."""
    try:
        pickle.dumps(error)
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Answer requests until C{stdin} closes."""
    host = Host()
    while True:
        try:
            request = Request(*read_frame(stdin))
        except EOFError:
            return
        write_frame(stdout, host.answer(request))


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the pipe
    serve(stdin, stdout)
    # Nothing is left to save (the daemon saves before it lets go) or to flush.
    os._exit(0)


if __name__ == "__main__":
    main()
