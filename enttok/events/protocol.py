"""The Autobahn side of C{/events}: one protocol per client, fed by an event stream.

Imported when the first client connects (or preloaded once the port is open;
see L{enttok.events.websocket.EventsResource}), not while the daemon starts.
"""

from __future__ import annotations

from typing import Protocol

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest

from enttok.common.auth import TOKEN_SUBPROTOCOL_PREFIX

SUBPROTOCOL = "enttok.v1"


class Subscribers(Protocol):
    """Where protocols report their clients coming and going (an C{EventStream})."""

    def attach(self, protocol: EventsProtocol, since: int | None) -> None: ...

    def detach(self, protocol: EventsProtocol) -> None: ...


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
        # The transport was taken over from twisted.web, whose channel is still
        # its producer: it would be paused and resumed in our place.
        self.unregisterProducer()
        self.factory.stream.attach(self, self._since)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.stream.detach(self)


class EventsFactory(WebSocketServerFactory):
    protocol = EventsProtocol  # type: ignore[assignment]

    def __init__(self, stream: Subscribers) -> None:
        super().__init__()
        self.stream = stream
        self.setProtocolOptions(autoPingInterval=20, autoPingTimeout=20,
                                maxMessagePayloadSize=64 * 1024,
                                maxFramePayloadSize=64 * 1024)


def websocket_resource(stream: Subscribers) -> WebSocketResource:
    """Autobahn's resource for C{/events}, its clients fed by C{stream}."""
    return WebSocketResource(EventsFactory(stream))
