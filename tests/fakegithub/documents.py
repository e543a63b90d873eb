"""The documents the fake serves, built from GitHub's documented examples (the
fixtures in C{tests/data/github/}), and the events whose payloads are such documents."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from tests.fakegithub.state import Commit, Event, GitHubState, Issue, Repo, iso

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "github"
#: What the documented examples use, replaced in every rendered response.
EXAMPLE_API = "https://api.github.com"
EXAMPLE_REPO = "octocat/Hello-World"
EXAMPLE_LOGIN = "octocat"
WEB = "https://github.com"


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


class GitHubDocuments(GitHubState):
    """The state's events and documents, rendered as GitHub would serve them."""

    def __init__(self, login: str = "octo") -> None:
        super().__init__(login)
        #: Include C{pull_request.merged_at} in issue lists (the example leaves it out).
        self.issue_merged_at = False

    @property
    def listening(self) -> bool:
        """Whether the fake serves (its URL then replaces the examples' API root)."""
        return False

    @property
    def base_url(self) -> str:
        """The API root URL (the server's: see L{tests.fakegithub.FakeGitHub})."""
        raise NotImplementedError("not serving")

    # Events

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

    # Rendering (from the documented examples)

    def _subs(self, repo: str, number: int | None = None) -> list[tuple[str, str]]:
        subs = [(EXAMPLE_API, self.base_url if self.listening else EXAMPLE_API),
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
