"""A BERT-style sentence model on ONNX Runtime: tokenizer, forward pass, mean pooling, norm.

Imports neither torch nor sentence-transformers: the folder holds C{model.onnx}
(exported by L{enttok.index.export_onnx}) and the Hugging Face C{tokenizer.json}.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from enttok.index.embedder import EmbedderUnavailable, IEmbedder

if TYPE_CHECKING:
    import numpy as np

#: Texts per forward pass (sorted by length first, so padding stays small).
BATCH_SIZE = 32
#: Calls with at most this many characters in all (a search query) run on one thread.
SMALL_CALL_CHARS = 1000


@implementer(IEmbedder)
class OnnxEmbedder:
    """
    Mean-pooled, L2-normalised sentence vectors from an ONNX transformer.

    @param folder: holds C{model.onnx} and C{tokenizer.json}.
    @param model_id: the id its vectors are stored under.
    @param max_length: tokens per text; the bundled C{tokenizer.json} of
        all-MiniLM-L6-v2 says 128, while the model reads 256: this wins.
    @param threads: ONNX Runtime's intra-op threads (C{None}: its default).
    """

    def __init__(self, folder: str | Path, model_id: str, dimension: int = 0,
                 max_length: int = 256, threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.model_id = model_id
        self.dimension = dimension
        self._max_length = max_length
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._query_session: Any = None
        self._tokenizer: Any = None
        self._inputs: set[str] = set()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                self._load()
            except Exception as e:
                raise EmbedderUnavailable(f"cannot load ONNX model in {self.folder}: {e}") from e

    def _load(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tokenizer.enable_truncation(self._max_length)
        pad_id = tokenizer.token_to_id("[PAD]") or 0
        tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
        model = str(self.folder / "model.onnx")
        session = onnxruntime.InferenceSession(model, self._options(self._threads),
                                               providers=["CPUExecutionProvider"])
        # A search query is too small to share between threads (hand-offs dominate).
        query = onnxruntime.InferenceSession(model, self._options(1),
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in session.get_inputs()}
        self._tokenizer, self._session, self._query_session = tokenizer, session, query
        self.dimension = int(self._run(session, ["warm up"]).shape[1])

    @staticmethod
    def _options(threads: int | None) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: on two cores, spinning workers
        # would take the CPU from the daemon (as OpenMP's did; see worker_environment).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return options

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if sum(map(len, texts)) <= SMALL_CALL_CHARS:
            return self._run(self._query_session, texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            out[rows] = self._run(self._session, [texts[i] for i in rows])
        return out

    def _run(self, session: Any, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (tokens,) = session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: np.ndarray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result

    def close(self) -> None:
        with self._lock:
            self._session = self._query_session = self._tokenizer = None

