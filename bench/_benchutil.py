"""Helpers shared by the benchmark scripts: child processes, HTTP, percentiles.

Not part of the daemon; nothing under C{enttok/} or C{tests/} imports this.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from twisted.internet import defer

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DAEMON_SCRIPT = BENCH_DIR / "_daemon_with_noop.py"
WS_BASELINE_SCRIPT = BENCH_DIR / "_ws_baseline_server.py"

#: Child processes still running; stopped at exit and on SIGTERM/SIGINT.
_children: list[subprocess.Popen[bytes]] = []
#: Scratch folders removed at exit.
_scratch: list[Path] = []


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank C{q}-th percentile (0-100) of C{values} (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def stop_child(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """Ask C{proc} to stop (close its stdin, later SIGTERM), and kill it after C{grace} s."""
    if proc.poll() is None and proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the children stop when their stdin closes
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace / 2)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace / 2)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if proc in _children:
        _children.remove(proc)
    return proc.returncode


def _stop_all() -> None:
    for proc in list(_children):
        stop_child(proc, grace=5.0)
    for path in _scratch:
        shutil.rmtree(path, ignore_errors=True)


def scratch_dir(prefix: str, keep: bool = False) -> Path:
    """A new temporary folder, removed at exit unless C{keep}."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep:
        _scratch.append(path)
    return path


def _on_signal(signum: int, frame: Any) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """
    Stop every child process and remove scratch folders at exit, and on
    SIGTERM/SIGINT before exiting. (While the reactor runs, its own handlers
    stop it instead, and the exit runs the same clean-up.)
    """
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def run_reactor(main: Callable[[Any], Coroutine[Any, Any, None]]) -> int:
    """
    Run C{main(reactor)} on the global reactor and return an exit status: 0 when
    it returns, its code when it raises SystemExit, 1 on another error or when
    the reactor stops first (SIGINT/SIGTERM: the reactor's handlers stop it, so
    the default handlers are put back for it to install its own).
    """
    from twisted.internet import reactor
    from twisted.internet.error import ReactorNotRunning
    from twisted.python.failure import Failure

    status: list[int] = []

    def finished(result: object) -> None:
        if isinstance(result, Failure):
            if result.check(SystemExit):
                code = result.value.code
                status.append(code if isinstance(code, int) else 1)
            else:
                result.printTraceback(file=sys.stderr)
                status.append(1)
        else:
            status.append(0)
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()

    def start() -> None:
        defer.ensureDeferred(main(reactor)).addBoth(finished)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reactor.callWhenRunning(start)
    reactor.run()
    if not status:
        print("stopped before the end", file=sys.stderr)
        return 1
    return status[0]


def _lines(proc: subprocess.Popen[bytes], deadline: float) -> Iterator[bytes]:
    """C{proc}'s stdout lines, read without blocking past C{deadline}."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("child did not print its ready line in time")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"child exited early (status {proc.wait(5)})")
            buffer += chunk


def spawn(argv: Sequence[str], ready_key: str = "port", timeout: float = 60.0,
          stderr_path: Path | None = None, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """
    Start C{python argv...} and wait for the first stdout line that is a JSON
    object holding C{ready_key}.

    @param env: variables added to this process's environment for the child.
    @return: the process (stdin is a pipe: closing it asks the child to stop) and
        the parsed line.
    """
    stderr = open(stderr_path, "ab") if stderr_path is not None else None  # noqa: SIM115
    try:
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=stderr,
                                env={**os.environ, **(env or {})})
    finally:
        if stderr is not None:
            stderr.close()
    _children.append(proc)
    try:
        for line in _lines(proc, time.monotonic() + timeout):
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict) and ready_key in parsed:
                    return proc, parsed
        raise AssertionError("unreachable")
    except BaseException as e:
        stop_child(proc)
        tail = _tail(stderr_path)
        if tail and isinstance(e, (RuntimeError, TimeoutError)):
            raise RuntimeError(f"{e}; its stderr ends with:\n{tail}") from e
        raise


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def cpu_seconds(pid: int) -> tuple[float, float] | None:
    """
    CPU time (user + system) used so far by C{pid}'s main thread and by all its
    threads, read from C{/proc} (C{None} where that is not available).
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def read(path: str) -> float:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    try:
        return read(f"/proc/{pid}/task/{pid}/stat"), read(f"/proc/{pid}/stat")
    except (OSError, IndexError, ValueError):
        return None


@contextlib.contextmanager
def daemon(data_dir: Path, token: str, workers: int | None = None,
           profile: Path | None = None, access_log: bool = True,
           timeout: float = 60.0) -> Iterator[tuple[int, int]]:
    """Run the real daemon (with the benchmark job types); yield its port and pid."""
    argv = [str(DAEMON_SCRIPT), "--data-dir", str(data_dir)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if profile is not None:
        argv += ["--profile", str(profile)]
    if not access_log:
        argv += ["--no-access-log"]
    proc, ready = spawn(argv, timeout=timeout, stderr_path=data_dir / "daemon.stderr",
                        env={"BACKEND_TOKEN": token})  # kept off the command line
    try:
        yield int(ready["port"]), proc.pid
    finally:
        status = stop_child(proc)
        if status not in (0, None):
            print(f"(daemon exited with status {status}; see {data_dir / 'daemon.stderr'})",
                  file=sys.stderr)


def new_token() -> str:
    return secrets.token_urlsafe(32)


class ScratchDaemon(NamedTuple):
    port: int
    pid: int
    token: str
    data_dir: Path


@contextlib.contextmanager
def scratch_daemon(prefix: str, keep: bool = False, workers: int | None = None,
                   profile: Path | None = None, access_log: bool = True
                   ) -> Iterator[ScratchDaemon]:
    """
    Run the real daemon (see L{daemon}) with a new token on a new scratch folder
    (named C{prefix...}), removed afterwards unless C{keep} (then its path is printed).
    """
    token = new_token()
    data_dir = scratch_dir(prefix, keep=keep)
    try:
        with daemon(data_dir, token, workers=workers, profile=profile,
                    access_log=access_log) as (port, pid):
            yield ScratchDaemon(port, pid, token, data_dir)
    finally:
        if keep:
            print(f"daemon data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


class Client:
    """A keep-alive HTTP/1.1 connection to the daemon, with its token and Host."""

    def __init__(self, port: int, token: str, timeout: float = 30.0) -> None:
        self.port = port
        self._headers = {"X-Backend-Token": token, "Host": f"127.0.0.1:{port}"}
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; return the status and the decoded JSON answer."""
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        self._conn.request(method, path, body=data, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self._conn.close()
