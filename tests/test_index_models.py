"""Changing the embedding model never loses search; chunks left without vectors converge.

A model change re-embeds in the background (C{index.embed}) while search answers
from the previous model's vectors, then switches at once; a crash midway resumes;
switching back re-embeds nothing. Chunks an interrupted job left without vectors
are found at start and after a scan, and embedded with no user action.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from enttok.index import store as index_store
from enttok.index.embedder import EmbedderUnavailable, IEmbedder
from enttok.index.indexer import (
    EMBED_BATCH,
    MAX_EMBED_CRASHES,
    MAX_FORGIVEN_LOADS,
    VaultIndex,
)
from enttok.index.jobs import embed_job, rebuild_job, scan_job, update_job
from enttok.index.models import vector_id
from enttok.index.search import Searcher, SearchQuery
from enttok.index.service import IndexService, starting_models
from enttok.index.vectors import VectorIndex, model_file
from enttok.jobs.engine import MAX_ATTEMPTS
from enttok.jobs.model import FAILED, SUCCEEDED
from enttok.jobs.registry import JobType
from tests.embedders import HashingEmbedder
from tests.indexsupport import check_consistent, make_vault, write
from tests.jobsupport import Harness

NOTES = 80
#: Distinct chunk texts of the vault (one chunk a note).
CHUNKS = NOTES


def notes(n: int = NOTES) -> dict[str, str | bytes]:
    """English and Korean notes, one chunk each."""
    return {f"note/{i:03d}.md": (f"# note {i}\n\nnote body number {i} words\n" if i % 2
                                 else f"# 회의 {i}\n\n회의록 정리 번호 {i} 내용\n")
            for i in range(n)}


@implementer(IEmbedder)
class LazyEmbedder(HashingEmbedder):
    """Like a local model folder: the dimension is known only once loaded."""

    def __init__(self, dimension: int, model_id: str) -> None:
        super().__init__(dimension, model_id=model_id)
        self._real_dimension = dimension
        self.dimension = 0

    def load(self) -> None:
        self.dimension = self._real_dimension
        super().load()


class Models:
    """The embedders a test's daemon runs make, by name (each run makes its own)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, HashingEmbedder]] = []

    def make(self, name: str) -> IEmbedder:
        if name == "lazy":
            embedder: HashingEmbedder = LazyEmbedder(32, "lazy-32")
        elif name == "a2":  # another runtime of model a: the same vectors
            embedder = HashingEmbedder(64, model_id="model-a")
        else:
            embedder = HashingEmbedder(64 if name == "a" else 48, model_id=f"model-{name}")
        self.made.append((name, embedder))
        return embedder

    def texts_embedded(self, name: str) -> int:
        return sum(e.texts_embedded for n, e in self.made if n == name)


class Run:
    """
    One daemon run over a data folder: an engine with the index jobs and an index
    whose embedders come from L{Models}. Embedding calls of the models named in
    C{held} wait until L{release}.
    """

    def __init__(self, case: SynchronousTestCase, vault: Path, folder: Path, models: Models,
                 active: tuple[str, ...] = ("a",), wanted: tuple[str, ...] | None = None,
                 held: tuple[str, ...] = (), hold_load: bool = False,
                 advance: float = 5) -> None:
        self.case = case
        self.models = models
        self.held_names = set(held)
        self.hold_load = hold_load
        self.loads: list[Deferred[Any]] = []
        self.held: list[tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...]]] = []
        self.submitted: list[tuple[str, Any]] = []
        made: list[VaultIndex] = []

        def types(h: Harness) -> list[JobType]:
            recorded = index_store.active_models(h.db.connection)
            names = tuple(recorded) if recorded else active
            first = models.make(names[0])

            def vectors_for(model_id: str) -> VectorIndex:
                return VectorIndex(model_file(folder / "index.hnsw", model_id))

            index = VaultIndex(h.clock, h.db, first, vectors_for(str(first.model_id)),
                               lambda f, *a: succeed(f(*a)), self.run_embed, names[0],
                               make_embedder=models.make, vectors_for=vectors_for,
                               more=names[1:])
            made.append(index)
            vault_path = lambda: str(vault)  # noqa: E731

            def use_model(value: str) -> Deferred[Any]:
                if index.use_models(value.split("+")):
                    return h.engine.submit("index.embed", {})
                return succeed(None)

            return [scan_job(index, vault_path, self.submit), update_job(index, vault_path),
                    rebuild_job(index, vault_path, use_model), embed_job(index)]

        self.h = Harness(case, str(folder / "index.db"), extra_types=types)
        [self.index] = made
        if wanted is not None:
            self.index.use_models(wanted, prepare=False)
        self.service = IndexService(self.h.clock, self.index, self.submit)
        self.service.startService()
        self.h.clock.advance(advance)  # prepared (everything inline), unless 0
        self.h.engine.startService()
        case.addCleanup(self.h.engine.stopService)

    def run_embed(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        owner = getattr(f, "__self__", None)
        names = {n for n, e in self.models.made if e is owner}
        if f.__name__ == "load" and self.hold_load:
            waiting: Deferred[Any] = Deferred()
            self.loads.append(waiting)  # never fires: the process dies meanwhile
            return waiting
        if f.__name__ == "embed" and names & self.held_names:
            d: Deferred[Any] = Deferred()
            self.held.append((d, f, args))
            return d
        try:
            return succeed(f(*args))
        except Exception as e:
            from twisted.internet.defer import fail
            return fail(e)

    def release(self, calls: int | None = None) -> None:
        """Let C{calls} held embedding calls (default: all, and those to come) run."""
        if calls is None:
            self.held_names.clear()
        while self.held and (calls is None or calls > 0):
            d, f, args = self.held.pop(0)
            d.callback(f(*args))
            calls = None if calls is None else calls - 1

    def submit(self, job_type: str, payload: Any) -> Deferred[Any]:
        self.submitted.append((job_type, payload))
        return self.h.engine.submit(job_type, payload)

    def job(self, job_type: str, payload: Any = None) -> Any:
        job_id, _ = self.h.submit(self.case, job_type, payload)
        return self.h.stored(job_id)

    def last(self, job_type: str) -> Any:
        rows = self.h.db.connection.execute(
            "select job_id from jobs where type = ? order by created_at desc, job_id desc",
            (job_type,)).fetchall()
        return self.h.stored(rows[0][0]) if rows else None

    def status(self) -> Any:
        return self.case.successResultOf(self.index.status())

    def search(self, q: str, mode: str = "vector") -> dict[str, Any]:
        result: dict[str, Any] = self.case.successResultOf(
            Searcher(self.index).search(SearchQuery(q=q, mode=mode, k=5)))
        return result

    def stop(self) -> None:
        """A clean stop (vectors saved)."""
        self.case.successResultOf(self.index.save_vectors())


class ModelSwitchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.vault = make_vault(self, notes())
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir()
        self.models = Models()
        self.first = self.start()
        job = self.first.job("index.rebuild")
        self.assertEqual(job.status, SUCCEEDED, job.error)
        self.assertEqual(self.first.status()["vectors"], CHUNKS)

    def start(self, **kwargs: Any) -> Run:
        return Run(self, self.vault, self.folder, self.models, **kwargs)

    def test_search_uses_the_old_model_until_the_new_one_is_complete(self) -> None:
        run = self.first
        run.held_names.add("b")
        before = run.search("note body number 7")
        self.assertEqual(before["hits"][0]["path"], "note/007.md")
        self.assertTrue(run.index.use_models(["b"]))
        job = run.job("index.embed")
        self.assertEqual(len(run.held), 1)
        run.release(2)  # two batches of B stored, the third in the embedder
        status = run.status()
        self.assertEqual((status["models"], status["model_id"]), (["a"], "model-a"))
        self.assertEqual((status["target_models"], status["switching"]["models"]), (["b"], ["b"]))
        self.assertEqual(status["switching"]["vectors"], 2 * EMBED_BATCH)
        self.assertEqual(status["switching"]["progress"], round(2 * EMBED_BATCH / CHUNKS, 4))
        self.assertGreater(status["vectors_pending"], 0)
        # Search answers from A's vectors meanwhile, not from a half-built B, and
        # B's batches do not make hybrid search fall back to full text.
        self.assertEqual(run.search("note body number 7"), before)
        self.assertFalse(run.search("note body number 7", mode="hybrid")["degraded"])
        self.assertEqual(run.h.stored(job.job_id).status, "running")
        run.release()
        done = run.h.stored(job.job_id)
        self.assertEqual(done.status, SUCCEEDED, done.error)
        self.assertEqual((done.result["chunks_embedded"], done.result["switched_to"]),
                         (CHUNKS, ["b"]))
        status = run.status()
        self.assertEqual((status["models"], status["model_ids"], status["switching"],
                          status["target_models"]), (["b"], ["model-b"], None, None))
        self.assertEqual((status["vectors"], status["hnsw_live"], status["vectors_pending"]),
                         (CHUNKS, CHUNKS, 0))
        self.assertEqual(run.index.vectors.dimension, 48)
        self.assertEqual(run.search("회의록 정리 번호 12")["hits"][0]["path"], "note/012.md")
        check_consistent(self, run.index)
        self.assertEqual(index_store.active_models(run.h.db.connection), ["b"])

    def test_a_switch_right_after_start_searches_the_old_vectors(self) -> None:
        self.first.stop()
        # Before the start-up's (delayed) preparation of the hnsw indexes.
        run = self.start(held=("b",), advance=0)
        self.assertFalse(run.index.vectors.ready)
        self.assertTrue(run.index.use_models(["b"]))
        # The switch prepares the active index too, not only the target's.
        self.assertEqual((run.status()["hnsw_ready"], run.status()["hnsw_live"]),
                         (True, CHUNKS))
        job = run.job("index.embed")
        run.release(1)
        self.assertEqual(run.status()["switching"]["vectors"], EMBED_BATCH)
        self.assertEqual(run.search("note body number 7")["hits"][0]["path"], "note/007.md")
        vectors = run.index.vectors
        run.h.clock.advance(5)  # the start-up's preparation: each index is left as it is
        self.assertIs(run.index.vectors, vectors)
        self.assertEqual(run.search("회의록 정리 번호 12")["hits"][0]["path"], "note/012.md")
        run.release()
        self.assertEqual(run.h.stored(job.job_id).status, SUCCEEDED)
        self.assertEqual(run.index.model_names, ["b"])
        self.assertEqual(run.search("note body number 7")["hits"][0]["path"], "note/007.md")
        check_consistent(self, run.index)

    def test_vector_search_right_after_start_prepares_the_index(self) -> None:
        self.first.stop()
        run = self.start(advance=0)
        self.assertFalse(run.index.vectors.ready)
        # Hybrid answers from full text meanwhile and starts the preparation.
        hybrid = run.search("note body number 7", mode="hybrid")
        self.assertTrue(hybrid["degraded"])
        self.assertTrue(run.index.vectors_prepared())
        self.assertEqual(run.status()["hnsw_live"], CHUNKS)
        second = self.start(advance=0)
        self.assertEqual(second.search("note body number 7")["hits"][0]["path"],
                         "note/007.md")

    def test_switching_back_embeds_nothing(self) -> None:
        run = self.first
        self.assertTrue(run.index.use_models(["b"]))
        self.assertEqual(run.job("index.embed").status, SUCCEEDED)
        self.assertEqual(run.index.model_names, ["b"])
        a_texts = self.models.texts_embedded("a")
        self.assertTrue(run.index.use_models(["a"]))
        job = run.job("index.embed")
        self.assertEqual((job.status, job.result["chunks_embedded"], job.result["switched_to"]),
                         (SUCCEEDED, 0, ["a"]))
        self.assertEqual(self.models.texts_embedded("a"), a_texts)
        self.assertEqual(run.index.model_names, ["a"])
        self.assertEqual(run.search("note body number 9")["hits"][0]["path"], "note/009.md")
        check_consistent(self, run.index)
        # One hnsw file per model, each of its own model.
        run.stop()
        for model_id in ("model-a", "model-b"):
            sidecar = model_file(self.folder / "index.hnsw", model_id).with_suffix(".hnsw.json")
            self.assertEqual(json.loads(sidecar.read_text())["model_id"], model_id)

    def test_another_runtime_of_the_same_model_embeds_nothing(self) -> None:
        run = self.first
        vectors = run.index.vectors
        self.assertTrue(run.index.use_models(["a2"]))
        job = run.job("index.embed")
        self.assertEqual((job.status, job.result["switched_to"]), (SUCCEEDED, ["a2"]))
        self.assertEqual(self.models.texts_embedded("a2"), 0)
        self.assertIs(run.index.vectors, vectors)  # one vector index per model id
        self.assertEqual(run.search("note body number 9")["hits"][0]["path"], "note/009.md")
        check_consistent(self, run.index)

    def test_a_crash_midway_resumes_at_the_next_start(self) -> None:
        run = self.first
        run.held_names.add("lazy")
        run.index.use_models(["lazy"])
        run.job("index.embed")
        run.release(2)  # two batches stored; then the process dies
        second = self.start(wanted=("lazy",))
        self.assertEqual(second.submitted, [("index.embed", {})])
        job = second.last("index.embed")
        self.assertEqual(job.status, SUCCEEDED, job.error)
        # Each chunk embedded once by the new model, over both runs.
        self.assertEqual(self.models.texts_embedded("lazy"), CHUNKS)
        self.assertEqual(second.index.model_names, ["lazy"])
        self.assertEqual((second.index.vectors.model_id, second.index.vectors.dimension),
                         ("lazy-32", 32))
        self.assertEqual(second.index.embed_crashes, 0)
        check_consistent(self, second.index)

    def test_a_stop_midway_keeps_the_old_model_active(self) -> None:
        run = self.first
        run.held_names.add("b")
        run.index.use_models(["b"])
        run.job("index.embed")
        run.release(1)
        # Killed: the next run starts with A active (as recorded), B still wanted.
        second = self.start(wanted=("b",), held=("b",))
        self.assertEqual(second.index.model_names, ["a"])
        self.assertEqual(second.search("note body number 3")["hits"][0]["path"], "note/003.md")
        self.assertEqual(second.status()["switching"]["vectors"], EMBED_BATCH)
        second.release()
        self.assertEqual(second.index.model_names, ["b"])

    def test_a_switch_called_off_stops_embedding(self) -> None:
        run = self.first
        run.held_names.add("b")
        run.index.use_models(["b"])
        job = run.job("index.embed")
        run.release(1)
        self.assertFalse(run.index.use_models(["a"]))
        self.assertIsNone(run.status()["target_models"])
        run.release()
        done = run.h.stored(job.job_id)
        self.assertEqual((done.status, done.result["switched_to"]), (SUCCEEDED, None))
        # Called off with the second batch in the embedder and the third fetched:
        # no more after them.
        self.assertEqual(self.models.texts_embedded("b"), 3 * EMBED_BATCH)
        self.assertLess(3 * EMBED_BATCH, CHUNKS)
        self.assertEqual(run.index.model_names, ["a"])
        check_consistent(self, run.index)

    def test_update_while_switching_embeds_for_both_models(self) -> None:
        run = self.first
        run.held_names.add("b")
        run.index.use_models(["b"])
        write(self.vault, "note/new.md", "# new\n\n새로운 메모 fresh words\n")
        job = run.job("index.update", {"changed_paths": ["note/new.md"]})
        # A's vector came at once; B's waits behind the held embedder.
        self.assertEqual(run.search("새로운 메모 fresh words")["hits"][0]["path"], "note/new.md")
        run.release()
        self.assertEqual(run.h.stored(job.job_id).status, SUCCEEDED)
        embed = run.job("index.embed")
        self.assertEqual(embed.status, SUCCEEDED, embed.error)
        self.assertEqual(run.index.model_names, ["b"])
        self.assertEqual(run.status()["vectors"], CHUNKS + 1)
        check_consistent(self, run.index)

    def test_rebuild_with_a_model(self) -> None:
        run = self.first
        job = run.job("index.rebuild", {"embedding_model": "b"})
        self.assertEqual(job.status, SUCCEEDED, job.error)
        self.assertEqual(run.last("index.embed").status, SUCCEEDED)
        self.assertEqual(run.index.model_names, ["b"])
        check_consistent(self, run.index)

    def test_two_active_models(self) -> None:
        run = self.first
        run.index.use_models(["a", "b"])
        self.assertEqual(run.job("index.embed").status, SUCCEEDED)
        sources = run.index.vector_sources()
        self.assertEqual([(mirror.model_id, mirror.live_count) for mirror in sources],
                         [("model-a", CHUNKS), ("model-b", CHUNKS)])
        status = run.status()
        self.assertEqual((status["models"], status["vectors_by_model"]),
                         (["a", "b"], {"model-a": CHUNKS, "model-b": CHUNKS}))
        for mirror in sources:
            model_id = mirror.model_id
            query = self.successResultOf(run.index.embed(["note body number 5"], model_id))
            [(chunk_id, _)] = self.successResultOf(mirror.query(query[0], 1, None))
            path = run.h.db.connection.execute(
                "select n.path from chunks c join notes n on n.note_id = c.note_id "
                "where c.chunk_id = ?", (chunk_id,)).fetchone()[0]
            self.assertEqual((model_id, path), (model_id, "note/005.md"))
        run.stop()
        embedded = self.models.texts_embedded("b")
        # The next start keeps both, each with its hnsw file as saved.
        second = self.start()
        self.assertEqual(second.index.model_names, ["a", "b"])
        self.assertEqual([(mirror.model_id, mirror.live_count, mirror.dirty)
                          for mirror in second.index.vector_sources()],
                         [("model-a", CHUNKS, False), ("model-b", CHUNKS, False)])
        self.assertEqual(self.models.texts_embedded("b"), embedded)


class ConvergenceTests(SynchronousTestCase):
    """Chunks without vectors, however they came about, are embedded without asking."""

    def setUp(self) -> None:
        self.vault = make_vault(self, notes())
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir()
        self.models = Models()

    def start(self, **kwargs: Any) -> Run:
        return Run(self, self.vault, self.folder, self.models, **kwargs)

    def test_a_crash_in_the_model_load_is_not_counted(self) -> None:
        run = self.start(hold_load=True)
        rebuild = run.job("index.rebuild")
        self.assertEqual(rebuild.status, "running")
        self.assertEqual(len(run.loads), 1)
        for _ in range(MAX_FORGIVEN_LOADS):
            # Killed while the model loads; each start finds the backlog again.
            run = self.start(hold_load=True)
            self.assertEqual(run.index.embed_crashes, 0)
            self.assertEqual(len(run.loads), 1)
            status = run.status()
            self.assertEqual((status["chunks"], status["vectors"], status["vectors_pending"]),
                             (CHUNKS, 0, CHUNKS))
            self.assertIsNone(status["vectors_error"])
            # The job waiting for the model keeps its attempts.
            self.assertEqual(run.h.stored(rebuild.job_id).attempts, 1)
        run = self.start()
        self.assertEqual(run.index.embed_crashes, 0)
        self.assertEqual(run.h.stored(rebuild.job_id).status, SUCCEEDED)
        failed = run.h.db.connection.execute(
            "select count(*) from jobs where status = 'failed'").fetchone()[0]
        self.assertEqual(failed, 0)
        status = run.status()
        self.assertEqual((status["vectors"], status["hnsw_live"], status["vectors_pending"],
                          status["vectors_error"]), (CHUNKS, CHUNKS, 0, None))
        check_consistent(self, run.index)

    def test_a_model_whose_load_keeps_killing_the_process_is_not_retried_forever(
            self) -> None:
        run = self.start(hold_load=True)
        rebuild = run.job("index.rebuild")
        for _ in range(MAX_FORGIVEN_LOADS + MAX_ATTEMPTS):
            run = self.start(hold_load=True)
        job = run.h.stored(rebuild.job_id)
        self.assertEqual((job.status, job.error["code"]), (FAILED, "interrupted"))

    def test_the_start_loads_the_models(self) -> None:
        # Before any job asks: the first scan's embedding and the first semantic
        # search then find the model loaded.
        run = self.start(hold_load=True)
        self.assertEqual(run.h.db.connection.execute("select count(*) from jobs").fetchone(),
                         (0,))
        self.assertEqual(len(run.loads), 1)

    def test_a_scan_finds_chunks_left_without_vectors(self) -> None:
        run = self.start()

        def broken() -> None:
            raise EmbedderUnavailable("model files are missing")

        run.index.embedder.load = broken  # type: ignore[method-assign]
        run.index.embedder.loaded = False  # the start loaded it (IndexService warms models)
        job = run.job("index.rebuild")
        self.assertEqual((job.status, job.result["chunks_embedded"]), (SUCCEEDED, 0))
        self.assertEqual(run.status()["vectors_pending"], CHUNKS)
        del run.index.embedder.load  # mended
        scan = run.job("vault.scan")
        self.assertEqual(scan.status, SUCCEEDED, scan.error)
        self.assertIsNone(scan.result["index_update_job"])
        embed = run.h.stored(scan.result["index_embed_job"])
        self.assertEqual((embed.status, embed.result["chunks_embedded"]), (SUCCEEDED, CHUNKS))
        self.assertEqual(run.status()["vectors_pending"], 0)
        # Nothing left: the next scan queues nothing.
        self.assertIsNone(run.job("vault.scan").result["index_embed_job"])

    def crash_loop(self) -> Run:
        """Three runs die with a new note's chunk in the embedder; return the fourth."""
        self.start().job("index.rebuild")  # everything embedded
        write(self.vault, "note/poison.md", "# poison\n\nthis text kills the model\n")
        for attempt in range(MAX_EMBED_CRASHES):
            run = self.start(held=("a",))
            self.assertEqual(run.index.embed_crashes, attempt)
            if attempt == 0:
                run.job("vault.scan")
            # Died with the chunk in the embedder (the held call never returns).
            self.assertEqual(len(run.held), 1)
        run = self.start(held=("a",))
        self.assertEqual(run.held, [])  # not retried
        return run

    def test_a_change_of_model_embeds_again(self) -> None:
        run = self.crash_loop()
        self.assertTrue(run.index.use_models(["b"]))
        self.assertIsNone(run.status()["vectors_error"])
        run.release()  # (here the chunk no longer kills model a)
        job = run.job("index.embed")
        self.assertEqual((job.status, job.result["switched_to"]), (SUCCEEDED, ["b"]))
        self.assertEqual(run.status()["vectors_pending"], 0)
        self.assertEqual(index_store.meta_int(run.h.db.connection,
                                              index_store.EMBED_CRASHES), 0)

    def test_a_backlog_that_keeps_killing_the_process_is_reported(self) -> None:
        run = self.crash_loop()
        status = run.status()
        self.assertEqual((status["vectors_pending"], status["embedding_crashes"]),
                         (1, MAX_EMBED_CRASHES))
        self.assertIn("died 3 times in a row while embedding", status["vectors_error"])
        job = run.job("index.embed")
        self.assertEqual((job.status, job.error["code"]), (FAILED, "embedding_crashed"))
        # Asked for explicitly, it runs again (and, mended, succeeds).
        run.release()
        forced = run.job("index.embed", {"force": True})
        self.assertEqual((forced.status, forced.result["chunks_embedded"]), (SUCCEEDED, 1))
        status = run.status()
        self.assertEqual((status["vectors_pending"], status["vectors_error"]), (0, None))


class StartingModelsTests(SynchronousTestCase):
    """Which models search starts with, before any switch to the setting's."""

    def setUp(self) -> None:
        from enttok.store import Database
        from enttok.threads import run_inline

        self.db = Database(self.mktemp(), run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.conn = self.db.connection

    def store_vector(self, model_id: str) -> None:
        index_store.store_vectors(self.conn, model_id, {"h" * 64: b"\0" * 16},
                                  "2026-12-04T00:00:00Z")

    def test_as_recorded(self) -> None:
        index_store.set_active_models(self.conn, ["minilm-onnx", "use-multilingual"])
        self.assertEqual(starting_models(self.conn, ("use-multilingual",)),
                         ("minilm-onnx", "use-multilingual"))

    def test_a_recorded_model_no_longer_known(self) -> None:
        index_store.set_active_models(self.conn, ["gone-model"])
        self.assertEqual(starting_models(self.conn, ("use-multilingual",)),
                         ("use-multilingual",))

    def test_fresh(self) -> None:
        self.assertEqual(starting_models(self.conn, ("use-multilingual",)),
                         ("use-multilingual",))

    def test_a_database_from_before_the_record_keeps_its_vectors_searchable(self) -> None:
        self.store_vector(vector_id("minilm-onnx"))  # MiniLM's, the earlier default
        self.assertEqual(starting_models(self.conn, ("use-multilingual",)), ("minilm-onnx",))
        self.store_vector(vector_id("use-multilingual"))
        self.assertEqual(starting_models(self.conn, ("use-multilingual",)),
                         ("use-multilingual",))
