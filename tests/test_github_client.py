"""The GitHub client against the fake GitHub.

Most tests serve the fake in memory (L{treq.testing.StubTreq}): requests reach
it without a socket, and the client's time (request timeouts, backoff,
rate-limit waits) and the fake's (delayed answers, rate-limit windows) run on
one L{Clock} the tests advance, so they are synchronous and every wait exact.
L{WireTests} run the client with a real treq agent against the fake on
127.0.0.1, for what only sockets show: the bytes on the wire, a dropped or
aborted connection, a host that cannot be reached.
"""

from __future__ import annotations

from typing import Any, cast

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from enttok.connectors.github.client import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    MAX_IN_FLIGHT,
    MAX_RETRIES,
    MAX_RETRY_AFTER,
    REQUEST_TIMEOUT,
    SECONDARY_WAIT,
    GitHubClient,
    GitHubError,
    Page,
    RateLimited,
    backoff,
    next_link,
)
from tests.fakegithub import FakeGitHub, pause, wait_until
from tests.fakegithub.server import MEMORY_ORIGIN

TOKEN = "ghp_fakeTOKENthatMustNeverLeak0123456789"
#: 2024-05-01T12:00:00Z
START = 1_714_564_800.0
#: The backoff before retries 1, 2, 3, 4 with the jitter fixed at 0.
BACKOFFS = [0.5, 1.0, 2.0, 4.0]


class NextLinkTests(SynchronousTestCase):
    def test_next_among_others(self) -> None:
        header = ('<https://api.github.com/repositories/1/issues?page=1>; rel="prev", '
                  '<https://api.github.com/repositories/1/issues?page=3>; rel="next", '
                  '<https://api.github.com/repositories/1/issues?page=5>; rel="last", '
                  '<https://api.github.com/repositories/1/issues?page=1>; rel="first"')
        self.assertEqual(next_link(header),
                         "https://api.github.com/repositories/1/issues?page=3")

    def test_documented_example(self) -> None:
        # The example of components/headers/link in GitHub's OpenAPI description.
        header = ('<https://api.github.com/resource?page=2>; rel="next", '
                  '<https://api.github.com/resource?page=5>; rel="last"')
        self.assertEqual(next_link(header), "https://api.github.com/resource?page=2")

    def test_spacing_and_commas_in_urls(self) -> None:
        header = '<https://h/x?a=1,2&page=2>;rel="next",<https://h/x?page=9>;  rel="last"'
        self.assertEqual(next_link(header), "https://h/x?a=1,2&page=2")

    def test_no_next(self) -> None:
        self.assertIsNone(next_link(None))
        self.assertIsNone(next_link(""))
        self.assertIsNone(next_link('<https://h/x?page=1>; rel="prev", '
                                    '<https://h/x?page=1>; rel="first"'))
        self.assertIsNone(next_link("garbage; rel=next"))


class BackoffTests(SynchronousTestCase):
    def test_doubles_from_the_base(self) -> None:
        self.assertEqual([backoff(n, 0.0) for n in range(1, 5)],
                         [BACKOFF_BASE * 2 ** (n - 1) / 2 for n in range(1, 5)])

    def test_jitter_adds_up_to_the_other_half(self) -> None:
        self.assertEqual(backoff(3, 0.5), 4 * BACKOFF_BASE * 0.75)
        self.assertLess(backoff(3, 0.999), 4 * BACKOFF_BASE)

    def test_bounded(self) -> None:
        self.assertEqual(backoff(40, 0.0), BACKOFF_MAX / 2)
        self.assertLess(backoff(40, 0.999), BACKOFF_MAX)
        self.assertGreater(backoff(40, 0.999), BACKOFF_MAX * 0.99)


class ClientTestCase(SynchronousTestCase):
    """The fake GitHub in memory; the client and the fake share one clock."""

    prefix = ""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.fake = FakeGitHub(self.clock, TOKEN, "octo", self.prefix, clock=self.clock)
        self.http = self.fake.stub()
        self.addCleanup(self.fake.close)
        self.fake.add_repo("octo/alpha")
        for n in range(5):
            self.fake.add_issue("octo/alpha", START - 86400 + n * 60)
        self.client = self.make_client(TOKEN)
        self.log: list[dict[str, Any]] = []
        observer = cast(ILogObserver, self.log.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def make_client(self, token: str | None, **options: Any) -> GitHubClient:
        options.setdefault("jitter", lambda: 0.0)
        return GitHubClient(self.http, self.clock, self.fake.base_url, token, **options)

    def issues_url(self, **params: Any) -> str:
        return self.client.url("/repos/octo/alpha/issues",
                               {"state": "all", "per_page": 2, **params})

    def pending(self) -> list[float]:
        """Delays of the timers (the client's and the fake's), in seconds from now."""
        return sorted(round(c.getTime() - self.clock.seconds(), 6)
                      for c in self.clock.getDelayedCalls())

    def page(self, d: Deferred[Page]) -> Page:
        self.fake.flush()
        return self.successResultOf(d)

    def sleep_through(self, seconds: float, requests: int) -> None:
        """Check that C{requests} were made and the client sleeps C{seconds}; advance."""
        self.fake.flush()
        self.assertEqual((len(self.fake.requests), self.pending()), (requests, [seconds]))
        self.clock.advance(seconds)
        self.fake.flush()

    def github_error(self, d: Deferred[Any], code: str) -> GitHubError:
        self.fake.flush()
        error = self.failureResultOf(d, GitHubError).value
        assert isinstance(error, GitHubError)
        self.assertEqual(error.code, code, error.message)
        self.assertNotIn(TOKEN, str(error))
        return error


class ResponseTests(ClientTestCase):
    def test_json_page_with_etag_and_link(self) -> None:
        page = self.page(self.client.get(self.issues_url()))
        self.assertEqual(page.status, 200)
        self.assertEqual([i["number"] for i in page.data], [5, 4])
        self.assertEqual(page.data[0]["user"]["login"], "octo")
        self.assertRegex(page.etag or "", r'^"[0-9a-f]{40}"$')
        self.assertEqual(page.next_url,
                         f"{MEMORY_ORIGIN}/repositories/{self.fake.repos['octo/alpha'].id}"
                         f"/issues?state=all&per_page=2&page=2")
        self.assertEqual(page.remaining, 4999)
        self.assertEqual(self.client.requests, 1)
        [request] = self.fake.requests
        self.assertTrue(request.authorized)
        self.assertEqual(request.query, {"state": "all", "per_page": "2"})
        self.assertEqual(request.headers["accept"], "application/vnd.github+json")
        self.assertEqual(request.headers["x-github-api-version"], "2022-11-28")
        self.assertTrue(request.headers["user-agent"].startswith("enttok/"))
        self.assertNotIn("if-none-match", request.headers)

    def test_following_links_reads_every_page(self) -> None:
        numbers: list[int] = []
        url: str | None = self.issues_url()
        while url is not None:
            page = self.page(self.client.get(url))
            numbers += [i["number"] for i in page.data]
            url = page.next_url
        self.assertEqual(numbers, [5, 4, 3, 2, 1])
        self.assertEqual([r.query.get("page") for r in self.fake.requests], [None, "2", "3"])

    def test_if_none_match_gives_304(self) -> None:
        first = self.page(self.client.get(self.issues_url()))
        second = self.page(self.client.get(self.issues_url(), first.etag))
        self.assertEqual((second.status, second.data, second.next_url), (304, None, None))
        self.assertEqual(second.etag, first.etag)
        self.assertEqual(self.fake.requests[1].headers["if-none-match"], first.etag)
        # A 304 costs nothing against the rate limit.
        self.assertEqual((second.remaining, self.fake.remaining), (4999, 4999))
        self.fake.add_issue("octo/alpha", START)
        third = self.page(self.client.get(self.issues_url(), first.etag))
        self.assertEqual(third.status, 200)
        self.assertNotEqual(third.etag, first.etag)

    def test_enterprise_prefix(self) -> None:
        self.fake.prefix = "/api/v3"
        client = self.make_client(TOKEN)
        self.assertTrue(client.base_url.endswith("/api/v3"))
        page = self.page(client.get(client.url("/user")))
        self.assertEqual(page.data["login"], "octo")
        self.assertEqual(self.fake.requests[0].path, "/api/v3/user")


class ErrorTests(ClientTestCase):
    def test_wrong_token(self) -> None:
        error = self.github_error(self.make_client("not-the-token").get(
            self.issues_url()), "github_auth")
        self.assertEqual(error.status, 401)
        self.assertEqual(len(self.fake.requests), 1)  # never retried
        self.assertFalse(self.fake.requests[0].authorized)
        self.assertEqual(self.pending(), [])

    def test_missing_token(self) -> None:
        self.github_error(self.make_client(None).get(self.issues_url()), "github_auth")
        self.assertNotIn("authorization", self.fake.requests[0].headers)

    def test_not_found(self) -> None:
        error = self.github_error(
            self.client.get(self.client.url("/repos/octo/missing/issues")), "github_not_found")
        self.assertIn("/repos/octo/missing/issues", error.message)
        self.assertEqual(len(self.fake.requests), 1)

    def test_malformed_json(self) -> None:
        self.fake.add_fault("malformed")
        self.github_error(self.client.get(self.issues_url()), "github_bad_response")
        self.assertEqual(len(self.fake.requests), 1)

    def test_forbidden_without_rate_limit_is_final(self) -> None:
        self.fake.fail(status=403)
        error = self.github_error(self.client.get(self.issues_url()), "github_error")
        self.assertEqual(error.status, 403)
        self.assertEqual(len(self.fake.requests), 1)

    def test_link_to_another_host_is_refused(self) -> None:
        for url in ("http://127.0.0.2:9/repositories/1/issues?page=2",
                    f"{MEMORY_ORIGIN.replace('http:', 'https:')}/repositories/1/issues?page=2",
                    f"{MEMORY_ORIGIN}:81/repositories/1/issues?page=2"):
            error = self.failureResultOf(self.client.get(url), GitHubError).value
            self.assertEqual(error.code, "github_bad_response")
        self.assertEqual(self.fake.requests, [])

    def test_next_link_from_the_server_to_another_host(self) -> None:
        self.fake.link_root = "http://evil.example:8080/api"
        page = self.page(self.client.get(self.issues_url()))
        self.assertTrue((page.next_url or "").startswith("http://evil.example:8080/"))
        self.failureResultOf(self.client.get(page.next_url), GitHubError)
        self.assertEqual(len(self.fake.requests), 1)


class RetryTests(ClientTestCase):
    def test_server_errors_retried_with_backoff(self) -> None:
        self.fake.fail(times=3, status=502)
        d = self.client.get(self.issues_url())
        # Backoff doubles (jitter fixed at 0: half of 1, 2, 4 s).
        for n, seconds in enumerate(BACKOFFS[:3], 1):
            self.sleep_through(seconds, n)
        page = self.page(d)
        self.assertEqual(page.status, 200)
        self.assertEqual([r.status for r in self.fake.requests], [502, 502, 502, 200])
        self.assertEqual(self.client.requests, 4)

    def test_backoff_is_jittered(self) -> None:
        jittery = self.make_client(TOKEN, jitter=lambda: 0.999)
        self.fake.fail(times=3)
        d = jittery.get(self.issues_url())
        self.sleep_through(0.9995, 1)  # ceiling 1: between 0.5 and 1
        self.sleep_through(1.999, 2)  # ceiling 2
        self.sleep_through(3.998, 3)  # ceiling 4
        self.assertEqual(self.page(d).status, 200)

    def test_retries_exhausted(self) -> None:
        self.fake.fail(times=None, status=500)
        d = self.client.get(self.issues_url())
        for n, seconds in enumerate(BACKOFFS, 1):
            self.sleep_through(seconds, n)
        error = self.github_error(d, "github_unavailable")
        self.assertEqual(error.status, 500)
        self.assertEqual(len(self.fake.requests), MAX_RETRIES + 1)
        self.assertEqual(self.pending(), [])

    def test_fewer_retries(self) -> None:
        self.fake.fail(times=None, status=500)
        d = self.make_client(TOKEN, retries=1).get(self.issues_url())
        self.sleep_through(0.5, 1)
        self.github_error(d, "github_unavailable")
        self.assertEqual(len(self.fake.requests), 2)

    def test_dropped_connection_retried(self) -> None:
        self.fake.add_fault("drop", times=2)
        d = self.client.get(self.issues_url())
        self.sleep_through(0.5, 1)
        self.sleep_through(1.0, 2)
        self.assertEqual(self.page(d).status, 200)
        self.assertEqual([r.status for r in self.fake.requests], [0, 0, 200])

    def test_dropped_connections_exhaust_retries(self) -> None:
        self.fake.add_fault("drop", times=None)
        d = self.client.get(self.issues_url())
        for n, seconds in enumerate(BACKOFFS, 1):
            self.sleep_through(seconds, n)
        error = self.github_error(d, "github_unavailable")
        self.assertIn("did not answer", error.message)
        self.assertEqual(len(self.fake.requests), MAX_RETRIES + 1)

    def test_timeout_then_retry(self) -> None:
        self.fake.add_fault("hang")
        d = self.client.get(self.issues_url())
        self.sleep_through(REQUEST_TIMEOUT, 1)
        # The client gave up on the first request by closing its connection.
        self.assertTrue(self.fake.requests[0].lost)
        self.sleep_through(0.5, 1)
        self.assertEqual(self.page(d).status, 200)
        self.assertEqual(len(self.fake.requests), 2)
        self.assertEqual(self.fake.in_flight, 0)

    def test_no_timeout_before_the_deadline(self) -> None:
        self.fake.add_fault("delay", seconds=REQUEST_TIMEOUT - 1)
        d = self.client.get(self.issues_url())
        self.assertEqual(self.pending(), [REQUEST_TIMEOUT - 1, REQUEST_TIMEOUT])
        self.clock.advance(REQUEST_TIMEOUT - 1)
        self.assertEqual(self.page(d).status, 200)
        self.assertEqual((len(self.fake.requests), self.pending()), (1, []))

    def test_timeouts_exhaust_retries(self) -> None:
        self.fake.add_fault("hang", times=None)
        d = self.client.get(self.issues_url())
        for n, seconds in enumerate(BACKOFFS, 1):
            self.sleep_through(REQUEST_TIMEOUT, n)
            self.sleep_through(seconds, n)
        self.sleep_through(REQUEST_TIMEOUT, MAX_RETRIES + 1)
        error = self.github_error(d, "github_unavailable")
        self.assertIn("TimeoutError", error.message)
        self.assertTrue(all(r.lost for r in self.fake.requests))

    def test_late_answer_after_timeout_is_ignored(self) -> None:
        self.fake.add_fault("delay", seconds=REQUEST_TIMEOUT + 1)
        d = self.make_client(TOKEN, retries=0).get(self.issues_url())
        self.clock.advance(REQUEST_TIMEOUT)
        self.github_error(d, "github_unavailable")
        self.clock.advance(1)  # the fake's late answer finds the connection gone
        self.fake.flush()
        self.assertEqual((self.fake.requests[0].lost, self.fake.requests[0].status),
                         (True, None))


class RateLimitTests(ClientTestCase):
    def test_retry_after_honoured(self) -> None:
        self.fake.add_fault("retry_after", seconds=7)
        d = self.client.get(self.issues_url())
        self.sleep_through(7.0, 1)
        self.assertEqual(self.page(d).status, 200)
        self.assertEqual([r.status for r in self.fake.requests], [429, 200])

    def test_retry_after_too_long(self) -> None:
        self.fake.add_fault("retry_after", seconds=MAX_RETRY_AFTER + 1)
        error = self.github_error(self.client.get(self.issues_url()), "github_rate_limited")
        self.assertEqual(error.status, 429)
        self.assertEqual(len(self.fake.requests), 1)

    def test_secondary_limit_without_retry_after(self) -> None:
        """A 403 or 429 saying "secondary rate limit" waits a minute and retries;
        a plain 403 is final at once."""
        for status in (403, 429):
            self.fake.requests.clear()
            self.fake.add_fault("secondary", status=status)
            d = self.client.get(self.issues_url())
            self.sleep_through(SECONDARY_WAIT, 1)
            self.assertEqual(self.page(d).status, 200)
            self.assertEqual([r.status for r in self.fake.requests], [status, 200])
        self.fake.requests.clear()
        self.fake.fail(status=403)
        error = self.github_error(self.client.get(self.issues_url()), "github_error")
        self.assertEqual((error.status, len(self.fake.requests)), (403, 1))

    def test_secondary_limit_that_persists(self) -> None:
        self.fake.add_fault("secondary", status=403, times=None)
        d = self.client.get(self.issues_url())
        for n in range(1, MAX_RETRIES + 1):
            self.sleep_through(SECONDARY_WAIT, n)
        error = self.github_error(d, "github_rate_limited")
        self.assertEqual((error.status, len(self.fake.requests)), (403, MAX_RETRIES + 1))

    def test_near_reset_waits_then_succeeds(self) -> None:
        self.fake.exhaust_rate_limit(30)
        d = self.client.get(self.issues_url())
        self.sleep_through(31.0, 1)  # until the reset, and one second more
        page = self.page(d)
        self.assertEqual([r.status for r in self.fake.requests], [403, 200])
        self.assertEqual(page.remaining, 4999)
        self.assertEqual(self.client.remaining, 4999)

    def test_far_reset_raises_rate_limited(self) -> None:
        self.fake.exhaust_rate_limit(3600)
        d = self.client.get(self.issues_url())
        self.fake.flush()
        error = self.failureResultOf(d, RateLimited).value
        assert isinstance(error, RateLimited)
        self.assertEqual(error.reset_at, START + 3600)
        self.assertEqual(self.client.remaining, 0)
        self.assertEqual(len(self.fake.requests), 1)
        self.assertEqual(self.pending(), [])

    def test_remaining_is_tracked(self) -> None:
        for expected in (4999, 4998, 4997):
            page = self.page(self.client.get(self.issues_url()))
            self.assertEqual((page.remaining, self.client.remaining), (expected, expected))


class ConcurrencyTests(ClientTestCase):
    def test_at_most_four_in_flight(self) -> None:
        self.fake.add_fault("hold", times=None)
        ds = [self.client.get(self.issues_url(page=n)) for n in range(1, 11)]
        self.fake.flush()
        self.assertEqual((MAX_IN_FLIGHT, self.fake.held, len(self.fake.requests)), (4, 4, 4))
        self.fake.faults.clear()
        self.assertEqual(self.fake.release(), 4)
        self.fake.flush()
        self.assertEqual([self.successResultOf(d).status for d in ds], [200] * 10)
        self.assertEqual(len(self.fake.requests), 10)
        self.assertEqual(self.fake.max_in_flight, 4)


class SecrecyTests(ClientTestCase):
    def test_token_never_logged_or_recorded(self) -> None:
        self.fake.fail(times=None, path="/issues$")
        self.fake.add_fault("malformed", path="/user$")
        failures = [
            self.client.get(self.issues_url()),
            self.client.get(self.client.url("/user")),
            self.client.get(self.client.url("/repos/octo/nope/commits")),
            self.make_client(TOKEN + "-wrong").get(self.client.url("/users/octo")),
        ]
        for n, seconds in enumerate(BACKOFFS, 4):
            self.sleep_through(seconds, n)
        errors = [self.failureResultOf(d, GitHubError).value for d in failures]
        self.assertEqual([getattr(e, "code", None) for e in errors],
                         ["github_unavailable", "github_bad_response",
                          "github_not_found", "github_auth"])
        text = " ".join([*(formatEvent(e) or "" for e in self.log),
                         *(repr(e) for e in self.log),
                         *(f"{e!r} {getattr(e, 'message', '')}" for e in errors),
                         *(repr(r) for r in self.fake.requests)])
        self.assertNotIn(TOKEN, text)
        self.assertNotIn(TOKEN.lower(), text.lower())
        self.assertEqual(sorted(r.authorized for r in self.fake.requests), [False] + [True] * 7)


class WireTests(TestCase):
    """
    A real treq agent and the fake on 127.0.0.1: network I/O on the real
    reactor, the client's time on a L{Clock}.
    """

    timeout = 15

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.fake = FakeGitHub(reactor, TOKEN, "octo", clock=self.clock)
        self.fake.listen()
        self.addCleanup(self.fake.close)
        self.fake.add_repo("octo/alpha")
        for n in range(5):
            self.fake.add_issue("octo/alpha", START - 86400 + n * 60)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    def make_client(self, base_url: str | None = None, retries: int = MAX_RETRIES,
                    ) -> GitHubClient:
        return GitHubClient(self.http, self.clock, base_url or self.fake.base_url, TOKEN,
                            jitter=lambda: 0.0, retries=retries)

    def pending(self) -> list[float]:
        return sorted(round(c.getTime() - self.clock.seconds(), 6)
                      for c in self.clock.getDelayedCalls())

    async def github_error(self, d: Deferred[Any], code: str) -> GitHubError:
        error = await self.assertFailure(d, GitHubError)
        self.assertEqual(error.code, code, error.message)
        return error

    async def test_pages_and_a_conditional_request(self) -> None:
        client = self.make_client()
        first_url = client.url("/repos/octo/alpha/issues", {"state": "all", "per_page": 2})
        url: str | None = first_url
        pages: list[Page] = []
        while url is not None:
            pages.append(await client.get(url))
            url = pages[-1].next_url
        self.assertEqual([i["number"] for p in pages for i in p.data], [5, 4, 3, 2, 1])
        again = await client.get(first_url, pages[0].etag)
        self.assertEqual((again.status, again.etag), (304, pages[0].etag))
        self.assertEqual([r.status for r in self.fake.requests], [200, 200, 200, 304])
        self.assertTrue(all(r.authorized for r in self.fake.requests))
        self.assertEqual(self.fake.requests[0].headers["host"], f"127.0.0.1:{self.fake.port}")

    async def test_dropped_connection_retried(self) -> None:
        self.fake.add_fault("drop")
        d = self.make_client().get(self.make_client().url("/user"))
        await wait_until(reactor, lambda: self.pending() == [0.5], what="the backoff")
        self.clock.advance(0.5)
        page = await d
        self.assertEqual(page.data["login"], "octo")
        self.assertEqual([r.status for r in self.fake.requests], [0, 200])

    async def test_timeout_aborts_the_connection(self) -> None:
        self.fake.add_fault("hang")
        d = self.make_client(retries=0).get(self.make_client().url("/user"))
        await wait_until(reactor, lambda: len(self.fake.requests) == 1, what="the request")
        self.clock.advance(REQUEST_TIMEOUT)
        await self.github_error(d, "github_unavailable")
        await wait_until(reactor, lambda: self.fake.requests[0].lost, what="the abort")
        self.assertEqual(self.fake.in_flight, 0)

    async def test_timeout_while_connecting(self) -> None:
        # Canceled before it is connected, the agent fails with DNSLookupError or
        # ConnectingCancelledError: still a timeout, to be retried.
        client = self.make_client(retries=0)
        d = client.get(client.url("/user"))
        self.clock.advance(REQUEST_TIMEOUT)
        error = await self.github_error(d, "github_unavailable")
        self.assertIn("TimeoutError", error.message)
        await pause(reactor, 0.05)
        self.assertEqual(self.fake.requests, [])

    async def test_unknown_host_is_unavailable(self) -> None:
        # Offline, or a mistyped Enterprise host: retried, then github_unavailable.
        client = self.make_client("http://enttok-test.invalid/api/v3", retries=0)
        error = await self.github_error(client.get(client.url("/user")), "github_unavailable")
        self.assertIn("DNSLookupError", error.message)
