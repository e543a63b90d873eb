"""The titles of pull requests that only the user's events name.

Since 2025 the events' C{PullRequestEvent} and C{PullRequestReviewEvent} carry
C{pull-request-minimal} (no title), and the issue lists give only the user's
own pull requests of the synced repositories: the rest are fetched once
(C{GET /repos/{owner}/{repo}/pulls/{number}}), a bounded number per sync.
"""

from __future__ import annotations

import json
from typing import Any

from enttok.connectors.github import sync as sync_module
from tests.fakegithub import DAY, Recorded, iso, templates
from tests.jobsupport import START
from tests.test_github_sync import HOUR, TOKEN, SyncTestCase

WEB = "https://github.com"
#: A repository the sync does not list (not in the settings' C{repos}).
OTHER = "other/lib"


class PullTitleTestCase(SyncTestCase):
    """The sync tests' dataset, plus pull requests of L{OTHER} that octo opened or
    reviewed: known only from events."""

    def populate(self) -> None:
        super().populate()
        f = self.fake
        f.add_repo(OTHER)
        self.titles: dict[int, str | None] = {}
        for n in range(1, 5):
            pull = f.add_issue(OTHER, START - 6 * DAY + n * HOUR, login="someone", pull=True,
                               title=f"Other change {n}")
            self.titles[pull.number] = pull.title
        # The newest activity is on #4, the oldest on #1.
        f.pr_event(OTHER, 1, "opened", START - 5 * DAY)
        f.review_event(OTHER, 2, START - 4 * DAY)
        f.pr_event(OTHER, 3, "opened", START - 3 * DAY)
        f.review_event(OTHER, 4, START - 2 * DAY, state="commented")

    def other_rows(self) -> dict[str, tuple[Any, ...]]:
        return {k: v for k, v in self.rows().items() if f"{OTHER}#" in k}

    def titles_of(self, repo: str = OTHER) -> dict[int, str | None]:
        """Each pull request's stored titles (all its items agree)."""
        out: dict[int, set[str | None]] = {}
        for row in self.rows().values():
            if row[1] == repo and row[0].startswith("pr_"):
                out.setdefault(row[2], set()).add(row[3])
        for number, titles in out.items():
            self.assertEqual(len(titles), 1, (number, titles))
        return {number: titles.pop() for number, titles in out.items()}

    def pull_requests(self, start: int = 0, repo: str = OTHER) -> list[Recorded]:
        return [r for r in self.fake.requests[start:]
                if r.path.startswith(f"/repos/{repo}/pulls/")]

    def touch_events(self) -> None:
        """Change the events' first page, so the next sync reads it again (not a 304)."""
        self.fake.push_event("octo/beta", START + HOUR)


class TitleTests(PullTitleTestCase):
    def test_event_only_pulls_get_titles(self) -> None:
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual(result["status"], "ok")
        self.assertEqual(self.titles_of(), self.titles)
        rows = self.other_rows()
        self.assertEqual(rows[f"pr_opened:{OTHER}#1"][3:5],
                         ("Other change 1", f"{WEB}/{OTHER}/pull/1"))
        review = next(v for k, v in rows.items() if k.startswith(f"pr_reviewed:{OTHER}#2:"))
        # A review keeps its own URL.
        self.assertTrue(review[4].startswith(f"{WEB}/{OTHER}/pull/2#pullrequestreview-"))
        # Someone else's PR of a synced repository that octo reviewed: not in the
        # issue lists (they keep octo's own) either.
        self.assertEqual(self.titles_of("octo/alpha")[6], "Their change")
        # One request each, authenticated, like every other request.
        lookups = self.pull_requests()
        self.assertEqual(sorted(r.path for r in lookups),
                         [f"/repos/{OTHER}/pulls/{n}" for n in range(1, 5)])
        self.assertEqual({(r.status, r.authorized) for r in lookups}, {(200, True)})
        self.assertEqual(result["titles_fetched"], 5)
        self.assertEqual(result["items_new"], len(self.rows()))
        self.assertComplete()

    def test_own_pulls_of_synced_repos_are_not_fetched_for_titles(self) -> None:
        # The issue list titles octo's own PRs (#1, #2) before titles are looked
        # up: their fetches are the closed event's completion (#1) and merged_at
        # (#1, #2), as before; only #6 (someone else's) is fetched for its title.
        self.sync()
        self.assertEqual(self.titles_of("octo/alpha"),
                         {1: "Add the thing", 2: "Abandoned idea", 6: "Their change"})
        self.assertEqual(sorted(r.path for r in self.pull_requests(repo="octo/alpha")),
                         ["/repos/octo/alpha/pulls/1", "/repos/octo/alpha/pulls/1",
                          "/repos/octo/alpha/pulls/2", "/repos/octo/alpha/pulls/6"])

    def test_second_sync_fetches_nothing_again(self) -> None:
        self.sync()
        first = self.rows()
        start = len(self.fake.requests)
        # The events page is read again (its items carry no title) and names a
        # titled PR once more, in a new review.
        self.touch_events()
        self.fake.review_event(OTHER, 1, START + HOUR)
        job = self.sync(advance=2 * HOUR)
        result = self.assertSucceeded(job)
        self.assertEqual(self.pull_requests(start), [])
        self.assertEqual(result["titles_fetched"], 0)
        self.assertIn(("/users/octo/events", 200),
                      {(r.path, r.status) for r in self.requests_since(start)})
        self.assertEqual(self.titles_of(), self.titles)
        new = set(self.rows()) - set(first)
        self.assertEqual(len([k for k in new if k.startswith(f"pr_reviewed:{OTHER}#1:")]), 1)
        for identity, row in first.items():
            self.assertEqual(self.rows()[identity][3], row[3], identity)

    def test_progress(self) -> None:
        # Every report the job makes (the engine publishes them throttled).
        reports: list[tuple[float, str | None]] = []
        report = self.h.engine.progress

        def record(job_id: str, fraction: float, message: str | None) -> None:
            reports.append((fraction, message))
            report(job_id, fraction, message)

        self.patch(self.h.engine, "progress", record)
        job = self.sync()
        self.assertSucceeded(job)
        titles = [(f, m) for f, m in reports if m and m.startswith("pull request titles")]
        # The lookups come last, after every repository (which ends at 0.9).
        self.assertEqual(reports[-len(titles):], titles)
        self.assertLessEqual(max(f for f, _ in reports[:-len(titles)]), 0.9)
        self.assertEqual([f for f, _ in titles], sorted(f for f, _ in titles))
        self.assertEqual([m.split(" (")[0] for _, m in titles],
                         [f"pull request titles: {n}/5 fetched" for n in range(6)])
        self.assertEqual((titles[0][0], titles[-1][0]), (0.9, 1.0))
        self.assertIn("rate limit", titles[0][1] or "")


class MissingPullTests(PullTitleTestCase):
    def populate(self) -> None:
        super().populate()
        # A pull request deleted since (GitHub answers 404), one in a repository
        # closed to the token (403), one in a repository gone for good (410).
        del self.fake.repos[OTHER].issues[1]
        self.fake.fail(times=None, status=403, path=f"^/repos/{OTHER}/pulls/2$")
        self.fake.fail(times=None, status=410, path=f"^/repos/{OTHER}/pulls/3$")

    def test_missing_pulls_do_not_fail_the_sync(self) -> None:
        job = self.sync()
        result = self.assertSucceeded(job)
        self.assertEqual((result["status"], result["warnings"]), ("ok", []))
        self.assertEqual(self.titles_of(), {1: None, 2: None, 3: None, 4: "Other change 4"})
        self.assertEqual(sorted((r.path, r.status) for r in self.pull_requests()),
                         [(f"/repos/{OTHER}/pulls/1", 404), (f"/repos/{OTHER}/pulls/2", 403),
                          (f"/repos/{OTHER}/pulls/3", 410), (f"/repos/{OTHER}/pulls/4", 200)])
        misses = self.cursor()[sync_module.TITLE_MISSES]
        self.assertEqual(misses, {f"{OTHER}#{n}": iso(START) for n in (1, 2, 3)})
        self.assertComplete()

    def test_misses_are_not_asked_again_every_sync(self) -> None:
        self.sync()
        start = len(self.fake.requests)
        self.touch_events()
        job = self.sync(advance=HOUR)
        self.assertSucceeded(job)
        self.assertEqual(self.pull_requests(start), [])
        # Once TITLE_MISS_RETRY is over they are asked again (within the bound).
        self.fake.faults.clear()
        start = len(self.fake.requests)
        job = self.sync(advance=sync_module.TITLE_MISS_RETRY.total_seconds())
        self.assertEqual(self.assertSucceeded(job)["titles_fetched"], 2)
        self.assertEqual(sorted(r.path for r in self.pull_requests(start)),
                         [f"/repos/{OTHER}/pulls/{n}" for n in (1, 2, 3)])
        self.assertEqual(self.titles_of(), {1: None, 2: "Other change 2",
                                            3: "Other change 3", 4: "Other change 4"})
        now = iso(START + HOUR + sync_module.TITLE_MISS_RETRY.total_seconds())
        self.assertEqual(self.cursor()[sync_module.TITLE_MISSES], {f"{OTHER}#1": now})

    def test_other_errors_fail_the_sync(self) -> None:
        # Not a miss: GitHub failing (500s until retries run out) fails the job
        # like any other request, and the next sync asks again.
        self.fake.faults.clear()
        self.fake.fail(times=None, status=500, path=f"^/repos/{OTHER}/pulls/4$")
        job = self.sync()
        self.assertEqual((job.status, job.error["code"]), ("failed", "github_unavailable"))
        self.assertNotIn(sync_module.TITLE_MISSES, self.cursor())
        self.fake.faults.clear()
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.titles_of()[4], "Other change 4")


class SecondaryLimitTests(PullTitleTestCase):
    def test_secondary_limit_is_not_a_miss(self) -> None:
        """A 403 for a secondary rate limit is waited out, not remembered as a miss."""
        self.fake.add_fault("secondary", status=403, path=f"^/repos/{OTHER}/pulls/4$")
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual([r.status for r in self.pull_requests() if r.path.endswith("/4")],
                         [403, 200])
        self.assertEqual(self.titles_of()[4], "Other change 4")
        self.assertNotIn(sync_module.TITLE_MISSES, self.cursor())

    def test_persisting_secondary_limit_fails_without_a_miss(self) -> None:
        self.fake.add_fault("secondary", status=403, path=f"^/repos/{OTHER}/pulls/4$",
                            times=None)
        job = self.sync()
        self.assertEqual((job.status, job.error["code"]), ("failed", "github_rate_limited"))
        self.assertNotIn(sync_module.TITLE_MISSES, self.cursor())


class BoundTests(PullTitleTestCase):
    def test_lookups_per_sync_are_bounded_newest_first(self) -> None:
        self.patch(sync_module, "MAX_TITLE_LOOKUPS", 2)
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["titles_fetched"], 2)
        self.assertEqual(len(self.pull_requests()), 2)
        self.assertEqual(self.titles_of(), {1: None, 2: None, 3: "Other change 3",
                                            4: "Other change 4"})
        # The rest come with the next syncs, even with the events unchanged (a 304).
        start = len(self.fake.requests)
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["titles_fetched"], 2)
        events = [r for r in self.requests_since(start) if r.path == "/users/octo/events"]
        self.assertEqual([r.status for r in events], [304])
        self.assertEqual(self.titles_of(), self.titles)
        self.assertEqual(self.titles_of("octo/alpha")[6], None)  # the oldest: next time
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["titles_fetched"], 1)
        self.assertEqual(self.titles_of("octo/alpha")[6], "Their change")
        job = self.sync()
        self.assertEqual(self.assertSucceeded(job)["titles_fetched"], 0)
        self.assertEqual(sorted(r.path for r in self.pull_requests()),
                         [f"/repos/{OTHER}/pulls/{n}" for n in range(1, 5)])


class CancelTests(PullTitleTestCase):
    def test_cancel_between_lookups(self) -> None:
        # The second lookup (#3: newest first) is held while the job is canceled.
        self.cancel_while_held(f"^/repos/{OTHER}/pulls/", "the second lookup")
        # Each lookup is stored on its own: #4's title is in, the held answer is not.
        self.assertEqual(self.titles_of(), {1: None, 2: None, 3: None, 4: "Other change 4"})
        self.assertNotIn(sync_module.TITLE_MISSES, self.cursor())
        start = len(self.fake.requests)
        job = self.sync()
        self.assertSucceeded(job)
        self.assertEqual(self.titles_of(), self.titles)
        self.assertEqual(sorted(r.path for r in self.pull_requests(start)),
                         [f"/repos/{OTHER}/pulls/{n}" for n in (1, 2, 3)])
        self.assertComplete()


class FakePullTests(PullTitleTestCase):
    """The fake serves a pull request in GitHub's documented shape, like its lists."""

    def test_pull_shape_and_headers(self) -> None:
        url = f"{self.fake.base_url}/repos/{OTHER}/pulls/3"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = self.successResultOf(self.http.get(url, headers=headers))
        body = json.loads(self.successResultOf(response.content()))
        self.assertEqual(response.code, 200)
        self.assertEqual(set(body), set(templates().pull))
        self.assertEqual((body["number"], body["title"], body["state"], body["merged_at"],
                          body["html_url"]),
                         (3, "Other change 3", "open", None, f"{WEB}/{OTHER}/pull/3"))
        etag = response.headers.getRawHeaders("etag")[0]
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
            self.assertTrue(response.headers.hasHeader(name), name)
        again = self.successResultOf(self.http.get(url, headers={**headers,
                                                                 "If-None-Match": etag}))
        self.successResultOf(again.content())
        self.assertEqual(again.code, 304)
        gone = self.successResultOf(self.http.get(
            f"{self.fake.base_url}/repos/{OTHER}/pulls/99", headers=headers))
        self.assertEqual((gone.code, json.loads(self.successResultOf(gone.content()))["message"]),
                         (404, "Not Found"))
