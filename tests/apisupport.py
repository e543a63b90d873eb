"""Shared fixtures for API tests: the guard and API in memory, driven through StubTreq."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from enttok.api.app import BackendAPI, StatusSource, idle_status
from enttok.api.guard import Guard
from enttok.settings import SettingsStore
from enttok.threads import run_inline

TOKEN = "test-token-0123456789abcdef"
PORT = 49999
HOST = f"127.0.0.1:{PORT}"
ALLOWED = "http://localhost:5173"

ROUTES = [("GET", "/health"), ("GET", "/status"), ("GET", "/settings"), ("POST", "/settings")]


class Response:
    """A response read in full."""

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[-1] if values else None

    def header_names(self) -> set[str]:
        return {name.decode("latin-1").lower() for name, _ in self.headers.getAllRawHeaders()}

    def json(self) -> Any:
        return json.loads(self.body)


class APITestCase(SynchronousTestCase):
    """Builds the guard and API around a settings store in a temporary folder."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)  # uptime must not be the clock's absolute time
        folder = Path(self.mktemp())
        folder.mkdir()
        self.settings_path = folder / "settings.json"
        self.settings = SettingsStore(self.settings_path, run_inline)
        self.build()

    def build(self, status: StatusSource = idle_status) -> None:
        self.api = BackendAPI(self.clock, self.settings, status)
        self.guard = Guard(self.api.resource(), None, TOKEN,
                           lambda: self.settings.get("allowed_origins"))
        self.guard.port = PORT
        self.treq = StubTreq(self.guard)

    def request(self, method: str, path: str, token: str | None = TOKEN,
                host: str | None = HOST, headers: Mapping[str, str] | None = None,
                body: bytes | None = None) -> Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["X-Backend-Token"] = token
        if host is not None:
            all_headers["Host"] = host
        d = self.treq.request(method, f"http://127.0.0.1:{PORT}{path}",
                              headers=all_headers, data=body)
        response = self.successResultOf(d)
        content = self.successResultOf(self.treq.content(response))
        return Response(response.code, response.headers, content)

    def post_json(self, path: str, value: Any, **kwargs: Any) -> Response:
        return self.request("POST", path, headers={"Content-Type": "application/json"},
                            body=json.dumps(value).encode("utf-8"), **kwargs)

    def assertError(self, response: Response, status: int, code: str) -> dict[str, Any]:
        """Assert the one error shape and return its C{error} object."""
        self.assertEqual(response.code, status, response.body)
        self.assertEqual(response.header("content-type"), "application/json")
        body = response.json()
        self.assertEqual(set(body), {"error"})
        error: dict[str, Any] = body["error"]
        self.assertEqual(set(error), {"code", "message", "details"})
        self.assertEqual(error["code"], code)
        self.assertIsInstance(error["message"], str)
        self.assertTrue(error["message"])
        return error

    def allow_origin(self, origin: str = ALLOWED) -> None:
        self.successResultOf(self.settings.update({"allowed_origins": [origin]}))
