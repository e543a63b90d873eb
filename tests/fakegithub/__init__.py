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

The modules: L{state} (the data), L{documents} (the events and responses, from
the examples), L{server} (HTTP, faults, rate limit, routes), L{dataset}
(generated data) and C{__main__} (the program).
"""

from tests.fakegithub.dataset import DAY, populate, since_for
from tests.fakegithub.documents import GitHubDocuments, templates
from tests.fakegithub.server import FakeGitHub, Fault, Recorded, pause, wait_until
from tests.fakegithub.state import MAX_EVENTS, Commit, Event, GitHubState, Issue, Repo, iso

__all__ = [
    "DAY",
    "MAX_EVENTS",
    "Commit",
    "Event",
    "FakeGitHub",
    "Fault",
    "GitHubDocuments",
    "GitHubState",
    "Issue",
    "Recorded",
    "Repo",
    "iso",
    "pause",
    "populate",
    "since_for",
    "templates",
    "wait_until",
]
