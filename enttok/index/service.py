"""The index's lifecycle: vectors ready at start, saved while running and at stop."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from enttok.index.embedder import IEmbedder
from enttok.index.indexer import VaultIndex
from enttok.index.models import make_embedder, parse_models
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


class IndexService(MultiService):
    """Prepares the vector index at start, saves it periodically and at stop."""

    log = Logger()

    def __init__(self, clock: IReactorTime, index: VaultIndex) -> None:
        super().__init__()
        self.index = index
        self._clock = clock
        self._prepare_call: IDelayedCall | None = None
        PeriodicService(clock, SAVE_INTERVAL, index.periodic_save, "save-vectors"
                        ).setServiceParent(self)
        self._preparing: Deferred[Any] | None = None

    def startService(self) -> None:
        super().startService()
        # After start-up: loading hnswlib and numpy must not delay the ready line.
        self._prepare_call = self._clock.callLater(PREPARE_DELAY, self._prepare)

    def _prepare(self) -> None:
        self._prepare_call = None
        self._preparing = self.index.prepare_vectors()
        self._preparing.addErrback(
            lambda f: self.log.failure("could not prepare the vector index", f))

    def stopService(self) -> Deferred[Any]:
        if self._prepare_call is not None and self._prepare_call.active():
            self._prepare_call.cancel()
        preparing = self._preparing
        d: Deferred[Any] = super().stopService()
        if preparing is not None and not preparing.called:
            d.addCallback(lambda _: preparing)
        d.addCallback(lambda _: self.index.save_vectors())
        d.addErrback(lambda f: self.log.failure("could not save the vector index", f))
        d.addCallback(lambda _: self.index.run_embed(self.index.embedder.close))
        return d
