"""
The vault index: the note indexer, and the facade search, jobs and the API use.

L{VaultIndex} reads notes and writes their chunks and full text (this module),
and composes the other pieces of C{enttok/index/}: the models it keeps
(L{enttok.index.modelset}), one hnsw mirror per model id (L{enttok.index.mirror})
and the embedding pipeline (L{enttok.index.embedding}). Nothing outside
C{enttok/index/} reaches past its methods.

Reading and parsing run on the job thread pool, SQL on the database thread,
embedding on the embedder's own thread (the model itself lives in a worker
process by default), and hnswlib work behind each mirror's lock.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from enttok.common.deferreds import Yielding
from enttok.common.paths import on_disk
from enttok.common.times import utc_iso
from enttok.index import store as index_store
from enttok.index.embedder import IEmbedder
from enttok.index.embedding import EMBED_BATCH, TEXT_SHARE, EmbeddingPipeline
from enttok.index.mirror import IndexWorkers, VectorMirror, save_all
from enttok.index.modelset import MAX_EMBED_CRASHES, MAX_FORGIVEN_LOADS, ModelSet
from enttok.index.store import BatchResult, NoteState, NoteUpdate
from enttok.index.vectors import IVectorIndex, VectorIndex, model_file
from enttok.jobs.context import JobContext, JobFailed
from enttok.store import Database
from enttok.threads import BlockingRunner
from enttok.vault.chunker import chunk_note
from enttok.vault.parser import NotText, parse_note
from enttok.vault.walker import FileEntry, WalkWarning, is_inside, list_notes

#: (The pieces' limits are named here too, for those who tune the index.)
__all__ = ["EMBED_BATCH", "MAX_EMBED_CRASHES", "MAX_FILE_BYTES", "MAX_FORGIVEN_LOADS",
           "VaultIndex", "list_vault", "read_notes"]

P = ParamSpec("P")
T = TypeVar("T")

BATCH_NOTES = 32
#: An update that changed this many chunks saves the hnsw file at once.
SAVE_AFTER_CHANGES = 1000
MAX_FILE_BYTES = 5 * 1024 * 1024


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


def list_vault(root: str, should_stop: Callable[[], bool]) -> tuple[list[FileEntry],
                                                                    list[WalkWarning]]:
    """The vault's notes up to L{MAX_FILE_BYTES}, and the warnings (blocking)."""
    return list_notes(root, should_stop, MAX_FILE_BYTES)



def vault_root(configured: str | None) -> str:
    """The vault folder, or a L{ValueError} saying why there is none."""
    if not configured:
        raise ValueError("no vault configured: set vault_path in /settings")
    if not Path(configured).is_dir():
        raise ValueError(f"vault {configured!r} is not a folder")
    return os.path.realpath(configured)


class VaultIndex:
    """
    Everything the indexing jobs, search and the API share.

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
                 vectors: IVectorIndex, run_cpu: BlockingRunner,
                 run_embed: BlockingRunner, name: str | None = None, *,
                 make_embedder: Callable[[str], IEmbedder] | None = None,
                 vectors_for: Callable[[str], IVectorIndex] | None = None,
                 more: Sequence[str] = ()) -> None:
        self._clock = clock
        self._db = db
        self._workers = IndexWorkers(run_cpu, run_embed)
        self._models = ModelSet(
            db, self._workers, (name or str(embedder.model_id), embedder, vectors),
            make_embedder, vectors_for or (
                lambda model_id: VectorIndex(model_file(vectors.path, model_id))), more)
        self._embedding = EmbeddingPipeline(clock, db, self._models, self._follow)
        #: Indexing jobs (L{update}, L{converge}) running now: see L{periodic_save}.
        self.updates_running = 0

    # Where work runs

    @property
    def run_cpu(self) -> BlockingRunner:
        """Where file reading, parsing and hnswlib work run (tests may replace it)."""
        return self._workers.cpu

    @run_cpu.setter
    def run_cpu(self, runner: BlockingRunner) -> None:
        self._workers.cpu = runner

    @property
    def run_embed(self) -> BlockingRunner:
        """The embedders' threads (tests may replace it)."""
        return self._workers.embed

    @run_embed.setter
    def run_embed(self, runner: BlockingRunner) -> None:
        self._workers.embed = runner

    @property
    def file_runner(self) -> BlockingRunner:
        """Where the index reads files: others' file work may share it."""
        return self._workers.cpu

    # The models

    @property
    def embedder(self) -> IEmbedder:
        """The first active model's embedder."""
        return self._models.active[0].embedder

    @property
    def vectors(self) -> IVectorIndex:
        """The first active model's hnsw index."""
        return self._models.active[0].vectors

    @property
    def model_id(self) -> str:
        """The first active model's id."""
        return self._models.active[0].model_id

    @property
    def model_ids(self) -> list[str]:
        """The active models' ids, the first one first."""
        return [slot.model_id for slot in self._models.active]

    @property
    def model_names(self) -> list[str]:
        """The active models' names in settings."""
        return self._models.names

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
        if not self._models.use(names):
            return False
        if prepare:
            self.prepare_vectors().addErrback(
                lambda f: self.log.failure("could not prepare the vector index", f))
        return True

    def load_model(self, model_id: str | None = None) -> Deferred[None]:
        """
        Load a model (default: the first active one) once, in the embedder thread;
        callers meanwhile share the same wait.
        """
        return self._models.load(self._models.slot(model_id))

    def embed(self, texts: Sequence[str], model_id: str | None = None) -> Deferred[Any]:
        """Vectors of C{texts} by a model (default: the first active one), once loaded."""
        return self._models.embed(self._models.slot(model_id), texts)

    def close_models(self) -> Deferred[Any]:
        """Release every kept model (at stop)."""
        return self._models.close()

    # What search reads

    def vector_sources(self) -> list[VectorMirror]:
        """
        What search ranks by: the hnsw mirror of each active model, the first
        one first. Embed a query with L{embed} (the mirror's C{model_id}) after
        L{load_model}; query the mirror only if it is C{current}.
        """
        return [slot.mirror for slot in self._models.active]

    def vectors_usable(self) -> bool:
        """Every active model is loaded and its hnsw index is its own."""
        return all(slot.embedder.loaded and slot.mirror.current
                   for slot in self._models.active)

    @property
    def indexing_embeds(self) -> int:
        """Indexing batches of active models in the embedder now: a query would
        queue behind them."""
        return self._embedding.indexing_embeds

    def read(self, query: Callable[Concatenate[sqlite3.Connection, P], T],
             *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        """Run search's read-only C{query(conn, *args)} on the database thread."""
        return self._db.run(query, *args, **kwargs)

    def status(self) -> Deferred[Mapping[str, Any]]:
        """What C{GET /index/status} shows."""
        models = self._models
        kept = models.kept()
        target = models.target
        d = self._db.run(index_store.counts, self.model_id, [slot.model_id for slot in kept])

        def add(counts: dict[str, Any]) -> Mapping[str, Any]:
            switching = None
            if target is not None:
                wanted = counts["chunks"] * len(target)
                have = sum(counts["vectors_by_model"].get(slot.model_id, 0)
                           for slot in target)
                switching = {"models": [slot.name for slot in target],
                             "model_ids": [slot.model_id for slot in target],
                             "vectors": have,
                             "progress": round(have / wanted, 4) if wanted else 1.0}
            return {**counts, "hnsw_live": self.vectors.live_count,
                    "hnsw_ready": self.vectors.ready, "model_id": self.model_id,
                    "model_loaded": bool(self.embedder.loaded),
                    "models": self.model_names, "model_ids": self.model_ids,
                    "target_models": None if target is None else [s.name for s in target],
                    "switching": switching, "vectors_error": self.embedding_error()}

        return d.addCallback(add)

    # What the jobs read and write besides indexing

    def vault_root(self, configured: str | None) -> str:
        """The vault folder, or a L{ValueError} saying why there is none."""
        return vault_root(configured)

    def note_states(self, paths: Sequence[str] | None) -> Deferred[dict[str, NoteState]]:
        """Known notes by path (those in C{paths}, or all)."""
        return self._db.run(index_store.note_states, paths)

    def note_stats(self) -> Deferred[tuple[dict[str, tuple[int, int]], set[str]]]:
        """The known notes' C{(size, mtime_ns)} by path, and the stale ones
        (L{index_store.note_stats})."""
        return self._db.run(index_store.note_stats)

    def save_metadata(self, notes: Sequence[NoteUpdate]) -> Deferred[Any]:
        """Store what a scan read of C{notes} (not indexed yet)."""
        return self._db.run(index_store.save_metadata, notes, utc_iso(self._clock.seconds()))

    def touch_notes(self, unchanged: Sequence[tuple[str, int, int]]) -> Deferred[Any]:
        """Record new sizes and mtimes of notes whose content did not change."""
        return self._db.run(index_store.touch_notes, unchanged)

    def clear_notes(self) -> Deferred[Any]:
        """Drop every note, chunk and full-text row (stored vectors stay)."""
        return self._db.run(index_store.clear_index)

    # Crashes

    @property
    def embed_crashes(self) -> int:
        """Starts in a row that found the last run had died while embedding."""
        return self._models.embed_crashes

    def recover_embedding(self) -> Deferred[int]:
        """At start: forgive a death during a model load, count one while embedding
        (L{ModelSet.recover}); fires with that count."""
        return self._models.recover()

    def embedding_error(self) -> str | None:
        """Why chunks are no longer embedded by themselves, if they are not."""
        return self._models.embedding_error()

    def forget_embed_crashes(self) -> Deferred[None]:
        """Let chunks be embedded by themselves again after repeated crashes."""
        return self._models.forget_crashes()

    def needs_embedding(self) -> Deferred[bool]:
        """Whether an C{index.embed} job should run (a backlog or a switch, and no crash loop)."""
        return self._embedding.needs_embedding()

    # Indexing

    @inlineCallbacks
    def update(self, ctx: JobContext, root: str, changed: Sequence[str],
               deleted: Sequence[str], skip_indexed: bool = True) -> Yielding[dict[str, int]]:
        """
        Index C{changed} notes and drop C{deleted} ones, then embed what lacks vectors.

        Full text is written first, batch by batch, so notes are searchable by
        words before the model has even loaded.

        @return: a summary dict (the job's result).
        """
        self.updates_running += 1
        try:
            result: dict[str, int] = yield self._update(ctx, root, changed, deleted,
                                                        skip_indexed)
        finally:
            self.updates_running -= 1
        return result

    @inlineCallbacks
    def _update(self, ctx: JobContext, root: str, changed: Sequence[str],
                deleted: Sequence[str], skip_indexed: bool) -> Yielding[dict[str, int]]:
        models = self._models
        summary = {"notes_indexed": 0, "notes_deleted": 0, "notes_unchanged": 0,
                   "chunks": 0, "chunks_embedded": 0, "vectors_pending": 0, "warnings": 0}
        total = len(changed)
        written: dict[str, list[str]] = {}
        loading: set[str] = set()
        yield self._apply(ctx, [], list(deleted), summary, written)
        for start in range(0, total, BATCH_NOTES):
            ctx.check_canceled()
            batch = list(changed[start:start + BATCH_NOTES])
            known = yield ctx.track(self._db.run(index_store.note_states, batch))
            prepared: Prepared = yield ctx.run_blocking(read_notes, root, batch, known,
                                                        skip_indexed, True)
            for rel, message in prepared.warnings:
                ctx.warn(f"{rel}: {message}", path=rel)
                summary["warnings"] += 1
            if prepared.unchanged:
                yield ctx.track(self._db.run(index_store.touch_notes, prepared.unchanged))
            summary["notes_unchanged"] += len(prepared.unchanged)
            gone = [p for p in prepared.vanished if p in known]
            yield self._apply(ctx, prepared.notes, gone, summary, written)
            for slot in models.kept():
                if written.get(slot.model_id) and slot.model_id not in loading:
                    # Some chunks will be embedded: the model loads (in its process)
                    # while the rest of the full text is written; embed_pending waits
                    # for it and reports a failure.
                    loading.add(slot.model_id)
                    models.load(slot, ctx.job_id).addErrback(lambda _: None)
            done = min(total, start + BATCH_NOTES)
            ctx.progress(TEXT_SHARE * done / total,
                         f"indexing {done}/{total} notes ({summary['chunks']} chunks)")
        for slot in models.kept():
            # Leftovers of a crash are embedded here for the active models; a target
            # model's backlog is the index.embed job's (an update stays short).
            yield self._embedding.embed_pending(ctx, summary, written.get(slot.model_id, []),
                                                slot, leftovers=slot in models.active)
        yield self._embedding.switch_if_complete()
        for mirror in models.mirrors(models.kept()):
            yield ctx.track(mirror.compact())
        if summary["chunks"] + summary["chunks_embedded"] >= SAVE_AFTER_CHANGES:
            # Small updates are saved by the periodic saver: rewriting a 100 MB
            # file would cost more than the update (a crash before it costs a catch-up
            # from stored vectors at the next start, not lost data).
            yield ctx.track(self.save_vectors())
        return summary

    @inlineCallbacks
    def _apply(self, ctx: JobContext, notes: list[NoteUpdate], deleted: list[str],
               summary: dict[str, int], written: dict[str, list[str]]) -> Yielding[None]:
        if not notes and not deleted:
            return

        def follow(result: BatchResult) -> Deferred[BatchResult]:
            return self._follow(result).addCallback(lambda _: result)

        # Once committed, the batch is followed even if the job is canceled meanwhile.
        result: BatchResult = yield ctx.track(self._db.run(
            index_store.apply_batch, notes, deleted,
            [s.model_id for s in self._models.kept()],
            utc_iso(self._clock.seconds())).addCallback(follow))
        summary["notes_indexed"] += len(notes)
        summary["notes_deleted"] += len(deleted)
        summary["chunks"] += sum(len(n.chunks) for n in notes)
        summary["vectors_pending"] += result.pending_vectors
        for model_id, hashes in result.missing.items():
            written.setdefault(model_id, []).extend(hashes)

    @inlineCallbacks
    def converge(self, ctx: JobContext, force: bool = False) -> Yielding[dict[str, Any]]:
        """
        Embed every chunk lacking a vector of a kept model, then switch to the
        target models if there are. (The C{index.embed} job.)

        @param force: also after repeated crashes (see L{embedding_error}).
        @return: a summary dict (the job's result).
        @raise JobFailed: C{embedding_crashed}, without C{force}.
        """
        models = self._models
        error = models.embedding_error()
        if error is not None and not force:
            raise JobFailed("embedding_crashed", error)
        if force:
            yield ctx.track(models.forget_crashes())
        self.updates_running += 1
        try:
            summary = {"chunks_embedded": 0, "vectors_pending": 0}
            target = [slot.name for slot in models.target or ()]
            for slot in models.kept():
                yield self._embedding.embed_pending(ctx, summary, [], slot, base=0.0)
            switched = yield self._embedding.switch_if_complete()
            if self.updates_running == 1:
                yield ctx.track(self.save_vectors())
        finally:
            self.updates_running -= 1
        return {**summary, "models": self.model_names,
                "switched_to": target if switched else None}

    # The hnsw mirrors

    def _follow(self, result: BatchResult) -> Deferred[None]:
        """Make every kept model's hnsw mirror follow a committed batch, in commit order."""
        following = [mirror.follow(result)
                     for mirror in self._models.mirrors(self._models.kept())]
        return gatherResults(following, consumeErrors=True).addCallbacks(
            lambda _: None, _first_error)

    def prepare_vectors(self, active_only: bool = False) -> Deferred[None]:
        """
        Load the hnsw file of each kept model (or only the active ones) and bring
        it up to date, else rebuild it; once each: one already prepared is left
        as it is (the batches since keep it current).
        """
        models = self._models
        mirrors = models.mirrors(models.active if active_only else models.kept())

        def record(recorded: object) -> Deferred[None] | None:
            if recorded is None:
                return self._db.run(index_store.set_active_models, self.model_names)
            return None

        @inlineCallbacks
        def prepare(_: object) -> Yielding[None]:
            for mirror in mirrors:
                yield mirror.prepare()

        d: Deferred[None] = self._db.run(index_store.active_models).addCallback(record)
        return d.addCallback(prepare)

    def vectors_prepared(self) -> bool:
        """Whether the hnsw index of each active model is prepared."""
        return all(slot.mirror.prepared for slot in self._models.active)

    @inlineCallbacks
    def rebuild_vectors(self) -> Yielding[None]:
        """Build each model's hnsw index again from the vectors in SQLite (no embedding)."""
        for mirror in self._models.mirrors(self._models.kept()):
            yield mirror.rebuild()

    def save_vectors(self) -> Deferred[None]:
        """Save each changed hnsw index."""
        dirty = [mirror.vectors for mirror in self._models.mirrors(self._models.kept())
                 if mirror.dirty]
        if not dirty:
            return succeed(None)
        return self._workers.cpu(save_all, dirty)

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


def _first_error(failure: Failure) -> Failure:
    """The failure of the first of several Deferreds that failed (not the FirstError)."""
    from twisted.internet.defer import FirstError

    if isinstance(failure.value, FirstError):
        return failure.value.subFailure
    return failure
