"""GET /activity: stored items by day in the timezone setting, with filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from treq.testing import StubTreq

from enttok.api import activity as activity_api
from enttok.api.app import BackendAPI, StatusSource, idle_status
from enttok.api.guard import Guard
from enttok.connectors import activity as activity_store
from enttok.connectors.activity import Activity
from enttok.connectors.github import store as gh_store
from enttok.connectors.github.normalize import ActivityItem
from enttok.store import Database
from enttok.threads import run_inline
from tests.test_api import PORT, TOKEN, APITestCase

WEB = "https://github.com"
SPEC = Path(__file__).parent.parent / "docs" / "openapi.yaml"


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

#: name -> (source, item), all in the default workspace, written by L{ActivityTests.others}.
#: Their ids are their whole identities (no workspace prefix to cut).
OTHERS = {
    # UTC 04-30 15:00, Seoul 05-01 00:00 (the first instant of the Seoul day).
    "m": ("calendar", Activity("calendar:주간-회의@example.com:2024-04-30T15:00:00Z", "event",
                               "주간 회의 (팀 동기화)", "2024-04-30T15:00:00Z",
                               {"location": "회의실 3"})),
    # UTC 05-01, Seoul 05-01 23:59:59 (the last second of the Seoul day).
    "g": ("git", Activity("git:4f1c0d9e", "commit", "로그인 오류 고침", "2024-05-01T14:59:59Z",
                          {"branch": "main"}, repo="일기장")),
    # UTC 05-01, Seoul 05-02 00:00.
    "h": ("git", Activity("git:77aa01b2", "commit", "한글 파일 이름 정규화 (NFC)",
                          "2024-05-01T15:00:00Z", {"branch": "기능/정규화"}, repo="일기장")),
    # A git commit whose patch id looks like a GitHub item's tail: the ids stay apart.
    "x": ("git", Activity("git:o/b:abc", "commit", "같은 꼬리", "2024-05-01T08:00:00Z",
                          repo="o/b")),
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

    def others(self) -> None:
        """Write L{OTHERS} as their connectors do, through the shared writer."""
        for source, one in OTHERS.values():
            activity_store.save(self.db.connection, source, [one], "2024-05-03T00:00:00Z")

    def expected(self, workspace: str) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
        """C{{(source, id): (name, the item answered)}} for a workspace."""
        found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {("github", i.identity): (name, {
            "source": "github", "kind": i.kind, "repo": i.repo, "number": i.number,
            "title": i.title, "url": i.url, "occurred_at": i.occurred_at, "id": i.identity})
            for name, (ws, i) in ITEMS.items() if ws == workspace}
        if workspace == "default":
            found.update({(source, i.identity): (name, {
                "source": source, "kind": i.kind, "repo": i.repo, "number": None,
                "title": i.title, "url": None, "occurred_at": i.occurred_at, "id": i.identity})
                for name, (source, i) in OTHERS.items()})
        return found

    def names(self, query: str) -> list[str]:
        """The items answered, by their names in L{ITEMS} and L{OTHERS} (checked in full)."""
        workspace = "work" if "workspace_id=work" in query else "default"
        expected = self.expected(workspace)
        names = []
        for got in self.activity(query)["items"]:
            name, one = expected[(got["source"], got["id"])]
            self.assertEqual(got, one)
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

    def test_every_source_in_utc(self) -> None:
        self.others()
        self.zone("UTC")
        self.assertEqual(self.names("date=2024-04-30"), ["m", "c"])
        self.assertEqual(self.names("date=2024-05-01"), ["e", "x", "a", "g", "h", "b"])
        items = self.activity("date=2024-05-01")["items"]
        self.assertEqual([(i["source"], i["id"]) for i in items[:2]],
                         [("github", "commit:o/b:abc"), ("git", "git:o/b:abc")])

    def test_every_source_by_the_seoul_day(self) -> None:
        self.others()
        self.zone("Asia/Seoul")
        self.assertEqual(self.names("date=2024-04-30"), [])
        self.assertEqual(self.names("date=2024-05-01"), ["m", "c", "e", "x", "a", "g"])
        self.assertEqual(self.names("date=2024-05-02"), ["h", "b", "d"])
        self.assertEqual(self.names("date=2024-05-01&source=calendar"), ["m"])
        self.assertEqual(self.names("date=2024-05-02&source=git"), ["h"])

    def test_source_filter(self) -> None:
        self.others()
        self.zone("UTC")
        span = "from=2024-04-01&to=2024-05-31"
        self.assertEqual(self.names(f"{span}&source=git"), ["x", "g", "h"])
        self.assertEqual(self.names(f"{span}&source=calendar"), ["m"])
        self.assertEqual(self.names(f"{span}&source=github"), ["c", "e", "a", "b", "d"])
        self.assertEqual(self.names(f"{span}&source=calendar,git"), ["m", "x", "g", "h"])
        self.assertEqual(self.names(f"{span}&source=git&repo=일기장"), ["g", "h"])
        self.assertEqual(self.names(f"{span}&source=git&repo=o/b&kind=commit"), ["x"])
        self.assertEqual(self.names(f"{span}&source=calendar&kind=commit"), [])
        self.assertEqual(self.names(f"{span}&source=github&workspace_id=work"), ["w"])
        self.assertEqual(self.names(f"{span}&source=git&workspace_id=work"), [])
        self.assertEqual(len(self.names(f"{span}&source=")), 9)

    def test_unknown_sources_are_refused(self) -> None:
        for value in ("gitlab", "GIT", "git,jira", "github ", "깃"):
            response = self.request("GET", f"/activity?date=2024-05-01&source={value}")
            error = self.assertError(response, 400, "invalid_query")
            self.assertEqual(error["details"], {"field": "source"}, value)
        response = self.request("GET", "/activity?source=git&source=calendar")
        self.assertEqual(self.assertError(response, 400, "invalid_query")["details"],
                         {"field": "source"})

    def test_the_spec_describes_the_query_and_the_items(self) -> None:
        spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        params = {p["name"]: p for p in spec["paths"]["/activity"]["get"]["parameters"]}
        self.assertEqual(set(params), activity_api._PARAMS)
        for source in activity_store.SOURCES:
            self.assertIn(f"`{source}`", params["source"]["description"])
        schema = spec["components"]["schemas"]["ActivityItem"]
        self.assertEqual(schema["properties"]["source"]["enum"], list(activity_store.SOURCES))
        self.assertEqual(set(schema["required"]), set(schema["properties"]))
        self.others()
        self.zone("UTC")
        items = self.activity("from=2024-04-30&to=2024-05-02")["items"]
        self.assertEqual({i["source"] for i in items}, set(activity_store.SOURCES))
        for one in items:
            self.assertEqual(set(one), set(schema["properties"]))
            for name, value in one.items():
                if value is None:
                    self.assertTrue(schema["properties"][name].get("nullable"), name)

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
