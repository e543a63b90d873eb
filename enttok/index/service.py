"""The index's lifecycle: vectors ready at start, saved while running and at stop."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from enttok.index import store as index_store
from enttok.index.embedder import IEmbedder
from enttok.index.indexer import VaultIndex
from enttok.index.jobs import Submit
from enttok.index.models import MODELS, make_embedder, parse_models, vector_id
from enttok.periodic import PeriodicService

#: Seconds between saves of a changed hnsw file. Each save holds the GIL (0.4 s at
#: 73,000 vectors); a crash that loses some is caught up at the next start.
SAVE_INTERVAL = 300.0
#: Seconds after start before the vector index is loaded.
PREPARE_DELAY = 1.0


def embedders_for(setting: str | None) -> list[IEmbedder]:
    """The embedders an C{embedding_model} setting names (C{None}: the default)."""
    return [make_embedder(name) for name in parse_models(setting)]


def embedder_for(setting: str | None) -> IEmbedder:
    """The first (usually only) embedder an C{embedding_model} setting names."""
    return embedders_for(setting)[0]


def starting_models(conn: sqlite3.Connection, wanted: Sequence[str]) -> tuple[str, ...]:
    """
    The models search starts with (blocking; once, while the daemon is built): those
    it used last, as recorded. A database from before the record: the known model
    whose vectors it holds, if any, so that an upgrade that changes the default
    model keeps semantic search while the new model's vectors are embedded.
    Else (or if a recorded name is no longer known) C{wanted}.
    """
    recorded = index_store.active_models(conn)
    if recorded:
        try:
            return tuple(name for part in recorded for name in parse_models(part))
        except ValueError:
            return tuple(wanted)
    stored = {row[0] for row in conn.execute("select distinct model_id from embeddings")}
    if not stored or any(vector_id(name) in stored for name in wanted):
        return tuple(wanted)
    earlier = [name for name in MODELS if vector_id(name) in stored]
    return (earlier[0],) if earlier else tuple(wanted)


class IndexService(MultiService):
    """
    Loads the models and prepares the vector indexes at start, saves them
    periodically and at stop;
    queues C{index.embed} at start when chunks lack vectors or a change of model
    was not finished.

    @param submit: queues a job (C{None}: nothing is queued).
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, index: VaultIndex,
                 submit: Submit | None = None) -> None:
        super().__init__()
        self.index = index
        self._clock = clock
        self._submit = submit
        self._recovering: Deferred[Any] = succeed(None)
        self._prepare_call: IDelayedCall | None = None
        self._warm_call: IDelayedCall | None = None
        PeriodicService(clock, SAVE_INTERVAL, index.periodic_save, "save-vectors"
                        ).setServiceParent(self)
        self._preparing: Deferred[Any] | None = None

    def startService(self) -> None:
        super().startService()
        # Before any job embeds (the database runs its calls in order): whether the
        # last run died while embedding.
        self._recovering = self.index.recover_embedding()
        self._recovering.addErrback(
            lambda f: self.log.failure("could not read the embedding state", f))
        # Once the reactor runs: each model loads in its own worker process, beside
        # the rest of the start-up.
        self._warm_call = self._clock.callLater(0, self._warm_models)
        # After start-up: loading hnswlib and numpy must not delay the ready line.
        self._prepare_call = self._clock.callLater(PREPARE_DELAY, self._prepare)

    def _prepare(self) -> None:
        self._prepare_call = None
        self._preparing = self._recovering.addCallback(self._prepare_vectors)
        self._preparing.addErrback(
            lambda f: self.log.failure("could not prepare the vector index", f))
        self._preparing.addCallback(lambda _: self.embed_if_needed())

    def _warm_models(self) -> None:
        """Load the active models now (each in its worker process), so the first scan's
        embedding and the first semantic search do not wait for them."""
        for model_id in self.index.model_ids:
            self.index.load_model(model_id).addErrback(self._not_loaded, model_id)

    def _not_loaded(self, failure: Failure, model_id: str) -> None:
        self.log.warn("could not load {model}: {error}", model=model_id,
                      error=failure.getErrorMessage())

    def _prepare_vectors(self, _: object) -> Deferred[Any]:
        return self.index.prepare_vectors()

    def embed_if_needed(self) -> Deferred[Any]:
        """Queue C{index.embed} if chunks lack vectors or a switch of model is pending."""
        submit = self._submit
        if submit is None or not self.running:
            return succeed(None)

        def queue(needed: bool) -> Any:
            return submit("index.embed", {}) if needed else None

        d: Deferred[Any] = self.index.needs_embedding().addCallback(queue)
        return d.addErrback(lambda f: self.log.failure("could not queue index.embed", f))

    def stopService(self) -> Deferred[Any]:
        for call in (self._warm_call, self._prepare_call):
            if call is not None and call.active():
                call.cancel()
        preparing = self._preparing
        d: Deferred[Any] = super().stopService()
        if preparing is not None and not preparing.called:
            d.addCallback(lambda _: preparing)
        d.addCallback(lambda _: self.index.save_vectors())
        d.addErrback(lambda f: self.log.failure("could not save the vector index", f))
        d.addCallback(lambda _: self.index.close_models())
        return d
