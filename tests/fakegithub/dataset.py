"""Generated datasets for the fake GitHub (the kill test and the benchmark)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tests.fakegithub.server import FakeGitHub
from tests.fakegithub.state import MAX_EVENTS, iso

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
