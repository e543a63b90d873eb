"""Search quality on the hand-written vault: nDCG@10 and recall@10 per mode, and the fusion.

    uv run --frozen python bench/search_quality.py [--k 10]

1. The real daemon (bench/_daemon_with_noop.py, its own process) on a fresh data
   folder with vault_path = bench/data/vault: C{vault.scan}, then the
   C{index.update} it queues (full text, then the bundled all-MiniLM-L6-v2 in
   the embedding worker).
2. Every query of bench/data/queries.json in each mode, C{GET /search?k=10&mode=}
   fts, vector and hybrid: nDCG@10 (graded: gain 2^rel - 1) and recall@10 (of the
   notes labelled 1 or 2), overall, for English and Korean queries, and per kind
   (exact, paraphrase, particle, mixed, cross). fts and vector alone are the
   baselines of hybrid: the ratio hybrid / max(fts, vector) is printed.
3. Fusion, offline on the candidate lists hybrid uses (the FTS query's top 50
   chunks with their BM25 scores, from C{fts_scored} as C{fts_ranked}; the 50 chunks
   nearest the query vector, exact cosine over the stored vectors, the query
   embedded by enttok's C{SubprocessEmbedder}; best chunk per note): reciprocal
   rank fusion as C{enttok.index.search.fuse} does, against convex combinations
   C{alpha * norm(bm25) + (1 - alpha) * cosine} with the BM25 side normalised by
   min-max of the query's scores or by rank (C{1 - (rank - 1) / n}); a note
   missing from a list gets 0 from it. The alphas are tuned on the same queries,
   so the best convex row is optimistic. One more row: RRF when the FTS list has
   only chunks with every query term (no any-term fallback, which for a
   sentence-like query matches on words such as "with" or "the").

Also checks the labels: the terms of each paraphrase query that the full-text
index finds in its target (there should be none but stop words).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench._benchutil import REPO, install_cleanup, scratch_dir
from bench._indexutil import db_path, load_average, read_only, vault_daemon

QUERIES = REPO / "bench" / "data" / "queries.json"
MODES = ("fts", "vector", "hybrid")
ALPHAS = (0.1, 0.3, 0.5, 0.7, 0.9)

Ranking = list[str]
Labels = dict[str, int]


# Metrics


def ndcg(ranked: Sequence[str], labels: Labels, k: int) -> float:
    gains = [2 ** labels.get(path, 0) - 1 for path in ranked[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted((2 ** r - 1 for r in labels.values()), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def recall(ranked: Sequence[str], labels: Labels, k: int) -> float:
    relevant = {p for p, r in labels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


class Scores:
    """Per-query metrics of one ranking method."""

    def __init__(self, queries: list[dict[str, Any]], rankings: list[Ranking], k: int) -> None:
        self.queries = queries
        self.ndcg = [ndcg(r, q["relevant"], k) for q, r in zip(queries, rankings, strict=True)]
        self.recall = [recall(r, q["relevant"], k)
                       for q, r in zip(queries, rankings, strict=True)]

    def where(self, values: list[float], keep: Callable[[dict[str, Any]], bool]) -> float:
        return mean([v for q, v in zip(self.queries, values, strict=True) if keep(q)])

    def row(self) -> str:
        cells = []
        for metric in (self.ndcg, self.recall):
            cells += [self.where(metric, lambda q: True),
                      self.where(metric, lambda q: q["lang"] == "en"),
                      self.where(metric, lambda q: q["lang"] == "ko")]
        return "  ".join(f"{c:6.3f}" for c in cells)


HEADER = ("                          nDCG@10: all     en     ko   recall@10: all     en     ko")


# Indexing and searching through the daemon


def search_all(d: Any, queries: list[dict[str, Any]], k: int) -> dict[str, list[Ranking]]:
    out: dict[str, list[Ranking]] = {mode: [] for mode in MODES}
    for q in queries:
        for mode in MODES:
            answer = d.request("GET", "/search?" + urllib.parse.urlencode(
                {"q": q["q"], "k": k, "mode": mode}))
            if answer.get("degraded"):
                raise RuntimeError(f"degraded answer for {q['id']} ({mode}): model not loaded")
            out[mode].append([hit["path"] for hit in answer["hits"]])
    return out


# Offline candidate lists and fusion


def fts_candidates(conn: Any, text: str, depth: int,
                   fallback: bool = True) -> list[tuple[int, int, float]]:
    """
    (chunk id, note id, bm25) in fts_ranked's order (lower bm25 is better).

    @param fallback: when no chunk has every term, take chunks with any term (as the
        daemon does); C{False}: return nothing then.
    """
    from enttok.index.search import SearchQuery, fts_scored
    from enttok.index.text import query_terms

    terms = query_terms(text)
    if not terms:
        return []
    return fts_scored(conn, SearchQuery(q=text), terms, depth, fallback)


def vector_candidates(matrix: Any, ids: list[tuple[int, int]], query: Any,
                      depth: int) -> list[tuple[int, int, float]]:
    """(chunk id, note id, cosine) of the C{depth} nearest chunks, nearest first."""
    import numpy as np

    cosine = matrix @ query
    order = np.argsort(-cosine, kind="stable")[:depth]
    return [(ids[i][0], ids[i][1], float(cosine[i])) for i in order]


def best_per_note(rows: list[tuple[int, int, float]]) -> dict[int, tuple[int, float]]:
    """note id -> (rank from 1, score of its best chunk), from chunk rows in order."""
    notes: dict[int, tuple[int, float]] = {}
    for _, note_id, score in rows:
        if note_id not in notes:
            notes[note_id] = (len(notes) + 1, score)
    return notes


def rrf(fts: dict[int, tuple[int, float]], vec: dict[int, tuple[int, float]],
        k: int) -> list[int]:
    from enttok.index.search import fuse

    fused = fuse({n: (r, 0) for n, (r, _) in fts.items()},
                 {n: (r, 0) for n, (r, _) in vec.items()}, k)
    return [note_id for note_id, _ in fused]


def convex(fts: dict[int, tuple[int, float]], vec: dict[int, tuple[int, float]], k: int,
           alpha: float, by_rank: bool) -> list[int]:
    if by_rank:
        n = len(fts)
        lexical = {note: 1.0 - (rank - 1) / n for note, (rank, _) in fts.items()}
    else:
        raw = {note: -score for note, (_, score) in fts.items()}  # bm25(): lower is better
        low, high = min(raw.values(), default=0.0), max(raw.values(), default=0.0)
        lexical = {note: (s - low) / (high - low) if high > low else 1.0
                   for note, s in raw.items()}
    notes = set(fts) | set(vec)
    combined = {note: alpha * lexical.get(note, 0.0)
                + (1 - alpha) * (vec[note][1] if note in vec else 0.0) for note in notes}
    return sorted(notes, key=lambda note: (-combined[note], note))[:k]


def fusion_study(data_dir: Path, queries: list[dict[str, Any]], k: int,
                 hybrid: list[Ranking]) -> list[tuple[str, list[Ranking]]]:
    import numpy as np

    from enttok.index.embedder import DEFAULT_MODEL_ID, SubprocessEmbedder
    from enttok.index.search import DEPTH

    depth = max(k * DEPTH, 50)
    conn = read_only(db_path(data_dir))
    try:
        paths = dict(conn.execute("select note_id, path from notes").fetchall())
        rows = conn.execute(
            "select c.chunk_id, c.note_id, e.vector from chunks c join embeddings e on "
            "e.content_hash = c.content_hash and e.model_id = ? order by c.chunk_id",
            (DEFAULT_MODEL_ID,)).fetchall()
        ids = [(r[0], r[1]) for r in rows]
        matrix = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        embedder = SubprocessEmbedder()
        try:
            started = time.perf_counter()
            vectors = embedder.embed([q["q"] for q in queries])
            print(f"  ({len(queries)} queries embedded by SubprocessEmbedder in "
                  f"{time.perf_counter() - started:.0f} s, model load included)")
        finally:
            embedder.close()
        lists = [(best_per_note(fts_candidates(conn, q["q"], depth)),
                  best_per_note(vector_candidates(matrix, ids, vectors[i], depth)),
                  best_per_note(fts_candidates(conn, q["q"], depth, fallback=False)))
                 for i, q in enumerate(queries)]
    finally:
        conn.close()

    def named(rank: Callable[[dict[int, Any], dict[int, Any]], list[int]],
              fallback: bool = True) -> list[Ranking]:
        return [[paths[n] for n in rank(f if fallback else strict, v)]
                for f, v, strict in lists]

    methods = [("fts alone (same lists)", named(lambda f, v: list(f)[:k])),
               ("vector alone (exact)", named(lambda f, v: list(v)[:k])),
               ("RRF k=60 (offline)", named(lambda f, v: rrf(f, v, k))),
               ("RRF, FTS all-terms only", named(lambda f, v: rrf(f, v, k), False))]
    same = sum(a == b for a, b in zip(methods[2][1], hybrid, strict=True))
    print(f"  offline RRF top-{k} equals the daemon's hybrid answer for {same}/{len(queries)} "
          f"queries (hnswlib is approximate; ties may order differently)")
    for by_rank in (False, True):
        for alpha in ALPHAS:
            label = f"convex {'rank' if by_rank else 'minmax'} a={alpha:.1f}"
            methods.append((label, named(
                lambda f, v, a=alpha, r=by_rank: convex(f, v, k, a, r))))
    return methods


# Label check


def paraphrase_overlap(data_dir: Path, queries: list[dict[str, Any]]) -> list[str]:
    """For paraphrase queries: the non-stop-word terms the FTS index finds in a target."""
    from enttok.index.text import STOP_WORDS, fts_query, query_terms

    conn = read_only(db_path(data_dir))
    problems = []
    try:
        for q in queries:
            if q["kind"] != "paraphrase":
                continue
            targets = [p for p, r in q["relevant"].items() if r == 2]
            for term in query_terms(q["q"]):
                if term in STOP_WORDS:
                    continue
                hits = conn.execute(
                    "select distinct n.path from chunk_fts f join chunks c on c.chunk_id = "
                    "f.rowid join notes n on n.note_id = c.note_id where chunk_fts match ?",
                    (fts_query([term]),)).fetchall()
                found = [h[0] for h in hits if h[0] in targets]
                if found:
                    problems.append(f"{q['id']}: {term!r} occurs in {found}")
    finally:
        conn.close()
    return problems


# Report


def report(queries: list[dict[str, Any]], results: dict[str, list[Ranking]], k: int) -> None:
    scores = {mode: Scores(queries, results[mode], k) for mode in MODES}
    print(f"\nper mode ({len(queries)} queries: "
          f"{sum(q['lang'] == 'en' for q in queries)} English, "
          f"{sum(q['lang'] == 'ko' for q in queries)} Korean)")
    print(HEADER)
    for mode in MODES:
        print(f"  daemon {mode:17}  {scores[mode].row()}")
    kinds = sorted({q["kind"] for q in queries})
    print("\nnDCG@10 per kind (n):   " + "  ".join(f"{m:>7}" for m in MODES) + "   best")
    for kind in kinds:
        n = sum(q["kind"] == kind for q in queries)
        values = {m: scores[m].where(scores[m].ndcg, lambda q, kd=kind: q["kind"] == kd)
                  for m in MODES}
        best = max(MODES, key=lambda m: values[m])
        print(f"  {kind:12} ({n:2})     " + "  ".join(f"{values[m]:7.3f}" for m in MODES)
              + f"   {best}")
    print("\nper query nDCG@10 (fts / vector / hybrid):")
    for i, q in enumerate(queries):
        cells = " / ".join(f"{scores[m].ndcg[i]:.2f}" for m in MODES)
        print(f"  {q['id']:16} {cells}   {q['q']}")
    for name, keep in (("all", lambda q: True), ("en", lambda q: q["lang"] == "en"),
                       ("ko", lambda q: q["lang"] == "ko")):
        value = {m: scores[m].where(scores[m].ndcg, keep) for m in MODES}
        base = max(value["fts"], value["vector"])
        print(f"hybrid >= max(fts, vector) on nDCG@10 [{name}]: "
              f"{value['hybrid']:.3f} vs {base:.3f} (ratio {value['hybrid'] / base:.3f}): "
              f"{'YES' if value['hybrid'] >= base else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10, help="cut-off (default 10)")
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="bound on indexing (default 3600 s)")
    args = parser.parse_args(argv)
    install_cleanup()
    spec = json.loads(args.queries.read_text(encoding="utf-8"))
    vault = (REPO / spec["vault"]).resolve()
    queries = spec["queries"]
    notes = sum(1 for _ in vault.rglob("*.md"))
    print(f"search_quality: {len(queries)} queries on {vault} ({notes} notes), k={args.k}, "
          f"{os.cpu_count()} CPUs, {load_average()}")
    data = scratch_dir("enttok-bench-quality-")
    with vault_daemon(data, vault) as d:
        started = time.perf_counter()
        scan, update = d.scan_and_update(args.timeout, report_every=60.0)
        print(f"indexed in {time.perf_counter() - started:.0f} s: scan {json.dumps(scan)}; "
              f"update {json.dumps(update)}")
        started = time.perf_counter()
        results = search_all(d, queries, args.k)
        print(f"{len(queries) * len(MODES)} searches in {time.perf_counter() - started:.1f} s")
    report(queries, results, args.k)

    print(f"\nfusion on the same candidate lists ({load_average()}):")
    methods = fusion_study(data, queries, args.k, results["hybrid"])
    print(HEADER)
    rows = [(name, Scores(queries, ranked, args.k)) for name, ranked in methods]
    for name, scores in rows:
        print(f"  {name:24} {scores.row()}")
    rrf_score = mean(rows[2][1].ndcg)
    best_name, best = max(((n, mean(s.ndcg)) for n, s in rows[4:]), key=lambda x: x[1])
    print(f"RRF vs the best convex combination (alpha tuned on these same queries): "
          f"{rrf_score:.3f} vs {best:.3f} ({best_name}); ratio RRF / best = "
          f"{rrf_score / best:.3f}")

    strict = rows[3][1]
    for name, keep in (("all", lambda q: True), ("en", lambda q: q["lang"] == "en"),
                       ("ko", lambda q: q["lang"] == "ko")):
        value = strict.where(strict.ndcg, keep)
        base = max(rows[0][1].where(rows[0][1].ndcg, keep),
                   rows[1][1].where(rows[1][1].ndcg, keep))
        print(f"RRF with FTS all-terms only >= max(fts, vector) [{name}]: {value:.3f} vs "
              f"{base:.3f}: {'YES' if value >= base else 'NO'}")

    problems = paraphrase_overlap(data, queries)
    print(f"\nlabel check: paraphrase queries whose non-stop-word terms occur in their target: "
          f"{len(problems)}")
    for line in problems:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
