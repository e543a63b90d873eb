"""
The embedding pipeline: chunks without a vector of a kept model are embedded,
their vectors stored and the hnsw mirrors told; once a target model has every
vector, the index switches to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime

from enttok.common.deferreds import Yielding
from enttok.common.times import utc_iso
from enttok.index import store as index_store
from enttok.index.embedder import EmbedderUnavailable
from enttok.index.modelset import ModelSet, ModelSlot
from enttok.index.store import BatchResult
from enttok.jobs.context import JobContext
from enttok.store import Database

#: Chunks per call to the embedder (see L{EmbeddingPipeline.embed_pending}). Texts sorted
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

#: A batch of chunks to embed: (content hash, text) pairs.
Texts = list[tuple[str, str]]


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


def _repeating(message: str) -> Callable[[int], str]:
    return lambda _: message


@define
class _Backlog:
    """The hashes one L{EmbeddingPipeline.embed_pending} call has to embed, in order."""

    queue: list[str]
    #: Whether chunks an earlier crash left without vectors are looked for too.
    leftovers: bool
    start: int = 0
    total: int = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.total = len(self.queue)


class EmbeddingPipeline:
    """
    Embeds chunks for the kept models of C{models}, commits their vectors and has
    the hnsw mirrors C{follow} each commit.
    """

    def __init__(self, clock: IReactorTime, db: Database, models: ModelSet,
                 follow: Callable[[BatchResult], Deferred[None]]) -> None:
        self._clock = clock
        self._db = db
        self._models = models
        self._follow = follow
        #: Indexing batches of active models in the embedder now: a query would
        #: queue behind them.
        self.indexing_embeds = 0

    @inlineCallbacks
    def embed_pending(self, ctx: JobContext, summary: dict[str, int], written: list[str],
                      slot: ModelSlot, leftovers: bool = True,
                      base: float = TEXT_SHARE) -> Yielding[None]:
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
        a process that dies then is counted at the next start (L{ModelSet.recover});
        one that dies while the model loads is not.

        @param base: the job's progress before embedding starts.
        """
        leftovers = leftovers and self._models.embedding_error() is None
        queue = list(dict.fromkeys(written))
        if not queue and not (leftovers and (yield self.vectors_missing(slot))):
            return
        which = f" {slot.name}" if len(self._models.kept()) > 1 else ""
        loading = f"loading the embedding model{which} for {len(queue) or 'pending'} chunks"
        ctx.progress(base, loading)
        try:
            yield ctx.progress_while(ctx.track(self._models.load(slot, ctx.job_id)), base,
                                     lambda waited: f"{loading} ({waited} s)")
        except EmbedderUnavailable as e:
            ctx.warn(f"vectors of {slot.name} skipped: {e}")
            return
        if queue:
            queue = yield ctx.track(self._db.run(longest_first, queue))
        backlog = _Backlog(queue, leftovers)
        done = 0
        marked = False
        #: The batch in the embedder: its texts and its vectors to come.
        embedding: tuple[Texts, Deferred[Any]] | None = None
        try:
            while True:
                # The next batch's texts, fetched while the embedder is busy.
                todo: Texts = yield self._next_texts(ctx, slot, backlog, embedding is not None)
                finished: Texts = []
                vectors: Any = None
                if embedding is not None:
                    finished, waiting = embedding
                    # (A call takes about a second: on a slow or busy machine, the
                    # last count is repeated every second until it returns.)
                    fraction, message = embedding_progress(done, backlog.total, base)
                    vectors = yield ctx.progress_while(waiting, fraction,
                                                       _repeating(message))
                    embedding = None
                if todo and not ctx.canceled:
                    if not marked:
                        yield ctx.track(self._db.run(index_store.set_embedding, True))
                        marked = True
                    embedding = (todo, self._embed_batch(ctx, slot, todo))
                if finished:
                    yield self._commit_vectors(ctx, slot.model_id, finished, vectors)
                    self._models.embed_crashes = 0  # (the commit set it so in the database)
                    done += len(finished)
                    summary["chunks_embedded"] += len(finished)
                    ctx.progress(*embedding_progress(done, backlog.total, base))
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
                yield self._db.run(index_store.set_embedding, False)
        summary["vectors_pending"] = 0

    @inlineCallbacks
    def _next_texts(self, ctx: JobContext, slot: ModelSlot, backlog: _Backlog,
                    busy: bool) -> Yielding[Texts]:
        """
        The next batch of C{backlog} that still needs embedding, as texts (none:
        nothing left, the job was canceled, or the model is no longer kept after
        a switch was called off).

        @param busy: a batch is in the embedder. Chunks a crash left without
            vectors are looked for once every vector of the queue is committed:
            not before.
        """
        todo: Texts = []
        while not todo and not ctx.canceled and slot in self._models.kept():
            if backlog.start < len(backlog.queue):
                part = backlog.queue[backlog.start:backlog.start + EMBED_BATCH]
                backlog.start += len(part)
                texts = dict((yield ctx.track(self._db.run(index_store.texts_for, part))))
                todo = [(h, texts[h]) for h in part if h in texts]
            elif busy or not backlog.leftovers or not (yield self.vectors_missing(slot)):
                break
            else:
                backlog.queue = yield ctx.track(self._db.run(
                    missing_longest_first, slot.model_id, MISSING_WINDOW))
                backlog.start = 0
                backlog.total += len(backlog.queue)
                if not backlog.queue:
                    break
        return todo

    def _embed_batch(self, ctx: JobContext, slot: ModelSlot, todo: Texts) -> Deferred[Any]:
        """
        Start embedding C{todo}; L{indexing_embeds} counts it until the embedder is
        done if the model is an active one (a target model's batches hold up no
        query: each model has its own worker, and the embed pool a thread more).
        """
        busy = 1 if slot in self._models.active else 0
        self.indexing_embeds += busy

        def finished(result: Any) -> Any:
            self.indexing_embeds -= busy
            return result

        return ctx.track(self._models.embed(slot, [text for _, text in todo]
                                            ).addBoth(finished))

    def _commit_vectors(self, ctx: JobContext, model_id: str, todo: Texts,
                        vectors: Any) -> Deferred[None]:
        """
        Store one batch's vectors (a transaction) and have the hnsw mirrors follow.

        Once the transaction is sent, the mirrors follow it even if the job is
        canceled meanwhile (the engine waits for both), so a canceled job leaves
        them in step.
        """
        fresh = {h: vectors[j].tobytes() for j, (h, _) in enumerate(todo)}
        work = self._db.run(index_store.store_vectors, model_id, fresh,
                            utc_iso(self._clock.seconds()))
        return ctx.track(work.addCallback(self._follow))

    @inlineCallbacks
    def vectors_missing(self, slot: ModelSlot) -> Yielding[bool]:
        """
        Whether some chunk lacks a vector of C{slot}'s model: cheap when its hnsw
        index holds one for every chunk (the usual case), a count of the stored
        vectors otherwise (0.25 s at 100,000 chunks).
        """
        chunks = yield self._db.run(index_store.count_chunks)
        if slot.mirror.holds(chunks):
            return False
        stored = yield self._db.run(index_store.count_live_vectors, slot.model_id)
        return bool(stored < chunks)

    @inlineCallbacks
    def needs_embedding(self) -> Yielding[bool]:
        """Whether an C{index.embed} job should run (a backlog or a switch, and no crash loop)."""
        models = self._models
        if models.embedding_error() is not None:
            return False
        if models.target is not None:
            return True
        for slot in models.active:
            if (yield self.vectors_missing(slot)):
                return True
        return False

    @inlineCallbacks
    def switch_if_complete(self) -> Yielding[bool]:
        """
        Switch to the target models if all their vectors are stored and in their
        hnsw mirrors: one assignment, so a search uses either set, never a mix.

        @return: whether it switched.
        """
        models = self._models
        target = models.target
        if target is None:
            return False
        for slot in target:
            if (yield self.vectors_missing(slot)):
                return False
        for mirror in models.mirrors(target):
            yield mirror.complete()
        if models.target is not target:
            return False  # changed meanwhile
        yield self._db.run(index_store.set_active_models, [slot.name for slot in target])
        models.switch(target)
        return True
