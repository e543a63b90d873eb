"""Embedding an update's chunks: length order, the pipeline, cancellation, crash leftovers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, execute
from twisted.trial.unittest import SynchronousTestCase

from enttok.index import embedding
from enttok.index import store as index_store
from enttok.jobs.context import JobCanceled, JobContext
from enttok.threads import run_inline
from tests.embedders import HashingEmbedder
from tests.indexsupport import IndexFixture, check_consistent, count, make_vault

BATCH = 4


def varied_notes(n: int) -> dict[str, str | bytes]:
    """C{n} one-chunk notes whose texts have many different lengths (not in path order)."""
    return {f"note/{i:03d}.md": f"# Note {i}\n\n" + " ".join(
        f"word{i}x{j}" for j in range(1 + (i * 7) % 23)) + "\n" for i in range(n)}


class RecordingEmbedder(HashingEmbedder):
    """A L{HashingEmbedder} that keeps the texts of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> Any:
        self.batches.append(list(texts))
        return super().embed(texts)


class Threads:
    """
    Manual stand-ins for the database, embedder and CPU threads: each a FIFO of
    calls, run when the test says, so that any interleaving of them can be tried.
    """

    def __init__(self) -> None:
        self.queues: dict[str, list[tuple[Callable[..., Any], tuple[Any, ...],
                                          Deferred[Any]]]] = {}

    def runner(self, name: str) -> Callable[..., Deferred[Any]]:
        queue = self.queues.setdefault(name, [])

        def run(f: Callable[..., Any], /, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            queue.append((f, args, d))
            return d

        return run

    def busy(self) -> list[str]:
        return [name for name, queue in self.queues.items() if queue]

    def step(self, name: str) -> None:
        f, args, d = self.queues[name].pop(0)
        execute(f, *args).chainDeferred(d)

    def drain(self, rng: random.Random, each: Callable[[], None] = lambda: None,
              limit: int = 10_000) -> None:
        for _ in range(limit):
            busy = self.busy()
            if not busy:
                return
            self.step(rng.choice(busy))
            each()
        raise AssertionError("the threads did not finish")


class EmbedCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(embedding, "EMBED_BATCH", BATCH)
        self.vault = make_vault(self, varied_notes(30))
        self.paths = [f"note/{i:03d}.md" for i in range(30)]

    def fixture(self, **kwargs: Any) -> IndexFixture:
        return IndexFixture(self, self.vault, embedder=RecordingEmbedder(), **kwargs)

    def threaded(self, fx: IndexFixture) -> Threads:
        """Give C{fx}'s database, embedder and CPU work each its own manual thread."""
        threads = Threads()
        fx.db._run = threads.runner("db")
        fx.index.run_embed = threads.runner("embed")
        fx.index.run_cpu = threads.runner("cpu")
        return threads

    def distinct_chunks(self, fx: IndexFixture) -> int:
        return count(fx.conn, "select count(distinct content_hash) from chunks")

    def assert_complete(self, fx: IndexFixture) -> None:
        """Every chunk has a vector, the hnsw index holds them all and is in step."""
        self.assertEqual(index_store.hashes_without_vectors(fx.conn, fx.index.model_id, 10),
                         [])
        check_consistent(self, fx.index)
        self.assertEqual(fx.vectors.live_count, count(fx.conn, "select count(*) from chunks"))
        self.assertEqual(fx.vectors.version,
                         index_store.meta_int(fx.conn, index_store.VECTORS_VERSION))


class LengthOrderTests(EmbedCase):
    def assert_longest_first(self, batches: list[list[str]]) -> None:
        lengths = [len(text) for batch in batches for text in batch]
        self.assertEqual(lengths, sorted(lengths, reverse=True))

    def test_update_embeds_longest_first(self) -> None:
        fx = self.fixture()
        summary = fx.update(self.paths)
        batches = fx.embedder.batches
        distinct = self.distinct_chunks(fx)
        self.assertEqual(summary["chunks_embedded"], distinct)
        self.assertEqual([len(b) for b in batches],
                         [BATCH] * (distinct // BATCH) + ([distinct % BATCH] if distinct % BATCH
                                                          else []))
        self.assert_longest_first(batches)
        self.assertEqual(len({t for b in batches for t in b}), distinct)  # each once
        self.assert_complete(fx)

    def test_leftovers_of_a_crash_are_embedded_longest_first(self) -> None:
        fx = self.fixture()
        embedder = fx.embedder
        real_embed = embedder.embed

        def killed(texts: Sequence[str]) -> Any:
            raise RuntimeError("killed while embedding")

        embedder.embed = killed  # type: ignore[method-assign]
        self.failureResultOf(fx.index.update(fx.context(), str(self.vault), self.paths, []),
                             RuntimeError)
        embedder.embed = real_embed  # type: ignore[method-assign]
        again = IndexFixture(self, self.vault, db_path=fx.db_path, hnsw_path=fx.hnsw_path,
                             embedder=RecordingEmbedder())
        self.patch(embedding, "MISSING_WINDOW", 7)  # several windows, each sorted
        summary = again.update([])
        distinct = self.distinct_chunks(again)
        self.assertEqual(summary["chunks_embedded"], distinct)
        batches = again.embedder.batches
        self.assertEqual(len({t for b in batches for t in b}), distinct)
        self.assertEqual(sum(map(len, batches)), distinct)
        # Within each window of 7 (batches of 4 + 3), the longest come first.
        for first in range(0, len(batches), 2):
            self.assert_longest_first(batches[first:first + 2])
        self.assert_complete(again)

    def test_longest_first_keeps_known_hashes_once(self) -> None:
        fx = self.fixture()
        fx.update(self.paths)
        rows = fx.conn.execute("select content_hash, length(embed_text) from chunks "
                               "order by chunk_id").fetchall()
        hashes = [h for h, _ in rows]
        ordered = embedding.longest_first(fx.conn, ["gone", *hashes, hashes[0]])
        self.assertEqual(sorted(ordered), sorted(set(hashes)))
        self.assertEqual([dict(rows)[h] for h in ordered],
                         sorted((n for _, n in rows), reverse=True))


class PipelineTests(EmbedCase):
    def test_next_batch_is_embedded_while_the_last_is_committed(self) -> None:
        fx = self.fixture()
        threads = self.threaded(fx)
        d = fx.index.update(fx.context(), str(self.vault), self.paths, [])
        #: For each commit of vectors: whether the next batch was in the embedder.
        overlapped: list[bool] = []
        while threads.busy():
            others = [name for name in threads.busy() if name != "embed"]
            if others:
                queue = threads.queues[others[0]]
                if others[0] == "db" and queue[0][1][0] is index_store.store_vectors:
                    overlapped.append(bool(threads.queues["embed"]))
                threads.step(others[0])
                continue
            if threads.queues["embed"][0][0] == fx.embedder.load:
                threads.step("embed")  # the model loads during the full text phase
                continue
            # Only the embedder works: on one batch, counted while it is there.
            self.assertEqual((len(threads.queues["embed"]), fx.index.indexing_embeds), (1, 1))
            threads.step("embed")
        self.assertEqual(fx.index.indexing_embeds, 0)
        summary = self.successResultOf(d)
        batches = len(fx.embedder.batches)
        self.assertGreater(batches, 3)
        self.assertEqual(overlapped, [True] * (batches - 1) + [False])
        self.assertEqual(summary["chunks_embedded"], self.distinct_chunks(fx))
        self.assert_complete(fx)

    def test_long_waits_are_reported_every_second(self) -> None:
        fx = self.fixture()
        threads = self.threaded(fx)
        d = fx.index.update(fx.context(), str(self.vault), self.paths, [])

        def run_all_but_embed() -> None:
            while set(threads.busy()) - {"embed"}:
                threads.step(next(n for n in threads.busy() if n != "embed"))

        def messages_after(seconds: int) -> list[str | None]:
            before = len(fx.recorder.progress_calls)
            for _ in range(seconds):
                fx.clock.advance(1)
            return [m for _, m in fx.recorder.progress_calls[before:]]

        run_all_but_embed()
        self.assertEqual(threads.queues["embed"][0][0], fx.embedder.load)
        total = self.distinct_chunks(fx)
        self.assertEqual(messages_after(2),
                         [f"loading the embedding model for {total} chunks ({s} s)"
                          for s in (1, 2)])
        threads.step("embed")  # the model is loaded
        run_all_but_embed()  # the first batch is in the embedder
        self.assertEqual(messages_after(2), [f"embedding 0/{total} chunks"] * 2)
        threads.step("embed")
        run_all_but_embed()  # committed; the second batch is in the embedder
        self.assertEqual(fx.recorder.progress_calls[-1][1], f"embedding {BATCH}/{total} chunks")
        self.assertEqual(messages_after(1), [f"embedding {BATCH}/{total} chunks"])
        threads.drain(random.Random(0))
        self.successResultOf(d)
        self.assertEqual(messages_after(3), [])
        self.assert_complete(fx)

    def test_any_interleaving_embeds_each_chunk_once(self) -> None:
        for seed in range(20):
            fx = self.fixture()
            threads = self.threaded(fx)
            d = fx.index.update(fx.context(), str(self.vault), self.paths, [])

            def check(threads: Threads = threads, fx: IndexFixture = fx) -> None:
                self.assertLessEqual(len(threads.queues.get("embed", [])), 1)
                self.assertLessEqual(fx.index.indexing_embeds, 1)

            threads.drain(random.Random(seed), check)
            summary = self.successResultOf(d)
            distinct = self.distinct_chunks(fx)
            self.assertEqual((summary["chunks_embedded"], fx.embedder.texts_embedded),
                             (distinct, distinct))
            self.assertEqual(count(fx.conn, "select count(*) from embeddings"), distinct)
            self.assert_complete(fx)
            self.assertEqual(fx.index.indexing_embeds, 0)
            messages = [m for _, m in fx.recorder.progress_calls
                        if m and m.startswith("embedding")]
            self.assertEqual(messages, [f"embedding {min(n, distinct)}/{distinct} chunks"
                                        for n in range(BATCH, distinct + BATCH, BATCH)])


class CancelTests(EmbedCase):
    """A job canceled anywhere in the pipeline leaves SQLite and hnsw in step."""

    def cancel_at(self, stop: int, seed: int) -> tuple[IndexFixture, bool]:
        fx = self.fixture()
        threads = self.threaded(fx)
        ctx: JobContext = fx.context()
        d = fx.index.update(ctx, str(self.vault), self.paths, [])
        rng = random.Random(seed)
        for _ in range(stop):
            if not threads.busy():
                break
            threads.step(rng.choice(threads.busy()))
        finished = d.called
        db = threads.queues.get("db", [])
        if db and db[0][1][0] is index_store.store_vectors:
            self.points.add("committing")
        if fx.index.indexing_embeds:
            self.points.add("embedding")
        # As the engine cancels: the flag, then the handler's Deferred; then it
        # waits for the work the job had started (ctx.idle) before it lets another in.
        ctx.request_cancel()
        d.cancel()
        # A batch still in the embedder is counted until the embedder is done with it.
        in_embedder = [f for f, _, _ in threads.queues.get("embed", [])
                       if f != fx.embedder.load]
        self.assertEqual(fx.index.indexing_embeds, len(in_embedder))
        idle = ctx.idle()
        threads.drain(rng)
        self.successResultOf(idle)
        if finished:
            self.successResultOf(d)
        else:
            self.failureResultOf(d, CancelledError, JobCanceled)
        self.assertEqual(fx.index.indexing_embeds, 0)
        check_consistent(self, fx.index)
        if fx.vectors.ready:  # (else it is created, in step, with its first vector)
            self.assertEqual(fx.vectors.version,
                             index_store.meta_int(fx.conn, index_store.VECTORS_VERSION))
        return fx, finished

    def test_cancel_anywhere(self) -> None:
        #: Where some cancellation came: vectors being committed, a batch in the embedder.
        self.points: set[str] = set()
        canceled = 0
        for stop in range(1000):
            fx, finished = self.cancel_at(stop, seed=stop)
            if finished:
                break
            canceled += 1
            # The same index goes on: the next update embeds what is left, once each.
            fx.db._run = fx.index.run_embed = fx.index.run_cpu = run_inline
            stored = count(fx.conn, "select count(*) from embeddings")
            fx.embedder.texts_embedded = 0
            summary = fx.update(self.paths)
            distinct = self.distinct_chunks(fx)
            self.assertEqual((summary["chunks_embedded"], fx.embedder.texts_embedded),
                             (distinct - stored, distinct - stored))
            self.assert_complete(fx)
        self.assertGreater(canceled, 30)
        self.assertEqual(self.points, {"committing", "embedding"})
