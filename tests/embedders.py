"""Embedders for the tests and benchmarks: L{HashingEmbedder}, small and deterministic."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from zope.interface import implementer

from enttok.index.embedder import IEmbedder

_TOKEN = re.compile(r"[\uac00-\ud7a3\u4e00-\u9fff\u3040-\u30ff]{1,2}|[^\W_]+")


@implementer(IEmbedder)
class HashingEmbedder:
    """
    A small deterministic embedder (feature hashing of words and CJK bigrams).

    It is what the tests use instead of the real model: texts that share words
    get similar vectors, and nothing is downloaded or slow.

    @ivar calls: how many times L{embed} was called.
    @ivar texts_embedded: how many texts it was given in all.
    """

    def __init__(self, dimension: int = 64, model_id: str | None = None) -> None:
        self.dimension = dimension
        self.model_id = model_id or f"hashing-{dimension}"
        self.loaded = False
        self.calls = 0
        self.texts_embedded = 0

    def load(self) -> None:
        self.loaded = True

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dimension] += 1.0 if value & (1 << 63) else -1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else out[row]
            if not norm:
                out[row, 0] = 1.0
        return out

    def close(self) -> None:
        self.loaded = False
