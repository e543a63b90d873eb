"""End-to-end job throughput of the real daemon, against raw SQLite in the same run.

    uv run --frozen python bench/jobs_throughput.py [-n 2000] [--connections 4]

1. Baseline: the same rows written straight to a fresh database with the
   daemon's schema and pragmas (enttok.store.db.connect + migrate): per job one
   transaction to insert it (queued) and one for each update (running,
   succeeded), each with its job_events row. Measured twice: hand-written SQL,
   and through enttok.jobs.store (the functions the daemon calls).
2. The daemon (bench/_daemon_with_noop.py, a separate process) gets N
   distinct no-op jobs over REST on a few keep-alive connections, while one
   /events WebSocket client records when each job is queued, running and
   succeeded. A final paged GET /jobs checks every job is stored as succeeded.

Prints the rates, the ratio daemon / raw SQLite, and whether the end-to-end
rate meets the target (200 jobs/s). Exits 1 if the run did not complete.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, threads

from bench._benchutil import (
    Client,
    cpu_seconds,
    install_cleanup,
    ms,
    percentile,
    run_reactor,
    scratch_daemon,
)
from enttok.common.times import utc_iso
from enttok.jobs import store
from enttok.jobs.model import Job, payload_key
from enttok.store.db import connect
from enttok.store.migrations import migrate

TARGET_JOBS_PER_SEC = 200.0
JOB_TYPE = "bench.noop"
TERMINAL = ("succeeded", "failed", "canceled")


# Baseline: SQLite alone


def _status_meta(job_id: str, status: str, seq: int) -> str:
    return json.dumps({"type": "job.status", "job_id": job_id, "job_type": JOB_TYPE,
                       "status": status, "seq": seq})


def raw_sqlite(conn: sqlite3.Connection, n: int) -> None:
    """Write N jobs through their three states with hand-written SQL."""
    now = utc_iso(time.time())
    insert_event = ("insert into job_events (event_id, job_id, created_at, level, message, "
                    "meta_json) values (?, ?, ?, ?, ?, ?)")
    update = ("update jobs set status = ?, updated_at = ?, progress = ?, message = ?, "
              "payload_json = ?, result_json = ?, error_json = ?, attempts = ?, "
              "payload_key = ? where job_id = ? and status = ?")
    seq = 0
    for i in range(n):
        job_id = f"job_19700101_{i:03d}"
        payload = json.dumps({"n": i})
        key = payload_key(JOB_TYPE, {"n": i})
        seq += 1
        conn.execute("begin immediate")
        conn.execute(
            "insert into jobs (job_id, type, status, created_at, updated_at, progress, "
            "message, payload_json, result_json, error_json, attempts, payload_key) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, JOB_TYPE, "queued", now, now, 0.0, None, payload, None, None, 0, key))
        conn.execute(insert_event, (seq, job_id, now, "info", "queued",
                                    _status_meta(job_id, "queued", seq)))
        conn.execute("commit")
        for old, new, progress in (("queued", "running", 0.0),
                                   ("running", "succeeded", 1.0)):
            seq += 1
            conn.execute("begin immediate")
            conn.execute(update, (new, now, progress, None, payload, None, None, 1, key,
                                  job_id, old))
            conn.execute(insert_event, (seq, job_id, now, "info", new,
                                        _status_meta(job_id, new, seq)))
            conn.execute("commit")


def store_functions(conn: sqlite3.Connection, n: int) -> None:
    """Write N jobs through their three states with enttok.jobs.store."""
    now = utc_iso(time.time())
    seq = 0

    def event(job: Job) -> store.EventRow:
        nonlocal seq
        seq += 1
        return store.EventRow(seq, job.job_id, now, "info", job.status,
                              {"type": "job.status", "job_id": job.job_id,
                               "job_type": JOB_TYPE, "status": job.status, "seq": seq})

    for i in range(n):
        job = Job(job_id=f"job_19700101_{i:03d}", type=JOB_TYPE, status="queued",
                  created_at=now, updated_at=now, payload={"n": i},
                  key=payload_key(JOB_TYPE, {"n": i}))
        store.insert_job(conn, job, [event(job)])
        job.status, job.attempts = "running", 1
        store.save_job(conn, job, "queued", [event(job)])
        job.status, job.progress, job.result = "succeeded", 1.0, None
        store.save_job(conn, job, "running", [event(job)])


def time_baselines(writers: list[Callable[[sqlite3.Connection, int], None]], n: int,
                   directory: Path, repeat: int = 5) -> list[float]:
    """
    The best of C{repeat} timings of each writer for N jobs, each run on a fresh
    database; the writers take turns, so a busy moment does not favour one.
    """
    best = [float("inf")] * len(writers)
    for k in range(repeat):
        for w, write in enumerate(writers):
            best[w] = min(best[w], _time_once(write, n, directory / f"{write.__name__}-{k}.db"))
    return best


def _time_once(write: Callable[[sqlite3.Connection, int], None], n: int, path: Path) -> float:
    conn = connect(path)
    try:
        migrate(conn)
        start = time.perf_counter()
        write(conn, n)
        elapsed = time.perf_counter() - start
        stored = conn.execute("select count(*) from jobs where status = 'succeeded'").fetchone()
        if stored[0] != n:
            raise RuntimeError(f"baseline stored {stored[0]} of {n} jobs")
    finally:
        conn.close()
    return elapsed


# The daemon


class Tracker:
    """When each job's status messages arrived on /events (perf_counter seconds)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: dict[str, dict[str, float]] = {s: {} for s in ("queued", "running",
                                                                    *TERMINAL)}
        self.done: defer.Deferred[None] = defer.Deferred()
        self.resyncs = 0  # the daemon dropped messages to this (too slow) client

    def record(self, job_id: str, status: str, when: float) -> None:
        self.seen.setdefault(status, {}).setdefault(job_id, when)
        finished = sum(len(self.seen[s]) for s in TERMINAL)
        if finished >= self.n and not self.done.called:
            self.done.callback(None)


class EventsListener(WebSocketClientProtocol):
    factory: ListenerFactory

    def onOpen(self) -> None:
        if not self.factory.opened.called:
            self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        now = time.perf_counter()
        message = json.loads(payload)
        if message.get("type") == "job.status" and message.get("job_type") == JOB_TYPE:
            self.factory.tracker.record(message["job_id"], message["status"], now)
        elif message.get("type") == "resync":
            self.factory.tracker.resyncs += 1

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(RuntimeError(f"/events refused: {code} {reason}"))


class ListenerFactory(WebSocketClientFactory):
    protocol = EventsListener

    def __init__(self, url: str, token: str, tracker: Tracker) -> None:
        super().__init__(url, protocols=[f"enttok.token.{token}"])
        self.tracker = tracker
        self.opened: defer.Deferred[EventsListener] = defer.Deferred()


class Submissions:
    """The outcome of submitting: per job index, (sent, answered, job_id)."""

    def __init__(self) -> None:
        self.jobs: dict[int, tuple[float, float, str]] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()


def submit_all(port: int, token: str, n: int, connections: int, deadline: float,
               stop: threading.Event) -> Submissions:
    """
    POST N distinct jobs on C{connections} keep-alive connections (blocking);
    gives up at C{deadline} (C{time.monotonic}) or once C{stop} is set.
    """
    result = Submissions()
    counter = itertools.count()

    def worker() -> None:
        client = Client(port, token)
        try:
            while (time.monotonic() < deadline and not stop.is_set()
                   and len(result.errors) < 20):
                with result.lock:
                    i = next(counter)
                if i >= n:
                    return
                sent = time.perf_counter()
                try:
                    status, body = client.request(
                        "POST", "/jobs", {"type": JOB_TYPE, "payload": {"n": i}})
                except OSError as e:  # includes http.client's errors on a dropped connection
                    result.errors.append(f"job {i}: {type(e).__name__}: {e}")
                    client.close()
                    client = Client(port, token)
                    continue
                answered = time.perf_counter()
                if status != 201 or body.get("coalesced"):
                    result.errors.append(f"job {i}: HTTP {status} {body}")
                    continue
                with result.lock:
                    result.jobs[i] = (sent, answered, body["job_id"])
        finally:
            client.close()

    workers = [threading.Thread(target=worker, name=f"submit-{k}", daemon=True)
               for k in range(connections)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
    return result


def count_stored(port: int, token: str, n: int) -> tuple[dict[str, int], dict[str, Any]]:
    """Count the benchmark's jobs by stored status (paged GET /jobs) and read /status."""
    client = Client(port, token)
    try:
        counts: dict[str, int] = {}
        for status in ("succeeded", "failed", "canceled", "queued", "running"):
            cursor: str | None = None
            for _ in range(n // 200 + 3):  # bounded paging
                path = f"/jobs?status={status}&type={JOB_TYPE}&limit=200"
                code, page = client.request("GET", path + (f"&cursor={cursor}" if cursor else ""))
                if code != 200:
                    raise RuntimeError(f"GET /jobs answered {code}: {page}")
                counts[status] = counts.get(status, 0) + len(page["jobs"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        _, daemon_status = client.request("GET", "/status")
        return counts, daemon_status
    finally:
        client.close()


def rate(count: int, seconds: float) -> str:
    if seconds <= 0:
        return "n/a"
    return f"{count / seconds:8.1f} jobs/s  ({count} in {seconds:.3f} s)"


async def run_daemon(reactor: Any, args: argparse.Namespace, baseline_rate: float) -> None:
    stop = threading.Event()  # set when the reactor stops early (e.g. on SIGINT)
    reactor.addSystemEventTrigger("before", "shutdown", stop.set)
    ok = False
    with scratch_daemon("enttok-bench-jobs-", keep=args.keep, workers=args.workers,
                        profile=args.profile, access_log=not args.no_access_log) as running:
        port, pid, token = running.port, running.pid, running.token
        tracker = Tracker(args.n)
        factory = ListenerFactory(f"ws://127.0.0.1:{port}/events", token, tracker)
        reactor.connectTCP("127.0.0.1", port, factory, timeout=10)
        listener = await factory.opened.addTimeout(10, reactor)

        deadline = time.monotonic() + args.timeout
        cpu_before, client_before = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
        submitted = await threads.deferToThread(
            submit_all, port, token, args.n, args.connections, deadline, stop)
        expected = len(submitted.jobs)
        tracker.n = expected
        if sum(len(tracker.seen[s]) for s in TERMINAL) >= expected and \
                not tracker.done.called:
            tracker.done.callback(None)
        left = max(0.1, deadline - time.monotonic())
        try:
            await tracker.done.addTimeout(left, reactor)
        except defer.TimeoutError:
            print(f"TIMEOUT: only {sum(len(tracker.seen[s]) for s in TERMINAL)} of "
                  f"{expected} jobs finished within {args.timeout:.0f} s")
        cpu_after, client_after = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
        cpu = {"client": (client_after.ru_utime + client_after.ru_stime
                          - client_before.ru_utime - client_before.ru_stime)}
        if cpu_before is not None and cpu_after is not None:
            cpu["reactor thread"] = cpu_after[0] - cpu_before[0]
            cpu["daemon"] = cpu_after[1] - cpu_before[1]
        counts, daemon_status = await threads.deferToThread(
            count_stored, port, token, args.n)
        confirmed = time.perf_counter()
        listener.sendClose()
        ok = report(args, submitted, tracker, counts, daemon_status, confirmed, cpu,
                    baseline_rate)
    if not ok:
        raise SystemExit(1)


def report(args: argparse.Namespace, submitted: Submissions, tracker: Tracker,
           counts: dict[str, int], daemon_status: dict[str, Any], confirmed: float,
           cpu: dict[str, float], baseline_rate: float) -> bool:
    jobs = submitted.jobs
    n_ok = len(jobs)
    if not jobs:
        print("no job was accepted:", *submitted.errors[:5], sep="\n  ")
        return False
    t0 = min(sent for sent, _, _ in jobs.values())
    by_id = {job_id: sent for sent, _, job_id in jobs.values()}
    succeeded = tracker.seen["succeeded"]

    def last(status: str) -> float:
        times = [t for job_id, t in tracker.seen[status].items() if job_id in by_id]
        return max(times) - t0 if times else 0.0

    post_latency = [answered - sent for sent, answered, _ in jobs.values()]
    e2e_latency = [succeeded[job_id] - sent for job_id, sent in by_id.items()
                   if job_id in succeeded]
    finished_s = last("succeeded")
    e2e = len(e2e_latency) / finished_s if finished_s > 0 else 0.0

    print(f"daemon end-to-end ({n_ok} accepted of {args.n}, {args.connections} connections, "
          f"workers={args.workers or 'default'}):")
    answered_s = max(answered for _, answered, _ in jobs.values()) - t0
    seen = {status: len(tracker.seen[status]) for status in ("queued", "running")}
    print(f"  submitted+persisted (POST 201): {rate(n_ok, answered_s)}")
    print(f"  queued   (/events job.status):  {rate(seen['queued'], last('queued'))}")
    print(f"  running  (/events job.status):  {rate(seen['running'], last('running'))}")
    print(f"  finished (/events succeeded):   {rate(len(e2e_latency), finished_s)}")
    print(f"  stored (GET /jobs after last event, {confirmed - t0:.3f} s): {counts}")
    print(f"  /status at the end: queue_depth={daemon_status.get('queue_depth')} "
          f"workers={daemon_status.get('workers')}")
    print(f"  POST /jobs latency:          p50 {ms(percentile(post_latency, 50))}  "
          f"p99 {ms(percentile(post_latency, 99))}  max {ms(max(post_latency))}")
    print(f"  submit -> succeeded latency: p50 {ms(percentile(e2e_latency, 50))}  "
          f"p99 {ms(percentile(e2e_latency, 99))}  max {ms(max(e2e_latency, default=0.0))}")
    busy = ", ".join(f"{name} {seconds:.2f} s ({seconds / n_ok * 1000:.2f} ms/job, "
                     f"{seconds / finished_s:.0%} of the run)"
                     for name, seconds in cpu.items() if finished_s > 0)
    print(f"  CPU used: {busy}")
    if tracker.resyncs:
        print(f"  the daemon dropped /events messages to the listener ({tracker.resyncs} "
              "resyncs): event-based rates are incomplete")
    if submitted.errors:
        print(f"  {len(submitted.errors)} submission errors, first: {submitted.errors[0]}")
    print(f"ratio daemon / raw SQLite: {e2e:.1f} / {baseline_rate:.1f} = "
          f"{e2e / baseline_rate:.3f}")
    verdict = "PASS" if e2e >= TARGET_JOBS_PER_SEC else "FAIL"
    print(f"target >= {TARGET_JOBS_PER_SEC:.0f} jobs/s end-to-end: {verdict} ({e2e:.1f} jobs/s)")
    complete = (n_ok == args.n and len(e2e_latency) == n_ok
                and counts.get("succeeded") == n_ok and not submitted.errors)
    if not complete:
        print("INCOMPLETE: not every job was accepted, run and stored as succeeded")
    return complete


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="End-to-end job throughput of the enttok daemon vs raw SQLite.",
        epilog="Run by hand from the repository root; never from the tests.")
    parser.add_argument("-n", type=int, default=2000, help="jobs to submit (default 2000)")
    parser.add_argument("--connections", type=int, default=4,
                        help="concurrent keep-alive HTTP connections (default 4)")
    parser.add_argument("--workers", type=int, default=None,
                        help="the daemon's 'workers' setting (default: its default, 2)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds allowed for submitting and finishing (default 180)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write the daemon's cProfile stats to this file")
    parser.add_argument("--no-access-log", action="store_true",
                        help="experiment: the daemon skips its per-request access log")
    parser.add_argument("--keep", action="store_true", help="keep the daemon's data folder")
    args = parser.parse_args(argv)
    if args.n < 1 or args.connections < 1:
        parser.error("-n and --connections must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    install_cleanup()
    print(f"jobs_throughput: N={args.n}, {os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}, "
          f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="enttok-bench-sqlite-") as tmp:
        raw_s, store_s = time_baselines([raw_sqlite, store_functions], args.n, Path(tmp))
    raw_rate = args.n / raw_s
    print("baseline SQLite (best of 5), 3 transactions per job (insert, ->running, ->succeeded), "
          "each with a job_events row, WAL, synchronous=normal:")
    print(f"  raw SQL:             {raw_rate:8.1f} jobs/s  ({3 * args.n / raw_s:.0f} "
          f"transactions/s, {args.n} jobs in {raw_s:.3f} s)")
    print(f"  enttok.jobs.store:   {args.n / store_s:8.1f} jobs/s  ({3 * args.n / store_s:.0f} "
          f"transactions/s, {args.n} jobs in {store_s:.3f} s)")
    sys.exit(run_reactor(lambda reactor: run_daemon(reactor, args, raw_rate)))


if __name__ == "__main__":
    main()
