"""Starting on a broken machine: a full disk, a read-only data folder, a corrupt
index.db, a corrupt hnsw file.

Where nothing can be done the daemon says why in one line on stderr and exits
non-zero; where it is safe it recovers: the hnsw file is rebuilt from the stored
vectors, a corrupt index.db is set aside and rebuilt from the vault (keeping the
jobs when they can still be read), and on a full disk whatever only reads works.

Full disks and read-only folders are small tmpfs mounts (the tests run as root);
where mounting is not permitted those tests are skipped, except the variants that
need no mount.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from enttok.index import store as index_store
from enttok.index.vectors import VectorIndex, model_file
from tests.daemonsupport import (
    HASHING_DIMENSION,
    HASHING_MODEL,
    MODULE,
    REPO,
    TOKEN,
    Daemon,
    child_env,
    db_path,
    log_text,
    start,
    write_settings,
)
from tests.indexsupport import live_labels

RUN_TIMEOUT = 30.0
IDLE_WAIT = 20.0


def run_to_exit(data_dir: Path, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    """C{python -m enttok} on C{data_dir}, expected to give up at start."""
    return subprocess.run(
        [sys.executable, *MODULE, "--port", "0", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT,
        env=child_env(env), cwd=str(REPO))


def fill(folder: Path) -> None:
    """Write to C{folder} until its file system has no space left."""
    block = b"\0" * 65536
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    try:
        with open(folder / "filler2", "wb") as f:  # the last few bytes of a page
            while True:
                f.write(b"\0")
                f.flush()
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise


class FaultCase(SynchronousTestCase):
    def mount_tmpfs(self, size: str) -> Path:
        """A new tmpfs of C{size} (unmounted at the end), or skip the test."""
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            raise SkipTest("mounting a tmpfs needs root")
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                               "tmpfs", str(folder)], capture_output=True, text=True,
                              timeout=RUN_TIMEOUT, check=False)
        if done.returncode != 0:
            raise SkipTest(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", str(folder)], capture_output=True,
                        timeout=RUN_TIMEOUT, check=False)
        return folder

    def remount_read_only(self, folder: Path) -> None:
        done = subprocess.run(["mount", "-o", "remount,ro", str(folder)],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
        if done.returncode != 0:
            raise SkipTest(f"cannot remount read-only here: {done.stderr.strip()}")

    def assertOneLineError(self, result: subprocess.CompletedProcess[str],
                           *mentions: str) -> None:
        self.assertNotEqual(result.returncode, 0, result.stdout[-2000:])
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("enttok: "), lines[0])
        for mention in mentions:
            self.assertIn(mention, lines[0])
        self.assertNotIn("Traceback", result.stdout + result.stderr)
        self.assertNotIn('"ready"', result.stdout)


class FullDiskTests(FaultCase):
    def test_nothing_can_be_written(self) -> None:
        disk = self.mount_tmpfs("1m")
        fill(disk)
        result = run_to_exit(disk / "data")
        self.assertOneLineError(result, "token file", "No space left on device")
        self.assertEqual([p.name for p in (disk / "data" / "backend").iterdir()
                          if p.is_file()], [], "no temporary file left behind")
        result = run_to_exit(disk / "data", {"BACKEND_TOKEN": TOKEN})
        self.assertOneLineError(result, "index.db", "disk is full")

    def test_existing_data(self) -> None:
        disk = self.mount_tmpfs("8m")
        data_dir = disk / "data"
        data_dir.mkdir()
        daemon = start(self, data_dir, runner=MODULE)
        job_id = daemon.submit("maintenance.compact")
        daemon.wait_jobs([job_id], IDLE_WAIT)
        self.assertEqual(daemon.terminate(), 0)
        clean = disk / "clean"
        shutil.copytree(data_dir, clean)  # stopped cleanly: no WAL, which SQLite must create
        daemon = start(self, data_dir, runner=MODULE)
        daemon.kill9()  # its WAL and shared-memory files stay
        fill(disk)

        self.assertOneLineError(run_to_exit(clean, {"BACKEND_TOKEN": TOKEN}), "index.db",
                                "(the disk is full)")
        # Where SQLite can open the database, what only reads works; writes say why not.
        daemon = start(self, data_dir, runner=MODULE)
        self.assertEqual(daemon.job(job_id)["status"], "succeeded")
        self.assertEqual(daemon.call("GET", "/settings")[0], 200)
        status, answer = daemon.call("POST", "/jobs", {"type": "maintenance.compact",
                                                       "payload": {"vacuum": True}})
        self.assertEqual((status, answer["error"]["code"]), (507, "disk_full"), answer)
        status, answer = daemon.call("POST", "/settings", {"workers": 3})
        self.assertEqual((status, answer["error"]["code"]), (500, "settings_not_saved"))
        self.assertEqual(daemon.call("GET", "/health")[0], 200)
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())


class ReadOnlyTests(FaultCase):
    def test_read_only_data_dir(self) -> None:
        fresh = self.mount_tmpfs("1m")
        self.remount_read_only(fresh)
        self.assertOneLineError(run_to_exit(fresh / "data"), "cannot create data directory",
                                "Read-only file system")

        used = self.mount_tmpfs("8m")
        daemon = start(self, used / "data", runner=MODULE)
        self.assertEqual(daemon.terminate(), 0)
        self.remount_read_only(used)
        self.assertOneLineError(run_to_exit(used / "data"), "is not writable")

    def test_a_file_where_the_data_dir_should_be(self) -> None:
        blocker = Path(self.mktemp()).absolute()
        blocker.write_text("not a folder")
        self.assertOneLineError(run_to_exit(blocker), "cannot create data directory")
        self.assertOneLineError(run_to_exit(blocker / "sub"), "cannot create data directory")


def make_vault(root: Path, notes: int = 12) -> None:
    (root / "daily").mkdir(parents=True)
    for i in range(notes):
        (root / "daily" / f"2026-11-{i + 1:02d}.md").write_text(
            f"# Day {i}\n\nworked on topic{i} #work\n\n- [ ] task {i}\n", encoding="utf-8")


class CorruptFilesTests(FaultCase):
    """Recovery from damaged files of an earlier run (the daemon with the hashing embedder)."""

    def indexed_data_dir(self) -> tuple[Path, Path, str]:
        """A data folder whose daemon indexed a vault and ran one job; stopped."""
        root = Path(self.mktemp()).absolute()
        vault, data_dir = root / "vault", root / "data"
        make_vault(vault)
        data_dir.mkdir()
        write_settings(data_dir, {"vault_path": str(vault)})
        daemon = start(self, data_dir)
        job_id = daemon.submit("maintenance.compact", {"analyze": False})
        self.wait_index(daemon)
        self.assertEqual(daemon.terminate(), 0)
        return data_dir, vault, job_id

    def wait_index(self, daemon: Daemon, notes: int = 12) -> dict[str, Any]:
        """Wait until every note is indexed with its vectors, and no job is left."""
        deadline = time.monotonic() + IDLE_WAIT
        while True:
            status: dict[str, Any] = daemon.ok("GET", "/index/status")
            busy = daemon.ok("GET", "/jobs?status=queued,running")["jobs"]
            if (not busy and status["notes"] == notes and status["stale_notes"] == 0
                    and status["chunks"] == status["vectors"] == status["hnsw_live"] > 0):
                return status
            if time.monotonic() > deadline:
                self.fail(f"index not rebuilt in {IDLE_WAIT} s: {status}, {busy}")
            time.sleep(0.05)

    def assertFilesConsistent(self, data_dir: Path) -> None:
        conn = sqlite3.connect(db_path(data_dir))
        try:
            self.assertEqual(conn.execute("pragma integrity_check").fetchall(), [("ok",)])
            version = index_store.meta_int(conn, index_store.VECTORS_VERSION)
            ids = index_store.live_vector_ids(conn, HASHING_MODEL)
        finally:
            conn.close()
        vectors = VectorIndex(model_file(data_dir / "backend" / "data" / "index.hnsw",
                                         HASHING_MODEL))
        # Saved at stop: current as it is, nothing to bring up to date.
        self.assertEqual(vectors.load(HASHING_MODEL, HASHING_DIMENSION, version, lambda: ids), [])
        self.assertFalse(vectors.dirty)
        self.assertEqual(live_labels(vectors), set(ids))

    def test_corrupt_hnsw_rebuilt_from_stored_vectors(self) -> None:
        data_dir, _, _ = self.indexed_data_dir()
        hnsw = model_file(data_dir / "backend" / "data" / "index.hnsw", HASHING_MODEL)
        sidecar = hnsw.with_name(hnsw.name + ".json")
        rng = random.Random(7)
        for damage in ("random bytes", "empty file", "broken sidecar"):
            if damage == "random bytes":
                hnsw.write_bytes(rng.randbytes(hnsw.stat().st_size))
            elif damage == "empty file":
                hnsw.write_bytes(b"")
            else:
                sidecar.write_text("{not json")
            daemon = start(self, data_dir)
            status = self.wait_index(daemon)
            self.assertTrue(status["hnsw_ready"], (damage, status))
            found = daemon.ok("GET", "/search?q=topic3&mode=vector&k=1")["hits"]
            self.assertEqual([hit["path"] for hit in found], ["daily/2026-11-04.md"], damage)
            self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
            self.assertIn("rebuilding from stored vectors", log_text(data_dir), damage)
            self.assertFilesConsistent(data_dir)

    def test_unreadable_index_db_set_aside_and_rebuilt(self) -> None:
        data_dir, _, job_id = self.indexed_data_dir()
        path = db_path(data_dir)
        with open(path, "r+b") as f:
            f.write(b"this is not an SQLite database\0" * 4)
        daemon = start(self, data_dir)
        self.wait_index(daemon)
        # Unreadable, so lost; but the new job ids go on after the old ones.
        self.assertNotIn("maintenance.compact",
                         {job["type"] for job in daemon.ok("GET", "/jobs")["jobs"]})
        self.assertGreater(daemon.submit("maintenance.compact"), job_id)
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        aside = [p.name for p in path.parent.iterdir() if ".corrupt-" in p.name]
        self.assertTrue(any(name.startswith("index.db.corrupt-") for name in aside), aside)
        self.assertIn("was corrupt", log_text(data_dir))
        self.assertFilesConsistent(data_dir)

    def test_damage_found_while_running_is_repaired_at_the_next_start(self) -> None:
        data_dir, _, job_id = self.indexed_data_dir()
        path = db_path(data_dir)
        conn = sqlite3.connect(path)
        page_size = conn.execute("pragma page_size").fetchone()[0]
        # The full-text index's root page: read by a search, not at start.
        (root,) = conn.execute("select rootpage from sqlite_schema "
                               "where name = 'chunk_fts_data'").fetchone()
        conn.close()
        with open(path, "r+b") as f:
            f.seek((root - 1) * page_size)
            f.write(random.Random(3).randbytes(page_size))
        daemon = start(self, data_dir)
        self.assertEqual(daemon.ok("GET", "/status")["database"],
                         {"damaged": False, "error": None})
        status, answer = daemon.call("GET", "/search?q=topic3&mode=fts")
        self.assertEqual((status, answer["error"]["code"]), (503, "database_damaged"))
        database = daemon.ok("GET", "/status")["database"]
        self.assertTrue(database["damaged"], database)
        self.assertTrue(path.with_name("index.db.damaged").exists())
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())

        daemon = start(self, data_dir)
        self.wait_index(daemon)
        self.assertEqual(daemon.ok("GET", "/status")["database"],
                         {"damaged": False, "error": None})
        found = daemon.ok("GET", "/search?q=topic3&mode=fts&k=1")["hits"]
        self.assertEqual([hit["path"] for hit in found], ["daily/2026-11-04.md"])
        self.assertEqual(daemon.job(job_id)["type"], "maintenance.compact")
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        self.assertFalse(path.with_name("index.db.damaged").exists())
        self.assertIn("will be repaired at the next start", log_text(data_dir))
        self.assertIn("was corrupt", log_text(data_dir))
        self.assertFilesConsistent(data_dir)

    def test_damaged_schema_keeps_the_jobs(self) -> None:
        data_dir, _, job_id = self.indexed_data_dir()
        conn = sqlite3.connect(db_path(data_dir))
        conn.execute("pragma writable_schema = on")
        conn.execute("update sqlite_schema set sql = 'create index chunks_hash on' "
                     "where name = 'chunks_hash'")
        conn.commit()
        conn.close()
        daemon = start(self, data_dir)
        self.wait_index(daemon)
        job = daemon.job(job_id)
        self.assertEqual((job["status"], job["type"]), ("succeeded", "maintenance.compact"))
        # The new job ids go on after the kept ones.
        self.assertGreater(daemon.submit("maintenance.compact"), job_id)
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        self.assertIn("was corrupt", log_text(data_dir))
        self.assertFilesConsistent(data_dir)
