"""A small GitHub REST client on treq: conditional requests, pagination, limits, retries.

The HTTP client (and so the agent) is injected; time comes from the injected
clock, so every wait and retry is testable with L{twisted.internet.task.Clock}.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from attrs import frozen
from twisted.internet.defer import (
    Deferred,
    DeferredSemaphore,
    fail,
    inlineCallbacks,
)
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed

from enttok import __version__
from enttok.common.deferreds import Yielding

MAX_IN_FLIGHT = 4
REQUEST_TIMEOUT = 30.0
MAX_RETRIES = 4
BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
#: Wait for a rate-limit reset instead of stopping when it is this near (seconds).
WAIT_FOR_RESET = 60.0
MAX_RETRY_AFTER = 120.0
SECONDARY_WAIT = 60.0
#: What GitHub's message says of a secondary rate limit (lower-cased).
_SECONDARY_LIMIT = b"secondary rate limit"

_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(Exception):
    """A request failed for good. C{code} is the job's error code."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class RateLimited(Exception):
    """The primary rate limit is exhausted until C{reset_at} (epoch seconds)."""

    def __init__(self, reset_at: float) -> None:
        super().__init__(f"rate limited until {reset_at}")
        self.reset_at = reset_at


@frozen
class Page:
    """One response: its JSON (C{None} for 304), its next page and its validators."""

    status: int
    data: Any
    next_url: str | None
    etag: str | None
    remaining: int | None


def next_link(header: str | None) -> str | None:
    """The C{rel="next"} URL of a C{Link} header."""
    for url, rel in _LINK.findall(header or ""):
        if rel == "next":
            return str(url)
    return None


def backoff(attempt: int, jitter: float) -> float:
    """
    Seconds to wait before retry C{attempt} (1, 2, ...): half of a ceiling that
    doubles from L{BACKOFF_BASE} up to L{BACKOFF_MAX}, plus C{jitter} (in [0, 1))
    times the other half.
    """
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
    return float(ceiling / 2 + ceiling / 2 * jitter)


def _header(response: Any, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def _timed_out(result: object, timeout: float) -> object:
    """
    The deadline passed: a failure, whatever it is, becomes a L{TimeoutError}.

    Canceled while resolving or connecting, the agent fails with
    C{DNSLookupError} or C{ConnectingCancelledError}, not C{CancelledError}.
    """
    if isinstance(result, Failure):
        raise TimeoutError(string=f"no answer within {timeout:.0f} s")
    return result


class GitHubClient:
    """
    GET requests to one GitHub API root, at most L{MAX_IN_FLIGHT} at a time.

    @param http: a L{treq.client.HTTPClient} (its agent decides how to connect).
    @param token: sent as C{Authorization: Bearer}; never logged.
    @param jitter: returns a factor in [0, 1) for backoff jitter (tests fix it).
    @param retries: how many times a transient failure is retried.
    """

    log = Logger()

    def __init__(self, http: Any, clock: IReactorTime, base_url: str, token: str | None,
                 jitter: Callable[[], float] = random.random,
                 retries: int = MAX_RETRIES) -> None:
        self._http = http
        self._clock = clock
        self.base_url = base_url.rstrip("/")
        self._origin = urlsplit(self.base_url)[:2]
        self._token = token
        self._jitter = jitter
        self._retries = retries
        self._slots = DeferredSemaphore(MAX_IN_FLIGHT)
        self.remaining: int | None = None
        self.requests = 0

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """An absolute URL below the API root."""
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.base_url}{path}{query}"

    def _headers(self, etag: str | None) -> dict[bytes, list[bytes]]:
        headers = {b"accept": [b"application/vnd.github+json"],
                   b"x-github-api-version": [b"2022-11-28"],
                   b"user-agent": [f"enttok/{__version__}".encode()]}
        if self._token:
            headers[b"authorization"] = [f"Bearer {self._token}".encode()]
        if etag:
            headers[b"if-none-match"] = [etag.encode("latin-1")]
        return headers

    def get(self, url: str, etag: str | None = None) -> Deferred[Page]:
        """
        GET C{url}, retrying transient failures.

        @raise GitHubError: 401 (C{github_auth}), 404 (C{github_not_found}), a
            malformed body (C{github_bad_response}) or retries exhausted.
        @raise RateLimited: when the primary limit is exhausted and its reset is far.
        """
        if urlsplit(url)[:2] != self._origin:
            return fail(GitHubError("github_bad_response",
                                    "a pagination link pointed outside the API host"))
        return self._slots.run(self._get, url, etag)

    @inlineCallbacks
    def _get(self, url: str, etag: str | None) -> Yielding[Page]:
        attempt = 0
        while True:
            attempt += 1
            try:
                response, body = yield self._request(url, etag)
            except (TimeoutError, ConnectError, ConnectionLost, DNSLookupError,
                    ResponseFailed) as e:
                if attempt > self._retries:
                    raise GitHubError("github_unavailable",
                                      f"GitHub did not answer: {type(e).__name__}") from None
                yield self._sleep(self._backoff(attempt))
                continue
            delay = self._retry_delay(response, body, attempt)
            if delay is not None:
                yield self._sleep(delay)
                continue
            return self._page(url, response, body)

    def _request(self, url: str, etag: str | None) -> Deferred[tuple[Any, bytes]]:
        self.requests += 1
        d: Deferred[Any] = self._http.get(url, headers=self._headers(etag), reactor=self._clock)
        d.addCallback(lambda response: self._http_content(response))
        d.addTimeout(REQUEST_TIMEOUT, self._clock, onTimeoutCancel=_timed_out)
        return d

    def _http_content(self, response: Any) -> Deferred[tuple[Any, bytes]]:
        from treq import content

        d: Deferred[bytes] = content(response)
        return d.addCallback(lambda body: (response, body))

    def _retry_delay(self, response: Any, body: bytes, attempt: int) -> float | None:
        """
        Seconds to wait before retrying, or C{None} when the answer is final.

        @raise GitHubError: C{github_rate_limited} when a secondary limit persists.
        """
        status = response.code
        remaining = _header(response, "x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.remaining = int(remaining)
        if status in (403, 429):
            retry_after = _header(response, "retry-after")
            if retry_after is not None and retry_after.isdigit():
                if attempt > self._retries or int(retry_after) > MAX_RETRY_AFTER:
                    raise GitHubError("github_rate_limited",
                                      f"secondary rate limit: retry after {retry_after} s",
                                      status)
                return float(retry_after)
            if remaining == "0":
                reset = _header(response, "x-ratelimit-reset")
                reset_at = float(reset) if reset and reset.isdigit() else (
                    self._clock.seconds() + 3600)
                wait = reset_at - self._clock.seconds()
                if wait > WAIT_FOR_RESET or attempt > self._retries:
                    raise RateLimited(reset_at)
                return max(0.0, wait) + 1.0
            # A secondary limit without retry-after: a 429, or a 403 that says so
            # (else a 403 is a refusal). GitHub asks for at least a minute.
            if status == 429 or _SECONDARY_LIMIT in body.lower():
                if attempt > self._retries:
                    raise GitHubError("github_rate_limited", "secondary rate limit: "
                                      f"still limited after {attempt} attempts", status)
                return SECONDARY_WAIT
            return None
        if status >= 500:
            if attempt > self._retries:
                raise GitHubError("github_unavailable",
                                  f"GitHub answered {status} {attempt} times", status)
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self._jitter())

    def _sleep(self, seconds: float) -> Deferred[None]:
        return deferLater(self._clock, seconds, lambda: None)

    def _page(self, url: str, response: Any, body: bytes) -> Page:
        status = response.code
        etag = _header(response, "etag")
        if status == 304:
            return Page(304, None, None, etag, self.remaining)
        if status == 401:
            raise GitHubError("github_auth", "GitHub rejected the token (401): set a valid "
                              "token in settings.github.token", status)
        if status == 404:
            raise GitHubError("github_not_found", f"not found: {urlsplit(url).path}", status)
        if status >= 400:
            raise GitHubError("github_error", f"GitHub answered {status} for "
                              f"{urlsplit(url).path}", status)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise GitHubError("github_bad_response",
                              f"malformed JSON from {urlsplit(url).path}", status) from None
        return Page(status, data, next_link(_header(response, "link")), etag, self.remaining)
