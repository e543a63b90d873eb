"""The daemon against hostile clients, on a real socket of 127.0.0.1.

Every route and the WebSocket without the token or with a wrong one; DNS-rebinding
Host headers; cross-site Origins and the "simple" (text/plain) POST a page can send
without a preflight; path traversal and symlink escapes through job payloads; a
10 MB body; slow (slowloris-style) clients beside normal ones; and the token never
written to any log. What is about the site's timers, not sockets (the idle timeout, the
deadlines for a request line and a request, a repeated token), runs on a Clock, in memory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from enttok.api.guard import Guard
from enttok.api.requests import RECEIVE_DEADLINE, APISite, LimitedChannel
from tests.daemonsupport import (
    HASHING,
    MODULE,
    REPO,
    TOKEN,
    Daemon,
    log_text,
    start,
    write_settings,
)

SPEC = REPO / "docs" / "openapi.yaml"
SOCKET_TIMEOUT = 10.0
WS_KEY = base64.b64encode(b"0123456789abcdef").decode()
EVIL = "https://evil.example"
APP = "http://localhost:5173"


def routes() -> Iterator[tuple[str, str]]:
    """(method, path) of every documented operation, with a job id filled in."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post"):
                yield method.upper(), path.replace("{job_id}", "job_20261127_001")


def exchange(port: int, head: bytes, body_chunks: Iterable[bytes] = (),
             timeout: float = SOCKET_TIMEOUT) -> bytes:
    """
    Send a raw request (its body from a thread) and return the response: up to the
    end of its declared body, the end of the headers of a 101, or the server closing.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send() -> None:
        try:
            sock.sendall(head)
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading: what some tests want

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = b""
    try:
        while not _complete(received):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
        sender.join(timeout)
    return received


def _complete(raw: bytes) -> bool:
    _, found, body = raw.partition(b"\r\n\r\n")
    if not found:
        return False
    if status_of(raw) == 101:
        return True
    length = headers_of(raw).get("content-length")
    return length is not None and len(body) >= int(length)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else 0


def headers_of(raw: bytes) -> dict[str, str]:
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def error_code(raw: bytes) -> str:
    body = raw.partition(b"\r\n\r\n")[2]
    code: str = json.loads(body)["error"]["code"]
    return code


def upgrade_head(port: int, path: str = "/events", extra: str = "",
                 host: str | None = None) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode("latin-1")


class DaemonCase(SynchronousTestCase):
    def start_daemon(self, runner: list[str] = MODULE,
                     settings: dict[str, Any] | None = None) -> Daemon:
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir()
        if settings:
            write_settings(data_dir, settings)
        return start(self, data_dir, runner=runner)

    def assertError(self, answer: tuple[int, Any], status: int, code: str) -> None:
        self.assertEqual(answer[0], status, answer)
        self.assertEqual(answer[1]["error"]["code"], code, answer)

    def assertTokenNotLogged(self, daemon: Daemon) -> None:
        """After the daemon stopped: not in its log folder, its console or its stderr."""
        assert daemon.token is not None
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        logs = log_text(daemon.data_dir)
        self.assertIn("listening on", logs)  # the log was written: the check means something
        for where, text in (("log folder", logs), ("console", daemon.stdout()),
                            ("stderr", daemon.stderr())):
            self.assertNotIn(daemon.token, text, where)


class AuthTests(DaemonCase):
    def test_every_route_needs_the_token(self) -> None:
        daemon = self.start_daemon()
        token = TOKEN
        wrong = [None, "", "wrong-token-0123456789abcdef", token[:-1], token + "x",
                 token.upper(), token[:16], token + " " + token]
        for method, path in [*routes(), ("GET", "/no-such-route"), ("OPTIONS", "/status"),
                             ("DELETE", "/jobs")]:
            body: dict[str, Any] | None = {} if method == "POST" else None
            for presented in wrong:
                headers = {} if presented is None else {"X-Backend-Token": presented}
                self.assertError(daemon.call(method, path, body, token=None, headers=headers),
                                 401, "unauthorized")
            # Not in the query string, nor as a bearer token, nor as a subprotocol here.
            self.assertError(daemon.call(method, f"{path}?token={token}", body, token=None),
                             401, "unauthorized")
            headers = {"Authorization": f"Bearer {token}"}
            if path != "/events":  # where the subprotocol is a way to send the token
                headers["Sec-WebSocket-Protocol"] = f"enttok.token.{token}"
            self.assertError(daemon.call(method, path, body, token=None, headers=headers),
                             401, "unauthorized")
        self.assertEqual(daemon.call("GET", "/health")[0], 200)
        self.assertTokenNotLogged(daemon)

    def test_websocket_needs_the_token(self) -> None:
        daemon = self.start_daemon()
        port = daemon.port
        for extra in ("", "X-Backend-Token: wrong-token-0123456789abcdef\r\n",
                      f"Sec-WebSocket-Protocol: enttok.token.{TOKEN}x, enttok.v1\r\n",
                      f"Sec-WebSocket-Protocol: enttok.tokens.{TOKEN}\r\n",
                      f"Sec-WebSocket-Protocol: {TOKEN}\r\n",
                      f"X-Backend-Token: {TOKEN}\r\nX-Backend-Token: {TOKEN}\r\n",
                      f"X-Backend-Token: {TOKEN}\r\n"
                      f"Sec-WebSocket-Protocol: enttok.token.{TOKEN}\r\n"):
            raw = exchange(port, upgrade_head(port, extra=extra))
            self.assertEqual(status_of(raw), 401, (extra, raw[:300]))
            self.assertEqual(error_code(raw), "unauthorized")
        raw = exchange(port, upgrade_head(
            port, extra=f"Sec-WebSocket-Protocol: enttok.token.{TOKEN}, enttok.v1\r\n"))
        self.assertEqual(status_of(raw), 101, raw[:300])
        self.assertEqual(headers_of(raw)["sec-websocket-protocol"], "enttok.v1")
        raw = exchange(port, upgrade_head(port, extra=f"X-Backend-Token: {TOKEN}\r\n"))
        self.assertEqual(status_of(raw), 101, raw[:300])
        self.assertTokenNotLogged(daemon)


class HostTests(DaemonCase):
    def test_dns_rebinding_hosts_refused(self) -> None:
        daemon = self.start_daemon()
        port = daemon.port
        hosts = ["evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                 f"localhost.evil.example:{port}", "127.0.0.1", "localhost",
                 f"127.0.0.1:{port + 1}", f"[::1]:{port}", f"0.0.0.0:{port}",
                 f"127.0.0.2:{port}", f"localhost.:{port}", f"127.1:{port}",
                 f"2130706433:{port}", f"127.0.0.1:{port}@evil.example", ""]
        for method, path in [*routes(), ("GET", "/no-such-route")]:
            body: dict[str, Any] | None = {} if method == "POST" else None
            for host in hosts:
                self.assertError(daemon.call(method, path, body, headers={"Host": host}),
                                 403, "forbidden_host")
        # HTTP/1.0 without any Host.
        raw = exchange(port, f"GET /health HTTP/1.0\r\nX-Backend-Token: {TOKEN}\r\n\r\n"
                       .encode())
        self.assertEqual((status_of(raw), error_code(raw)), (403, "forbidden_host"))
        # The WebSocket too, even with the token.
        raw = exchange(port, upgrade_head(port, extra=f"X-Backend-Token: {TOKEN}\r\n",
                                          host=f"evil.example:{port}"))
        self.assertEqual((status_of(raw), error_code(raw)), (403, "forbidden_host"))
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            self.assertEqual(daemon.call("GET", "/health", headers={"Host": host})[0], 200)
        self.assertTokenNotLogged(daemon)


class CrossSiteTests(DaemonCase):
    def test_cross_site_requests(self) -> None:
        daemon = self.start_daemon(settings={"allowed_origins": [APP]})
        port = daemon.port
        before = daemon.ok("GET", "/jobs")["jobs"]
        job = json.dumps({"type": "maintenance.compact", "payload": {"vacuum": True}}).encode()
        settings = json.dumps({"allowed_origins": [EVIL]}).encode()
        for ctype in ("text/plain", "text/plain;charset=UTF-8",
                      "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                      None):
            headers = {"Origin": EVIL}
            if ctype is not None:
                headers["Content-Type"] = ctype
            # What a page can send without a preflight: no custom header, so no token.
            for path, raw_body in (("/jobs", job), ("/settings", settings)):
                status, answer = daemon.call("POST", path, raw=raw_body, token=None,
                                             headers=headers)
                if ctype and ctype.startswith("multipart/"):
                    # twisted.web parses form bodies itself and refuses a broken one.
                    self.assertEqual((status, answer), (400, b""))
                    continue
                self.assertEqual(status, 401, (ctype, path, answer))
                self.assertEqual(answer["error"]["code"], "unauthorized")
                # Even with the token, the body must be declared JSON.
                status, answer = daemon.call("POST", path, raw=raw_body, headers=headers)
                self.assertEqual((status, answer["error"]["code"]),
                                 (415, "unsupported_media_type"))
        self.assertEqual(daemon.ok("GET", "/jobs")["jobs"], before)
        self.assertEqual(daemon.ok("GET", "/settings")["allowed_origins"], [APP])

        # No CORS grant to another origin, on a preflight or on an answer.
        for method in ("OPTIONS", "GET"):
            raw = exchange(port, (f"{method} /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                  f"Origin: {EVIL}\r\nAccess-Control-Request-Method: POST\r\n"
                                  f"X-Backend-Token: {TOKEN}\r\nConnection: close\r\n\r\n")
                           .encode())
            self.assertNotIn("access-control-allow-origin", headers_of(raw), raw[:400])
        raw = exchange(port, (f"OPTIONS /jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                              f"Origin: {APP}\r\nAccess-Control-Request-Method: POST\r\n"
                              f"Connection: close\r\n\r\n").encode())
        self.assertEqual(status_of(raw), 204)
        self.assertEqual(headers_of(raw)["access-control-allow-origin"], APP)

        # The WebSocket from another site's page, even with the token.
        for origin in (EVIL, "null", f"http://127.0.0.1:{port}"):
            raw = exchange(port, upgrade_head(
                port, extra=f"Origin: {origin}\r\n"
                            f"Sec-WebSocket-Protocol: enttok.token.{TOKEN}, enttok.v1\r\n"))
            self.assertEqual((status_of(raw), error_code(raw)), (403, "forbidden_origin"))
        raw = exchange(port, upgrade_head(
            port, extra=f"Origin: {APP}\r\nSec-WebSocket-Protocol: enttok.token.{TOKEN}\r\n"))
        self.assertEqual(status_of(raw), 101, raw[:300])
        self.assertTokenNotLogged(daemon)


class PathTests(DaemonCase):
    """Job payloads cannot make the daemon read outside the vault."""

    def test_traversal_and_symlinks(self) -> None:
        base = Path(self.mktemp()).absolute()
        vault, outside = base / "vault", base / "outside"
        (vault / "daily").mkdir(parents=True)
        outside.mkdir()
        (vault / "daily" / "2026-11-27.md").write_text("# Friday\n\ninside words\n")
        (outside / "secret.md").write_text("# Secret\n\nzanzibarsecret\n")
        (vault / "escape.md").symlink_to(outside / "secret.md")
        (vault / "linked").symlink_to(outside, target_is_directory=True)
        (vault / ".obsidian").mkdir()
        daemon = self.start_daemon(HASHING, settings={"vault_path": str(vault)})

        refused = ["../outside/secret.md", str(outside / "secret.md"),
                   "daily/../../outside/secret.md", "/etc/passwd", "..", "../vault.md",
                   "a\x00.md", ".obsidian/workspace.md", "daily/.hidden.md",
                   "daily/2026-11-27.txt", f"{vault}/../outside/secret.md"]
        for name in ("changed_paths", "deleted_paths"):
            for path in refused:
                answer = daemon.call("POST", "/jobs", {"type": "index.update",
                                                       "payload": {name: [path]}})
                self.assertError(answer, 400, "invalid_payload")
                self.assertEqual(answer[1]["error"]["details"]["field"], f"payload.{name}[0]")
        for payload in ({"vault_path": "relative/vault"}, {"embedding_model": "../model"},
                        {"vault_path": "/a\x00b"}):
            self.assertError(daemon.call("POST", "/jobs", {"type": "index.rebuild",
                                                           "payload": payload}),
                             400, "invalid_payload")

        # Inside the vault by name, outside by symlink: read never.
        ids = [daemon.submit("vault.scan", {"force_full": True}),
               daemon.submit("index.update", {"changed_paths": [
                   "escape.md", "linked/secret.md", "daily/2026-11-27.md"]})]
        jobs = daemon.wait_jobs(ids, 20.0)
        self.assertEqual({j["status"] for j in jobs.values()}, {"succeeded"}, jobs)
        update = jobs[ids[1]]
        result = update["result"]
        # (The daily note may have been indexed already by the scan the daemon runs at start.)
        self.assertEqual(result["notes_indexed"] + result["notes_unchanged"], 1, update)
        self.assertEqual(result["warnings"], 2, update)
        warnings = " ".join(e["message"] for e in update["events"] if e["level"] == "warn")
        self.assertIn("outside the vault", warnings)
        daemon.wait_jobs([j["job_id"] for j in daemon.ok(
            "GET", "/jobs?status=queued,running")["jobs"]], 20.0)
        status = daemon.ok("GET", "/index/status")
        self.assertEqual(status["notes"], 1, status)
        self.assertEqual(daemon.ok("GET", "/search?q=zanzibarsecret&mode=fts")["hits"], [])
        for mode in ("hybrid", "vector"):
            found = daemon.ok("GET", f"/search?q=zanzibarsecret&mode={mode}")["hits"]
            self.assertEqual({hit["path"] for hit in found}, {"daily/2026-11-27.md"})
        self.assertEqual(len(daemon.ok("GET", "/search?q=inside&mode=fts")["hits"]), 1)

        # suggest.generate reads only notes of the index.
        job_id = daemon.submit("suggest.generate", {"note_path": "../outside/secret.md"})
        job = daemon.wait_jobs([job_id], 20.0)[job_id]
        self.assertEqual((job["status"], job["error"]["code"]), ("failed", "note_not_found"))
        self.assertTokenNotLogged(daemon)


class SlowClientTests(DaemonCase):
    def test_large_bodies_and_slow_clients(self) -> None:
        daemon = self.start_daemon()
        port = daemon.port
        auth = f"Host: 127.0.0.1:{port}\r\nX-Backend-Token: {TOKEN}\r\n"
        ten_mb = 10 * 1000 * 1000
        for route in ("/jobs", "/settings", "/jobs/job_20261127_001/cancel", "/health"):
            started = time.monotonic()
            head = (f"POST {route} HTTP/1.1\r\n{auth}Content-Type: application/json\r\n"
                    f"Content-Length: {ten_mb}\r\n\r\n").encode()
            raw = exchange(port, head, (b" " * 65536 for _ in range(ten_mb // 65536)))
            self.assertEqual((status_of(raw), error_code(raw)), (413, "body_too_large"))
            self.assertLess(time.monotonic() - started, 5.0)
        head = (f"POST /jobs HTTP/1.1\r\n{auth}Content-Type: application/json\r\n"
                f"Transfer-Encoding: chunked\r\n\r\n").encode()
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        raw = exchange(port, head, [chunk] * (ten_mb // 65536))
        self.assertEqual(status_of(raw), 413)

        # Slow clients hold connections; others are served as usual meanwhile.
        stop = threading.Event()
        slow: list[socket.socket] = []
        partial = [f"GET /status HTTP/1.1\r\n{auth}X-Slow: ".encode(),
                   (f"POST /settings HTTP/1.1\r\n{auth}Content-Type: application/json\r\n"
                    f"Content-Length: 1000\r\n\r\n{{").encode()]
        for i in range(40):
            sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
            sock.sendall(partial[i % 2])
            slow.append(sock)

        def trickle() -> None:
            while not stop.wait(0.2):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.send(b"a")

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            latencies = []
            for _ in range(30):
                started = time.monotonic()
                self.assertEqual(daemon.call("GET", "/status")[0], 200)
                latencies.append(time.monotonic() - started)
                time.sleep(0.03)
            self.assertLess(max(latencies), 1.0, latencies)
        finally:
            stop.set()
            trickler.join(SOCKET_TIMEOUT)
            for sock in slow:
                sock.close()
        self.assertEqual(daemon.call("GET", "/health")[0], 200)
        self.assertTokenNotLogged(daemon)


IDLE = 60.0  # the daemon's idle timeout
GET = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
UPGRADE = (b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: " + WS_KEY.encode() + b"\r\n\r\n")


class _Hello(Resource):
    """Answers every GET at once; or, when C{held}, only when the test says."""

    isLeaf = True

    def __init__(self, held: bool = False) -> None:
        super().__init__()
        self.held = held
        self.pending: list[Request] = []

    def render_GET(self, request: Request) -> bytes | int:
        if self.held:
            self.pending.append(request)
            return NOT_DONE_YET
        return b"hello"


class _Echo(WebSocketServerProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


class FirstLineDeadlineTests(SynchronousTestCase):
    """A channel waits L{RECEIVE_DEADLINE} seconds for a request line, however it
    trickles in, then answers 408 and closes; an idle keep-alive connection is
    left to the idle timeout, and a WebSocket to Autobahn."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.hello = _Hello()
        root = Resource()
        root.putChild(b"hello", self.hello)
        factory = WebSocketServerFactory(reactor=self.clock)
        factory.protocol = _Echo
        factory.setProtocolOptions(openHandshakeTimeout=0)  # no timer on the real reactor
        root.putChild(b"events", WebSocketResource(factory))
        site = APISite(root, timeout=IDLE, reactor=self.clock)
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        self.channel = site.buildProtocol(address)
        self.assertIsInstance(self.channel, LimitedChannel)
        self.transport = StringTransport(peerAddress=address)
        self.transport.protocol = self.channel  # as on TCP: Autobahn takes it over
        self.channel.makeConnection(self.transport)

    def trickle(self, data: bytes, every: float = 3.0) -> None:
        """Send C{data} a byte at a time, C{every} seconds apart (first byte now)."""
        for i in range(len(data)):
            if i:
                self.clock.advance(every)
            self.channel.dataReceived(data[i:i + 1])

    def assertOpen(self) -> None:
        self.assertFalse(self.transport.disconnecting)
        self.assertNotIn(b" 408 ", self.transport.value())

    def assertCutOff(self) -> None:
        self.assertTrue(self.transport.disconnecting)
        answer = self.transport.value()
        self.assertIn(b"HTTP/1.1 408 Request Timeout\r\n", answer)
        self.assertIn(b'"request_timeout"', answer)

    def test_trickled_request_line(self) -> None:
        """A byte every 3 s never idles the connection, but the line must end in time."""
        self.trickle(b"GET /hello HTTP/1.1")  # 19 bytes over 54 s
        self.assertTrue(self.transport.disconnecting)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 408 "))
        self.assertIn(b'"request_timeout"', self.transport.value())

    def test_cut_off_at_the_deadline(self) -> None:
        self.trickle(b"GET /hel", every=4.0)  # last byte at 28 s
        self.clock.advance(RECEIVE_DEADLINE - 28 - 0.1)
        self.assertOpen()
        self.clock.advance(0.1)
        self.assertCutOff()

    def test_silent_connection(self) -> None:
        """A new connection that sends nothing gets the same deadline."""
        self.clock.advance(RECEIVE_DEADLINE - 0.1)
        self.assertOpen()
        self.clock.advance(0.1)
        self.assertCutOff()

    def test_prompt_request(self) -> None:
        """A request line in time is answered; the idle keep-alive connection then
        stays open until the idle timeout, without a 408."""
        self.clock.advance(RECEIVE_DEADLINE - 1)
        self.channel.dataReceived(GET)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 "))
        self.clock.advance(IDLE - 0.1)
        self.assertOpen()
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertNotIn(b" 408 ", self.transport.value())

    def test_keep_alive_trickled_second_request(self) -> None:
        """After a response, the wait for the next line starts with its first byte."""
        self.channel.dataReceived(GET)
        self.clock.advance(IDLE - 10)  # idle, not yet timed out
        self.transport.clear()
        self.trickle(b"GET /hel", every=4.0)
        self.clock.advance(RECEIVE_DEADLINE - 28 - 0.1)
        self.assertOpen()
        self.clock.advance(0.1)
        self.assertCutOff()
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 408 "))

    def test_keep_alive_second_request_in_time(self) -> None:
        self.channel.dataReceived(GET)
        self.clock.advance(IDLE - 10)
        self.trickle(GET, every=0.5)
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200 "), 2)
        self.assertOpen()

    def test_pipelined_partial_line_waits_from_the_response(self) -> None:
        """Bytes of the next request that came with a slow one: the wait starts when
        the slow one's response is done."""
        self.hello.held = True
        self.channel.dataReceived(GET + b"GET /he")
        self.clock.advance(RECEIVE_DEADLINE * 2)
        self.assertOpen()
        self.hello.pending.pop().finish()
        self.clock.advance(RECEIVE_DEADLINE - 0.1)
        self.assertOpen()
        self.clock.advance(0.1)
        self.assertCutOff()

    def test_pipelined_partial_line_after_an_immediate_answer(self) -> None:
        self.channel.dataReceived(GET + b"GET /he")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 "))
        self.clock.advance(RECEIVE_DEADLINE)
        self.assertCutOff()

    def test_websocket_outlives_the_deadline(self) -> None:
        """After the upgrade, the channel keeps no timer: Autobahn owns the transport."""
        self.channel.dataReceived(UPGRADE)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 101 "))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(RECEIVE_DEADLINE + IDLE)
        self.assertOpen()
        self.transport.clear()
        mask = b"abcd"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(b"ping"))
        self.transport.protocol.dataReceived(b"\x81\x84" + mask + masked)
        self.assertEqual(self.transport.value(), b"\x81\x04ping")


class _ClockChannel:
    """One HTTP connection to an L{APISite} over a L{StringTransport}, on a Clock."""

    def __init__(self, root: Resource, clock: Clock, idle: float = IDLE) -> None:
        site = APISite(root, timeout=idle, reactor=clock)
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        self.channel = site.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.transport.protocol = self.channel  # as on TCP: Autobahn takes it over
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> bytes:
        """Feed C{data} and return everything answered so far."""
        self.channel.dataReceived(data)
        return self.transport.value()


class RepeatedTokenTests(SynchronousTestCase):
    """A request carries exactly one token: two C{X-Backend-Token} lines, two token
    subprotocols, or a header beside a subprotocol are refused, even when all are right."""

    PORT = 40001

    def setUp(self) -> None:
        self.clock = Clock()
        factory = WebSocketServerFactory(reactor=self.clock)
        factory.protocol = _Echo
        factory.setProtocolOptions(openHandshakeTimeout=0)
        self.guard = Guard(_Hello(), WebSocketResource(factory), TOKEN, lambda: [])
        self.guard.port = self.PORT

    def answer(self, head: bytes) -> bytes:
        return _ClockChannel(self.guard, self.clock).send(head)

    def get(self, token_lines: str) -> bytes:
        return self.answer(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{self.PORT}\r\n"
                           f"{token_lines}\r\n".encode("latin-1"))

    def upgrade(self, extra: str) -> bytes:
        return self.answer(upgrade_head(self.PORT, extra=extra))

    def assertUnauthorized(self, raw: bytes) -> None:
        self.assertEqual(status_of(raw), 401, raw[:300])
        self.assertEqual(error_code(raw), "unauthorized")

    def test_http(self) -> None:
        right, wrong = f"X-Backend-Token: {TOKEN}\r\n", "X-Backend-Token: wrong-0123456789ab\r\n"
        self.assertEqual(status_of(self.get(right)), 200)
        for lines in (right + right, wrong + right, right + wrong,
                      right + f"x-backend-token: {TOKEN}\r\n", right + "X-Backend-Token: \r\n"):
            self.assertUnauthorized(self.get(lines))

    def test_websocket_upgrade(self) -> None:
        header = f"X-Backend-Token: {TOKEN}\r\n"
        proto = f"enttok.token.{TOKEN}"
        self.assertEqual(status_of(self.upgrade(header)), 101)
        self.assertEqual(status_of(self.upgrade(f"Sec-WebSocket-Protocol: {proto}\r\n")), 101)
        # One token over two header lines is one token.
        self.assertEqual(status_of(self.upgrade(f"Sec-WebSocket-Protocol: {proto}\r\n"
                                                "Sec-WebSocket-Protocol: enttok.v1\r\n")), 101)
        for extra in (header + header,
                      header + "X-Backend-Token: wrong-0123456789ab\r\n",
                      header + f"Sec-WebSocket-Protocol: {proto}\r\n",
                      f"Sec-WebSocket-Protocol: {proto}, {proto}\r\n",
                      f"Sec-WebSocket-Protocol: enttok.token.wrong-0123456789ab, {proto}\r\n",
                      # Header lines of one name are one list (RFC 9110 5.3).
                      f"Sec-WebSocket-Protocol: {proto}\r\n"
                      f"Sec-WebSocket-Protocol: {proto}, enttok.v1\r\n"):
            self.assertUnauthorized(self.upgrade(extra))

    def test_token_subprotocol_counts_only_on_events(self) -> None:
        """Elsewhere a token subprotocol is no credential, so it makes nothing ambiguous."""
        raw = self.get(f"X-Backend-Token: {TOKEN}\r\n"
                       f"Sec-WebSocket-Protocol: enttok.token.{TOKEN}\r\n")
        self.assertEqual(status_of(raw), 200, raw[:300])


class IdleTimeoutTests(SynchronousTestCase):
    """The site closes a connection that sends nothing, or stops sending, once idle
    for its timeout (the daemon's is 60 s; here 10 s, before the receive deadline)."""

    def connect(self) -> _ClockChannel:
        self.clock = Clock()
        guard = Guard(Resource(), None, TOKEN, lambda: [])
        return _ClockChannel(guard, self.clock, idle=10.0)

    def assertClosedWhenIdle(self, conn: _ClockChannel) -> None:
        self.clock.advance(9.9)
        self.assertFalse(conn.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(conn.transport.disconnecting)
        self.assertEqual(conn.transport.value(), b"")  # closed, not answered

    def test_silent(self) -> None:
        self.assertClosedWhenIdle(self.connect())

    def test_half_a_request(self) -> None:
        conn = self.connect()
        conn.send(b"GET /health HTTP/1.1\r\nHo")
        self.assertClosedWhenIdle(conn)


class ReceiveDeadlineTests(SynchronousTestCase):
    """A request that trickles in (a byte now and then, so never idle) is answered
    with 408 at L{RECEIVE_DEADLINE} after its first line, headers or body unfinished."""

    def trickle(self, request: bytes, every: float) -> tuple[_ClockChannel, float]:
        """Send C{request} a byte at a time until the connection closes; return it
        and the seconds from the end of the first line to the close."""
        self.clock = Clock()
        guard = Guard(Resource(), None, TOKEN, lambda: [])
        conn = _ClockChannel(guard, self.clock)
        first_line_at = None
        for i in range(len(request)):
            if conn.transport.disconnecting:
                break
            conn.send(request[i:i + 1])
            if first_line_at is None and request[:i + 1].endswith(b"\r\n"):
                first_line_at = self.clock.seconds()
            self.clock.advance(every)
        assert first_line_at is not None
        self.assertTrue(conn.transport.disconnecting)
        return conn, self.clock.seconds() - every - first_line_at

    def assertCutOff(self, request: bytes) -> None:
        conn, waited = self.trickle(request, every=0.25)
        answer = conn.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 408 "), answer)
        self.assertIn(b'"request_timeout"', answer)
        self.assertLessEqual(waited, RECEIVE_DEADLINE)
        self.assertGreater(waited, RECEIVE_DEADLINE - 0.5)

    def test_trickled_headers(self) -> None:
        self.assertCutOff(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: "
                          + b"x" * 200)

    def test_trickled_body(self) -> None:
        self.assertCutOff(b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Length: 200\r\n\r\n" + b"{" * 200)
