"""Raw sentence-transformers timings, the baseline of the index benchmarks.

    python bench/_encode_baseline.py [--model NAME] [--texts FILE] [--queries FILE]
                                     [--batch-size 64]

Runs in its own process with the environment of enttok's embedding worker
(C{enttok.index.embedder.worker_environment}: passive OpenMP threads, offline)
and loads the same bundled all-MiniLM-L6-v2, the same way (C{device="cpu"}, one
warm-up call). Then:

  - C{--texts}: a JSON list of strings, encoded in one C{model.encode} call (or
    in calls of C{--call-size} texts) with C{--batch-size}, normalised (what the
    indexer's chunks would cost with nothing around the model), C{--repeat}
    times (the median is reported);
  - C{--queries}: a JSON list of strings, each encoded alone, as a search does;
    then again with C{torch.set_num_threads(1)} (when torch uses more threads).

With C{--model} other than C{minilm}, the model of that name
(L{enttok.index.models}) is loaded in this process the way the embedding worker
loads it, and its C{embed} is timed the same way.

Prints one JSON line: load wall and CPU seconds, encode wall and CPU seconds (per
run), per-query seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=Path, default=None)
    parser.add_argument("--queries", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="encode the texts this often")
    parser.add_argument("--call-size", type=int, default=0,
                        help="texts per encode call (default 0: all in one call; the "
                             "indexer sends 64 per call)")
    parser.add_argument("--model", default="minilm", help="a model name (enttok.index.models)")
    args = parser.parse_args(argv)
    if args.model != "minilm":
        return other_model(args)

    from enttok.index.embedder import default_model_path, worker_environment

    os.environ.update(worker_environment())  # before torch is imported
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(default_model_path(), device="cpu")
    model.encode(["warm up"], show_progress_bar=False)
    out: dict[str, object] = {"load_seconds": time.perf_counter() - started,
                              "load_cpu_seconds": time.process_time()}
    import torch

    out["torch_threads"] = torch.get_num_threads()
    if args.texts is not None:
        texts = json.loads(args.texts.read_text())
        runs = []
        cpu = time.process_time()
        size = args.call_size or len(texts) or 1
        for _ in range(args.repeat):
            wall = time.perf_counter()
            for start in range(0, len(texts), size):
                model.encode(texts[start:start + size], batch_size=args.batch_size,
                             normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
            runs.append(time.perf_counter() - wall)
        out.update(texts=len(texts), encode_seconds=sorted(runs)[len(runs) // 2],
                   encode_runs=runs, encode_cpu_seconds=(time.process_time() - cpu) / len(runs))
    if args.queries is not None:
        latencies = []
        for query in json.loads(args.queries.read_text()):
            wall = time.perf_counter()
            model.encode([query], batch_size=32, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
            latencies.append(time.perf_counter() - wall)
        out["query_seconds"] = latencies
        if torch.get_num_threads() > 1:  # a diagnostic: the same queries on one thread
            torch.set_num_threads(1)
            single = []
            for query in json.loads(args.queries.read_text()):
                wall = time.perf_counter()
                model.encode([query], batch_size=32, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False)
                single.append(time.perf_counter() - wall)
            out["query_seconds_1_thread"] = single
    print(json.dumps(out))
    return 0


def other_model(args: argparse.Namespace) -> int:
    """The same timings for a model that is not sentence-transformers (USE, ONNX)."""
    from enttok.index.embedder import worker_environment
    from enttok.index.models import in_process_embedder

    os.environ.update(worker_environment())
    started = time.perf_counter()
    model = in_process_embedder(args.model)
    model.load()
    out: dict[str, object] = {"load_seconds": time.perf_counter() - started,
                              "load_cpu_seconds": time.process_time(), "torch_threads": 0}
    if args.texts is not None:
        texts = json.loads(args.texts.read_text())
        runs = []
        cpu = time.process_time()
        size = args.call_size or len(texts) or 1
        for _ in range(args.repeat):
            wall = time.perf_counter()
            for start in range(0, len(texts), size):
                model.embed(texts[start:start + size])
            runs.append(time.perf_counter() - wall)
        out.update(texts=len(texts), encode_seconds=sorted(runs)[len(runs) // 2],
                   encode_runs=runs, encode_cpu_seconds=(time.process_time() - cpu) / len(runs))
    if args.queries is not None:
        latencies = []
        for query in json.loads(args.queries.read_text()):
            wall = time.perf_counter()
            model.embed([query])
            latencies.append(time.perf_counter() - wall)
        out["query_seconds"] = latencies
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
