"""The C{/events} WebSocket: live job events, resumable with C{?since=<seq>}.

The guard has checked the token and Origin before a connection gets here.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import define, field
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from enttok.api.guard import TOKEN_SUBPROTOCOL_PREFIX
from enttok.events.bus import EventBus, Message
from enttok.store import Database
from enttok.store import jobs as store

SUBPROTOCOL = "enttok.v1"
#: A client whose unsent bytes pass this stops receiving until it drains.
HIGH_WATER = 1024 * 1024
LOW_WATER = 64 * 1024
DRAIN_POLL = 0.25
MAX_REPLAY = 10_000


def unsent_bytes(protocol: WebSocketServerProtocol) -> int:
    """Bytes written to the client's connection that the kernel has not taken yet."""
    transport = protocol.transport
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)


@define(eq=False)
class _Client:
    protocol: EventsProtocol
    live: bool
    held: list[tuple[int, bytes]] = field(factory=list)
    overflowed: bool = False
    drain_call: IDelayedCall | None = None


class EventStream:
    """
    Fans bus messages out to WebSocket clients, replays missed ones from the
    database, and keeps a slow client from holding anyone else up.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, bus: EventBus, db: Database) -> None:
        self._clock = clock
        self._bus = bus
        self._db = db
        self._clients: dict[EventsProtocol, _Client] = {}
        bus.subscribe(self._deliver)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def attach(self, protocol: EventsProtocol, since: int | None) -> None:
        """Start sending to C{protocol}: live at once, or after replaying from C{since}."""
        client = _Client(protocol, live=since is None)
        self._clients[protocol] = client
        if since is not None:
            self._replay(client, since)

    def detach(self, protocol: EventsProtocol) -> None:
        client = self._clients.pop(protocol, None)
        if client is not None and client.drain_call is not None and client.drain_call.active():
            client.drain_call.cancel()

    def _replay(self, client: _Client, since: int) -> None:
        def read(conn: Any) -> tuple[int, list[store.EventRow]]:
            return store.pruned_through(conn), store.events_after(conn, since, MAX_REPLAY + 1)

        def replay(found: tuple[int, list[store.EventRow]]) -> None:
            pruned, rows = found
            if client.protocol not in self._clients:
                return
            last = since
            if since < pruned or since > self._bus.seq or len(rows) > MAX_REPLAY:
                self._send(client, {"type": "resync", "seq": self._bus.seq})
            else:
                for row in rows:
                    self._send_bytes(client, json.dumps(row.meta).encode("utf-8"))
                    last = row.event_id
            held, client.held, client.live = client.held, [], True
            for seq, data in held:
                if seq > last:
                    self._send_bytes(client, data)

        d = self._db.run(read)
        d.addCallback(replay)
        d.addErrback(lambda f: self.log.failure("event replay failed", f))

    def _deliver(self, message: Message) -> None:
        if not self._clients:
            return
        data = json.dumps(message).encode("utf-8")
        for client in list(self._clients.values()):
            if client.live:
                self._send_bytes(client, data)
            else:
                client.held.append((message["seq"], data))

    def _send(self, client: _Client, message: Message) -> None:
        self._send_bytes(client, json.dumps(message).encode("utf-8"))

    def _send_bytes(self, client: _Client, data: bytes) -> None:
        if client.overflowed:
            return
        if unsent_bytes(client.protocol) > HIGH_WATER:
            client.overflowed = True
            self.log.warn("an /events client is too slow; dropping messages until it drains")
            client.drain_call = self._clock.callLater(DRAIN_POLL, self._drain, client)
            return
        client.protocol.sendMessage(data, isBinary=False)

    def _drain(self, client: _Client) -> None:
        client.drain_call = None
        if client.protocol not in self._clients:
            return
        if unsent_bytes(client.protocol) > LOW_WATER:
            client.drain_call = self._clock.callLater(DRAIN_POLL, self._drain, client)
            return
        client.overflowed = False
        self._send(client, {"type": "resync", "seq": self._bus.seq})


class EventsProtocol(WebSocketServerProtocol):
    """One /events client."""

    factory: EventsFactory
    _since: int | None = None

    def onConnect(self, request: ConnectionRequest) -> str | None:
        raw = request.params.get("since", [None])[0]
        if raw is not None:
            if not (raw.isascii() and raw.isdigit()):  # int() refuses "²", a digit to isdigit
                raise ConnectionDeny(400, "since must be a non-negative integer")
            self._since = int(raw)
        if SUBPROTOCOL in request.protocols:
            return SUBPROTOCOL
        # A browser fails the handshake unless one offered subprotocol is chosen.
        return next((p for p in request.protocols if p.startswith(TOKEN_SUBPROTOCOL_PREFIX)),
                    None)

    def onOpen(self) -> None:
        self.factory.stream.attach(self, self._since)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.stream.detach(self)


class EventsFactory(WebSocketServerFactory):
    protocol = EventsProtocol  # type: ignore[assignment]

    def __init__(self, stream: EventStream) -> None:
        super().__init__()
        self.stream = stream
        self.setProtocolOptions(autoPingInterval=20, autoPingTimeout=20,
                                maxMessagePayloadSize=64 * 1024,
                                maxFramePayloadSize=64 * 1024)


def events_resource(stream: EventStream) -> WebSocketResource:
    """The resource the guard serves at C{/events}."""
    return WebSocketResource(EventsFactory(stream))
