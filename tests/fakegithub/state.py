"""The fake GitHub's data: repositories with their issues, pull requests and
commits, the user's events, and what a sync of them should store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from attrs import define, field

#: GitHub keeps at most this many events per user.
MAX_EVENTS = 300


def iso(epoch: float) -> str:
    """Epoch seconds as GitHub writes times: C{YYYY-MM-DDTHH:MM:SSZ}."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class GitHubState:
    """What the fake knows: one user (C{login}), its repositories and its events."""

    def __init__(self, login: str = "octo") -> None:
        self.login = login
        self.user_id = 583231
        self.repos: dict[str, Repo] = {}
        self.events: list[Event] = []
        self._ids = 1000

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
