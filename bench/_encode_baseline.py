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
from collections.abc import Callable
from pathlib import Path

Encode = Callable[[list[str]], object]


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
    from enttok.index.embedder import worker_environment

    os.environ.update(worker_environment())  # before torch is imported
    started = time.perf_counter()
    if args.model == "minilm":
        out, bulk, single = sentence_transformers_model(args.batch_size)
    else:
        out, bulk, single = other_model(args.model)
    out.update(load_seconds=time.perf_counter() - started, load_cpu_seconds=time.process_time())
    if args.texts is not None:
        out.update(time_texts(bulk, json.loads(args.texts.read_text()), args.call_size,
                              args.repeat))
    if args.queries is not None:
        queries = json.loads(args.queries.read_text())
        out["query_seconds"] = time_queries(single, queries)
        one_thread = out.pop("one_thread", None)
        if callable(one_thread):  # a diagnostic: the same queries on one torch thread
            one_thread()
            out["query_seconds_1_thread"] = time_queries(single, queries)
    out.pop("one_thread", None)
    print(json.dumps(out))
    return 0


def sentence_transformers_model(batch_size: int) -> tuple[dict[str, object], Encode, Encode]:
    """The bundled all-MiniLM-L6-v2 loaded as the worker loads it, warmed up."""
    import torch
    from sentence_transformers import SentenceTransformer

    from enttok.index.embedder import default_model_path

    model = SentenceTransformer(default_model_path(), device="cpu")
    model.encode(["warm up"], show_progress_bar=False)

    def encode(texts: list[str], size: int) -> object:
        return model.encode(texts, batch_size=size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    out: dict[str, object] = {"torch_threads": torch.get_num_threads()}
    if torch.get_num_threads() > 1:
        out["one_thread"] = lambda: torch.set_num_threads(1)
    return out, lambda texts: encode(texts, batch_size), lambda texts: encode(texts, 32)


def other_model(name: str) -> tuple[dict[str, object], Encode, Encode]:
    """A model that is not sentence-transformers (USE, ONNX), as the worker loads it."""
    from enttok.index.models import in_process_embedder

    model = in_process_embedder(name)
    model.load()
    return {"torch_threads": 0}, model.embed, model.embed


def time_texts(encode: Encode, texts: list[str], call_size: int,
               repeat: int) -> dict[str, object]:
    """Encode C{texts} C{repeat} times (in calls of C{call_size}): the median wall time."""
    runs = []
    cpu = time.process_time()
    size = call_size or len(texts) or 1
    for _ in range(repeat):
        wall = time.perf_counter()
        for start in range(0, len(texts), size):
            encode(texts[start:start + size])
        runs.append(time.perf_counter() - wall)
    return {"texts": len(texts), "encode_seconds": sorted(runs)[len(runs) // 2],
            "encode_runs": runs, "encode_cpu_seconds": (time.process_time() - cpu) / len(runs)}


def time_queries(encode: Encode, queries: list[str]) -> list[float]:
    """Each query encoded alone, as a search does: seconds each."""
    latencies = []
    for query in queries:
        wall = time.perf_counter()
        encode([query])
        latencies.append(time.perf_counter() - wall)
    return latencies


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
