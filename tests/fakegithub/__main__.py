"""C{python -m tests.fakegithub}: serve a generated dataset until stdin closes."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

import tests.fakegithub
from tests.fakegithub.dataset import populate
from tests.fakegithub.server import FakeGitHub, Recorded


def _watch_stdin(reactor: Any, stream: TextIO) -> None:
    def read() -> None:
        while stream.read(4096):
            pass
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=read, daemon=True).start()


def main(argv: Iterable[str] | None = None) -> None:
    """Serve a generated dataset until stdin closes (see the module docstring)."""
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(prog="python -m tests.fakegithub",
                                     description=tests.fakegithub.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-token")
    parser.add_argument("--login", default="octo")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--repos", type=int, default=3)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--now", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=100_000)
    parser.add_argument("--log", default=None, help="append each request as a JSON line")
    args = parser.parse_args(list(argv) if argv is not None else None)
    fake = FakeGitHub(reactor, args.token, args.login, args.prefix,
                      rate_limit=args.rate_limit)
    fake.latency = args.latency
    populate(fake, args.repos, args.items, args.now or reactor.seconds(), args.seed)
    if args.log:
        log = open(args.log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

        def note(record: Recorded) -> None:
            log.write(json.dumps({"path": record.path, "query": record.query}) + "\n")

        fake.on_request = note
    fake.listen(args.port)
    print(json.dumps({"port": fake.port, "base_url": fake.base_url}), flush=True)
    _watch_stdin(reactor, sys.stdin)
    reactor.run()


if __name__ == "__main__":
    main()
