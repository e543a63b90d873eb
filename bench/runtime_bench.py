"""The desktop runtime against the development .venv: size, start-up, first vector hit.

For each of the frozen runtime (C{electron-app/build/backend/enttok-backend},
built by C{npm run build:backend}) and C{python -m enttok} from the development
C{.venv}:

- size on disk (apparent bytes of every file) and as a zstd-compressed tar
  (level 3; the runtime also at level 19, as a release would be compressed);
- spawn -> the first 200 from C{GET /health} (fresh data folder each run);
- spawn -> the first hit of C{GET /search?mode=vector} on a 5-note Korean and
  English vault (fresh data folder: the notes are scanned, embedded by the
  default model in its worker process, and searched).

Targets (issue 14): runtime <= 300 MiB on disk, <= 150 MiB compressed; /health
<= 0.6 s; first vector hit < 2 s. Run by hand from the repository root::

    uv run --frozen python bench/runtime_bench.py [--runs N] [--no-size]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from bench._benchutil import (  # noqa: E402
    REPO,
    install_cleanup,
    new_token,
    scratch_dir,
    stop_child,
)

RUNTIME = REPO / "electron-app" / "build" / "backend"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
MIB = 1024 * 1024
TIMEOUT = 60.0
NOTES = {
    "daily/2026-12-01.md": "# 2026-12-01\n\n## 회의\n\n팀 회의에서 다음 주 배포 일정을 논의했다.\n",
    "장보기.md": "# 장보기\n\n사과, 우유, 빵, 계란을 사야 한다.\n",
    "garden.md": "# Garden\n\nPlanted tomatoes, basil and peppers in the backyard.\n",
    "reading.md": "# Reading\n\nFinished a novel about a lighthouse keeper.\n",
    "mixed.md": "# 여행 계획\n\nBooked the train to Busan; 해운대 해변을 걸을 예정이다.\n",
}
QUERY = "출시 날짜를 정한 미팅"
#: Variables of the developer's shell that would change what the daemon does.
CLEARED = ("BACKEND_PORT", "BACKEND_TOKEN", "APP_DATA_DIR", "LOG_DIR", "RUN_ENV",
           "ENTTOK_VAULT", "BACKEND_PARENT_PID", "PYTHONPATH", "PYTHONHOME")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def apparent_size(folder: Path) -> int:
    """Bytes in every regular file under C{folder} (symlinks not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def zstd_size(folder: Path, level: int) -> int:
    """Bytes of C{tar -c folder | zstd -level}."""
    tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(folder), "."], stdout=subprocess.PIPE)
    zstd = subprocess.run(["zstd", "-q", f"-{level}", "-T0", "-c"], stdin=tar.stdout,
                          stdout=subprocess.PIPE, check=True)
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait()
    return len(zstd.stdout)


def get(port: int, token: str, path: str) -> tuple[int, dict[str, object] | None]:
    """One request; (0, None) while nothing listens yet."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-Backend-Token": token})
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else None
    except OSError:
        return 0, None
    finally:
        conn.close()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by C{pid} and its live children (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def time_until(argv: list[str], cwd: Path, data: Path, vault: Path | None,
               done: Callable[[int, str], bool], interval: float) -> tuple[float, float]:
    """
    Seconds from spawning C{argv} (on a fresh port, token and C{data}) until
    C{done}, and the CPU seconds the process and its children had used by then
    (less sensitive than the wall time to other work on a shared machine).
    """
    port, token = free_port(), new_token()
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["BACKEND_TOKEN"] = token
    args = [*argv, "--port", str(port), "--data-dir", str(data)]
    if vault is not None:
        args += ["--vault", str(vault)]
    start = time.monotonic()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - start < TIMEOUT:
            if done(port, token):
                return time.monotonic() - start, tree_cpu(process.pid)
            if process.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}")
            time.sleep(interval)
        raise RuntimeError(f"{argv[0]}: nothing within {TIMEOUT} s")
    finally:
        stop_child(process)


def healthy(port: int, token: str) -> bool:
    return get(port, token, "/health")[0] == 200


def vector_hit(port: int, token: str) -> bool:
    status, body = get(port, token, "/search?mode=vector&k=1&q=" + urllib.parse.quote(QUERY))
    return status == 200 and body is not None and bool(body.get("hits"))


def write_vault(folder: Path) -> Path:
    for name, text in NOTES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, "utf-8")
    return folder


def measure(name: str, argv: list[str], cwd: Path, runs: int
            ) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {"health": [], "vector": []}
    for _ in range(runs):
        data = scratch_dir(f"runtime-bench-{name}-")
        results["health"].append(time_until(argv, cwd, data / "data", None, healthy, 0.01))
        vault = write_vault(data / "vault")
        results["vector"].append(time_until(argv, cwd, data / "data2", vault, vector_hit, 0.05))
    return results


def show(values: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in values]
    cpu = [c for _, c in values]
    each = ", ".join(f"{w:.2f}" for w in wall)
    return (f"median {statistics.median(wall):.2f} s ({each}); "
            f"CPU median {statistics.median(cpu):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-size", action="store_true", help="skip the (slow) size figures")
    args = parser.parse_args()
    install_cleanup()
    exe = RUNTIME / "enttok-backend"
    if not exe.exists():
        print(f"{exe} is missing: run npm run build:backend in electron-app/", file=sys.stderr)
        return 2
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.runs} run(s)")
    targets = [("runtime (enttok-backend)", [str(exe)], RUNTIME, RUNTIME),
               ("dev .venv (python -m enttok)", [str(VENV_PYTHON), "-m", "enttok"], REPO,
                REPO / ".venv")]
    for name, argv, cwd, folder in targets:
        print(f"\n{name}")
        if not args.no_size:
            print(f"  size on disk        {apparent_size(folder) / MIB:8.1f} MiB")
            print(f"  zstd -3 tar         {zstd_size(folder, 3) / MIB:8.1f} MiB")
            if folder == RUNTIME:
                print(f"  zstd -19 tar        {zstd_size(folder, 19) / MIB:8.1f} MiB")
        results = measure(name.split()[0], argv, cwd, args.runs)
        print(f"  spawn -> /health    {show(results['health'])}")
        print(f"  spawn -> vector hit {show(results['vector'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
