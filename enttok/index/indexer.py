"""The vault index: reads notes, writes chunks and full text, embeds, keeps vectors.

Reading and parsing run on the job thread pool, SQL on the database thread,
embedding on the embedder's own thread (the model itself lives in a worker
process by default), and the hnswlib index behind its lock.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from enttok.index import store as index_store
from enttok.index.embedder import EmbedderUnavailable, IEmbedder
from enttok.index.store import BatchResult, NoteState, NoteUpdate
from enttok.index.vectors import VectorIndex
from enttok.jobs.context import JobContext
from enttok.jobs.model import utc_iso
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


def on_disk(root: str, rel: str) -> str:
    """
    The file at vault-relative C{rel} (NFC, as the walker gives it) as named on disk.

    File systems that keep names as bytes (Linux) may hold another normalisation
    form (NFD, from macOS): then each missing part is looked up by its NFC name.
    """
    full = os.path.join(root, *rel.split("/"))
    if os.path.lexists(full):
        return full
    current = root
    for part in rel.split("/"):
        candidate = os.path.join(current, part)
        if not os.path.lexists(candidate):
            try:
                names = os.listdir(current)
            except OSError:
                return full
            match = next((n for n in names if unicodedata.normalize("NFC", n) == part), None)
            if match is None:
                return full
            candidate = os.path.join(current, match)
        current = candidate
    return current


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


def embedding_progress(done: int, total: int) -> tuple[float, str]:
    """An update's progress once C{done} of C{total} chunks are embedded."""
    shown = max(total, done, 1)
    return TEXT_SHARE + (1 - TEXT_SHARE) * done / shown, f"embedding {done}/{shown} chunks"


def _repeating(message: str) -> Callable[[int], str]:
    return lambda _: message


def list_vault(root: str, should_stop: Callable[[], bool]) -> tuple[list[FileEntry],
                                                                    list[WalkWarning]]:
    """The vault's notes up to L{MAX_FILE_BYTES}, and the warnings (blocking)."""
    return list_notes(root, should_stop, MAX_FILE_BYTES)


class VaultIndex:
    """
    Everything the indexing jobs and search share.

    @param run_cpu: where file reading, parsing and hnswlib work run.
    @param run_embed: a single thread for the embedder.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, db: Database, embedder: IEmbedder,
                 vectors: VectorIndex, run_cpu: BlockingRunner,
                 run_embed: BlockingRunner, model_path: str | None = None) -> None:
        self.clock = clock
        self.db = db
        self.embedder = embedder
        self.vectors = vectors
        self.run_cpu = run_cpu
        self.run_embed = run_embed
        self.model_path = model_path
        self._waiters: list[Deferred[None]] = []
        #: Indexing batches being embedded now: a query would queue behind them.
        self.indexing_embeds = 0
        #: Indexing jobs (L{update}) running now: see L{periodic_save}.
        self.updates_running = 0
        #: Orders every change to the hnsw index (start-up load, batches, rebuilds).
        self.vector_lock = DeferredLock()

    # The model

    @property
    def model_id(self) -> str:
        return str(self.embedder.model_id)

    def load_model(self) -> Deferred[None]:
        """Load the model once, in its thread; callers meanwhile share the same wait."""
        if self.embedder.loaded:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            self.run_embed(self.embedder.load).addBoth(self._model_loaded)
        return waiter

    def _model_loaded(self, result: Any) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(result)

    def embed(self, texts: Sequence[str]) -> Deferred[Any]:
        return self.run_embed(self.embedder.embed, list(texts))

    def set_embedder(self, embedder: IEmbedder, model_path: str | None) -> None:
        """Switch models: the vector index must be rebuilt (see L{prepare_vectors})."""
        old, self.embedder = self.embedder, embedder
        self.model_path = model_path
        self.run_embed(old.close)
        self.vectors.version = -1

    # The vector index

    def prepare_vectors(self) -> Deferred[Any]:
        """Load the hnsw file and bring it up to date, else rebuild it from stored vectors."""
        return self.vector_lock.run(self._prepare_vectors)

    @inlineCallbacks
    def _prepare_vectors(self) -> Any:
        model_id = self.model_id
        version = yield self.db.run(index_store.meta_int, index_store.VECTORS_VERSION)
        dimension = yield self.db.run(index_store.stored_dimension, model_id)
        if dimension is None:
            dimension = self.embedder.dimension
        if not dimension:
            return
        ids = yield self.db.run(index_store.live_vector_ids, model_id)
        if not ids:
            return  # nothing to load: the index is created with its first vector
        missing = yield self.run_cpu(self.vectors.load, model_id, dimension, version,
                                     lambda: ids)
        if missing is None:
            self.log.info("vector index missing or unusable; rebuilding from stored vectors")
            yield self._rebuild_vectors(dimension, version)
            return
        for start in range(0, len(missing), VECTOR_PAGE):
            page = yield self.db.run(index_store.vectors_of, model_id,
                                     missing[start:start + VECTOR_PAGE])
            yield self.run_cpu(self._add_page, page)
        if self.vectors.dirty:
            self.log.info("vector index loaded and brought up to date from stored vectors "
                          "({added} added): {n} vectors", added=len(missing),
                          n=self.vectors.live_count)
        else:
            self.log.info("vector index loaded: {n} vectors", n=self.vectors.live_count)

    def rebuild_vectors(self, dimension: int) -> Deferred[Any]:
        """Build the hnsw index again from the vectors in SQLite (no embedding)."""
        return self.vector_lock.run(self._rebuild_vectors, dimension)

    @inlineCallbacks
    def _rebuild_vectors(self, dimension: int, version: int | None = None) -> Any:
        model_id = self.model_id
        if version is None:
            version = yield self.db.run(index_store.meta_int, index_store.VECTORS_VERSION)
        # hnswlib and numpy are imported (half a second, the first time) and used on
        # worker threads only: the reactor keeps answering meanwhile.
        yield self.run_cpu(self.vectors.reset, model_id, dimension, version)
        after = 0
        while True:
            page = yield self.db.run(index_store.vector_page, model_id, after, VECTOR_PAGE)
            if not page:
                break
            yield self.run_cpu(self._add_page, page)
            after = page[-1][0]
        self.vectors.version = version
        yield self.run_cpu(self.vectors.save)

    def _add_page(self, page: Sequence[tuple[int, bytes]]) -> None:
        """Add stored vectors, C{(chunk id, float32 blob)}, to the hnsw index (worker thread)."""
        import numpy as np

        ids = [cid for cid, _ in page]
        matrix = np.frombuffer(b"".join(v for _, v in page), dtype=np.float32)
        self.vectors.add(ids, matrix.reshape(len(ids), self.vectors.dimension))

    def save_vectors(self) -> Deferred[None]:
        if not self.vectors.dirty:
            return succeed(None)
        return self.run_cpu(self.vectors.save)

    def periodic_save(self) -> Deferred[None]:
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
        written: list[str] = []
        loading = False
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
            if written and not loading:
                # Some chunks will be embedded: the model loads (in its process) while
                # the rest of the full text is written; _embed_pending waits for it
                # and reports a failure.
                loading = True
                self.load_model().addErrback(lambda _: None)
            done = min(total, start + BATCH_NOTES)
            ctx.progress(TEXT_SHARE * done / total,
                         f"indexing {done}/{total} notes ({summary['chunks']} chunks)")
        yield self._embed_pending(ctx, summary, written)
        yield ctx.track(self.run_cpu(self.vectors.compact_if_needed))
        if summary["chunks"] + summary["chunks_embedded"] >= SAVE_AFTER_CHANGES:
            # Small updates are saved by the periodic saver: rewriting a 100 MB
            # file would cost more than the update (a crash before it costs a catch-up
            # from stored vectors at the next start, not lost data).
            yield ctx.track(self.save_vectors())
        return summary

    @inlineCallbacks
    def _embed_pending(self, ctx: JobContext, summary: dict[str, int],
                       written: list[str]) -> Any:
        """
        Embed the chunks this job wrote without a vector (C{written}, their hashes),
        then any that an earlier crash left without one.

        Chunks go to the embedder longest first, L{EMBED_BATCH} at a time, so that
        each call pads its texts little (as one C{encode} of all texts would). The
        work is a pipeline: while the embedder encodes one batch, the texts of the
        next are fetched and the vectors of the previous one are committed (one
        transaction each, in order) and added to the hnsw index. At most one
        batch is in the embedder at a time, so a search queues behind one only.
        """
        model_id = self.model_id
        queue = list(dict.fromkeys(written))
        if not queue and not (yield self._vectors_missing()):
            return
        total = len(queue)
        loading = f"loading the embedding model for {total or 'pending'} chunks"
        ctx.progress(TEXT_SHARE, loading)
        try:
            yield ctx.progress_while(ctx.track(self.load_model()), TEXT_SHARE,
                                     lambda waited: f"{loading} ({waited} s)")
        except EmbedderUnavailable as e:
            ctx.warn(f"vectors skipped: {e}")
            return
        if queue:
            queue = yield ctx.track(self.db.run(longest_first, queue))
        start = done = 0
        #: The batch in the embedder: its (hash, text) pairs and its vectors to come.
        embedding: tuple[list[tuple[str, str]], Deferred[Any]] | None = None
        try:
            while True:
                # The next batch's texts, fetched while the embedder is busy.
                todo: list[tuple[str, str]] = []
                while not todo and not ctx.canceled:
                    if start < len(queue):
                        part = queue[start:start + EMBED_BATCH]
                        start += len(part)
                        texts = dict((yield ctx.track(self.db.run(index_store.texts_for,
                                                                  part))))
                        todo = [(h, texts[h]) for h in part if h in texts]
                    elif embedding is not None or not (yield self._vectors_missing()):
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
                    fraction, message = embedding_progress(done, total)
                    vectors = yield ctx.progress_while(waiting, fraction,
                                                       _repeating(message))
                    embedding = None
                if todo and not ctx.canceled:
                    embedding = (todo, self._embed_batch(ctx, todo))
                if finished:
                    yield self._commit_vectors(ctx, model_id, finished, vectors)
                    done += len(finished)
                    summary["chunks_embedded"] += len(finished)
                    ctx.progress(*embedding_progress(done, total))
                ctx.check_canceled()
                if embedding is None and not finished:
                    break
        finally:
            if embedding is not None:
                # Left behind by a failure or a cancellation: its vectors are dropped
                # (the chunks stay without vectors and are embedded by a later update).
                embedding[1].addErrback(lambda _: None)
        summary["vectors_pending"] = 0

    def _embed_batch(self, ctx: JobContext, todo: list[tuple[str, str]]) -> Deferred[Any]:
        """Start embedding C{todo}; L{indexing_embeds} counts it until the embedder is done."""
        self.indexing_embeds += 1

        def finished(result: Any) -> Any:
            self.indexing_embeds -= 1
            return result

        return ctx.track(self.embed([text for _, text in todo]).addBoth(finished))

    def _commit_vectors(self, ctx: JobContext, model_id: str, todo: list[tuple[str, str]],
                        vectors: Any) -> Deferred[Any]:
        """
        Store one batch's vectors (a transaction) and have the hnsw index follow.

        Once the transaction is sent, the hnsw index follows it even if the job is
        canceled meanwhile (the engine waits for both), so a canceled job leaves
        them in step.
        """
        fresh = {h: vectors[j].tobytes() for j, (h, _) in enumerate(todo)}
        work = self.db.run(index_store.store_vectors, model_id, fresh,
                           utc_iso(self.clock.seconds()))
        return ctx.track(work.addCallback(self.follow))

    @inlineCallbacks
    def _vectors_missing(self) -> Any:
        """
        Whether some chunk may lack a vector: cheap when the hnsw index holds one
        for every chunk (the usual case), a table scan only otherwise.
        """
        chunks = yield self.db.run(index_store.count_chunks)
        vectors = self.vectors
        if vectors.ready and vectors.model_id == self.model_id and vectors.live_count == chunks:
            return False
        found = yield self.db.run(index_store.chunks_without_vectors, self.model_id, 1)
        return bool(found)

    @inlineCallbacks
    def _apply(self, ctx: JobContext, notes: list[NoteUpdate], deleted: list[str],
               summary: dict[str, int], written: list[str]) -> Any:
        if not notes and not deleted:
            return

        def follow(result: BatchResult) -> Deferred[BatchResult]:
            return self.follow(result).addCallback(lambda _: result)

        # Once committed, the batch is followed even if the job is canceled meanwhile.
        result: BatchResult = yield ctx.track(self.db.run(
            index_store.apply_batch, notes, deleted, self.model_id,
            utc_iso(self.clock.seconds())).addCallback(follow))
        summary["notes_indexed"] += len(notes)
        summary["notes_deleted"] += len(deleted)
        summary["chunks"] += sum(len(n.chunks) for n in notes)
        summary["vectors_pending"] += result.pending_vectors
        written.extend(result.missing)

    def follow(self, result: BatchResult) -> Deferred[None]:
        """Make the hnsw index follow a committed batch, in commit order."""
        return self.vector_lock.run(self._follow_locked, result)

    @inlineCallbacks
    def _follow_locked(self, result: BatchResult) -> Any:
        total = None
        if not self.vectors.ready or self.vectors.model_id != self.model_id:
            total = yield self.db.run(index_store.count_live_vectors, self.model_id)
        yield self.run_cpu(self._follow, result, total)

    def _follow(self, result: BatchResult, total: int | None) -> None:
        """
        Apply a batch to the hnsw index (worker thread).

        @param total: when the index must start afresh, the number of vectors the
            database holds for the model: the new index is current only if this
            batch brings all of them.
        """
        import numpy as np

        vectors = self.vectors
        if total is not None:
            # After a model switch the old model's vectors must not mix with the new
            # one's (nor their dimensions); the switch re-adds every chunk (a rebuild).
            if not result.added:
                return
            dimension = len(result.added[0][1]) // 4
            complete = total == len(result.added)
            vectors.reset(self.model_id, dimension, result.version - 1 if complete else -2)
        vectors.delete(result.removed)
        if result.added:
            ids = [cid for cid, _ in result.added]
            matrix = np.frombuffer(b"".join(v for _, v in result.added), dtype=np.float32)
            vectors.add(ids, matrix.reshape(len(ids), vectors.dimension))
        if vectors.version == result.version - 1:
            vectors.version = result.version
        elif vectors.version < result.version:
            vectors.version = -1  # out of step: caught up (or rebuilt) at next start
        # Else the index was rebuilt from the database after this batch was committed
        # (start-up runs while jobs do): it holds the batch already, and replaying
        # the batches in commit order leaves it as it was.

    def vault_root(self, configured: str | None) -> str:
        """The vault folder, or a L{ValueError} saying why there is none."""
        if not configured:
            raise ValueError("no vault configured: set vault_path in /settings")
        if not Path(configured).is_dir():
            raise ValueError(f"vault {configured!r} is not a folder")
        return os.path.realpath(configured)
