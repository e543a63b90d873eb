"""Model names and settings, and the torch-free embedders (USE on numpy, MiniLM on ONNX)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from enttok.index import models
from enttok.index.embedder import DEFAULT_MODEL_ID, EmbedderUnavailable, SubprocessEmbedder
from enttok.index.onnx_embedder import OnnxEmbedder
from enttok.index.use_embedder import UniversalSentenceEncoder
from enttok.validation import ValidationError

MEETING_EN = "The team meeting was moved to Tuesday afternoon."
MEETING_KO = "팀 회의가 화요일 오후로 옮겨졌다."
BREAD = "Bake the bread at 220 degrees for thirty minutes."
BREAD_KO = "빵을 220도에서 30분 동안 굽는다."


class SettingTests(SynchronousTestCase):
    """What C{embedding_model} may say."""

    def test_default(self) -> None:
        self.assertEqual(models.parse_models(None), models.DEFAULT_MODELS)
        self.assertEqual(models.parse_models(""), models.DEFAULT_MODELS)

    def test_names_and_sets(self) -> None:
        self.assertEqual(models.parse_models("minilm-onnx"), ("minilm-onnx",))
        self.assertEqual(models.parse_models("use-multilingual + minilm-onnx"),
                         ("use-multilingual", "minilm-onnx"))

    def test_folder(self) -> None:
        self.assertEqual(models.parse_models("/opt/models/e5"), ("/opt/models/e5",))
        self.assertEqual(models.vector_id("/opt/models/e5"), "local:/opt/models/e5")
        self.assertEqual(models.dimension("/opt/models/e5"), 0)

    def test_refused(self) -> None:
        for value, words in [("bogus", "unknown embedding model 'bogus'"),
                             ("minilm+minilm", "named twice"), (7, "expected a string"),
                             ("relative/folder", "unknown embedding model")]:
            with self.assertRaises(ValidationError) as caught:
                models.check_setting(value, "embedding_model")
            self.assertIn(words, str(caught.exception))
            self.assertEqual(caught.exception.field, "embedding_model")

    def test_one_runtime_one_vector_space(self) -> None:
        # The ONNX export gives sentence-transformers' vectors: both share stored vectors.
        self.assertEqual(models.vector_id("minilm-onnx"), models.vector_id("minilm"))
        self.assertEqual(models.vector_id("minilm"), DEFAULT_MODEL_ID)
        self.assertNotEqual(models.vector_id("use-multilingual"), DEFAULT_MODEL_ID)

    def test_models_dir(self) -> None:
        os.environ[models.MODELS_DIR_ENV] = "/srv/enttok-models"
        self.addCleanup(os.environ.pop, models.MODELS_DIR_ENV)
        self.assertEqual(models.models_dir(), Path("/srv/enttok-models"))


class UniversalSentenceEncoderTests(SynchronousTestCase):
    """The multilingual default on numpy (loads in about a second)."""

    embedder: UniversalSentenceEncoder | None = None

    def use(self) -> UniversalSentenceEncoder:
        if UniversalSentenceEncoderTests.embedder is None:
            UniversalSentenceEncoderTests.embedder = UniversalSentenceEncoder("use-test", 2)
        return UniversalSentenceEncoderTests.embedder

    def test_unit_vectors(self) -> None:
        vectors = self.use().embed([MEETING_EN, MEETING_KO, "", "x " * 3000])
        self.assertEqual((vectors.shape, vectors.dtype), ((4, 512), np.float32))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    def test_across_languages(self) -> None:
        en, ko, bread, bread_ko = self.use().embed([MEETING_EN, MEETING_KO, BREAD, BREAD_KO])
        self.assertGreater(float(ko @ en), float(ko @ bread))
        self.assertGreater(float(bread_ko @ bread), float(bread_ko @ en))

    def test_query_and_bulk_agree(self) -> None:
        # A query runs on one BLAS thread, a bulk call on more: the same vectors.
        texts = [f"{MEETING_KO} {i}" for i in range(40)] + ["x " * 600]
        bulk = self.use().embed(texts)
        single = np.vstack([self.use().embed([t]) for t in texts[:3]])
        np.testing.assert_allclose(bulk[:3], single, atol=1e-5)

    def test_empty_call(self) -> None:
        self.assertEqual(self.use().embed([]).shape, (0, 512))


class WeightCacheTests(SynchronousTestCase):
    """The USE weights, inflated once, mapped from plain files at later loads."""

    def test_second_load_maps_the_cache(self) -> None:
        root = Path(self.mktemp())
        first = UniversalSentenceEncoder("use-test", cache=root)
        expected = first.embed([MEETING_KO, BREAD])
        folders = list(root.iterdir())
        self.assertEqual(len(folders), 1)
        self.assertTrue((folders[0] / "manifest.json").is_file())
        second = UniversalSentenceEncoder("use-test", cache=root)
        second.load()
        self.assertIsInstance(second._model._backend.table, np.memmap)
        np.testing.assert_allclose(second.embed([MEETING_KO, BREAD]), expected, atol=1e-6)

    def test_damaged_cache_is_rebuilt(self) -> None:
        root = Path(self.mktemp())
        expected = UniversalSentenceEncoder("use-test", cache=root).embed([MEETING_EN])
        (folder,) = root.iterdir()
        (folder / "proj_W.npy").write_bytes(b"not an array")
        table = folder / "table.npy"
        table.write_bytes(table.read_bytes()[:1000])  # cut short
        again = UniversalSentenceEncoder("use-test", cache=root)
        np.testing.assert_allclose(again.embed([MEETING_EN]), expected, atol=1e-6)
        self.assertNotIsInstance(again._model._backend.table, np.memmap)
        # ... and written anew for the next start.
        third = UniversalSentenceEncoder("use-test", cache=root)
        third.load()
        self.assertIsInstance(third._model._backend.table, np.memmap)

    def test_unwritable_place(self) -> None:
        # A cache that cannot be written (here: below a file) only means no cache.
        blocker = Path(self.mktemp())
        blocker.write_text("a file, not a folder")
        embedder = UniversalSentenceEncoder("use-test", cache=blocker / "models")
        self.assertEqual(embedder.embed([MEETING_EN]).shape, (1, 512))
        self.assertTrue(blocker.is_file())


class RunTimeImportTests(SynchronousTestCase):
    """The daemon's run-time models import neither torch nor sentence-transformers."""

    def test_no_torch(self) -> None:
        script = (
            "import sys, json\n"
            "from enttok.index.models import in_process_embedder\n"
            "e = in_process_embedder('use-multilingual'); e.embed(['회의 meeting'])\n"
            "import enttok.index.onnx_embedder, enttok.service\n"
            "print(json.dumps(sorted(m for m in ('torch', 'sentence_transformers',"
            " 'transformers') if m in sys.modules)))\n")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=120, check=True)
        self.assertEqual(json.loads(out.stdout.strip().splitlines()[-1]), [])

    def test_worker_runs_use(self) -> None:
        worker = SubprocessEmbedder("use-multilingual")
        self.addCleanup(worker.close)
        self.assertEqual((worker.model_id, worker.dimension), ("use-multilingual-v3", 512))
        vectors = worker.embed([MEETING_KO, MEETING_EN])
        here = UniversalSentenceEncoder("x").embed([MEETING_KO, MEETING_EN])
        np.testing.assert_allclose(vectors, here, atol=1e-5)

    def test_missing_export(self) -> None:
        embedder = OnnxEmbedder(tempfile.mkdtemp(), DEFAULT_MODEL_ID)
        with self.assertRaises(EmbedderUnavailable) as caught:
            embedder.load()
        self.assertIn("cannot load ONNX model", str(caught.exception))
