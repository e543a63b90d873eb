"""The vector host process, its client (RemoteVectorIndex), and the pipe worker under both.

The drop-in behaviour of L{RemoteVectorIndex} (every L{VectorIndex} test) runs in
tests/test_index_vectors.py through L{LoopbackWorker}; here: real processes.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from enttok.index import pipe_worker
from enttok.index.pipe_worker import IWorker, PipeWorker, WorkerDied
from enttok.index.vector_client import RemoteVectorIndex, VectorHost, VectorHostService
from enttok.index.vector_host import Host, Request
from enttok.index.vectors import IVectorIndex, VectorIndex
from enttok.threads import run_inline

DIM = 8
#: Bounds every wait for a process here.
WAIT = 30.0
#: A worker that reads one request and exits without answering.
DIES = [sys.executable, "-c", "import sys; sys.stdin.buffer.read(4); sys.exit(3)"]
#: A worker that reads one request and never answers.
HANGS = [sys.executable, "-c", "import sys, time; sys.stdin.buffer.read(4); time.sleep(60)"]


@implementer(IWorker)
class LoopbackWorker:
    """The vector host's dispatch in this process, through pickle as over the pipe."""

    def __init__(self) -> None:
        self.host = Host()
        self.generation = 1

    def call(self, request: Any) -> tuple[Any, int]:
        answer = self.host.answer(Request(*pickle.loads(pickle.dumps(request))))
        return pickle.loads(pickle.dumps(answer)), self.generation

    def serving(self, generation: int) -> bool:
        return generation == self.generation

    def stop(self) -> None:
        """Like a host that died: its indexes are gone."""
        self.host = Host()
        self.generation += 1


def vectors(n: int, seed: int = 0) -> np.ndarray:
    found = np.random.RandomState(seed).standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = found / np.linalg.norm(found, axis=1, keepdims=True)
    return unit


class PipeWorkerTests(SynchronousTestCase):
    def worker(self, argv: list[str]) -> PipeWorker:
        worker = PipeWorker(lambda: argv)
        self.addCleanup(worker.stop)
        return worker

    def test_a_worker_that_dies_mid_call(self) -> None:
        worker = self.worker(DIES)
        verifyObject(IWorker, worker)
        self.assertRaises(WorkerDied, worker.call, ("ping", None))
        self.assertIsNone(worker.process)
        self.assertFalse(worker.serving(1))
        # The next call starts another process (which dies again).
        self.assertRaises(WorkerDied, worker.call, ("ping", None))
        self.assertEqual(worker.generation, 2)

    def test_stop_ends_a_call_that_hangs(self) -> None:
        self.patch(pipe_worker, "STOP_GRACE", 0.2)
        worker = self.worker(HANGS)
        errors: list[BaseException] = []

        def call() -> None:
            try:
                worker.call(("ping", None))
            except BaseException as e:
                errors.append(e)

        thread = threading.Thread(target=call, daemon=True)
        thread.start()
        for _ in range(int(WAIT / 0.05)):
            process = worker.process
            if process is not None:
                break
            thread.join(0.05)
        assert process is not None
        worker.stop()
        thread.join(WAIT)
        self.assertFalse(thread.is_alive())
        self.assertEqual([type(e) for e in errors], [WorkerDied])
        self.assertIsNotNone(process.poll())

    def test_restart_after_the_process_was_killed(self) -> None:
        worker = PipeWorker(lambda: [sys.executable, "-m", "enttok.index.vector_host"])
        self.addCleanup(worker.stop)
        request = tuple(Request((), 1, "/nonexistent/index.hnsw", "deleted_fraction", (), -1))
        (outcome, value, _), first = worker.call(request)
        self.assertEqual((outcome, value, first), ("ok", 0.0, 1))
        assert worker.process is not None
        self.assertTrue(worker.serving(first))
        worker.process.kill()
        worker.process.wait(WAIT)
        self.assertFalse(worker.serving(first))
        (outcome, _, _), second = worker.call(request)
        self.assertEqual((outcome, second), ("ok", 2))
        self.assertTrue(worker.serving(second))
        self.assertFalse(worker.serving(first))


class VectorHostProcessTests(SynchronousTestCase):
    """A real host process: a drop-in for VectorIndex, and what a dead host leaves."""

    def setUp(self) -> None:
        self.host = VectorHost()
        self.addCleanup(self.host.close)
        self.path = Path(self.mktemp()).absolute().with_name("index.hnsw")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.vectors = vectors(40)
        self.ids = list(range(1, 41))

    def built(self, version: int = 5) -> RemoteVectorIndex:
        index = self.host.index(self.path)
        index.reset("model-a", DIM, version)
        index.add(self.ids, self.vectors)
        return index

    def host_pid(self) -> int:
        process = self.host._worker.process  # type: ignore[attr-defined]
        assert process is not None
        return int(process.pid)

    def kill_host(self) -> None:
        process = self.host._worker.process  # type: ignore[attr-defined]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(WAIT)

    def test_same_answers_as_in_process(self) -> None:
        remote = self.built()
        verifyObject(IVectorIndex, remote)
        local = VectorIndex(self.path.with_name("local.hnsw"))
        local.reset("model-a", DIM, 5)
        local.add(self.ids, self.vectors)
        allowed = set(self.ids[::3])
        for i in (0, 7, 39):
            self.assertEqual(remote.query(self.vectors[i], 10), local.query(self.vectors[i], 10))
            self.assertEqual(remote.query(self.vectors[i], 10, allowed.__contains__),
                             local.query(self.vectors[i], 10, allowed.__contains__))
        self.assertEqual((remote.ready, remote.live_count, remote.dirty, remote.version,
                          remote.model_id, remote.dimension),
                         (True, 40, True, 5, "model-a", DIM))

    def test_assigned_version_is_saved(self) -> None:
        remote = self.built(version=5)
        remote.version = 6
        remote.save()
        self.assertFalse(remote.dirty)
        meta = json.loads(self.path.with_name("index.hnsw.json").read_text())
        self.assertEqual(meta, {"version": 6, "model_id": "model-a", "dimension": DIM,
                                "live": 40})

    def test_killed_host(self) -> None:
        """A dead host: its indexes read as fresh ones, a call raises, the next call
        starts a new host, where the saved file loads again."""
        saved = self.built(version=5)
        saved.save()
        other = self.built(version=5)
        first = self.host_pid()
        self.kill_host()
        for index in (saved, other):
            self.assertEqual((index.ready, index.version, index.live_count, index.dirty),
                             (False, -1, 0, False))
        self.assertEqual(saved.query(self.vectors[0], 3), [])  # a fresh index finds nothing
        self.assertNotEqual(self.host_pid(), first)
        self.assertRaises(RuntimeError, other.add, [99], self.vectors[:1])  # not built
        self.assertEqual(saved.load("model-a", DIM, 5, lambda: self.ids), [])
        self.assertEqual((saved.ready, saved.live_count, saved.version), (True, 40, 5))
        self.assertEqual(saved.query(self.vectors[3], 1)[0][0], 4)
        self.assertFalse(other.ready)

    def test_through_the_frozen_launcher(self) -> None:
        """The frozen runtime starts the host as C{enttok-backend --run-module
        enttok.index.vector_host} (L{enttok.runtime.worker_argv}): its launcher here."""
        launcher = [sys.executable, "-c", "from enttok import frozen; frozen.main()",
                    "--run-module", "enttok.index.vector_host"]
        host = VectorHost(PipeWorker(lambda: launcher))
        self.addCleanup(host.close)
        index = host.index(self.path)
        index.reset("model-a", DIM, 3)
        index.add(self.ids, self.vectors)
        self.assertEqual(index.query(self.vectors[2], 1)[0][0], 3)

    def test_host_dies_during_a_call(self) -> None:
        host = VectorHost(PipeWorker(lambda: DIES))
        self.addCleanup(host.close)
        index = host.index(self.path)
        index.version = 4
        self.assertRaises(WorkerDied, index.reset, "model-a", DIM, 5)
        self.assertEqual((index.ready, index.version), (False, -1))

    def test_released_indexes_are_dropped_by_the_host(self) -> None:
        worker = LoopbackWorker()
        host = VectorHost(worker)
        gone = host.index(self.path)
        gone.reset("model-a", DIM, 1)
        kept = host.index(self.path)
        kept.reset("model-a", DIM, 1)
        self.assertEqual(len(worker.host.indexes), 2)
        del gone
        kept.save()
        self.assertEqual(list(worker.host.indexes), [kept._key])

    def test_service_stops_the_host(self) -> None:
        self.built()
        process = self.host._worker.process  # type: ignore[attr-defined]
        service = VectorHostService(self.host, run_inline)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertIsNotNone(process.poll())
        self.assertIsNone(self.host._worker.process)  # type: ignore[attr-defined]


class LostIndexTests(SynchronousTestCase):
    """An index the host lost (it died) is loaded again, not left empty or partial."""

    def setUp(self) -> None:
        from enttok.index.indexer import VaultIndex
        from enttok.store import Database
        from tests.embedders import HashingEmbedder
        from tests.indexsupport import IndexFixture, make_vault

        notes = {f"note-{i}.md": f"# Note {i}\n\nWords about topic {i} and more.\n"
                 for i in range(12)}
        self.fixture = fixture = IndexFixture(self, make_vault(self, notes), prepare=False)
        self.worker = LoopbackWorker()
        host = VectorHost(self.worker)
        fixture.vectors = host.index(fixture.hnsw_path)  # type: ignore[assignment]
        fixture.index = VaultIndex(fixture.clock, fixture.db, HashingEmbedder(),
                                   fixture.vectors, run_inline, run_inline)
        self.successResultOf(fixture.index.prepare_vectors())
        fixture.index_all()
        self.db: Database = fixture.db

    def stored(self) -> int:
        from enttok.index import store as index_store

        return index_store.count_live_vectors(self.db.connection, self.fixture.index.model_id)

    def test_search_prepares_a_lost_index_again(self) -> None:
        index = self.fixture.index
        self.assertEqual(index.vectors.live_count, self.stored())
        self.assertTrue(index.vectors_prepared())
        self.worker.stop()
        self.assertFalse(index.vectors_prepared())
        self.successResultOf(index.prepare_vectors())
        self.assertTrue(index.vectors.ready)
        self.assertEqual(index.vectors.live_count, self.stored())
        self.assertTrue(index.vectors_prepared())

    def test_a_batch_after_the_loss_loads_everything(self) -> None:
        from tests.indexsupport import write

        self.worker.stop()
        write(self.fixture.vault, "note-0.md", "# Note 0\n\nRewritten entirely.\n")
        self.fixture.update(["note-0.md"])
        index = self.fixture.index
        self.assertTrue(index.vectors.ready)
        self.assertEqual(index.vectors.live_count, self.stored())
        self.assertTrue(index.vectors_prepared())
