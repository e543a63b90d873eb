"""A minimal Autobahn WebSocket server on 127.0.0.1: the baseline of bench/ws_fanout.py.

    python bench/_ws_baseline_server.py

Echoes every message. The text message C{broadcast <count> <interval_ms>} makes
it send C{count} small JSON messages, C{interval_ms} apart, to every connected
client, each holding its wall-clock send time in C{message} (like the daemon's
C{job.progress}), encoded once and written to each client in turn (as the
daemon's event stream does); then C{{"type": "done"}}.

Prints C{{"port": N}} once listening; stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol


class BaselineProtocol(WebSocketServerProtocol):
    factory: BaselineFactory

    def onOpen(self) -> None:
        self.factory.clients.append(self)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self in self.factory.clients:
            self.factory.clients.remove(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary and payload.startswith(b"broadcast "):
            _, count, interval_ms = payload.split()
            self.factory.broadcast(int(count), int(interval_ms) / 1000)
        else:
            self.sendMessage(payload, isBinary)


class BaselineFactory(WebSocketServerFactory):
    protocol = BaselineProtocol

    def __init__(self, reactor: Any) -> None:
        super().__init__()
        self.reactor = reactor
        self.clients: list[BaselineProtocol] = []

    def _send_all(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode("utf-8")
        for client in list(self.clients):
            client.sendMessage(data, isBinary=False)

    def broadcast(self, count: int, interval: float, i: int = 0) -> None:
        if i > 0:
            self._send_all({"type": "tick", "seq": i, "progress": i / (count + 1),
                            "message": f"{time.time():.6f}"})
        if i < count:
            self.reactor.callLater(interval, self.broadcast, count, interval, i + 1)
        else:
            self._send_all({"type": "done"})


def main() -> int:
    from twisted.internet import reactor

    port = reactor.listenTCP(0, BaselineFactory(reactor), interface="127.0.0.1")

    def stop() -> None:
        if reactor.running:
            reactor.stop()

    def wait_for_stdin_close() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        reactor.callFromThread(stop)

    threading.Thread(target=wait_for_stdin_close, daemon=True).start()
    reactor.callWhenRunning(
        lambda: os.write(1, (json.dumps({"port": port.getHost().port}) + "\n").encode()))
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
