"""The vault index: reads notes, writes chunks and full text, embeds, keeps vectors.

Reading and parsing run on the job thread pool, SQL on the database thread,
embedding on the embedder's own thread (the model itself lives in a worker
process by default), and the hnswlib index behind its lock.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attrs import define, field
from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    gatherResults,
    inlineCallbacks,
    succeed,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from enttok.common.paths import on_disk
from enttok.common.times import utc_iso
from enttok.index import store as index_store
from enttok.index.embedder import EmbedderUnavailable, IEmbedder
from enttok.index.store import BatchResult, NoteState, NoteUpdate
from enttok.index.vectors import VectorIndex, model_file
from enttok.jobs.context import JobContext, JobFailed
from enttok.store import Database
from enttok.threads import BlockingRunner
from enttok.vault.chunker import chunk_note
from enttok.vault.parser import NotText, parse_note
from enttok.vault.walker import FileEntry, WalkWarning, is_inside, list_notes

BATCH_NOTES = 32
#: Chunks per call to the embedder (see L{VaultIndex._embed_pending}). Texts sorted
#: by length pad little even in small calls, and small batches run faster on CPU:
#: on 2 cores (bench vault texts, longest first) calls of 16 took ~58 ms wall and
#: ~100 ms CPU per chunk, calls of 32 or 64 ~63 ms and ~115 ms, as did the bench's
#: baseline (one encode of every text, batch size 64). A call of 16 takes about a
#: second: a vector search queued behind one waits about that long.
EMBED_BATCH = 16
#: Chunks an earlier crash left without vectors are fetched (and sorted) this many at a time.
MISSING_WINDOW = 4096
#: The share of an update's progress bar given to full text (the rest: embedding).
TEXT_SHARE = 0.3
#: Starts in a row that found the last run died while embedding, after which
#: chunks left without vectors are no longer embedded by themselves.
MAX_EMBED_CRASHES = 3
#: Starts in a row that found the last run died while a model loaded for which the
#: waiting job gets its attempt back (beyond, the job engine's limit applies).
MAX_FORGIVEN_LOADS = 5
#: An update that changed this many chunks saves the hnsw file at once.
SAVE_AFTER_CHANGES = 1000
MAX_FILE_BYTES = 5 * 1024 * 1024
VECTOR_PAGE = 4096


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@define
class Prepared:
    """One batch of files read, parsed and chunked (built on a worker thread)."""

    notes: list[NoteUpdate] = field(factory=list)
    unchanged: list[tuple[str, int, int]] = field(factory=list)
    vanished: list[str] = field(factory=list)
    warnings: list[tuple[str, str]] = field(factory=list)


def read_notes(root: str, paths: Sequence[str], known: dict[str, NoteState],
               skip_indexed: bool, with_chunks: bool) -> Prepared:
    """
    Read, hash, parse and (optionally) chunk C{paths} below C{root}. Blocking.

    @param skip_indexed: leave out files whose content is already indexed.
    """
    out = Prepared()
    real_root = os.path.realpath(root)
    for rel in paths:
        full = on_disk(root, rel)
        if not is_inside(real_root, full):
            out.warnings.append((rel, "skipped: outside the vault (symlink)"))
            continue
        try:
            st = os.stat(full)
            if st.st_size > MAX_FILE_BYTES:
                out.warnings.append((rel, f"skipped: file too large ({st.st_size} bytes)"))
                out.vanished.append(rel)
                continue
            with open(full, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            out.vanished.append(rel)
            continue
        except OSError as e:
            out.warnings.append((rel, f"skipped: cannot read ({e.strerror})"))
            continue
        digest = content_hash(raw)
        state = known.get(rel)
        if state is not None and state.content_hash == digest and (
                not with_chunks or (skip_indexed and state.indexed_hash == digest)):
            out.unchanged.append((rel, st.st_size, st.st_mtime_ns))
            continue
        try:
            parsed = parse_note(rel, raw)
        except NotText as e:
            out.warnings.append((rel, f"skipped: {e}"))
            out.vanished.append(rel)
            continue
        for warning in parsed.warnings:
            out.warnings.append((rel, warning))
        chunks = tuple(chunk_note(parsed.body)) if with_chunks else ()
        out.notes.append(NoteUpdate(rel, st.st_size, st.st_mtime_ns, digest, parsed, chunks))
    return out


def longest_first(conn: sqlite3.Connection, hashes: Sequence[str]) -> list[str]:
    """
    C{hashes} (distinct) that some chunk still has, their texts longest first
    (ties in the given order), as sentence-transformers orders one call's texts.
    """
    lengths = index_store.embed_lengths(conn, hashes)
    return sorted((h for h in dict.fromkeys(hashes) if h in lengths),
                  key=lambda h: -lengths[h])


def missing_longest_first(conn: sqlite3.Connection, model_id: str, limit: int) -> list[str]:
    """Up to C{limit} hashes of chunks without a C{model_id} vector, longest first."""
    return longest_first(conn, index_store.hashes_without_vectors(conn, model_id, limit))


def embedding_progress(done: int, total: int,
                       base: float = TEXT_SHARE) -> tuple[float, str]:
    """A job's progress once C{done} of C{total} chunks are embedded (from C{base})."""
    shown = max(total, done, 1)
    return base + (1 - base) * done / shown, f"embedding {done}/{shown} chunks"


def _add_page(vectors: VectorIndex, page: Sequence[tuple[int, bytes]]) -> None:
    """Add stored vectors, C{(chunk id, float32 blob)}, to an hnsw index (worker thread)."""
    import numpy as np

    ids = [cid for cid, _ in page]
    matrix = np.frombuffer(b"".join(v for _, v in page), dtype=np.float32)
    vectors.add(ids, matrix.reshape(len(ids), vectors.dimension))


def _save_all(indexes: Sequence[VectorIndex]) -> None:
    for vectors in indexes:
        vectors.save()


def _follow(slot: ModelSlot, result: BatchResult, total: int | None) -> None:
    """
    Apply a batch to C{slot}'s hnsw index (worker thread).

    @param total: when the index must start afresh, the number of vectors the
        database holds for the model: the new index is current only if this
        batch brings all of them.
    """
    import numpy as np

    vectors = slot.vectors
    added = result.added.get(slot.model_id, ())
    if total is not None:
        # A model's first vectors: its index starts here (with the dimension of
        # the vectors themselves, known now if not before).
        if not added:
            return
        dimension = len(added[0][1]) // 4
        complete = total == len(added)
        vectors.reset(slot.model_id, dimension, result.version - 1 if complete else -2)
    vectors.delete(result.removed)
    if added:
        ids = [cid for cid, _ in added]
        matrix = np.frombuffer(b"".join(v for _, v in added), dtype=np.float32)
        vectors.add(ids, matrix.reshape(len(ids), vectors.dimension))
    if vectors.version == result.version - 1:
        vectors.version = result.version
    elif vectors.version < result.version:
        vectors.version = -1  # out of step: caught up (or rebuilt) at next start
    # Else the index was rebuilt from the database after this batch was committed
    # (start-up runs while jobs do): it holds the batch already, and replaying
    # the batches in commit order leaves it as it was.


def _repeating(message: str) -> Callable[[int], str]:
    return lambda _: message


def list_vault(root: str, should_stop: Callable[[], bool]) -> tuple[list[FileEntry],
                                                                    list[WalkWarning]]:
    """The vault's notes up to L{MAX_FILE_BYTES}, and the warnings (blocking)."""
    return list_notes(root, should_stop, MAX_FILE_BYTES)


@define(eq=False)
class ModelSlot:
    """One embedding model kept by the index: its name, its embedder, its vector index."""

    #: What the model is called in the C{embedding_model} setting.
    name: str
    embedder: IEmbedder
    vectors: VectorIndex
    waiters: list[Deferred[None]] = field(factory=list)

    @property
    def model_id(self) -> str:
        """The id its vectors are stored (and its hnsw file named) under."""
        return str(self.embedder.model_id)


class VaultIndex:
    """
    Everything the indexing jobs and search share.

    Search uses the I{active} models (usually one; several are fused). After a
    change of model the new set is the I{target}: its vectors are embedded in the
    background (L{converge}) while search goes on with the active ones, and it
    becomes active at once when they are complete. Each model keeps its vectors
    (in SQLite, by chunk hash and model id) and its own hnsw file.

    @param embedder: the first active model (C{vectors}: its hnsw index).
    @param run_cpu: where file reading, parsing and hnswlib work run.
    @param run_embed: the embedders' threads: one for indexing batches (one at a
        time), one more so that a query to an active model need not wait behind
        a batch of a target model.
    @param name: the first model's name in settings (default: its model id).
    @param make_embedder: an embedder for a model name (C{None}: models cannot change).
    @param vectors_for: the hnsw index of a model id (default: a file beside C{vectors}).
    @param more: names of further active models.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, db: Database, embedder: IEmbedder,
                 vectors: VectorIndex, run_cpu: BlockingRunner,
                 run_embed: BlockingRunner, name: str | None = None, *,
                 make_embedder: Callable[[str], IEmbedder] | None = None,
                 vectors_for: Callable[[str], VectorIndex] | None = None,
                 more: Sequence[str] = ()) -> None:
        self.clock = clock
        self.db = db
        self.run_cpu = run_cpu
        self.run_embed = run_embed
        self._make_embedder = make_embedder
        self._vectors_for = vectors_for or (
            lambda model_id: VectorIndex(model_file(vectors.path, model_id)))
        self.active: list[ModelSlot] = [
            ModelSlot(name or str(embedder.model_id), embedder, vectors)]
        #: The models being switched to (their vectors are being embedded), if any.
        self.target: list[ModelSlot] | None = None
        for more_name in more:
            self.active.append(self._new_slot(more_name))
        #: Starts in a row that found the last run had died while embedding.
        self.embed_crashes = 0
        #: Indexing batches being embedded now: a query would queue behind them.
        self.indexing_embeds = 0
        #: Indexing jobs (L{update}, L{converge}) running now: see L{periodic_save}.
        self.updates_running = 0
        #: Orders every change to the hnsw indexes (start-up load, batches, rebuilds).
        self.vector_lock = DeferredLock()
        #: The hnsw indexes loaded (or rebuilt) from the database since start.
        self._prepared: list[VectorIndex] = []

    # The models

    @property
    def embedder(self) -> IEmbedder:
        """The first active model's embedder."""
        return self.active[0].embedder

    @property
    def vectors(self) -> VectorIndex:
        """The first active model's vector index."""
        return self.active[0].vectors

    @property
    def model_id(self) -> str:
        return self.active[0].model_id

    @property
    def model_names(self) -> list[str]:
        return [slot.name for slot in self.active]

    def kept(self) -> list[ModelSlot]:
        """The active models, then the target ones not active (each once)."""
        slots = list(self.active)
        for slot in self.target or ():
            if slot not in slots:
                slots.append(slot)
        return slots

    def vector_sources(self) -> list[tuple[str, IEmbedder, VectorIndex]]:
        """
        What search ranks by: C{(model id, embedder, vector index)} of each active
        model, the first one first. Embed a query with L{embed} (C{model_id}) after
        L{load_model}; query the vector index on L{run_cpu}.
        """
        return [(slot.model_id, slot.embedder, slot.vectors) for slot in self.active]

    def _new_slot(self, name: str) -> ModelSlot:
        if self._make_embedder is None:
            raise ValueError("this index cannot change its embedding model")
        embedder = self._make_embedder(name)
        model_id = str(embedder.model_id)
        # Two runtimes of one model (vectors of one id) share one vector index.
        same = next((slot for slot in self.kept() if slot.model_id == model_id), None)
        return ModelSlot(name, embedder, same.vectors if same else self._vectors_for(model_id))

    def _mirrors(self, slots: Sequence[ModelSlot]) -> list[ModelSlot]:
        """C{slots}, each vector index once."""
        seen: set[int] = set()
        out = []
        for slot in slots:
            if id(slot.vectors) not in seen:
                seen.add(id(slot.vectors))
                out.append(slot)
        return out

    def _slot(self, model_id: str | None) -> ModelSlot:
        if model_id is None:
            return self.active[0]
        for slot in self.kept():
            if slot.model_id == model_id:
                return slot
        raise KeyError(model_id)

    def load_model(self, model_id: str | None = None) -> Deferred[None]:
        """
        Load a model (default: the first active one) once, in the embedder thread;
        callers meanwhile share the same wait.
        """
        return self._load(self._slot(model_id))

    def _load(self, slot: ModelSlot, job_id: str | None = None) -> Deferred[None]:
        """
        Load C{slot}'s model. While it loads, the database names the job (if any)
        that waits for it: a process that dies meanwhile (quit, killed, asleep) is
        not that job's fault (see L{recover_embedding}).
        """
        if slot.embedder.loaded:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        slot.waiters.append(waiter)
        first = len(slot.waiters) == 1
        if first or job_id is not None:
            self.db.run(index_store.set_model_loading, job_id or index_store.NO_JOB
                        ).addErrback(lambda f: self.log.failure("could not record the model "
                                                                "load", f))
        if first:
            loading = self.run_embed(slot.embedder.load)
            loading.addBoth(self._load_recorded).addBoth(self._model_loaded, slot)
        return waiter

    def _load_recorded(self, result: Any) -> Deferred[Any]:
        """The load is over (loaded or failed): a death from now on is not during it."""
        d = self.db.run(index_store.set_model_loading, None)
        d.addErrback(lambda f: self.log.failure("could not record the model load", f))
        return d.addCallback(lambda _: result)

    @staticmethod
    def _model_loaded(result: Any, slot: ModelSlot) -> None:
        waiters, slot.waiters = slot.waiters, []
        for waiter in waiters:
            waiter.callback(result)

    def embed(self, texts: Sequence[str], model_id: str | None = None) -> Deferred[Any]:
        """Vectors of C{texts} by a model (default: the first active one)."""
        return self._embed_by(self._slot(model_id), texts)

    def _embed_by(self, slot: ModelSlot, texts: Sequence[str]) -> Deferred[Any]:
        return self.run_embed(slot.embedder.embed, list(texts))

    def use_models(self, names: Sequence[str], prepare: bool = True) -> bool:
        """
        Make C{names} the models search is to use. Unless they are the active
        ones, they become the target: L{converge} embeds what they lack, then
        switches. Switching back to the active models cancels a switch.

        @param prepare: load the hnsw files of the kept models not yet prepared
            now, the active ones included when this comes before the start-up's
            L{prepare_vectors} (else at it).
        @return: whether a switch is pending (an C{index.embed} job must run).
        @raise ValueError: models cannot change (no C{make_embedder}).
        """
        names = list(dict.fromkeys(names))
        if names == self.model_names:
            self._retire(self.target or [], keep=self.active)
            self.target = None
            return False
        known = {slot.name: slot for slot in self.kept()}
        target = [known.get(name) or self._new_slot(name) for name in names]
        self._retire(self.target or [], keep=[*self.active, *target])
        self.target = target
        if self.embed_crashes:
            # Another model may not crash where this one did: embedding may start again.
            self.embed_crashes = 0
            self.db.run(index_store.reset_embed_crashes).addErrback(
                lambda f: self.log.failure("could not reset the embedding crashes", f))
        if prepare:
            self.prepare_vectors().addErrback(
                lambda f: self.log.failure("could not prepare the vector index", f))
        return True

    def close_models(self) -> Deferred[Any]:
        """Release every kept model (at stop)."""
        return gatherResults([self.run_embed(slot.embedder.close) for slot in self.kept()])

    def _retire(self, slots: Sequence[ModelSlot], keep: Sequence[ModelSlot]) -> None:
        """Save and let go of models no longer kept (their files stay for a switch back)."""
        for slot in slots:
            if slot not in keep:
                if all(slot.vectors is not other.vectors for other in keep):
                    # (Its memory goes with it; a switch back loads its file again.)
                    self._prepared = [v for v in self._prepared if v is not slot.vectors]
                if slot.vectors.dirty:
                    self.run_cpu(slot.vectors.save).addErrback(
                        lambda f: self.log.failure("could not save a vector index", f))
                self.run_embed(slot.embedder.close)

    @inlineCallbacks
    def _maybe_switch(self) -> Any:
        """
        Switch to the target models if all their vectors are stored and in their
        hnsw indexes: one assignment, so a search uses either set, never a mix.

        @return: whether it switched.
        """
        target = self.target
        if target is None:
            return False
        for slot in target:
            if (yield self._vectors_missing(slot)):
                return False
        yield self.vector_lock.run(self._complete_mirrors, target)
        if self.target is not target:
            return False  # changed meanwhile
        yield self.db.run(index_store.set_active_models, [slot.name for slot in target])
        old, self.active, self.target = self.active, target, None
        self._retire(old, keep=target)
        self.log.info("embedding models switched to {names}", names=self.model_names)
        return True

    @inlineCallbacks
    def _complete_mirrors(self, slots: Sequence[ModelSlot]) -> Any:
        """Rebuild from stored vectors any of C{slots}' hnsw indexes that lack some."""
        for slot in slots:
            stored = yield self.db.run(index_store.count_live_vectors, slot.model_id)
            vectors = slot.vectors
            if stored and not (vectors.ready and vectors.model_id == slot.model_id
                               and vectors.live_count == stored):
                dimension = yield self.db.run(index_store.stored_dimension, slot.model_id)
                yield self._rebuild_slot(slot, dimension)

    # Convergence after crashes

    def recover_embedding(self) -> Deferred[int]:
        """
        At start, before the job engine recovers its jobs: give back its attempt to
        a job the last run died in while a model loaded (L{index_store.forgive_load_crash}),
        and count it if the last run died while embedding (see
        L{index_store.count_embed_crash}); fires with that count.
        """
        def forgiven(loads: int) -> Deferred[int]:
            if loads:
                self.log.warn("the last {n} runs died while a model loaded", n=loads)
            return self.db.run(index_store.count_embed_crash)

        def counted(crashes: int) -> int:
            self.embed_crashes = crashes
            if crashes:
                self.log.warn("the last {n} runs died while embedding", n=crashes)
            return crashes

        d = self.db.run(index_store.forgive_load_crash, MAX_FORGIVEN_LOADS)
        return d.addCallback(forgiven).addCallback(counted)

    def embedding_error(self) -> str | None:
        """Why chunks are no longer embedded by themselves, if they are not."""
        if self.embed_crashes < MAX_EMBED_CRASHES:
            return None
        return (f"the daemon died {self.embed_crashes} times in a row while embedding; "
                f"chunks left without vectors are not retried until an index.embed with "
                f"force, an index.rebuild or a change of model")

    @inlineCallbacks
    def needs_embedding(self) -> Any:
        """Whether an C{index.embed} job should run (a backlog or a switch, and no crash loop)."""
        if self.embedding_error() is not None:
            return False
        if self.target is not None:
            return True
        for slot in self.active:
            if (yield self._vectors_missing(slot)):
                return True
        return False

    @inlineCallbacks
    def converge(self, ctx: JobContext, force: bool = False) -> Any:
        """
        Embed every chunk lacking a vector of a kept model, then switch to the
        target models if there are. (The C{index.embed} job.)

        @param force: also after repeated crashes (see L{embedding_error}).
        @return: a summary dict (the job's result).
        @raise JobFailed: C{embedding_crashed}, without C{force}.
        """
        error = self.embedding_error()
        if error is not None and not force:
            raise JobFailed("embedding_crashed", error)
        if force and self.embed_crashes:
            yield ctx.track(self.db.run(index_store.reset_embed_crashes))
            self.embed_crashes = 0
        self.updates_running += 1
        try:
            summary = {"chunks_embedded": 0, "vectors_pending": 0}
            target = [slot.name for slot in self.target or ()]
            for slot in self.kept():
                yield self._embed_pending(ctx, summary, [], slot, base=0.0)
            switched = yield self._maybe_switch()
            if self.updates_running == 1:
                yield ctx.track(self.save_vectors())
        finally:
            self.updates_running -= 1
        return {**summary, "models": self.model_names,
                "switched_to": target if switched else None}

    # The vector index

    def prepare_vectors(self, slots: Sequence[ModelSlot] | None = None) -> Deferred[Any]:
        """
        Load the hnsw file of each of C{slots} (default: the kept models) and bring
        it up to date, else rebuild it; once each: one already prepared is left
        as it is (the batches since keep it current).
        """
        return self.vector_lock.run(self._prepare_slots,
                                    self.kept() if slots is None else list(slots))

    def vectors_prepared(self, slots: Sequence[ModelSlot] | None = None) -> bool:
        """Whether the hnsw index of each of C{slots} (default: the active models) is prepared."""
        return all(any(slot.vectors is done for done in self._prepared)
                   for slot in (self.active if slots is None else slots))

    @inlineCallbacks
    def _prepare_slots(self, slots: Sequence[ModelSlot]) -> Any:
        recorded = yield self.db.run(index_store.active_models)
        if recorded is None:
            yield self.db.run(index_store.set_active_models, self.model_names)
        for slot in self._mirrors(slots):
            if not self.vectors_prepared([slot]):
                yield self._prepare_slot(slot)
                self._prepared.append(slot.vectors)

    @inlineCallbacks
    def _prepare_slot(self, slot: ModelSlot) -> Any:
        model_id = slot.model_id
        version = yield self.db.run(index_store.meta_int, index_store.VECTORS_VERSION)
        dimension = yield self.db.run(index_store.stored_dimension, model_id)
        if dimension is None:
            dimension = slot.embedder.dimension
        if not dimension:
            return
        ids = yield self.db.run(index_store.live_vector_ids, model_id)
        if not ids:
            return  # nothing to load: the index is created with its first vector
        missing = yield self.run_cpu(slot.vectors.load, model_id, dimension, version,
                                     lambda: ids)
        if missing is None:
            self.log.info("vector index of {model} missing or unusable; rebuilding from "
                          "stored vectors", model=model_id)
            yield self._rebuild_slot(slot, dimension, version)
            return
        for start in range(0, len(missing), VECTOR_PAGE):
            page = yield self.db.run(index_store.vectors_of, model_id,
                                     missing[start:start + VECTOR_PAGE])
            yield self.run_cpu(_add_page, slot.vectors, page)
        if slot.vectors.dirty:
            self.log.info("vector index of {model} loaded and brought up to date from "
                          "stored vectors ({added} added): {n} vectors", model=model_id,
                          added=len(missing), n=slot.vectors.live_count)
        else:
            self.log.info("vector index of {model} loaded: {n} vectors", model=model_id,
                          n=slot.vectors.live_count)

    def rebuild_vectors(self) -> Deferred[Any]:
        """Build each model's hnsw index again from the vectors in SQLite (no embedding)."""
        return self.vector_lock.run(self._rebuild_all)

    @inlineCallbacks
    def _rebuild_all(self) -> Any:
        for slot in self._mirrors(self.kept()):
            dimension = yield self.db.run(index_store.stored_dimension, slot.model_id)
            dimension = dimension or slot.embedder.dimension
            if dimension:
                yield self._rebuild_slot(slot, dimension)

    @inlineCallbacks
    def _rebuild_slot(self, slot: ModelSlot, dimension: int, version: int | None = None) -> Any:
        model_id = slot.model_id
        if version is None:
            version = yield self.db.run(index_store.meta_int, index_store.VECTORS_VERSION)
        # hnswlib and numpy are imported (half a second, the first time) and used on
        # worker threads only: the reactor keeps answering meanwhile.
        yield self.run_cpu(slot.vectors.reset, model_id, dimension, version)
        after = 0
        while True:
            page = yield self.db.run(index_store.vector_page, model_id, after, VECTOR_PAGE)
            if not page:
                break
            yield self.run_cpu(_add_page, slot.vectors, page)
            after = page[-1][0]
        slot.vectors.version = version
        yield self.run_cpu(slot.vectors.save)

    def save_vectors(self) -> Deferred[Any]:
        """Save each changed hnsw index."""
        dirty = [slot.vectors for slot in self._mirrors(self.kept()) if slot.vectors.dirty]
        if not dirty:
            return succeed(None)
        return self.run_cpu(_save_all, dirty)

    def periodic_save(self) -> Deferred[Any]:
        """
        The periodic saver's tick: save a changed hnsw index, unless an indexing
        job is running: hnswlib holds the GIL while it writes (0.4 s for 73,000
        vectors), and a crash that loses unsaved changes is caught up from the
        stored vectors at the next start. The job saves at its end if it changed
        much, or the next tick after it does.
        """
        if self.updates_running:
            return succeed(None)
        return self.save_vectors()

    # Indexing

    @inlineCallbacks
    def update(self, ctx: JobContext, root: str, changed: Sequence[str],
               deleted: Sequence[str], skip_indexed: bool = True) -> Any:
        """
        Index C{changed} notes and drop C{deleted} ones, then embed what lacks vectors.

        Full text is written first, batch by batch, so notes are searchable by
        words before the model has even loaded.

        @return: a summary dict (the job's result).
        """
        self.updates_running += 1
        try:
            result = yield self._update(ctx, root, changed, deleted, skip_indexed)
        finally:
            self.updates_running -= 1
        return result

    @inlineCallbacks
    def _update(self, ctx: JobContext, root: str, changed: Sequence[str],
                deleted: Sequence[str], skip_indexed: bool) -> Any:
        summary = {"notes_indexed": 0, "notes_deleted": 0, "notes_unchanged": 0,
                   "chunks": 0, "chunks_embedded": 0, "vectors_pending": 0, "warnings": 0}
        total = len(changed)
        written: dict[str, list[str]] = {}
        loading: set[str] = set()
        yield self._apply(ctx, [], list(deleted), summary, written)
        for start in range(0, total, BATCH_NOTES):
            ctx.check_canceled()
            batch = list(changed[start:start + BATCH_NOTES])
            known = yield ctx.track(self.db.run(index_store.note_states, batch))
            prepared: Prepared = yield ctx.run_blocking(read_notes, root, batch, known,
                                                        skip_indexed, True)
            for rel, message in prepared.warnings:
                ctx.warn(f"{rel}: {message}", path=rel)
                summary["warnings"] += 1
            if prepared.unchanged:
                yield ctx.track(self.db.run(index_store.touch_notes, prepared.unchanged))
            summary["notes_unchanged"] += len(prepared.unchanged)
            gone = [p for p in prepared.vanished if p in known]
            yield self._apply(ctx, prepared.notes, gone, summary, written)
            for slot in self.kept():
                if written.get(slot.model_id) and slot.model_id not in loading:
                    # Some chunks will be embedded: the model loads (in its process)
                    # while the rest of the full text is written; _embed_pending waits
                    # for it and reports a failure.
                    loading.add(slot.model_id)
                    self._load(slot, ctx.job_id).addErrback(lambda _: None)
            done = min(total, start + BATCH_NOTES)
            ctx.progress(TEXT_SHARE * done / total,
                         f"indexing {done}/{total} notes ({summary['chunks']} chunks)")
        for slot in self.kept():
            # Leftovers of a crash are embedded here for the active models; a target
            # model's backlog is the index.embed job's (an update stays short).
            yield self._embed_pending(ctx, summary, written.get(slot.model_id, []), slot,
                                      leftovers=slot in self.active)
        yield self._maybe_switch()
        for slot in self._mirrors(self.kept()):
            yield ctx.track(self.run_cpu(slot.vectors.compact_if_needed))
        if summary["chunks"] + summary["chunks_embedded"] >= SAVE_AFTER_CHANGES:
            # Small updates are saved by the periodic saver: rewriting a 100 MB
            # file would cost more than the update (a crash before it costs a catch-up
            # from stored vectors at the next start, not lost data).
            yield ctx.track(self.save_vectors())
        return summary

    @inlineCallbacks
    def _embed_pending(self, ctx: JobContext, summary: dict[str, int], written: list[str],
                       slot: ModelSlot, leftovers: bool = True,
                       base: float = TEXT_SHARE) -> Any:
        """
        Embed by C{slot}'s model the chunks this job wrote without a vector
        (C{written}, their hashes), then (with C{leftovers}) any that an earlier
        crash left without one.

        Chunks go to the embedder longest first, L{EMBED_BATCH} at a time, so that
        each call pads its texts little (as one C{encode} of all texts would). The
        work is a pipeline: while the embedder encodes one batch, the texts of the
        next are fetched and the vectors of the previous one are committed (one
        transaction each, in order) and added to the hnsw index. At most one
        batch is in the embedder at a time, so a search queues behind one only.

        While chunks are in the embedder the database says so (L{index_store.EMBEDDING}):
        a process that dies then is counted at the next start (L{recover_embedding});
        one that dies while the model loads is not.

        @param base: the job's progress before embedding starts.
        """
        model_id = slot.model_id
        leftovers = leftovers and self.embedding_error() is None
        queue = list(dict.fromkeys(written))
        if not queue and not (leftovers and (yield self._vectors_missing(slot))):
            return
        total = len(queue)
        which = f" {slot.name}" if len(self.kept()) > 1 else ""
        loading = f"loading the embedding model{which} for {total or 'pending'} chunks"
        ctx.progress(base, loading)
        try:
            yield ctx.progress_while(ctx.track(self._load(slot, ctx.job_id)), base,
                                     lambda waited: f"{loading} ({waited} s)")
        except EmbedderUnavailable as e:
            ctx.warn(f"vectors of {slot.name} skipped: {e}")
            return
        if queue:
            queue = yield ctx.track(self.db.run(longest_first, queue))
        start = done = 0
        marked = False
        #: The batch in the embedder: its (hash, text) pairs and its vectors to come.
        embedding: tuple[list[tuple[str, str]], Deferred[Any]] | None = None
        try:
            while True:
                # The next batch's texts, fetched while the embedder is busy.
                todo: list[tuple[str, str]] = []
                # (A model no longer kept, after a switch was called off, stops here.)
                while not todo and not ctx.canceled and slot in self.kept():
                    if start < len(queue):
                        part = queue[start:start + EMBED_BATCH]
                        start += len(part)
                        texts = dict((yield ctx.track(self.db.run(index_store.texts_for,
                                                                  part))))
                        todo = [(h, texts[h]) for h in part if h in texts]
                    elif embedding is not None or not leftovers or not (
                            yield self._vectors_missing(slot)):
                        # (Chunks a crash left without vectors are looked for once
                        # every vector of the queue is committed: not before.)
                        break
                    else:
                        queue = yield ctx.track(self.db.run(
                            missing_longest_first, model_id, MISSING_WINDOW))
                        start = 0
                        total += len(queue)
                        if not queue:
                            break
                finished: list[tuple[str, str]] = []
                vectors: Any = None
                if embedding is not None:
                    finished, waiting = embedding
                    # (A call takes about a second: on a slow or busy machine, the
                    # last count is repeated every second until it returns.)
                    fraction, message = embedding_progress(done, total, base)
                    vectors = yield ctx.progress_while(waiting, fraction,
                                                       _repeating(message))
                    embedding = None
                if todo and not ctx.canceled:
                    if not marked:
                        yield ctx.track(self.db.run(index_store.set_embedding, True))
                        marked = True
                    embedding = (todo, self._embed_batch(ctx, slot, todo))
                if finished:
                    yield self._commit_vectors(ctx, model_id, finished, vectors)
                    self.embed_crashes = 0  # (the commit set it so in the database)
                    done += len(finished)
                    summary["chunks_embedded"] += len(finished)
                    ctx.progress(*embedding_progress(done, total, base))
                ctx.check_canceled()
                if embedding is None and not finished:
                    break
        finally:
            if embedding is not None:
                # Left behind by a failure or a cancellation: its vectors are dropped
                # (the chunks stay without vectors and are embedded by a later update).
                embedding[1].addErrback(lambda _: None)
            if marked:
                # Not tracked: a canceled job still clears the mark.
                yield self.db.run(index_store.set_embedding, False)
        summary["vectors_pending"] = 0

    def _embed_batch(self, ctx: JobContext, slot: ModelSlot,
                     todo: list[tuple[str, str]]) -> Deferred[Any]:
        """
        Start embedding C{todo}; L{indexing_embeds} counts it until the embedder is
        done if the model is an active one (a target model's batches hold up no
        query: each model has its own worker, and the embed pool a thread more).
        """
        busy = 1 if slot in self.active else 0
        self.indexing_embeds += busy

        def finished(result: Any) -> Any:
            self.indexing_embeds -= busy
            return result

        return ctx.track(self._embed_by(slot, [text for _, text in todo]).addBoth(finished))

    def _commit_vectors(self, ctx: JobContext, model_id: str, todo: list[tuple[str, str]],
                        vectors: Any) -> Deferred[Any]:
        """
        Store one batch's vectors (a transaction) and have the hnsw indexes follow.

        Once the transaction is sent, the hnsw indexes follow it even if the job is
        canceled meanwhile (the engine waits for both), so a canceled job leaves
        them in step.
        """
        fresh = {h: vectors[j].tobytes() for j, (h, _) in enumerate(todo)}
        work = self.db.run(index_store.store_vectors, model_id, fresh,
                           utc_iso(self.clock.seconds()))
        return ctx.track(work.addCallback(self.follow))

    @inlineCallbacks
    def _vectors_missing(self, slot: ModelSlot) -> Any:
        """
        Whether some chunk lacks a vector of C{slot}'s model: cheap when its hnsw
        index holds one for every chunk (the usual case), a count of the stored
        vectors otherwise (0.25 s at 100,000 chunks).
        """
        chunks = yield self.db.run(index_store.count_chunks)
        vectors = slot.vectors
        if vectors.ready and vectors.model_id == slot.model_id and vectors.live_count == chunks:
            return False
        stored = yield self.db.run(index_store.count_live_vectors, slot.model_id)
        return bool(stored < chunks)

    @inlineCallbacks
    def _apply(self, ctx: JobContext, notes: list[NoteUpdate], deleted: list[str],
               summary: dict[str, int], written: dict[str, list[str]]) -> Any:
        if not notes and not deleted:
            return

        def follow(result: BatchResult) -> Deferred[BatchResult]:
            return self.follow(result).addCallback(lambda _: result)

        # Once committed, the batch is followed even if the job is canceled meanwhile.
        result: BatchResult = yield ctx.track(self.db.run(
            index_store.apply_batch, notes, deleted, [s.model_id for s in self.kept()],
            utc_iso(self.clock.seconds())).addCallback(follow))
        summary["notes_indexed"] += len(notes)
        summary["notes_deleted"] += len(deleted)
        summary["chunks"] += sum(len(n.chunks) for n in notes)
        summary["vectors_pending"] += result.pending_vectors
        for model_id, hashes in result.missing.items():
            written.setdefault(model_id, []).extend(hashes)

    def follow(self, result: BatchResult) -> Deferred[None]:
        """Make every kept model's hnsw index follow a committed batch, in commit order."""
        return self.vector_lock.run(self._follow_locked, result)

    @inlineCallbacks
    def _follow_locked(self, result: BatchResult) -> Any:
        for slot in self._mirrors(self.kept()):
            total = None
            if not slot.vectors.ready or slot.vectors.model_id != slot.model_id:
                total = yield self.db.run(index_store.count_live_vectors, slot.model_id)
            yield self.run_cpu(_follow, slot, result, total)

    def vault_root(self, configured: str | None) -> str:
        """The vault folder, or a L{ValueError} saying why there is none."""
        if not configured:
            raise ValueError("no vault configured: set vault_path in /settings")
        if not Path(configured).is_dir():
            raise ValueError(f"vault {configured!r} is not a folder")
        return os.path.realpath(configured)
