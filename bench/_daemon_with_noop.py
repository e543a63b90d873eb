"""Runs the real enttok daemon with two benchmark job types; started by the bench scripts.

    BACKEND_TOKEN=<token> python bench/_daemon_with_noop.py --data-dir DIR [--workers N]

Builds the service tree the way C{enttok.tap.makeService} does (resolve_config,
prepare_directories, from_config) plus:

  - C{bench.noop}: payload C{{"n": int}}; does nothing.
  - C{bench.progress}: payload C{{"n", "count", "interval_ms"}}; reports progress
    C{count} times, C{interval_ms} apart, each with the wall-clock emit time
    (C{time.time()}) as its message.

Logs go to C{DIR/daemon.log} as twistd's text log would (one flushed line per
event), besides the daemon's own JSON log. The daemon's ready line
(C{{"event": "ready", "port": ...}}) on stdout tells the parent the port.
It stops on SIGTERM, or when its standard input closes (the parent is gone).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, task
from twisted.logger import globalLogBeginner, textFileLogObserver

from enttok.config import ConfigError, prepare_directories, resolve_config
from enttok.jobs.context import JobContext
from enttok.jobs.registry import JobType
from enttok.lifecycle import exit_cleanly_on_sigterm
from enttok.service import from_config
from enttok.validation import Field, integer


def noop(ctx: JobContext) -> None:
    return None


def progress_job(reactor: Any) -> JobType:
    async def report(ctx: JobContext) -> dict[str, int]:
        count, interval = ctx.payload["count"], ctx.payload["interval_ms"] / 1000
        for i in range(1, count + 1):
            await task.deferLater(reactor, interval, lambda: None)
            # Wall-clock time: the receiving clients run in another process.
            ctx.progress(i / (count + 1), message=f"{time.time():.6f}")
        return {"reported": count}

    return JobType(
        name="bench.progress",
        payload={
            "n": Field(integer(0, 10**9), 0, "Makes payloads distinct."),
            "count": Field(integer(1, 100_000), 10, "Progress reports to make."),
            "interval_ms": Field(integer(0, 60_000), 200, "Milliseconds between reports."),
        },
        handler=lambda ctx: defer.ensureDeferred(report(ctx)),
        description="benchmark: timed progress reports",
    )


NOOP = JobType(
    name="bench.noop",
    payload={"n": Field(integer(0, 10**9), 0, "Makes payloads distinct.")},
    handler=noop,
    description="benchmark: does nothing",
)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=None,
                        help="the 'workers' setting (default: the daemon's default)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write cProfile stats of the whole run to this file")
    parser.add_argument("--no-access-log", action="store_true",
                        help="experiment: skip twisted.web's per-request access log line")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(data_dir / "daemon.log", "a", encoding="utf-8")  # noqa: SIM115
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log_file)],
                                     redirectStandardIO=False)
    try:
        config = resolve_config(
            {"port": "0", "data-dir": str(data_dir),
             "token": os.environ.get("BACKEND_TOKEN"), "exit-on-stdin-close": True},
            {})
        prepare_directories(config)
        if args.workers is not None:
            config.settings_path.write_text(json.dumps({"workers": args.workers}))
        service = from_config(reactor, config, extra_job_types=[NOOP, progress_job(reactor)])
    except ConfigError as e:
        sys.stderr.write(f"enttok bench daemon: {e}\n")
        return 2
    if args.no_access_log:
        # An experiment only: measures what the access log costs per request.
        from twisted.web.http import HTTPFactory

        HTTPFactory.log = lambda self, request: None  # type: ignore[method-assign]
    exit_cleanly_on_sigterm(reactor)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
