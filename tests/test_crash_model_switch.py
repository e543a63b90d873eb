"""A change of embedding model through /settings, killed midway: search never stops.

The daemon runs with a test embedder per model name (L{NamedEmbedder}: the tests'
hashing embedder under another id and length for each name) that logs how many
texts each call embeds and, for indexing batches, takes as long as
C{ENTTOK_TEST_EMBED_SECONDS} says, so that a switch is slow enough to watch and
to kill.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from enttok.index.indexer import EMBED_BATCH
from enttok.index.vectors import model_file
from tests.daemonsupport import Daemon, write_settings
from tests.embedders import HashingEmbedder
from tests.test_crash_model_load import make_vault

EMBED_SECONDS = "ENTTOK_TEST_EMBED_SECONDS"
EMBED_LOG = "ENTTOK_TEST_EMBED_LOG"
WAIT = 90.0
#: The one query the test sends (its embeddings are not logged).
QUERY = "회의록 정리 항목13"

NAMED = ["-c", "import sys\n"
               "import enttok.service\n"
               "from tests.test_crash_model_switch import NamedEmbedder\n"
               "enttok.service.embedder_for = NamedEmbedder\n"
               "from twisted.scripts.twistd import run\n"
               "sys.exit(run())\n",
         "-n", "--pidfile=", "enttok"]


class NamedEmbedder(HashingEmbedder):
    """
    A hashing embedder standing for the model C{name} (its own vector id and
    length); logs each call's size, except for L{QUERY}.
    """

    def __init__(self, name: str) -> None:
        super().__init__(64 if name == "use-multilingual" else 48, model_id=f"hash-{name}")
        self.name = name

    def embed(self, texts: Sequence[str]) -> Any:
        log = os.environ.get(EMBED_LOG)
        if log and list(texts) != [QUERY]:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{self.name} {len(texts)}\n")
        if len(texts) > 1:  # an indexing batch, not a query
            time.sleep(float(os.environ.get(EMBED_SECONDS, "0")))
        return super().embed(texts)


class ModelSwitchDaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        root = Path(self.mktemp()).absolute()
        self.vault = root / "vault"
        make_vault(self.vault)
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        write_settings(self.data_dir, {"vault_path": str(self.vault)})
        self.log = root / "embedded.log"

    def start(self, embed_seconds: float) -> Daemon:
        daemon = Daemon(self, self.data_dir, runner=NAMED,
                        env={EMBED_SECONDS: str(embed_seconds), EMBED_LOG: str(self.log)})
        daemon.wait_ready()
        return daemon

    def embedded(self) -> Counter[str]:
        """Texts embedded per model (L{QUERY} left out)."""
        counts: Counter[str] = Counter()
        if self.log.exists():
            for line in self.log.read_text(encoding="utf-8").splitlines():
                name, n = line.rsplit(" ", 1)
                counts[name] += int(n)
        return counts

    def wait(self, daemon: Daemon, what: str,
             done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while True:
            status = daemon.ok("GET", "/index/status")
            if done(status):
                return status
            if time.monotonic() > deadline:
                self.fail(f"{what}: not after {WAIT} s: {status}\n{daemon.output_tail()}")
            time.sleep(0.05)

    @staticmethod
    def whole(models: list[str]) -> Callable[[dict[str, Any]], bool]:
        def check(status: dict[str, Any]) -> bool:
            return (status["models"] == models and status["target_models"] is None
                    and status["chunks"] > 0 and status["vectors_pending"] == 0
                    and status["chunks"] == status["vectors"] == status["hnsw_live"])
        return check

    def vector_hits(self, daemon: Daemon) -> list[str]:
        query = urlencode({"q": QUERY, "mode": "vector", "k": 3})
        return [hit["path"] for hit in daemon.ok("GET", f"/search?{query}")["hits"]]

    def test_switch_killed_midway_then_back(self) -> None:
        daemon = self.start(embed_seconds=0)
        status = self.wait(daemon, "first index", self.whole(["use-multilingual"]))
        chunks = status["chunks"]
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())

        daemon = self.start(embed_seconds=0.3)
        daemon.ok("POST", "/settings", {"embedding_model": "minilm-onnx"})
        status = self.wait(daemon, "switch under way",
                           lambda s: bool(s["switching"] and s["switching"]["vectors"]))
        self.assertEqual((status["models"], status["target_models"]),
                         (["use-multilingual"], ["minilm-onnx"]))
        self.assertLess(status["switching"]["progress"], 1.0)
        # Search answers from the old model's vectors meanwhile.
        self.assertIn("notes/n013.md", self.vector_hits(daemon))
        daemon.kill9()

        daemon = self.start(embed_seconds=0)
        status = self.wait(daemon, "switch resumed", self.whole(["minilm-onnx"]))
        self.assertEqual(status["model_ids"], ["hash-minilm-onnx"])
        self.assertIn("notes/n013.md", self.vector_hits(daemon))
        # Each distinct chunk embedded once by the new model, but for the batch in the
        # embedder when the daemon was killed.
        distinct = self.embedded()["use-multilingual"]
        self.assertLessEqual(distinct, chunks)
        self.assertGreaterEqual(self.embedded()["minilm-onnx"], distinct)
        self.assertLessEqual(self.embedded()["minilm-onnx"], distinct + EMBED_BATCH)

        # Back to the first model: its vectors are all stored, nothing is embedded.
        before = self.embedded()
        daemon.ok("POST", "/settings", {"embedding_model": "use-multilingual"})
        self.wait(daemon, "switched back", self.whole(["use-multilingual"]))
        self.assertEqual(self.embedded(), before)
        self.assertIn("notes/n013.md", self.vector_hits(daemon))
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        folder = self.data_dir / "backend" / "data"
        for model_id in ("hash-use-multilingual", "hash-minilm-onnx"):
            self.assertTrue(model_file(folder / "index.hnsw", model_id).exists(), model_id)
