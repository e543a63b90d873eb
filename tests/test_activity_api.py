"""GET /activity: stored items by day in the timezone setting, with filters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from treq.testing import StubTreq

from enttok.api.app import BackendAPI, StatusSource, idle_status
from enttok.api.guard import Guard
from enttok.connectors.github import store as gh_store
from enttok.connectors.github.normalize import ActivityItem
from enttok.store import Database
from enttok.threads import run_inline
from tests.test_api import PORT, TOKEN, APITestCase

WEB = "https://github.com"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def item(identity: str, kind: str, repo: str, when: str, number: int | None = 1,
         title: str = "T") -> ActivityItem:
    return ActivityItem(identity, kind, repo, number, title, f"{WEB}/{repo}/x", when, {})


#: name -> (workspace, item). Comments give the day in UTC and in Asia/Seoul (UTC+9).
ITEMS = {
    "c": ("default", item("issue_opened:o/a#3", "issue_opened", "o/a", "2024-04-30T16:00:00Z",
                          3)),  # UTC 04-30, Seoul 05-01 01:00
    "e": ("default", item("commit:o/b:abc", "commit", "o/b", "2024-05-01T08:00:00Z", None,
                          "Fix")),  # 05-01 both
    "a": ("default", item("pr_opened:o/a#1", "pr_opened", "o/a", "2024-05-01T14:30:00Z")),
    # UTC 05-01, Seoul 05-01 23:30
    "b": ("default", item("pr_merged:o/a#1", "pr_merged", "o/a", "2024-05-01T15:30:00Z")),
    # UTC 05-01, Seoul 05-02 00:30
    "d": ("default", item("comment:o/b:9", "comment", "o/b", "2024-05-02T10:00:00Z", 2)),
    "w": ("work", item("pr_opened:o/a#1", "pr_opened", "o/a", "2024-05-01T12:00:00Z")),
}


class ActivityTests(APITestCase):
    def build(self, status: StatusSource = idle_status) -> None:
        if not hasattr(self, "db"):
            self.db = Database(self.mktemp(), run_inline)
            self.db.open()
            self.addCleanup(self.db.connection.close)
            for workspace, one in ITEMS.values():
                gh_store.save(self.db.connection, workspace, [one], "2024-05-03T00:00:00Z")
        self.api = BackendAPI(self.clock, self.settings, status, db=self.db)
        self.guard = Guard(self.api.resource(), None, TOKEN,
                           lambda: self.settings.get("allowed_origins"))
        self.guard.port = PORT
        self.treq = StubTreq(self.guard)

    def zone(self, name: str | None) -> None:
        self.successResultOf(self.settings.update({"timezone": name}))

    def activity(self, query: str) -> dict[str, Any]:
        response = self.request("GET", f"/activity?{query}")
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(response.header("content-type"), "application/json")
        body: dict[str, Any] = response.json()
        return body

    def names(self, query: str) -> list[str]:
        """The items answered, by their names in L{ITEMS} (checked in full)."""
        by_key = {(ws, i.identity): name for name, (ws, i) in ITEMS.items()}
        workspace = "work" if "workspace_id=work" in query else "default"
        names = []
        for got in self.activity(query)["items"]:
            name = by_key[(workspace, got["id"])]
            one = ITEMS[name][1]
            self.assertEqual(got, {"kind": one.kind, "repo": one.repo, "number": one.number,
                                   "title": one.title, "url": one.url,
                                   "occurred_at": one.occurred_at, "id": one.identity})
            names.append(name)
        return names

    def test_one_day_in_utc(self) -> None:
        self.zone("UTC")
        body = self.activity("date=2024-05-01")
        self.assertEqual((body["from"], body["to"], body["timezone"]),
                         ("2024-05-01", "2024-05-01", "UTC"))
        self.assertEqual(self.names("date=2024-05-01"), ["e", "a", "b"])
        self.assertEqual(self.names("date=2024-04-30"), ["c"])
        self.assertEqual(self.names("date=2024-05-02"), ["d"])
        self.assertEqual(self.names("date=2024-05-03"), [])

    def test_one_day_in_seoul(self) -> None:
        self.zone("Asia/Seoul")
        self.assertEqual(self.activity("date=2024-05-01")["timezone"], "Asia/Seoul")
        self.assertEqual(self.names("date=2024-05-01"), ["c", "e", "a"])
        self.assertEqual(self.names("date=2024-05-02"), ["b", "d"])
        self.assertEqual(self.names("date=2024-04-30"), [])

    def test_day_of_a_dst_change(self) -> None:
        # 2024-03-10 in New York has 23 hours: 05:00Z to 04:00Z the next day.
        for name, when in (("before", "2024-03-10T04:59:59Z"), ("first", "2024-03-10T05:00:00Z"),
                           ("last", "2024-03-11T03:59:59Z"), ("after", "2024-03-11T04:00:00Z")):
            gh_store.save(self.db.connection, "dst",
                          [item(f"commit:o/c:{name}", "commit", "o/c", when, None, name)],
                          "2024-03-12T00:00:00Z")
        self.zone("America/New_York")
        items = self.activity("date=2024-03-10&workspace_id=dst")["items"]
        self.assertEqual([i["title"] for i in items], ["first", "last"])

    def test_no_timezone_setting_means_the_system_zone(self) -> None:
        self.zone(None)
        self.assertEqual(self.activity("date=2024-05-01")["timezone"], "system")

    def test_range(self) -> None:
        self.zone("UTC")
        body = self.activity("from=2024-05-01&to=2024-05-02")
        self.assertEqual((body["from"], body["to"]), ("2024-05-01", "2024-05-02"))
        self.assertEqual(self.names("from=2024-05-01&to=2024-05-02"), ["e", "a", "b", "d"])
        self.assertEqual(self.names("from=2024-04-01&to=2024-05-31"), ["c", "e", "a", "b", "d"])
        self.zone("Asia/Seoul")
        self.assertEqual(self.names("from=2024-04-30&to=2024-05-01"), ["c", "e", "a"])

    def test_from_or_to_alone_is_one_day(self) -> None:
        self.zone("UTC")
        self.assertEqual(self.names("from=2024-05-02"), ["d"])
        self.assertEqual(self.names("to=2024-04-30"), ["c"])

    def test_today_by_default(self) -> None:
        # 2024-05-01T16:00Z: still May 1st in UTC, already May 2nd in Seoul.
        self.clock.advance(epoch("2024-05-01T16:00:00Z") - self.clock.seconds())
        self.zone("UTC")
        self.assertEqual(self.activity("")["from"], "2024-05-01")
        self.assertEqual(self.names(""), ["e", "a", "b"])
        self.zone("Asia/Seoul")
        self.assertEqual(self.activity("")["to"], "2024-05-02")
        self.assertEqual(self.names(""), ["b", "d"])

    def test_repo_and_kind_filters(self) -> None:
        self.zone("UTC")
        span = "from=2024-04-01&to=2024-05-31"
        self.assertEqual(self.names(f"{span}&repo=o/a"), ["c", "a", "b"])
        self.assertEqual(self.names(f"{span}&repo=o/b"), ["e", "d"])
        self.assertEqual(self.names(f"{span}&repo=nobody/none"), [])
        self.assertEqual(self.names(f"{span}&kind=pr_opened"), ["a"])
        self.assertEqual(self.names(f"{span}&kind=pr_merged,commit"), ["e", "b"])
        self.assertEqual(self.names(f"{span}&kind=comment,&repo=o/b"), ["d"])
        self.assertEqual(self.names(f"{span}&kind=pr_opened&repo=o/b"), [])

    def test_workspace(self) -> None:
        self.zone("UTC")
        self.assertEqual(self.names("date=2024-05-01&workspace_id=work"), ["w"])
        self.assertEqual(self.names("date=2024-05-01&workspace_id=nobody"), [])

    def test_bad_queries(self) -> None:
        self.zone("UTC")
        for query, field in [
            ("date=2024-13-01", "date"), ("date=2024-02-30", "date"), ("date=yesterday", "date"),
            ("date=", "date"), ("date=20240501", "date"), ("date=2024-W18-3", "date"),
            ("date=2024-05-01T00:00:00", "date"), ("from=05/01/2024", "from"),
            ("to=2024-5-1", "to"),
            ("date=2024-05-01&from=2024-05-01", "date"), ("date=2024-05-01&to=2024-05-02", "date"),
            ("from=2024-05-02&to=2024-05-01", "to"), ("from=2023-01-01&to=2024-12-31", "to"),
            ("date=2024-05-01&date=2024-05-02", "date"), ("repo=o/a&repo=o/b", "repo"),
            ("day=2024-05-01", "day"), ("date=2024-05-01&limit=5", "limit"),
        ]:
            response = self.request("GET", f"/activity?{query}")
            error = self.assertError(response, 400, "invalid_query")
            self.assertEqual(error["details"], {"field": field}, query)

    def test_longest_range(self) -> None:
        self.zone("UTC")
        body = self.activity("from=2024-01-01&to=2024-12-31")  # 366 days (a leap year)
        self.assertEqual(len(body["items"]), 5)

    def test_needs_the_token(self) -> None:
        self.assertError(self.request("GET", "/activity?date=2024-05-01", token=None), 401,
                         "unauthorized")

    def test_without_a_database(self) -> None:
        self.api = BackendAPI(self.clock, self.settings)
        self.guard = Guard(self.api.resource(), None, TOKEN, lambda: [])
        self.guard.port = PORT
        self.treq = StubTreq(self.guard)
        self.assertError(self.request("GET", "/activity"), 404, "not_found")
