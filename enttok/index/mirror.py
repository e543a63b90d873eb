"""
One model's hnsw index, kept as a mirror of its vectors in SQLite.

The database holds the truth (every vector, by chunk hash and model id); the
hnsw file is derived from it: loaded and caught up at start (L{VectorMirror.prepare}),
told of every committed batch (L{VectorMirror.follow}), rebuilt when it cannot
be caught up. Its lock orders all of these; hnswlib work runs on the index's
CPU threads (L{IndexWorkers.cpu}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from attrs import define
from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks, succeed
from twisted.logger import Logger

from enttok.common.deferreds import Yielding
from enttok.index import store as index_store
from enttok.index.store import BatchResult
from enttok.index.vectors import IVectorIndex
from enttok.store import Database
from enttok.threads import BlockingRunner

#: Stored vectors read (and added to an hnsw index) at a time.
VECTOR_PAGE = 4096
#: The version of an hnsw index known not to match the database: a file saved
#: with it is caught up from stored vectors at the next start (the database's
#: versions count up from 0, and every batch's is at least 1).
OUT_OF_STEP = -1


@define
class IndexWorkers:
    """Where the index's blocking work runs (tests may replace either)."""

    #: File reading, parsing and hnswlib work.
    cpu: BlockingRunner
    #: The embedders' calls: one thread for indexing batches, one more for queries.
    embed: BlockingRunner


def add_page(vectors: IVectorIndex, page: Sequence[tuple[int, bytes]]) -> None:
    """Add stored vectors, C{(chunk id, float32 blob)}, to an hnsw index (worker thread)."""
    import numpy as np

    ids = [cid for cid, _ in page]
    matrix = np.frombuffer(b"".join(v for _, v in page), dtype=np.float32)
    vectors.add(ids, matrix.reshape(len(ids), vectors.dimension))


def apply_batch(vectors: IVectorIndex, model_id: str, result: BatchResult,
                total: int | None) -> None:
    """
    Apply a committed batch to C{model_id}'s hnsw index (worker thread).

    @param total: when the index must start afresh, the number of vectors the
        database holds for the model: the new index is in step only if this
        batch brings all of them.
    """
    added = result.added.get(model_id, ())
    if total is None:
        in_step = vectors.version == result.version - 1
    else:
        # A model's first vectors: its index starts here (with the dimension of
        # the vectors themselves, known now if not before).
        if not added:
            return
        vectors.reset(model_id, len(added[0][1]) // 4, OUT_OF_STEP)
        in_step = total == len(added)
    vectors.delete(result.removed)
    if added:
        add_page(vectors, added)
    if in_step:
        vectors.version = result.version
    elif vectors.version < result.version:
        vectors.version = OUT_OF_STEP  # caught up (or rebuilt) at next start
    # Else the index was rebuilt from the database after this batch was committed
    # (start-up runs while jobs do): it holds the batch already, and replaying
    # the batches in commit order leaves it as it was.


def save_all(indexes: Sequence[IVectorIndex]) -> None:
    for vectors in indexes:
        vectors.save()


class VectorMirror:
    """
    The hnsw index of one model id: its file, its lock, its version.

    @param model_dimension: the model's vector length (0 until it is loaded),
        for an index whose database holds no vector yet.
    """

    log = Logger()

    def __init__(self, db: Database, workers: IndexWorkers, model_id: str,
                 vectors: IVectorIndex, model_dimension: Callable[[], int]) -> None:
        self.model_id = model_id
        self.vectors = vectors
        self._db = db
        self._workers = workers
        self._model_dimension = model_dimension
        #: Orders every change to the index: start-up load, batches, rebuilds.
        self.lock = DeferredLock()
        #: Loaded (or rebuilt) from the database since start.
        self._loaded = False
        #: The index has been built: if it reads as not built now, it was lost
        #: (its vector host died) and is loaded again.
        self._built = False

    # What search and the pipelines read

    @property
    def prepared(self) -> bool:
        """Loaded since start, and not lost since (see L{lost})."""
        return self._loaded and not self.lost

    @property
    def lost(self) -> bool:
        """Built once and gone now: the vector host holding it died."""
        return self._built and not self.vectors.ready

    @property
    def current(self) -> bool:
        """Built and holding this model's vectors (after a switch, until its first
        vector, an index may still hold another model's)."""
        return bool(self.vectors.ready and self.vectors.model_id == self.model_id)

    def holds(self, count: int) -> bool:
        """Current, with exactly C{count} vectors."""
        return self.current and self.vectors.live_count == count

    @property
    def live_count(self) -> int:
        return int(self.vectors.live_count)

    @property
    def ready(self) -> bool:
        return bool(self.vectors.ready)

    @property
    def dirty(self) -> bool:
        return bool(self.vectors.dirty)

    def query(self, embedding: Any, k: int,
              allowed: Callable[[int], bool] | None) -> Deferred[list[tuple[int, float]]]:
        """The C{k} nearest chunk ids (and distances) to C{embedding}, on a worker thread."""
        return self._workers.cpu(self.vectors.query, embedding, k, allowed)

    # Changes, each under the lock

    def prepare(self) -> Deferred[None]:
        """
        Load the hnsw file and bring it up to date, else rebuild it; once: a
        prepared index is left as it is (the batches since keep it current).
        """
        return self.lock.run(self._prepare_once)

    def follow(self, result: BatchResult) -> Deferred[None]:
        """Apply a committed batch (batches apply in the order they are given)."""
        return self.lock.run(self._follow_locked, result)

    def rebuild(self) -> Deferred[None]:
        """Build the index again from the stored vectors (no embedding)."""
        return self.lock.run(self._rebuild_stored)

    def complete(self) -> Deferred[None]:
        """Rebuild the index from the stored vectors if it lacks some."""
        return self.lock.run(self._complete_locked)

    def compact(self) -> Deferred[bool]:
        """Rebuild the hnsw index from its live vectors if many are deleted."""
        return self._workers.cpu(self.vectors.compact_if_needed)

    def save(self) -> Deferred[None]:
        """Write the file if the index changed."""
        if not self.vectors.dirty:
            return succeed(None)
        return self._workers.cpu(self.vectors.save)

    @inlineCallbacks
    def _prepare_once(self) -> Yielding[None]:
        if not self.prepared:
            yield self._load()
            self._loaded, self._built = True, self.ready

    @inlineCallbacks
    def _follow_locked(self, result: BatchResult) -> Yielding[None]:
        if self.lost:
            # The batch is in the database already: loading brings it in too.
            yield self._load()
            self._loaded, self._built = True, self.ready
            return
        total = None
        if not self.current:
            total = yield self._db.run(index_store.count_live_vectors, self.model_id)
        yield self._workers.cpu(apply_batch, self.vectors, self.model_id, result, total)
        self._built = self._built or self.ready

    @inlineCallbacks
    def _complete_locked(self) -> Yielding[None]:
        stored = yield self._db.run(index_store.count_live_vectors, self.model_id)
        if stored and not self.holds(stored):
            dimension = yield self._db.run(index_store.stored_dimension, self.model_id)
            yield self._rebuild(dimension)

    @inlineCallbacks
    def _rebuild_stored(self) -> Yielding[None]:
        dimension = yield self._db.run(index_store.stored_dimension, self.model_id)
        dimension = dimension or self._model_dimension()
        if dimension:
            yield self._rebuild(dimension)

    @inlineCallbacks
    def _load(self) -> Yielding[None]:
        model_id, vectors, run_cpu = self.model_id, self.vectors, self._workers.cpu
        version = yield self._db.run(index_store.meta_int, index_store.VECTORS_VERSION)
        dimension = yield self._db.run(index_store.stored_dimension, model_id)
        if dimension is None:
            dimension = self._model_dimension()
        if not dimension:
            return
        ids = yield self._db.run(index_store.live_vector_ids, model_id)
        if not ids:
            return  # nothing to load: the index is created with its first vector
        missing = yield run_cpu(vectors.load, model_id, dimension, version, lambda: ids)
        if missing is None:
            self.log.info("vector index of {model} missing or unusable; rebuilding from "
                          "stored vectors", model=model_id)
            yield self._rebuild(dimension, version)
            return
        for start in range(0, len(missing), VECTOR_PAGE):
            page = yield self._db.run(index_store.vectors_of, model_id,
                                      missing[start:start + VECTOR_PAGE])
            yield run_cpu(add_page, vectors, page)
        if vectors.dirty:
            self.log.info("vector index of {model} loaded and brought up to date from "
                          "stored vectors ({added} added): {n} vectors", model=model_id,
                          added=len(missing), n=vectors.live_count)
        else:
            self.log.info("vector index of {model} loaded: {n} vectors", model=model_id,
                          n=vectors.live_count)

    @inlineCallbacks
    def _rebuild(self, dimension: int, version: int | None = None) -> Yielding[None]:
        model_id, vectors, run_cpu = self.model_id, self.vectors, self._workers.cpu
        if version is None:
            version = yield self._db.run(index_store.meta_int, index_store.VECTORS_VERSION)
        # hnswlib and numpy are imported (half a second, the first time) and used on
        # worker threads only: the reactor keeps answering meanwhile.
        yield run_cpu(vectors.reset, model_id, dimension, version)
        after = 0
        while True:
            page = yield self._db.run(index_store.vector_page, model_id, after, VECTOR_PAGE)
            if not page:
                break
            yield run_cpu(add_page, vectors, page)
            after = page[-1][0]
        vectors.version = version
        yield run_cpu(vectors.save)
        self._built = True
