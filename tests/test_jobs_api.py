"""The /jobs routes, through the guard, with StubTreq and an inline engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from enttok.api.app import BackendAPI
from enttok.api.guard import Guard
from enttok.api.jobs import MAX_LIMIT
from enttok.jobs.engine import CANCEL_WAIT
from enttok.jobs.model import CANCELED, QUEUED, RUNNING, SUCCEEDED
from enttok.settings import SettingsStore
from enttok.threads import run_inline
from tests.jobsupport import Harness, ManualRunner

TOKEN = "jobs-api-token-0123456789"
PORT = 4242


class JobsAPICase(SynchronousTestCase):
    workers = 1

    def setUp(self) -> None:
        self.runner = ManualRunner()  # only test.batches uses it
        self.h = Harness(self, workers=self.workers, runner=self.runner)
        settings = SettingsStore(Path(self.mktemp()), run_inline)
        api = BackendAPI(self.h.clock, settings, self.h.engine.status, self.h.engine)
        guard = Guard(api.resource(), None, TOKEN, lambda: [])
        guard.port = PORT
        self.client = StubTreq(guard)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             content_type: str | None = "application/json",
             token: str = TOKEN) -> tuple[int, Any]:
        """Make one request; return the status and the decoded JSON body."""
        headers = {"Host": f"127.0.0.1:{PORT}", "X-Backend-Token": token}
        if content_type is not None:
            headers["Content-Type"] = content_type
        data = raw if raw is not None else (
            None if body is None else json.dumps(body).encode("utf-8"))
        d = self.client.request(method, f"http://127.0.0.1:{PORT}{path}", headers=headers,
                                data=data)
        self.client.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return response.code, json.loads(content)

    def submit(self, job_type: str, payload: Any = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"type": job_type}
        if payload is not None:
            body["payload"] = payload
        return self.call("POST", "/jobs", body)

    def error(self, answer: tuple[int, Any], status: int, code: str) -> Any:
        self.assertEqual((answer[0], answer[1]["error"]["code"]), (status, code), answer)
        return answer[1]["error"]


class SubmitTests(JobsAPICase):
    def test_new_job(self) -> None:
        status, body = self.submit("test.wait", {"n": 4})
        self.assertEqual(status, 201)
        self.assertEqual((body["type"], body["status"], body["payload"], body["coalesced"]),
                         ("test.wait", QUEUED, {"n": 4}, False))
        self.assertTrue(body["job_id"].startswith("job_20240501_"))
        for key in ("created_at", "updated_at", "progress", "message", "result", "error",
                    "attempts"):
            self.assertIn(key, body)
        self.assertEqual(self.h.stored(body["job_id"]).status, QUEUED)

    def test_equal_queued_job_is_coalesced(self) -> None:
        _, first = self.submit("test.wait", {"n": 4})
        status, again = self.submit("test.wait", {"n": 4})
        self.assertEqual((status, again["job_id"], again["coalesced"]),
                         (200, first["job_id"], True))
        status, other = self.submit("test.wait", {"n": 5})
        self.assertEqual((status, other["coalesced"]), (201, False))
        self.assertNotEqual(other["job_id"], first["job_id"])

    def test_payload_defaults(self) -> None:
        status, body = self.submit("test.wait")
        self.assertEqual((status, body["payload"]), (201, {"n": 0}))
        status, body = self.call("POST", "/jobs", {"type": "test.wait", "payload": None})
        self.assertEqual((status, body["coalesced"]), (200, True))

    def test_unknown_job_type(self) -> None:
        error = self.error(self.submit("no.such.type"), 400, "unknown_job_type")
        self.assertEqual(error["details"]["field"], "type")
        self.assertEqual(error["details"]["known"], sorted(self.h.registry.names()))
        self.assertIn("test.wait", error["details"]["known"])

    def test_invalid_payload(self) -> None:
        error = self.error(self.submit("test.wait", {"n": "four"}), 400, "invalid_payload")
        self.assertEqual(error["details"], {"field": "payload.n"})
        error = self.error(self.submit("test.wait", {"x": 1}), 400, "invalid_payload")
        self.assertEqual(error["details"], {"field": "payload.x"})
        error = self.error(self.submit("test.wait", [1]), 400, "invalid_payload")
        self.assertEqual(error["details"], {"field": "payload"})
        self.assertEqual(self.call("GET", "/jobs")[1]["jobs"], [])

    def test_bad_bodies(self) -> None:
        for body in ([{"type": "test.wait"}], "test.wait", 3, None):
            self.error(self.call("POST", "/jobs", raw=json.dumps(body).encode()),
                       400, "invalid_body")
        error = self.error(self.call("POST", "/jobs", {"payload": {}}), 400, "invalid_body")
        self.assertEqual(error["details"], {"field": "type"})
        error = self.error(self.call("POST", "/jobs", {"type": 7}), 400, "invalid_body")
        self.assertEqual(error["details"], {"field": "type"})
        error = self.error(self.call("POST", "/jobs", {"type": "test.wait", "priority": 1}),
                           400, "invalid_body")
        self.assertEqual(error["details"], {"field": "priority"})
        self.error(self.call("POST", "/jobs", raw=b"{nope"), 400, "malformed_json")
        self.error(self.call("POST", "/jobs", raw=b"{}", content_type="text/plain"),
                   415, "unsupported_media_type")
        self.assertEqual(self.call("GET", "/jobs")[1]["jobs"], [])

    def test_token_required(self) -> None:
        self.error(self.call("POST", "/jobs", {"type": "test.wait"}, token="wrong-token-1234"),
                   401, "unauthorized")
        self.assertEqual(self.call("GET", "/jobs")[1]["jobs"], [])


class ListTests(JobsAPICase):
    def setUp(self) -> None:
        super().setUp()
        self.h.engine.startService()
        self.ids: list[str] = []
        for n in range(5):  # workers=1: the first runs, the others wait
            self.ids.append(self.submit("test.wait", {"n": n})[1]["job_id"])
        self.ids.append(self.submit("test.fail")[1]["job_id"])

    def listed(self, query: str = "") -> list[str]:
        status, body = self.call("GET", "/jobs" + query)
        self.assertEqual(status, 200, body)
        return [job["job_id"] for job in body["jobs"]]

    def test_newest_first(self) -> None:
        self.assertEqual(self.listed(), self.ids[::-1])
        _, body = self.call("GET", "/jobs")
        self.assertIsNone(body["next_cursor"])

    def test_filters(self) -> None:
        self.assertEqual(self.listed(f"?status={RUNNING}"), [self.ids[0]])
        self.assertEqual(self.listed(f"?status={QUEUED}"), self.ids[1:][::-1])
        self.assertEqual(self.listed(f"?status={QUEUED},{RUNNING}"), self.ids[::-1])
        self.assertEqual(self.listed(f"?status={QUEUED}&status={RUNNING}"), self.ids[::-1])
        self.assertEqual(self.listed("?type=test.fail"), [self.ids[5]])
        self.assertEqual(self.listed(f"?type=test.wait&status={RUNNING}"), [self.ids[0]])
        self.assertEqual(self.listed(f"?status={SUCCEEDED}"), [])
        error = self.error(self.call("GET", "/jobs?status=done"), 400, "invalid_query")
        self.assertEqual(error["details"]["field"], "status")

    def test_limit(self) -> None:
        self.assertEqual(self.listed("?limit=1"), [self.ids[-1]])
        self.assertEqual(len(self.listed(f"?limit={MAX_LIMIT}")), 6)
        for bad in ("0", str(MAX_LIMIT + 1), "-1", "x", "1.5", "1&limit=2", "%C2%B2", "%D9%A3"):
            error = self.error(self.call("GET", f"/jobs?limit={bad}"), 400, "invalid_query")
            self.assertEqual(error["details"]["field"], "limit")

    def test_cursor_paging(self) -> None:
        seen: list[str] = []
        query = "?limit=4"
        for _ in range(3):
            _, body = self.call("GET", "/jobs" + query)
            seen.extend(job["job_id"] for job in body["jobs"])
            if body["next_cursor"] is None:
                break
            self.assertIsInstance(body["next_cursor"], str)
            query = f"?limit=4&cursor={body['next_cursor']}"
        self.assertEqual(seen, self.ids[::-1])
        self.error(self.call("GET", "/jobs?cursor=abc"), 400, "invalid_query")

    def test_detail_with_events(self) -> None:
        first = self.ids[0]
        self.h.controls.contexts[first].progress(0.5, "halfway")
        self.h.controls.pending[first].callback({"ok": True})
        status, body = self.call("GET", f"/jobs/{first}")
        self.assertEqual(status, 200)
        self.assertEqual((body["status"], body["result"], body["attempts"]),
                         (SUCCEEDED, {"ok": True}, 1))
        events = body["events"]
        self.assertEqual([e["meta"]["type"] for e in events],
                         ["job.status", "job.status", "job.progress", "job.status"])
        self.assertEqual([e["meta"].get("status") for e in events],
                         [QUEUED, RUNNING, None, SUCCEEDED])
        ids = [e["event_id"] for e in events]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(ids, [e["meta"]["seq"] for e in events])
        self.assertEqual(events[2]["message"], "halfway")
        for event in events:
            self.assertEqual(set(event), {"event_id", "created_at", "level", "message", "meta"})

    def test_detail_unknown(self) -> None:
        error = self.error(self.call("GET", "/jobs/job_20240501_999"), 404, "job_not_found")
        self.assertEqual(error["details"], {"job_id": "job_20240501_999"})


class CancelTests(JobsAPICase):
    def cancel(self, job_id: str) -> tuple[int, Any]:
        return self.call("POST", f"/jobs/{job_id}/cancel", content_type=None)

    def test_cancel_queued(self) -> None:
        job_id = self.submit("test.wait")[1]["job_id"]
        status, body = self.cancel(job_id)
        self.assertEqual((status, body["job_id"], body["status"]), (200, job_id, CANCELED))
        self.assertEqual(self.h.stored(job_id).status, CANCELED)

    def test_cancel_running(self) -> None:
        self.h.engine.startService()
        job_id = self.submit("test.wait")[1]["job_id"]
        status, body = self.cancel(job_id)
        self.assertEqual((status, body["status"]), (200, CANCELED))

    def test_cancel_running_that_does_not_stop_in_time(self) -> None:
        self.h.engine.startService()
        job_id = self.submit("test.batches")[1]["job_id"]
        d = self.client.request("POST", f"http://127.0.0.1:{PORT}/jobs/{job_id}/cancel",
                                headers={"X-Backend-Token": TOKEN})
        self.client.flush()
        self.assertNoResult(d)
        self.h.clock.advance(CANCEL_WAIT)
        self.client.flush()
        response = self.successResultOf(d)
        body = json.loads(self.successResultOf(response.content()))
        self.assertEqual((response.code, body["status"]), (202, RUNNING))
        self.runner.run_next()
        self.assertEqual(self.h.stored(job_id).status, CANCELED)

    def test_cancel_finished(self) -> None:
        self.h.engine.startService()
        job_id = self.submit("test.wait")[1]["job_id"]
        self.cancel(job_id)
        error = self.error(self.cancel(job_id), 409, "job_finished")
        self.assertEqual(error["details"], {"job_id": job_id, "status": CANCELED})
        done = self.submit("test.wait", {"n": 2})[1]["job_id"]
        self.h.controls.pending[done].callback(None)
        error = self.error(self.cancel(done), 409, "job_finished")
        self.assertEqual(error["details"]["status"], SUCCEEDED)

    def test_cancel_unknown(self) -> None:
        self.h.engine.startService()
        error = self.error(self.cancel("job_20240501_404"), 404, "job_not_found")
        self.assertEqual(error["details"], {"job_id": "job_20240501_404"})

    def test_cancel_with_a_json_body(self) -> None:
        job_id = self.submit("test.wait")[1]["job_id"]
        status, body = self.call("POST", f"/jobs/{job_id}/cancel", {})
        self.assertEqual((status, body["status"]), (200, CANCELED))

    def test_cancel_needs_post(self) -> None:
        job_id = self.submit("test.wait")[1]["job_id"]
        self.error(self.call("GET", f"/jobs/{job_id}/cancel"), 405, "method_not_allowed")
        self.assertEqual(self.h.stored(job_id).status, QUEUED)
