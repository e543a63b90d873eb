"""How a client presents the API token (the guard checks it; the WebSocket answers it)."""

#: The header every HTTP request carries the token in.
TOKEN_HEADER = b"x-backend-token"
#: Browsers cannot set headers on a WebSocket; they offer the token as a subprotocol.
TOKEN_SUBPROTOCOL_PREFIX = "enttok.token."
