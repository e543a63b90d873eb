"""The real daemon, started as a subprocess the way the desktop app starts it.

Every wait is bounded: a daemon that does not answer fails the test, it never hangs it.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from twisted.trial.unittest import SynchronousTestCase

from enttok import __version__
from enttok.config import ENV_NAMES

REPO = Path(__file__).resolve().parent.parent
#: twistd as a module of the running interpreter (twisted.scripts.twistd has no __main__).
TWISTD = ["-c", "import sys; from twisted.scripts.twistd import run; sys.exit(run())",
          "-n", "--pidfile="]
READY_TIMEOUT = 15.0
EXIT_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0
GITHUB_TOKEN = "ghp_daemonTestSecret0123456789"


def daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any enttok setting, plus C{extra}."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES.values()}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class Daemon:
    """One daemon process; its output is read by threads so no pipe ever fills."""

    def __init__(self, test: SynchronousTestCase, args: Iterable[str],
                 env: Mapping[str, str] | None = None, stdin: int = subprocess.DEVNULL,
                 runner: list[str] = TWISTD) -> None:
        self._test = test
        self.data_dir = Path(test.mktemp()).absolute()
        self.data_dir.mkdir()
        argv = [sys.executable, *runner, "enttok", "--data-dir", str(self.data_dir), *args]
        self.process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=daemon_env(env),
                                        cwd=str(self.data_dir))
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self._stdout_queue: queue.Queue[bytes | None] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            self._reader(self.process.stdout, self.stdout_lines, self._stdout_queue),
            self._reader(self.process.stderr, self.stderr_lines, None),
        ]
        test.addCleanup(self.cleanup)

    @staticmethod
    def _reader(pipe: IO[bytes], lines: list[bytes],
                q: queue.Queue[bytes | None] | None) -> threading.Thread:
        def read() -> None:
            for line in pipe:
                lines.append(line)
                if q is not None:
                    q.put(line)
            if q is not None:
                q.put(None)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Return the ready line, failing if it does not come within C{timeout}."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._test.fail(f"no ready line within {timeout}s; stderr: {self.stderr()!r}")
            try:
                line = self._stdout_queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.wait_exit()
                self._test.fail(f"daemon exited with {self.process.returncode} before "
                                f"the ready line; stderr: {self.stderr()!r}")
            ready = parse_json_line(line)
            if isinstance(ready, dict) and ready.get("event") == "ready":
                self.port: int = ready["port"]
                return ready

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Return the exit status, failing if the process is still running after C{timeout}."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(EXIT_TIMEOUT)
            self._test.fail(f"daemon still running {timeout}s later; killed; output:\n"
                            f"{self.output_tail()}")
        for reader in self._readers:
            reader.join(EXIT_TIMEOUT)
        return code

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def output_tail(self, lines: int = 30) -> str:
        """The last lines of both outputs, for failure messages."""
        tail = b"".join(self.stdout_lines[-lines:] + self.stderr_lines[-lines:])
        return tail.decode("utf-8", "replace")

    def stdout(self) -> str:
        return b"".join(self.stdout_lines).decode("utf-8", "replace")

    def stderr(self) -> str:
        return b"".join(self.stderr_lines).decode("utf-8", "replace")

    def token(self) -> str:
        return (self.data_dir / "backend" / "backend.token").read_text(encoding="ascii").strip()

    def log_text(self) -> str:
        logs = sorted((self.data_dir / "backend" / "logs").glob("*.jsonl*"))
        return "".join(path.read_text(encoding="utf-8") for path in logs)

    def request(self, method: str, path: str, token: str | None,
                body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[int, Any, bytes]:
        """Send one request; return status, headers and body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            all_headers = dict(headers or {})
            if token is not None:
                all_headers["X-Backend-Token"] = token
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(EXIT_TIMEOUT)
        for reader in self._readers:
            reader.join(EXIT_TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def parse_json_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def raw_exchange(port: int, head: bytes, chunks: Iterable[bytes] = ()) -> bytes:
    """
    Send C{head} then C{chunks} (from a thread, ignoring a closed connection)
    while reading the response until the server closes the connection.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)

    def send() -> None:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading: that is what is being tested

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received.append(data)
    except ConnectionResetError:
        pass
    finally:
        sender.join(HTTP_TIMEOUT)
        sock.close()
    return b"".join(received)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


class DaemonTestCase(SynchronousTestCase):
    def start(self, *args: str, **kwargs: Any) -> Daemon:
        daemon = Daemon(self, ["--port", "0", *args], **kwargs)
        daemon.wait_ready()
        return daemon

    def assertJSONError(self, status: int, body: bytes, expected_status: int,
                        code: str) -> None:
        self.assertEqual(status, expected_status, body)
        error = json.loads(body)["error"]
        self.assertEqual(set(error), {"code", "message", "details"})
        self.assertEqual(error["code"], code)


class StartupTests(DaemonTestCase):
    """The ready line, serving, and stopping."""

    def test_ready_health_and_sigterm(self) -> None:
        daemon = Daemon(self, ["--port", "0"])
        ready = daemon.wait_ready()
        self.assertEqual(set(ready), {"event", "port", "pid", "version"})
        self.assertIsInstance(ready["port"], int)
        self.assertGreater(ready["port"], 0)
        self.assertEqual(ready["pid"], daemon.process.pid)
        self.assertEqual(ready["version"], __version__)

        status, headers, body = daemon.request("GET", "/health", daemon.token())
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/json")
        health = json.loads(body)
        self.assertEqual(set(health), {"status", "version", "uptime_sec"})
        self.assertEqual((health["status"], health["version"]), ("ok", __version__))

        status, _, body = daemon.request("GET", "/health", None)
        self.assertJSONError(status, body, 401, "unauthorized")

        started = time.monotonic()
        self.assertEqual(daemon.terminate(), 0, daemon.stderr())
        self.assertLess(time.monotonic() - started, EXIT_TIMEOUT)

        json_lines = [parse_json_line(line) for line in daemon.stdout_lines]
        json_lines = [value for value in json_lines if value is not None]
        self.assertEqual(json_lines, [ready])
        self.assertNotIn("Traceback", daemon.stdout() + daemon.stderr())

    def test_python_m_twisted(self) -> None:
        daemon = Daemon(self, ["--port", "0"], runner=["-m", "twisted"])
        ready = daemon.wait_ready()
        self.assertEqual(ready["event"], "ready")
        status, _, body = daemon.request("GET", "/health", daemon.token())
        self.assertEqual(status, 200, body)
        self.assertEqual(daemon.terminate(), 0, daemon.stderr())

    def test_exit_on_stdin_close(self) -> None:
        daemon = self.start("--exit-on-stdin-close", stdin=subprocess.PIPE)
        status, _, _ = daemon.request("GET", "/health", daemon.token())
        self.assertEqual(status, 200)
        self.assertIsNone(daemon.process.poll())
        assert daemon.process.stdin is not None
        daemon.process.stdin.close()
        self.assertEqual(daemon.wait_exit(EXIT_TIMEOUT), 0, daemon.stderr())

    def test_env_token_used_and_not_stored(self) -> None:
        token = "env-given-token-0123456789"
        daemon = self.start(env={"BACKEND_TOKEN": token})
        status, _, body = daemon.request("GET", "/health", token)
        self.assertEqual(status, 200, body)
        self.assertFalse((daemon.data_dir / "backend" / "backend.token").exists())
        self.assertEqual(daemon.terminate(), 0)
        self.assertNotIn(token, daemon.stdout() + daemon.stderr() + daemon.log_text())


class SecretTests(DaemonTestCase):
    def test_token_never_logged(self) -> None:
        daemon = self.start()
        token = daemon.token()
        token_path = daemon.data_dir / "backend" / "backend.token"
        self.assertEqual(token_path.stat().st_mode & 0o777, 0o600)
        self.assertEqual(daemon.request("GET", "/health", token)[0], 200)
        self.assertEqual(daemon.request("GET", "/status", "wrong-token-0123456789abc")[0], 401)
        self.assertEqual(daemon.request("GET", "/nope", token)[0], 404)
        status, _, body = daemon.request(
            "POST", "/settings", token, json.dumps({"github": {"token": GITHUB_TOKEN}}).encode(),
            {"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        self.assertNotIn(GITHUB_TOKEN.encode(), body)
        self.assertEqual(daemon.request("POST", "/settings", token, b"{bad",
                                        {"Content-Type": "application/json"})[0], 400)
        self.assertEqual(daemon.terminate(), 0)

        logs = daemon.log_text()
        self.assertIn("listening on", logs)  # the log is written, so the check means something
        for secret in (token, GITHUB_TOKEN):
            self.assertNotIn(secret, logs)
            self.assertNotIn(secret, daemon.stdout())
            self.assertNotIn(secret, daemon.stderr())


class GuardTests(DaemonTestCase):
    """The Host check and the body limit on a real socket (one daemon per test)."""

    def test_host_check(self) -> None:
        daemon = self.start()
        token = daemon.token()
        head = b"GET /health HTTP/1.0\r\nX-Backend-Token: %s\r\n\r\n" % token.encode()
        status, _, body = split_response(raw_exchange(daemon.port, head))
        self.assertJSONError(status, body, 403, "forbidden_host")
        for host in (f"evil.com:{daemon.port}", f"127.0.0.1:{daemon.port + 1}"):
            status, _, body = daemon.request("GET", "/health", token, headers={"Host": host})
            self.assertJSONError(status, body, 403, "forbidden_host")
        status, _, body = daemon.request("GET", "/health", token,
                                         headers={"Host": f"localhost:{daemon.port}"})
        self.assertEqual(status, 200, body)

    def post_head(self, daemon: Daemon, extra: bytes) -> bytes:
        return (b"POST /settings HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Backend-Token: %s\r\n"
                b"Content-Type: application/json\r\n%s\r\n"
                % (daemon.port, daemon.token().encode(), extra))

    def assertTooLarge(self, raw: bytes, case: str) -> None:
        self.assertTrue(raw.startswith(b"HTTP/1.1 413 "), (case, raw[:200]))
        status, headers, body = split_response(raw)
        self.assertEqual(headers["content-type"], "application/json", case)
        self.assertEqual(headers["connection"], "close", case)
        self.assertEqual(len(body), int(headers["content-length"]), (case, raw))
        self.assertJSONError(status, body, 413, "body_too_large")

    def test_body_limit(self) -> None:
        daemon = self.start()
        size = 2 * 1000 * 1000

        # A declared 2 MB body, sent in full.
        head = self.post_head(daemon, b"Content-Length: %d\r\n" % size)
        self.assertTooLarge(raw_exchange(daemon.port, head, [b"[" + b" " * (size - 2) + b"]"]),
                            "content-length")

        # With Expect: 100-continue the client waits: the 413 comes at once,
        # with no "100 Continue" before or after it.
        head = self.post_head(daemon, b"Content-Length: %d\r\nExpect: 100-continue\r\n" % size)
        raw = raw_exchange(daemon.port, head)
        self.assertTooLarge(raw, "expect")
        self.assertNotIn(b"100 Continue", raw)

        # A chunked body is cut off once it grows past the limit.
        head = self.post_head(daemon, b"Transfer-Encoding: chunked\r\n")
        chunk = b" " * 65536
        chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 32 + [b"0\r\n\r\n"]
        self.assertTooLarge(raw_exchange(daemon.port, head, chunks), "chunked")

        # Just under the limit is read and applied; the daemon is unharmed.
        body = b'{"workers": 3}' + b" " * (1024 * 1024 - 100)
        status, _, answer = daemon.request("POST", "/settings", daemon.token(), body,
                                           {"Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(json.loads(answer)["workers"], 3)


class StartupFailureTests(SynchronousTestCase):
    """A daemon that cannot start says why in one line and exits non-zero."""

    def run_daemon(self, *args: str, env: Mapping[str, str] | None = None
                   ) -> subprocess.CompletedProcess[str]:
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir()
        return subprocess.run(
            [sys.executable, *TWISTD, "enttok", "--data-dir", str(data_dir), *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
            env=daemon_env(env), cwd=str(data_dir))

    def assertOneLineError(self, result: subprocess.CompletedProcess[str],
                           mentions: str) -> None:
        self.assertNotEqual(result.returncode, 0)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("enttok:"), lines[0])
        self.assertIn(mentions, lines[0])
        self.assertNotIn("Traceback", result.stderr + result.stdout)
        self.assertNotIn('"ready"', result.stdout)

    def test_bad_port(self) -> None:
        self.assertOneLineError(self.run_daemon("--port", "abc"), "port")

    def test_bad_run_env(self) -> None:
        self.assertOneLineError(self.run_daemon("--port", "0", env={"RUN_ENV": "staging"}),
                                "RUN_ENV")

    def test_short_token(self) -> None:
        self.assertOneLineError(self.run_daemon("--port", "0", "--token", "short"), "token")

    def test_busy_port(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = self.run_daemon("--port", str(port))
        self.assertOneLineError(result, f"127.0.0.1:{port}")
