"""The embedding worker process: C{python -m enttok.index.embed_worker --model NAME}.

Reads requests from stdin and writes answers to stdout (see
L{enttok.index.pipe_worker}); exits when stdin closes, so it never
outlives the daemon.
"""

from __future__ import annotations

import argparse
import os
import sys

from enttok.index.embedder import IEmbedder
from enttok.index.models import MINILM, in_process_embedder
from enttok.index.pipe_worker import read_frame, write_frame


def serve(embedder: IEmbedder) -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from libraries must not corrupt the pipe
    while True:
        try:
            op, arg = read_frame(stdin)
        except EOFError:
            return
        try:
            if op == "load":
                embedder.load()
                write_frame(stdout, ("ok", embedder.dimension))
            elif op == "embed":
                write_frame(stdout, ("ok", embedder.embed(arg)))
            else:
                write_frame(stdout, ("error", f"unknown op {op!r}"))
        except Exception as e:
            write_frame(stdout, ("error", f"{type(e).__name__}: {e}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=MINILM,
                        help="a model name (enttok.index.models) or a model folder")
    parser.add_argument("--threads", type=int, default=None, help="the runtime's threads")
    args = parser.parse_args()
    serve(in_process_embedder(args.model, args.threads))
    # The pipe is closed: nothing is left to flush, and torch's teardown takes seconds.
    os._exit(0)


if __name__ == "__main__":
    main()
