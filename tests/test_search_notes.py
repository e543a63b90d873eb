"""Search ranks notes: k notes in every mode, however many chunks one note matches with."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.index.indexer import VaultIndex
from enttok.index.search import (
    MAX_VECTOR_CHUNKS,
    MIN_VECTOR_CHUNKS,
    RRF_K,
    Searcher,
    SearchQuery,
    fts_scored,
    vector_ranking,
)
from enttok.index.text import fts_query, query_terms
from enttok.index.vectors import VectorIndex, model_file
from enttok.threads import run_inline
from tests.embedders import HashingEmbedder
from tests.indexsupport import APIClient, IndexFixture, make_vault

LONG = "work/2024-05-01 함수 정리.md"
SECTIONS = 200
#: The section of the long note that says the query's words most often.
DENSE = 137
WORK = [f"work/2024-06-{i + 1:02d} 작업 {i}.md" for i in range(8)]
JOURNAL = [f"journal/2024-07-{i + 1:02d} 일기 {i}.md" for i in range(8)]
BREAD = "recipes/bread.md"
MODES = ("fts", "vector", "hybrid")


def long_note() -> str:
    """One note whose every section says 함수 and function many times (hundreds of chunks)."""
    parts = ["---\ntags: [code]\n---\n# 함수 function 정리\n"]
    for i in range(SECTIONS):
        if i == DENSE:
            words = "함수 function " * 45
        else:
            # Words of their own (about 110 tokens) keep sections apart as chunks.
            words = "함수 function " * 12 + " ".join(f"w{i}x{j}" for j in range(110))
        parts.append(f"## 절 {i}\n\n{words.strip()}\n")
    return "\n".join(parts)


def short_note(title: str, tags: str) -> str:
    return (f"---\ntags: [{tags}]\n---\n# {title}\n\n오늘 함수 하나를 고쳤다. The function now "
            f"returns early, and lunch was late.\n")


NOTES: dict[str, str | bytes] = {
    LONG: long_note(),
    **{path: short_note(f"작업 {i}", "code") for i, path in enumerate(WORK)},
    **{path: short_note(f"일기 {i}", "diary") for i, path in enumerate(JOURNAL)},
    BREAD: "# Bread\n\nFlour, water, salt and yeast. 반죽을 치댄다.\n",
}
MATCHING = [LONG, *WORK, *JOURNAL]


def embedder() -> HashingEmbedder:
    # Wide enough that the long note's filler words seldom share a dimension with 함수.
    return HashingEmbedder(1024)


class NoteRankingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.fx = IndexFixture(self, make_vault(self, NOTES), embedder=embedder())
        self.fx.index_all()
        self.long_chunks = self.chunk_ids(LONG)
        self.assertGreaterEqual(len(self.long_chunks), SECTIONS)
        [self.dense] = [cid for cid, text in self.fx.conn.execute(
            "select c.chunk_id, c.text from chunks c join notes n on n.note_id = c.note_id "
            "where n.path = ?", (LONG,)) if text.count("function") == 45]

    def chunk_ids(self, path: str) -> set[int]:
        return {r[0] for r in self.fx.conn.execute(
            "select c.chunk_id from chunks c join notes n on n.note_id = c.note_id "
            "where n.path = ?", (path,))}

    def check_hits(self, q: str, mode: str, k: int, expected: Sequence[str],
                   **filters: Any) -> list[dict[str, Any]]:
        """Exactly k distinct notes, all from C{expected}, the long note once and first."""
        hits: list[dict[str, Any]] = self.fx.search(q, mode=mode, k=k, **filters)["hits"]
        paths = [hit["path"] for hit in hits]
        self.assertEqual(len(paths), k, (q, mode, filters, paths))
        self.assertEqual(len(set(paths)), k, (q, mode, paths))
        self.assertLessEqual(set(paths), set(expected), (q, mode, filters))
        self.assertEqual(paths[0], LONG, (q, mode, filters, paths))
        self.assertEqual(hits[0]["chunk_id"], self.dense, (q, mode))
        chunk_text = self.fx.conn.execute("select text from chunks where chunk_id = ?",
                                          (self.dense,)).fetchone()[0]
        self.assertIn(hits[0]["snippet"].strip("…"), chunk_text)
        for hit in hits[1:]:
            self.assertEqual(self.chunk_ids(hit["path"]) & {hit["chunk_id"]},
                             {hit["chunk_id"]}, hit)
        return hits

    def test_k_notes_in_every_mode(self) -> None:
        for q in ("함수", "function", "함수 function"):
            for mode in MODES:
                for k in (1, 3, 10):
                    self.check_hits(q, mode, k, MATCHING)

    def test_through_the_api(self) -> None:
        api = APIClient(self, self.fx.clock, index=self.fx.index)
        for mode in MODES:
            status, body = api.call("GET", "/search", params={"q": "함수", "mode": mode,
                                                              "k": "10"})
            self.assertEqual(status, 200)
            paths = [hit["path"] for hit in body["hits"]]
            self.assertEqual((len(paths), len(set(paths)), paths[0]), (10, 10, LONG), mode)
            self.assertEqual(body["hits"][0]["chunk_id"], self.dense, mode)

    def test_fewer_matching_notes_than_k(self) -> None:
        # Full text: every matching note once, and no other.
        paths = self.fx.paths("함수", mode="fts", k=50)
        self.assertEqual(sorted(paths), sorted(MATCHING))
        # Vectors rank every note; the search for k notes ends when the index is exhausted.
        paths = self.fx.paths("함수 function", mode="vector", k=50)
        self.assertEqual(sorted(paths), sorted(NOTES))
        self.assertEqual(sorted(self.fx.paths("함수", k=50)), sorted(NOTES))

    def test_filters(self) -> None:
        for mode in MODES:
            hits = self.check_hits("함수", mode, 5, [LONG, *WORK], path_prefix="work/")
            self.assertTrue(all(hit["path"].startswith("work/") for hit in hits))
            self.check_hits("function", mode, 5, [LONG, *WORK], tag="code")
            self.check_hits("함수", mode, 5, [LONG, *WORK], date_to="2024-06-30")
            paths = self.fx.paths("함수", mode=mode, k=5, date_from="2024-06-01")
            self.assertEqual(len(set(paths)), 5, (mode, paths))
            self.assertLessEqual(set(paths), set(WORK + JOURNAL), mode)

    def test_korean_and_english_agree_on_the_long_note(self) -> None:
        for mode in MODES:
            korean = self.fx.search("함수", mode=mode, k=10)["hits"]
            english = self.fx.search("function", mode=mode, k=10)["hits"]
            self.assertEqual(korean[0]["chunk_id"], english[0]["chunk_id"])
            self.assertEqual(korean[0]["path"], LONG)

    def test_ranks_count_notes(self) -> None:
        hits = self.fx.search("함수 function", mode="hybrid", k=10)["hits"]
        self.assertEqual(hits[0]["ranks"], {"fts": 1, "vector": 1})
        for mode in ("fts", "vector"):
            ranks = [hit["ranks"][mode] for hit in hits if hit["ranks"][mode]]
            # Note ranks, not ranks among the long note's hundreds of chunks.
            self.assertEqual(len(set(ranks)), len(ranks), mode)
            self.assertLessEqual(max(ranks), len(NOTES), mode)


def reference_ranking(conn: sqlite3.Connection, query: SearchQuery,
                      terms: list[str]) -> list[tuple[int, int, float]]:
    """Every matching note, best chunk first, from every chunk's score (all terms)."""
    where, args = query.filters()
    rows = conn.execute(
        "select f.rowid, c.note_id, bm25(chunk_fts, 4.0, 2.0, 1.0) from chunk_fts f "
        "join chunks c on c.chunk_id = f.rowid join notes n on n.note_id = c.note_id "
        f"where chunk_fts match ?{where}", [fts_query(terms), *args]).fetchall()
    best: dict[int, tuple[int, int, float]] = {}
    for chunk_id, note_id, score in rows:
        if note_id not in best or (score, chunk_id) < (best[note_id][2], best[note_id][0]):
            best[note_id] = (chunk_id, note_id, score)
    return sorted(best.values(), key=lambda row: (row[2], row[0]))


class FullTextNoteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.fx = IndexFixture(self, make_vault(self, NOTES), embedder=embedder())
        self.fx.index_all()

    def test_same_as_every_chunk_collapsed(self) -> None:
        for query in [SearchQuery(q="함수"), SearchQuery(q="function"),
                      SearchQuery(q="함수 function"), SearchQuery(q="함수", path_prefix="work/"),
                      SearchQuery(q="function", tag="code"),
                      SearchQuery(q="함수", date_to="2024-07-03")]:
            q = query.q
            terms = query_terms(q)
            expected = reference_ranking(self.fx.conn, query, terms)
            self.assertGreater(len(expected), 5, q)
            for limit in (1, 5, len(expected), len(expected) + 10):
                got = fts_scored(self.fx.conn, query, terms, limit)
                self.assertEqual([(c, n) for c, n, _ in got],
                                 [(c, n) for c, n, _ in expected[:limit]], (query, limit))
                for (_, _, score), (_, _, want) in zip(got, expected, strict=False):
                    self.assertAlmostEqual(score, want)

    def test_any_term_fallback_ranks_notes(self) -> None:
        # No chunk has both words: any term, still one row per note.
        terms = query_terms("함수 flour")
        rows = fts_scored(self.fx.conn, SearchQuery(q="함수 flour"), terms, 30)
        notes = [note_id for _, note_id, _ in rows]
        self.assertEqual(len(notes), len(set(notes)))
        self.assertEqual(len(notes), len(NOTES))
        self.assertEqual(fts_scored(self.fx.conn, SearchQuery(q="함수 flour"), terms, 30,
                                    any_term_fallback=False), [])


#: Notes with none of the query's words, so that widening stops before the index ends.
OTHERS: dict[str, str | bytes] = {
    f"misc/{i:03d}.md": f"# Misc {i}\n\n" + " ".join(f"m{i}y{j}" for j in range(30)) + "\n"
    for i in range(200)}


class VectorCase(SynchronousTestCase):
    """L{vector_ranking} on a vault of C{notes}, counting the chunks each query asks for."""

    notes: dict[str, str | bytes] = NOTES

    def setUp(self) -> None:
        self.fx = IndexFixture(self, make_vault(self, self.notes), embedder=embedder())
        self.fx.index_all()
        self.embedding = self.fx.embedder.embed(["함수 function"])[0]
        self.asked: list[int] = []
        vectors = self.fx.index.vectors
        query = vectors.query

        def counting(vector: Any, k: int, allowed: Any = None) -> Any:
            self.asked.append(k)
            return query(vector, k, allowed)

        self.patch(vectors, "query", counting)

    def ranking(self, wanted: int, allowed: set[int] | None = None) -> dict[int, Any]:
        result: dict[int, Any] = self.successResultOf(vector_ranking(
            self.fx.index, self.fx.index.vector_sources()[0], self.embedding, wanted, allowed))
        return result


class VectorWideningTests(VectorCase):
    notes = {**NOTES, **OTHERS}

    def test_widens_until_enough_notes(self) -> None:
        self.assertGreater(self.fx.index.vectors.live_count, 400)
        ranking = self.ranking(3)
        self.assertEqual(len(ranking), 3)
        self.assertEqual(sorted(rank for rank, _ in ranking.values()), [1, 2, 3])
        # Twice as many chunks each time, until past the long note's 200.
        self.assertEqual(self.asked, [MIN_VECTOR_CHUNKS, 100, 200, 400])
        self.assertEqual(len(self.ranking(30)), 30)
        self.assertEqual(self.asked[4:], [60, 120, 240])

    def test_filter(self) -> None:
        allowed = {r[0] for r in self.fx.conn.execute(
            "select c.chunk_id from chunks c join notes n on n.note_id = c.note_id "
            "where n.path like 'journal/%'")}
        ranking = self.ranking(5, allowed)
        self.assertEqual(len(ranking), 5)
        self.assertLessEqual({chunk for _, chunk in ranking.values()}, allowed)
        # Fewer allowed than asked: all of them came, in one query.
        self.assertEqual(self.asked, [MIN_VECTOR_CHUNKS])


class VectorExhaustedTests(VectorCase):
    def test_stops_when_the_index_is_exhausted(self) -> None:
        ranking = self.ranking(40)
        self.assertEqual(len(ranking), len(NOTES))
        self.assertEqual(self.asked, [80, 160, 320])  # 320: more than every chunk
        self.assertLessEqual(max(self.asked), MAX_VECTOR_CHUNKS)


class TwoModelTests(SynchronousTestCase):
    """Two active embedding models: full text and each model's ranking are fused."""

    def setUp(self) -> None:
        self.fx = IndexFixture(self, make_vault(self, NOTES), embedder=embedder(),
                               prepare=False)
        self.models = models = {"a": self.fx.embedder,
                                "b": HashingEmbedder(512, model_id="hashing-b")}
        folder = self.fx.hnsw_path.parent

        def vectors_for(model_id: str) -> VectorIndex:
            return VectorIndex(model_file(folder / "index.hnsw", model_id))

        self.index = VaultIndex(self.fx.clock, self.fx.db, models["a"],
                                vectors_for(models["a"].model_id), run_inline, run_inline,
                                "a", make_embedder=models.__getitem__,
                                vectors_for=vectors_for)
        self.successResultOf(self.index.prepare_vectors())
        self.fx.index = self.index
        self.fx.searcher = Searcher(self.index)
        self.fx.index_all()
        self.assertTrue(self.index.use_models(["a", "b"]))
        self.successResultOf(self.index.converge(self.fx.context()))
        self.assertEqual(self.index.model_names, ["a", "b"])
        self.b = self.index.vector_sources()[1].vectors
        self.assertEqual(self.b.live_count, self.index.vectors.live_count)

    def test_three_lists_fused(self) -> None:
        for mode in MODES:
            hits = self.fx.search("함수 function", mode=mode, k=10)["hits"]
            paths = [hit["path"] for hit in hits]
            self.assertEqual((len(set(paths)), paths[0]), (10, LONG), mode)
        [top, *_] = self.fx.search("함수 function", k=10)["hits"]
        # First in full text and in both models' lists.
        self.assertEqual(top["score"], round(3 / (RRF_K + 1), 6))
        [top, *_] = self.fx.search("함수 function", mode="vector", k=10)["hits"]
        self.assertEqual(top["score"], round(2 / (RRF_K + 1), 6))

    def test_a_model_whose_index_is_not_its_own_is_left_out(self) -> None:
        # As after a switch, before the first vector of the new model.
        self.b.reset("another-model", 512, 0)
        [top, *_] = self.fx.search("함수 function", mode="vector", k=10)["hits"]
        self.assertEqual(top["score"], round(1 / (RRF_K + 1), 6))
        self.assertTrue(self.fx.search("함수 function")["degraded"])

    def test_degraded_until_every_model_is_loaded(self) -> None:
        self.models["b"].close()
        result = self.fx.search("함수")
        self.assertTrue(result["degraded"])
        self.assertTrue(all(hit["ranks"]["vector"] is None for hit in result["hits"]))
        self.assertTrue(self.models["b"].loaded)  # loading started
        self.assertFalse(self.fx.search("함수")["degraded"])
