"""
Search: notes ranked by their best chunk, by BM25 over FTS5 and by cosine over
hnswlib, fused by reciprocal rank.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Generator, Iterable, Sequence
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.logger import Logger

from enttok.common.deferreds import Yielding
from enttok.index.indexer import VaultIndex
from enttok.index.mirror import VectorMirror
from enttok.index.text import fts_query, highlight, query_terms

MODES = ("hybrid", "fts", "vector")
#: Reciprocal rank fusion constant (Cormack et al.); see docs/search.md.
RRF_K = 60
#: Notes each mode contributes before fusion, per requested hit.
DEPTH = 5
#: A ranking's first read takes this many chunks per note wanted: more are read
#: (full text) or asked for (vectors) only when long notes fill them.
SPREAD = 2
#: The fewest chunks a vector query asks for: as cheap as fewer (hnswlib visits
#: its ef, 96, candidates anyway), and ties among them are broken by chunk id.
MIN_VECTOR_CHUNKS = 50
#: The most chunks one vector query asks for while looking for distinct notes.
MAX_VECTOR_CHUNKS = 4096
#: Rows read at a time when a full-text ranking is read to its end.
_PAGE = 256
#: bm25() weights of the FTS columns: title, heading, body.
BM25_WEIGHTS = (4.0, 2.0, 1.0)

log = Logger(namespace="enttok.search")

#: note id -> (rank from 1, id of the note's best chunk), best note first.
NoteRanking = dict[int, tuple[int, int]]


@frozen
class SearchQuery:
    """A validated search request."""

    q: str
    k: int = 10
    mode: str = "hybrid"
    path_prefix: str | None = None
    tag: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    #: Let full text fall back to any term even when fused with vectors (for long,
    #: bag-of-words queries such as a day's activity titles).
    any_term: bool = False

    def filters(self) -> tuple[str, list[Any]]:
        """SQL conditions on C{n} (notes) for the filters, and their arguments."""
        where: list[str] = []
        args: list[Any] = []
        if self.path_prefix:
            escaped = self.path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace(
                "_", "\\_")
            where.append("n.path like ? escape '\\'")
            args.append(escaped + "%")
        if self.tag:
            where.append("exists (select 1 from note_tags t where t.note_id = n.note_id "
                         "and t.tag = ?)")
            args.append(self.tag.lstrip("#").lower())
        if self.date_from:
            where.append("n.note_date >= ?")
            args.append(self.date_from)
        if self.date_to:
            where.append("n.note_date <= ?")
            args.append(self.date_to)
        return "".join(f" and {w}" for w in where), args


def fts_ranked(conn: sqlite3.Connection, query: SearchQuery, terms: list[str],
               limit: int, any_term_fallback: bool = True) -> list[tuple[int, int]]:
    """
    The best C{limit} notes by BM25 as (best chunk id, note id), all terms
    required, else (with C{any_term_fallback}) any term.
    """
    return [(r[0], r[1]) for r in fts_scored(conn, query, terms, limit, any_term_fallback)]


def fts_scored(conn: sqlite3.Connection, query: SearchQuery, terms: list[str],
               limit: int, any_term_fallback: bool = True) -> list[tuple[int, int, float]]:
    """L{fts_ranked} with the BM25 score of each note's best chunk (lower is better)."""
    where, args = query.filters()
    rows: list[tuple[int, int, float]] = []
    for any_term in (False, True) if any_term_fallback else (False,):
        rows = _fts_notes(conn, where, [fts_query(terms, any_term), *args], limit)
        if rows or len(terms) < 2:
            break
    return rows


def _fts_notes(conn: sqlite3.Connection, where: str, args: list[Any],
               limit: int) -> list[tuple[int, int, float]]:
    """The first C{limit} notes of the chunk ranking, each with its best chunk."""
    first = limit * SPREAD
    rows = conn.execute(_fts_sql(where, limited=True), (*args, first)).fetchall()
    notes = first_per_note(rows, limit)
    if len(notes) == limit or len(rows) < first:
        return notes
    # A few long notes filled the first rows: read on through the whole ranking.
    # (Ranking notes in SQL, with a window function or GROUP BY, joins every match
    # to its note first: 2-3 times as slow on every query.)
    with contextlib.closing(_all_ranked(conn, where, args)) as ranked:
        return first_per_note(ranked, limit)


def _all_ranked(conn: sqlite3.Connection, where: str,
                args: list[Any]) -> Generator[tuple[int, int, float], None, None]:
    """Every matching chunk, best first, as (chunk id, note id, score), read in pages."""
    cursor = conn.execute(_fts_sql(where, limited=False), args)
    try:
        while page := cursor.fetchmany(_PAGE):
            if where:
                yield from page
                continue
            notes = chunk_note_ids(conn, [row[0] for row in page])
            yield from ((cid, notes[cid], score) for cid, score in page if cid in notes)
    finally:
        cursor.close()


def first_per_note(rows: Iterable[tuple[int, int, float]],
                   limit: int) -> list[tuple[int, int, float]]:
    """The first row of each note, for the first C{limit} notes of C{rows}."""
    best: dict[int, tuple[int, int, float]] = {}
    for row in rows:
        if row[1] not in best:
            best[row[1]] = row
            if len(best) == limit:
                break
    return list(best.values())


def _fts_sql(where: str, limited: bool) -> str:
    """
    The chunk ranking by BM25 for filters C{where} on C{n} (notes), with a C{limit}
    argument if C{limited}. Rows: (chunk id, note id, score), or (chunk id, score)
    without filters and limit.
    """
    bm25 = f"bm25(chunk_fts, {', '.join(map(str, BM25_WEIGHTS))})"
    limit = " limit ?" if limited else ""
    if where:
        return (f"select f.rowid, c.note_id, {bm25} as score from chunk_fts f "
                f"join chunks c on c.chunk_id = f.rowid join notes n on n.note_id = c.note_id "
                f"where chunk_fts match ?{where} order by score, f.rowid{limit}")
    ranked = (f"select rowid as id, {bm25} as score from chunk_fts where chunk_fts match ? "
              f"order by score, rowid{limit}")
    if not limited:
        return ranked
    # Ranked inside FTS5 and only the top rows joined: joining every match first
    # (nearly every chunk, for a common term) took twice as long.
    return (f"select f.id, c.note_id, f.score from ({ranked}) f "
            f"join chunks c on c.chunk_id = f.id order by f.score, f.id")


def allowed_chunks(conn: sqlite3.Connection, query: SearchQuery) -> set[int] | None:
    """The chunk ids the filters allow (C{None}: no filter)."""
    where, args = query.filters()
    if not where:
        return None
    rows = conn.execute(f"select c.chunk_id from chunks c join notes n on "
                        f"n.note_id = c.note_id where 1{where}", args).fetchall()
    return {r[0] for r in rows}


def chunk_note_ids(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, int]:
    """chunk id -> note id, for the chunks of C{ids} that still exist."""
    if not ids:
        return {}
    rows = conn.execute(f"select chunk_id, note_id from chunks where chunk_id in "
                        f"({','.join('?' * len(ids))})", list(ids)).fetchall()
    return {r[0]: r[1] for r in rows}


def chunk_notes(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """chunk id -> (note id, path, title, heading path json, text, date, tags json)."""
    if not ids:
        return {}
    rows = conn.execute(
        f"select c.chunk_id, c.note_id, n.path, n.title, c.heading_path, c.text, n.note_date, "
        f"n.tags_json from chunks c join notes n on n.note_id = c.note_id "
        f"where c.chunk_id in ({','.join('?' * len(ids))})", list(ids)).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def best_per_note(ranked: Sequence[tuple[int, int]]) -> NoteRanking:
    """note id -> (rank starting at 1, best chunk id), from chunk results in order."""
    notes: NoteRanking = {}
    for chunk_id, note_id in ranked:
        if note_id not in notes:
            notes[note_id] = (len(notes) + 1, chunk_id)
    return notes


def fuse(rankings: Sequence[NoteRanking], k: int) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of per-note rankings: the best C{k} (note id, score)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for note_id, (rank, _) in ranking.items():
            scores[note_id] = scores.get(note_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


@inlineCallbacks
def vector_ranking(index: VaultIndex, mirror: VectorMirror, embedding: Any, wanted: int,
                   allowed: set[int] | None) -> Yielding[NoteRanking]:
    """
    The C{wanted} notes nearest to C{embedding} in one model's hnsw index, each
    with its nearest chunk.

    The index holds chunks, and a long note can fill any number of the nearest: the
    query widens (doubling, up to L{MAX_VECTOR_CHUNKS}) until it finds C{wanted}
    notes or every chunk C{allowed} (C{None}: all).

    @return: fires with a L{NoteRanking}.
    """
    asked = max(wanted * SPREAD, MIN_VECTOR_CHUNKS)
    while True:
        found = yield mirror.query(embedding, asked,
                                   None if allowed is None else allowed.__contains__)
        found.sort(key=lambda hit: (hit[1], hit[0]))
        notes = yield index.read(chunk_note_ids, [cid for cid, _ in found])
        ranking = best_per_note([(cid, notes[cid]) for cid, _ in found if cid in notes])
        if len(ranking) >= wanted or len(found) < asked or asked >= MAX_VECTOR_CHUNKS:
            return dict(list(ranking.items())[:wanted])
        asked = min(asked * 2, MAX_VECTOR_CHUNKS)


class Searcher:
    """Answers C{GET /search}."""

    def __init__(self, index: VaultIndex) -> None:
        self._index = index

    def _load_models(self) -> None:
        for model_id in self._index.model_ids:
            self._index.load_model(model_id).addErrback(
                lambda f: log.failure("loading the embedding model failed", f))

    def _prepare(self) -> Deferred[Any]:
        """Prepare the active models' hnsw indexes (once; a failure is logged)."""
        return self._index.prepare_vectors(active_only=True).addErrback(
            lambda f: log.failure("could not prepare the vector index", f))

    def _embed_query(self, q: str) -> list[tuple[VectorMirror, Deferred[Any]]]:
        """Start embedding C{q} by each active model: (its hnsw mirror, vectors)."""
        index = self._index

        def embed(_: None, model_id: str) -> Deferred[Any]:
            return index.embed([q], model_id)

        return [(mirror, index.load_model(mirror.model_id).addCallback(embed, mirror.model_id))
                for mirror in index.vector_sources()]

    @inlineCallbacks
    def search(self, query: SearchQuery) -> Yielding[dict[str, Any]]:
        """
        Rank notes (C{query.k} of them when as many match), each shown by its best chunk.

        @return: fires with C{{"hits": [...], "mode", "degraded"}}.
        """
        index = self._index
        terms = query_terms(query.q)
        mode = query.mode
        # Fusion needs more than k notes from each list: a note ranked low in both
        # can beat one ranked high in one.
        wanted = max(query.k * DEPTH, 50) if mode == "hybrid" else query.k
        degraded = False
        if mode == "hybrid" and not index.vectors_usable():
            degraded = True
            self._load_models()
            if not index.vectors_prepared():
                self._prepare()
        elif mode == "hybrid" and index.indexing_embeds:
            # The embedder is busy with an indexing batch (up to seconds on two
            # cores): answer from full text now rather than queue behind it.
            degraded = True
        use_fts = mode == "fts" or mode == "hybrid"
        use_vectors = mode == "vector" or (mode == "hybrid" and not degraded)
        fts: NoteRanking = {}
        # One ranking per vector index (one per embedding model), each fused as a list.
        vector_lists: list[NoteRanking] = []
        # The query's embeddings (embedder thread) and the full-text search (database
        # thread) run at the same time.
        embeddings = self._embed_query(query.q) if use_vectors else []
        # Right after start (a model switch then included), before the start-up's
        # delayed preparation: the active hnsw indexes are prepared now, meanwhile.
        preparing = self._prepare() if embeddings and not index.vectors_prepared() else None
        if use_fts and terms:
            # Fused with vectors, an any-term list adds notes that share one word with
            # the query at full weight (nDCG@10 on bench/data: 0.722 with it, 0.826
            # without).
            ranked = yield index.read(fts_ranked, query, terms, wanted,
                                      query.any_term or not use_vectors)
            fts = best_per_note(ranked)
        if embeddings:
            allowed = None
            if query.filters()[0]:
                allowed = yield index.read(allowed_chunks, query)
            embedded = yield DeferredList([d for _, d in embeddings], consumeErrors=True)
            if preparing is not None:
                yield preparing
            for (mirror, _), (ok, result) in zip(embeddings, embedded, strict=True):
                if not ok:
                    result.raiseException()
                # After a model switch, until the first new vector, the index is the
                # old model's.
                if mirror.current:
                    ranking = yield vector_ranking(index, mirror, result[0], wanted, allowed)
                    vector_lists.append(ranking)
        # A single list keeps its order (fusion scores it 1 / (RRF_K + rank)).
        fused = {"fts": [fts], "vector": vector_lists}.get(mode, [fts, *vector_lists])
        hits = yield self._hits(terms, fuse(fused, query.k), [fts, *vector_lists])
        return {"query": query.q, "mode": mode, "degraded": degraded, "hits": hits}

    @inlineCallbacks
    def _hits(self, terms: list[str], ordered: list[tuple[int, float]],
              rankings: list[NoteRanking]) -> Yielding[list[dict[str, Any]]]:
        """
        The hits for notes C{ordered}, each shown by its best chunk in the first of
        C{rankings} (full text, then each vector index) that has it.
        """
        fts, *vector_lists = rankings
        vector = vector_lists[0] if vector_lists else {}
        shown = [next(r[nid][1] for r in rankings if nid in r) for nid, _ in ordered]
        details = yield self._index.read(chunk_notes, shown)
        hits = []
        for (note_id, score), chunk_id in zip(ordered, shown, strict=True):
            _, path, title, heading_json, text, date, tags_json = details[chunk_id]
            snippet, marks = highlight(text, terms)
            heading = json.loads(heading_json)
            hits.append({
                "path": path, "title": title, "heading": " > ".join(heading) or None,
                "snippet": snippet, "highlights": marks, "score": round(score, 6),
                "ranks": {"fts": fts[note_id][0] if note_id in fts else None,
                          "vector": vector[note_id][0] if note_id in vector else None},
                "date": date, "tags": json.loads(tags_json), "chunk_id": chunk_id})
        return hits
