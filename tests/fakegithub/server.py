"""The fake GitHub's HTTP side: its server, the requests it saw, injected faults,
the primary rate limit, routes with C{Link} pagination and ETags, and GitHub's
error bodies; with helpers to wait on the real reactor.

It serves either on 127.0.0.1 (L{FakeGitHub.listen}) or in memory, through
L{treq.testing.StubTreq} (L{FakeGitHub.stub}), where a test drives every
timer with a L{twisted.internet.task.Clock} and no socket is opened."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from attrs import define, field
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from tests.fakegithub.documents import GitHubDocuments
from tests.fakegithub.state import MAX_EVENTS, Commit, Issue, Repo

DOCS = "https://docs.github.com/rest"
#: The API root's origin when served in memory (L{FakeGitHub.stub}).
MEMORY_ORIGIN = "http://api.github.test"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


@define
class Fault:
    """
    What to do instead of answering normally, for requests whose path (below
    the API root) matches C{path} (a regex searched) and whose query holds C{query}.

    Kinds: C{status} (answer C{status} with GitHub's error body), C{drop}
    (close the connection without answering), C{hang} (never answer), C{hold}
    (answer when L{FakeGitHub.release} is called), C{delay} (answer after
    C{seconds}), C{malformed} (200 with a truncated JSON body), C{retry_after}
    (429 with C{retry-after: seconds}), C{secondary} (C{status}, 403 or 429, with
    GitHub's secondary rate limit message and no C{retry-after}).

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


class FakeGitHub(GitHubDocuments):
    """
    The fake's state, faults and server.

    @param reactor: times delays, and listens if L{listen} is called (the real
        reactor; served in memory, a L{twisted.internet.task.Clock}).
    @param clock: the time of rate-limit windows (defaults to C{reactor}; a test
        can share a L{twisted.internet.task.Clock} with the client under test).
    @param token: the only token accepted (C{None}: no authentication).
    @param prefix: the API root's path, e.g. C{/api/v3} for GitHub Enterprise.
    """

    def __init__(self, reactor: Any, token: str | None = "fake-token", login: str = "octo",
                 prefix: str = "", clock: Any = None, rate_limit: int = 5000) -> None:
        super().__init__(login)
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.token = token
        self.prefix = prefix.rstrip("/")
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
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
        self._port: IListeningPort | None = None
        self._stub: StubTreq | None = None
        self._held: list[tuple[Request, Fault | None]] = []
        self._open: dict[Request, Recorded] = {}
        self._timers: set[IDelayedCall] = set()

    # Serving

    def listen(self, port: int = 0) -> str:
        """Listen on C{port} (default: a free one) of 127.0.0.1; return the API root URL."""
        self._port = self._reactor.listenTCP(port, _Site(_Root(self)), interface="127.0.0.1")
        return self.base_url

    def stub(self) -> StubTreq:
        """
        Serve in memory: a L{StubTreq} whose requests reach the fake without a
        socket (at L{MEMORY_ORIGIN}). An answer given later than the request
        (C{hold}, C{delay}, L{latency}) reaches the client at its C{flush()}.
        """
        self._stub = StubTreq(_Root(self))
        return self._stub

    def flush(self) -> None:
        """Deliver what the in-memory server wrote (nothing when listening)."""
        if self._stub is not None:
            self._stub.flush()

    @property
    def port(self) -> int:
        assert self._port is not None, "not listening"
        return int(self._port.getHost().port)  # type: ignore[attr-defined]

    @property
    def base_url(self) -> str:
        if self._port is None and self._stub is not None:
            return f"{MEMORY_ORIGIN}{self.prefix}"
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def listening(self) -> bool:
        return self._port is not None

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
        if kind in ("retry_after", "secondary") and fault is not None:
            retry = {"retry-after": str(int(fault.seconds))} if kind == "retry_after" else {}
            return self._error(429 if kind == "retry_after" else fault.status,
                               "You have exceeded a secondary rate limit. Please wait "
                               "a few minutes before you try again.", retry,
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
