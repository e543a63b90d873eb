"""kill -9 during the embedding model's load, five times in a row: the index converges.

A new user's first minutes: the daemon indexes a vault, the model loads, and the
process is killed while it loads (the app quit, the machine slept), again and
again. Each start must find the chunks left without vectors and embed them with
no user action; a crash while the model loads uses up none of a job's attempts.

The daemon runs with a test embedder (L{SlowLoadEmbedder}) whose load takes as
long as C{ENTTOK_TEST_LOAD_SECONDS} says and which writes C{ENTTOK_TEST_LOAD_MARKER}
when it starts loading, so that each kill lands during the load.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from enttok.index import store as index_store
from enttok.index.vectors import VectorIndex, model_file
from tests.daemonsupport import HASHING_DIMENSION, HASHING_MODEL, Daemon, db_path, write_settings
from tests.embedders import HashingEmbedder
from tests.indexsupport import live_labels

LOAD_SECONDS = "ENTTOK_TEST_LOAD_SECONDS"
LOAD_MARKER = "ENTTOK_TEST_LOAD_MARKER"
KILLS = 5
NOTES = 120
#: Bounds (seconds) of the test's waits.
LOAD_WAIT = 30.0
CONVERGE_WAIT = 90.0

#: The daemon with L{SlowLoadEmbedder} for every model.
SLOW_LOAD = ["-c", "import sys\n"
                   "import enttok.service\n"
                   "from tests.test_crash_model_load import SlowLoadEmbedder\n"
                   "enttok.service.embedder_for = lambda name: SlowLoadEmbedder()\n"
                   "from twisted.scripts.twistd import run\n"
                   "sys.exit(run())\n",
             "-n", "--pidfile=", "enttok"]


class SlowLoadEmbedder(HashingEmbedder):
    """The tests' hashing embedder, with a load as slow as the environment says."""

    def load(self) -> None:
        if self.loaded:
            return
        marker = os.environ.get(LOAD_MARKER)
        if marker:
            Path(marker).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get(LOAD_SECONDS, "0")))
        super().load()


def make_vault(root: Path) -> None:
    """English and Korean notes of a few chunks each."""
    for i in range(NOTES):
        folder = root / ("daily" if i % 3 == 0 else "notes")
        folder.mkdir(parents=True, exist_ok=True)
        sections = "\n\n".join(
            f"## 부분 {j}\n\n" + (f"회의록 정리 항목{i} 세부{j} " if i % 2 else
                                 f"topic{i % 7} detail{j} word{i} ") * 40
            for j in range(4))
        (folder / f"n{i:03d}.md").write_text(f"# Note {i}\n\n{sections}\n", encoding="utf-8")


class ModelLoadKillTests(SynchronousTestCase):
    def setUp(self) -> None:
        root = Path(self.mktemp()).absolute()
        self.vault = root / "vault"
        make_vault(self.vault)
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        write_settings(self.data_dir, {"vault_path": str(self.vault)})
        self.marker = root / "loading"

    def start(self, load_seconds: float) -> Daemon:
        self.marker.unlink(missing_ok=True)
        daemon = Daemon(self, self.data_dir, runner=SLOW_LOAD,
                        env={LOAD_SECONDS: str(load_seconds), LOAD_MARKER: str(self.marker)})
        daemon.wait_ready()
        return daemon

    def wait_loading(self, daemon: Daemon) -> None:
        """Until the model is loading (from the start on) and the vault's chunks are
        written (the update then waits for the model)."""
        deadline = time.monotonic() + LOAD_WAIT
        while not (self.marker.exists() and daemon.ok("GET", "/index/status")["chunks"]):
            if time.monotonic() > deadline:
                self.fail(f"the model did not start loading in {LOAD_WAIT} s: "
                          f"{daemon.ok('GET', '/index/status')}\n{daemon.output_tail()}")
            time.sleep(0.05)

    def wait_converged(self, daemon: Daemon) -> dict[str, Any]:
        deadline = time.monotonic() + CONVERGE_WAIT
        while True:
            busy = daemon.ok("GET", "/jobs?status=queued,running")["jobs"]
            status = daemon.ok("GET", "/index/status")
            if (not busy and status["chunks"] == status["vectors"] == status["hnsw_live"]
                    and status["vectors_pending"] == 0 and status["stale_notes"] == 0):
                return status
            if time.monotonic() > deadline:
                self.fail(f"not converged after {CONVERGE_WAIT} s: {busy}, {status}")
            time.sleep(0.1)

    def test_five_kills_during_the_model_load(self) -> None:
        for _ in range(KILLS):
            daemon = self.start(load_seconds=600)
            self.wait_loading(daemon)
            daemon.kill9()
        conn = sqlite3.connect(db_path(self.data_dir))
        try:
            chunks = index_store.count_chunks(conn)
            vectors = index_store.count_live_vectors(conn, HASHING_MODEL)
            crashes = index_store.meta_int(conn, index_store.EMBED_CRASHES)
        finally:
            conn.close()
        self.assertGreater(chunks, 0)
        self.assertEqual((vectors, crashes), (0, 0))  # every kill was during the load

        daemon = self.start(load_seconds=0)
        started = time.monotonic()
        status = self.wait_converged(daemon)
        print(f"\n  converged {time.monotonic() - started:.1f} s after the start that followed "
              f"{KILLS} kills during the model load: {status['chunks']} chunks")
        self.assertEqual(status["notes"], NOTES)
        # No job used up its attempts: a death during the model load is not its fault.
        self.assertEqual(daemon.ok("GET", "/jobs?status=failed")["jobs"], [])
        self.assertIsNone(status["vectors_error"])
        query = urlencode({"q": "회의록 정리 항목13", "mode": "vector", "k": 3})
        found = daemon.ok("GET", f"/search?{query}")["hits"]
        self.assertIn("notes/n013.md", [hit["path"] for hit in found])
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())

        conn = sqlite3.connect(db_path(self.data_dir))
        try:
            ids = index_store.live_vector_ids(conn, HASHING_MODEL)
            version = index_store.meta_int(conn, index_store.VECTORS_VERSION)
            self.assertEqual(len(ids), index_store.count_chunks(conn))
        finally:
            conn.close()
        saved = VectorIndex(model_file(self.data_dir / "backend" / "data" / "index.hnsw",
                                       HASHING_MODEL))
        self.assertEqual(saved.load(HASHING_MODEL, HASHING_DIMENSION, version, lambda: ids), [])
        self.assertEqual(live_labels(saved), set(ids))
