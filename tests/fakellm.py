"""A fake OpenAI-compatible chat endpoint on 127.0.0.1, for the summary tests.

It answers C{POST /v1/chat/completions} as OpenAI (and Ollama's C{/v1}) do, or
misbehaves as L{FakeLLM.mode} says:

  - C{success}: a chat completion whose message content is L{FakeLLM.reply};
  - C{hang}: never answers (the client must give up);
  - C{not_json}: 200 with a body that is not JSON;
  - C{wrong_shape}: 200 with JSON that is not a chat completion;
  - C{empty}: a chat completion whose content is blank;
  - C{error}: 500 with OpenAI's error body.

Every request is kept in L{FakeLLM.requests}.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

PATH = "/v1/chat/completions"
MODES = ("success", "hang", "not_json", "wrong_shape", "empty", "error")


@define
class Received:
    """A request as the fake saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = field(default=None)


def completion(model: str, content: str) -> dict[str, Any]:
    """A chat completion in OpenAI's response shape."""
    return {"id": "chatcmpl-fake1", "object": "chat.completion", "created": 1714564800,
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}}


class _Site(Site):
    noisy = False

    def log(self, request: Any) -> None:
        """No access log."""


class _Root(Resource):
    isLeaf = True

    def __init__(self, fake: FakeLLM) -> None:
        super().__init__()
        self._fake = fake

    def render(self, request: Request) -> Any:
        return self._fake.handle(request)


class FakeLLM:
    """
    The fake's server and what it saw.

    @param reactor: listens (the real reactor).
    """

    def __init__(self, reactor: Any, mode: str = "success",
                 reply: str = "I merged the FTS5 index and planned the next steps.") -> None:
        assert mode in MODES, mode
        self._reactor = reactor
        self.mode = mode
        self.reply = reply
        self.requests: list[Received] = []
        self._port: IListeningPort | None = None
        self._open: dict[Request, Deferred[None]] = {}

    def listen(self) -> str:
        """Listen on a free port of 127.0.0.1; return the API root (C{.../v1})."""
        self._port = self._reactor.listenTCP(0, _Site(_Root(self)), interface="127.0.0.1")
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._port is not None, "not listening"
        return f"http://127.0.0.1:{self._port.getHost().port}/v1"  # type: ignore[attr-defined]

    def close(self) -> Deferred[Any]:
        """Stop listening, drop the requests left hanging and wait until they are gone."""
        waits: list[Deferred[Any]] = []
        for request, gone in list(self._open.items()):
            waits.append(gone)
            transport = getattr(request.channel, "transport", None)
            if transport is not None:
                transport.abortConnection()
        port, self._port = self._port, None
        if port is not None:
            waits.append(maybeDeferred(port.stopListening))
        return DeferredList(waits)

    @property
    def hanging(self) -> int:
        return len(self._open)

    def handle(self, request: Request) -> Any:
        body = request.content.read() if request.content is not None else b""
        headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1")
                   for k, v in request.requestHeaders.getAllRawHeaders()}
        received = Received(request.method.decode("ascii"), request.path.decode("ascii"),
                            headers, body)
        with contextlib.suppress(ValueError):
            received.json = json.loads(body)
        self.requests.append(received)
        if received.path != PATH or received.method != "POST":
            return self._json(request, 404, {"error": {"message": "not found",
                                                       "type": "invalid_request_error"}})
        model = str((received.json or {}).get("model", ""))
        if self.mode == "hang":
            gone: Deferred[None] = Deferred()
            self._open[request] = gone
            request.notifyFinish().addBoth(lambda _: self._open.pop(request).callback(None))
            return NOT_DONE_YET
        if self.mode == "not_json":
            request.setHeader(b"content-type", b"text/html")
            return b"<html><body>502 Bad Gateway</body></html>"
        if self.mode == "wrong_shape":
            return self._json(request, 200, {"model": model, "response": self.reply,
                                             "done": True})
        if self.mode == "error":
            return self._json(request, 500, {"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "param": None, "code": None}})
        content = "   " if self.mode == "empty" else self.reply
        return self._json(request, 200, completion(model, content))

    @staticmethod
    def _json(request: Request, status: int, value: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode("utf-8")
