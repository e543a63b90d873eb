"""Embedding models side by side: full index time and time to a first semantic answer.

    uv run --frozen python bench/model_bench.py [--notes 2000] [--models minilm,use-multilingual]
                                                 [--only a,b,c]

The first model named is the baseline (C{minilm}: sentence-transformers on torch,
the default before issue 13); each other model is reported as a ratio to it,
measured in the same run on the same machine.

a. Full index of the generated bench vault (bench/vaultgen.py, cached): the real
   daemon on a fresh data folder with C{embedding_model} set, C{index.rebuild},
   then until C{/index/status} reports every chunk embedded (C{vectors_pending}
   0, or vectors = chunks). Wall time from the job's submission. Target: the
   default model <= 0.5x the baseline.
c. The bare models (no daemon), one after the other in this process: load time,
   bulk embedding of 400 chunks of the labelled vault (bench/data/vault, chunked
   as the indexer does, repeated to 400), and one-query latency (p50 of 40).
b. Spawn -> first vector-search hit on a small vault (demo-vault): from starting
   the process to the first C{GET /search?mode=vector} that returns a hit and is
   not degraded (a C{vault.scan} is submitted as soon as the ready line arrives;
   searches are sent every 50 ms). Target < 3 s for the default model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from bench._benchutil import REPO, install_cleanup, scratch_dir
from bench._indexutil import CACHE, VaultDaemon, load_average, vault_daemon

sys.path.insert(0, str(REPO))
from bench import vaultgen
from enttok.index.models import DEFAULT_MODELS

TARGET_INDEX_RATIO = 0.5
TARGET_FIRST_HIT = 3.0
SMALL_VAULT = REPO / "demo-vault"
FIRST_HIT_QUERIES = ("회의 meeting", "release plan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def embedded(status: dict[str, Any]) -> bool:
    """Whether C{/index/status} says every chunk has its vector(s)."""
    if "vectors_pending" in status:
        return int(status["vectors_pending"]) == 0 and int(status.get("chunks", 0)) > 0
    return int(status.get("vectors", 0)) >= int(status.get("chunks", 1)) > 0


def wait_embedded(d: VaultDaemon, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = d.request("GET", "/index/status")
        if embedded(status) and not status.get("target_models"):
            return status
        time.sleep(0.5)
    raise TimeoutError(f"vectors not complete within {timeout:.0f} s")


def full_index(vault: Path, model: str, timeout: float) -> tuple[float, dict[str, Any]]:
    data = scratch_dir(f"enttok-bench-model-a-{model}-")
    with vault_daemon(data, vault, settings={"embedding_model": model}) as d:
        sent = time.perf_counter()
        job_id = d.submit("index.rebuild", {})
        d.wait(job_id, timeout, report_every=120.0)
        status = wait_embedded(d, timeout)
        return time.perf_counter() - sent, status


def bench_a(models: list[str], notes: int, timeout: float) -> None:
    print(f"\na. full index, {notes} notes ({load_average()})")
    vault = CACHE / f"vault-n{notes}-s1"
    vaultgen.ensure_vault(vault, notes, 1)
    walls: dict[str, float] = {}
    for model in models:
        wall, status = full_index(vault, model, timeout)
        walls[model] = wall
        print(f"  {model:28} {wall:8.1f} s  chunks {status.get('chunks')}, "
              f"{status.get('chunks', 0) / wall:.1f} chunks/s ({load_average()})", flush=True)
    base = walls[models[0]]
    for model in models[1:]:
        ratio = walls[model] / base
        target = f"; target <= {TARGET_INDEX_RATIO}: {verdict(ratio <= TARGET_INDEX_RATIO)}" \
            if model == "+".join(DEFAULT_MODELS) else ""
        print(f"ratio {model} / {models[0]}: {walls[model]:.1f} / {base:.1f} s = "
              f"{ratio:.3f}{target}")


def first_hit(model: str, timeout: float) -> float:
    data = scratch_dir(f"enttok-bench-model-b-{model}-")
    started = time.perf_counter()
    with vault_daemon(data, SMALL_VAULT, settings={"embedding_model": model}) as d:
        d.submit("vault.scan", {})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for q in FIRST_HIT_QUERIES:
                path = "/search?" + urllib.parse.urlencode({"q": q, "mode": "vector", "k": 3})
                answer = d.request("GET", path)
                if answer.get("hits") and not answer.get("degraded"):
                    return time.perf_counter() - started
            time.sleep(0.05)
    raise TimeoutError(f"no vector hit within {timeout:.0f} s")


def bench_b(models: list[str], reps: int, timeout: float) -> None:
    print(f"\nb. spawn -> first vector-search hit, {SMALL_VAULT.name} ({load_average()})")
    best: dict[str, float] = {}
    for model in models:
        times = [first_hit(model, timeout) for _ in range(reps)]
        best[model] = sorted(times)[len(times) // 2]
        runs = json.dumps([round(t, 2) for t in times])
        print(f"  {model:28} median {best[model]:.2f} s of {runs}", flush=True)
    base = best[models[0]]
    for model in models[1:]:
        target = f"; target < {TARGET_FIRST_HIT:.0f} s: " \
                 f"{verdict(best[model] < TARGET_FIRST_HIT)}" \
            if model == "+".join(DEFAULT_MODELS) else ""
        print(f"ratio {model} / {models[0]}: {best[model]:.2f} / {base:.2f} s = "
              f"{best[model] / base:.3f}{target}")


def bench_c(models: list[str]) -> None:
    from enttok.index.models import in_process_embedder, parse_models
    from enttok.vault.chunker import chunk_note
    from enttok.vault.parser import parse_note

    print(f"\nc. bare models, 400 chunks of bench/data/vault, 2 threads ({load_average()})")
    vault = REPO / "bench" / "data" / "vault"
    texts = [chunk.embed_text for path in sorted(vault.rglob("*.md"))
             for chunk in chunk_note(parse_note(path.name, path.read_bytes()).body)]
    texts = (texts * (400 // len(texts) + 1))[:400]
    queries = ["회의록 정리", "postgres vacuum tuning", "배포 체크리스트를 업데이트",
               "how did the incident review go"] * 10
    for setting in models:
        for name in parse_models(setting):
            started = time.perf_counter()
            embedder = in_process_embedder(name, 2)
            embedder.load()
            loaded = time.perf_counter()
            embedder.embed(texts)
            bulk = time.perf_counter() - loaded
            times = []
            for q in queries:
                t = time.perf_counter()
                embedder.embed([q])
                times.append(time.perf_counter() - t)
            embedder.close()
            print(f"  {name:20} load {loaded - started:6.2f} s  {len(texts) / bulk:6.1f} chunks/s"
                  f"  query p50 {sorted(times)[len(times) // 2] * 1000:5.1f} ms", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=2000)
    parser.add_argument("--models", default="minilm," + "+".join(DEFAULT_MODELS),
                        help="comma-separated embedding_model values; the first is the baseline")
    parser.add_argument("--only", default="a,b")
    parser.add_argument("--reps", type=int, default=3, help="spawns per model in b")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0)
    args = parser.parse_args(argv)
    install_cleanup()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    print(f"model_bench: models {models}, {os.cpu_count()} CPUs, {load_average()}")
    only = {x.strip() for x in args.only.split(",")}
    if "c" in only:
        bench_c(models)
    if "b" in only:
        bench_b(models, args.reps, min(args.timeout, 300.0))
    if "a" in only:
        bench_a(models, args.notes, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
