"""Start-up benchmark: time from spawn to the first 200 from GET /health.

Compares ``twistd -n enttok`` with a minimal Klein app started the same way
(``twistd -n web``); the target is enttok's median within 1.5x of the minimal
one. Run by hand from the repository root, never from the tests::

    uv run --frozen python bench/startup.py [--runs N]

Each enttok run uses a fresh data folder, as on a first launch.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: twistd as a module of this interpreter (twisted.scripts.twistd has no __main__).
TWISTD = [sys.executable, "-c",
          "import sys; from twisted.scripts.twistd import run; sys.exit(run())",
          "-n", "--pidfile="]
TARGET_RATIO = 1.5
TIMEOUT = 30.0


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BACKEND_PORT", "BACKEND_TOKEN", "APP_DATA_DIR", "LOG_DIR", "RUN_ENV",
                        "ENTTOK_VAULT", "BACKEND_PARENT_PID")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def spawn(argv: list[str], cwd: str) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes]]:
    """Start C{argv}; its stdout lines arrive on the returned queue."""
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=environment(), cwd=cwd)
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def wait_healthy(port: int, headers: dict[str, str], deadline: float) -> None:
    """Poll GET /health until it answers 200."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers=headers)
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no 200 from port {port} within {TIMEOUT}s")
        time.sleep(0.005)


def time_enttok() -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        process, lines = spawn([*TWISTD, "enttok", "--port", "0", "--data-dir", data_dir],
                               cwd=data_dir)
        try:
            while True:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                if line.startswith(b"{"):
                    ready = json.loads(line)
                    if ready.get("event") == "ready":
                        break
            token_path = Path(data_dir, "backend", "backend.token")
            token = token_path.read_text(encoding="ascii").strip()
            wait_healthy(ready["port"], {"X-Backend-Token": token}, deadline)
            return time.perf_counter() - started
        finally:
            stop(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def time_minimal_klein() -> float:
    port = free_port()
    started = time.perf_counter()
    process, _ = spawn([*TWISTD, "web", "--listen", f"tcp:{port}:interface=127.0.0.1",
                        "--class", "bench._minimal_klein.resource"], cwd=str(REPO))
    try:
        wait_healthy(port, {}, time.monotonic() + TIMEOUT)
        return time.perf_counter() - started
    finally:
        stop(process)


def measure(name: str, run: Callable[[], float], runs: int) -> float:
    times = []
    for _ in range(runs):
        times.append(run())
    median = statistics.median(times)
    shown = ", ".join(f"{t:.3f}" for t in times)
    print(f"{name:<14} median {median:.3f}s  (runs: {shown})")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, spawn -> first 200 /health")
    # One discarded run of each, so both find the files in the OS cache.
    time_minimal_klein()
    time_enttok()
    klein = measure("minimal klein", time_minimal_klein, args.runs)
    enttok = measure("enttok", time_enttok, args.runs)
    ratio = enttok / klein
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio enttok/minimal = {ratio:.2f} (target <= {TARGET_RATIO}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
