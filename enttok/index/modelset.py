"""
The embedding models an index keeps: the active ones search uses, the target
ones a change of model switches to, their loading and the crash counts that
decide whether a death is forgiven.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger

from enttok.index import store as index_store
from enttok.index.embedder import IEmbedder
from enttok.index.mirror import IndexWorkers, VectorMirror
from enttok.index.vectors import IVectorIndex
from enttok.store import Database

#: Starts in a row that found the last run died while embedding, after which
#: chunks left without vectors are no longer embedded by themselves.
MAX_EMBED_CRASHES = 3
#: Starts in a row that found the last run died while a model loaded for which the
#: waiting job gets its attempt back (beyond, the job engine's limit applies).
MAX_FORGIVEN_LOADS = 5


@define(eq=False)
class ModelSlot:
    """One embedding model kept by the index: its name, its embedder, its hnsw mirror."""

    #: What the model is called in the C{embedding_model} setting.
    name: str
    embedder: IEmbedder
    mirror: VectorMirror
    #: Who waits for the model's load now.
    waiters: list[Deferred[None]] = field(factory=list)

    @property
    def model_id(self) -> str:
        """The id its vectors are stored (and its hnsw file named) under."""
        return str(self.embedder.model_id)

    @property
    def vectors(self) -> IVectorIndex:
        return self.mirror.vectors


class ModelSet:
    """
    The active models (search fuses them, the first one first) and, during a
    change of model, the target ones (their vectors are being embedded).

    @param make_embedder: an embedder for a model name (C{None}: models cannot change).
    @param vectors_for: the hnsw index of a model id.
    """

    log = Logger()

    def __init__(self, db: Database, workers: IndexWorkers, first: tuple[str, IEmbedder,
                                                                         IVectorIndex],
                 make_embedder: Callable[[str], IEmbedder] | None,
                 vectors_for: Callable[[str], IVectorIndex], more: Sequence[str] = ()) -> None:
        self._db = db
        self._workers = workers
        self._make_embedder = make_embedder
        self._vectors_for = vectors_for
        name, embedder, vectors = first
        self.active: list[ModelSlot] = [self._slot_of(name, embedder, vectors)]
        #: The models being switched to (their vectors are being embedded), if any.
        self.target: list[ModelSlot] | None = None
        for more_name in more:
            self.active.append(self.new_slot(more_name))
        #: Starts in a row that found the last run had died while embedding.
        self.embed_crashes = 0

    # Which models

    @property
    def names(self) -> list[str]:
        """The active models' names."""
        return [slot.name for slot in self.active]

    def kept(self) -> list[ModelSlot]:
        """The active models, then the target ones not active (each once)."""
        slots = list(self.active)
        for slot in self.target or ():
            if slot not in slots:
                slots.append(slot)
        return slots

    def slot(self, model_id: str | None) -> ModelSlot:
        """A kept model by id (C{None}: the first active one)."""
        if model_id is None:
            return self.active[0]
        for slot in self.kept():
            if slot.model_id == model_id:
                return slot
        raise KeyError(model_id)

    @staticmethod
    def mirrors(slots: Sequence[ModelSlot]) -> list[VectorMirror]:
        """The hnsw mirrors of C{slots}, each once."""
        return list(dict.fromkeys(slot.mirror for slot in slots))

    def _slot_of(self, name: str, embedder: IEmbedder, vectors: IVectorIndex) -> ModelSlot:
        mirror = VectorMirror(self._db, self._workers, str(embedder.model_id), vectors,
                              lambda: int(embedder.dimension or 0))
        return ModelSlot(name, embedder, mirror)

    def new_slot(self, name: str) -> ModelSlot:
        if self._make_embedder is None:
            raise ValueError("this index cannot change its embedding model")
        embedder = self._make_embedder(name)
        model_id = str(embedder.model_id)
        # Two runtimes of one model (vectors of one id) share one hnsw mirror.
        same = next((slot for slot in self.kept() if slot.model_id == model_id), None)
        if same is not None:
            return ModelSlot(name, embedder, same.mirror)
        return self._slot_of(name, embedder, self._vectors_for(model_id))

    # Changing models

    def use(self, names: Sequence[str]) -> bool:
        """
        Make C{names} the target (or, if they are the active models, call off a
        switch).

        @return: whether a switch is pending.
        @raise ValueError: models cannot change (no C{make_embedder}).
        """
        names = list(dict.fromkeys(names))
        if names == self.names:
            self._retire(self.target or [], keep=self.active)
            self.target = None
            return False
        known = {slot.name: slot for slot in self.kept()}
        target = [known.get(name) or self.new_slot(name) for name in names]
        self._retire(self.target or [], keep=[*self.active, *target])
        self.target = target
        if self.embed_crashes:
            # Another model may not crash where this one did: embedding may start again.
            self.embed_crashes = 0
            self._db.run(index_store.reset_embed_crashes).addErrback(
                lambda f: self.log.failure("could not reset the embedding crashes", f))
        return True

    def switch(self, target: list[ModelSlot]) -> None:
        """Make C{target} the active models (one assignment: search sees one set)."""
        old, self.active, self.target = self.active, target, None
        self._retire(old, keep=target)
        self.log.info("embedding models switched to {names}", names=self.names)

    def _retire(self, slots: Sequence[ModelSlot], keep: Sequence[ModelSlot]) -> None:
        """Save and let go of models no longer kept (their files stay for a switch back;
        the mirror's memory goes with it, a switch back loads its file again)."""
        for slot in slots:
            if slot not in keep:
                slot.mirror.save().addErrback(
                    lambda f: self.log.failure("could not save a vector index", f))
                self._workers.embed(slot.embedder.close)

    def close(self) -> Deferred[Any]:
        """Release every kept model (at stop)."""
        return gatherResults([self._workers.embed(slot.embedder.close)
                              for slot in self.kept()])

    # Loading and embedding

    def load(self, slot: ModelSlot, job_id: str | None = None) -> Deferred[None]:
        """
        Load C{slot}'s model once, in the embedder thread; callers meanwhile share
        the same wait. While it loads, the database names the job (if any) that
        waits for it: a process that dies meanwhile (quit, killed, asleep) is not
        that job's fault (see L{recover}).
        """
        if slot.embedder.loaded:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        slot.waiters.append(waiter)
        first = len(slot.waiters) == 1
        if first or job_id is not None:
            self._db.run(index_store.set_model_loading, job_id or index_store.NO_JOB
                         ).addErrback(lambda f: self.log.failure("could not record the model "
                                                                 "load", f))
        if first:
            loading = self._workers.embed(slot.embedder.load)
            loading.addBoth(self._load_recorded).addBoth(self._model_loaded, slot)
        return waiter

    def _load_recorded(self, result: Any) -> Deferred[Any]:
        """The load is over (loaded or failed): a death from now on is not during it."""
        d = self._db.run(index_store.set_model_loading, None)
        d.addErrback(lambda f: self.log.failure("could not record the model load", f))
        return d.addCallback(lambda _: result)

    @staticmethod
    def _model_loaded(result: Any, slot: ModelSlot) -> None:
        waiters, slot.waiters = slot.waiters, []
        for waiter in waiters:
            waiter.callback(result)

    def embed(self, slot: ModelSlot, texts: Sequence[str]) -> Deferred[Any]:
        """Vectors of C{texts} by C{slot}'s model (loaded), in the embedder thread."""
        return self._workers.embed(slot.embedder.embed, list(texts))

    # Crashes

    def recover(self) -> Deferred[int]:
        """
        At start, before the job engine recovers its jobs: give back its attempt to
        a job the last run died in while a model loaded (L{index_store.forgive_load_crash}),
        and count it if the last run died while embedding (see
        L{index_store.count_embed_crash}); fires with that count.
        """
        def forgiven(loads: int) -> Deferred[int]:
            if loads:
                self.log.warn("the last {n} runs died while a model loaded", n=loads)
            return self._db.run(index_store.count_embed_crash)

        def counted(crashes: int) -> int:
            self.embed_crashes = crashes
            if crashes:
                self.log.warn("the last {n} runs died while embedding", n=crashes)
            return crashes

        d = self._db.run(index_store.forgive_load_crash, MAX_FORGIVEN_LOADS)
        return d.addCallback(forgiven).addCallback(counted)

    def embedding_error(self) -> str | None:
        """Why chunks are no longer embedded by themselves, if they are not."""
        if self.embed_crashes < MAX_EMBED_CRASHES:
            return None
        return (f"the daemon died {self.embed_crashes} times in a row while embedding; "
                f"chunks left without vectors are not retried until an index.embed with "
                f"force, an index.rebuild or a change of model")

    def forget_crashes(self) -> Deferred[None]:
        """Let embedding start again after crashes (stored, then counted as none)."""
        if not self.embed_crashes:
            return succeed(None)

        def forgotten(_: object) -> None:
            self.embed_crashes = 0

        d: Deferred[None] = self._db.run(index_store.reset_embed_crashes)
        return d.addCallback(forgotten)
