"""kill -9 at random moments of the index, GitHub and maintenance jobs loses nothing.

One data folder lives through many daemon processes. Each round restarts the
daemon, waits for the jobs it recovers, checks the invariants through the API,
submits one job (index.rebuild, index.update, connector.github.sync or
maintenance.compact, in turn), waits until it runs, and kills the daemon with
SIGKILL at a random moment of it. Between rounds, with the daemon dead, the files
themselves are checked. At the end the folder must hold what an uninterrupted
daemon builds from the same vault and the same (fake) GitHub.

The daemon runs with the tests' hashing embedder (see L{tests.daemonsupport.HASHING}),
so that vectors are written, and can be interrupted, within a round.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.index import store as index_store
from enttok.index.vectors import VectorIndex, model_file
from enttok.jobs.model import STATUSES
from tests.daemonsupport import (
    HASHING_DIMENSION,
    HASHING_MODEL,
    Daemon,
    FakeGitHubProcess,
    db_path,
    start,
    write_settings,
)
from tests.indexsupport import live_labels

SEED = 20261127
KILLS = 20
GITHUB_TOKEN = "ghp_killTestToken0123456789"
JOB_TYPES = ("index.rebuild", "index.update", "connector.github.sync", "maintenance.compact")
NOTES = 120
#: Bounds (seconds): every wait of the test, and the whole test stays under ~2 minutes.
IDLE_WAIT = 20.0
RUNNING_WAIT = 5.0
FINISH_WAIT = 30.0


def make_vault(root: Path) -> None:
    root.mkdir(parents=True)
    for i in range(NOTES):
        sections = "\n\n".join(f"## Part {j}\n\n" + f"topic{i % 7} detail{j} word{i} " * 30
                               for j in range(5))
        folder = root / ("daily" if i % 4 == 0 else "notes")
        folder.mkdir(exist_ok=True)
        (folder / f"n{i:03d}.md").write_text(f"# Note {i}\n\n#tag{i % 5}\n\n{sections}\n",
                                              encoding="utf-8")


def edit_notes(root: Path, rng: random.Random, round_number: int) -> list[str]:
    """Append a line to a few notes; return their vault-relative paths."""
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.md"))
    chosen = rng.sample(paths, 15)
    for rel in chosen:
        with (root / rel).open("a", encoding="utf-8") as f:
            f.write(f"\nedited in round {round_number} edit{round_number}\n")
    return chosen


def settings_for(vault: Path, github_url: str) -> dict[str, Any]:
    return {"vault_path": str(vault),
            "github": {"token": GITHUB_TOKEN, "api_base_url": github_url}}


class Files:
    """What the files of a stopped daemon hold, checked for consistency."""

    def __init__(self, case: SynchronousTestCase, data_dir: Path) -> None:
        self.case = case
        self.data_dir = data_dir

    def check(self) -> bool:
        """
        Check the database and the hnsw file; return whether the hnsw file is
        current (when it is not, the next start rebuilds it from stored vectors).
        """
        conn = sqlite3.connect(db_path(self.data_dir))
        try:
            self.case.assertEqual(conn.execute("pragma integrity_check").fetchall(), [("ok",)])
            # FTS5's own check of its index against its content; raises if they differ.
            conn.execute("insert into chunk_fts(chunk_fts) values ('integrity-check')")
            chunks = {r[0] for r in conn.execute("select chunk_id from chunks")}
            self.case.assertEqual(chunks, {r[0] for r in conn.execute(
                "select rowid from chunk_fts")})
            self.case.assertEqual(conn.execute(
                "select count(*) from chunks c left join notes n on n.note_id = c.note_id "
                "where n.note_id is null").fetchone()[0], 0)
            self.case.assertEqual(conn.execute(
                "select count(*) - count(distinct identity) from activity").fetchone()[0], 0)
            statuses = {r[0] for r in conn.execute("select distinct status from jobs")}
            self.case.assertLessEqual(statuses, set(STATUSES))
            version = index_store.meta_int(conn, index_store.VECTORS_VERSION)
            ids = index_store.live_vector_ids(conn, HASHING_MODEL)
        finally:
            conn.close()
        vectors = VectorIndex(model_file(self.data_dir / "backend" / "data" / "index.hnsw",
                                         HASHING_MODEL))
        if vectors.load(HASHING_MODEL, HASHING_DIMENSION, version, lambda: ids) != [] or (
                vectors.dirty):
            return False  # not current: brought up to date or rebuilt at the next start
        self.case.assertEqual(live_labels(vectors), set(ids))
        return True

    def snapshot(self) -> dict[str, Any]:
        """What must equal between two folders built from the same sources."""
        conn = sqlite3.connect(db_path(self.data_dir))
        try:
            return {
                "notes": sorted(conn.execute("select path, content_hash, indexed_hash "
                                             "from notes").fetchall()),
                "chunks": Counter(r[0] for r in conn.execute(
                    "select content_hash from chunks")),
                "activity": {workspace: sorted(r[0].split(":", 1)[1] for r in conn.execute(
                    "select identity from activity where workspace = ?", (workspace,)))
                    for (workspace,) in conn.execute("select distinct workspace from activity")},
            }
        finally:
            conn.close()


class KillNineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.rng = random.Random(SEED)
        self.root = Path(self.mktemp()).absolute()
        self.vault = self.root / "vault"
        make_vault(self.vault)
        self.github = FakeGitHubProcess(self, GITHUB_TOKEN, repos=3, items=300, latency=0.01)
        self.submitted: list[str] = []

    def fresh_dir(self, name: str) -> Path:
        data_dir = self.root / name
        data_dir.mkdir()
        write_settings(data_dir, settings_for(self.vault, self.github.base_url))
        return data_dir

    def wait_idle(self, daemon: Daemon) -> dict[str, Any]:
        """Wait until no job is queued or running and the index is whole; check it."""
        deadline = time.monotonic() + IDLE_WAIT
        while True:
            busy = daemon.ok("GET", "/jobs?status=queued,running")["jobs"]
            status = daemon.ok("GET", "/index/status")
            whole = status["chunks"] == status["vectors"] == status["hnsw_live"]
            if not busy and whole and status["stale_notes"] == 0:
                break
            if time.monotonic() > deadline:
                self.fail(f"not idle after {IDLE_WAIT} s: {busy}, {status}")
            time.sleep(0.05)
        self.assertGreater(status["chunks"], 0)
        for job_id, job in daemon.wait_jobs(self.submitted, 1.0).items():
            self.assertEqual(job["status"], "succeeded", (job_id, job))
        return status

    def submit_round(self, daemon: Daemon, number: int) -> tuple[str, str]:
        job_type = JOB_TYPES[number % len(JOB_TYPES)]
        payload: dict[str, Any] = {}
        if job_type == "index.update":
            payload = {"changed_paths": edit_notes(self.vault, self.rng, number)}
        elif job_type == "maintenance.compact":
            payload = {"vacuum": self.rng.random() < 0.5}
        elif job_type == "connector.github.sync":
            # A workspace of its own: a whole first sync to interrupt, not a few 304s.
            payload = {"workspace_id": f"w{number}"}
        job_id = daemon.submit(job_type, payload)
        if job_id not in self.submitted:
            self.submitted.append(job_id)
        return job_type, job_id

    def wait_running(self, daemon: Daemon, job_id: str) -> None:
        deadline = time.monotonic() + RUNNING_WAIT
        while daemon.job(job_id)["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.005)

    def calibrate(self, daemon: Daemon) -> dict[str, float]:
        """Run each job type twice, uninterrupted; return how long the second one ran."""
        durations = {}
        for number in range(2 * len(JOB_TYPES)):
            job_type, job_id = self.submit_round(daemon, 1000 + number)
            self.wait_running(daemon, job_id)
            started = time.monotonic()
            job = daemon.wait_jobs([job_id], FINISH_WAIT)[job_id]
            self.assertEqual(job["status"], "succeeded", job)
            durations[job_type] = max(0.02, time.monotonic() - started)
        return durations

    def test_kill_nine_during_jobs(self) -> None:
        data_dir = self.fresh_dir("crashed")
        files = Files(self, data_dir)
        daemon = start(self, data_dir)
        durations = self.calibrate(daemon)
        self.wait_idle(daemon)
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        self.assertTrue(files.check(), "a cleanly stopped daemon leaves a current hnsw file")

        kinds: Counter[str] = Counter()
        stale = 0
        for number in range(KILLS):
            daemon = start(self, data_dir)
            self.wait_idle(daemon)
            job_type, job_id = self.submit_round(daemon, number)
            self.wait_running(daemon, job_id)
            time.sleep(self.rng.uniform(0, durations[job_type]))
            kinds[f"{job_type}:{daemon.job(job_id)['status']}"] += 1
            daemon.kill9()
            if not files.check():
                stale += 1

        daemon = start(self, data_dir)
        status = self.wait_idle(daemon)
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        self.assertTrue(files.check())
        # Each job type was killed while running, most of the time.
        running = sum(n for kind, n in kinds.items() if kind.endswith(":running"))
        self.assertGreaterEqual(running, KILLS // 2, kinds)

        reference_dir = self.fresh_dir("reference")
        reference = start(self, reference_dir)
        ids = [reference.submit("index.rebuild"), reference.submit("connector.github.sync")]
        for job in reference.wait_jobs(ids, FINISH_WAIT).values():
            self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(reference.ok("GET", "/index/status")["chunks"], status["chunks"])
        self.assertEqual(reference.terminate(), 0)
        expected = Files(self, reference_dir).snapshot()
        got = files.snapshot()
        self.assertEqual(got["notes"], expected["notes"])
        self.assertEqual(got["chunks"], expected["chunks"])
        # Every workspace, each synced in interrupted pieces, holds exactly what one
        # uninterrupted sync stores: nothing lost, nothing twice.
        [items] = expected["activity"].values()
        self.assertGreater(len(items), 100)
        self.assertGreaterEqual(len(got["activity"]), KILLS // len(JOB_TYPES))
        for workspace, found in got["activity"].items():
            self.assertEqual(found, items, workspace)
        print(f"\n  {KILLS} kills (seed {SEED}): {dict(kinds)}; hnsw stale after {stale}")
