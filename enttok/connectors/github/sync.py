"""C{connector.github.sync}: the user's events, and per repo issues, PRs and commits;
then the titles of the pull requests only events named.

Every page is committed with the cursor that covers it, so an interrupted,
canceled or failed sync resumes from the last committed page and loses nothing;
items are unique by their GitHub identity, so overlap never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IReactorTime

from enttok.common.deferreds import Yielding
from enttok.common.times import utc_iso
from enttok.connectors.github import store as gh_store
from enttok.connectors.github.client import GitHubClient, GitHubError, Page, RateLimited
from enttok.connectors.github.normalize import (
    ActivityItem,
    event_repos,
    from_commit,
    from_event,
    from_issue,
)
from enttok.connectors.github.settings import GitHubSettings
from enttok.jobs.context import JobContext, JobFailed
from enttok.jobs.registry import JobType
from enttok.store import Database
from enttok.validation import Field, optional, text, timestamp

FIRST_SYNC_DAYS = 30
#: Commits are filtered by commit date, which can be older than the push:
#: each sync looks this far behind the last one (duplicates are free).
COMMIT_OVERLAP = timedelta(days=3)
PER_PAGE = 100
MAX_EVENT_PAGES = 3
REPO_CONCURRENCY = 4
#: Pull requests fetched for their titles per sync, most recent activity first;
#: the rest wait for the next sync.
MAX_TITLE_LOOKUPS = 50
#: A pull request that answered 403, 404 or 410 is asked again only after this.
TITLE_MISS_RETRY = timedelta(days=30)
#: The cursor's key for those misses: C{{"owner/repo#12": when it missed}}.
TITLE_MISSES = "title_misses"

ClientFactory = Callable[[GitHubSettings], GitHubClient]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubSync:
    """One run of the sync for one workspace."""

    def __init__(self, ctx: JobContext, db: Database, client: GitHubClient,
                 clock: IReactorTime, settings: GitHubSettings) -> None:
        self.ctx = ctx
        self.db = db
        self.client = client
        self.clock = clock
        self.settings = settings
        self.workspace = ctx.payload["workspace_id"]
        self.connector = f"github:{self.workspace}"
        self.started = datetime.fromtimestamp(clock.seconds(), UTC)
        self.cursor: dict[str, Any] = {}
        self.saved = 0
        self.pages = 0
        self.not_modified = 0
        self.titled = 0
        self.warnings: list[str] = []
        self.events_etag: tuple[str, str] | None = None

    def _now(self) -> str:
        return utc_iso(self.clock.seconds())

    def _progress(self, fraction: float, what: str) -> None:
        left = self.client.remaining
        suffix = f" (rate limit: {left} left)" if left is not None else ""
        self.ctx.progress(fraction, what + suffix)

    @inlineCallbacks
    def run(self) -> Yielding[dict[str, Any]]:
        ctx = self.ctx
        self.cursor = yield ctx.track(self.db.run(gh_store.get_cursor, self.connector))
        if ctx.payload["cursor"]:
            self.cursor["since"] = ctx.payload["cursor"]
        try:
            login = self.settings.username or (yield self._discover_login())
            self._progress(0.02, f"syncing GitHub activity of {login}")
            events = yield self._events(login)
            repos = list(self.settings.repos) or event_repos(events) or list(
                self.cursor.get("repos", {}))
            done = [0]

            @inlineCallbacks
            def one(repo: str) -> Yielding[None]:
                yield self._repo(login, repo)
                done[0] += 1
                self._progress(0.1 + 0.8 * done[0] / len(repos),
                               f"{done[0]}/{len(repos)} repositories synced")

            for start in range(0, len(repos), REPO_CONCURRENCY):
                results = yield DeferredList(
                    [one(r) for r in repos[start:start + REPO_CONCURRENCY]],
                    consumeErrors=True)
                for ok, value in results:
                    if not ok:
                        value.raiseException()
            if self.events_etag is not None:
                # Kept only now: the events also name the repositories to sync, and a
                # 304 after an interrupted run would hide those not synced yet.
                yield self._save([], etags=[self.events_etag])
            yield self._pull_titles()
        except RateLimited as e:
            return self._result("rate_limited", reset_at=utc_iso(e.reset_at))
        except GitHubError as e:
            raise JobFailed(e.code, e.message) from None
        return self._result("ok", repos=repos)

    def _result(self, status: str, **extra: Any) -> dict[str, Any]:
        return {"status": status, "items_new": self.saved, "pages": self.pages,
                "not_modified": self.not_modified,
                "titles_fetched": self.titled, "requests": self.client.requests,
                "rate_limit_remaining": self.client.remaining, "warnings": self.warnings,
                **extra}

    def _since(self, repo: str, key: str) -> str:
        repo_cursor = self.cursor.get("repos", {}).get(repo, {})
        default = self.ctx.payload["since"] or self.cursor.get("since") or _iso(
            self.started - timedelta(days=FIRST_SYNC_DAYS))
        return str(repo_cursor.get(key) or default)

    def _with_repo_cursor(self, repo: str, key: str, value: str) -> dict[str, Any]:
        repos = dict(self.cursor.get("repos", {}))
        repos[repo] = {**repos.get(repo, {}), key: value}
        self.cursor = {**self.cursor, "repos": repos}
        return self.cursor

    @inlineCallbacks
    def _get(self, url: str, use_etag: bool = True) -> Yielding[Page]:
        """One page, conditional on the stored ETag; C{None} data means 304."""
        self.ctx.check_canceled()
        etag = (yield self.ctx.track(self.db.run(gh_store.get_etag, self._cache_key(url)))
                ) if use_etag else None
        page: Page = yield self.ctx.track(self.client.get(url, etag))
        self.pages += 1
        if page.status == 304:
            self.not_modified += 1
        return page

    def _cache_key(self, url: str) -> str:
        """
        Where the ETag of C{url} is kept: per workspace, like the items it stands
        for (a 304 says "what you stored is current", true only of this workspace).
        """
        return f"{self.connector} {url}"

    def _save(self, items: list[ActivityItem], cursor: dict[str, Any] | None = None,
              etags: list[tuple[str, str]] | None = None) -> Any:
        validators = [(self._cache_key(url), etag) for url, etag in etags or []]
        d = self.ctx.track(self.db.run(gh_store.save, self.workspace, items, self._now(),
                                       self.connector if cursor is not None else None, cursor,
                                       validators))

        def count(new: int) -> None:
            self.saved += new

        return d.addCallback(count)

    @inlineCallbacks
    def _discover_login(self) -> Yielding[str]:
        page = yield self._get(self.client.url("/user"), use_etag=False)
        login = (page.data or {}).get("login") if isinstance(page.data, dict) else None
        if not isinstance(login, str):
            raise GitHubError("github_bad_response", "GET /user returned no login")
        return login

    @inlineCallbacks
    def _events(self, login: str) -> Yielding[list[Any]]:
        """The user's recent events (at most 300): items, and the list for repo discovery."""
        first_url = url = self.client.url(f"/users/{login}/events", {"per_page": PER_PAGE})
        first_etag: str | None = None
        events: list[Any] = []
        for number in range(MAX_EVENT_PAGES):
            page = yield self._get(url, use_etag=number == 0)
            if page.status == 304:
                return events
            if not isinstance(page.data, list):
                raise GitHubError("github_bad_response", "events: expected a list")
            if number == 0:
                first_etag = page.etag
            events += page.data
            yield self._complete_closed_pulls(page.data)
            items = [item for event in page.data for item in from_event(event)]
            last = page.next_url is None or number == MAX_EVENT_PAGES - 1
            # The first page's ETag is kept only once every page (and every
            # repository they name) is stored: see run().
            if last and first_etag:
                self.events_etag = (first_url, first_etag)
            yield self._save(items)
            self._progress(0.05, f"events page {number + 1}")
            if last or page.next_url is None:
                break
            url = page.next_url
        return events

    @inlineCallbacks
    def _complete_closed_pulls(self, events: list[Any]) -> Yielding[None]:
        """
        Put the pull request's own record into each closed C{PullRequestEvent}:
        events carry C{pull-request-minimal}, which does not say whether it was
        merged (nor its title), so a merge would be stored as C{pr_closed}
        beside the C{pr_merged} of the issue list.
        """
        for event in events:
            payload = event.get("payload") if isinstance(event, dict) else None
            if not isinstance(payload, dict) or event.get("type") != "PullRequestEvent":
                continue
            pr = payload.get("pull_request") or {}
            repo = (event.get("repo") or {}).get("name")
            if (payload.get("action") != "closed" or "merged" in pr
                    or not isinstance(pr.get("number"), int) or not isinstance(repo, str)):
                continue
            try:
                page = yield self._get(self.client.url(f"/repos/{repo}/pulls/{pr['number']}"),
                                       use_etag=False)
            except GitHubError as e:
                if e.status != 404:
                    raise
                continue
            if isinstance(page.data, dict):
                payload["pull_request"] = page.data

    @inlineCallbacks
    def _repo(self, login: str, repo: str) -> Yielding[None]:
        try:
            yield self._issues(login, repo)
            yield self._commits(login, repo)
        except GitHubError as e:
            if e.status not in (404, 410):  # 410: issues are turned off for the repository
                raise
            self.warnings.append(f"{repo}: not found or no access")
            self.ctx.warn(f"GitHub repository {repo} not found or not accessible "
                          f"({e.status}); skipped", repo=repo)

    def _issues_url(self, repo: str, since: str) -> str:
        return self.client.url(f"/repos/{repo}/issues", {
            "state": "all", "sort": "updated", "direction": "asc", "since": since,
            "per_page": PER_PAGE})

    @inlineCallbacks
    def _issues(self, login: str, repo: str) -> Yielding[None]:
        since = self._since(repo, "issues")
        url: str | None = self._issues_url(repo, since)
        number = 0
        while url is not None:
            number += 1
            page = yield self._get(url)
            if page.status == 304:
                return
            if not isinstance(page.data, list):
                raise GitHubError("github_bad_response", f"{repo} issues: expected a list")
            items: list[ActivityItem] = []
            newest = since
            for issue in page.data:
                if not isinstance(issue, dict):
                    raise GitHubError("github_bad_response", f"{repo} issues: bad item")
                merged_at = None
                if ("pull_request" in issue and issue.get("state") == "closed"
                        and (issue.get("user") or {}).get("login") == login):
                    merged_at = yield self._merged_at(repo, issue)
                items += from_issue(repo, issue, login, merged_at)
                newest = max(newest, str(issue.get("updated_at") or newest))
            # Everything up to the newest update on this page is now stored.
            cursor = self._with_repo_cursor(repo, "issues", newest)
            etags = [(url, page.etag)] if page.etag and page.next_url is None else []
            yield self._save(items, cursor, etags)
            self._progress(0.1, f"{repo}: issues page {number}")
            if page.next_url is not None and newest > since:
                # Ask again from the newest update read rather than for page N+1:
                # an issue updated meanwhile moves to the end of the list, which
                # would shift an unread one back onto the page already read.
                since, url = newest, self._issues_url(repo, newest)
            else:
                # The last page, or a whole page updated at one instant (paging
                # is then the only way on).
                url = page.next_url

    @inlineCallbacks
    def _merged_at(self, repo: str, issue: Mapping[str, Any]) -> Yielding[str | None]:
        pull = issue.get("pull_request") or {}
        if pull.get("merged_at"):
            return str(pull["merged_at"])
        page = yield self._get(self.client.url(f"/repos/{repo}/pulls/{issue['number']}"),
                               use_etag=False)
        return page.data.get("merged_at") if isinstance(page.data, dict) else None

    def _title_misses(self) -> dict[str, str]:
        """The cursor's recent title misses (older ones are due again)."""
        misses = self.cursor.get(TITLE_MISSES)
        due = _iso(self.started - TITLE_MISS_RETRY)
        return {key: when for key, when in (misses or {}).items()
                if isinstance(when, str) and when > due} if isinstance(misses, dict) else {}

    @inlineCallbacks
    def _pull_titles(self) -> Yielding[None]:
        """
        Title the pull-request items still without one once everything is read:
        events carry C{pull-request-minimal} (no title), and the issue lists
        give only the user's own pull requests of the synced repositories.

        Another item of the same pull request lends its title; otherwise the
        pull request is fetched, at most L{MAX_TITLE_LOOKUPS} per sync. One gone
        or closed to the token (403, 404, 410) keeps no title and is remembered
        in the cursor, not asked again for L{TITLE_MISS_RETRY}.
        """
        misses = self._title_misses()
        candidates = yield self.ctx.track(self.db.run(
            gh_store.untitled_pulls, self.workspace, self._now(),
            MAX_TITLE_LOOKUPS + len(misses)))
        wanted = [(repo, number) for repo, number in candidates
                  if f"{repo}#{number}" not in misses][:MAX_TITLE_LOOKUPS]
        for done, (repo, number) in enumerate(wanted):
            self._progress(0.9 + 0.1 * done / len(wanted),
                           f"pull request titles: {done}/{len(wanted)} fetched")
            try:
                # Unconditional: a 304 has no body, and a title already stored
                # was lent by untitled_pulls without asking.
                page = yield self._get(self.client.url(f"/repos/{repo}/pulls/{number}"),
                                       use_etag=False)
            except GitHubError as e:
                if e.status not in (403, 404, 410) or e.code == "github_rate_limited":
                    raise
                misses[f"{repo}#{number}"] = self._now()
                self.cursor = {**self.cursor, TITLE_MISSES: misses}
                yield self._save([], self.cursor)
                continue
            pull = page.data
            if not isinstance(pull, dict) or not isinstance(pull.get("title"), str):
                raise GitHubError("github_bad_response",
                                  f"GET /repos/{repo}/pulls/{number} returned no title")
            url = pull.get("html_url")
            yield self.ctx.track(self.db.run(
                gh_store.set_pull_title, self.workspace, repo, number, pull["title"],
                url if isinstance(url, str) else None, self._now()))
            self.titled += 1
        if wanted:
            self._progress(1.0, f"pull request titles: {len(wanted)}/{len(wanted)} fetched")

    def _commit_cursor(self) -> str:
        """The next commits cursor: L{COMMIT_OVERLAP} back, at midnight UTC, so the
        URL (and its ETag) stays the same all day and repeated syncs get 304s."""
        back = self.started - COMMIT_OVERLAP
        return _iso(back.replace(hour=0, minute=0, second=0, microsecond=0))

    @inlineCallbacks
    def _commits(self, login: str, repo: str) -> Yielding[None]:
        since = self._since(repo, "commits")
        first_url = self.client.url(f"/repos/{repo}/commits", {
            "author": login, "since": since, "per_page": PER_PAGE})
        url: str | None = first_url
        number = 0
        while url is not None:
            number += 1
            try:
                page = yield self._get(url, use_etag=number == 1)
            except GitHubError as e:
                if e.status == 409:  # GitHub's answer for an empty repository
                    return
                raise
            if page.status == 304:
                return
            if not isinstance(page.data, list):
                raise GitHubError("github_bad_response", f"{repo} commits: expected a list")
            items = [item for c in page.data if isinstance(c, dict)
                     for item in [from_commit(repo, c)] if item is not None]
            last = page.next_url is None
            # Commits come newest first: the cursor moves only after the last page.
            cursor = (self._with_repo_cursor(repo, "commits", self._commit_cursor())
                      if last else None)
            etags = [(first_url, page.etag)] if last and page.etag and number == 1 else []
            yield self._save(items, cursor, etags)
            self._progress(0.1, f"{repo}: commits page {number}")
            url = page.next_url


def github_sync_job(db: Database, clock: IReactorTime,
                    settings: Callable[[], GitHubSettings],
                    client_for: ClientFactory) -> JobType:
    """
    The C{connector.github.sync} job type.

    @param settings: returns the C{github} settings in force.
    @param client_for: builds a L{GitHubClient} for those settings.
    """

    return JobType(name="connector.github.sync", payload=PAYLOAD,
                   handler=sync_handler(db, clock, settings, client_for), lock="github",
                   description="Sync GitHub activity.")


PAYLOAD = {"workspace_id": Field(text(r"[A-Za-z0-9_.-]{1,64}", 64), "default",
                                 "Workspace whose activity is synced."),
           "cursor": Field(optional(timestamp), None,
                           "Resume from this time instead of the stored cursor."),
           "since": Field(optional(timestamp), None,
                          "On a first sync, how far back to look (default 30 days).")}


def sync_handler(db: Database, clock: IReactorTime, settings: Callable[[], GitHubSettings],
                 client_for: ClientFactory) -> Callable[[JobContext], Deferred[dict[str, Any]]]:
    """The handler of L{github_sync_job}: one L{GitHubSync} run with the settings in force."""

    def handle(ctx: JobContext) -> Deferred[dict[str, Any]]:
        github = settings()
        if not github.configured:
            raise JobFailed("github_auth", "no GitHub token: set settings.github.token")
        return GitHubSync(ctx, db, client_for(github), clock, github).run()

    return handle
