"""REST and WebSocket load on the daemon while it indexes, against the same load when idle.

    uv run --frozen python bench/load.py [--seconds 60] [--notes 1000] [--clients 50] [--rate 20]

1. Baseline: the daemon (bench/_daemon_with_noop.py: the real service tree and the
   real embedding model) with no vault yet, so idle; CLIENTS WebSocket clients on
   /events (token subprotocol) and RATE REST requests per second, a fixed mix of
   GET /status, GET /jobs, GET /search (fts) and GET /search (hybrid), for 10 s.
2. Load: the vault (bench/vaultgen.py, NOTES notes) is configured and an
   index.rebuild submitted (and submitted again whenever it ends, so that indexing
   goes on); after a warm-up the same mix runs for SECONDS.

Prints, for each phase: requests, errors (non-2xx, failed requests, WebSocket
clients that dropped), p50/p99/max latency per route and overall; the daemon's
RSS (VmRSS) after the warm-up and at the end (growth, target < 10 %), and the
ratios of the loaded latencies to the baseline. Exits 1 if there were errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

if __package__ in (None, ""):  # run as a script: make "bench" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from treq.client import HTTPClient
from twisted.internet import defer, task
from twisted.web.client import Agent, HTTPConnectionPool

from bench._benchutil import (
    daemon,
    install_cleanup,
    ms,
    new_token,
    percentile,
    run_reactor,
    scratch_dir,
)
from bench._indexutil import children_of, load_average
from bench.vaultgen import ensure_vault, latency_queries
from bench.ws_fanout import Peer, close_all, connect_all

BASELINE_SECONDS = 10.0
WARM_UP_SECONDS = 10.0
REQUEST_TIMEOUT = 30.0
RSS_GROWTH_TARGET = 0.10
ROUTES = ("status", "jobs", "search fts", "search hybrid")


def rss_kib(pid: int) -> int | None:
    """The resident set size of C{pid} in KiB, from /proc (C{None} where unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Phase:
    """Latencies and errors of one phase."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.ws_messages = 0

    def all_latencies(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]

    def report(self) -> None:
        total = self.all_latencies()
        print(f"\n{self.name}: {len(total) + len(self.errors)} requests, "
              f"{len(self.errors)} errors, {self.ws_messages} WebSocket messages received")
        for route in ROUTES:
            values = self.latencies.get(route, [])
            print(f"  {route:<14} n={len(values):<5} p50 {ms(percentile(values, 50)):>10}  "
                  f"p99 {ms(percentile(values, 99)):>10}  "
                  f"max {ms(max(values, default=float('nan'))):>10}")
        print(f"  {'all':<14} n={len(total):<5} p50 {ms(percentile(total, 50)):>10}  "
              f"p99 {ms(percentile(total, 99)):>10}")
        for error in self.errors[:10]:
            print(f"  error: {error}")


class Load:
    """RATE requests a second of the mix, each measured; WebSocket messages counted."""

    def __init__(self, reactor: Any, port: int, token: str, rate: float,
                 queries: list[str]) -> None:
        self.reactor = reactor
        self.base = f"http://127.0.0.1:{port}"
        self.headers: dict[bytes | str, list[bytes | str]] = {
            b"X-Backend-Token": [token.encode()], b"Host": [f"127.0.0.1:{port}".encode()]}
        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = 16
        self.pool = pool
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.rate = rate
        self.queries = queries
        self.phase = Phase("none")
        self.count = 0
        self.in_flight: set[defer.Deferred[None]] = set()

    def next_request(self) -> tuple[str, str]:
        self.count += 1
        route = ROUTES[self.count % len(ROUTES)]
        query = quote(self.queries[self.count % len(self.queries)])
        path = {"status": "/status", "jobs": "/jobs?limit=20",
                "search fts": f"/search?q={query}&mode=fts&k=10",
                "search hybrid": f"/search?q={query}&mode=hybrid&k=10"}[route]
        return route, path

    def fire(self) -> None:
        route, path = self.next_request()
        phase = self.phase
        d = defer.ensureDeferred(self.one(phase, route, path))
        self.in_flight.add(d)
        d.addBoth(lambda _: self.in_flight.discard(d))

    async def one(self, phase: Phase, route: str, path: str) -> None:
        started = time.perf_counter()
        try:
            response = await self.http.get(self.base + path, headers=self.headers,
                                           timeout=REQUEST_TIMEOUT)
            await response.content()
        except Exception as e:  # every failure is counted, none ends the run
            phase.errors.append(f"{route}: {type(e).__name__}: {e}")
            return
        if response.code >= 300:
            phase.errors.append(f"{route}: HTTP {response.code}")
            return
        phase.latencies[route].append(time.perf_counter() - started)

    async def run(self, phase: Phase, seconds: float) -> Phase:
        self.phase = phase
        loop = task.LoopingCall(self.fire)
        loop.clock = self.reactor
        done = loop.start(1.0 / self.rate, now=True)
        await task.deferLater(self.reactor, seconds, lambda: None)
        loop.stop()
        await done
        if self.in_flight:
            await defer.DeferredList(list(self.in_flight))
        return phase

    async def get_json(self, path: str) -> Any:
        response = await self.http.get(self.base + path, headers=self.headers,
                                       timeout=REQUEST_TIMEOUT)
        return json.loads(await response.content())

    async def post_json(self, path: str, body: Any) -> Any:
        headers: dict[bytes | str, list[bytes | str]] = {
            **self.headers, b"Content-Type": [b"application/json"]}
        response = await self.http.post(self.base + path, data=json.dumps(body).encode(),
                                        headers=headers, timeout=REQUEST_TIMEOUT)
        answer = json.loads(await response.content())
        if response.code >= 300:
            raise RuntimeError(f"POST {path}: {response.code} {answer}")
        return answer


class Indexing:
    """Keeps an index.rebuild queued or running until stopped; counts those that ended."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.finished: list[dict[str, Any]] = []
        self.current: str | None = None
        self.stopped = False

    async def keep_going(self) -> None:
        while not self.stopped:
            if self.current is None:
                self.current = (await self.load.post_json(
                    "/jobs", {"type": "index.rebuild", "payload": {}}))["job_id"]
            job = await self.load.get_json(f"/jobs/{self.current}")
            if job["status"] in ("succeeded", "failed", "canceled"):
                self.finished.append(job)
                self.current = None
            await task.deferLater(self.load.reactor, 0.5, lambda: None)

    async def progress(self) -> str:
        if self.current is None:
            return "idle"
        job = await self.load.get_json(f"/jobs/{self.current}")
        return f"{job['status']} {job['progress']:.0%} ({job['message']})"


async def main(reactor: Any, args: argparse.Namespace) -> None:
    root = scratch_dir("enttok-load-", keep=args.keep)
    vault = root / "vault"
    print(f"generating a vault of {args.notes} notes in {vault} ...", flush=True)
    ensure_vault(vault, args.notes, seed=1)
    data_dir = root / "data"
    settings = data_dir / "backend" / "data" / "settings.json"
    settings.parent.mkdir(parents=True)
    # No vault yet (the daemon is idle for the baseline) and no scheduled jobs.
    settings.write_text(json.dumps({"schedule": {"vault_scan_minutes": 0,
                                                 "github_sync_minutes": 0,
                                                 "compact_hours": 0}}))
    token = new_token()
    with daemon(data_dir, token, timeout=120.0) as (port, pid):
        load = Load(reactor, port, token, args.rate, latency_queries(200, seed=3))
        dropped: list[str] = []

        def on_message(peer: Peer, message: dict[str, Any], received: float) -> None:
            load.phase.ws_messages += 1

        peers = await connect_all(reactor, port, "/events", args.clients, on_message,
                                  protocols=[f"enttok.token.{token}", "enttok.v1"])
        for peer in peers:
            original = peer.onClose

            def closed(wasClean: bool, code: int | None, reason: str | None,
                       original: Any = original) -> None:
                if not closing:
                    dropped.append(f"WebSocket closed: {code} {reason}")
                original(wasClean, code, reason)

            peer.onClose = closed  # type: ignore[method-assign]
        closing = False
        print(f"daemon pid {pid} on port {port}; {len(peers)} WebSocket clients; "
              f"{args.rate:g} requests/s; {load_average()}", flush=True)

        baseline = await load.run(Phase(f"baseline (idle daemon, {BASELINE_SECONDS:.0f} s)"),
                                  BASELINE_SECONDS)
        baseline.errors += dropped
        dropped.clear()

        await load.post_json("/settings", {"vault_path": str(vault.resolve())})
        indexing = Indexing(load)
        keeper = defer.ensureDeferred(indexing.keep_going())
        print(f"indexing started; warming up for {WARM_UP_SECONDS:.0f} s", flush=True)
        await load.run(Phase("warm-up"), WARM_UP_SECONDS)
        rss_start = rss_kib(pid)
        print(f"warm: RSS {rss_start} KiB; indexing {await indexing.progress()}; "
              f"{load_average()}", flush=True)
        loaded = await load.run(Phase(f"while indexing ({args.seconds:.0f} s)"), args.seconds)
        rss_end = rss_kib(pid)
        still = await indexing.progress()
        indexing.stopped = True
        await keeper
        loaded.errors += dropped
        closing = True
        close_all(peers)
        workers = [rss_kib(child) for child in children_of(pid)]
        status = await load.get_json("/index/status")

    baseline.report()
    loaded.report()
    print(f"\nindexing: {len(indexing.finished)} index.rebuild ended during the run "
          f"({', '.join(j['status'] for j in indexing.finished) or 'none'}); at the end: "
          f"{still}; index: {status['notes']} notes, {status['chunks']} chunks, "
          f"{status['vectors']} vectors, model loaded: {status['model_loaded']}")
    growth = (rss_end - rss_start) / rss_start if rss_start and rss_end else float("nan")
    verdict = "ok" if growth < RSS_GROWTH_TARGET else "OVER TARGET"
    print(f"daemon RSS: {rss_start} KiB after warm-up, {rss_end} KiB at the end: "
          f"growth {growth:+.1%} (target < {RSS_GROWTH_TARGET:.0%}: {verdict}); "
          f"embedding worker RSS: {workers} KiB")
    base_all, load_all = baseline.all_latencies(), loaded.all_latencies()
    print("latency ratios, while indexing / idle:")
    for route in ROUTES:
        b, x = baseline.latencies.get(route, []), loaded.latencies.get(route, [])
        print(f"  {route:<14} p50 x{percentile(x, 50) / percentile(b, 50):.2f}  "
              f"p99 x{percentile(x, 99) / percentile(b, 99):.2f}")
    print(f"  {'all':<14} p50 x{percentile(load_all, 50) / percentile(base_all, 50):.2f}  "
          f"p99 x{percentile(load_all, 99) / percentile(base_all, 99):.2f}")
    errors = len(baseline.errors) + len(loaded.errors)
    print(f"\nerrors: {errors}; p99 while indexing: {ms(percentile(load_all, 99))}")
    if errors:
        raise SystemExit(1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of the measured load while indexing (default 60)")
    parser.add_argument("--notes", type=int, default=1000, help="vault size (default 1000)")
    parser.add_argument("--clients", type=int, default=50,
                        help="WebSocket clients (default 50)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="REST requests per second (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    return parser.parse_args(argv)


if __name__ == "__main__":
    install_cleanup()
    arguments = parse_args(None)
    sys.exit(run_reactor(lambda reactor: main(reactor, arguments)))
