"""Search quality on the hand-written vault: nDCG@10, recall@10 and MRR per mode and language.

    uv run --frozen python bench/search_quality.py [--embedding-model ID] [--json OUT]
    uv run --frozen python bench/search_quality.py --check-labels

1. The real daemon (bench/_daemon_with_noop.py, its own process) on a fresh data
   folder with vault_path = bench/data/vault and, with C{--embedding-model}, that
   C{embedding_model} setting (a model id, ids joined by "+", or an absolute
   path): C{vault.scan}, then the C{index.update} it queues.
2. Every query of bench/data/queries.json in each mode, C{GET /search?k=10&mode=}
   fts, vector and hybrid. Metrics: nDCG@10 (graded: gain 2^rel - 1), recall@10
   (of the notes labelled 1 or 2) and MRR (1 / rank of the first note labelled 2,
   the answer; 0 when none is in the top k). Groups: English and Korean (queries
   in that language, cross-language ones excluded), Korean->English and
   English->Korean (kind "cross", by the query's language), all. One table for
   the queries of split "report", one for split "tune": weights and routing are
   tuned on "tune" and quoted on "report". fts and vector alone are the
   baselines of hybrid: "hybrid >= max(fts, vector)" is printed per group.
3. Fusion, offline on the candidate lists hybrid uses (the FTS query's top 50
   notes with their BM25 scores, from C{fts_scored}, all terms required as hybrid
   does; the 50 notes nearest the query vector, exact cosine over the stored
   vectors of each model, the query embedded by
   C{enttok.index.models.make_embedder}): reciprocal rank fusion of the FTS list
   and each model's list, as C{enttok.index.search.fuse} does, against convex
   combinations C{alpha * norm(bm25) + (1 - alpha) * cosine} (several models:
   their mean cosine) with the BM25 side normalised by min-max of the query's
   scores or by rank (C{1 - (rank - 1) / n}); a note missing from a list gets 0
   from it. With two or three models, routing by script: RRF of the FTS list and
   one subset of the models for queries with Hangul, another for the rest (with
   two models, also the second model's list at a weight below 1). One
   more row: RRF with the any-term fallback in the FTS list (as mode=fts has it).
   The best convex combination and the best routing are chosen on the tune half
   (by the mean nDCG@10 of the four language groups) and quoted on the report half.
4. Label check: a paraphrase or cross query must not share its content with its
   answers (the notes labelled 2): no English term outside the stop words that
   the full-text index finds in an answer, and no Hangul character bigram
   (bar a few particle and ending bigrams, L{FUNCTION_BIGRAMS}) found there.
   C{--check-labels} runs this check alone, on an index built in memory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sqlite3
import statistics
import sys
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench._benchutil import REPO, install_cleanup, scratch_dir
from bench._indexutil import db_path, load_average, read_only, vault_daemon

QUERIES = REPO / "bench" / "data" / "queries.json"
MODES = ("fts", "vector", "hybrid")
ALPHAS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Weights of the second model's list in the weighted routes.
SECOND_WEIGHTS = (0.25, 0.5)
METRICS = ("ndcg", "recall", "mrr")
SPLITS = ("report", "tune")
KINDS = ("exact", "paraphrase", "particle", "mixed", "cross")
RRF_K = 60
#: Hangul bigrams of particles and endings, not content: a query may share them.
FUNCTION_BIGRAMS = frozenset({"에서", "으로", "에게", "하는", "위한", "있는", "한다", "했다",
                              "에는", "까지", "부터", "하고", "이다"})
HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
#: A run of CJK characters (the ranges enttok.index.text indexes as bigrams).
CJK_RUN = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf"
                     "\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]+")

Query = dict[str, Any]
Ranking = list[str]
Labels = dict[str, int]
Keep = Callable[[Query], bool]

GROUPS: tuple[tuple[str, Keep], ...] = (
    ("English", lambda q: q["lang"] == "en" and q["kind"] != "cross"),
    ("Korean", lambda q: q["lang"] == "ko" and q["kind"] != "cross"),
    ("Korean->English", lambda q: q["lang"] == "ko" and q["kind"] == "cross"),
    ("English->Korean", lambda q: q["lang"] == "en" and q["kind"] == "cross"),
    ("all", lambda q: True),
)


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


def reciprocal_rank(ranked: Sequence[str], labels: Labels, k: int) -> float:
    """1 / the rank of the first answer (a note labelled 2) in the top C{k}, else 0."""
    for i, path in enumerate(ranked[:k]):
        if labels.get(path, 0) == 2:
            return 1.0 / (i + 1)
    return 0.0


def mean(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.fmean(found) if found else float("nan")


class Scores:
    """Per-query metrics of one ranking method."""

    def __init__(self, queries: list[Query], rankings: list[Ranking], k: int) -> None:
        self.queries = queries
        pairs = list(zip(queries, rankings, strict=True))
        self.values = {
            "ndcg": [ndcg(r, q["relevant"], k) for q, r in pairs],
            "recall": [recall(r, q["relevant"], k) for q, r in pairs],
            "mrr": [reciprocal_rank(r, q["relevant"], k) for q, r in pairs],
        }

    def mean(self, metric: str, keep: Keep) -> float:
        return mean(v for q, v in zip(self.queries, self.values[metric], strict=True)
                    if keep(q))

    def summary(self, keep: Keep) -> dict[str, float]:
        return {metric: self.mean(metric, keep) for metric in METRICS}


def in_split(split: str, keep: Keep) -> Keep:
    return lambda q: q["split"] == split and keep(q)


def summarise(queries: list[Query], scores: dict[str, Scores]) -> dict[str, Any]:
    """split -> group -> {n, method -> {metric -> mean}}."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        out[split] = {}
        for group, keep in GROUPS:
            chosen = in_split(split, keep)
            cell: dict[str, Any] = {"n": sum(1 for q in queries if chosen(q))}
            cell.update({name: s.summary(chosen) for name, s in scores.items()})
            out[split][group] = cell
    return out


# Indexing and searching through the daemon


def search_all(d: Any, queries: list[Query], k: int) -> dict[str, list[Ranking]]:
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

NoteList = dict[int, tuple[int, float]]
#: An offline ranking method: name, family ("base", "convex", "route"), rankings.
Method = tuple[str, str, list[Ranking]]


def fts_candidates(conn: Any, text: str, depth: int,
                   fallback: bool = True) -> list[tuple[int, int, float]]:
    """
    (best chunk id, note id, bm25) of the first C{depth} notes, best first (lower
    bm25 is better).

    @param fallback: when no chunk has every term, take chunks with any term (as
        mode=fts does); C{False}: return nothing then (as hybrid does).
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


def best_per_note(rows: list[tuple[int, int, float]]) -> NoteList:
    """note id -> (rank from 1, score of its best chunk), from chunk rows in order."""
    notes: NoteList = {}
    for _, note_id, score in rows:
        if note_id not in notes:
            notes[note_id] = (len(notes) + 1, score)
    return notes


def rrf(lists: Sequence[NoteList], k: int, weights: Sequence[float] | None = None) -> list[int]:
    """
    Reciprocal rank fusion (k = 60) of note lists, as C{enttok.index.search.fuse};
    with C{weights}, list i counts C{weights[i] / (60 + rank)}.
    """
    scores: dict[int, float] = {}
    for i, ranking in enumerate(lists):
        weight = 1.0 if weights is None else weights[i]
        for note, (rank, _) in ranking.items():
            scores[note] = scores.get(note, 0.0) + weight / (RRF_K + rank)
    return sorted(scores, key=lambda note: (-scores[note], note))[:k]


def merge_models(lists: list[NoteList]) -> NoteList:
    """One vector list from several models': RRF order, mean cosine (0 where missing)."""
    if len(lists) == 1:
        return lists[0]
    order = rrf(lists, sum(len(ls) for ls in lists))
    return {n: (i + 1, mean(ls[n][1] if n in ls else 0.0 for ls in lists))
            for i, n in enumerate(order)}


def convex(fts: NoteList, vec: NoteList, k: int, alpha: float, by_rank: bool) -> list[int]:
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


def model_names(setting: str | None) -> tuple[str, ...]:
    """The models an C{embedding_model} value names (unset: the default models)."""
    from enttok.index.models import DEFAULT_MODELS

    if not setting:
        return tuple(DEFAULT_MODELS)
    if os.path.isabs(setting):
        return (setting,)
    return tuple(part.strip() for part in setting.split("+"))


def model_vectors(conn: sqlite3.Connection, name: str, queries: list[Query]
                  ) -> tuple[list[tuple[int, int]], Any, Any]:
    """Chunk ids, the stored vectors of model C{name} and its query vectors."""
    import numpy as np

    from enttok.index.models import make_embedder

    embedder = make_embedder(name)
    try:
        rows = conn.execute(
            "select c.chunk_id, c.note_id, e.vector from chunks c join embeddings e on "
            "e.content_hash = c.content_hash and e.model_id = ? order by c.chunk_id",
            (embedder.model_id,)).fetchall()
        if not rows:
            stored = [r[0] for r in conn.execute("select distinct model_id from embeddings")]
            raise RuntimeError(f"no vectors stored for {embedder.model_id!r} ({name}); "
                               f"stored: {stored}")
        started = time.perf_counter()
        vectors = embedder.embed([q["q"] for q in queries])
        print(f"  ({len(queries)} queries embedded by {name} in "
              f"{time.perf_counter() - started:.0f} s, model load included)")
    finally:
        embedder.close()
    matrix = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
    return [(r[0], r[1]) for r in rows], matrix, vectors


def fusion_study(data_dir: Path, queries: list[Query], k: int, hybrid: list[Ranking],
                 setting: str | None) -> list[Method]:
    """The offline methods: (name, family, one ranking per query)."""
    from enttok.index.search import DEPTH

    depth = max(k * DEPTH, 50)
    names = model_names(setting)
    conn = read_only(db_path(data_dir))
    try:
        paths = dict(conn.execute("select note_id, path from notes").fetchall())
        per_model = [model_vectors(conn, name, queries) for name in names]
        # Per query: FTS with the any-term fallback (mode=fts), FTS all terms only
        # (what hybrid fuses), one vector list per model.
        lists = [(best_per_note(fts_candidates(conn, q["q"], depth)),
                  best_per_note(fts_candidates(conn, q["q"], depth, fallback=False)),
                  [best_per_note(vector_candidates(matrix, ids, vectors[i], depth))
                   for ids, matrix, vectors in per_model])
                 for i, q in enumerate(queries)]
    finally:
        conn.close()

    def named(rank: Callable[[NoteList, NoteList, list[NoteList]], list[int]]
              ) -> list[Ranking]:
        return [[paths[n] for n in rank(f, strict, vs)] for f, strict, vs in lists]

    methods = [("fts alone (same lists)", "base", named(lambda f, s, vs: list(f)[:k])),
               ("vector alone (exact)", "base", named(lambda f, s, vs: rrf(vs, k))),
               ("RRF k=60, FTS all terms", "base", named(lambda f, s, vs: rrf([s, *vs], k))),
               ("RRF k=60, FTS any term", "base", named(lambda f, s, vs: rrf([f, *vs], k)))]
    same = sum(a == b for a, b in zip(methods[2][2], hybrid, strict=True))
    print(f"  offline RRF (FTS all terms) top-{k} equals the daemon's hybrid answer for "
          f"{same}/{len(queries)} queries (hnswlib is approximate; ties may order differently)")
    for by_rank in (False, True):
        for alpha in ALPHAS:
            def combine(f: NoteList, s: NoteList, vs: list[NoteList], a: float = alpha,
                        r: bool = by_rank) -> list[int]:
                return convex(s, merge_models(vs), k, a, r)
            label = f"convex {'rank' if by_rank else 'minmax'} a={alpha:.1f}"
            methods.append((label, "convex", named(combine)))
    return methods + routed(names, queries, lists, paths, k)


def routed(names: Sequence[str], queries: list[Query],
           lists: list[tuple[NoteList, NoteList, list[NoteList]]], paths: dict[int, str],
           k: int) -> list[Method]:
    """
    Routing by script with several models (called A, B, C in the labels): RRF of
    the FTS list (all terms) and the lists of one subset of the models for queries
    with Hangul, another for the rest; and, for two models, the rest with one
    model's list at weight 1 and the other's at L{SECOND_WEIGHTS}.
    """
    if len(names) < 2 or len(names) > 3:
        return []
    letters = "ABC"
    print("  models in the route rows: " + ", ".join(
        f"{letters[i]} = {name}" for i, name in enumerate(names)))
    subsets = [c for size in range(1, len(names) + 1)
               for c in itertools.combinations(range(len(names)), size)]
    # (label, models for Hangul queries, models and weights for the others)
    routes: list[tuple[str, Sequence[int], Sequence[int], Sequence[float]]] = []
    for hangul in subsets:
        for other in subsets:
            routes.append((f"route: Hangul {'+'.join(letters[i] for i in hangul)}, else "
                           f"{'+'.join(letters[i] for i in other)}", hangul, other,
                           [1.0] * len(other)))
    if len(names) == 2:
        for first, second in ((0, 1), (1, 0)):
            for weight in SECOND_WEIGHTS:
                routes.append((f"route: Hangul {letters[first]}, else {letters[first]}"
                               f"+{weight}*{letters[second]}", [first], [first, second],
                               [1.0, weight]))
    methods: list[Method] = []
    for label, for_hangul, for_other, weights in routes:
        rankings = []
        for q, (_, strict, vs) in zip(queries, lists, strict=True):
            chosen: Sequence[int]
            chosen_weights: Sequence[float]
            if HANGUL.search(q["q"]):
                chosen, chosen_weights = for_hangul, [1.0] * len(for_hangul)
            else:
                chosen, chosen_weights = for_other, weights
            rankings.append([paths[n] for n in rrf(
                [strict, *(vs[i] for i in chosen)], k, [1.0, *chosen_weights])])
        methods.append((label, "route", rankings))
    return methods


# Label check


def label_problems(queries: list[Query], containing: Callable[[str], set[str]]) -> list[str]:
    """
    For paraphrase and cross queries: the content they share with their answers.

    @param containing: the paths of the notes an FTS5 MATCH expression finds.
    """
    from enttok.index.text import STOP_WORDS, bigrams, fts_query, query_terms

    problems = []
    for q in queries:
        if q["kind"] not in ("paraphrase", "cross"):
            continue
        answers = {p for p, r in q["relevant"].items() if r == 2}
        for term in query_terms(q["q"]):
            if term in STOP_WORDS:
                continue
            if CJK_RUN.fullmatch(term):
                probes = [(b, '"' + b + '"') for b in bigrams(term)
                          if len(b) == 2 and b not in FUNCTION_BIGRAMS]
            else:
                probes = [(term, fts_query([term]))]
            for shown, expression in probes:
                found = sorted(containing(expression) & answers)
                if found:
                    problems.append(f"{q['id']}: {shown!r} occurs in {found}")
    return problems


def daemon_containing(conn: sqlite3.Connection) -> Callable[[str], set[str]]:
    """L{label_problems}' matcher on the daemon's full-text index."""
    def containing(expression: str) -> set[str]:
        return {row[0] for row in conn.execute(
            "select distinct n.path from chunk_fts f join chunks c on c.chunk_id = f.rowid "
            "join notes n on n.note_id = c.note_id where chunk_fts match ?", (expression,))}
    return containing


def memory_containing(vault: Path) -> Callable[[str], set[str]]:
    """L{label_problems}' matcher on an in-memory index of the notes (title and text)."""
    from enttok.index.text import fts_text

    conn = sqlite3.connect(":memory:")
    conn.execute("create virtual table notes using fts5(path unindexed, body, "
                 "tokenize = 'porter unicode61 remove_diacritics 2')")
    for note in sorted(vault.rglob("*.md")):
        path = unicodedata.normalize("NFC", note.relative_to(vault).as_posix())
        conn.execute("insert into notes values (?, ?)", (
            path, fts_text(note.stem + "\n" + note.read_text(encoding="utf-8"))))

    def containing(expression: str) -> set[str]:
        return {row[0] for row in conn.execute(
            "select path from notes where notes match ?", (expression,))}
    return containing


def check_spec(spec: dict[str, Any], vault: Path) -> list[str]:
    """
    What is wrong with the query file apart from shared content: ids, languages,
    kinds, paths, answers, and splits that are not halves of each (lang, kind).
    """
    problems = []
    notes = {unicodedata.normalize("NFC", p.relative_to(vault).as_posix())
             for p in vault.rglob("*.md")}
    seen: set[str] = set()
    halves: dict[tuple[str, str], list[int]] = {}
    for q in spec["queries"]:
        if q["id"] in seen:
            problems.append(f"{q['id']}: id used twice")
        seen.add(q["id"])
        if q["lang"] not in ("en", "ko") or q["kind"] not in KINDS:
            problems.append(f"{q['id']}: lang {q['lang']!r} or kind {q['kind']!r} unknown")
        if q.get("split") not in SPLITS:
            problems.append(f"{q['id']}: split {q.get('split')!r} is not one of {SPLITS}")
        else:
            halves.setdefault((q["lang"], q["kind"]), [0, 0])[SPLITS.index(q["split"])] += 1
        if 2 not in q["relevant"].values():
            problems.append(f"{q['id']}: no note labelled 2")
        problems += [f"{q['id']}: no note {p!r}" for p in q["relevant"] if p not in notes]
    problems += [f"{lang} {kind}: {report} report and {tune} tune queries"
                 for (lang, kind), (report, tune) in sorted(halves.items())
                 if abs(report - tune) > 1]
    return problems


# Report


def print_tables(queries: list[Query], summary: dict[str, Any], names: Sequence[str]) -> None:
    for split in SPLITS:
        n = sum(q["split"] == split for q in queries)
        print(f"\nsplit={split} ({n} queries)   nDCG@10  recall@10    MRR")
        for group, _ in GROUPS:
            cell = summary[split][group]
            for i, name in enumerate(names):
                label = f"{group} ({cell['n']})" if i == 0 else ""
                values = "  ".join(f"{cell[name][m]:8.3f}" for m in METRICS)
                print(f"  {label:22} {name:7} {values}")
        for group, _ in GROUPS:
            cell = summary[split][group]
            value = cell["hybrid"]["ndcg"]
            base = max(cell["fts"]["ndcg"], cell["vector"]["ndcg"])
            print(f"hybrid >= max(fts, vector) on nDCG@10 [{split}, {group}]: {value:.3f} vs "
                  f"{base:.3f}: {'YES' if value >= base else 'NO'}")


def print_details(queries: list[Query], scores: dict[str, Scores]) -> None:
    kinds = sorted({(q["lang"], q["kind"]) for q in queries})
    print("\nnDCG@10 per language and kind, both splits (n):  "
          + "  ".join(f"{m:>7}" for m in MODES) + "   best")
    for lang, kind in kinds:
        def keep(q: Query, lg: str = lang, kd: str = kind) -> bool:
            return bool(q["lang"] == lg and q["kind"] == kd)
        n = sum(1 for q in queries if keep(q))
        values = {m: scores[m].mean("ndcg", keep) for m in MODES}
        best = max(MODES, key=lambda m: values[m])
        print(f"  {lang} {kind:12} ({n:2})                    "
              + "  ".join(f"{values[m]:7.3f}" for m in MODES) + f"   {best}")
    print("\nper query nDCG@10 (fts / vector / hybrid):")
    for i, q in enumerate(queries):
        cells = " / ".join(f"{scores[m].values['ndcg'][i]:.2f}" for m in MODES)
        print(f"  {q['id']:18} {q['split']:6} {cells}   {q['q']}")


def objective(scores: Scores, split: str) -> float:
    """What tuning maximises: mean nDCG@10 of the four language groups (not weighted by size)."""
    return mean(scores.mean("ndcg", in_split(split, keep)) for _, keep in GROUPS[:4])


def print_fusion(rows: list[tuple[str, str, Scores]]) -> dict[str, Any]:
    """
    The fusion rows on the report half; the best convex combination and the best
    routing, each chosen on the tune half by L{objective}.
    """
    groups = [g for g, _ in GROUPS]
    print("report split, nDCG@10 / MRR:     " + "  ".join(f"{g[:15]:>15}" for g in groups)
          + "   tune objective")
    for name, _, s in rows:
        cells = [f"{s.mean('ndcg', in_split('report', keep)):.3f}/"
                 f"{s.mean('mrr', in_split('report', keep)):.3f}" for _, keep in GROUPS]
        print(f"  {name:30} " + "  ".join(f"{c:>15}" for c in cells)
              + f"   {objective(s, 'tune'):.3f}")
    chosen: dict[str, Any] = {}
    rrf_score = objective(rows[2][2], "report")
    for family in ("convex", "route"):
        candidates = [(name, s) for name, fam, s in rows if fam == family]
        if not candidates:
            continue
        best_name, best = max(candidates, key=lambda x: objective(x[1], "tune"))
        chosen[f"best_{family}_on_tune"] = best_name
        print(f"best {family} on the tune half: {best_name} "
              f"(objective {objective(best, 'tune'):.3f}); on the report half "
              f"{objective(best, 'report'):.3f} vs RRF k=60, FTS all terms {rrf_score:.3f}")
    return chosen


def run_daemon(args: argparse.Namespace, vault: Path, queries: list[Query]
               ) -> tuple[Path, dict[str, list[Ranking]], dict[str, Any]]:
    data = scratch_dir("enttok-bench-quality-", keep=args.keep)
    if args.keep:
        print(f"data folder (kept): {data}")
    settings = {"embedding_model": args.embedding_model} if args.embedding_model else None
    with vault_daemon(data, vault, settings=settings) as d:
        started = time.perf_counter()
        scan, update = d.scan_and_update(args.timeout, report_every=60.0)
        seconds = time.perf_counter() - started
        print(f"indexed in {seconds:.0f} s: scan {json.dumps(scan)}; "
              f"update {json.dumps(update)}")
        started = time.perf_counter()
        results = search_all(d, queries, args.k)
        print(f"{len(queries) * len(MODES)} searches in {time.perf_counter() - started:.1f} s")
    return data, results, {"seconds": seconds, "scan": scan, "update": update}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10, help="cut-off (default 10)")
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument("--embedding-model", metavar="ID", default=None,
                        help="the daemon's embedding_model setting: a model id, ids joined "
                             "by '+', or an absolute path (default: unset)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every number here")
    parser.add_argument("--check-labels", action="store_true",
                        help="only check the query file against the vault (no daemon)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the daemon's data folder (its log is daemon.stderr)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="bound on indexing (default 3600 s)")
    args = parser.parse_args(argv)
    spec = json.loads(args.queries.read_text(encoding="utf-8"))
    vault = (REPO / spec["vault"]).resolve()
    queries: list[Query] = spec["queries"]
    notes = sum(1 for _ in vault.rglob("*.md"))
    if args.check_labels:
        problems = check_spec(spec, vault) + label_problems(queries, memory_containing(vault))
        print(f"{len(queries)} queries on {notes} notes: {len(problems)} problems")
        for line in problems:
            print(f"  {line}")
        return 1 if problems else 0

    install_cleanup()
    print(f"search_quality: {len(queries)} queries on {vault} ({notes} notes), k={args.k}, "
          f"embedding_model={args.embedding_model or '(unset)'}, {os.cpu_count()} CPUs, "
          f"{load_average()}")
    data, results, indexing = run_daemon(args, vault, queries)
    scores = {mode: Scores(queries, results[mode], args.k) for mode in MODES}
    summary = summarise(queries, scores)
    print_tables(queries, summary, MODES)
    print_details(queries, scores)

    print(f"\nfusion on the same candidate lists ({load_average()}):")
    methods = fusion_study(data, queries, args.k, results["hybrid"], args.embedding_model)
    rows = [(name, family, Scores(queries, ranked, args.k))
            for name, family, ranked in methods]
    chosen = print_fusion(rows)

    conn = read_only(db_path(data))
    try:
        problems = check_spec(spec, vault) + label_problems(queries, daemon_containing(conn))
    finally:
        conn.close()
    print(f"\nlabel check: problems in the query file (paraphrase and cross queries sharing "
          f"content with their answers, unknown paths): {len(problems)}")
    for line in problems:
        print(f"  {line}")

    if args.json:
        out = {"embedding_model": args.embedding_model, "k": args.k, "notes": notes,
               "queries": len(queries), "indexing": indexing, "daemon": summary,
               "per_query": {q["id"]: {m: {**{metric: scores[m].values[metric][i]
                                              for metric in METRICS}, "hits": results[m][i]}
                                       for m in MODES}
                             for i, q in enumerate(queries)},
               "fusion": summarise(queries, {name: s for name, _, s in rows}), **chosen,
               "label_problems": problems}
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n",
                             encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
