"""C{connector.github.sync} end to end: a job engine, a real database and the fake GitHub.

The engine runs on a L{Clock} with its database calls inline (see
L{tests.jobsupport.Harness}); the GitHub client talks to the fake in memory
(L{treq.testing.StubTreq}), and the client's waits (backoff, rate limits) and
the fake's rate-limit windows run on the engine's clock: a sync runs
synchronously, its clock advanced from timer to timer. L{WireSyncTests} sync
over 127.0.0.1 with a persistent connection pool, as the daemon does.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from enttok.common.times import utc_iso
from enttok.connectors.github import store as gh_store
from enttok.connectors.github import sync as sync_module
from enttok.connectors.github.client import MAX_IN_FLIGHT, GitHubClient
from enttok.connectors.github.settings import GitHubSettings
from enttok.connectors.github.sync import github_sync_job
from enttok.jobs.model import CANCELED, FAILED, SUCCEEDED, TERMINAL, Job
from enttok.jobs.registry import JobType
from tests.daemonsupport import MODULE, FakeGitHubProcess, start
from tests.fakegithub import DAY, FakeGitHub, Recorded, iso, populate, since_for, wait_until
from tests.jobsupport import START, Harness

TOKEN = "ghp_syncTestTokenThatMustNeverLeak987654"
LOGIN = "octo"
JOB = "connector.github.sync"
CONNECTOR = "github:default"
SINCE = since_for(START)
HOUR = 3600.0


#: A bound on the timers one sync may run through (each backoff or wait is one).
MAX_STEPS = 1000


class SyncTestCase(SynchronousTestCase):
    """The fake GitHub with a small known dataset, and an engine that can sync it."""

    prefix = ""

    def setUp(self) -> None:
        self.clients: list[GitHubClient] = []
        self.h = Harness(self, extra_types=self.job_types)
        self.fake = FakeGitHub(self.fake_reactor(), TOKEN, LOGIN, self.prefix,
                               clock=self.h.clock)
        self.addCleanup(self.fake.close)
        self.http = self.serve()
        self.github: dict[str, Any] = {"token": TOKEN, "api_base_url": self.fake.base_url,
                                       "username": LOGIN, "repos": ["octo/alpha", "octo/beta"]}
        self.h.engine.startService()
        self.addCleanup(self.h.engine.stopService)
        self.populate()

    def fake_reactor(self) -> Any:
        """What serves the fake and times its delays."""
        return self.h.clock

    def serve(self) -> Any:
        """Serve the fake; the HTTP client that reaches it."""
        return self.fake.stub()

    def job_types(self, h: Harness) -> list[JobType]:
        def client_for(github: GitHubSettings) -> GitHubClient:
            client = GitHubClient(self.http, h.clock, github.api_base_url, github.token,
                                  jitter=lambda: 0.0)
            self.clients.append(client)
            return client

        return [github_sync_job(h.db, h.clock, lambda: GitHubSettings.of(self.github),
                                client_for)]

    def populate(self) -> None:
        """
        octo/alpha: a merged PR (#1), a closed PR (#2), an open issue (#3), a closed
        issue (#4), someone else's issue octo commented on (#5), someone else's PR
        octo reviewed (#6), an issue untouched for 40 days (#7); commits.
        octo/beta: one open issue, one commit.
        """
        f = self.fake
        f.add_repo("octo/alpha")
        f.add_repo("octo/beta")
        self.merged = f.add_issue("octo/alpha", START - 5 * DAY, START - 4 * DAY,
                                  START - 4 * DAY, pull=True, merged=START - 4 * DAY,
                                  title="Add the thing")
        f.add_issue("octo/alpha", START - 3 * DAY, START - 2 * DAY, START - 2 * DAY,
                    pull=True, title="Abandoned idea")
        f.add_issue("octo/alpha", START - 2 * DAY, title="Crash on start")
        f.add_issue("octo/alpha", START - 6 * DAY, START - DAY, START - DAY, title="Old bug")
        f.add_issue("octo/alpha", START - 8 * DAY, START - 7 * DAY, login="someone")
        f.add_issue("octo/alpha", START - 9 * DAY, START - 9 * DAY, login="someone",
                    pull=True, title="Their change")
        f.add_issue("octo/alpha", START - 60 * DAY, START - 40 * DAY, title="Ancient")
        f.add_issue("octo/beta", START - 10 * DAY, title="Beta issue")
        self.commits = [f.add_commit("octo/alpha", START - DAY, message="Fix it\n\nLong."),
                        f.add_commit("octo/alpha", START - 2 * DAY),
                        f.add_commit("octo/alpha", START - 2 * DAY, login="someone"),
                        f.add_commit("octo/beta", START - 3 * DAY)]
        f.pr_event("octo/alpha", 1, "opened", START - 5 * DAY)
        f.pr_event("octo/alpha", 1, "closed", START - 4 * DAY + 30)
        f.issues_event("octo/alpha", 3, "opened", START - 2 * DAY)
        f.comment_event("octo/alpha", 5, START - 7 * DAY, "Same here")
        f.review_event("octo/alpha", 6, START - 8 * DAY)
        f.push_event("octo/alpha", START - DAY)

    # Running and reading

    def run_until(self, done: Callable[[], bool], what: str) -> None:
        """
        Deliver the fake's answers and advance the clock to each next timer
        until C{done()}; fail after L{MAX_STEPS} timers or when none is left.
        """
        clock = self.h.clock
        for _ in range(MAX_STEPS):
            self.fake.flush()
            if done():
                return
            calls = clock.getDelayedCalls()
            if not calls:
                break
            clock.advance(max(0.0, min(c.getTime() for c in calls) - clock.seconds()))
        self.fail(f"never {what} (at {clock.seconds() - START:.1f} s, "
                  f"{len(self.fake.requests)} requests)")

    def sync(self, payload: Any = None, advance: float = 0.0) -> Job:
        """Run one sync to its end (C{advance}: engine clock seconds since the last)."""
        self.h.clock.advance(advance)
        job_id, _ = self.h.submit(self, JOB, payload)
        self.run_until(lambda: self.h.stored(job_id).status in TERMINAL, f"{job_id} finished")
        job: Job = self.h.stored(job_id)
        return job

    def cancel_while_held(self, path: str, what: str) -> str:
        """Start a sync, cancel it while its second request to C{path} (a regex) is
        held, then let that request answer; the canceled job's id."""
        self.fake.add_fault("hold", path, skip=1)
        job_id, _ = self.h.submit(self, JOB)
        self.run_until(lambda: self.fake.held == 1, f"held {what}")
        canceled = self.h.engine.cancel(job_id)
        self.fake.release()
        self.run_until(lambda: bool(canceled.called), f"{job_id} canceled")
        job = self.successResultOf(canceled)
        self.assertEqual(job.status, CANCELED)
        self.assertEqual(self.h.stored(job_id).status, CANCELED)
        return job_id

    def rows(self) -> dict[str, tuple[Any, ...]]:
        rows = self.h.db.connection.execute(
            "select identity, kind, repo, number, title, url, occurred_at from activity"
        ).fetchall()
        return {r[0].split(":", 1)[1]: tuple(r[1:]) for r in rows}

    def count(self) -> int:
        return int(self.h.db.connection.execute("select count(*) from activity").fetchone()[0])

    def cursor(self) -> dict[str, Any]:
        return gh_store.get_cursor(self.h.db.connection, CONNECTOR)

    def expected(self) -> set[str]:
        return self.fake.expected(SINCE, self.github["repos"] or None)

    def assertComplete(self) -> None:
        self.assertEqual(set(self.rows()), self.expected())

    def requests_since(self, start: int) -> list[Recorded]:
        return self.fake.requests[start:]

    def assertSucceeded(self, job: Job) -> dict[str, Any]:
        self.assertEqual((job.status, job.error), (SUCCEEDED, None))
        self.assertIsInstance(job.result, dict)
        result: dict[str, Any] = job.result
        return result


class FirstSyncTests(SyncTestCase):
    def test_items_are_normalised(self) -> None:
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual(result["status"], "ok")
        self.assertEqual(result["repos"], ["octo/alpha", "octo/beta"])
        self.assertEqual(result["warnings"], [])
        rows = self.rows()
        self.assertEqual(result["items_new"], len(rows))
        self.assertComplete()
        web = "https://github.com"
        review_id = next(i for i in rows if i.startswith("pr_reviewed:")).rsplit(":", 1)[1]
        comment_id = next(i for i in rows if i.startswith("comment:")).rsplit(":", 1)[1]
        self.assertEqual(rows, {
            "pr_opened:octo/alpha#1": ("pr_opened", "octo/alpha", 1, "Add the thing",
                                       f"{web}/octo/alpha/pull/1", iso(START - 5 * DAY)),
            # merged_at comes from the pull request's own record.
            "pr_merged:octo/alpha#1": ("pr_merged", "octo/alpha", 1, "Add the thing",
                                       f"{web}/octo/alpha/pull/1", self.merged.merged_at),
            "pr_opened:octo/alpha#2": ("pr_opened", "octo/alpha", 2, "Abandoned idea",
                                       f"{web}/octo/alpha/pull/2", iso(START - 3 * DAY)),
            "pr_closed:octo/alpha#2": ("pr_closed", "octo/alpha", 2, "Abandoned idea",
                                       f"{web}/octo/alpha/pull/2", iso(START - 2 * DAY)),
            "issue_opened:octo/alpha#3": ("issue_opened", "octo/alpha", 3, "Crash on start",
                                          f"{web}/octo/alpha/issues/3", iso(START - 2 * DAY)),
            "issue_opened:octo/alpha#4": ("issue_opened", "octo/alpha", 4, "Old bug",
                                          f"{web}/octo/alpha/issues/4", iso(START - 6 * DAY)),
            "issue_closed:octo/alpha#4": ("issue_closed", "octo/alpha", 4, "Old bug",
                                          f"{web}/octo/alpha/issues/4", iso(START - DAY)),
            f"comment:octo/alpha:{comment_id}": (
                "comment", "octo/alpha", 5, "Issue 5 of octo/alpha",
                f"{web}/octo/alpha/issues/5#issuecomment-{comment_id}", iso(START - 7 * DAY)),
            f"pr_reviewed:octo/alpha#6:{review_id}": (
                # The title is fetched after the events: see test_github_pr_titles.
                "pr_reviewed", "octo/alpha", 6, "Their change",
                f"{web}/octo/alpha/pull/6#pullrequestreview-{review_id}",
                iso(START - 8 * DAY)),
            "issue_opened:octo/beta#1": ("issue_opened", "octo/beta", 1, "Beta issue",
                                         f"{web}/octo/beta/issues/1", iso(START - 10 * DAY)),
            f"commit:octo/alpha:{self.commits[0].sha}": (
                "commit", "octo/alpha", None, "Fix it",
                f"{web}/octo/alpha/commit/{self.commits[0].sha}", iso(START - DAY)),
            f"commit:octo/alpha:{self.commits[1].sha}": (
                "commit", "octo/alpha", None, "Change 2 of octo/alpha",
                f"{web}/octo/alpha/commit/{self.commits[1].sha}", iso(START - 2 * DAY)),
            f"commit:octo/beta:{self.commits[3].sha}": (
                "commit", "octo/beta", None, "Change 1 of octo/beta",
                f"{web}/octo/beta/commit/{self.commits[3].sha}", iso(START - 3 * DAY)),
        })

    def test_requests(self) -> None:
        self.sync()
        paths = [r.path for r in self.fake.requests]
        self.assertEqual(paths[0], "/users/octo/events")
        self.assertNotIn("/user", paths)
        issues = [r for r in self.fake.requests if r.path == "/repos/octo/alpha/issues"]
        self.assertEqual(issues[0].query, {"state": "all", "sort": "updated", "direction": "asc",
                                           "since": SINCE, "per_page": "100"})
        commits = [r for r in self.fake.requests if r.path == "/repos/octo/alpha/commits"]
        self.assertEqual(commits[0].query, {"author": "octo", "since": SINCE, "per_page": "100"})
        self.assertTrue(all(r.authorized for r in self.fake.requests))

    def test_first_sync_since(self) -> None:
        job = self.sync({"since": iso(START - 3 * DAY)})
        self.assertSucceeded(job)
        issues = [r for r in self.fake.requests if r.path.endswith("/issues")]
        self.assertEqual({r.query["since"] for r in issues}, {iso(START - 3 * DAY)})
        self.assertNotIn("issue_opened:octo/beta#1", self.rows())  # updated before


class ResyncTests(SyncTestCase):
    def test_no_duplicates_and_conditional_requests(self) -> None:
        self.sync()
        first = self.rows()
        second = self.sync()
        self.assertEqual(self.assertSucceeded(second)["items_new"], 0)
        self.assertEqual(self.rows(), first)
        # The events' first page is unchanged: a 304.
        start = len(self.fake.requests)
        third = self.sync()
        result = self.assertSucceeded(third)
        self.assertEqual(self.rows(), first)
        self.assertEqual(self.count(), len(first))
        # Once the cursors settle, every list request is conditional and gets a 304.
        again = self.requests_since(start)
        self.assertTrue(again)
        self.assertEqual([(r.path, r.status) for r in again if "if-none-match" not in r.headers],
                         [])
        self.assertEqual({r.status for r in again}, {304})
        self.assertEqual((result["items_new"], result["not_modified"]), (0, len(again)))
        self.assertEqual(result["rate_limit_remaining"], self.fake.remaining)

    def test_issue_updated_between_syncs(self) -> None:
        self.sync()
        self.fake.update_issue("octo/alpha", 3, START + HOUR, closed_at=START + HOUR)
        self.fake.add_issue("octo/beta", START + HOUR, title="New one")
        self.fake.add_commit("octo/beta", START + HOUR)
        job = self.sync(advance=2 * HOUR)
        self.assertEqual(self.assertSucceeded(job)["items_new"], 3)
        rows = self.rows()
        self.assertEqual(rows["issue_closed:octo/alpha#3"][-1], iso(START + HOUR))
        self.assertEqual(rows["issue_opened:octo/beta#2"][2:4], (2, "New one"))
        self.assertComplete()

    def test_titles_survive_a_changed_events_page(self) -> None:
        # Events carry pull-request-minimal (no title): a re-read events page must
        # not blank the titles the issue lists gave.
        self.sync()
        self.fake.issues_event("octo/alpha", 4, "closed", START - DAY)
        self.sync()
        rows = self.rows()
        self.assertEqual(rows["pr_opened:octo/alpha#1"][3], "Add the thing")
        self.assertEqual(rows["pr_merged:octo/alpha#1"][3], "Add the thing")
        self.assertEqual(rows["pr_merged:octo/alpha#1"][4], "https://github.com/octo/alpha/pull/1")
        self.assertComplete()

    def test_merged_pr_seen_in_events_only(self) -> None:
        # Someone else's PR that octo merged: only the closed event tells, and the
        # event does not say merged; it is still a merge, stored once.
        self.fake.add_issue("octo/beta", START - DAY, START - HOUR, START - HOUR,
                            login="someone", pull=True, merged=START - HOUR, title="Theirs")
        self.fake.pr_event("octo/beta", 2, "closed", START - HOUR)
        job = self.sync()
        self.assertSucceeded(job)
        rows = self.rows()
        self.assertNotIn("pr_closed:octo/beta#2", rows)
        self.assertEqual(rows["pr_merged:octo/beta#2"][2:4], (2, "Theirs"))
        self.assertComplete()


class CursorTests(SyncTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.patch(sync_module, "PER_PAGE", 2)
        self.github["repos"] = ["octo/gamma"]
        self.fake.add_repo("octo/gamma")
        self.gamma = [self.fake.add_issue("octo/gamma", START - 20 * DAY + n * HOUR,
                                          title=f"G{n + 1}") for n in range(7)]

    def gamma_rows(self) -> set[str]:
        return {i for i in self.rows() if i.startswith("issue_opened:octo/gamma")}

    def all_gamma(self) -> set[str]:
        return {f"issue_opened:octo/gamma#{n}" for n in range(1, 8)}

    def assertCommitted(self, least: int) -> None:
        """The cursor covers exactly the issues stored: the pages committed so far."""
        cursor = self.cursor()["repos"]["octo/gamma"]["issues"]
        self.assertEqual(self.gamma_rows(), {f"issue_opened:octo/gamma#{i.number}"
                                             for i in self.gamma if i.updated_at <= cursor})
        self.assertTrue(least <= len(self.gamma_rows()) < 7, self.gamma_rows())

    def test_same_updated_at_at_page_boundaries(self) -> None:
        for n in (2, 3, 4, 5, 6):
            self.fake.update_issue("octo/gamma", n, START - 5 * DAY)
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.gamma_rows(), self.all_gamma())
        self.assertEqual(self.cursor()["repos"]["octo/gamma"]["issues"],
                         iso(START - 5 * DAY))
        self.assertComplete()

    def test_more_equal_updated_at_than_a_page(self) -> None:
        for n in range(1, 8):
            self.fake.update_issue("octo/gamma", n, START - 5 * DAY)
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.gamma_rows(), self.all_gamma())

    def test_issue_updated_during_pagination(self) -> None:
        # An issue of the first page is updated while the sync reads the next one:
        # it moves to the end, and every later issue moves up one place.
        def touch(record: Recorded) -> None:
            issues = [r for r in self.fake.requests if r.path.endswith("/issues")]
            if record in issues and len(issues) == 2:
                self.fake.update_issue("octo/gamma", 1, START + 60)

        self.fake.on_request = touch
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.gamma_rows(), self.all_gamma())

    def test_pagination_failing_half_way(self) -> None:
        self.fake.fail(times=None, path="/issues$", skip=2)
        job = self.sync()
        self.assertEqual(job.status, FAILED)
        self.assertEqual(job.error["code"], "github_unavailable")
        # Two pages were committed with their cursor.
        self.assertCommitted(3)
        cursor = self.cursor()["repos"]["octo/gamma"]["issues"]
        self.fake.faults.clear()
        start = len(self.fake.requests)
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.gamma_rows(), self.all_gamma())
        resumed = [r for r in self.requests_since(start) if r.path.endswith("/issues")]
        self.assertEqual(resumed[0].query["since"], cursor)
        self.assertComplete()

    def test_connection_dropped_half_way(self) -> None:
        self.fake.add_fault("drop", "/issues$", times=None, skip=1)
        job = self.sync()
        self.assertEqual((job.status, job.error["code"]), (FAILED, "github_unavailable"))
        self.assertCommitted(2)
        self.fake.faults.clear()
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.gamma_rows(), self.all_gamma())
        self.assertComplete()

    def test_cancel_between_pages(self) -> None:
        self.h.clock.advance(600)
        self.cancel_while_held("/issues$", "the second page")
        self.assertCommitted(2)
        self.assertEqual(self.cursor()["repos"]["octo/gamma"]["issues"],
                         self.gamma[1].updated_at)
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.gamma_rows(), self.all_gamma())
        self.assertComplete()

    def test_rate_limited_mid_sync(self) -> None:
        def exhaust(record: Recorded) -> None:
            issues = [r for r in self.fake.requests if r.path.endswith("/issues")]
            if record in issues and len(issues) == 3:
                self.fake.exhaust_rate_limit(2 * HOUR)

        self.fake.on_request = exhaust
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual(result["status"], "rate_limited")
        self.assertEqual(result["reset_at"], utc_iso(self.fake.reset))
        self.assertEqual(result["rate_limit_remaining"], 0)
        self.assertCommitted(3)
        self.fake.on_request = None
        self.fake.reset = 0  # the window is over
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["status"], "ok")
        self.assertEqual(self.gamma_rows(), self.all_gamma())
        self.assertComplete()


class FailureTests(SyncTestCase):
    def test_rate_limited_with_far_reset(self) -> None:
        self.sync()
        cursor, rows = self.cursor(), self.rows()
        self.fake.exhaust_rate_limit(HOUR)
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual((result["status"], result["reset_at"]),
                         ("rate_limited", utc_iso(self.fake.reset)))
        self.assertEqual((self.cursor(), self.rows()), (cursor, rows))

    def test_bad_token(self) -> None:
        self.github["token"] = "ghp_notTheRightOne"
        job = self.sync()
        self.assertEqual(job.status, FAILED)
        self.assertEqual(job.error["code"], "github_auth")
        self.assertEqual(len(self.fake.requests), 1)
        self.assertEqual(self.count(), 0)

    def test_no_token(self) -> None:
        self.github["token"] = None
        job = self.sync()
        self.assertEqual((job.status, job.error["code"]), (FAILED, "github_auth"))
        self.assertEqual(self.fake.requests, [])

    def test_missing_repository(self) -> None:
        self.github["repos"] = ["octo/gone", "octo/alpha", "octo/beta"]
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual(result["warnings"], ["octo/gone: not found or no access"])
        warnings = [e for e in self.h.db.connection.execute(
            "select level, message, meta_json from job_events where job_id = ?",
            (job.job_id,)) if e[0] == "warn"]
        self.assertEqual(len(warnings), 1)
        self.assertIn("octo/gone", warnings[0][1])
        meta = json.loads(warnings[0][2])
        self.assertEqual(meta.get("details", meta)["repo"], "octo/gone")
        self.github["repos"] = ["octo/alpha", "octo/beta"]
        self.assertComplete()

    def test_empty_repository(self) -> None:
        # GitHub answers the commits of a repository without commits with 409.
        self.fake.add_repo("octo/new")
        self.fake.add_issue("octo/new", START - DAY, title="First")
        self.github["repos"] = ["octo/new", "octo/alpha", "octo/beta"]
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["warnings"], [])
        commits = [r for r in self.fake.requests if r.path == "/repos/octo/new/commits"]
        self.assertEqual([r.status for r in commits], [409])
        self.assertComplete()
        self.assertIn("issue_opened:octo/new#1", self.rows())

    def test_malformed_json_leaves_cursor(self) -> None:
        self.sync()
        cursor = self.cursor()
        self.fake.add_issue("octo/alpha", START + HOUR, title="Unseen")
        self.fake.add_fault("malformed", "/repos/octo/alpha/issues$")
        job = self.sync(advance=2 * HOUR)
        self.assertEqual(job.status, FAILED)
        self.assertEqual(job.error["code"], "github_bad_response")
        self.assertEqual(self.cursor()["repos"]["octo/alpha"], cursor["repos"]["octo/alpha"])
        self.assertNotIn("issue_opened:octo/alpha#8", self.rows())
        job = self.sync()
        self.assertSucceeded(job)
        self.assertIn("issue_opened:octo/alpha#8", self.rows())

    def test_server_errors_retried(self) -> None:
        self.fake.fail(times=2, path="/commits$")
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual([r.status for r in self.fake.requests].count(500), 2)
        self.assertComplete()


class DiscoveryTests(SyncTestCase):
    def test_repos_from_events(self) -> None:
        self.github["repos"] = []
        self.fake.add_repo("octo/quiet")
        self.fake.add_issue("octo/quiet", START - DAY)
        self.fake.push_event("octo/beta", START - 3 * DAY)
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual(result["repos"], ["octo/alpha", "octo/beta"])
        self.assertNotIn("/repos/octo/quiet/issues", {r.path for r in self.fake.requests})
        self.github["repos"] = ["octo/alpha", "octo/beta"]
        self.assertComplete()
        # With the events unchanged (a 304), the repos come from the cursor.
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["repos"], ["octo/alpha", "octo/beta"])

    def test_username_from_user(self) -> None:
        self.github["username"] = None
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.fake.requests[0].path, "/user")
        self.assertEqual(self.fake.requests[1].path, "/users/octo/events")
        self.assertComplete()


class EnterpriseTests(SyncTestCase):
    prefix = "/api/v3"

    def test_sync_under_api_v3(self) -> None:
        self.patch(sync_module, "PER_PAGE", 2)
        self.fake.add_commit("octo/alpha", START - 4 * DAY)
        job = self.sync()
        self.assertSucceeded(job)
        self.assertComplete()
        paths = {r.path for r in self.fake.requests}
        self.assertTrue(all(p.startswith("/api/v3/") for p in paths), paths)
        # Later pages came from the absolute Link URLs (GitHub's /repositories/{id} form).
        self.assertIn(f"/api/v3/repositories/{self.fake.repos['octo/alpha'].id}/commits",
                      paths)
        self.assertIn(f"/api/v3/user/{self.fake.user_id}/events", paths)


class SecrecyTests(SyncTestCase):
    def test_token_never_in_events_or_results(self) -> None:
        self.github["repos"] = ["octo/alpha", "octo/gone"]
        self.sync()
        self.fake.fail(times=None, path="/commits$")
        self.sync()
        self.github["token"] = TOKEN + "x"
        self.sync()
        self.fake.faults.clear()
        self.fake.exhaust_rate_limit(HOUR)
        self.github["token"] = TOKEN
        self.sync()
        conn = self.h.db.connection
        stored = [*conn.execute("select * from jobs"), *conn.execute("select * from job_events"),
                  *conn.execute("select * from sync_state")]
        text = json.dumps([list(map(str, row)) for row in stored]) + json.dumps(
            self.h.messages)
        self.assertEqual(len([r for r in conn.execute("select status from jobs")]), 4)
        self.assertNotIn(TOKEN, text)
        self.assertIn("octo/gone", text)  # the check reads what it should


class WireSyncTests(SyncTestCase, TestCase):
    """Syncs over 127.0.0.1 on the real reactor, with a persistent connection pool."""

    timeout = 30

    def fake_reactor(self) -> Any:
        return reactor

    def serve(self) -> Any:
        self.fake.listen()
        pool = HTTPConnectionPool(reactor)  # persistent, as in the daemon
        self.addCleanup(pool.closeCachedConnections)
        return HTTPClient(Agent(reactor, pool=pool))

    async def finished(self, payload: Any = None) -> Job:
        job_id, _ = self.h.submit(self, JOB, payload)
        await wait_until(reactor, lambda: self.h.stored(job_id).status in TERMINAL,
                         timeout=15, what=f"{job_id} to finish")
        job: Job = self.h.stored(job_id)
        return job

    async def test_sync_then_conditional_resyncs(self) -> None:
        first = self.assertSucceeded(await self.finished())
        self.assertEqual(first["items_new"], len(self.expected()))
        self.assertComplete()
        self.assertLessEqual(self.fake.max_in_flight, MAX_IN_FLIGHT)
        self.assertEqual(self.fake.in_flight, 0)
        await self.finished()
        start = len(self.fake.requests)
        third = self.assertSucceeded(await self.finished())
        again = self.requests_since(start)
        self.assertEqual({r.status for r in again}, {304})
        self.assertEqual((third["items_new"], third["not_modified"]), (0, len(again)))
        self.assertComplete()


# A real daemon, killed mid-sync

KILL_WAIT = 20.0
FINISH_WAIT = 40.0


class KillTests(SynchronousTestCase):
    def activity(self, db: Path) -> list[str]:
        if not db.exists():
            return []
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return [r[0] for r in conn.execute("select identity from activity")]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def test_kill_mid_sync_and_resume(self) -> None:
        now = time.time()
        repos, items = 3, 600
        fake = FakeGitHubProcess(self, TOKEN, repos, items, latency=0.02,
                                 args=["--login", LOGIN, "--now", repr(now), "--seed", "7"])
        model = FakeGitHub(reactor, TOKEN, LOGIN)
        names = populate(model, repos, items, now, seed=7)
        expected = model.expected(since_for(now))
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir(parents=True)
        db = data_dir / "backend" / "data" / "index.db"

        first = start(self, data_dir, runner=MODULE)
        code, body = first.call("POST", "/settings", {"github": {
            "token": TOKEN, "api_base_url": fake.base_url, "username": LOGIN, "repos": names}})
        self.assertEqual(code, 200, body)
        self.assertNotIn(TOKEN, json.dumps(body))
        code, body = first.call("POST", "/jobs", {"type": JOB, "payload": {}})
        self.assertIn(code, (200, 201), body)
        job_id = body["job_id"]
        deadline = time.monotonic() + KILL_WAIT
        while len(self.activity(db)) < len(expected) // 4:
            if time.monotonic() > deadline:
                self.fail(f"the sync stored only {len(self.activity(db))} items")
            time.sleep(0.02)
        code, job = first.call("GET", f"/jobs/{job_id}")
        self.assertEqual(job["status"], "running", job)  # killed mid-sync, not after it
        first.kill9()
        self.assertEqual(first.process.returncode, -signal.SIGKILL)
        before = set(self.activity(db))
        self.assertLess(len(before), len(expected))

        second = start(self, data_dir, runner=MODULE)
        job = second.wait_jobs([job_id], FINISH_WAIT)[job_id]
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["attempts"], 2)
        self.assertEqual(job["result"]["status"], "ok")
        second.terminate()
        stored = self.activity(db)
        self.assertEqual(len(stored), len(set(stored)))
        self.assertEqual({i.split(":", 1)[1] for i in stored}, expected)
        self.assertTrue(before <= set(stored))
        logs = [*Path(data_dir).glob("*.log"), *Path(data_dir, "backend", "logs").iterdir()]
        self.assertTrue(logs)
        for log in logs:
            self.assertNotIn(TOKEN, log.read_text("utf-8", "replace"), log)
