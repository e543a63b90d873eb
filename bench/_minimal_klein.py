"""The smallest Klein app worth comparing with: one JSON route.

Served by ``twistd -n web --class bench._minimal_klein.resource``.
"""

from __future__ import annotations

from typing import Any

from klein import Klein

app = Klein()


@app.route("/health", methods=["GET"])
def health(request: Any) -> bytes:
    request.setHeader(b"content-type", b"application/json")
    return b'{"status": "ok"}'


def resource() -> Any:
    """The root resource (twistd web's C{--class} calls this with no arguments)."""
    return app.resource()
