"""Indexing and search performance of the daemon on generated vaults, against baselines.

    uv run --frozen python bench/index_bench.py [--notes 2000] [--seed 1] [--only a,b,c,d,e]
                                                 [--embedding-model NAME]

The vault comes from bench/vaultgen.py, generated once into the cache folder
(C{$ENTTOK_BENCH_CACHE}, default /tmp/enttok-bench) and reused. The daemon is the
real one (bench/_daemon_with_noop.py, a separate process, its vault_path set and
its schedules off); this process is only its client and runs the baselines.
Each measurement prints its baseline from the same run and the ratio:

The daemon runs the model C{--embedding-model} names (default: the daemon's
default); the baselines use the same model bare (C{SentenceTransformer.encode}
for C{minilm}, the embedder's own C{embed} for the others).

  a. full index: C{index.rebuild} on a fresh data folder (model cold), chunks
     embedded per second, against one raw encode of the
     same chunk texts with batch size 64 in a fresh process with the worker's
     environment (bench/_encode_baseline.py). Target >= 0.85.
  b. C{vault.scan} of the unchanged vault (POST to end seen on /events),
     against a bare C{os.scandir} + C{stat} walk of the same tree in this
     process (interleaved, medians of 5). Target <= 3x, and no C{index.update}
     (0 chunks embedded). The scan's parts are also timed here.
  c. one note edited (a task line inserted in its middle): C{index.update} of
     it with the model loaded, against raw encoding of the chunks that changed
     (median of 5). Three edits, each restored with its mtime (the restoring
     update must embed nothing). Target < 1 s. Then the whole-index work an
     update may repeat (SQL over all chunks, saving the hnsw file) is timed here.
  d. C{GET /search} p50/p99 for 200 generated queries (hybrid, query embedding
     included; fts and vector shown too), against the in-process FTS query
     (C{enttok.index.search.fts_ranked} on a read-only connection) and the raw
     query embedding. Targets p50 < 30 ms, p99 < 100 ms (hybrid).
  e. C{GET /health} latency while C{index.rebuild} runs on a fresh data folder
     (FTS, model cold load, embedding; stopped after C{--health-cap} s),
     against idle C{/health} just before; per phase, with the slowest samples.
     Target p99 < 100 ms.

b, c and d run on an index built once and cached (keyed by size and seed). For
C{--vectors model} its vectors come from the real model; C{--vectors hashing}
(the default above 5,000 notes, where embedding every chunk would take hours on
2 cores) stores vectors of the tests' C{HashingEmbedder} (the model's length) under the
model's id before the first scan, so the daemon finds them and embeds nothing:
sizes and code paths are real, vector results are not meaningful. Queries and
edited chunks are always embedded by the real model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench import vaultgen
from bench._benchutil import Client, install_cleanup, ms, percentile, scratch_dir
from bench._indexutil import (
    CACHE,
    VaultDaemon,
    db_path,
    encode_baseline,
    load_average,
    process_cpu,
    read_only,
    vault_daemon,
)
from enttok.index.models import DEFAULT_MODELS

TARGET_THROUGHPUT_RATIO = 0.85
TARGET_SCAN_RATIO = 3.0
TARGET_EDIT_SECONDS = 1.0
TARGET_SEARCH_P50 = 0.030
TARGET_SEARCH_P99 = 0.100
TARGET_HEALTH_P99 = 0.100
INDEX_VERSION = 1  # bump to invalidate cached index folders


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def section(title: str) -> None:
    print(f"\n== {title}  ({load_average()})", flush=True)


def latency_line(label: str, values: list[float]) -> str:
    return (f"{label}: n={len(values)} p50 {ms(percentile(values, 50))}  "
            f"p99 {ms(percentile(values, 99))}  max {ms(max(values, default=float('nan')))}")


# Vault and cached index


def vault_for(notes: int, seed: int) -> Path:
    path = CACHE / f"vault-n{notes}-s{seed}"
    started = time.perf_counter()
    manifest = vaultgen.ensure_vault(path, notes, seed)
    print(f"vault {path}: {manifest['notes']} notes ({manifest['korean_notes']} Korean), "
          f"{manifest['words']} words, {int(manifest['bytes']) / 1e6:.1f} MB "
          f"(ready in {time.perf_counter() - started:.1f} s)")
    return path


def index_dir(notes: int, seed: int, vectors: str, model: str) -> Path:
    return CACHE / (f"index-n{notes}-s{seed}-{vectors}-{model}"
                    f"-v{vaultgen.VERSION}.{INDEX_VERSION}")


def store_cached(data_dir: Path, target: Path, summary: dict[str, Any]) -> None:
    """Keep a finished data folder as the cached index for b, c, d."""
    (data_dir / "complete.json").write_text(json.dumps(summary))
    for leftover in ("daemon.log", "daemon.stderr"):
        (data_dir / leftover).unlink(missing_ok=True)
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(data_dir), str(target))


def seed_hashing_vectors(vault: Path, data_dir: Path, model: str) -> int:
    """Store HashingEmbedder vectors for every chunk of the vault, keyed as the daemon
    keeps C{model}'s (its vector id and length)."""
    from enttok.index import models
    from enttok.store.db import connect
    from enttok.store.migrations import migrate
    from enttok.vault.chunker import chunk_note
    from enttok.vault.parser import parse_note
    from enttok.vault.walker import list_notes
    from tests.embedders import HashingEmbedder

    path = db_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate(conn)
    vector_id = models.vector_id(model)
    embedder = HashingEmbedder(models.dimension(model), model_id=vector_id)
    pending: dict[str, str] = {}
    stored = 0

    def flush() -> None:
        nonlocal stored
        hashes = list(pending)
        vectors = embedder.embed([pending[h] for h in hashes])
        conn.execute("begin")
        conn.executemany("insert or ignore into embeddings (content_hash, model_id, vector) "
                         "values (?, ?, ?)", [(h, vector_id, vectors[i].tobytes())
                                              for i, h in enumerate(hashes)])
        conn.execute("commit")
        stored += len(hashes)
        pending.clear()

    for entry in list_notes(vault)[0]:
        parsed = parse_note(entry.rel_path, Path(entry.abs_path).read_bytes())
        for chunk in chunk_note(parsed.body):
            pending[chunk.content_hash] = chunk.embed_text
        if len(pending) >= 2000:
            flush()
    if pending:
        flush()
    conn.close()
    return stored


def ensure_index(vault: Path, notes: int, seed: int, vectors: str, timeout: float,
                 model: str) -> Path:
    """The cached, fully indexed data folder for this vault (built the first time)."""
    target = index_dir(notes, seed, vectors, model)
    if (target / "complete.json").exists():
        print(f"cached index {target}: {(target / 'complete.json').read_text()}")
        return target
    print(f"building the cached index {target} (vectors: {vectors}); this runs once")
    building = scratch_dir(f"enttok-bench-build-n{notes}-")
    started = time.perf_counter()
    if vectors == "hashing":
        count = seed_hashing_vectors(vault, building, model)
        print(f"  stored {count} HashingEmbedder vectors in "
              f"{time.perf_counter() - started:.1f} s")
    with vault_daemon(building, vault, settings=model_setting(model)) as d:
        scan, update = d.scan_and_update(timeout, report_every=60.0)
        status = d.request("GET", "/index/status")
    elapsed = time.perf_counter() - started
    summary = {"vectors": vectors, "build_seconds": round(elapsed, 1), "scan": scan,
               "update": update, "status": status}
    print(f"  built in {elapsed:.0f} s: {json.dumps(update)}")
    store_cached(building, target, summary)
    return target


def model_setting(model: str) -> dict[str, Any]:
    return {"embedding_model": model}


def copy_index(source: Path) -> Path:
    """A scratch copy of a cached data folder (c edits a note and writes the index)."""
    target = scratch_dir("enttok-bench-index-")
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


# a. full index throughput


_EMBEDDING = re.compile(r"embedding (\d+)/(\d+) chunks")


def steady_rate(progress: list[tuple[float, float, str]]) -> tuple[float, float, float] | None:
    """(chunks/s between the first and last 'embedding d/N' report, first t, last t)."""
    points = [(t, int(m.group(1))) for t, _, text in progress
              if (m := _EMBEDDING.search(text))]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    (t1, d1), (t2, d2) = points[0], points[-1]
    return (d2 - d1) / (t2 - t1), t1, t2


def embedded_texts(data_dir: Path) -> list[str]:
    """The distinct chunk texts the daemon embedded, in its order."""
    conn = read_only(db_path(data_dir))
    try:
        rows = conn.execute("select min(embed_text) from chunks group by content_hash "
                            "order by min(chunk_id)").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def bench_a(vault: Path, args: argparse.Namespace) -> Path:
    section("a. full index: index.rebuild on a fresh data folder vs raw encode")
    data = scratch_dir("enttok-bench-index-a-")
    with vault_daemon(data, vault, settings=model_setting(args.embedding_model)) as d:
        sent = time.perf_counter()
        job_id = d.submit("index.rebuild", {})
        ended, job = d.wait(job_id, args.timeout, report_every=120.0)
        progress = d.events.progress(job_id)
        worker = d.worker_pid()
        worker_cpu = process_cpu(worker) if worker else None
        daemon_cpu = process_cpu(d.pid)
        status = d.request("GET", "/index/status")
    result = job["result"]
    n = int(result["chunks_embedded"])
    wall = ended - sent
    loading = next((t for t, _, text in progress if text.startswith("loading the embedding")),
                   None)
    steady = steady_rate(progress)
    print(f"daemon: {result['notes_indexed']} notes, {result['chunks']} chunks, {n} embedded "
          f"in {wall:.1f} s -> {n / wall:.2f} chunks/s for the whole job")
    if loading is not None:
        print(f"  full text phase (listing, parsing, FTS) {loading - sent:.1f} s")
    if steady is not None:
        rate, t1, t2 = steady
        if loading is not None:
            print(f"  model cold load + first batch {t1 - loading:.1f} s; "
                  f"(first batch alone ~{64 / rate:.1f} s at the steady rate)")
        print(f"  steady embedding: {rate:.2f} chunks/s "
              f"(reports {t1 - sent:.0f}-{t2 - sent:.0f} s)")
    if worker_cpu is not None:
        print(f"  CPU: embedding worker {worker_cpu:.0f} s "
              f"({worker_cpu / n * 1000:.0f} ms/chunk), daemon {daemon_cpu or 0:.0f} s")
    print(f"  /index/status: {json.dumps(status)}")

    texts = embedded_texts(data)
    texts_file = data / "embedded_texts.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False))
    print(f"baseline: raw encode ({args.embedding_model}) of the same {len(texts)} texts, "
          f"batch_size=64, one call ({load_average()})", flush=True)
    base = encode_baseline(texts_file, batch_size=64, timeout=args.timeout,
                           model=args.embedding_model)
    texts_file.unlink()
    raw_rate = base["texts"] / base["encode_seconds"]
    print(f"  model load {base['load_seconds']:.1f} s (CPU {base['load_cpu_seconds']:.0f} s), "
          f"torch threads {base['torch_threads']}, "
          f"encode {base['encode_seconds']:.1f} s -> {raw_rate:.2f} chunks/s "
          f"(CPU {base['encode_cpu_seconds']:.0f} s, "
          f"{base['encode_cpu_seconds'] / base['texts'] * 1000:.0f} ms/chunk)")
    whole = n / wall / raw_rate
    print(f"ratio whole job / raw encode: {n / wall:.2f} / {raw_rate:.2f} = {whole:.3f}")
    if steady is not None:
        print(f"ratio steady embedding / raw encode: {steady[0]:.2f} / {raw_rate:.2f} = "
              f"{steady[0] / raw_rate:.3f}")
    if worker_cpu is not None:
        raw_cpu = base["load_cpu_seconds"] + base["encode_cpu_seconds"]
        print(f"ratio CPU (model load + encode), raw / embedding worker: {raw_cpu:.0f} / "
              f"{worker_cpu:.0f} s = {raw_cpu / worker_cpu:.3f}  (CPU time is less "
              f"sensitive than wall time to the other processes on the machine)")
    print(f"target >= {TARGET_THROUGHPUT_RATIO} (whole job): "
          f"{verdict(whole >= TARGET_THROUGHPUT_RATIO)}")
    return data


# b. unchanged scan


def bare_walk(root: str) -> int:
    """The least a scan must do: list every folder and stat every note."""
    count = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name.endswith(".md"):
                    entry.stat(follow_symlinks=False)
                    count += 1
    return count


def timed(f: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = f(*args)
    return time.perf_counter() - started, result


def bench_b(d: VaultDaemon, vault: Path, reps: int) -> None:
    from enttok.index.indexer import list_vault

    section("b. vault.scan of the unchanged vault vs a bare scandir + stat walk")
    bare_walk(str(vault))  # warm the dentry and inode caches
    before = d.request("GET", "/index/status")
    bare: list[float] = []
    walker: list[float] = []
    scans: list[float] = []
    runs: list[float] = []
    files = 0
    for _ in range(reps):  # interleaved, so that a busy moment hits both
        seconds, files = timed(bare_walk, str(vault))
        bare.append(seconds)
        walker.append(timed(list_vault, str(vault), lambda: False)[0])
        sent, running, ended, job = d.run("vault.scan", {}, timeout=600.0)
        result = job["result"]
        if result["index_update_job"] is not None or result["changed"] or result["new"]:
            raise RuntimeError(f"the unchanged vault gave {result}")
        scans.append(ended - sent)
        runs.append(ended - running)
    after = d.request("GET", "/index/status")
    embedded = after["vectors"] - before["vectors"]
    med = statistics.median
    sql = scan_sql_cost(d.data_dir)
    print(f"baseline bare walk: {files} notes, median {med(bare) * 1000:.0f} ms "
          f"(runs {', '.join(f'{x * 1000:.0f}' for x in bare)} ms)")
    print(f"  parts of a scan, timed in this process: enttok list_vault median "
          f"{med(walker) * 1000:.0f} ms; {sql}")
    print(f"daemon vault.scan: median {med(scans) * 1000:.0f} ms POST->succeeded "
          f"(runs {', '.join(f'{x * 1000:.0f}' for x in scans)} ms), "
          f"running->succeeded {med(runs) * 1000:.0f} ms; last result {json.dumps(result)}")
    print(f"  index.update queued: none; vectors before/after {before['vectors']}/"
          f"{after['vectors']}, chunks embedded {embedded}")
    ratio = med(scans) / med(bare)
    print(f"ratio scan / bare walk: {ratio:.2f}x")
    print(f"target <= {TARGET_SCAN_RATIO:.0f}x with 0 chunks embedded: "
          f"{verdict(ratio <= TARGET_SCAN_RATIO and embedded == 0)}")


def scan_sql_cost(data_dir: Path) -> str:
    """Time the query a scan runs on the database thread, beside the walk (read-only copy)."""
    from enttok.index import store as index_store

    conn = read_only(db_path(data_dir))
    try:
        seconds, (stats, _) = timed(index_store.note_stats, conn)
    finally:
        conn.close()
    return f"note_stats ({len(stats)} rows, beside the walk) {seconds * 1000:.0f} ms"


# c. one edited note


def pick_note(vault: Path) -> tuple[Path, list[str]]:
    """A mid-sized English topic note with 4+ chunks (deterministic), and its chunk hashes."""
    from enttok.vault.chunker import chunk_note
    from enttok.vault.parser import parse_note

    for path in sorted((vault / "topics").rglob("*.md")):
        chunks = chunk_note(parse_note(path.name, path.read_bytes()).body)
        if 4 <= len(chunks) <= 8:
            return path, [c.content_hash for c in chunks]
    raise RuntimeError("no suitable note to edit")


def edited(raw: bytes, n: int = 0) -> bytes:
    """The note with one task line inserted after the blank line nearest its middle."""
    lines = raw.decode("utf-8").split("\n")
    blanks = [i for i, line in enumerate(lines) if not line.strip()]
    middle = min(blanks, key=lambda i: abs(i - len(lines) // 2))
    lines[middle:middle] = ["", f"- [ ] Ask Priya to rerun the index benchmark (edit {n})"]
    return "\n".join(lines).encode("utf-8")


def changed_chunks(path: Path, raw: bytes, old_hashes: list[str]) -> list[str]:
    from enttok.vault.chunker import chunk_note
    from enttok.vault.parser import parse_note

    chunks = chunk_note(parse_note(path.name, raw).body)
    return [c.embed_text for c in chunks if c.content_hash not in set(old_hashes)]


def bench_c(d: VaultDaemon, vault: Path, note: Path, hashes: list[str],
            base: dict[str, Any], model: str, reps: int = 3) -> None:
    section(f"c. one edited note: index.update with the model loaded ({reps} edits, "
            f"each restored)")
    rel = note.relative_to(vault).as_posix()
    original = note.read_bytes()
    new_texts = changed_chunks(note, edited(original), hashes)
    d.request("GET", "/search?" + urllib.parse.urlencode(
        {"q": "warm up the model", "mode": "vector", "k": 1}))
    d.idle()
    hnsw = hnsw_file(d.data_dir, model)
    stat = note.stat()
    edits: list[tuple[float, float, float, dict[str, Any], bool]] = []
    restores: list[tuple[float, dict[str, Any]]] = []
    try:
        for n in range(reps):
            mtime = hnsw.stat().st_mtime_ns if hnsw.exists() else None
            note.write_bytes(edited(original, n))
            sent, running, ended, job = d.run("index.update", {"changed_paths": [str(note)]})
            saved = hnsw.exists() and hnsw.stat().st_mtime_ns != mtime
            edits.append((ended - sent, ended - running, running - sent, job["result"], saved))
            time.sleep(1.0)  # the watcher queues its own (no-op) update for the same edit
            d.idle()
            note.write_bytes(original)
            os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            sent, _, ended, job = d.run("index.update", {"changed_paths": [str(note)]})
            restores.append((ended - sent, job["result"]))
            time.sleep(1.0)
            d.idle()
    finally:
        note.write_bytes(original)
        os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    raw = base["edit_encode_seconds"]
    print(f"note {rel}: {len(hashes)} chunks; the edit changes {len(new_texts)} of them")
    print(f"baseline: raw encode of the {len(new_texts)} changed chunk(s): median "
          f"{raw * 1000:.0f} ms (runs {', '.join(f'{x * 1000:.0f}' for x in base['encode_runs'])})")
    for i, (wall, run, wait, result, saved) in enumerate(edits):
        print(f"index.update edit {i}: POST->succeeded {wall * 1000:.0f} ms (POST->running "
              f"{wait * 1000:.0f} ms, running->succeeded {run * 1000:.0f} ms), chunks "
              f"re-embedded {result['chunks_embedded']}, index.hnsw rewritten: {saved}")
    for i, (wall, result) in enumerate(restores):
        print(f"index.update restore {i}: POST->succeeded {wall * 1000:.0f} ms, chunks "
              f"re-embedded {result['chunks_embedded']}")
    if hnsw.exists():
        print(f"  index.hnsw is {hnsw.stat().st_size / 1e6:.1f} MB")
    wall = statistics.median(e[0] for e in edits)
    print(f"ratio update / raw encode of the changed chunks (medians): "
          f"{wall * 1000:.0f} / {raw * 1000:.0f} ms = {wall / raw:.1f}x")
    worst = max(e[0] for e in edits)
    embedded = max(e[3]["chunks_embedded"] for e in edits)
    print(f"target < {TARGET_EDIT_SECONDS:.0f} s: {verdict(worst < TARGET_EDIT_SECONDS)} "
          f"(median {wall * 1000:.0f} ms, worst {worst * 1000:.0f} ms; "
          f"{embedded} chunk(s) re-embedded per edit)")
    explain_update_cost(d.data_dir, model)


def hnsw_file(data_dir: Path, model: str) -> Path:
    """The daemon's hnsw file of C{model}'s vectors."""
    from enttok.index.models import vector_id
    from enttok.index.vectors import model_file

    return model_file(data_dir / "backend" / "data" / "index.hnsw", vector_id(model))


def explain_update_cost(data_dir: Path, model: str) -> None:
    """Time, in this process, the whole-table work an index.update may repeat."""
    import hnswlib

    from enttok.index import store as index_store
    from enttok.index.models import vector_id

    DEFAULT_MODEL_ID = vector_id(model)

    conn = read_only(db_path(data_dir))
    parts = []
    try:
        chunks = conn.execute("select count(*) from chunks").fetchone()[0]
        # The queries over the whole chunks table that this version of enttok has.
        for name, extra in (("count_without_vectors", ()), ("chunks_without_vectors", (64,))):
            query = getattr(index_store, name, None)
            if query is not None:
                seconds, _ = timed(query, conn, DEFAULT_MODEL_ID, *extra)
                parts.append(f"{name} {seconds * 1000:.0f} ms")
    finally:
        conn.close()
    path = hnsw_file(data_dir, model)
    meta = path.with_name(path.name + ".json")
    if path.exists() and meta.exists():
        dim = json.loads(meta.read_text())["dimension"]
        index = hnswlib.Index(space="cosine", dim=dim)
        index.load_index(str(path), allow_replace_deleted=True)
        tmp = scratch_dir("enttok-bench-hnsw-") / "copy.hnsw"
        save_s, _ = timed(index.save_index, str(tmp))
        size = tmp.stat().st_size
        tmp.unlink()
        parts.append(f"VectorIndex.save of the whole hnsw file ({size / 1e6:.0f} MB, "
                     f"{index.element_count} items) {save_s * 1000:.0f} ms")
    print(f"  whole-index costs timed here ({chunks} chunks): {'; '.join(parts)}")


# d. search latency


def bench_d(d: VaultDaemon, queries: list[str], base: dict[str, Any]) -> None:
    from enttok.index.search import DEPTH, SearchQuery, fts_ranked
    from enttok.index.text import query_terms

    section(f"d. GET /search latency, {len(queries)} queries, k=10")
    d.request("GET", "/search?" + urllib.parse.urlencode({"q": "warm", "mode": "vector"}))
    modes = ("hybrid", "fts", "vector")
    times: dict[str, list[float]] = {m: [] for m in modes}
    degraded = 0
    for q in queries[:5]:
        for mode in modes:
            d.request("GET", "/search?" + urllib.parse.urlencode({"q": q, "mode": mode}))
    for q in queries:
        for mode in modes:  # interleaved, so that noise hits every mode alike
            path = "/search?" + urllib.parse.urlencode({"q": q, "k": 10, "mode": mode})
            started = time.perf_counter()
            answer = d.request("GET", path)
            times[mode].append(time.perf_counter() - started)
            degraded += bool(answer.get("degraded"))
    conn = read_only(db_path(d.data_dir))
    fts_local: list[float] = []
    try:
        for q in queries:
            terms = query_terms(q)
            started = time.perf_counter()
            fts_ranked(conn, SearchQuery(q=q), terms, max(10 * DEPTH, 50))
            fts_local.append(time.perf_counter() - started)
    finally:
        conn.close()
    embed = base["query_seconds"]
    print(latency_line("baseline in-process FTS (fts_ranked, read-only connection)", fts_local))
    slow = sorted(zip(fts_local, queries, strict=True), reverse=True)[:3]
    print("  slowest in-process FTS queries: " + "; ".join(
        f"{q!r} {t * 1000:.0f} ms" for t, q in slow))
    print(latency_line("baseline raw query embedding (encode of one query)", embed))
    if "query_seconds_1_thread" in base:
        print(latency_line("  the same with torch.set_num_threads(1)",
                           base["query_seconds_1_thread"]))
    for mode in modes:
        print(latency_line(f"daemon /search mode={mode:6}", times[mode]))
    if degraded:
        print(f"  WARNING: {degraded} answers were degraded (model not loaded)")
    p50, p99 = percentile(times["hybrid"], 50), percentile(times["hybrid"], 99)
    base50 = percentile(fts_local, 50)
    print(f"ratio hybrid p50 / in-process FTS p50: {p50 * 1000:.1f} / {base50 * 1000:.2f} ms = "
          f"{p50 / base50:.1f}x; hybrid p50 / raw query embedding p50: "
          f"{p50 / percentile(embed, 50):.2f}x")
    print(f"target hybrid p50 < {TARGET_SEARCH_P50 * 1000:.0f} ms: "
          f"{verdict(p50 < TARGET_SEARCH_P50)}; p99 < {TARGET_SEARCH_P99 * 1000:.0f} ms: "
          f"{verdict(p99 < TARGET_SEARCH_P99)}")


# e. /health while indexing


class HealthProbe:
    """GET /health in a loop on its own keep-alive connection: (start time, latency)."""

    def __init__(self, port: int, token: str, interval: float) -> None:
        self._client = Client(port, token, timeout=30.0)
        self._interval = interval
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)

    def sample(self, n: int) -> list[float]:
        """C{n} timed requests right now (on the calling thread)."""
        out = []
        for _ in range(n):
            started = time.perf_counter()
            self._client.request("GET", "/health")
            out.append(time.perf_counter() - started)
            time.sleep(self._interval)
        return out

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                status, _ = self._client.request("GET", "/health")
                if status != 200:
                    self.errors += 1
            except OSError:
                self.errors += 1
                continue
            self.samples.append((started, time.perf_counter() - started))
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self._client.close()


def last_progress(progress: list[tuple[float, float, str]], when: float) -> str:
    latest = [text for t, _, text in progress if t <= when]
    return latest[-1] if latest else ""


def bench_e(vault: Path, args: argparse.Namespace) -> None:
    section(f"e. /health during index.rebuild on a fresh data folder "
            f"(model cold, stopped after {args.health_cap:.0f} s)")
    data = scratch_dir("enttok-bench-index-e-")
    with vault_daemon(data, vault, settings=model_setting(args.embedding_model)) as d:
        probe = HealthProbe(d.port, d.token, 0.02)
        probe.sample(20)
        idle = probe.sample(300)
        probe.start()
        sent = time.perf_counter()
        job_id = d.submit("index.rebuild", {})
        try:
            ended, _ = d.wait(job_id, args.health_cap)
            finished = True
        except TimeoutError:
            d.request("POST", f"/jobs/{job_id}/cancel")
            ended, _ = d.wait(job_id, 120.0, allow=("canceled", "succeeded"))
            finished = False
        probe.stop()
        progress = d.events.progress(job_id)
    phases: dict[str, list[float]] = {"full text": [], "model load": [], "embedding": [],
                                      "other": []}
    for started, latency in probe.samples:
        if not sent <= started <= ended:
            continue
        text = last_progress(progress, started)
        phase = ("embedding" if text.startswith("embedding") else
                 "model load" if text.startswith("loading") else
                 "full text" if text.startswith(("indexing", "listing")) or not text else "other")
        phases[phase].append(latency)
    busy = [latency for name in phases for latency in phases[name]]
    done = next((m for _, _, m in reversed(progress)), "")
    print(f"rebuild {'finished' if finished else 'stopped'} after {ended - sent:.0f} s "
          f"(last progress: {done!r}); probe errors {probe.errors}")
    print(latency_line("baseline idle /health", idle))
    print(latency_line("/health during the rebuild", busy))
    for name, values in phases.items():
        if values:
            print(latency_line(f"  phase {name}", values))
    worst = sorted((latency, started) for started, latency in probe.samples
                   if sent <= started <= ended)[-3:]
    print("  slowest: " + "; ".join(
        f"{latency * 1000:.0f} ms at +{started - sent:.1f} s "
        f"(after {last_progress(progress, started)!r})" for latency, started in reversed(worst)))
    p99 = percentile(busy, 99)
    print(f"ratio p99 busy / idle: {p99 * 1000:.1f} / {percentile(idle, 99) * 1000:.1f} ms = "
          f"{p99 / percentile(idle, 99):.1f}x")
    print(f"target p99 < {TARGET_HEALTH_P99 * 1000:.0f} ms: {verdict(p99 < TARGET_HEALTH_P99)}")


# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Index and search performance of the enttok daemon on generated vaults.",
        epilog="Run by hand from the repository root; never from the tests.")
    parser.add_argument("--notes", type=int, default=2000, help="vault size (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="vault seed (default 1)")
    parser.add_argument("--only", default="a,b,c,d,e", help="measurements to run (a-e)")
    parser.add_argument("--vectors", choices=("auto", "model", "hashing"), default="auto",
                        help="vectors of the cached index for b-d (auto: model up to 5000 "
                             "notes, else hashing)")
    parser.add_argument("--queries", type=int, default=200, help="search queries for d")
    parser.add_argument("--embedding-model", default=DEFAULT_MODELS[0],
                        help=f"one model name (default {DEFAULT_MODELS[0]}; minilm: "
                             "sentence-transformers, the default before issue 13)")
    parser.add_argument("--scan-reps", type=int, default=5, help="repetitions for b")
    parser.add_argument("--health-cap", type=float, default=240.0,
                        help="seconds of index.rebuild observed in e (default 240)")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0,
                        help="bound on any one indexing job or baseline (default 4 h)")
    args = parser.parse_args(argv)
    args.only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not args.only <= set("abcde"):
        parser.error("--only takes letters from a,b,c,d,e")
    if args.vectors == "auto":
        args.vectors = "model" if args.notes <= 5000 else "hashing"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_cleanup()
    print(f"index_bench: {args.notes} notes, seed {args.seed}, runs {','.join(sorted(args.only))}, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {load_average()}")
    vault = vault_for(args.notes, args.seed)
    if "a" in args.only:
        built = bench_a(vault, args)
        store_cached(built, index_dir(args.notes, args.seed, "model", args.embedding_model),
                     {"vectors": "model", "built_by": "a"})
    if "e" in args.only:
        bench_e(vault, args)
    if not args.only & set("bcd"):
        return 0
    cached = ensure_index(vault, args.notes, args.seed,
                          "model" if "a" in args.only else args.vectors, args.timeout,
                          args.embedding_model)
    note, hashes = pick_note(vault)
    queries = vaultgen.latency_queries(args.queries, args.seed)
    base: dict[str, Any] = {}
    if args.only & set("cd"):
        work = scratch_dir("enttok-bench-encode-")
        texts = changed_chunks(note, edited(note.read_bytes()), hashes)
        (work / "texts.json").write_text(json.dumps(texts, ensure_ascii=False))
        (work / "queries.json").write_text(json.dumps(queries, ensure_ascii=False))
        print(f"\nbaselines for c and d: raw encode of {len(texts)} changed chunk(s) and "
              f"{len(queries)} single queries (fresh process)", flush=True)
        base = encode_baseline(work / "texts.json", work / "queries.json", batch_size=64,
                               repeat=5, model=args.embedding_model)
        base["edit_encode_seconds"] = base["encode_seconds"]
    data = copy_index(cached)
    with vault_daemon(data, vault, settings=model_setting(args.embedding_model)) as d:
        ready = d.request("GET", "/index/status")
        print(f"daemon on a copy of the cached index: {json.dumps(ready)}")
        if "b" in args.only:
            bench_b(d, vault, args.scan_reps)
        if "c" in args.only:
            bench_c(d, vault, note, hashes, base, args.embedding_model)
        if "d" in args.only:
            bench_d(d, queries, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
