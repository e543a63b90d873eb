"""connector.git.sync on a repository with 100,000 commits, beside bare git in the same run.

    uv run --frozen python bench/git_sync.py [--commits 100000] [--cache DIR] [--rebuild]

1. The repository is built once with C{git fast-import} (seconds) and kept
   under C{--cache} (default: the temp folder's C{enttok-bench-git/N}): main
   with C{--commits} commits four minutes apart up to an hour ago, 70% by the
   user, each changing one or two of 2,000 files; three branches of 50 commits
   forked in the last 30 days. Each run puts main back at its built tip.
2. Syncs run in this process on the real reactor (the database on its own
   thread and a pool for the job's blocking work, as in the daemon), each from
   a fresh database:
     a. first sync, default window (30 days);
     b. first sync of the whole history (C{since} 1970);
     c. no change (the tips as the cursor has them);
     d. one new commit on main.
   A 5 ms timer measures the longest reactor stall during each (and, as its
   baseline, over 3 s of an idle reactor: a loaded machine stalls too).
3. Baselines, the same git work with nothing parsed or stored, run as plain
   child processes: for (a) and (b) C{git log --numstat} and C{git log -p |
   git patch-id} of every branch in the window; for (d) C{git log -1 --numstat}
   of the new commit.

Prints the times, the ratios sync / baseline, and the stored item counts;
exits 1 if the incremental sync took 1 s or more, or an item count is wrong.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.threadpool import ThreadPool

from bench._benchutil import install_cleanup, run_reactor, scratch_dir
from enttok.connectors.git.sync import STATE_KEY, sync_git
from enttok.jobs.context import JobContext
from enttok.store import Database
from enttok.threads import pool_runner

ME = "me@example.com"
OTHERS = ("ana@example.com", "bo@example.com", "chae@example.com")
STEP = 240  # seconds between commits
FILES = 2000
BRANCHES = 3
BRANCH_COMMITS = 50
TARGET_INCREMENTAL = 1.0


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, env=env,
                          capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"git {args[0]} failed: {done.stderr.decode(errors='replace')[:500]}")
    return done.stdout


def _commit(lines: list[bytes], ref: str, mark: int, parent: str | None, when: int,
            email: str, subject: str, changes: dict[str, str]) -> None:
    name = email.split("@")[0]
    message = subject.encode("utf-8")
    lines += [f"commit {ref}\nmark :{mark}\n".encode(),
              f"author {name} <{email}> {when} +0900\n".encode(),
              f"committer {name} <{email}> {when} +0900\n".encode(),
              f"data {len(message)}\n".encode(), message, b"\n"]
    if parent:
        lines.append(f"from {parent}\n".encode())
    for path, text in changes.items():
        data = text.encode("utf-8")
        lines += [f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]
    lines.append(b"\n")


def build(repo: Path, commits: int, end: int) -> None:
    """The benchmark repository (see the module docstring), through git fast-import."""
    rng = random.Random(42)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    lines: list[bytes] = []
    start = end - commits * STEP
    for n in range(1, commits + 1):
        email = ME if rng.random() < 0.7 else rng.choice(OTHERS)
        touched = {f"src/모듈{k % 50}/file{k}.txt": f"{n} {k}\n" + "x\n" * (n % 7)
                   for k in {rng.randrange(FILES) for _ in range(rng.choice((1, 2)))}}
        _commit(lines, "refs/heads/main", n, f":{n - 1}" if n > 1 else None,
                start + n * STEP, email, f"Change {n}: 모듈 정리 #{n % 97}", touched)
    mark = commits
    for b in range(BRANCHES):
        # 5.5, 11 and 16.7 days before the end (of a repository that long)
        fork = commits - (b + 1) * min(2000, commits // (BRANCHES + 1))
        parent = f":{fork}"
        for i in range(BRANCH_COMMITS):
            mark += 1
            _commit(lines, f"refs/heads/feature-{b}", mark, parent,
                    start + fork * STEP + (i + 1) * 60, ME, f"Feature {b} step {i}",
                    {f"feature{b}/step.txt": f"{i}\n"})
            parent = f":{mark}"
    _git(repo, "fast-import", "--quiet", stdin=b"".join(lines))
    _git(repo, "checkout", "-q", "-f", "main")


def add_commit(repo: Path, when: int) -> str:
    """One new commit of the user on main (plumbing: the work tree is not touched)."""
    blob = _git(repo, "hash-object", "-w", "--stdin", stdin=f"{when}\n".encode()).decode().strip()
    tree_in = _git(repo, "ls-tree", "main").decode()
    tree_in += f"100644 blob {blob}\tnew-{when}.txt\n"
    tree = _git(repo, "mktree", stdin=tree_in.encode()).decode().strip()
    env = {**os.environ, "GIT_AUTHOR_NAME": "me", "GIT_AUTHOR_EMAIL": ME,
           "GIT_COMMITTER_NAME": "me", "GIT_COMMITTER_EMAIL": ME,
           "GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
    sha = subprocess.run(["git", "-C", str(repo), "commit-tree", tree, "-p", "main", "-m",
                          "One more change"], env=env, capture_output=True, check=True
                         ).stdout.decode().strip()
    _git(repo, "update-ref", "refs/heads/main", sha)
    return sha


class Recorder:
    def progress(self, job_id: str, fraction: float, message: str | None) -> None:
        pass

    def note(self, job_id: str, level: str, message: str, meta: dict[str, Any]) -> None:
        print(f"  {level}: {message}")


def _timed_shell(command: str, repo: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def baseline(repo: Path, since: str, ranges: list[str]) -> float:
    """The same git work as a sync of C{ranges} (one per branch), output discarded."""
    author = f"--fixed-strings --regexp-ignore-case --author='<{ME}>' --no-merges --no-renames"
    total = 0.0
    for revs in ranges:
        total += _timed_shell(f"git log -z --numstat {author} --since={since} {revs} -- "
                              f"> /dev/null", repo)
        total += _timed_shell(f"git log -p --format='commit %H' {author} --since={since} "
                              f"{revs} -- | git patch-id --stable > /dev/null", repo)
    return total


async def main(reactor: Any) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.gettempdir()) / "enttok-bench-git" / str(args.commits)
    repo = cache / "repo"
    tip_file = cache / "main-tip"
    if args.rebuild and cache.exists():
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    now = int(reactor.seconds())
    if not tip_file.exists():
        started = time.perf_counter()
        build(repo, args.commits, now - 3600)
        tip_file.write_text(_git(repo, "rev-parse", "main").decode())
        print(f"built {args.commits} commits in {time.perf_counter() - started:.1f} s: {repo}")
    _git(repo, "update-ref", "refs/heads/main", tip_file.read_text().strip())
    total = int(_git(repo, "rev-list", "--count", "--all"))
    print(f"repository: {repo} ({total} commits on {BRANCHES + 1} branches)")

    # As in the daemon: one database thread, and a pool for the jobs' blocking work.
    pool = ThreadPool(1, 1, "bench-db")
    jobs_pool = ThreadPool(1, 2, "bench-jobs")
    for each in (pool, jobs_pool):
        each.start()
        reactor.addSystemEventTrigger("before", "shutdown", each.stop)
    runner = pool_runner(reactor, pool)
    jobs_runner = pool_runner(reactor, jobs_pool)
    scratch = scratch_dir("enttok-bench-git-")
    settings = {"enabled": True, "repositories": [str(repo)], "search_roots": [],
                "search_depth": 3, "author_emails": [ME], "interval_minutes": 15}
    failed = False

    def database(name: str) -> Database:
        db = Database(scratch / name, runner)
        db.open()
        return db

    def stall_meter() -> tuple[LoopingCall, list[float]]:
        """A 5 ms timer; C{[0]} is the longest gap between its ticks so far."""
        stall = [0.0]
        last = [time.perf_counter()]

        def tick() -> None:
            moment = time.perf_counter()
            stall[0] = max(stall[0], moment - last[0])
            last[0] = moment

        ticker = LoopingCall(tick)
        ticker.clock = reactor
        ticker.start(0.005)
        return ticker, stall

    ticker, idle = stall_meter()
    await deferLater(reactor, 3.0, lambda: None)
    ticker.stop()
    print(f"baseline: longest reactor stall over 3 s idle: {idle[0] * 1000:.0f} ms "
          f"(load average {os.getloadavg()[0]:.1f})")

    async def run(db: Database, label: str, since: str | None = None) -> tuple[float, dict]:
        ctx = JobContext("job_bench", "connector.git.sync", {"since": since}, Recorder(),
                         jobs_runner, reactor.callFromThread, reactor)
        ticker, stall = stall_meter()
        started = time.perf_counter()
        result: dict = await sync_git(ctx, db, reactor, settings, os.environ)
        elapsed = time.perf_counter() - started
        ticker.stop()
        print(f"{label}: {elapsed * 1000:.0f} ms, {result['commits']} commits read, "
              f"{result['items_new']} new items, {result['walks']} walks, "
              f"{result['git_commands']} git commands, longest reactor stall "
              f"{stall[0] * 1000:.0f} ms, warnings {result['warnings']}")
        return elapsed, result

    def items(db: Database) -> int:
        return int(db.connection.execute("select count(*) from activity").fetchone()[0])

    def expected(since: str) -> int:
        refs = "main feature-0 feature-1 feature-2"
        out = _git(repo, "log", "--no-merges", "--fixed-strings", "--regexp-ignore-case",
                   f"--author=<{ME}>", f"--since={since}", "--format=%H", *refs.split())
        return len(out.split())

    window = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30 * 86400))
    branch_ranges = ["main", "feature-0 ^main", "feature-1 ^main ^feature-0",
                     "feature-2 ^main ^feature-0 ^feature-1"]
    for label, since in (("a. first sync, 30 days", None), ("b. first sync, all history",
                                                             "1970-01-01T00:00:00Z")):
        db = database(label[0] + ".db")
        elapsed, result = await run(db, label, since)
        base = baseline(repo, since or window, branch_ranges)
        want = expected(since or window)
        print(f"   baseline git log --numstat + log -p | patch-id: {base * 1000:.0f} ms; "
              f"ratio {elapsed / base:.2f}; items stored {items(db)} (expected {want})")
        failed |= items(db) != want
        if since is None:
            first = db
    elapsed, result = await run(first, "c. no change")
    old = tip_file.read_text().strip()
    sha = add_commit(repo, now)
    elapsed, result = await run(first, "d. one new commit")
    base = _timed_shell(f"git log -1 --numstat {sha} > /dev/null", repo)
    base_count = _timed_shell(f"git rev-list --count {old}..{sha} > /dev/null", repo)
    print(f"   baseline git log -1 --numstat: {base * 1000:.0f} ms (rev-list --count "
          f"old..new {base_count * 1000:.0f} ms); ratio {elapsed / base:.1f}; "
          f"target < {TARGET_INCREMENTAL * 1000:.0f} ms: "
          f"{'met' if elapsed < TARGET_INCREMENTAL else 'MISSED'}")
    failed |= elapsed >= TARGET_INCREMENTAL or result["items_new"] != 1
    cursor = first.connection.execute("select cursor from sync_state where connector = ?",
                                      (STATE_KEY,)).fetchone()[0]
    failed |= sha not in cursor
    _git(repo, "update-ref", "refs/heads/main", old)
    for db in (first,):
        await Deferred.fromCoroutine(_close(db))
    if failed:
        raise SystemExit(1)


async def _close(db: Database) -> None:
    await db.close()


if __name__ == "__main__":
    install_cleanup()
    sys.exit(run_reactor(main))
