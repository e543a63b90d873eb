"""The hnsw vector index: its own operations, its file, and rebuilding it from SQLite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from enttok.index import embedding, mirror
from enttok.index import store as index_store
from enttok.index.vector_client import VectorHost
from enttok.index.vectors import COMPACT_RATIO, MIN_CAPACITY, VectorIndex
from tests.embedders import HashingEmbedder
from tests.indexsupport import (
    IndexFixture,
    check_consistent,
    count,
    live_labels,
    make_vault,
    write,
)
from tests.test_vector_host import LoopbackWorker

DIM = 16


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.RandomState(seed).standard_normal((n, dim)).astype(np.float32)
    normed: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


class VectorIndexTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = Path(self.mktemp()).absolute().with_name("index.hnsw")
        self.index = self.new()
        self.vectors = unit_vectors(50)
        self.ids = list(range(1, 51))

    def new(self) -> Any:
        """A fresh index of C{self.path} (L{RemoteVectorIndexTests}: in the host)."""
        return VectorIndex(self.path)

    def labels(self, index: Any) -> set[int]:
        """What C{index}'s hnswlib index really holds (see L{live_labels})."""
        return live_labels(index)

    def build(self, version: int = 7) -> Any:
        self.index.reset("model-a", DIM, version)
        self.index.add(self.ids, self.vectors)
        return self.index

    def nearest(self, index: Any, i: int, k: int = 1) -> list[int]:
        return [label for label, _ in index.query(self.vectors[i], k)]

    def test_empty(self) -> None:
        self.assertFalse(self.index.ready)
        self.assertEqual(self.index.query(self.vectors[0], 5), [])
        self.assertRaises(RuntimeError, self.index.add, [1], self.vectors[:1])
        self.index.reset("model-a", DIM, 0)
        self.assertEqual((self.index.ready, self.index.live_count), (True, 0))
        self.assertEqual(self.index.query(self.vectors[0], 5), [])

    def test_add_and_query(self) -> None:
        index = self.build()
        self.assertEqual(index.live_count, 50)
        for i in (0, 17, 49):
            [(label, distance)] = index.query(self.vectors[i], 1)
            self.assertEqual(label, self.ids[i])
            self.assertAlmostEqual(distance, 0.0, places=5)
        found = index.query(self.vectors[3], 10)
        self.assertEqual(len(found), 10)
        distances = [d for _, d in found]
        self.assertEqual(distances, sorted(distances))
        self.assertEqual(len(index.query(self.vectors[3], 500)), 50)

    def test_add_replaces_a_vector(self) -> None:
        index = self.build()
        index.add([5], self.vectors[40:41])
        self.assertEqual(index.live_count, 50)
        self.assertEqual(set(self.nearest(index, 40, 2)), {5, 41})  # now the same vector
        [(label, distance)] = index.query(self.vectors[4], 1)  # id 5's old vector
        self.assertFalse(label == 5 and distance < 1e-5)

    def test_delete(self) -> None:
        index = self.build()
        index.delete([1, 2, 3, 999])
        self.assertEqual(index.live_count, 47)
        self.assertNotIn(1, self.nearest(index, 0, 50))
        self.assertEqual(self.labels(index), set(self.ids) - {1, 2, 3})
        index.add([2], self.vectors[1:2])  # back again, in a freed slot
        self.assertEqual(self.nearest(index, 1), [2])
        self.assertEqual(index.live_count, 48)

    def test_filter(self) -> None:
        index = self.build()
        allowed = {2, 4, 6, 8}
        found = index.query(self.vectors[0], 50, allowed.__contains__)
        self.assertEqual({label for label, _ in found}, allowed)
        self.assertEqual(index.query(self.vectors[0], 50, lambda label: False), [])

    def test_wrong_dimension_is_refused(self) -> None:
        # hnswlib itself would corrupt memory and take the daemon down.
        index = self.build()
        other = unit_vectors(2, dim=DIM * 2)
        self.assertRaises(ValueError, index.add, [60, 61], other)
        self.assertRaises(ValueError, index.query, other[0], 5)
        self.assertRaises(ValueError, index.query, unit_vectors(1, dim=DIM // 2)[0], 5)
        self.assertEqual(index.live_count, 50)
        self.assertEqual(self.nearest(index, 3), [4])

    def test_save_and_load(self) -> None:
        index = self.build(version=7)
        self.assertTrue(index.dirty)
        index.save()
        self.assertFalse(index.dirty)
        meta = json.loads(self.path.with_name("index.hnsw.json").read_text())
        self.assertEqual(meta, {"version": 7, "model_id": "model-a", "dimension": DIM,
                                "live": 50})
        fresh = self.new()
        self.assertEqual(fresh.load("model-a", DIM, 7, lambda: self.ids), [])
        self.assertEqual((fresh.live_count, fresh.version, fresh.dirty), (50, 7, False))
        for i in (0, 25):
            self.assertEqual(self.nearest(fresh, i), [self.ids[i]])
        fresh.add([51], unit_vectors(1, seed=9))  # deleted slots may be reused after load
        fresh.delete([1])
        self.assertEqual(fresh.live_count, 50)

    def test_save_leaves_no_temp_files(self) -> None:
        self.build().save()
        self.assertEqual(sorted(p.name for p in self.path.parent.iterdir()),
                         ["index.hnsw", "index.hnsw.json"])

    def test_load_refuses_a_file_that_does_not_fit(self) -> None:
        self.build(version=7).save()
        live = lambda: self.ids  # noqa: E731
        for args in [("model-b", DIM, 7, live), ("model-a", DIM * 2, 7, live)]:
            fresh = self.new()
            self.assertIsNone(fresh.load(*args), args)
            self.assertFalse(fresh.ready)

    def test_load_brings_a_file_up_to_date(self) -> None:
        """A crash lost the last saves: labels deleted since are marked deleted, the
        ones added since are returned for the caller to add."""
        self.build(version=7).save()
        fresh = self.new()
        self.assertEqual(fresh.load("model-a", DIM, 8, lambda: self.ids), [])
        self.assertEqual((fresh.live_count, fresh.version, fresh.dirty), (50, 8, True))
        fresh = self.new()
        now_live = [*self.ids[1:], 9001, 9002]
        self.assertEqual(fresh.load("model-a", DIM, 9, lambda: now_live), [9001, 9002])
        self.assertEqual(fresh.live_count, 49)
        self.assertEqual(self.labels(fresh), set(self.ids[1:]))
        self.assertNotIn(self.ids[0], self.nearest(fresh, 0, k=5))
        fresh.add([9001, 9002], unit_vectors(2, seed=5))
        self.assertEqual(self.labels(fresh), set(now_live))
        # Slots deleted before the save are not changes.
        index = self.build(version=7)
        index.delete(self.ids[:10])
        index.save()
        fresh = self.new()
        self.assertEqual(fresh.load("model-a", DIM, 8, lambda: [*self.ids[10:], 9001]), [9001])
        self.assertEqual(self.labels(fresh), set(self.ids[10:]))
        # Too far behind (an index.rebuild renumbered every chunk): rebuilt instead.
        self.assertIsNone(self.new().load("model-a", DIM, 9,
                                                      lambda: range(10_000, 10_050)))

    def test_load_refuses_a_missing_or_corrupt_file(self) -> None:
        self.assertIsNone(self.new().load("model-a", DIM, 7, lambda: self.ids))
        self.build(version=7).save()
        meta = self.path.with_name("index.hnsw.json")
        for garbage in [b"", b"not an index at all" * 50, bytes(range(256)) * 40]:
            self.path.write_bytes(garbage)
            self.assertIsNone(self.new().load("model-a", DIM, 7, lambda: self.ids))
        self.build(version=7).save()
        meta.write_text("{not json")
        self.assertIsNone(self.new().load("model-a", DIM, 7, lambda: self.ids))
        meta.unlink()
        self.assertIsNone(self.new().load("model-a", DIM, 7, lambda: self.ids))

    def test_resize_beyond_initial_capacity(self) -> None:
        self.index.reset("model-a", DIM, 0)
        vectors = unit_vectors(MIN_CAPACITY + 500, seed=1)
        ids = list(range(1, len(vectors) + 1))
        self.index.add(ids[:700], vectors[:700])
        self.index.add(ids[700:], vectors[700:])  # past the first capacity
        self.assertEqual(self.index.live_count, len(ids))
        for i in (0, 699, 700, len(ids) - 1):
            self.assertEqual([label for label, _ in self.index.query(vectors[i], 1)], [ids[i]])

    def test_compaction(self) -> None:
        self.index.reset("model-a", DIM, 0)
        vectors = unit_vectors(MIN_CAPACITY + 100, seed=2)
        ids = list(range(1, len(vectors) + 1))
        self.index.add(ids, vectors)
        few = ids[:50]
        self.index.delete(few)
        self.assertLess(self.index.deleted_fraction(), COMPACT_RATIO)
        self.assertFalse(self.index.compact_if_needed())
        gone = ids[: int(len(ids) * (COMPACT_RATIO + 0.05))]
        self.index.delete(gone)
        self.assertGreater(self.index.deleted_fraction(), COMPACT_RATIO)
        self.assertTrue(self.index.compact_if_needed())
        self.assertEqual(self.index.deleted_fraction(), 0.0)
        self.assertEqual(self.index.live_count, len(ids) - len(gone))
        self.assertEqual(self.labels(self.index), set(ids) - set(gone))
        for i in (len(gone), len(gone) + 1, len(ids) - 1):
            self.assertEqual([label for label, _ in self.index.query(vectors[i], 1)], [ids[i]])
        gone_set = set(gone)
        for i in (0, 10, len(gone) - 1):  # a deleted vector's neighbours are all live
            found = self.index.query(vectors[i], 20)
            self.assertEqual(len(found), 20)
            self.assertFalse({label for label, _ in found} & gone_set)
        self.assertFalse(self.index.compact_if_needed())


class RemoteVectorIndexTests(VectorIndexTests):
    """
    Every test above on L{RemoteVectorIndex}, through the vector host's dispatch
    and pickling (in this process: L{LoopbackWorker}; tests/test_vector_host.py
    runs the real process).
    """

    def setUp(self) -> None:
        self.worker = LoopbackWorker()
        self.host = VectorHost(self.worker)
        super().setUp()

    def new(self) -> Any:
        return self.host.index(self.path)

    def labels(self, index: Any) -> set[int]:
        return live_labels(self.worker.host.indexes[index._key])


def vault_notes(n: int, prefix: str = "note") -> dict[str, str | bytes]:
    return {f"{prefix}/{i:03d}.md": f"# {prefix} {i}\n\n{prefix} body number {i} words\n"
            for i in range(n)}


class RebuildTests(SynchronousTestCase):
    """The hnsw file is derived: a missing, stale or corrupt one is rebuilt from SQLite."""

    def setUp(self) -> None:
        self.vault = make_vault(self, vault_notes(40))
        self.first = IndexFixture(self, self.vault)
        self.first.index_all()
        self.successResultOf(self.first.index.save_vectors())
        self.hnsw = self.first.hnsw_path

    def restart(self, **options: Any) -> IndexFixture:
        """Another daemon run on the same files, with a fresh embedder."""
        return IndexFixture(self, self.vault, db_path=self.first.db_path,
                            hnsw_path=self.hnsw, embedder=HashingEmbedder(), **options)

    def with_vectors(self, fx: IndexFixture) -> int:
        return len(index_store.live_vector_ids(fx.conn, fx.index.model_id))

    def test_current_file_is_loaded(self) -> None:
        self.assertEqual(self.first.vectors.live_count, 40)
        again = self.restart()
        self.assertEqual(again.vectors.live_count, 40)
        self.assertEqual(again.embedder.texts_embedded, 0)
        check_consistent(self, again.index)
        before = self.hnsw.stat().st_mtime_ns
        again.update([], ["note/000.md"])
        self.successResultOf(again.index.save_vectors())
        self.assertNotEqual(self.hnsw.stat().st_mtime_ns, before)
        third = self.restart()
        self.assertEqual(third.vectors.live_count, 39)
        check_consistent(self, third.index)

    def test_missing_file(self) -> None:
        self.hnsw.unlink()
        again = self.restart()
        self.assertEqual(again.vectors.live_count, self.with_vectors(again))
        self.assertEqual(again.embedder.texts_embedded, 0)
        self.assertTrue(self.hnsw.exists())  # saved again at once
        check_consistent(self, again.index)

    def test_corrupt_file(self) -> None:
        self.hnsw.write_bytes(b"garbage" * 1000)
        again = self.restart()
        self.assertEqual(again.embedder.texts_embedded, 0)
        self.assertEqual(again.vectors.live_count, 40)
        self.assertEqual(again.vectors.live_count, self.with_vectors(again))
        check_consistent(self, again.index)
        self.assertEqual(again.paths("note body number 7", mode="vector", k=1),
                         ["note/007.md"])
        # And the file written by the rebuild loads.
        self.assertEqual(self.restart().vectors.live_count, 40)

    def test_file_of_another_model(self) -> None:
        meta = self.hnsw.with_name("index.hnsw.json")
        data = json.loads(meta.read_text())
        meta.write_text(json.dumps({**data, "model_id": "other-model"}))
        again = self.restart()
        self.assertEqual(again.vectors.model_id, "hashing-64")
        self.assertEqual(again.vectors.live_count, 40)
        check_consistent(self, again.index)

    def test_stale_file_after_a_lost_save(self) -> None:
        # The file of an earlier state stays on disk while the database moves on.
        old = Path(self.mktemp())
        old.mkdir()
        for name in ("index.hnsw", "index.hnsw.json"):
            shutil.copy(self.hnsw.with_name(name), old / name)
        for i in range(5):
            write(self.vault, f"more/{i}.md", f"# more {i}\n\nanother note {i}\n")
        self.first.update([f"more/{i}.md" for i in range(5)], ["note/001.md"])
        self.successResultOf(self.first.index.save_vectors())
        for name in ("index.hnsw", "index.hnsw.json"):
            shutil.copy(old / name, self.hnsw.with_name(name))  # the save is "lost"
        again = self.restart()
        self.assertEqual(again.embedder.texts_embedded, 0)
        self.assertEqual(again.vectors.live_count, 44)
        check_consistent(self, again.index)


class Explosive(Exception):
    pass


class CrashTests(SynchronousTestCase):
    """A batch committed to SQLite whose vectors never reached the hnsw file."""

    def setUp(self) -> None:
        self.vault = make_vault(self, vault_notes(135))
        self.first = IndexFixture(self, self.vault)
        self.first.update([f"note/{i:03d}.md" for i in range(35)])
        self.successResultOf(self.first.index.save_vectors())

    def restart(self) -> IndexFixture:
        return IndexFixture(self, self.vault, db_path=self.first.db_path,
                            hnsw_path=self.first.hnsw_path, embedder=HashingEmbedder())

    def assert_recovered(self) -> IndexFixture:
        """A new run brings hnsw up to date, or rebuilds it, from the stored vectors,
        embedding nothing."""
        again = self.restart()
        conn = again.conn
        model_id = again.index.model_id
        stored = len(index_store.vector_page(conn, model_id, 0, 1_000_000))
        with_vectors = len(index_store.live_vector_ids(conn, model_id))
        self.assertEqual(again.embedder.texts_embedded, 0)
        self.assertEqual((stored, again.vectors.live_count), (with_vectors, with_vectors))
        check_consistent(self, again.index)
        return again

    def test_vector_index_raises_mid_update(self) -> None:
        self.patch(embedding, "EMBED_BATCH", 64)
        vectors = self.first.vectors
        real_add = vectors.add
        calls: list[int] = []

        def add(ids: Any, matrix: Any) -> None:
            calls.append(len(ids))
            if len(calls) == 2:
                raise Explosive("hnswlib died")
            real_add(ids, matrix)

        vectors.add = add  # type: ignore[method-assign, assignment]
        d = self.first.index.update(self.first.context(), str(self.vault),
                                    [f"note/{i:03d}.md" for i in range(35, 135)], [])
        self.failureResultOf(d, Explosive)
        self.assertEqual(calls, [64, 36])  # two embedding batches; the second one failed
        # The database went on without the vector index: what it holds is the truth.
        self.assertEqual(len(index_store.live_vector_ids(self.first.conn, "hashing-64")), 135)
        self.assertEqual(vectors.live_count, 35 + 64)
        again = self.assert_recovered()
        self.assertEqual(again.vectors.live_count, 135)
        self.assertEqual(again.paths("note body number 120", mode="vector", k=1),
                         ["note/120.md"])

    def test_killed_after_a_commit_before_the_save(self) -> None:
        self.first.update([f"note/{i:03d}.md" for i in range(35, 70)], ["note/000.md"])
        # No save_vectors: the daemon was killed; the file on disk is of the first update.
        again = self.assert_recovered()
        self.assertEqual(again.vectors.live_count, 69)
        self.assertEqual(count(again.conn, "select count(*) from embeddings"), 70)  # kept

    def test_a_few_changes_lost_are_caught_up_not_rebuilt(self) -> None:
        """A small gap (here 3 notes added, 1 deleted after the last save) is
        closed from stored vectors; the file is not rebuilt."""
        self.first.update([f"note/{i:03d}.md" for i in range(35, 38)], ["note/000.md"])
        rebuilds: list[Any] = []
        real = mirror.VectorMirror._rebuild
        self.patch(mirror.VectorMirror, "_rebuild",
                   lambda *a, **kw: rebuilds.append(a) or real(*a, **kw))
        again = self.assert_recovered()
        self.assertEqual((rebuilds, again.vectors.live_count), ([], 37))
        self.assertTrue(again.vectors.dirty)  # the caught-up file is saved later
        self.assertEqual(again.paths("note body number 36", mode="vector", k=3),
                         self.first.paths("note body number 36", mode="vector", k=3))
        self.assertNotIn("note/000.md", again.paths("note body number 0", mode="vector"))

    def test_killed_between_text_and_vectors(self) -> None:
        # Full text of a batch committed, its embedding never done.
        embedder = self.first.embedder
        real_embed = embedder.embed

        def embed(texts: Any) -> Any:
            raise Explosive("killed while embedding")

        embedder.embed = embed
        d = self.first.index.update(self.first.context(), str(self.vault),
                                    [f"note/{i:03d}.md" for i in range(35, 70)], [])
        self.failureResultOf(d, Explosive)
        embedder.embed = real_embed
        again = self.assert_recovered()
        self.assertEqual(again.vectors.live_count, 35)
        self.assertEqual(count(again.conn, "select count(*) from chunks"), 70)
        # The chunks without vectors are embedded by the next update, once each.
        summary = again.update([])
        self.assertEqual((summary["chunks_embedded"], again.embedder.texts_embedded), (35, 35))
        self.assertEqual(again.vectors.live_count, 70)
        check_consistent(self, again.index)


class PeriodicSaveTests(SynchronousTestCase):
    """The periodic saver leaves a running indexing job alone (hnswlib holds the GIL
    while it writes the file), and saves what the job changed once it is over."""

    def test_not_while_an_update_runs(self) -> None:
        vault = make_vault(self, vault_notes(3))
        fx = IndexFixture(self, vault)
        fx.index_all()
        self.successResultOf(fx.index.save_vectors())
        saved = fx.hnsw_path.read_bytes()
        held: list[tuple[Deferred[Any], Any, tuple[Any, ...]]] = []

        def run_embed(f: Any, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            held.append((d, f, args))
            return d

        fx.index.run_embed = run_embed
        write(vault, "note/new.md", "# new\n\nfresh words here\n")
        update = fx.index.update(fx.context(), str(vault), ["note/new.md"], ["note/000.md"])
        self.assertTrue(held)  # waiting for the embedder, the delete already applied
        self.assertTrue(fx.vectors.dirty)
        self.successResultOf(fx.index.periodic_save())
        self.assertEqual((fx.vectors.dirty, fx.hnsw_path.read_bytes()), (True, saved))
        while held:
            d, f, args = held.pop(0)
            d.callback(f(*args))
        self.assertEqual(self.successResultOf(update)["chunks_embedded"], 1)
        self.assertEqual(fx.index.updates_running, 0)
        self.successResultOf(fx.index.periodic_save())
        self.assertFalse(fx.vectors.dirty)
        self.assertNotEqual(fx.hnsw_path.read_bytes(), saved)
        again = IndexFixture(self, vault, db_path=fx.db_path, hnsw_path=fx.hnsw_path)
        self.assertEqual(again.embedder.texts_embedded, 0)  # loaded, not rebuilt
        check_consistent(self, again.index)
