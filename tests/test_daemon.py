"""The real daemon, started as a subprocess the way the desktop app starts it.

Every wait is bounded: a daemon that does not answer fails the test, it never hangs it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok import __version__
from tests.daemonsupport import TWISTD, Daemon, child_env, log_text, token_path

#: This module's bounds, shorter than the defaults of L{tests.daemonsupport.Daemon}.
READY_TIMEOUT = 15.0
EXIT_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0
GITHUB_TOKEN = "ghp_daemonTestSecret0123456789"


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
    def daemon(self, *args: str, runner: Sequence[str] = TWISTD, **kwargs: Any) -> Daemon:
        """
        A daemon on a new data folder and a free port, with the short bounds: started
        without a token (it makes one up and writes it to its token file) unless its
        C{env} gives one.
        """
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir()
        return Daemon(self, data_dir, args, token=None, runner=runner,
                      ready_timeout=READY_TIMEOUT, exit_timeout=EXIT_TIMEOUT,
                      http_timeout=HTTP_TIMEOUT, **kwargs)

    def start(self, *args: str, **kwargs: Any) -> Daemon:
        daemon = self.daemon(*args, **kwargs)
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
        daemon = self.daemon()
        ready = daemon.wait_ready()
        self.assertEqual(set(ready), {"event", "port", "pid", "version"})
        self.assertIsInstance(ready["port"], int)
        self.assertGreater(ready["port"], 0)
        self.assertEqual(ready["pid"], daemon.process.pid)
        self.assertEqual(ready["version"], __version__)

        status, headers, body = daemon.request("GET", "/health", daemon.stored_token())
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
        daemon = self.daemon(runner=["-m", "twisted", "enttok"])
        ready = daemon.wait_ready()
        self.assertEqual(ready["event"], "ready")
        status, _, body = daemon.request("GET", "/health", daemon.stored_token())
        self.assertEqual(status, 200, body)
        self.assertEqual(daemon.terminate(), 0, daemon.stderr())

    def test_exit_on_stdin_close(self) -> None:
        daemon = self.start("--exit-on-stdin-close", stdin=subprocess.PIPE)
        status, _, _ = daemon.request("GET", "/health", daemon.stored_token())
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
        self.assertFalse(token_path(daemon.data_dir).exists())
        self.assertEqual(daemon.terminate(), 0)
        self.assertNotIn(token, daemon.stdout() + daemon.stderr() + log_text(daemon.data_dir))


class SecretTests(DaemonTestCase):
    def test_token_never_logged(self) -> None:
        daemon = self.start()
        token = daemon.stored_token()
        self.assertEqual(token_path(daemon.data_dir).stat().st_mode & 0o777, 0o600)
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

        logs = log_text(daemon.data_dir)
        self.assertIn("listening on", logs)  # the log is written, so the check means something
        for secret in (token, GITHUB_TOKEN):
            self.assertNotIn(secret, logs)
            self.assertNotIn(secret, daemon.stdout())
            self.assertNotIn(secret, daemon.stderr())


class GuardTests(DaemonTestCase):
    """The Host check and the body limit on a real socket (one daemon per test)."""

    def test_host_check(self) -> None:
        daemon = self.start()
        token = daemon.stored_token()
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
                % (daemon.port, daemon.stored_token().encode(), extra))

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
        status, _, answer = daemon.request("POST", "/settings", daemon.stored_token(), body,
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
            [sys.executable, *TWISTD, "--data-dir", str(data_dir), *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
            env=child_env(env), cwd=str(data_dir))

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

    def test_short_token(self) -> None:
        self.assertOneLineError(self.run_daemon("--port", "0", "--token", "short"), "token")

    def test_busy_port(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = self.run_daemon("--port", str(port))
        self.assertOneLineError(result, f"127.0.0.1:{port}")
