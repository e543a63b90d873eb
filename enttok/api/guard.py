"""The resource in front of everything: Host check, token check, CORS, routing.

Every request passes here first, so no route can forget authentication.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from enttok.api.errors import APIError, render_error
from enttok.common.auth import TOKEN_HEADER, TOKEN_SUBPROTOCOL_PREFIX

EVENTS_PATH = b"/events"


def offered_subprotocols(request: IRequest) -> list[str]:
    """The subprotocols a WebSocket client offered, in order, over all header lines."""
    lines = request.requestHeaders.getRawHeaders(b"sec-websocket-protocol") or []
    return [p.strip() for line in lines for p in line.decode("latin-1").split(",")
            if p.strip()]


def presented_tokens(request: IRequest) -> list[str]:
    """
    Every token a request carries: each C{X-Backend-Token} header line and, on
    C{/events} only, each token subprotocol offered.
    """
    tokens = [t.decode("latin-1") for t in request.requestHeaders.getRawHeaders(TOKEN_HEADER) or []]
    if request.path == EVENTS_PATH:
        tokens.extend(p[len(TOKEN_SUBPROTOCOL_PREFIX):] for p in offered_subprotocols(request)
                      if p.startswith(TOKEN_SUBPROTOCOL_PREFIX))
    return tokens


class Guard(Resource):
    """
    Checks C{Host}, the token and C{Origin}, then hands the request to the API
    or, for C{/events}, to the WebSocket resource.

    @ivar port: the port actually listened on, set once listening (for the Host check).
    """

    isLeaf = True

    def __init__(
        self,
        api: IResource,
        events: IResource | None,
        token: str,
        allowed_origins: Callable[[], Sequence[str]],
    ) -> None:
        super().__init__()
        self._api = api
        self._events = events
        self._token = token.encode("utf-8")
        self._allowed_origins = allowed_origins
        self.port = 0

    def _host_ok(self, request: IRequest) -> bool:
        host = (request.getHeader(b"host") or b"").lower()
        return host in (b"127.0.0.1:%d" % self.port, b"localhost:%d" % self.port)

    def _token_ok(self, request: IRequest) -> bool:
        # Exactly one token: with two (even two right ones) a proxy or a client
        # library may have picked either, so the credential is ambiguous.
        tokens = presented_tokens(request)
        return len(tokens) == 1 and hmac.compare_digest(tokens[0].encode("utf-8"), self._token)

    def _origin(self, request: IRequest) -> tuple[str | None, bool]:
        raw = request.getHeader(b"origin")
        if raw is None:
            return None, False
        origin = raw.decode("latin-1")
        return origin, origin in self._allowed_origins()

    @staticmethod
    def _events_refusal(request: IRequest, origin: str | None,
                        origin_allowed: bool) -> APIError | None:
        """Why a request to C{/events} cannot become a WebSocket (C{None}: it can)."""
        if origin is not None and not origin_allowed:
            return APIError(403, "forbidden_origin",
                            f"origin {origin!r} is not in allowed_origins")
        # Autobahn would answer these with an HTML status page or a bodiless
        # status line; answer them in the one error shape instead.
        if request.method != b"GET":
            request.setHeader(b"allow", b"GET")
            return APIError(405, "method_not_allowed", "method not allowed on this route",
                            {"allowed": ["GET"]})
        if not all(v.isdigit() for v in request.args.get(b"since", [])):
            return APIError(400, "invalid_query", "since must be a non-negative integer",
                            {"field": "since"})
        if b"websocket" not in (request.getHeader(b"upgrade") or b"").lower():
            request.setHeader(b"upgrade", b"websocket")
            return APIError(426, "upgrade_required",
                            "/events is a WebSocket: send Upgrade: websocket")
        return None

    def render(self, request: IRequest) -> bytes | int:
        origin, origin_allowed = self._origin(request)
        if origin is not None and origin_allowed:
            request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
            request.setHeader(b"vary", b"Origin")
        if not self._host_ok(request):
            return render_error(request, APIError(
                403, "forbidden_host", "requests must be addressed to 127.0.0.1 or localhost"))
        if request.method == b"OPTIONS" and origin_allowed:
            request.setResponseCode(204)
            request.setHeader(b"access-control-allow-methods", b"GET, POST")
            request.setHeader(b"access-control-allow-headers",
                              b"X-Backend-Token, Content-Type")
            request.setHeader(b"access-control-max-age", b"600")
            return b""
        if not self._token_ok(request):
            return render_error(request, APIError(
                401, "unauthorized", "missing, repeated or wrong X-Backend-Token"))
        if request.path == EVENTS_PATH and self._events is not None:
            refused = self._events_refusal(request, origin, origin_allowed)
            if refused is not None:
                return render_error(request, refused)
            answer: bytes | int = self._events.render(request)
            return answer
        answer = self._api.render(request)
        return answer
