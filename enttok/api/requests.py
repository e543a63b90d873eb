"""Reading requests: a body-size limit enforced while receiving, JSON bodies, query values."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from twisted.internet.interfaces import IDelayedCall, ITransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import IRequest

from enttok.api.errors import APIError, error_body

MAX_BODY = 1024 * 1024
#: Seconds a request may take to arrive, from its first line to the end of its body;
#: and seconds a channel waits for a request's first line (see L{LimitedChannel}).
RECEIVE_DEADLINE = 30.0


def write_error(transport: ITransport, status: str, code: str, message: str) -> None:
    """Write a final JSON error response, one that says the connection will close."""
    body = error_body(code, message)
    transport.write(
        b"HTTP/1.1 %s\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status.encode("ascii"), len(body)) + body)


class LimitedRequest(server.Request):
    """
    A request that must arrive whole, quickly: at most L{MAX_BODY} bytes of body,
    within L{RECEIVE_DEADLINE} seconds of its first line.

    A declared length over the limit, or a chunked body that grows past it, is
    answered with 413 at once and the connection closed: the rest is never read.
    A request still incomplete at the deadline is answered with 408 and closed:
    the site's idle timeout alone would let a client that trickles a byte now and
    then hold its connection forever.
    """

    max_body = MAX_BODY
    receive_deadline = RECEIVE_DEADLINE
    _received = 0
    _rejected = False

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, *args, **kwargs)
        self._deadline = channel.callLater(self.receive_deadline, self._too_slow)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._too_large()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._rejected:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._too_large()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._stop_deadline()
        if not self._rejected:
            super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:
        self._stop_deadline()
        super().connectionLost(reason)

    def _stop_deadline(self) -> None:
        if self._deadline.active():
            self._deadline.cancel()

    def _too_large(self) -> None:
        self._reject("413 Payload Too Large", "body_too_large",
                     f"request body over {self.max_body} bytes")

    def _too_slow(self) -> None:
        if not self._rejected:
            self._reject("408 Request Timeout", "request_timeout",
                         f"request not received within {self.receive_deadline:g} s")

    def _reject(self, status: str, code: str, message: str) -> None:
        """Answer at once with an error and close the connection (the rest is not read)."""
        self._rejected = True
        self._stop_deadline()
        # The channel answers "Expect: 100-continue" right after gotLength; no
        # 100 may follow the final error (and the client must not send the body).
        self.requestHeaders.removeHeader(b"expect")
        transport = self.channel.transport
        assert transport is not None
        write_error(transport, status, code, message)
        transport.loseConnection()


class LimitedChannel(http.HTTPChannel):
    """
    A channel that waits at most L{RECEIVE_DEADLINE} seconds for a request's
    first line; from that line on, L{LimitedRequest} bounds the rest.

    The idle timeout alone would not do: every byte resets it, so a client that
    trickles a request line would hold its connection forever. At the deadline
    the channel answers 408 (no request has begun, no response is in flight)
    and closes the connection.

    The wait starts when the connection is made, and again, after a response
    on a keep-alive connection, with the first byte of the next request
    (pipelined bytes already received count at once). A keep-alive connection
    with no bytes pending is left to the idle timeout: clients keep pooled
    connections idle, and closing them sooner only makes them race the close.
    After a WebSocket upgrade the transport belongs to Autobahn: no request
    will end, so the wait never starts again.
    """

    receive_deadline = RECEIVE_DEADLINE
    _waiting = False
    _first_line: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._waiting = True
        self._start_deadline()

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        # An incomplete line left in the line buffer: a request has begun.
        if self._waiting and self._buffer:
            self._start_deadline()

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(line)
        if self._waiting and self.requests:  # the first line made a request
            self._waiting = False
            self._stop_deadline()

    def requestDone(self, request: Any) -> None:
        # Before the super call: it replays pipelined bytes through dataReceived.
        self._waiting = bool(self.persistent)
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._waiting = False
        self._stop_deadline()
        super().connectionLost(reason)

    def _start_deadline(self) -> None:
        if self._first_line is None:
            self._first_line = self.callLater(self.receive_deadline, self._too_slow)

    def _stop_deadline(self) -> None:
        call, self._first_line = self._first_line, None
        if call is not None and call.active():
            call.cancel()

    def _too_slow(self) -> None:
        self._first_line = None
        self._waiting = False
        if self.transport is None:
            return
        write_error(self.transport, "408 Request Timeout", "request_timeout",
                    f"request line not received within {self.receive_deadline:g} s")
        # Close as the idle timeout does (aborting a client that will not read),
        # which then has no reason to fire as well.
        self.setTimeout(None)
        self.timeoutConnection()


class APISite(server.Site):
    """
    The daemon's site: request lines and requests that must arrive in time,
    size-limited requests, no tracebacks, and an access log of failures only
    (a line for every poll of /status would drown the log).
    """

    # A bare channel, without the wrapper that switches to HTTP/2 after TLS ALPN:
    # the daemon serves plain HTTP/1.1 on 127.0.0.1.
    protocol = LimitedChannel  # type: ignore[assignment]
    requestFactory = LimitedRequest
    displayTracebacks = False

    def log(self, request: http.Request) -> None:
        if request.code >= 400:
            super().log(request)


def read_json(request: IRequest, required: bool = True) -> Any:
    """
    Return the request's JSON body.

    @param required: when false, an empty body without a content type gives C{None}.
    @raise APIError: 415 for another content type, 400 for malformed JSON.
    """
    body = request.content.read() if request.content is not None else b""
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if not body.strip() and not ctype and not required:
        return None
    if ctype != b"application/json":
        raise APIError(415, "unsupported_media_type", "send the body as application/json")
    try:
        value = json.loads(body)
        # JSON may escape a lone UTF-16 surrogate ("\\ud800"), which no UTF-8 text
        # (a database row, a file name, a response) can hold.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise APIError(400, "malformed_json", "the body is nested too deeply") from None
    except UnicodeEncodeError:  # before ValueError, of which it is one
        raise APIError(400, "malformed_json", "the body holds an unpaired UTF-16 "
                       "surrogate (\\ud800-\\udfff)") from None
    except ValueError as e:
        raise APIError(400, "malformed_json", f"the body is not valid JSON: {e}") from None
    return value


def query_arg(request: IRequest, name: str) -> str | None:
    """
    One query parameter's value (C{None} when absent).

    @raise APIError: 400 when it is given more than once.
    """
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    if len(values) > 1:
        raise APIError(400, "invalid_query", f"{name} given more than once", {"field": name})
    return str(values[0].decode("utf-8", "replace"))


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def query_day(request: IRequest, name: str) -> date | None:
    """
    A C{YYYY-MM-DD} query parameter (C{None} when absent).

    @raise APIError: 400 unless it is exactly C{YYYY-MM-DD} and a real day.
    """
    raw = query_arg(request, name)
    if raw is None:
        return None
    try:
        if not _DAY.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise APIError(400, "invalid_query", f"{name} must be YYYY-MM-DD",
                       {"field": name}) from None


def refuse_unknown_args(request: IRequest, known: set[str]) -> None:
    """@raise APIError: 400 naming the first query parameter not in C{known}."""
    unknown = sorted({k.decode("utf-8", "replace") for k in request.args} - known)
    if unknown:
        raise APIError(400, "invalid_query", f"unknown parameter {unknown[0]!r}",
                       {"field": unknown[0]})


def json_bytes(request: IRequest, value: Any, status: int = 200) -> bytes:
    """Set a JSON response on C{request} and return its encoded body."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
