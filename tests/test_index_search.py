"""Search: English and Korean full text, filters, modes, fusion, and the HTTP routes."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from enttok.index.embedder import EmbedderUnavailable, IEmbedder
from enttok.index.search import RRF_K, SearchQuery, best_per_note, fts_ranked, fts_scored, fuse
from enttok.index.text import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    STOP_WORDS,
    fts_query,
    fts_text,
    highlight,
    query_terms,
)
from tests.embedders import HashingEmbedder
from tests.indexsupport import APIClient, IndexFixture, make_vault

MEETING = "journal/2024-05-02 회의.md"
MINUTES = "journal/2024-05-03.md"
LUNCH = "journal/2024-06-10 점심.md"
STANDUP = "work/2024-05-01 standup.md"
PIPELINE = "work/pipeline.md"
BREAD = "recipes/bread.md"

NOTES: dict[str, str | bytes] = {
    STANDUP: "---\ntags: [work]\n---\n# Standup\n\nThe search index was rebuilt overnight.\n",
    PIPELINE: "# Pipeline\n\nIndexing notes takes a while; the indexer batches files. #work\n",
    MEETING: "# 주간 회의\n\n오늘 회의를 시작했다. 일정을 논의했다. #meeting\n",
    MINUTES: "# 정리\n\n회의록 작성을 마쳤다. #meeting\n",
    LUNCH: "# 점심\n\n점심 메뉴는 김치찌개였다.\n",
    BREAD: "# Bread\n\nFlour, water, salt and yeast. Knead the dough, then bake it.\n",
    "a_b/x.md": "# Underscore folder\n\nunderscore prefix test\n",
    "aXb/y.md": "# Lookalike folder\n\nunderscore prefix test\n",
    "trips/istanbul.md": "# Trip\n\nİstanbul İzmir İznik: the index of places we saw.\n",
}


class SearchCase(SynchronousTestCase):
    embedder: Any = None

    def setUp(self) -> None:
        self.fx = IndexFixture(self, make_vault(self, NOTES), embedder=self.embedder)
        summary = self.fx.index_all()
        self.assertEqual(summary["notes_indexed"], len(NOTES))


class FullTextTests(SearchCase):
    def test_english_stemming(self) -> None:
        found = self.fx.paths("indexing", mode="fts")
        self.assertIn(STANDUP, found)  # "index"
        self.assertIn(PIPELINE, found)  # "Indexing", "indexer"
        self.assertNotIn(BREAD, found)

    def test_prefix_search_as_you_type(self) -> None:
        self.assertEqual(self.fx.paths("yea", mode="fts"), [BREAD])

    def test_all_terms_then_any_term(self) -> None:
        self.assertEqual(self.fx.paths("flour dough", mode="fts"), [BREAD])
        found = self.fx.paths("flour overnight", mode="fts")
        self.assertEqual(sorted(found), sorted([BREAD, STANDUP]))

    def test_stop_words_are_left_out(self) -> None:
        self.assertEqual(query_terms("How do we knead the dough?"), ["knead", "dough"])
        # All-terms: without stop words the sentence finds the one note about it.
        self.assertEqual(self.fx.paths("how do we knead the dough", mode="fts"), [BREAD])
        # Any-term fallback ("rye" is nowhere): the remaining terms only, so not the
        # notes that merely say "we" or "the".
        self.assertEqual(self.fx.paths("how do we bake with rye", mode="fts"), [BREAD])

    def test_query_of_stop_words_only(self) -> None:
        self.assertEqual(query_terms("To be, or not to be"), ["to", "be", "or", "not"])
        self.assertEqual(sorted(self.fx.paths("the", mode="fts")),
                         sorted([STANDUP, PIPELINE, BREAD, "trips/istanbul.md"]))
        self.assertEqual(self.fx.paths("of the", mode="fts"), ["trips/istanbul.md"])

    def test_stop_words_do_not_use_up_the_term_limit(self) -> None:
        words = sorted(STOP_WORDS)
        self.assertGreater(len(words), MAX_TERMS)
        self.assertEqual(query_terms(" ".join(words) + " yeast"), ["yeast"])
        self.assertEqual(query_terms(" ".join(words)), words[:MAX_TERMS])

    def test_stop_words_are_not_highlighted(self) -> None:
        [hit] = self.fx.search("how is the index rebuilt", mode="fts")["hits"]
        self.assertEqual(hit["path"], STANDUP)
        marked = {hit["snippet"][s:e].lower() for s, e in hit["highlights"]}
        self.assertEqual(marked, {"inde", "rebu"})

    def test_ranking_with_and_without_filters_agree(self) -> None:
        # Without filters FTS5 ranks alone and only the top rows are joined; with
        # them the join comes first. A row has the same score either way.
        terms = query_terms("index")
        plain = fts_scored(self.fx.conn, SearchQuery(q="index"), terms, 10)
        filtered = fts_scored(self.fx.conn, SearchQuery(q="index", date_to="9999-12-31"),
                              terms, 10)
        self.assertEqual(len(plain), 3)
        self.assertEqual(len(filtered), 1)  # the only dated note that says "index"
        self.assertEqual([r for r in plain if r[0] == filtered[0][0]], filtered)
        scores = [r[2] for r in plain]
        self.assertEqual(scores, sorted(scores))
        self.assertEqual(fts_ranked(self.fx.conn, SearchQuery(q="index"), terms, 2),
                         [(r[0], r[1]) for r in plain[:2]])

    def test_korean_two_syllables_match_inside_words(self) -> None:
        found = self.fx.paths("회의", mode="fts")
        self.assertEqual(sorted(found), sorted([MEETING, MINUTES]))  # 회의를, 회의록
        self.assertNotIn(LUNCH, found)

    def test_korean_three_syllables(self) -> None:
        self.assertEqual(self.fx.paths("회의록", mode="fts"), [MINUTES])
        self.assertEqual(self.fx.paths("회의를", mode="fts"), [MEETING])
        self.assertEqual(self.fx.paths("김치찌개", mode="fts"), [LUNCH])

    def test_korean_single_syllable(self) -> None:
        self.assertEqual(sorted(self.fx.paths("회", mode="fts")), sorted([MEETING, MINUTES]))
        self.assertEqual(self.fx.paths("록", mode="fts"), [])
        for mode in ("hybrid", "vector"):
            self.fx.search("회", mode=mode)

    def test_query_without_words(self) -> None:
        for q in ("!!!", "*", '"', "(", "-"):
            self.assertEqual(self.fx.search(q, mode="fts")["hits"], [], q)
            self.fx.search(q, mode="hybrid")
        # FTS5 operators are plain words in a query.
        for q in ("AND", "NEAR(index", "index OR", "NOT flour"):
            self.fx.search(q, mode="fts")
        self.assertEqual(self.fx.paths("AND yeast", mode="fts"), [BREAD])

    def test_highlights_point_at_matches(self) -> None:
        for q, expected in [("회의", {"회의"}), ("indexing", {"index"}),
                            ("김치", {"김치"}), ("INDEX", {"inde"})]:
            hits = self.fx.search(q, mode="fts")["hits"]
            self.assertTrue(hits, q)
            for hit in hits:
                self.assertTrue(hit["highlights"], (q, hit))
                marked = {hit["snippet"][s:e].lower() for s, e in hit["highlights"]}
                self.assertEqual(marked, expected, (q, hit["snippet"]))

    def test_highlights_after_a_letter_that_grows_when_lowered(self) -> None:
        [hit] = self.fx.search("places", mode="fts")["hits"]
        self.assertEqual(hit["path"], "trips/istanbul.md")
        marked = [hit["snippet"][s:e] for s, e in hit["highlights"]]
        self.assertEqual(marked, ["plac"])

    def test_long_text_snippet_is_cut_around_the_match(self) -> None:
        text = " ".join(["filler"] * 300) + " needle here " + " ".join(["filler"] * 300)
        snippet, marks = highlight(text, ["needle"])
        self.assertTrue(snippet.startswith("…") and snippet.endswith("…"), snippet)
        self.assertLessEqual(len(snippet), 202)
        self.assertEqual([snippet[s:e] for s, e in marks], ["need"])

    def test_fts_text_and_query(self) -> None:
        self.assertEqual(fts_text("회의를 정리").split(), ["회의", "의를", "정리"])
        self.assertEqual(fts_query(query_terms("회의록 Index 회")),
                         '"회의 의록" AND "index"* AND "회"*')
        self.assertEqual(fts_query(["a", "b"], any_term=True), '"a" OR "b"')


class FilterTests(SearchCase):
    def test_path_prefix(self) -> None:
        self.assertEqual(sorted(self.fx.paths("회의", path_prefix="journal/", mode="fts")),
                         sorted([MEETING, MINUTES]))
        self.assertEqual(self.fx.paths("회의", path_prefix="work/", mode="fts"), [])
        # LIKE wildcards in the prefix are literal.
        self.assertEqual(self.fx.paths("underscore", path_prefix="a_b/", mode="fts"),
                         ["a_b/x.md"])
        self.assertEqual(self.fx.paths("underscore", path_prefix="a%", mode="fts"), [])

    def test_tag(self) -> None:
        self.assertEqual(sorted(self.fx.paths("index", tag="work", mode="fts")),
                         sorted([STANDUP, PIPELINE]))
        self.assertEqual(sorted(self.fx.paths("회의", tag="#Meeting", mode="fts")),
                         sorted([MEETING, MINUTES]))
        self.assertEqual(self.fx.paths("index", tag="meeting", mode="fts"), [])

    def test_dates(self) -> None:
        self.assertEqual(self.fx.paths("회의", date_from="2024-05-02", date_to="2024-05-02"),
                         [MEETING])
        self.assertEqual(self.fx.paths("회의", date_from="2024-05-03", mode="fts"), [MINUTES])
        self.assertEqual(self.fx.paths("점심", date_from="2024-06-01", mode="fts"), [LUNCH])
        self.assertEqual(self.fx.paths("점심", date_to="2024-05-31", mode="fts"), [])
        # Notes without a date are left out by a date filter.
        self.assertEqual(self.fx.paths("flour", date_from="2000-01-01", mode="fts"), [])

    def test_filters_apply_to_vectors(self) -> None:
        # Three of the nine notes pass: all three come back, nothing else.
        found = self.fx.paths("회의", path_prefix="journal/", mode="vector", k=10)
        self.assertEqual(sorted(found), sorted([MEETING, MINUTES, LUNCH]))
        found = self.fx.paths("index", tag="work", mode="vector", k=10)
        self.assertEqual(sorted(found), sorted([STANDUP, PIPELINE]))


class ModeTests(SearchCase):
    def test_fts_mode(self) -> None:
        result = self.fx.search("yeast", mode="fts")
        self.assertEqual((result["mode"], result["degraded"]), ("fts", False))
        [hit] = result["hits"]
        self.assertEqual((hit["path"], hit["ranks"]), (BREAD, {"fts": 1, "vector": None}))
        self.assertEqual((hit["title"], hit["heading"], hit["date"], hit["tags"]),
                         ("Bread", "Bread", None, []))
        self.assertEqual(hit["score"], round(1 / (RRF_K + 1), 6))

    def test_vector_mode(self) -> None:
        hits = self.fx.search("flour water salt yeast", mode="vector")["hits"]
        self.assertEqual(hits[0]["path"], BREAD)
        self.assertEqual(hits[0]["ranks"], {"fts": None, "vector": 1})
        self.assertTrue(all(hit["ranks"]["fts"] is None for hit in hits))
        self.assertEqual(len({hit["path"] for hit in hits}), len(hits))  # one hit per note

    def test_hybrid_mode(self) -> None:
        result = self.fx.search("flour water salt yeast", k=3)
        self.assertEqual((result["mode"], result["degraded"]), ("hybrid", False))
        hits = result["hits"]
        self.assertEqual(len(hits), 3)
        self.assertEqual((hits[0]["path"], hits[0]["ranks"]), (BREAD, {"fts": 1, "vector": 1}))
        self.assertEqual(hits[0]["score"], round(2 / (RRF_K + 1), 6))
        scores = [hit["score"] for hit in hits]
        self.assertEqual(scores, sorted(scores, reverse=True))

    def test_k(self) -> None:
        self.assertEqual(len(self.fx.search("the", k=1)["hits"]), 1)
        self.assertEqual(len(self.fx.search("회의", k=1, mode="fts")["hits"]), 1)

    def test_degraded_while_the_model_is_not_loaded(self) -> None:
        fts = self.fx.paths("index", mode="fts")
        self.fx.embedder.close()
        self.assertFalse(self.fx.embedder.loaded)
        result = self.fx.search("index")
        self.assertTrue(result["degraded"])
        self.assertEqual([hit["path"] for hit in result["hits"]], fts)
        self.assertTrue(all(hit["ranks"]["vector"] is None for hit in result["hits"]))
        # The degraded search started loading the model (inline here).
        self.assertTrue(self.fx.embedder.loaded)
        self.assertFalse(self.fx.search("index")["degraded"])

    def test_degraded_while_the_embedder_indexes(self) -> None:
        fts = self.fx.paths("index", mode="fts")
        calls = self.fx.embedder.calls
        self.fx.index._embedding.indexing_embeds = 1  # as while a batch is embedded
        result = self.fx.search("index")
        self.assertTrue(result["degraded"])
        self.assertEqual([hit["path"] for hit in result["hits"]], fts)
        self.assertEqual(self.fx.embedder.calls, calls)  # the query was not embedded
        self.fx.index._embedding.indexing_embeds = 0
        self.assertFalse(self.fx.search("index")["degraded"])


@implementer(IEmbedder)
class BrokenEmbedder(HashingEmbedder):
    """An embedder whose model never loads."""

    def load(self) -> None:
        raise EmbedderUnavailable("no model in this folder")


class BrokenModelTests(SearchCase):
    embedder = None

    def setUp(self) -> None:
        self.embedder = BrokenEmbedder()
        super().setUp()

    def test_index_without_vectors(self) -> None:
        self.assertEqual(self.fx.vectors.live_count, 0)
        notes = self.fx.recorder.notes
        # "vectors skipped: ..." (one model) or "vectors of <model> skipped: ...".
        self.assertTrue(any(level == "warn" and message.startswith("vectors ")
                            and "skipped: no model" in message
                            for level, message, _ in notes), notes)

    def test_hybrid_answers_from_full_text(self) -> None:
        result = self.fx.search("회의")
        self.assertTrue(result["degraded"])
        self.assertEqual(sorted(hit["path"] for hit in result["hits"]),
                         sorted([MEETING, MINUTES]))
        self.assertEqual(len(self.flushLoggedErrors(EmbedderUnavailable)), 1)


class FusionTests(SynchronousTestCase):
    def test_high_in_both_beats_high_in_one(self) -> None:
        fts = {1: (1, 10), 2: (2, 20), 3: (3, 30)}
        vector = {2: (1, 21), 4: (2, 40), 1: (9, 11)}
        fused = fuse([fts, vector], 10)
        self.assertEqual([note for note, _ in fused], [2, 1, 4, 3])
        scores = dict(fused)
        self.assertAlmostEqual(scores[2], 1 / (RRF_K + 2) + 1 / (RRF_K + 1))
        self.assertAlmostEqual(scores[3], 1 / (RRF_K + 3))
        self.assertEqual([note for note, _ in fuse([fts, vector], 2)], [2, 1])

    def test_ties_are_broken_by_note_id(self) -> None:
        self.assertEqual(fuse([{7: (1, 70)}, {5: (1, 50)}], 10),
                         [(5, 1 / (RRF_K + 1)), (7, 1 / (RRF_K + 1))])

    def test_one_side_empty(self) -> None:
        self.assertEqual([n for n, _ in fuse([{}, {3: (1, 30), 4: (2, 40)}], 10)], [3, 4])
        self.assertEqual(fuse([{}, {}], 10), [])
        self.assertEqual(fuse([], 10), [])

    def test_more_than_two_rankings(self) -> None:
        # Full text and two models' vectors: a note in all three lists wins.
        fts = {1: (1, 10), 2: (2, 20)}
        first_model = {3: (1, 30), 2: (3, 21)}
        second_model = {2: (1, 22), 3: (2, 31), 4: (3, 40)}
        fused = fuse([fts, first_model, second_model], 10)
        self.assertEqual([note for note, _ in fused], [2, 3, 1, 4])
        self.assertAlmostEqual(dict(fused)[2],
                               1 / (RRF_K + 2) + 1 / (RRF_K + 3) + 1 / (RRF_K + 1))

    def test_best_per_note(self) -> None:
        ranked = [(101, 1), (102, 2), (103, 1), (104, 3), (105, 2)]
        self.assertEqual(best_per_note(ranked), {1: (1, 101), 2: (2, 102), 3: (3, 104)})
        self.assertEqual(best_per_note([]), {})


class SearchAPITests(SearchCase):
    def setUp(self) -> None:
        super().setUp()
        self.api = APIClient(self, self.fx.clock, index=self.fx.index)

    def get(self, **params: Any) -> tuple[int, Any]:
        return self.api.call("GET", "/search", params=params)

    def test_search(self) -> None:
        status, body = self.get(q="회의록", mode="fts")
        self.assertEqual(status, 200)
        self.assertEqual((body["query"], body["mode"], body["degraded"]),
                         ("회의록", "fts", False))
        [hit] = body["hits"]
        self.assertEqual(hit["path"], MINUTES)
        for key in ("path", "title", "heading", "snippet", "highlights", "score", "ranks",
                    "date", "tags", "chunk_id"):
            self.assertIn(key, hit)
        status, body = self.get(q="flour", k="1", tag="#cooking", date_from="2024-01-01",
                                date_to="2024-12-31", path_prefix="recipes/")
        self.assertEqual((status, body["hits"]), (200, []))
        status, body = self.get(q="x" * MAX_QUERY_CHARS, mode="hybrid")
        self.assertEqual(status, 200)

    def test_bad_queries(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [({"q": ""}, "q"), ({"q": "   "}, "q"), ({}, "q"),
                 ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "q"),
                 ({"q": "a", "k": "0"}, "k"), ({"q": "a", "k": "101"}, "k"),
                 ({"q": "a", "k": "ten"}, "k"), ({"q": "a", "k": "-1"}, "k"),
                 ({"q": "a", "k": "²"}, "k"), ({"q": "a", "k": "1.5"}, "k"),
                 ({"q": "a", "mode": "semantic"}, "mode"),
                 ({"q": "a", "date_from": "2024-5-1"}, "date_from"),
                 ({"q": "a", "date_to": "yesterday"}, "date_to"),
                 ({"q": "a", "date_to": "2024-02-30"}, "date_to"),
                 ({"q": "a", "limit": "5"}, "limit"),
                 ({"q": ["a", "b"]}, "q")]
        for params, field in cases:
            error = self.api.error(self.get(**params), 400, "invalid_query")
            self.assertEqual(error["details"]["field"], field, params)

    def test_index_status(self) -> None:
        status, body = self.api.call("GET", "/index/status")
        self.assertEqual(status, 200)
        for key in ("notes", "chunks", "vectors", "stale_notes", "hnsw_live", "model_id",
                    "model_loaded", "last_update"):
            self.assertIn(key, body)
        self.assertEqual((body["notes"], body["chunks"], body["vectors"], body["stale_notes"]),
                         (len(NOTES), len(NOTES), len(NOTES), 0))
        self.assertEqual((body["hnsw_live"], body["model_id"], body["model_loaded"]),
                         (len(NOTES), "hashing-64", True))
        self.assertEqual(body["last_update"], "2024-05-01T12:00:00Z")

    def test_routes_answer_404_without_an_index(self) -> None:
        api = APIClient(self, self.fx.clock)
        api.error(api.call("GET", "/search", params={"q": "a"}), 404, "not_found")
        api.error(api.call("GET", "/index/status"), 404, "not_found")
