"""SQL for notes, chunks, embeddings and the FTS table (runs on the database thread)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from attrs import field, frozen

from enttok.index.text import fts_text
from enttok.store.db import transaction
from enttok.store.meta import get_meta, set_meta
from enttok.vault.chunker import Chunk
from enttok.vault.parser import ParsedNote

VECTORS_VERSION = "vectors_version"
LAST_INDEXED = "index_last_update"
#: The embedding models search uses (a JSON list of model names); a switch to
#: other models writes it once their vectors are complete.
ACTIVE_MODELS = "embedding_models_active"
#: Set while chunks are in the embedder, cleared when that pass ends: found set at
#: start, the process died while embedding (see L{EMBED_CRASHES}).
EMBEDDING = "embedding_in_flight"
#: Starts in a row that found L{EMBEDDING} set with no vector stored since.
EMBED_CRASHES = "embedding_crashes"
#: The job waiting for a model to load, while it loads.
MODEL_LOADING = "embedding_model_loading"
#: Starts in a row that found the last run died while a model loaded.
LOAD_CRASHES = "embedding_load_crashes"


@frozen
class NoteState:
    """What the index knows of a file, to tell whether it changed."""

    note_id: int
    size: int
    mtime_ns: int
    content_hash: str
    indexed_hash: str | None


@frozen
class NoteUpdate:
    """A note read, parsed and chunked, ready to be written."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    parsed: ParsedNote
    chunks: tuple[Chunk, ...]


@frozen
class BatchResult:
    """What a write changed, for the vector indexes (one per model) to follow."""

    removed: tuple[int, ...]
    #: Per model id, the (chunk id, float32 blob) pairs to add to its vector index.
    added: dict[str, tuple[tuple[int, bytes], ...]]
    version: int
    pending_vectors: int
    #: Per model id, hashes of chunks written without a stored vector (to embed next).
    missing: dict[str, tuple[str, ...]] = field(factory=dict)


def _chunked(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def meta_int(conn: sqlite3.Connection, key: str) -> int:
    return int(get_meta(conn, key) or 0)


def note_states(conn: sqlite3.Connection,
                paths: Sequence[str] | None = None) -> dict[str, NoteState]:
    """Known notes by path (all of them, or those in C{paths})."""
    sql = ("select path, note_id, size, mtime_ns, content_hash, indexed_hash from notes")
    rows: list[Any] = []
    if paths is None:
        rows = conn.execute(sql).fetchall()
    else:
        for part in _chunked(list(paths)):
            rows += conn.execute(f"{sql} where path in ({','.join('?' * len(part))})",
                                 list(part)).fetchall()
    return {r[0]: NoteState(r[1], r[2], r[3], r[4], r[5]) for r in rows}


def note_stats(conn: sqlite3.Connection) -> tuple[dict[str, tuple[int, int]], set[str]]:
    """
    What a scan compares the vault with, in one pass over the notes: C{(size,
    mtime_ns)} of every known note by path, and the paths whose content changed
    since they were last indexed.
    """
    stats: dict[str, tuple[int, int]] = {}
    stale: set[str] = set()
    for path, size, mtime_ns, is_stale in conn.execute(
            "select path, size, mtime_ns, indexed_hash is null or indexed_hash != content_hash "
            "from notes"):
        stats[path] = (size, mtime_ns)
        if is_stale:
            stale.add(path)
    return stats, stale


def touch_notes(conn: sqlite3.Connection, stats: Sequence[tuple[str, int, int]]) -> None:
    """Record new (size, mtime_ns) for files whose content did not change."""
    with transaction(conn):
        conn.executemany("update notes set size = ?, mtime_ns = ? where path = ?",
                         [(size, mtime, path) for path, size, mtime in stats])


def _upsert_note(conn: sqlite3.Connection, note: NoteUpdate, now: str, indexed: bool) -> int:
    p = note.parsed
    values = (note.size, note.mtime_ns, note.content_hash, p.title, p.date,
              json.dumps(list(p.tags), ensure_ascii=False),
              json.dumps([{"target": link.target, "kind": link.kind} for link in p.links],
                         ensure_ascii=False),
              json.dumps([{"text": t.text, "done": t.done, "line": t.line} for t in p.tasks],
                         ensure_ascii=False),
              json.dumps(p.frontmatter, ensure_ascii=False, default=str),
              note.content_hash if indexed else None, now)
    row = conn.execute("select note_id from notes where path = ?", (note.path,)).fetchone()
    if row is None:
        note_id = conn.execute(
            "insert into notes (size, mtime_ns, content_hash, title, note_date, tags_json, "
            "links_json, tasks_json, frontmatter_json, indexed_hash, updated_at, path) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, note.path)).lastrowid
        assert note_id is not None
    else:
        note_id = int(row[0])
        conn.execute(
            "update notes set size = ?, mtime_ns = ?, content_hash = ?, title = ?, "
            "note_date = ?, tags_json = ?, links_json = ?, tasks_json = ?, "
            "frontmatter_json = ?, indexed_hash = coalesce(?, indexed_hash), updated_at = ? "
            "where note_id = ?", (*values, note_id))
    conn.execute("delete from note_tags where note_id = ?", (note_id,))
    conn.executemany("insert or ignore into note_tags (tag, note_id) values (?, ?)",
                     [(tag.lower(), note_id) for tag in p.tags])
    return note_id


def save_metadata(conn: sqlite3.Connection, notes: Sequence[NoteUpdate], now: str) -> None:
    """Store notes' metadata only (the scan); their chunks wait for C{index.update}."""
    with transaction(conn):
        for note in notes:
            _upsert_note(conn, note, now, indexed=False)


def _delete_chunks(conn: sqlite3.Connection, note_id: int) -> list[int]:
    ids = [r[0] for r in conn.execute("select chunk_id from chunks where note_id = ?",
                                      (note_id,)).fetchall()]
    for part in _chunked(ids):
        marks = ",".join("?" * len(part))
        conn.execute(f"delete from chunk_fts where rowid in ({marks})", list(part))
        conn.execute(f"delete from chunks where chunk_id in ({marks})", list(part))
    return ids


def apply_batch(conn: sqlite3.Connection, notes: Sequence[NoteUpdate], deleted: Sequence[str],
                models: str | Sequence[str], now: str) -> BatchResult:
    """
    Write one batch in one transaction: notes, chunks and FTS rows.

    @param models: the model id (or ids) whose vectors are kept.
    @return: the chunk ids removed and, per model, the (chunk id, vector) pairs
        added (for chunks whose text already has a stored vector), for the
        vector indexes.
    """
    model_ids = (models,) if isinstance(models, str) else tuple(models)
    removed: list[int] = []
    added: list[tuple[int, str]] = []
    with transaction(conn):
        for path in deleted:
            row = conn.execute("select note_id from notes where path = ?", (path,)).fetchone()
            if row is not None:
                removed += _delete_chunks(conn, row[0])
                conn.execute("delete from notes where note_id = ?", (row[0],))
        for note in notes:
            note_id = _upsert_note(conn, note, now, indexed=True)
            removed += _delete_chunks(conn, note_id)
            for chunk in note.chunks:
                chunk_id = conn.execute(
                    "insert into chunks (note_id, ordinal, heading_path, text, content_hash, "
                    "token_count, embed_text) values (?, ?, ?, ?, ?, ?, ?)",
                    (note_id, chunk.ordinal, json.dumps(list(chunk.heading_path),
                                                        ensure_ascii=False),
                     chunk.text, chunk.content_hash, chunk.token_count,
                     chunk.embed_text)).lastrowid
                assert chunk_id is not None
                conn.execute("insert into chunk_fts (rowid, title, heading, body) "
                             "values (?, ?, ?, ?)",
                             (chunk_id, fts_text(note.parsed.title),
                              fts_text(" ".join(chunk.heading_path)), fts_text(chunk.text)))
                added.append((chunk_id, chunk.content_hash))
        with_vectors: dict[str, tuple[tuple[int, bytes], ...]] = {}
        missing: dict[str, tuple[str, ...]] = {}
        for model_id in model_ids:
            vectors = _vectors(conn, [h for _, h in added], model_id)
            with_vectors[model_id] = tuple((cid, vectors[h]) for cid, h in added
                                           if h in vectors)
            missing[model_id] = tuple(dict.fromkeys(h for _, h in added if h not in vectors))
        version = _bump(conn, now)
    pending = len({h for hashes in missing.values() for h in hashes})
    return BatchResult(tuple(removed), with_vectors, version, pending, missing)


def _bump(conn: sqlite3.Connection, now: str) -> int:
    version = meta_int(conn, VECTORS_VERSION) + 1
    set_meta(conn, VECTORS_VERSION, str(version))
    set_meta(conn, LAST_INDEXED, now)
    return version


def _vectors(conn: sqlite3.Connection, hashes: Sequence[str], model_id: str) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    unique = list(dict.fromkeys(hashes))
    for part in _chunked(unique):
        rows = conn.execute(
            f"select content_hash, vector from embeddings where model_id = ? and content_hash "
            f"in ({','.join('?' * len(part))})", (model_id, *part)).fetchall()
        found.update((r[0], r[1]) for r in rows)
    return found


def count_chunks(conn: sqlite3.Connection) -> int:
    return int(conn.execute("select count(*) from chunks").fetchone()[0])


def chunks_without_vectors(conn: sqlite3.Connection, model_id: str,
                           limit: int) -> list[tuple[str, str]]:
    """
    Up to C{limit} distinct (hash, text to embed) lacking a C{model_id} vector.

    A whole-table scan (of the C{chunks_hash} index only): used after a crash
    left chunks without vectors, not for every update (see L{VaultIndex}).
    """
    hashes = [r[0] for r in conn.execute(
        "select distinct c.content_hash from chunks c where not exists "
        "(select 1 from embeddings e where e.content_hash = c.content_hash "
        "and e.model_id = ?) limit ?", (model_id, limit)).fetchall()]
    return texts_for(conn, hashes)


def texts_for(conn: sqlite3.Connection, hashes: Sequence[str]) -> list[tuple[str, str]]:
    """(hash, text to embed) for each of C{hashes} that some chunk still has."""
    out: list[tuple[str, str]] = []
    for part in _chunked(list(dict.fromkeys(hashes))):
        rows = conn.execute(
            f"select content_hash, min(embed_text) from chunks where content_hash in "
            f"({','.join('?' * len(part))}) group by content_hash", list(part)).fetchall()
        out += [(r[0], r[1]) for r in rows]
    return out


def embed_lengths(conn: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, int]:
    """
    The length (in characters, as sentence-transformers measures it) of the text
    to embed of each of C{hashes} that some chunk still has.
    """
    out: dict[str, int] = {}
    for part in _chunked(list(dict.fromkeys(hashes))):
        rows = conn.execute(
            f"select content_hash, length(min(embed_text)) from chunks where content_hash in "
            f"({','.join('?' * len(part))}) group by content_hash", list(part)).fetchall()
        out.update((r[0], int(r[1])) for r in rows)
    return out


def hashes_without_vectors(conn: sqlite3.Connection, model_id: str, limit: int) -> list[str]:
    """
    Up to C{limit} distinct chunk hashes lacking a C{model_id} vector.

    The model's hashes are read once (a scan of the embeddings table), not looked
    up chunk by chunk: each lookup reads a row with its vector, and with none
    missing the lookups took 4 s at 100,000 chunks (this: 0.3 s).
    """
    return [r[0] for r in conn.execute(
        "select distinct content_hash from chunks where content_hash not in "
        "(select content_hash from embeddings where model_id = ?) limit ?",
        (model_id, limit)).fetchall()]


def store_vectors(conn: sqlite3.Connection, model_id: str, new_vectors: dict[str, bytes],
                  now: str) -> BatchResult:
    """
    Store vectors; return the (chunk id, vector) pairs they cover, for the hnsw index.

    Vectors stored mean embedding makes progress: the count of crashes while
    embedding (L{EMBED_CRASHES}) starts again.
    """
    with transaction(conn):
        set_meta(conn, EMBED_CRASHES, "0")
        conn.executemany(
            "insert or ignore into embeddings (content_hash, model_id, vector) values (?, ?, ?)",
            [(h, model_id, v) for h, v in new_vectors.items()])
        pairs: list[tuple[int, bytes]] = []
        for part in _chunked(list(new_vectors)):
            rows = conn.execute(
                f"select chunk_id, content_hash from chunks where content_hash in "
                f"({','.join('?' * len(part))})", list(part)).fetchall()
            pairs += [(r[0], new_vectors[r[1]]) for r in rows]
        version = _bump(conn, now)
    return BatchResult((), {model_id: tuple(pairs)}, version, 0)


def count_live_vectors(conn: sqlite3.Connection, model_id: str) -> int:
    """How many chunks have a stored vector of C{model_id}."""
    return int(conn.execute(
        "select count(*) from chunks c join embeddings e on e.content_hash = c.content_hash "
        "and e.model_id = ?", (model_id,)).fetchone()[0])


def live_vector_ids(conn: sqlite3.Connection, model_id: str) -> list[int]:
    """Chunk ids that have a stored vector of C{model_id}."""
    return [r[0] for r in conn.execute(
        "select c.chunk_id from chunks c join embeddings e on e.content_hash = c.content_hash "
        "and e.model_id = ?", (model_id,)).fetchall()]


def vectors_of(conn: sqlite3.Connection, model_id: str,
               ids: Sequence[int]) -> list[tuple[int, bytes]]:
    """(chunk id, vector) pairs of those of C{ids} that have a stored vector."""
    found: list[tuple[int, bytes]] = []
    for part in _chunked(list(ids)):
        found += conn.execute(
            f"select c.chunk_id, e.vector from chunks c join embeddings e "
            f"on e.content_hash = c.content_hash and e.model_id = ? "
            f"where c.chunk_id in ({','.join('?' * len(part))})", [model_id, *part]).fetchall()
    return found


def vector_page(conn: sqlite3.Connection, model_id: str, after: int,
                limit: int) -> list[tuple[int, bytes]]:
    """(chunk id, vector) pairs with ids above C{after}, in id order."""
    return [(r[0], r[1]) for r in conn.execute(
        "select c.chunk_id, e.vector from chunks c join embeddings e "
        "on e.content_hash = c.content_hash and e.model_id = ? where c.chunk_id > ? "
        "order by c.chunk_id limit ?", (model_id, after, limit)).fetchall()]


def stored_dimension(conn: sqlite3.Connection, model_id: str) -> int | None:
    row = conn.execute("select length(vector) from embeddings where model_id = ? limit 1",
                       (model_id,)).fetchone()
    return None if row is None else int(row[0]) // 4


def clear_index(conn: sqlite3.Connection) -> None:
    """Forget chunks and full text (a rebuild); notes and stored vectors stay."""
    with transaction(conn):
        conn.execute("delete from chunk_fts")
        conn.execute("delete from chunks")
        conn.execute("update notes set indexed_hash = null")
        set_meta(conn, VECTORS_VERSION, str(meta_int(conn, VECTORS_VERSION) + 1))


def active_models(conn: sqlite3.Connection) -> list[str] | None:
    """The model names search uses, as last switched to (C{None}: never recorded)."""
    raw = get_meta(conn, ACTIVE_MODELS)
    return None if raw is None else [str(name) for name in json.loads(raw)]


def set_active_models(conn: sqlite3.Connection, names: Sequence[str]) -> None:
    with transaction(conn):
        set_meta(conn, ACTIVE_MODELS, json.dumps(list(names), ensure_ascii=False))


def set_embedding(conn: sqlite3.Connection, busy: bool) -> None:
    """Mark that chunks are (or are no longer) in the embedder."""
    with transaction(conn):
        set_meta(conn, EMBEDDING, "1" if busy else "0")


def count_embed_crash(conn: sqlite3.Connection) -> int:
    """
    At start: if the last run died while embedding, count it. Return how many
    starts in a row found that with no vector stored since.
    """
    with transaction(conn):
        crashes = meta_int(conn, EMBED_CRASHES)
        if get_meta(conn, EMBEDDING) == "1":
            crashes += 1
            set_meta(conn, EMBED_CRASHES, str(crashes))
            set_meta(conn, EMBEDDING, "0")
    return crashes


#: What L{set_model_loading} records for a load no job waits for (yet).
NO_JOB = "*"


def set_model_loading(conn: sqlite3.Connection, job_id: str | None) -> None:
    """Record that a model loads, and the job that waits for it (L{NO_JOB}: none yet;
    C{None}: the load is over)."""
    with transaction(conn):
        set_meta(conn, MODEL_LOADING, job_id or "")
        if job_id is None:
            set_meta(conn, LOAD_CRASHES, "0")


def forgive_load_crash(conn: sqlite3.Connection, limit: int) -> int:
    """
    At start, before the job engine recovers its jobs: if the last run died while
    a model loaded, that was not the doing of the indexing jobs then running (the
    one that waited for the model, or one writing full text beside a load begun at
    start): give them back the attempt (up to C{limit} starts in a row, so that a model
    whose load kills the process does not restart them forever). Return how many
    starts in a row found such a death.
    """
    with transaction(conn):
        job_id = get_meta(conn, MODEL_LOADING)
        crashes = meta_int(conn, LOAD_CRASHES)
        if job_id:
            crashes += 1
            set_meta(conn, LOAD_CRASHES, str(crashes))
            set_meta(conn, MODEL_LOADING, "")
            if crashes <= limit:
                conn.execute("update jobs set attempts = attempts - 1 where status = "
                             "'running' and attempts > 0 and type like 'index.%'")
    return crashes


def reset_embed_crashes(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        set_meta(conn, EMBED_CRASHES, "0")


def counts(conn: sqlite3.Connection, model_id: str,
           kept: Sequence[str] = ()) -> dict[str, Any]:
    """
    What C{/index/status} shows of the database.

    @param kept: every model id whose vectors are kept (C{model_id} included or
        not): C{vectors_pending} counts the vectors they lack (one per chunk and model).
    """
    one = lambda sql, *a: conn.execute(sql, a).fetchone()[0]  # noqa: E731
    models = list(dict.fromkeys([model_id, *kept]))
    # (Counted by model, not as chunks lacking any: a lookup per chunk in the
    # embeddings table, whose rows hold the vectors, took 4 s at 100,000 chunks.)
    by_model = {m: count_live_vectors(conn, m) for m in models}
    chunks = one("select count(*) from chunks")
    return {
        "notes": one("select count(*) from notes"),
        "chunks": chunks,
        "vectors": by_model[model_id],
        "vectors_by_model": by_model,
        "vectors_pending": sum(chunks - n for n in by_model.values()),
        "embedding_crashes": meta_int(conn, EMBED_CRASHES),
        "stale_notes": one("select count(*) from notes where indexed_hash is null "
                           "or indexed_hash != content_hash"),
        "last_update": get_meta(conn, LAST_INDEXED),
        "version": meta_int(conn, VECTORS_VERSION),
    }
