"""C{/health} latency while the daemon loads and saves a 100,000-note vault's hnsw index,
with the index in the vector host process (the daemon's default) and in the daemon
itself (the baseline, before issue 15), in the same run.

    uv run --frozen python bench/vector_host_bench.py [--notes 100000] [--rounds 1]

The data folder is synthetic and built once into the cache folder
(C{$ENTTOK_BENCH_CACHE}, default /tmp/enttok-bench): the database rows of
C{--notes} notes with C{--chunks-per-note} chunks each (3.67: what bench/vaultgen.py's
vaults give; 100,000 notes make about 367,000 chunks), a random unit vector of
the default model's length (512) stored for each chunk under its vector id, and the
hnsw file of those vectors, written by hnswlib with the daemon's M (its graph is
built with a small C{ef_construction} to take a minute, not an hour: the file's
size and layout, which are what loading and saving cost, are the same). Notes
have no files and no full text: nothing here scans or searches.

Each round runs the real daemon (bench/_daemon_with_noop.py, with the tests'
HashingEmbedder of the model's length instead of the model, so that no model
load competes for the CPU) on a copy of that folder, twice for each variant:

  load: a start with a current hnsw file: C{/health} from the moment the index
     is prepared (L{PREPARE_DELAY} after start, patched from the daemon's 1 s so
     that the end of its start-up is not measured with it) until the daemon
     logs it loaded;
  save: a start with the file's sidecar one version behind the database, so the
     loaded index is changed and the periodic save (its interval patched to
     L{SAVE_INTERVAL} s) writes it: C{/health} from the first sight of the save's
     temporary file until the sidecar is rewritten.

C{/health} is polled every L{POLL_INTERVAL} s from a thread of this process on
one keep-alive connection. Printed: p50/p99/max per variant and phase, the
ratio to the baseline, and the target (issue 15: p99 < 50 ms, max < 150 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from bench._benchutil import (
    install_cleanup,
    ms,
    new_token,
    percentile,
    scratch_dir,
    spawn,
    stop_child,
)
from bench._indexutil import CACHE, db_path, load_average
from bench.index_bench import HealthProbe

TARGET_P99 = 0.050
TARGET_MAX = 0.150
POLL_INTERVAL = 0.010
SAVE_INTERVAL = 10.0
#: Seconds after start before the index loads (patched: the daemon's 1 s would
#: mix the end of its start-up into the load phase).
PREPARE_DELAY = 4.0
MODEL = "use-multilingual"
DATA_VERSION = 1  # bump to invalidate cached data folders
PHASE_TIMEOUT = 300.0

#: The daemon with the hashing embedder, the host on or off, a short save interval.
RUNNER = """\
import sys
import enttok.index.service
import enttok.service
from tests.embedders import HashingEmbedder
enttok.service.VECTOR_HOST = {host}
enttok.index.service.SAVE_INTERVAL = {interval}
enttok.index.service.PREPARE_DELAY = {prepare}
enttok.service.embedder_for = lambda name: HashingEmbedder({dimension}, model_id={model_id!r})
from bench._daemon_with_noop import main
sys.exit(main(sys.argv[1:]))
"""


def model_facts() -> tuple[str, int]:
    from enttok.index import models

    return models.vector_id(MODEL), models.dimension(MODEL)


def hnsw_path(data_dir: Path) -> Path:
    from enttok.index.vectors import model_file

    return model_file(db_path(data_dir).with_name("index.hnsw"), model_facts()[0])


# The synthetic data folder


def build_data(target: Path, notes: int, per_note: float, seed: int) -> None:
    """Database rows and the hnsw file of C{notes} notes (see the module's description)."""
    import hnswlib
    import numpy as np

    from enttok.index import store as index_store
    from enttok.index.vectors import DEFAULT_M
    from enttok.store.db import connect
    from enttok.store.meta import set_meta
    from enttok.store.migrations import migrate

    model_id, dimension = model_facts()
    building = target.with_name(target.name + ".partial")
    shutil.rmtree(building, ignore_errors=True)
    path = db_path(building)
    path.parent.mkdir(parents=True)
    conn = connect(path)
    migrate(conn)
    chunks = int(notes * per_note)
    rng = np.random.default_rng(seed)
    index = hnswlib.Index(space="cosine", dim=dimension)
    index.init_index(max_elements=chunks, ef_construction=10, M=DEFAULT_M,
                     allow_replace_deleted=True)
    started = time.perf_counter()
    step = 20_000
    conn.execute("begin")
    conn.executemany(
        "insert into notes (note_id, path, size, mtime_ns, content_hash, title, updated_at) "
        "values (?, ?, 0, 0, ?, ?, '2026-12-04T00:00:00Z')",
        [(n, f"notes/{n:06d}.md", f"n{n}", f"note {n}") for n in range(1, notes + 1)])
    for first in range(1, chunks + 1, step):
        ids = list(range(first, min(first + step, chunks + 1)))
        vectors = rng.standard_normal((len(ids), dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        conn.executemany(
            "insert into chunks (chunk_id, note_id, ordinal, heading_path, text, content_hash, "
            "token_count, embed_text) values (?, ?, 0, '', '', ?, 1, '')",
            [(cid, 1 + (cid - 1) * notes // chunks, f"c{cid}") for cid in ids])
        conn.executemany("insert into embeddings (content_hash, model_id, vector) "
                         "values (?, ?, ?)",
                         [(f"c{cid}", model_id, vectors[i].tobytes())
                          for i, cid in enumerate(ids)])
        index.add_items(vectors, ids)
        print(f"  {ids[-1]}/{chunks} chunks ({time.perf_counter() - started:.0f} s)",
              flush=True)
    set_meta(conn, index_store.VECTORS_VERSION, "2")
    set_meta(conn, index_store.ACTIVE_MODELS, json.dumps([MODEL]))
    conn.execute("commit")
    conn.close()
    hnsw = hnsw_path(building)
    index.save_index(str(hnsw))
    write_sidecar(hnsw, 2, chunks)
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)


def write_sidecar(hnsw: Path, version: int, live: int) -> None:
    model_id, dimension = model_facts()
    hnsw.with_name(hnsw.name + ".json").write_text(json.dumps(
        {"version": version, "model_id": model_id, "dimension": dimension, "live": live}))


def ensure_data(notes: int, per_note: float, seed: int) -> Path:
    target = CACHE / f"vectorhost-n{notes}-c{per_note}-s{seed}-v{DATA_VERSION}"
    if not (target / "complete.json").exists():
        print(f"building {target} (once)", flush=True)
        started = time.perf_counter()
        build_data(target, notes, per_note, seed)
        (target / "complete.json").write_text(json.dumps(
            {"notes": notes, "chunks": int(notes * per_note),
             "seconds": round(time.perf_counter() - started, 1)}))
    print(f"data {target}: {(target / 'complete.json').read_text()}; hnsw file "
          f"{hnsw_path(target).stat().st_size / 1e6:.0f} MB", flush=True)
    return target


# One daemon run


class Watcher:
    """Notes when the daemon logs the index loaded and when a save starts and ends."""

    def __init__(self, data_dir: Path) -> None:
        self._log = data_dir / "daemon.log"
        self._hnsw = hnsw_path(data_dir)
        self._sidecar = self._hnsw.with_name(self._hnsw.name + ".json")
        self._sidecar_mtime = self._sidecar.stat().st_mtime_ns
        self.loaded: float | None = None
        self.save_started: float | None = None
        self.saved: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        offset = 0
        temp_prefix = f".{self._hnsw.name}."
        while not self._stop.is_set():
            now = time.perf_counter()
            if self.loaded is None and self._log.exists():
                with self._log.open("rb") as f:
                    f.seek(offset)
                    text = f.read()
                offset += len(text)
                if b"vector index of" in text and b"loaded" in text:
                    self.loaded = now
            if self.save_started is None and any(
                    name.startswith(temp_prefix) for name in os.listdir(self._hnsw.parent)):
                self.save_started = now
            if self.saved is None and self._sidecar.stat().st_mtime_ns != self._sidecar_mtime:
                self.saved = now
            self._stop.wait(0.005)

    def wait(self, attribute: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = getattr(self, attribute)
            if value is not None:
                return float(value)
            time.sleep(0.05)
        raise TimeoutError(f"daemon: no {attribute} within {timeout:.0f} s")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def run_daemon(source: Path, host: bool, phase: str, chunks: int) -> list[float]:
    """Start the daemon on a copy of C{source}; the C{/health} latencies of C{phase}."""
    data = scratch_dir("enttok-bench-vectorhost-")
    shutil.rmtree(data)
    shutil.copytree(source, data)
    if phase == "save":
        write_sidecar(hnsw_path(data), 1, chunks)  # one version behind: changed once loaded
    settings = data / "backend" / "data" / "settings.json"
    settings.write_text(json.dumps({"schedule": {"vault_scan_minutes": 0,
                                                 "github_sync_minutes": 0,
                                                 "compact_hours": 0}}))
    model_id, dimension = model_facts()
    script = RUNNER.format(host=host, interval=SAVE_INTERVAL, prepare=PREPARE_DELAY,
                           dimension=dimension, model_id=model_id)
    token = new_token()
    watcher = Watcher(data)
    proc, ready = spawn(["-c", script, "--data-dir", str(data)], timeout=120.0,
                        stderr_path=data / "daemon.stderr", env={"BACKEND_TOKEN": token})
    started = time.perf_counter()
    probe = HealthProbe(int(ready["port"]), token, POLL_INTERVAL)
    probe.start()
    try:
        if phase == "load":
            begin, end = started + PREPARE_DELAY, watcher.wait("loaded", PHASE_TIMEOUT)
        else:
            watcher.wait("loaded", PHASE_TIMEOUT)
            begin, end = watcher.wait("save_started", PHASE_TIMEOUT), watcher.wait(
                "saved", PHASE_TIMEOUT)
        time.sleep(0.3)  # a request that began before the end is answered
    finally:
        probe.stop()
        watcher.stop()
        stop_child(proc)
    shutil.rmtree(data, ignore_errors=True)
    # Every request in flight during the phase (one that a stall held counts).
    during = [(at, latency) for at, latency in probe.samples
              if at <= end and at + latency >= begin]
    slowest = sorted(during, key=lambda sample: -sample[1])[:3]
    print(f"    {'host' if host else 'in-process'} {phase}: {end - begin:.2f} s, "
          f"{len(during)} samples, slowest "
          + ", ".join(f"{latency * 1000:.0f} ms at +{at - begin:.2f} s" for at, latency in slowest)
          + f"; probe errors {probe.errors}  ({load_average()})", flush=True)
    return [latency for _, latency in during]


def line(label: str, values: list[float]) -> str:
    return (f"{label}: n={len(values)} p50 {ms(percentile(values, 50))}  "
            f"p99 {ms(percentile(values, 99))}  max {ms(max(values, default=float('nan')))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--chunks-per-note", type=float, default=3.67)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each variant and phase (interleaved)")
    args = parser.parse_args(argv)
    install_cleanup()
    print(f"vector_host_bench: {args.notes} notes, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, {load_average()}", flush=True)
    source = ensure_data(args.notes, args.chunks_per_note, args.seed)
    chunks = int(args.notes * args.chunks_per_note)
    results: dict[tuple[bool, str], list[float]] = {}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}", flush=True)
        for phase in ("load", "save"):
            for host in (False, True):
                results.setdefault((host, phase), []).extend(
                    run_daemon(source, host, phase, chunks))
    print(f"\n/health every {POLL_INTERVAL * 1000:.0f} ms  ({load_average()})")
    verdicts = []
    for phase in ("load", "save"):
        base, hosted = results[(False, phase)], results[(True, phase)]
        print(line(f"{phase} in-process (baseline)", base))
        print(line(f"{phase} vector host          ", hosted))
        print(f"  ratio host / baseline: p99 "
              f"{percentile(hosted, 99) / percentile(base, 99):.2f}x, max "
              f"{max(hosted) / max(base):.2f}x")
        verdicts.append(percentile(hosted, 99) < TARGET_P99 and max(hosted) < TARGET_MAX)
    ok = all(verdicts)
    print(f"target p99 < {TARGET_P99 * 1000:.0f} ms and max < {TARGET_MAX * 1000:.0f} ms "
          f"(vector host, load and save): {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
