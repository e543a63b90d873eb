"""WebSocket fan-out latency of the daemon's /events, against plain Autobahn in the same run.

    uv run --frozen python bench/ws_fanout.py [--clients 50] [--count 50] [--interval-ms 200]

1. Baseline: a minimal Autobahn server (bench/_ws_baseline_server.py, a
   separate process) on 127.0.0.1:
     - echo: one client sends small messages one after another and measures
       each round trip;
     - broadcast: the server sends COUNT timestamped messages to CLIENTS
       clients, the same way the daemon's event stream does; one-way latency.
2. The daemon (bench/_daemon_with_noop.py, a separate process): CLIENTS
   clients on /events (token subprotocol), one bench.progress job that reports
   progress COUNT times, INTERVAL ms apart (above the engine's 100 ms progress
   throttle, so none is merged), each carrying its emit time; latency is from
   emit (in the job handler) to receipt by each client.

Clients run in this process; the servers in their own. Prints p50/p99/max, the
ratios against the baselines, and whether p99 meets the target (20 ms).
Exits 1 if the run did not complete.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, threads

from bench._benchutil import (
    WS_BASELINE_SCRIPT,
    Client,
    install_cleanup,
    ms,
    percentile,
    run_reactor,
    scratch_daemon,
    spawn,
    stop_child,
)

TARGET_P99 = 0.020
JOB_TYPE = "bench.progress"

OnMessage = Callable[["Peer", dict[str, Any], float], None]


class Peer(WebSocketClientProtocol):
    """One client: hands each decoded message, with its receipt time, to the factory."""

    factory: PeerFactory

    def onOpen(self) -> None:
        if not self.factory.opened.called:
            self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        received = time.time()
        self.factory.on_message(self, json.loads(payload), received)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(
                RuntimeError(f"WebSocket refused or closed: {code} {reason}"))


class PeerFactory(WebSocketClientFactory):
    protocol = Peer

    def __init__(self, url: str, on_message: OnMessage, protocols: list[str] | None) -> None:
        super().__init__(url, protocols=protocols)
        self.on_message = on_message
        self.opened: defer.Deferred[Peer] = defer.Deferred()


async def connect_all(reactor: Any, port: int, path: str, n: int, on_message: OnMessage,
                      protocols: list[str] | None = None, timeout: float = 20.0) -> list[Peer]:
    """Open C{n} WebSocket clients to 127.0.0.1:C{port}C{path}."""
    factories = [PeerFactory(f"ws://127.0.0.1:{port}{path}", on_message, protocols)
                 for _ in range(n)]
    for factory in factories:
        reactor.connectTCP("127.0.0.1", port, factory, timeout=timeout)
    opened = defer.gatherResults([f.opened for f in factories], consumeErrors=True)
    peers: list[Peer] = await opened.addTimeout(timeout, reactor)
    return peers


def close_all(peers: list[Peer]) -> None:
    for peer in peers:
        peer.sendClose()


def row(label: str, latencies: list[float]) -> None:
    print(f"  {label + ':':<42} p50 {ms(percentile(latencies, 50)):>9}  "
          f"p99 {ms(percentile(latencies, 99)):>9}  "
          f"max {ms(max(latencies, default=float('nan'))):>9}  ({len(latencies)} samples)")


class Collector:
    """One-way latencies of timestamped messages, and when every client saw the end."""

    def __init__(self, clients: int, is_sample: Callable[[dict[str, Any]], bool],
                 is_end: Callable[[dict[str, Any]], bool]) -> None:
        self.latencies: list[float] = []
        self.by_emit: dict[str, list[float]] = {}
        self._clients = clients
        self._is_sample = is_sample
        self._is_end = is_end
        self._ended: set[Peer] = set()
        self.resyncs = 0  # the server dropped messages to a (too slow) client
        self.done: defer.Deferred[None] = defer.Deferred()

    def __call__(self, peer: Peer, message: dict[str, Any], received: float) -> None:
        if self._is_sample(message):
            latency = received - float(message["message"])
            self.latencies.append(latency)
            self.by_emit.setdefault(message["message"], []).append(latency)
        elif message.get("type") == "resync":
            self.resyncs += 1
        elif self._is_end(message):
            self._ended.add(peer)
            if len(self._ended) >= self._clients and not self.done.called:
                self.done.callback(None)

    def spreads(self) -> list[float]:
        """Per emitted message: last client's latency minus the first's."""
        return [max(v) - min(v) for v in self.by_emit.values() if len(v) > 1]


async def baseline(reactor: Any, args: argparse.Namespace) -> dict[str, list[float]]:
    """Echo round trips and a plain broadcast, against the minimal Autobahn server."""
    proc, ready = spawn([str(WS_BASELINE_SCRIPT)], timeout=30)
    try:
        port = int(ready["port"])
        waiting: dict[int, tuple[float, defer.Deferred[float]]] = {}

        def echoed(peer: Peer, message: dict[str, Any], received: float) -> None:
            sent, d = waiting.pop(message["i"])
            d.callback(time.perf_counter() - sent)

        [echo] = await connect_all(reactor, port, "/", 1, echoed)
        rtts = []
        deadline = time.monotonic() + args.timeout
        for i in range(args.pings):
            if time.monotonic() > deadline:
                break
            d: defer.Deferred[float] = defer.Deferred()
            waiting[i] = (time.perf_counter(), d)
            echo.sendMessage(json.dumps({"i": i, "pad": "x" * 64}).encode(), isBinary=False)
            rtts.append(await d.addTimeout(5, reactor))
        close_all([echo])

        collect = Collector(args.clients, lambda m: m.get("type") == "tick",
                            lambda m: m.get("type") == "done")
        peers = await connect_all(reactor, port, "/", args.clients, collect)
        peers[0].sendMessage(f"broadcast {args.count} {args.interval_ms}".encode(),
                             isBinary=False)
        await wait_for(reactor, collect.done, run_time(args), "the baseline broadcast")
        close_all(peers)
        return {"rtt": rtts, "broadcast": collect.latencies, "spread": collect.spreads()}
    finally:
        stop_child(proc)


async def wait_for(reactor: Any, d: defer.Deferred[None], seconds: float, what: str) -> None:
    """Wait for C{d}, at most C{seconds}; on time-out say so and go on."""
    try:
        await d.addTimeout(seconds, reactor)
    except defer.TimeoutError:
        print(f"TIMEOUT: {what} did not finish within {seconds:.0f} s")


def run_time(args: argparse.Namespace) -> float:
    """Seconds allowed for one series of COUNT messages."""
    return args.count * args.interval_ms / 1000 + args.timeout


async def daemon_fanout(reactor: Any, args: argparse.Namespace
                        ) -> tuple[dict[str, list[float]], int]:
    """Progress events of one job, fanned out by the daemon to every client."""
    with scratch_daemon("enttok-bench-ws-", keep=args.keep) as running:
        port, token = running.port, running.token
        collect = Collector(
            args.clients, lambda m: m.get("type") == "job.progress",
            lambda m: (m.get("type") == "job.status" and m.get("job_type") == JOB_TYPE
                       and m.get("status") in ("succeeded", "failed", "canceled")))
        peers = await connect_all(reactor, port, "/events", args.clients, collect,
                                  protocols=[f"enttok.token.{token}"])

        def submit() -> str:
            client = Client(port, token)
            try:
                status, body = client.request("POST", "/jobs", {
                    "type": JOB_TYPE,
                    "payload": {"count": args.count, "interval_ms": args.interval_ms}})
            finally:
                client.close()
            if status != 201:
                raise RuntimeError(f"POST /jobs answered {status}: {body}")
            return str(body["job_id"])

        await threads.deferToThread(submit)
        await wait_for(reactor, collect.done, run_time(args), "the bench.progress job")
        close_all(peers)
        if collect.resyncs:
            print(f"the daemon dropped messages to slow clients ({collect.resyncs} resyncs)")
        return ({"fanout": collect.latencies, "spread": collect.spreads()},
                len(collect.by_emit))


async def run(reactor: Any, args: argparse.Namespace) -> None:
    base = await baseline(reactor, args)
    print("baseline, a minimal Autobahn server on 127.0.0.1 (separate process):")
    row("echo round trip (1 client, sequential)", base["rtt"])
    row(f"broadcast to {args.clients} clients, one-way", base["broadcast"])
    row("broadcast spread, first -> last client", base["spread"])

    got, emits = await daemon_fanout(reactor, args)
    expected = args.clients * args.count
    fanout = got["fanout"]
    print(f"enttok /events fan-out ({args.clients} clients, {emits} of {args.count} progress "
          f"events seen, {len(fanout)} of {expected} receipts):")
    row("emit (job handler) -> receipt", fanout)
    row("spread, first -> last client", got["spread"])
    p99 = percentile(fanout, 99)
    for name, values in (("echo round trip", base["rtt"]),
                         (f"Autobahn broadcast to {args.clients}", base["broadcast"])):
        reference = percentile(values, 99)
        print(f"ratio p99 enttok / p99 {name}: {ms(p99)} / {ms(reference)} = "
              f"{p99 / reference:.2f}")
    verdict = "PASS" if p99 < TARGET_P99 else "FAIL"
    print(f"target p99 < {TARGET_P99 * 1000:.0f} ms: {verdict} ({ms(p99)})")
    if len(fanout) != expected:
        print("INCOMPLETE: some progress events did not reach every client")
        raise SystemExit(1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="WebSocket fan-out latency of the enttok daemon vs plain Autobahn.",
        epilog="Run by hand from the repository root; never from the tests.")
    parser.add_argument("--clients", type=int, default=50,
                        help="WebSocket clients (default 50)")
    parser.add_argument("--count", type=int, default=50,
                        help="progress events (and baseline broadcasts) to send (default 50)")
    parser.add_argument("--interval-ms", type=int, default=200,
                        help="milliseconds between them (default 200; keep >= 100, "
                             "the engine's progress throttle)")
    parser.add_argument("--pings", type=int, default=1000,
                        help="echo round trips in the baseline (default 1000)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds allowed beyond each series' own duration (default 60)")
    parser.add_argument("--keep", action="store_true", help="keep the daemon's data folder")
    args = parser.parse_args(argv)
    if min(args.clients, args.count, args.pings) < 1 or args.interval_ms < 0:
        parser.error("--clients, --count and --pings must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    install_cleanup()
    print(f"ws_fanout: {args.clients} clients, {args.count} messages {args.interval_ms} ms "
          f"apart, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    sys.exit(run_reactor(lambda reactor: run(reactor, args)))


if __name__ == "__main__":
    main()
