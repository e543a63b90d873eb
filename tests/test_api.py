"""The REST API behind its guard, driven in memory through StubTreq."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.web.test.requesthelper import DummyRequest

from enttok import __version__
from tests.apisupport import ALLOWED, PORT, ROUTES, TOKEN, APITestCase, Response


class AuthTests(APITestCase):
    """Every route needs the token."""

    def send(self, method: str, path: str, token: str | None) -> Response:
        if method == "POST":
            return self.post_json(path, {}, token=token)
        return self.request(method, path, token=token)

    def test_missing_token(self) -> None:
        for method, path in ROUTES:
            error = self.assertError(self.send(method, path, None), 401, "unauthorized")
            self.assertIsNone(error["details"])

    def test_wrong_token(self) -> None:
        for method, path in ROUTES:
            self.assertError(self.send(method, path, "wrong-token-0123456789abcdef"),
                             401, "unauthorized")

    def test_token_prefix_is_wrong(self) -> None:
        self.assertError(self.send("GET", "/health", TOKEN[:-1]), 401, "unauthorized")
        self.assertError(self.send("GET", "/health", TOKEN + "x"), 401, "unauthorized")
        self.assertError(self.send("GET", "/health", ""), 401, "unauthorized")

    def test_right_token(self) -> None:
        for method, path in ROUTES:
            response = self.send(method, path, TOKEN)
            self.assertEqual(response.code, 200, (method, path, response.body))
            self.assertEqual(response.header("content-type"), "application/json")

    def test_unknown_route_needs_token_first(self) -> None:
        self.assertError(self.request("GET", "/nope", token=None), 401, "unauthorized")

    def test_error_leaks_no_token(self) -> None:
        response = self.send("GET", "/health", "wrong-token-0123456789abcdef")
        self.assertNotIn(TOKEN.encode(), response.body)
        self.assertNotIn(b"wrong-token", response.body)


class HostTests(APITestCase):
    """Only requests addressed to 127.0.0.1 or localhost on our port are served."""

    def test_foreign_host(self) -> None:
        self.assertError(self.request("GET", "/health", host=f"evil.com:{PORT}"),
                         403, "forbidden_host")

    def test_wrong_port(self) -> None:
        self.assertError(self.request("GET", "/health", host=f"127.0.0.1:{PORT + 1}"),
                         403, "forbidden_host")
        self.assertError(self.request("GET", "/health", host="127.0.0.1"),
                         403, "forbidden_host")

    def test_host_checked_before_token(self) -> None:
        self.assertError(self.request("GET", "/health", token=None, host=f"evil.com:{PORT}"),
                         403, "forbidden_host")

    def test_missing_host(self) -> None:
        # An HTTP client always sends Host; a bare request shows the guard's answer.
        request = DummyRequest([b"health"])
        request.requestHeaders.setRawHeaders(b"x-backend-token", [TOKEN.encode()])
        body = self.guard.render(request)
        self.assertEqual(request.responseCode, 403)
        assert isinstance(body, bytes)
        self.assertEqual(json.loads(body)["error"]["code"], "forbidden_host")

    def test_localhost(self) -> None:
        self.assertEqual(self.request("GET", "/health", host=f"localhost:{PORT}").code, 200)
        self.assertEqual(self.request("GET", "/health", host=f"LocalHost:{PORT}").code, 200)

    def test_port_follows_guard(self) -> None:
        self.guard.port = PORT + 1
        self.assertError(self.request("GET", "/health"), 403, "forbidden_host")
        self.assertEqual(
            self.request("GET", "/health", host=f"127.0.0.1:{PORT + 1}").code, 200)


class RoutingErrorTests(APITestCase):
    """Routing and body problems use the same error shape."""

    def test_unknown_route(self) -> None:
        self.assertError(self.request("GET", "/nope"), 404, "not_found")
        self.assertError(self.request("POST", "/health/extra"), 404, "not_found")

    def test_wrong_method(self) -> None:
        response = self.request("DELETE", "/health")
        error = self.assertError(response, 405, "method_not_allowed")
        allowed = {m.strip() for m in (response.header("allow") or "").split(",")}
        self.assertIn("GET", allowed)
        self.assertNotIn("DELETE", allowed)
        self.assertIn("GET", error["details"]["allowed"])

    def test_wrong_method_on_settings(self) -> None:
        response = self.request("PUT", "/settings")
        self.assertError(response, 405, "method_not_allowed")
        allowed = {m.strip() for m in (response.header("allow") or "").split(",")}
        self.assertTrue({"GET", "POST"} <= allowed, allowed)

    def test_malformed_json(self) -> None:
        response = self.request("POST", "/settings", headers={"Content-Type": "application/json"},
                                body=b'{"workers": ')
        self.assertError(response, 400, "malformed_json")

    def test_invalid_utf8(self) -> None:
        response = self.request("POST", "/settings", headers={"Content-Type": "application/json"},
                                body=b'{"vault_path": "\xff"}')
        self.assertError(response, 400, "malformed_json")

    def test_post_without_json_content_type(self) -> None:
        response = self.request("POST", "/settings", headers={"Content-Type": "text/plain"},
                                body=b'{"workers": 3}')
        self.assertError(response, 415, "unsupported_media_type")
        response = self.request("POST", "/settings", body=b'{"workers": 3}')
        self.assertError(response, 415, "unsupported_media_type")
        self.assertEqual(self.settings.get("workers"), 2)

    def test_json_content_type_with_charset(self) -> None:
        response = self.request("POST", "/settings",
                                headers={"Content-Type": "application/json; charset=utf-8"},
                                body=b'{"workers": 3}')
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(self.settings.get("workers"), 3)

    def test_unexpected_error_is_generic(self) -> None:
        def broken() -> Mapping[str, Any]:
            raise ValueError("internal detail 0xDEADBEEF")

        self.build(status=broken)
        response = self.request("GET", "/status")
        self.assertError(response, 500, "internal")
        self.assertNotIn(b"DEADBEEF", response.body)
        self.assertNotIn(b"ValueError", response.body)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class HealthAndStatusTests(APITestCase):
    """The two read-only routes the desktop app polls."""

    def test_health_shape(self) -> None:
        body = self.request("GET", "/health").json()
        self.assertEqual(body, {"status": "ok", "version": __version__, "uptime_sec": 0})

    def test_uptime_follows_clock(self) -> None:
        self.clock.advance(42.7)
        self.assertEqual(self.request("GET", "/health").json()["uptime_sec"], 42)
        self.clock.advance(3600)
        self.assertEqual(self.request("GET", "/health").json()["uptime_sec"], 3642)
        self.assertEqual(self.request("GET", "/status").json()["uptime_sec"], 3642)

    def test_status_shape(self) -> None:
        self.clock.advance(5)
        body = self.request("GET", "/status").json()
        self.assertEqual(set(body), {"uptime_sec", "queue_depth", "workers", "scheduler"})
        self.assertEqual(body["uptime_sec"], 5)
        self.assertIsInstance(body["queue_depth"], int)
        self.assertEqual(set(body["workers"]), {"active", "idle"})
        self.assertEqual(set(body["scheduler"]), {"running", "jobs"})

    def test_status_comes_from_source(self) -> None:
        self.build(status=lambda: {"queue_depth": 7, "workers": {"active": 2, "idle": 0},
                                   "scheduler": {"running": True, "jobs": 3}})
        body = self.request("GET", "/status").json()
        self.assertEqual(body, {"uptime_sec": 0, "queue_depth": 7,
                                "workers": {"active": 2, "idle": 0},
                                "scheduler": {"running": True, "jobs": 3}})

    def test_responses_not_cached(self) -> None:
        self.assertEqual(self.request("GET", "/health").header("cache-control"), "no-store")


class CORSTests(APITestCase):
    """Browser origins are served only when listed in allowed_origins."""

    def cors_headers(self, response: Response) -> set[str]:
        return {name for name in response.header_names() if name.startswith("access-control-")}

    def test_no_origin(self) -> None:
        self.allow_origin()
        self.assertEqual(self.cors_headers(self.request("GET", "/health")), set())

    def test_unlisted_origin(self) -> None:
        self.allow_origin()
        response = self.request("GET", "/health", headers={"Origin": "http://evil.example"})
        self.assertEqual(self.cors_headers(response), set())

    def test_no_origins_allowed_by_default(self) -> None:
        response = self.request("GET", "/health", headers={"Origin": ALLOWED})
        self.assertEqual(self.cors_headers(response), set())

    def test_allowed_origin_echoed(self) -> None:
        self.allow_origin()
        response = self.request("GET", "/health", headers={"Origin": ALLOWED})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("access-control-allow-origin"), ALLOWED)
        self.assertIn("Origin", response.header("vary") or "")

    def test_allowed_origin_still_needs_token(self) -> None:
        self.allow_origin()
        response = self.request("GET", "/health", token=None, headers={"Origin": ALLOWED})
        self.assertError(response, 401, "unauthorized")
        # The browser must be able to read the error.
        self.assertEqual(response.header("access-control-allow-origin"), ALLOWED)

    def test_preflight_from_allowed_origin(self) -> None:
        self.allow_origin()
        response = self.request("OPTIONS", "/settings", token=None, headers={
            "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-backend-token, content-type"})
        self.assertEqual(response.code, 204)
        self.assertEqual(response.body, b"")
        self.assertEqual(response.header("access-control-allow-origin"), ALLOWED)
        methods = (response.header("access-control-allow-methods") or "").upper()
        self.assertIn("POST", methods)
        headers = (response.header("access-control-allow-headers") or "").lower()
        self.assertIn("x-backend-token", headers)
        self.assertIn("content-type", headers)

    def test_preflight_from_unlisted_origin(self) -> None:
        self.allow_origin()
        response = self.request("OPTIONS", "/settings", token=None,
                                headers={"Origin": "http://evil.example"})
        self.assertError(response, 401, "unauthorized")
        self.assertEqual(self.cors_headers(response), set())

    def test_preflight_needs_right_host(self) -> None:
        self.allow_origin()
        response = self.request("OPTIONS", "/settings", token=None, host=f"evil.com:{PORT}",
                                headers={"Origin": ALLOWED})
        self.assertError(response, 403, "forbidden_host")

    def test_origins_read_live_from_settings(self) -> None:
        response = self.request("GET", "/health", headers={"Origin": ALLOWED})
        self.assertEqual(self.cors_headers(response), set())
        self.post_json("/settings", {"allowed_origins": [ALLOWED]})
        response = self.request("GET", "/health", headers={"Origin": ALLOWED})
        self.assertEqual(response.header("access-control-allow-origin"), ALLOWED)
