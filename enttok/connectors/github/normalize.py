"""GitHub JSON to activity items, each with a stable identity so re-syncs never duplicate.

The same fact seen twice (a merged PR in the user's events and in the repo's
issue list) gets the same identity, and so is stored once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from attrs import frozen


@frozen
class ActivityItem:
    """One thing the user did, as the journal shows it."""

    identity: str
    kind: str
    repo: str | None
    number: int | None
    title: str | None
    url: str | None
    occurred_at: str
    raw: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "repo": self.repo, "number": self.number,
                "title": self.title, "url": self.url, "occurred_at": self.occurred_at}


def utc(timestamp: str | None) -> str | None:
    """A GitHub timestamp (ISO 8601) as C{YYYY-MM-DDTHH:MM:SSZ} in UTC."""
    if not timestamp:
        return None
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, Mapping) else None


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def _item(identity: str, kind: str, repo: str | None, number: int | None, title: str | None,
          url: str | None, when: str | None, raw: Mapping[str, Any]) -> ActivityItem | None:
    occurred = utc(when)
    if occurred is None:
        return None
    return ActivityItem(identity, kind, repo, number, title, url, occurred, raw)


def from_commit(repo: str, commit: Mapping[str, Any]) -> ActivityItem | None:
    """A commit from C{GET /repos/{o}/{r}/commits}."""
    sha = commit.get("sha")
    inner = commit.get("commit") or {}
    author = inner.get("author") or {}
    if not isinstance(sha, str):
        return None
    return _item(f"commit:{repo}:{sha}", "commit", repo, None,
                 _first_line(inner.get("message")), commit.get("html_url"),
                 author.get("date") or (inner.get("committer") or {}).get("date"),
                 {"sha": sha, "message": inner.get("message")})


def from_issue(repo: str, issue: Mapping[str, Any], login: str,
               merged_at: str | None = None) -> Iterator[ActivityItem]:
    """
    Items for an issue or pull request from C{GET /repos/{o}/{r}/issues} that the
    user authored: opened, and closed or merged (C{merged_at} from the pull's record).
    """
    if _login(issue.get("user")) != login or not isinstance(issue.get("number"), int):
        return
    number = issue["number"]
    is_pr = "pull_request" in issue
    prefix = "pr" if is_pr else "issue"
    raw = {"number": number, "state": issue.get("state"), "title": issue.get("title")}
    title, url = issue.get("title"), issue.get("html_url")
    for kind, when in ((f"{prefix}_opened", issue.get("created_at")),
                       (f"{prefix}_merged" if merged_at else f"{prefix}_closed",
                        merged_at or issue.get("closed_at"))):
        item = _item(f"{kind}:{repo}#{number}", kind, repo, number, title, url, when, raw)
        if item is not None:
            yield item


def from_event(event: Mapping[str, Any]) -> Iterator[ActivityItem]:
    """Items for one entry of C{GET /users/{login}/events}."""
    kind = event.get("type")
    repo = (event.get("repo") or {}).get("name")
    payload = event.get("payload") or {}
    when = event.get("created_at")
    if kind == "PullRequestEvent":
        pr = payload.get("pull_request") or {}
        action = payload.get("action")
        number = pr.get("number") or payload.get("number")
        mapped = {"opened": "pr_opened", "reopened": "pr_opened",
                  "closed": "pr_merged" if pr.get("merged") else "pr_closed"}.get(action or "")
        if mapped and isinstance(number, int):
            item = _item(f"{mapped}:{repo}#{number}", mapped, repo, number, pr.get("title"),
                         pr.get("html_url"), when, {"event_id": event.get("id")})
            if item:
                yield item
    elif kind == "IssuesEvent":
        issue = payload.get("issue") or {}
        mapped = {"opened": "issue_opened", "reopened": "issue_opened",
                  "closed": "issue_closed"}.get(payload.get("action") or "")
        if mapped and isinstance(issue.get("number"), int):
            item = _item(f"{mapped}:{repo}#{issue['number']}", mapped, repo, issue["number"],
                         issue.get("title"), issue.get("html_url"), when,
                         {"event_id": event.get("id")})
            if item:
                yield item
    elif kind == "PullRequestReviewEvent":
        review = payload.get("review") or {}
        pr = payload.get("pull_request") or {}
        if review.get("id") is not None and isinstance(pr.get("number"), int):
            item = _item(f"pr_reviewed:{repo}#{pr['number']}:{review['id']}", "pr_reviewed",
                         repo, pr["number"], pr.get("title"),
                         review.get("html_url") or pr.get("html_url"),
                         review.get("submitted_at") or when,
                         {"state": review.get("state"), "event_id": event.get("id")})
            if item:
                yield item
    elif kind in ("IssueCommentEvent", "PullRequestReviewCommentEvent", "CommitCommentEvent"):
        comment = payload.get("comment") or {}
        target = payload.get("issue") or payload.get("pull_request") or {}
        if comment.get("id") is not None:
            item = _item(f"comment:{repo}:{comment['id']}", "comment", repo,
                         target.get("number") if isinstance(target.get("number"), int)
                         else None, target.get("title") or _first_line(comment.get("body")),
                         comment.get("html_url"), comment.get("created_at") or when,
                         {"event_id": event.get("id"), "on": kind})
            if item:
                yield item
    elif kind == "ReleaseEvent" and payload.get("action") == "published":
        release = payload.get("release") or {}
        item = _item(f"release:{repo}:{release.get('id')}", "release_published", repo, None,
                     release.get("name") or release.get("tag_name"), release.get("html_url"),
                     release.get("published_at") or when, {"event_id": event.get("id")})
        if item:
            yield item


def event_repos(events: list[Mapping[str, Any]]) -> list[str]:
    """The repositories in the user's events, most recent first."""
    seen: dict[str, None] = {}
    for event in events:
        name = (event.get("repo") or {}).get("name")
        if isinstance(name, str) and "/" in name:
            seen.setdefault(name, None)
    return list(seen)
