"""Real daemons in child processes (the daemon, hardening and crash tests): start,
call, kill -9, restart.

Every wait is bounded; a daemon still running when its test ends is killed.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.config import ENV_NAMES
from enttok.jobs.model import TERMINAL

REPO = Path(__file__).resolve().parent.parent
TOKEN = "hardening-token-0123456789abcdef"
READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 10.0
HTTP_TIMEOUT = 10.0

#: C{python -m enttok}: the daemon exactly as the desktop app starts it.
MODULE = ["-m", "enttok"]
#: twistd as a module of the running interpreter (twisted.scripts.twistd has no
#: __main__), with the real embedding model.
TWISTD = ["-c", "import sys; from twisted.scripts.twistd import run; sys.exit(run())",
          "-n", "--pidfile=", "enttok"]
#: twistd with the embedding model replaced by the small hashing embedder of the
#: tests: everything else is the real daemon, but vectors cost nothing (the real
#: model takes ~30 s to import, in a worker process the daemon only talks to).
HASHING = ["-c", "import sys\n"
                 "import enttok.service\n"
                 "from tests.embedders import HashingEmbedder\n"
                 "enttok.service.embedder_for = lambda path: HashingEmbedder()\n"
                 "from twisted.scripts.twistd import run\n"
                 "sys.exit(run())\n",
           "-n", "--pidfile=", "enttok"]
#: The hashing embedder's model id and dimension (what the vectors are stored under).
HASHING_MODEL = "hashing-64"
HASHING_DIMENSION = 64


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any enttok setting, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES.values()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def _pump(pipe: IO[bytes], lines: list[bytes], q: queue.Queue[bytes | None] | None) -> None:
    for line in pipe:
        lines.append(line)
        if q is not None:
            q.put(line)
    if q is not None:
        q.put(None)


class Daemon:
    """
    One daemon process on C{data_dir}, on a free port of 127.0.0.1; its output is
    read by threads so that no pipe fills.

    @param token: given to the daemon in C{BACKEND_TOKEN} (C{None}: none, the
        daemon then writes one to its token file, see L{stored_token}).
    @param runner: the interpreter arguments before the daemon's options
        (L{HASHING}, L{MODULE} or L{TWISTD}).
    @param stdin: the child's standard input (a pipe for C{--exit-on-stdin-close}).
    @param ready_timeout: the default bound of L{wait_ready}.
    @param exit_timeout: the default bound of L{wait_exit} and L{terminate}.
    @param http_timeout: the socket timeout of L{call} and L{request}.
    """

    def __init__(self, case: SynchronousTestCase, data_dir: Path,
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 token: str | None = TOKEN, runner: Sequence[str] = HASHING,
                 port: str = "0", stdin: int = subprocess.DEVNULL,
                 ready_timeout: float = READY_TIMEOUT, exit_timeout: float = EXIT_TIMEOUT,
                 http_timeout: float = HTTP_TIMEOUT) -> None:
        self.case = case
        self.data_dir = data_dir
        self.token = token
        self.ready_timeout = ready_timeout
        self.exit_timeout = exit_timeout
        self.http_timeout = http_timeout
        extra = dict(env or {})
        if token is not None:
            extra.setdefault("BACKEND_TOKEN", token)  # kept off the command line
        argv = [sys.executable, *runner, "--port", port, "--data-dir", str(data_dir), *args]
        self.process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=child_env(extra),
                                        cwd=str(data_dir.parent))
        self.port = 0
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [threading.Thread(target=_pump, args=(pipe, lines, q), daemon=True)
                         for pipe, lines, q in ((self.process.stdout, self.stdout_lines,
                                                 self._queue),
                                                (self.process.stderr, self.stderr_lines, None))]
        for thread in self._threads:
            thread.start()
        case.addCleanup(self.cleanup)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        """The ready line; fails the test if it does not come within C{timeout}
        (default: the daemon's C{ready_timeout})."""
        if timeout is None:
            timeout = self.ready_timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.case.fail(f"no ready line within {timeout} s:\n{self.output_tail()}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.wait_exit()
                self.case.fail(f"the daemon exited ({self.process.returncode}) before its "
                               f"ready line:\n{self.output_tail()}")
            try:
                ready = json.loads(line)
            except ValueError:
                continue
            if isinstance(ready, dict) and ready.get("event") == "ready":
                self.port = int(ready["port"])
                return ready

    def call(self, method: str, path: str, body: Any = None,
             headers: Mapping[str, str] | None = None, token: str | None = "",
             raw: bytes | None = None) -> tuple[int, Any]:
        """
        One request; the status and the decoded JSON answer (the bytes if not JSON).

        @param token: the token to send (C{""}: the daemon's; C{None}: none).
        """
        all_headers = {"Host": f"127.0.0.1:{self.port}"}
        sent = self.token if token == "" else token
        if sent is not None:
            all_headers["X-Backend-Token"] = sent
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        status, _, content = self.request(method, path, None, data, all_headers)
        try:
            return status, json.loads(content)
        except ValueError:
            return status, content

    def request(self, method: str, path: str, token: str | None, body: bytes | None = None,
                headers: Mapping[str, str] | None = None
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """
        One request as given (C{token}: the token to send, or C{None}); the status,
        the response headers and the body's bytes.
        """
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["X-Backend-Token"] = token
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.http_timeout)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def stored_token(self) -> str:
        """The token the daemon wrote to its token file (started without one)."""
        return token_path(self.data_dir).read_text(encoding="ascii").strip()

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        """The answer of a request that must succeed (2xx)."""
        status, answer = self.call(method, path, body)
        self.case.assertTrue(200 <= status < 300, (method, path, status, answer))
        return answer

    def submit(self, job_type: str, payload: Mapping[str, Any] | None = None) -> str:
        return str(self.ok("POST", "/jobs", {"type": job_type, "payload": payload or {}})[
            "job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.ok("GET", f"/jobs/{job_id}")
        return answer

    def wait_jobs(self, job_ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Wait until every job is in a terminal state; return them by id."""
        ids = list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            jobs = {job_id: self.job(job_id) for job_id in ids}
            if all(job["status"] in TERMINAL for job in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                self.case.fail(f"jobs not finished after {timeout} s: "
                               f"{ {i: j['status'] for i, j in jobs.items()} }")
            time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(EXIT_TIMEOUT)

    def terminate(self, timeout: float | None = None) -> int:
        """SIGTERM; return the exit status (see L{wait_exit})."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float | None = None) -> int:
        """The exit status; fails the test (killing the process) if it is still
        running after C{timeout} (default: the daemon's C{exit_timeout})."""
        if timeout is None:
            timeout = self.exit_timeout
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(EXIT_TIMEOUT)
            self.case.fail(f"the daemon was still running {timeout} s later; killed:\n"
                           f"{self.output_tail()}")
        for thread in self._threads:
            thread.join(EXIT_TIMEOUT)
        return code

    def stdout(self) -> str:
        return b"".join(self.stdout_lines).decode("utf-8", "replace")

    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def output_tail(self, lines: int = 40) -> str:
        tail = [*self.stdout_lines[-lines:], b"--- stderr:\n", *self.stderr_lines[-lines:]]
        return b"".join(tail).decode("utf-8", "replace")

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(EXIT_TIMEOUT)
        for thread in self._threads:
            thread.join(EXIT_TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def start(case: SynchronousTestCase, data_dir: Path, *args: str, **kwargs: Any) -> Daemon:
    """A daemon that has printed its ready line."""
    daemon = Daemon(case, data_dir, args, **kwargs)
    daemon.wait_ready()
    return daemon


class FakeGitHubProcess:
    """
    C{python -m tests.fakegithub} in a child process, serving a generated dataset; it
    stops when its stdin closes (L{stop}, also a cleanup of the test). Its output is
    read by threads so that no pipe fills; its stderr is shown if it fails to start.

    @param args: more options of C{tests.fakegithub} (C{--login}, C{--now},
        C{--seed}...), after the ones above (so that they override them).
    @param start_timeout: how long to wait for the line it prints once listening.
    """

    def __init__(self, case: SynchronousTestCase, token: str, repos: int = 3,
                 items: int = 100, latency: float = 0.0, args: Sequence[str] = (),
                 start_timeout: float = READY_TIMEOUT) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakegithub", "--token", token, "--repos",
             str(repos), "--items", str(items), "--latency", str(latency), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_env(), cwd=str(REPO))
        case.addCleanup(self.stop)
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        lines: queue.Queue[bytes | None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._threads = [threading.Thread(target=_pump, args=(pipe, out, q), daemon=True)
                         for pipe, out, q in ((self.process.stdout, self.stdout_lines, lines),
                                              (self.process.stderr, self.stderr_lines, None))]
        for thread in self._threads:
            thread.start()
        try:
            line = lines.get(timeout=start_timeout)  # printed once listening
        except queue.Empty:
            case.fail(f"the fake GitHub did not start within {start_timeout} s:\n"
                      f"{self.stderr()}")
        if line is None:  # it exited
            self.stop()
            case.fail(f"the fake GitHub exited ({self.process.returncode}) before "
                      f"listening:\n{self.stderr()}")
        self.base_url: str = json.loads(line)["base_url"]

    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def stop(self) -> None:
        """Close its stdin and wait for it to exit (killing it if it does not)."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(EXIT_TIMEOUT)
        for thread in self._threads:
            thread.join(EXIT_TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def write_settings(data_dir: Path, settings: Mapping[str, Any]) -> None:
    """Settings for a daemon that has not started yet (as if saved by an earlier run)."""
    path = data_dir / "backend" / "data" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings), encoding="utf-8")


def db_path(data_dir: Path) -> Path:
    return data_dir / "backend" / "data" / "index.db"


def token_path(data_dir: Path) -> Path:
    """Where a daemon started without a token writes the one it made up."""
    return data_dir / "backend" / "backend.token"


def log_text(data_dir: Path) -> str:
    """Everything in the daemon's log folder."""
    logs = sorted((data_dir / "backend" / "logs").glob("*"))
    return "".join(p.read_text("utf-8", "replace") for p in logs if p.is_file())
