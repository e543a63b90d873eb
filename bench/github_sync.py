"""GitHub sync throughput end to end, beside the fake GitHub's raw serving rate in the same run.

    uv run --frozen python bench/github_sync.py [--repos 5] [--items 1000] [--latency-ms 0]

1. The fake GitHub (tests/fakegithub/, its own process) serves a generated
   dataset: per repository C{items} issues, pull requests and commits (half
   each, 90% by the user), plus the user's events; it logs every request.
2. The real daemon (bench/_daemon_with_noop.py, its own process) is given the
   GitHub settings over REST and runs one C{connector.github.sync}; the time
   runs from C{POST /jobs} until the job is seen succeeded. Every item the
   fake's data implies is checked to be stored, once.
3. Raw: the same URLs the sync fetched, fetched again by a plain treq loop in
   this process (4 in flight, as the client allows), each body read and
   JSON-decoded, nothing stored.

Prints items/s and requests/s of both, and the ratio sync / raw. Exits 1 if
the sync did not complete or stored the wrong items.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from treq import content
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from bench._benchutil import (
    Client,
    daemon,
    install_cleanup,
    new_token,
    run_reactor,
    scratch_dir,
    spawn,
    stop_child,
)
from tests.fakegithub import FakeGitHub, populate, since_for

LOGIN = "octo"
JOB = "connector.github.sync"
IN_FLIGHT = 4
SYNC_TIMEOUT = 600.0


def expected_items(repos: int, items: int, now: float) -> set[str]:
    """The identities the fake's dataset implies (built here the same way, not served)."""
    from twisted.internet import reactor

    model = FakeGitHub(reactor, None, LOGIN)
    populate(model, repos, items, now)
    return {f"default:{i}" for i in model.expected(since_for(now))}


def run_sync(base_url: str, gh_token: str, repos: list[str], work: Path) -> dict[str, Any]:
    """One sync through the real daemon; blocking. Returns timings, result and items."""
    token = new_token()
    data_dir = work / "daemon"
    data_dir.mkdir()
    with daemon(data_dir, token) as (port, _pid):
        client = Client(port, token, timeout=60)
        code, body = client.request("POST", "/settings", {"github": {
            "token": gh_token, "api_base_url": base_url, "username": LOGIN, "repos": repos}})
        if code != 200:
            raise SystemExit(f"POST /settings answered {code}: {body}")
        started = time.perf_counter()
        code, body = client.request("POST", "/jobs", {"type": JOB, "payload": {}})
        if code not in (200, 201):
            raise SystemExit(f"POST /jobs answered {code}: {body}")
        job_id = body["job_id"]
        while True:
            code, job = client.request("GET", f"/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            if time.perf_counter() - started > SYNC_TIMEOUT:
                raise SystemExit(f"the sync did not finish in {SYNC_TIMEOUT:.0f} s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        client.close()
        conn = sqlite3.connect(data_dir / "backend" / "data" / "index.db")
        stored = [r[0] for r in conn.execute("select identity from activity")]
        conn.close()
    return {"job": job, "seconds": elapsed, "stored": stored}


async def fetch_all(reactor: Any, urls: list[str], gh_token: str,
                    out: dict[str, Any]) -> None:
    """GET every URL, C{IN_FLIGHT} at a time; decode each body; time it all."""
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = IN_FLIGHT
    http = HTTPClient(Agent(reactor, pool=pool))
    headers = Headers({b"authorization": [f"Bearer {gh_token}".encode()],
                       b"accept": [b"application/vnd.github+json"]})
    slots = DeferredSemaphore(IN_FLIGHT)
    statuses: list[int] = []

    async def one(url: str) -> None:
        response = await http.get(url, headers=headers)
        json.loads(await content(response))
        statuses.append(response.code)

    started = time.perf_counter()
    await gatherResults([slots.run(lambda u: Deferred.fromCoroutine(one(u)), url)
                         for url in urls])
    out["seconds"] = time.perf_counter() - started
    out["statuses"] = statuses
    await pool.closeCachedConnections()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=5)
    parser.add_argument("--items", type=int, default=1000, help="per repository")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="the fake's delay before each answer")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    install_cleanup()
    work = scratch_dir("enttok-bench-github-", keep=args.keep)
    gh_token = new_token()
    now = time.time()
    log_path = work / "fake-requests.jsonl"

    print(f"GitHub sync: {args.repos} repos x {args.items} items (issues/PRs and commits), "
          f"fake latency {args.latency_ms:g} ms")
    expected = expected_items(args.repos, args.items, now)
    fake, ready = spawn(["-m", "tests.fakegithub", "--token", gh_token, "--login", LOGIN,
                         "--repos", str(args.repos), "--items", str(args.items),
                         "--now", repr(now), "--latency", str(args.latency_ms / 1000),
                         "--log", str(log_path)],
                        stderr_path=work / "fake.stderr")
    base_url = ready["base_url"]
    repos = [f"{LOGIN}/project-{r}" for r in range(args.repos)]

    sync = run_sync(base_url, gh_token, repos, work)
    job, stored = sync["job"], sync["stored"]
    lines = log_path.read_text("utf-8").splitlines()
    root = base_url.split("/", 3)
    origin = f"{root[0]}//{root[2]}"
    urls = []
    for line in lines:
        request = json.loads(line)
        query = f"?{urlencode(request['query'])}" if request["query"] else ""
        urls.append(f"{origin}{request['path']}{query}")

    raw: dict[str, Any] = {}
    status = run_reactor(lambda reactor: fetch_all(reactor, urls, gh_token, raw))
    stop_child(fake)

    complete = (job["status"] == "succeeded" and len(stored) == len(set(stored))
                and set(stored) == expected)
    items = len(stored)
    result = job.get("result") or {}
    print(f"  dataset: {len(expected)} activity items expected; the sync made "
          f"{len(urls)} requests (job says {result.get('requests')})")
    sync_rate = items / sync["seconds"]
    print(f"  sync  (daemon, {JOB}, stored in SQLite): {job['status']}, {items} items "
          f"in {sync['seconds']:.2f} s -> {sync_rate:,.0f} items/s, "
          f"{len(urls) / sync['seconds']:,.0f} requests/s"
          f"{'' if complete else '  INCOMPLETE: stored items differ from the dataset'}")
    if status != 0 or "seconds" not in raw:
        print("  raw: did not complete", file=sys.stderr)
        raise SystemExit(1)
    raw_rate = items / raw["seconds"]
    bad = [s for s in raw["statuses"] if s != 200]
    print(f"  raw   (plain treq, {IN_FLIGHT} in flight, same {len(urls)} URLs, JSON decoded, "
          f"nothing stored): {raw['seconds']:.2f} s -> {raw_rate:,.0f} items/s, "
          f"{len(urls) / raw['seconds']:,.0f} requests/s"
          f"{f'  ({len(bad)} non-200 answers)' if bad else ''}")
    print(f"  ratio sync / raw: {sync_rate / raw_rate:.2f}")
    if not complete:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
