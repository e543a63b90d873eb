"""Helpers for the index and search benchmarks: a daemon on a vault, jobs, /events.

Not part of the daemon; nothing under C{enttok/} or C{tests/} imports this.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench._benchutil import BENCH_DIR, REPO, Client, daemon, new_token

ENCODE_SCRIPT = BENCH_DIR / "_encode_baseline.py"
TERMINAL = ("succeeded", "failed", "canceled")
#: Generated vaults and index data folders, reused between runs.
CACHE = Path(os.environ.get("ENTTOK_BENCH_CACHE", "/tmp/enttok-bench"))


def db_path(data_dir: Path) -> Path:
    """Where the daemon keeps C{index.db} under its data folder."""
    return data_dir / "backend" / "data" / "index.db"


def write_settings(data_dir: Path, vault: Path, extra: dict[str, Any] | None = None) -> None:
    """
    Point the daemon at C{vault}, with no scheduled job to disturb the measurements.

    @param extra: more top-level settings (e.g. C{embedding_model}).
    """
    path = data_dir / "backend" / "data" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {"vault_path": str(vault.resolve()),
                "schedule": {"vault_scan_minutes": 0, "github_sync_minutes": 0,
                             "compact_hours": 0}, **(extra or {})}
    path.write_text(json.dumps(settings))


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average n/a"


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to the daemon's database (it keeps writing in WAL mode)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def children_of(pid: int) -> list[int]:
    """Direct child processes of C{pid} (Linux C{/proc}; empty elsewhere)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    return found


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds used so far by C{pid} (all threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / tick


class Events:
    """
    A minimal synchronous client of the daemon's C{/events} WebSocket, read on its
    own thread: every job message is kept with its arrival time (C{perf_counter}).
    """

    def __init__(self, port: int, token: str, timeout: float = 10.0) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        sock.sendall((f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: enttok.token.{token}\r\n\r\n").encode("ascii"))
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("/events closed during the handshake")
            buffer += chunk
        head, self._buffer = buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"/events refused: {head.splitlines()[0]!r}")
        sock.settimeout(None)
        self._sock = sock
        self._cond = threading.Condition()
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.closed = False
        self._thread = threading.Thread(target=self._read_loop, name="events", daemon=True)
        self._thread.start()

    def _recv(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _frame(self) -> tuple[int, bool, bytes]:
        b0, b1 = self._recv(2)
        size = b1 & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._recv(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._recv(8))[0]
        mask = self._recv(4) if b1 & 0x80 else b""
        data = self._recv(size)
        if mask:
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        return b0 & 0x0F, bool(b0 & 0x80), data

    def _send(self, opcode: int, data: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        self._sock.sendall(bytes([0x80 | opcode, 0x80 | len(data)]) + mask + masked)

    def _read_loop(self) -> None:
        parts: list[bytes] = []
        try:
            while True:
                opcode, fin, data = self._frame()
                if opcode == 9:
                    self._send(10, data[:125])
                    continue
                if opcode == 8:
                    break
                if opcode in (0, 1, 2):
                    parts.append(data)
                    if fin:
                        self._keep(time.perf_counter(), b"".join(parts))
                        parts = []
        except (EOFError, OSError):
            pass
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _keep(self, when: float, raw: bytes) -> None:
        with contextlib.suppress(ValueError):
            message = json.loads(raw)
            if isinstance(message, dict):
                with self._cond:
                    self.messages.append((when, message))
                    self._cond.notify_all()

    def wait_for(self, match: Callable[[dict[str, Any]], bool],
                 timeout: float) -> tuple[float, dict[str, Any]]:
        """The first message (received so far or later) that C{match}es."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for when, message in self.messages[seen:]:
                    if match(message):
                        return when, message
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise TimeoutError("no matching /events message in time")
                self._cond.wait(min(left, 1.0))

    def status_time(self, job_id: str, statuses: Sequence[str],
                    timeout: float) -> tuple[float, str]:
        when, message = self.wait_for(
            lambda m: m.get("type") == "job.status" and m.get("job_id") == job_id
            and m.get("status") in statuses, timeout)
        return when, str(message["status"])

    def progress(self, job_id: str) -> list[tuple[float, float, str]]:
        """(arrival time, fraction, message) of a job's progress reports so far."""
        with self._cond:
            return [(when, float(m.get("progress") or 0.0), str(m.get("message") or ""))
                    for when, m in self.messages
                    if m.get("type") == "job.progress" and m.get("job_id") == job_id]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send(8, struct.pack("!H", 1000))
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)


class VaultDaemon:
    """The real daemon (bench/_daemon_with_noop.py) on a vault: HTTP client + /events."""

    def __init__(self, port: int, pid: int, token: str, data_dir: Path) -> None:
        self.port, self.pid, self.token, self.data_dir = port, pid, token, data_dir
        self.client = Client(port, token, timeout=120.0)
        self.events = Events(port, token)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            status, answer = self.client.request(method, path, body)
        except (http.client.RemoteDisconnected, ConnectionError):
            # The daemon closes keep-alive connections idle for 60 s; nothing was sent.
            self.client.close()
            self.client = Client(self.port, self.token, timeout=120.0)
            status, answer = self.client.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} answered {status}: {answer}")
        return answer

    def submit(self, job_type: str, payload: dict[str, Any] | None = None) -> str:
        return str(self.request("POST", "/jobs", {"type": job_type,
                                                  "payload": payload or {}})["job_id"])

    def wait(self, job_id: str, timeout: float, report_every: float | None = None,
             allow: Sequence[str] = ("succeeded",)) -> tuple[float, dict[str, Any]]:
        """
        Wait for the job to end; return when (perf_counter) and its record.

        @param report_every: print the job's latest progress message this often (seconds).
        @param allow: end states that are not an error.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                when, status = self.events.status_time(
                    job_id, TERMINAL, max(0.01, min(left, report_every or left)))
                break
            except TimeoutError as e:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"job {job_id} did not end within {timeout:.0f} s") from e
                found = self.events.progress(job_id)
                print(f"    ... {found[-1][2] if found else 'waiting'}  ({load_average()})",
                      flush=True)
        job = self.request("GET", f"/jobs/{job_id}")
        job = job.get("job", job)
        if status not in allow:
            raise RuntimeError(f"job {job_id} {status}: {job.get('error')}")
        return when, job

    def run(self, job_type: str, payload: dict[str, Any] | None = None,
            timeout: float = 600.0, report_every: float | None = None
            ) -> tuple[float, float, float, dict[str, Any]]:
        """Submit a job and wait: (POST sent, running seen, ended seen, job record)."""
        sent = time.perf_counter()
        job_id = self.submit(job_type, payload)
        ended, job = self.wait(job_id, timeout, report_every)
        running, _ = self.events.status_time(job_id, ("running",), 1.0)
        return sent, running, ended, job

    def scan_and_update(self, timeout: float, report_every: float | None = None
                        ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """C{vault.scan}, then the C{index.update} it queued (if any): both results."""
        _, _, _, scan = self.run("vault.scan", {}, timeout)
        update_id = scan["result"]["index_update_job"]
        if update_id is None:
            return scan["result"], None
        _, update = self.wait(update_id, timeout, report_every)
        return scan["result"], update["result"]

    def idle(self, timeout: float = 120.0) -> None:
        """Wait until no index job is queued or running (e.g. one the watcher queued)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = self.request("GET", "/jobs?status=queued,running&limit=50")
            if not [j for j in page["jobs"] if j["type"] in ("vault.scan", "index.update",
                                                              "index.rebuild")]:
                return
            time.sleep(0.2)
        raise TimeoutError("index jobs still running")

    def worker_pid(self) -> int | None:
        """The embedding worker process, if it runs."""
        found = children_of(self.pid)
        return found[0] if found else None

    def close(self) -> None:
        self.events.close()
        self.client.close()


@contextlib.contextmanager
def vault_daemon(data_dir: Path, vault: Path, timeout: float = 120.0,
                 settings: dict[str, Any] | None = None) -> Iterator[VaultDaemon]:
    """
    Run the daemon on C{data_dir} with C{vault} as its vault (settings written first).

    @param settings: more settings for L{write_settings}.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    write_settings(data_dir, vault, settings)
    token = new_token()
    with daemon(data_dir, token, timeout=timeout) as (port, pid):
        running = VaultDaemon(port, pid, token, data_dir)
        try:
            yield running
        finally:
            running.close()


def encode_baseline(texts_file: Path | None = None, queries_file: Path | None = None,
                    batch_size: int = 64, repeat: int = 1,
                    timeout: float = 7200.0, model: str = "minilm") -> dict[str, Any]:
    """
    Run bench/_encode_baseline.py (the bare model: plain sentence-transformers for
    C{minilm}, in a fresh process with the embedding worker's environment) and
    return what it measured.
    """
    argv = [sys.executable, str(ENCODE_SCRIPT), "--batch-size", str(batch_size),
            "--repeat", str(repeat), "--model", model]
    if texts_file is not None:
        argv += ["--texts", str(texts_file)]
    if queries_file is not None:
        argv += ["--queries", str(queries_file)]
    done = subprocess.run(argv, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"encode baseline failed ({done.returncode}):\n"
                           f"{done.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result
