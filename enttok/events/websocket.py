"""The C{/events} WebSocket: live job events, resumable with C{?since=<seq>}.

The fan-out lives here, the Autobahn protocol in L{enttok.events.protocol}. The
guard has checked the token and Origin before a connection gets here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from zope.interface import implementer

from enttok.events.bus import EventBus, Message
from enttok.jobs import store
from enttok.store import Database

if TYPE_CHECKING:
    from enttok.events.protocol import EventsProtocol

#: While its connection's buffer is full (the transport paused us), a client is
#: sent at most this many more bytes; after that it misses messages until the
#: buffer drains and is then sent a resync.
HIGH_WATER = 1024 * 1024
MAX_REPLAY = 10_000


@implementer(IPushProducer)
@define(eq=False)
class _Client:
    """
    One client's state, and the producer its transport pauses when the kernel
    stops taking bytes and resumes once its buffer is empty again.
    """

    protocol: EventsProtocol
    live: bool
    on_drained: Callable[[_Client], None]
    held: list[tuple[int, bytes]] = field(factory=list)
    paused: bool = False
    #: Bytes sent since the transport paused this client.
    backlog: int = 0
    overflowed: bool = False

    def pauseProducing(self) -> None:
        # The transport asks again at every write while its buffer stays full.
        if not self.paused:
            self.paused, self.backlog = True, 0

    def resumeProducing(self) -> None:
        self.paused = False
        if self.overflowed:
            self.overflowed = False
            self.on_drained(self)

    def stopProducing(self) -> None:
        """The connection is gone; L{EventStream.detach} follows from C{onClose}."""


class EventStream:
    """
    Fans bus messages out to WebSocket clients, replays missed ones from the
    database, and keeps a slow client from holding anyone else up.

    @param high_water: the bytes a client its transport paused may still be sent
        (L{HIGH_WATER}).
    """

    log = Logger()

    def __init__(self, bus: EventBus, db: Database, high_water: int = HIGH_WATER) -> None:
        self._bus = bus
        self._high_water = high_water
        self._db = db
        self._clients: dict[EventsProtocol, _Client] = {}
        bus.subscribe(self._deliver)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def attach(self, protocol: EventsProtocol, since: int | None) -> None:
        """
        Start sending to C{protocol}: live at once, or after replaying from C{since}.
        Its transport gets the client as its (streaming) producer.
        """
        client = _Client(protocol, live=since is None, on_drained=self._drained)
        self._clients[protocol] = client
        protocol.registerProducer(client, True)
        if since is not None:
            self._replay(client, since)

    def detach(self, protocol: EventsProtocol) -> None:
        """Stop sending to C{protocol} (its connection closed)."""
        self._clients.pop(protocol, None)

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
        if client.paused:
            client.backlog += len(data)
            if client.backlog > self._high_water:
                client.overflowed = True
                self.log.warn("an /events client is too slow; dropping messages until it drains")
                return
        client.protocol.sendMessage(data, isBinary=False)

    def _drained(self, client: _Client) -> None:
        """A client that missed messages caught up: tell it to reload."""
        if client.protocol in self._clients:
            self._send(client, {"type": "resync", "seq": self._bus.seq})


class EventsResource(Resource):
    """
    The resource the guard serves at C{/events}: Autobahn's WebSocket resource,
    built at the first connection.

    Importing Autobahn costs about a fifth of the daemon's start-up, so it is
    left out of the path to the first answer: L{preload} imports it in a thread
    once the port is open, and a connection that comes first imports it itself.
    """

    isLeaf = True

    def __init__(self, stream: EventStream) -> None:
        super().__init__()
        self._stream = stream
        self._websocket: IResource | None = None

    def preload(self, reactor: IReactorThreads) -> Deferred[None]:
        """Import Autobahn in one of C{reactor}'s threads."""
        return deferToThreadPool(reactor, reactor.getThreadPool(), _import_protocol)

    def render(self, request: IRequest) -> bytes | int:
        if self._websocket is None:
            from enttok.events.protocol import websocket_resource

            self._websocket = websocket_resource(self._stream)
        answer: bytes | int = self._websocket.render(request)
        return answer


def _import_protocol() -> None:
    import enttok.events.protocol  # noqa: F401
