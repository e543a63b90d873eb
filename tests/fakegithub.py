"""A fake GitHub REST API on 127.0.0.1, for the connector's tests and benchmark.

Responses are built from GitHub's documented examples (the fixtures in
C{tests/data/github/}, extracted from C{@octokit/openapi}), with ids, numbers,
timestamps, logins and repository names taken from the fake's state. It behaves
like the real API where the connector depends on it: C{per_page}/C{page}
pagination with an absolute C{Link} header (to C{/repositories/{id}/...} and
C{/user/{id}/...}, as GitHub does), the issues and commits filters, strong
ETags with C{If-None-Match}, the primary rate limit and its headers, and
GitHub's error bodies. Faults (L{Fault}) are injected per request.

Run as a program it serves a generated dataset until its standard input closes:

    python -m tests.fakegithub --token T --repos 5 --items 1000 [--latency 0.01]

and prints C{{"port": ..., "base_url": ...}} on stdout once listening.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import random
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from attrs import define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

FIXTURES = Path(__file__).resolve().parent / "data" / "github"
#: What the documented examples use, replaced in every rendered response.
EXAMPLE_API = "https://api.github.com"
EXAMPLE_REPO = "octocat/Hello-World"
EXAMPLE_LOGIN = "octocat"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
#: GitHub keeps at most this many events per user.
MAX_EVENTS = 300


def iso(epoch: float) -> str:
    """Epoch seconds as GitHub writes times: C{YYYY-MM-DDTHH:MM:SSZ}."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


class _Templates:
    """The fixtures, read once."""

    def __init__(self) -> None:
        self.user = _load("user.json")
        self.events = _load("events.json")
        self.payloads = _load("event_payloads.json")
        self.issue = _load("issues.json")[0]
        self.commit = _load("commits.json")[0]
        self.pull = _load("pull.json")


@functools.cache
def templates() -> _Templates:
    return _Templates()


def _rebase(value: Any, subs: list[tuple[str, str]]) -> Any:
    """A copy of C{value} (new lists and dicts) with each C{(old, new)} replaced in
    every string."""
    if isinstance(value, str):
        for old, new in subs:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_rebase(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: _rebase(v, subs) for k, v in value.items()}
    return value


# State


@define
class Issue:
    """An issue or pull request (C{pull}); times are GitHub timestamps."""

    number: int
    id: int
    title: str
    login: str
    created_at: str
    updated_at: str
    closed_at: str | None = None
    pull: bool = False
    merged_at: str | None = None
    body: str = ""


@define
class Commit:
    sha: str
    login: str
    date: str
    message: str


@define
class Repo:
    name: str
    id: int
    issues: dict[int, Issue] = field(factory=dict)
    commits: list[Commit] = field(factory=list)


@define
class Event:
    """One entry of a user's events; C{payload} is rendered when served."""

    id: int
    type: str
    login: str
    repo: str
    created_at: str
    payload: Callable[[], dict[str, Any]]
    identity: str | None


@define
class Fault:
    """
    What to do instead of answering normally, for requests whose path (below
    the API root) matches C{path} (a regex searched) and whose query holds C{query}.

    Kinds: C{status} (answer C{status} with GitHub's error body), C{drop}
    (close the connection without answering), C{hang} (never answer), C{hold}
    (answer when L{FakeGitHub.release} is called), C{delay} (answer after
    C{seconds}), C{malformed} (200 with a truncated JSON body), C{retry_after}
    (429 with C{retry-after: seconds}).

    @ivar skip: matching requests let through before the fault starts.
    @ivar times: requests it applies to (C{None}: all of them).
    """

    kind: str
    path: str = ""
    query: Mapping[str, str] = field(factory=dict)
    status: int = 500
    seconds: float = 0.0
    skip: int = 0
    times: int | None = 1
    seen: int = 0
    hits: int = 0

    def applies(self, path: str, query: Mapping[str, str]) -> bool:
        if not re.search(self.path, path):
            return False
        if any(query.get(k) != v for k, v in self.query.items()):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


@define
class Recorded:
    """A request as the fake saw it (the C{authorization} header is left out)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    authorized: bool
    status: int | None = None
    lost: bool = False


class _Site(Site):
    noisy = False

    def log(self, request: Any) -> None:
        """No access log."""


class _Root(Resource):
    isLeaf = True

    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__()
        self._fake = fake

    def render(self, request: Request) -> Any:
        return self._fake._handle(request)


class FakeGitHub:
    """
    The fake's state, faults and server.

    @param reactor: listens, and times delays (the real reactor).
    @param clock: the time of rate-limit windows (defaults to C{reactor}; a test
        can share a L{twisted.internet.task.Clock} with the client under test).
    @param token: the only token accepted (C{None}: no authentication).
    @param prefix: the API root's path, e.g. C{/api/v3} for GitHub Enterprise.
    """

    def __init__(self, reactor: Any, token: str | None = "fake-token", login: str = "octo",
                 prefix: str = "", clock: Any = None, rate_limit: int = 5000) -> None:
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.token = token
        self.login = login
        self.user_id = 583231
        self.prefix = prefix.rstrip("/")
        self.repos: dict[str, Repo] = {}
        self.events: list[Event] = []
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        #: Include C{pull_request.merged_at} in issue lists (the example leaves it out).
        self.issue_merged_at = False
        #: Every answer waits this long (seconds of C{reactor}).
        self.latency = 0.0
        #: Where C{Link} URLs point (default: the fake itself).
        self.link_root: str | None = None
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.reset = int(self._clock.seconds()) + 3600
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_request: Callable[[Recorded], None] | None = None
        self._ids = 1000
        self._port: IListeningPort | None = None
        self._held: list[tuple[Request, Fault | None]] = []
        self._open: dict[Request, Recorded] = {}
        self._timers: set[IDelayedCall] = set()

    # Serving

    def listen(self, port: int = 0) -> str:
        """Listen on C{port} (default: a free one) of 127.0.0.1; return the API root URL."""
        self._port = self._reactor.listenTCP(port, _Site(_Root(self)), interface="127.0.0.1")
        return self.base_url

    @property
    def port(self) -> int:
        assert self._port is not None, "not listening"
        return int(self._port.getHost().port)  # type: ignore[attr-defined]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def close(self) -> Deferred[None]:
        """Stop listening and drop every connection still open."""
        for timer in list(self._timers):
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self._held.clear()
        for request in list(self._open):
            _abort(request)
        port, self._port = self._port, None
        if port is None:
            return succeed(None)
        return port.stopListening()  # type: ignore[return-value]

    def release(self) -> int:
        """Answer every request held by a C{hold} fault; return how many."""
        held, self._held = self._held, []
        for request, fault in held:
            self._answer(request, fault)
        return len(held)

    @property
    def held(self) -> int:
        return len(self._held)

    # Faults

    def add_fault(self, kind: str, path: str = "", times: int | None = 1, skip: int = 0,
                  **options: Any) -> Fault:
        fault = Fault(kind, path, times=times, skip=skip, **options)
        self.faults.append(fault)
        return fault

    def fail(self, times: int | None = 1, status: int = 500, path: str = "",
             skip: int = 0) -> Fault:
        """The next C{times} matching requests answer C{status}."""
        return self.add_fault("status", path, times, skip, status=status)

    def exhaust_rate_limit(self, reset_in: float) -> None:
        """No requests left until C{reset_in} seconds from now (403s meanwhile)."""
        self.remaining = 0
        self.reset = math.ceil(self._clock.seconds() + reset_in)

    # State

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_repo(self, name: str) -> Repo:
        repo = Repo(name, self._next_id())
        self.repos[name] = repo
        return repo

    def add_issue(self, repo: str, created: float, updated: float | None = None,
                  closed: float | None = None, login: str | None = None, pull: bool = False,
                  merged: float | None = None, title: str | None = None) -> Issue:
        state = self.repos[repo]
        number = len(state.issues) + 1
        issue = Issue(number, self._next_id(),
                      title or f"{'PR' if pull else 'Issue'} {number} of {repo}",
                      login or self.login, iso(created), iso(updated or created),
                      iso(closed) if closed is not None else None, pull,
                      iso(merged) if merged is not None else None, f"Body of {number}")
        state.issues[number] = issue
        return issue

    def update_issue(self, repo: str, number: int, updated: float, **changes: Any) -> Issue:
        issue = self.repos[repo].issues[number]
        issue.updated_at = iso(updated)
        for name, value in changes.items():
            setattr(issue, name, iso(value) if name.endswith("_at") and value is not None
                    else value)
        return issue

    def add_commit(self, repo: str, date: float, login: str | None = None,
                   message: str | None = None) -> Commit:
        state = self.repos[repo]
        sha = hashlib.sha1(f"{repo}:{len(state.commits)}".encode()).hexdigest()
        commit = Commit(sha, login or self.login, iso(date),
                        message or f"Change {len(state.commits) + 1} of {repo}\n\nDetails.")
        state.commits.append(commit)
        return commit

    def _add_event(self, kind: str, repo: str, when: float,
                   payload: Callable[[], dict[str, Any]], identity: str | None) -> Event:
        event = Event(self._next_id(), kind, self.login, repo, iso(when), payload, identity)
        self.events.append(event)
        self.events.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return event

    def pr_event(self, repo: str, number: int, action: str, when: float) -> Event:
        """A C{PullRequestEvent} (its C{pull_request} is C{pull-request-minimal})."""
        issue = self.repos[repo].issues[number]
        kind = {"opened": "pr_opened", "reopened": "pr_opened",
                "closed": "pr_merged" if issue.merged_at else "pr_closed"}.get(action)

        def payload() -> dict[str, Any]:
            out = self._rebased(templates().payloads["PullRequestEvent"], repo, number)
            out["action"] = action
            out["number"] = number
            out["pull_request"] = self._minimal_pull(repo, issue)
            return out

        return self._add_event("PullRequestEvent", repo, when, payload,
                               f"{kind}:{repo}#{number}" if kind else None)

    def issues_event(self, repo: str, number: int, action: str, when: float) -> Event:
        issue = self.repos[repo].issues[number]
        kind = {"opened": "issue_opened", "reopened": "issue_opened",
                "closed": "issue_closed"}.get(action)

        def payload() -> dict[str, Any]:
            return {"action": action, "issue": self.render_issue(self.repos[repo], issue)}

        return self._add_event("IssuesEvent", repo, when, payload,
                               f"{kind}:{repo}#{number}" if kind else None)

    def comment_event(self, repo: str, number: int, when: float, body: str = "LGTM") -> Event:
        issue = self.repos[repo].issues[number]
        comment_id = self._next_id()

        def payload() -> dict[str, Any]:
            template = templates().payloads["IssueCommentEvent"]
            comment = self._rebased(template["comment"], repo, number)
            comment.update(id=comment_id, body=body, created_at=iso(when),
                           updated_at=iso(when), user=self.render_user(self.login),
                           url=f"{self.base_url}/repos/{repo}/issues/comments/{comment_id}",
                           html_url=f"{WEB}/{repo}/issues/{number}#issuecomment-{comment_id}")
            return {"action": "created", "issue": self.render_issue(self.repos[repo], issue),
                    "comment": comment}

        return self._add_event("IssueCommentEvent", repo, when, payload,
                               f"comment:{repo}:{comment_id}")

    def review_event(self, repo: str, number: int, when: float,
                     state: str = "approved") -> Event:
        issue = self.repos[repo].issues[number]
        review_id = self._next_id()

        def payload() -> dict[str, Any]:
            template = templates().payloads["PullRequestReviewEvent"]
            review = self._rebased(template["review"], repo, number)
            review["id"] = review_id
            review.update(state=state, submitted_at=iso(when), user=self.render_user(self.login),
                          html_url=f"{WEB}/{repo}/pull/{number}#pullrequestreview-{review_id}")
            return {"action": "created", "review": review,
                    "pull_request": self._minimal_pull(repo, issue)}

        return self._add_event("PullRequestReviewEvent", repo, when, payload,
                               f"pr_reviewed:{repo}#{number}:{review_id}")

    def push_event(self, repo: str, when: float) -> Event:
        def payload() -> dict[str, Any]:
            out = dict(templates().events[1]["payload"])
            out["repository_id"] = self.repos[repo].id if repo in self.repos else 1
            return out

        return self._add_event("PushEvent", repo, when, payload, None)

    def expected(self, since: str, repos: Iterable[str] | None = None,
                 login: str | None = None) -> set[str]:
        """
        The identities (see L{enttok.connectors.github.normalize}) a full sync
        from C{since} should store for C{login}: from all its events, and from
        the issues and commits of C{repos} (default: every repository).
        """
        login = login or self.login
        out = {e.identity for e in self.events[:MAX_EVENTS]
               if e.identity is not None and e.login == login}
        wanted = set(self.repos if repos is None else repos)
        for name, repo in self.repos.items():
            if name not in wanted:
                continue
            for issue in repo.issues.values():
                if issue.login != login or issue.updated_at < since:
                    continue
                prefix = "pr" if issue.pull else "issue"
                out.add(f"{prefix}_opened:{name}#{issue.number}")
                if issue.merged_at:
                    out.add(f"pr_merged:{name}#{issue.number}")
                elif issue.closed_at:
                    out.add(f"{prefix}_closed:{name}#{issue.number}")
            out.update(f"commit:{name}:{c.sha}" for c in repo.commits
                       if c.login == login and c.date >= since)
        return out

    # Rendering (from the documented examples)

    def _subs(self, repo: str, number: int | None = None) -> list[tuple[str, str]]:
        subs = [(EXAMPLE_API, self.base_url if self._port is not None else EXAMPLE_API),
                (EXAMPLE_REPO, repo)]
        if number is not None:
            subs += [("/1347", f"/{number}"), ("/pull/12", f"/pull/{number}"),
                     ("/pulls/12", f"/pulls/{number}")]
        return subs

    def _rebased(self, template: Any, repo: str, number: int | None = None) -> Any:
        return _rebase(template, self._subs(repo, number))

    def render_user(self, login: str) -> dict[str, Any]:
        user = _rebase(templates().issue["user"], [(EXAMPLE_LOGIN, login)])
        user["id"] = self.user_id if login == self.login else 1 + len(login)
        return dict(user)

    def render_me(self) -> dict[str, Any]:
        me = _rebase(templates().user, [(EXAMPLE_LOGIN, self.login)])
        me["id"] = self.user_id
        return dict(me)

    def render_issue(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        out = self._rebased(templates().issue, repo.name, issue.number)
        closed = issue.closed_at is not None
        out.update(id=issue.id, number=issue.number, title=issue.title, body=issue.body,
                   user=self.render_user(issue.login), state="closed" if closed else "open",
                   state_reason="completed" if closed else None, locked=False,
                   active_lock_reason=None, assignee=None, comments=0,
                   created_at=issue.created_at, updated_at=issue.updated_at,
                   closed_at=issue.closed_at,
                   html_url=f"{WEB}/{repo.name}/{'pull' if issue.pull else 'issues'}/"
                            f"{issue.number}")
        if issue.pull:
            if self.issue_merged_at:
                out["pull_request"]["merged_at"] = issue.merged_at
        else:
            del out["pull_request"]
        return dict(out)

    def render_pull(self, repo: Repo, issue: Issue) -> dict[str, Any]:
        out = self._rebased(templates().pull, repo.name, issue.number)
        closed = issue.closed_at is not None
        out.update(id=issue.id, number=issue.number, title=issue.title, body=issue.body,
                   user=self.render_user(issue.login), state="closed" if closed else "open",
                   created_at=issue.created_at, updated_at=issue.updated_at,
                   closed_at=issue.closed_at, merged_at=issue.merged_at,
                   merged=issue.merged_at is not None, locked=False, active_lock_reason=None,
                   html_url=f"{WEB}/{repo.name}/pull/{issue.number}")
        return dict(out)

    def _minimal_pull(self, repo: str, issue: Issue) -> dict[str, Any]:
        out = self._rebased(templates().payloads["PullRequestEvent"]["pull_request"], repo,
                            issue.number)
        out["id"], out["number"] = issue.id, issue.number
        for side in ("head", "base"):
            out[side]["repo"].update(id=self.repos[repo].id, name=repo.split("/", 1)[1],
                                     url=f"{self.base_url}/repos/{repo}")
        return dict(out)

    def render_commit(self, repo: Repo, commit: Commit) -> dict[str, Any]:
        out = _rebase(templates().commit,
                      [*self._subs(repo.name), (templates().commit["sha"], commit.sha)])
        out["commit"]["author"].update(name=commit.login, email=f"{commit.login}@example.com",
                                       date=commit.date)
        out["commit"]["committer"].update(name=commit.login,
                                          email=f"{commit.login}@example.com", date=commit.date)
        out["commit"]["message"] = commit.message
        out["author"] = out["committer"] = self.render_user(commit.login)
        out["parents"] = []
        return dict(out)

    def render_event(self, event: Event) -> dict[str, Any]:
        out = _rebase(templates().events[0],
                      [*self._subs(event.repo), (EXAMPLE_LOGIN, event.login)])
        repo = self.repos.get(event.repo)
        out.update(id=str(event.id), type=event.type, payload=event.payload(), public=True,
                   created_at=event.created_at)
        out["actor"]["id"] = self.user_id
        out["repo"] = {"id": repo.id if repo else 1, "name": event.repo,
                       "url": f"{self.base_url}/repos/{event.repo}"}
        return dict(out)

    # Requests

    def _handle(self, request: Request) -> Any:
        path = request.path.decode("utf-8", "replace")
        args: dict[bytes, list[bytes]] = request.args or {}
        query = {k.decode(): v[-1].decode("utf-8", "replace") for k, v in args.items()}
        headers = {k.decode("latin-1").lower(): v[-1].decode("latin-1")
                   for k, v in request.requestHeaders.getAllRawHeaders()
                   if k.lower() != b"authorization"}
        auth = request.getHeader(b"authorization")
        record = Recorded(request.method.decode(), path, query, headers,
                          auth is not None and self.token is not None
                          and auth.decode("latin-1") in (f"Bearer {self.token}",
                                                         f"token {self.token}"))
        self.requests.append(record)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._open[request] = record
        request.notifyFinish().addBoth(self._finished, request, record)
        if self.on_request is not None:
            self.on_request(record)
        inner = self._inner(path)
        fault = next((f for f in self.faults if inner is not None
                      and f.applies(inner, query)), None)
        if fault is not None and fault.kind == "hang":
            return NOT_DONE_YET
        if fault is not None and fault.kind == "hold":
            self._held.append((request, fault))
            return NOT_DONE_YET
        delay = fault.seconds if fault is not None and fault.kind == "delay" else self.latency
        if delay > 0:
            timer = self._reactor.callLater(delay, self._answer, request, fault)
            self._timers.add(timer)
        else:
            self._answer(request, fault)
        return NOT_DONE_YET

    def _finished(self, result: object, request: Request, record: Recorded) -> None:
        self.in_flight -= 1
        self._open.pop(request, None)
        record.lost = isinstance(result, Failure)

    def _answer(self, request: Request, fault: Fault | None) -> None:
        self._timers = {t for t in self._timers if t.active()}
        record = self._open.get(request)
        if record is None or record.lost:
            return
        if fault is not None and fault.kind == "drop":
            record.status = 0
            _abort(request)
            return
        status, body, headers = self._respond(request, record, fault)
        record.status = status
        request.setResponseCode(status)
        for name, value in headers.items():
            request.setHeader(name, value)
        if body:
            request.write(body)
        request.finish()

    def _rate_headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": str(self.rate_limit),
                "x-ratelimit-remaining": str(self.remaining),
                "x-ratelimit-used": str(self.rate_limit - self.remaining),
                "x-ratelimit-reset": str(self.reset), "x-ratelimit-resource": "core"}

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None,
               docs: str = DOCS) -> tuple[int, bytes, dict[str, str]]:
        body = json.dumps({"message": message, "documentation_url": docs,
                           "status": str(status)}).encode()
        return status, body, {"content-type": "application/json; charset=utf-8",
                              **self._rate_headers(), **(headers or {})}

    def _respond(self, request: Request, record: Recorded,
                 fault: Fault | None) -> tuple[int, bytes, dict[str, str]]:
        kind = fault.kind if fault is not None else None
        if kind == "status" and fault is not None:
            return self._error(fault.status, _MESSAGES.get(fault.status, "Server Error"))
        if self.token is not None and not record.authorized:
            missing = request.getHeader(b"authorization") is None
            return self._error(401, "Requires authentication" if missing else
                               "Bad credentials")
        now = self._clock.seconds()
        if now >= self.reset:
            self.remaining, self.reset = self.rate_limit, int(now) + 3600
        if kind == "retry_after" and fault is not None:
            return self._error(429, "You have exceeded a secondary rate limit. Please wait "
                               "a few minutes before you try again.",
                               {"retry-after": str(int(fault.seconds))},
                               f"{DOCS}/overview/rate-limits-for-the-rest-api")
        if self.remaining <= 0:
            return self._error(403, f"API rate limit exceeded for user ID {self.user_id}.",
                               docs=f"{DOCS}/overview/rate-limits-for-the-rest-api")
        inner = self._inner(record.path)
        try:
            if inner is None:
                raise _NotFound()
            status, value, link = self._route(inner, record.query)
        except _NotFound:
            self.remaining -= 1
            return self._error(404, "Not Found")
        except _Invalid as e:
            self.remaining -= 1
            return self._error(422, f"Validation Failed: {e}")
        except _Empty:
            self.remaining -= 1
            return self._error(409, "Git Repository is empty.")
        body = json.dumps(value).encode()
        if kind == "malformed":
            body = body[: max(1, len(body) // 2)]
        etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'
        headers = {"content-type": "application/json; charset=utf-8", "etag": etag,
                   "cache-control": "private, max-age=60, s-maxage=60",
                   "x-github-api-version-selected": "2022-11-28"}
        if link:
            headers["link"] = link
        wanted = record.headers.get("if-none-match")
        if wanted is not None and kind != "malformed" and etag in _etags(wanted):
            return 304, b"", {**headers, **self._rate_headers()}
        self.remaining -= 1
        return status, body, {**headers, **self._rate_headers()}

    # Routes

    def _inner(self, path: str) -> str | None:
        """C{path} below the API root (C{None} when outside it)."""
        if not self.prefix:
            return path
        if path == self.prefix or not path.startswith(self.prefix + "/"):
            return None
        return path[len(self.prefix):]

    def _repo(self, owner_name: str | None = None, repo_id: str | None = None) -> Repo:
        for repo in self.repos.values():
            if repo.name.lower() == (owner_name or "").lower() or str(repo.id) == repo_id:
                return repo
        raise _NotFound()

    def _route(self, path: str,
               query: Mapping[str, str]) -> tuple[int, Any, str | None]:
        if path == "/user":
            return 200, self.render_me(), None
        m = re.fullmatch(r"/users/([^/]+)/events|/user/(\d+)/events", path)
        if m:
            login = m.group(1) or (self.login if m.group(2) == str(self.user_id) else None)
            events = [e for e in self.events if e.login == login][:MAX_EVENTS]
            return self._page(f"/user/{self.user_id}/events", query,
                              events, self.render_event)
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls/(\d+)", path)
        if m:
            repo = self._repo(m.group(1))
            issue = repo.issues.get(int(m.group(2)))
            if issue is None or not issue.pull:
                raise _NotFound()
            return 200, self.render_pull(repo, issue), None
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/(issues|commits)|/repositories/(\d+)/"
                         r"(issues|commits)", path)
        if m:
            repo = self._repo(m.group(1), m.group(3))
            what = m.group(2) or m.group(4)
            if what == "issues":
                return self._page(f"/repositories/{repo.id}/issues", query,
                                  self._issues(repo, query),
                                  lambda i: self.render_issue(repo, i))
            if not repo.commits:
                raise _Empty()
            return self._page(f"/repositories/{repo.id}/commits", query,
                              self._commits(repo, query),
                              lambda c: self.render_commit(repo, c))
        raise _NotFound()

    def _issues(self, repo: Repo, query: Mapping[str, str]) -> list[Issue]:
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _Invalid("state")
        issues = [i for i in repo.issues.values()
                  if state == "all" or (i.closed_at is not None) == (state == "closed")]
        since = _since(query.get("since"))
        if since is not None:
            issues = [i for i in issues if i.updated_at >= since]
        sort = query.get("sort", "created")
        if sort not in ("created", "updated", "comments"):
            raise _Invalid("sort")
        desc = query.get("direction", "desc") == "desc"
        key: Callable[[Issue], Any] = ((lambda i: (i.updated_at, i.number)) if sort == "updated"
                                       else (lambda i: (i.created_at, i.number)))
        return sorted(issues, key=key, reverse=desc)

    def _commits(self, repo: Repo, query: Mapping[str, str]) -> list[Commit]:
        commits = list(repo.commits)
        if "author" in query:
            commits = [c for c in commits if c.login.lower() == query["author"].lower()]
        since, until = _since(query.get("since")), _since(query.get("until"))
        if since is not None:
            commits = [c for c in commits if c.date >= since]
        if until is not None:
            commits = [c for c in commits if c.date <= until]
        return sorted(commits, key=lambda c: c.date, reverse=True)

    def _page(self, link_path: str, query: Mapping[str, str], items: list[Any],
              render: Callable[[Any], Any]) -> tuple[int, Any, str | None]:
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(query.get("per_page", DEFAULT_PER_PAGE))))
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            raise _Invalid("per_page/page") from None
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        root = self.link_root or self.base_url
        params = {k: v for k, v in query.items() if k != "page"}

        def url(number: int) -> str:
            return f"{root}{link_path}?{urlencode({**params, 'page': number})}"

        rels = []
        if page > 1:
            rels.append((url(page - 1), "prev"))
        if page < last:
            rels += [(url(page + 1), "next"), (url(last), "last")]
        if page > 1:
            rels.append((url(1), "first"))
        link = ", ".join(f'<{u}>; rel="{r}"' for u, r in rels) or None
        return 200, [render(item) for item in chunk], link


_MESSAGES = {400: "Problems parsing JSON", 401: "Bad credentials", 403: "Forbidden",
             404: "Not Found", 422: "Validation Failed"}


class _NotFound(Exception):
    pass


class _Invalid(Exception):
    pass


class _Empty(Exception):
    """A repository without commits: GitHub answers its commits with 409."""


def _abort(request: Request) -> None:
    transport = getattr(request.channel, "transport", None)
    if transport is not None:
        transport.abortConnection()


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid("since") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Test helpers


def wait_until(reactor: Any, predicate: Callable[[], bool], timeout: float = 5.0,
               what: str = "condition") -> Deferred[None]:
    """
    Fire once C{predicate()} is true, checking every few milliseconds of the real
    reactor; fail with C{AssertionError} after C{timeout} seconds.
    """
    from twisted.internet.task import deferLater

    async def poll() -> None:
        deadline = reactor.seconds() + timeout
        while not predicate():
            if reactor.seconds() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await deferLater(reactor, 0.005, lambda: None)

    return Deferred.fromCoroutine(poll())


def pause(reactor: Any, seconds: float) -> Deferred[None]:
    """Let the real reactor run for C{seconds}."""
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


# Generated datasets (the kill test and the benchmark)

DAY = 86400.0


def populate(fake: FakeGitHub, repos: int, items: int, now: float, seed: int = 1,
             events_per_repo: int = 40) -> list[str]:
    """
    Fill C{fake} with C{repos} repositories of the fake's user, each with about
    C{items} issues, pull requests and commits (half each, 90% by the user), all
    within the 20 days before C{now}, and up to L{MAX_EVENTS} events.

    @return: the repository names.
    """
    rng = random.Random(seed)
    names = []
    for r in range(repos):
        name = f"{fake.login}/project-{r}"
        names.append(name)
        fake.add_repo(name)
        issues = items // 2
        for _ in range(issues):
            created = now - rng.uniform(1, 20) * DAY
            updated = min(now - 60, created + rng.uniform(0, 3) * DAY)
            pull = rng.random() < 0.5
            closed = updated if rng.random() < 0.4 else None
            merged = closed if pull and closed is not None and rng.random() < 0.7 else None
            author = fake.login if rng.random() < 0.9 else f"someone-{rng.randrange(9)}"
            fake.add_issue(name, created, updated, closed, author, pull, merged)
        for _ in range(items - issues):
            author = fake.login if rng.random() < 0.9 else f"someone-{rng.randrange(9)}"
            fake.add_commit(name, now - rng.uniform(0.1, 20) * DAY, author)
        numbers = list(fake.repos[name].issues)
        for _ in range(min(events_per_repo, MAX_EVENTS // repos)):
            issue = fake.repos[name].issues[rng.choice(numbers)]
            when = now - rng.uniform(0.01, 10) * DAY
            if issue.pull:
                choice = rng.randrange(4)
                if choice == 0:
                    fake.pr_event(name, issue.number, "opened", when)
                elif choice == 1 and issue.closed_at:
                    fake.pr_event(name, issue.number, "closed", when)
                elif choice == 2:
                    fake.review_event(name, issue.number, when)
                else:
                    fake.comment_event(name, issue.number, when)
            elif rng.random() < 0.5:
                fake.issues_event(name, issue.number,
                                  "closed" if issue.closed_at else "opened", when)
            else:
                fake.comment_event(name, issue.number, when)
            if rng.random() < 0.2:
                fake.push_event(name, when)
    return names


def since_for(now: float, days: int = 30) -> str:
    return iso((datetime.fromtimestamp(now, UTC) - timedelta(days=days)).timestamp())


def _watch_stdin(reactor: Any, stream: TextIO) -> None:
    def read() -> None:
        while stream.read(4096):
            pass
        reactor.callFromThread(reactor.stop)

    threading.Thread(target=read, daemon=True).start()


def main(argv: Iterable[str] | None = None) -> None:
    """Serve a generated dataset until stdin closes (see the module docstring)."""
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-token")
    parser.add_argument("--login", default="octo")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--repos", type=int, default=3)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--now", type=float, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=100_000)
    parser.add_argument("--log", default=None, help="append each request as a JSON line")
    args = parser.parse_args(list(argv) if argv is not None else None)
    fake = FakeGitHub(reactor, args.token, args.login, args.prefix,
                      rate_limit=args.rate_limit)
    fake.latency = args.latency
    populate(fake, args.repos, args.items, args.now or reactor.seconds(), args.seed)
    if args.log:
        log = open(args.log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

        def note(record: Recorded) -> None:
            log.write(json.dumps({"path": record.path, "query": record.query}) + "\n")

        fake.on_request = note
    fake.listen(args.port)
    print(json.dumps({"port": fake.port, "base_url": fake.base_url}), flush=True)
    _watch_stdin(reactor, sys.stdin)
    reactor.run()


if __name__ == "__main__":
    main()
