"""The day's work from every connector: local commits by repository and topic,
meetings from the calendar, and GitHub activity, in the order they happened.

Pure functions over the rows of L{enttok.suggest.store.day_activity}.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from enttok.suggest.compose import MAX_COMMIT_MESSAGES, Suggestion, Target, _id, timed_activity

#: Branches that say nothing about what a commit is about.
_MAINLINE = {"main", "master", "develop", "development", "dev", "trunk", "head", "release"}
#: "feat(calendar): ..." or "fix(api)!: ...": the scope is the topic.
_CONVENTIONAL = re.compile(r"^\s*[A-Za-z]+\(([^()]{1,40})\)!?:\s")
#: "feature/calendar-sync" -> "calendar-sync".
_BRANCH_PREFIX = re.compile(r"^(?:feature|feat|fix|bugfix|hotfix|chore|topic|wip|users?/[^/]+)/",
                            re.IGNORECASE)


def _raw(item: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = item.get("raw")
    return raw if isinstance(raw, Mapping) else {}


def commit_topic(item: Mapping[str, Any]) -> str | None:
    """
    What a local commit is about: its conventional-commit scope, else its
    branch (other than the main line), else C{None}.
    """
    scope = _CONVENTIONAL.match(str(item.get("title") or ""))
    if scope:
        return scope.group(1).strip()
    raw = _raw(item)
    branches = raw.get("branches") or [raw.get("branch")]
    for branch in branches:
        name = str(branch or "").removeprefix("refs/heads/")
        if name and name.lower() not in _MAINLINE:
            return _BRANCH_PREFIX.sub("", name) or name
    return None


def _shas(item: Mapping[str, Any]) -> list[str]:
    raw = _raw(item)
    shas = raw.get("shas") or [raw.get("sha")]
    return [str(s) for s in shas if s]


def git_commit_groups(items: Sequence[Mapping[str, Any]],
                      target: Target) -> list[tuple[str, Suggestion]]:
    """One line per repository and topic of the day's local commits (with its first time)."""
    groups: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for item in sorted(items, key=lambda i: i["occurred_at"]):
        groups.setdefault((str(item.get("repo") or "?"), commit_topic(item)), []).append(item)
    timed = []
    for (repo, topic), members in groups.items():
        suggestion = _git_line(repo, topic, members, target)
        if suggestion is not None:
            timed.append((members[0]["occurred_at"], suggestion))
    return timed


def _git_line(repo: str, topic: str | None, members: Sequence[Mapping[str, Any]],
              target: Target) -> Suggestion | None:
    where = f"{repo} ({topic})" if topic else repo
    shas = [sha for m in members for sha in _shas(m)]
    # "commits to enttok" must not match a line about "commits to enttok (calendar)".
    told = re.compile(rf"(?<!\w)commits? to {re.escape(where)}(?::|[ \t]*$)",
                      re.IGNORECASE | re.MULTILINE)
    if told.search(target.text) or any(
            target.mentions_commit(sha[:7]) for sha in shas if len(sha) >= 7):
        return None
    count = len(members)
    noun = "commit" if count == 1 else "commits"
    messages = [str(m["title"]) for m in members if m.get("title")][:MAX_COMMIT_MESSAGES]
    more = "; …" if count > len(messages) else ""
    summary = f": {'; '.join(messages)}{more}" if messages else ""
    stats = Counter[str]()
    for m in members:
        raw = _raw(m)
        for key in ("files_changed", "insertions", "deletions"):
            stats[key] += int(raw.get(key) or 0)
    sources = tuple({"type": "git", "ref": f"{repo}:{(_shas(m) or [str(m.get('id'))])[0]}"}
                    for m in members)
    return Suggestion(
        _id("git", f"{repo}\n{topic}"), "commits", f"- {count} {noun} to {where}{summary}",
        sources, 0.9, f"{count} local commit(s) that day ({stats['files_changed']} files, "
                      f"+{stats['insertions']} -{stats['deletions']})")


def meeting_lines(items: Sequence[Mapping[str, Any]], target: Target,
                  zone: tzinfo) -> list[tuple[str, Suggestion]]:
    """One line per calendar event of the day, with its local time."""
    timed = []
    for item in items:
        raw = _raw(item)
        title = str(item.get("title") or "").strip() or "(no title)"
        if item.get("title") and target.mentions(title):
            continue
        if raw.get("all_day"):
            when = "All day:"
        else:
            start = _local(item["occurred_at"], zone)
            end = _local(str(raw.get("end") or item["occurred_at"]), zone)
            when = f"{start:%H:%M}-{end:%H:%M}" if end > start else f"{start:%H:%M}"
        place = f" ({raw['location']})" if raw.get("location") else ""
        ref = str(item.get("id") or "")
        source: dict[str, Any] = {"type": "calendar", "ref": ref}
        timed.append((item["occurred_at"], Suggestion(
            _id("meeting", ref), "meeting", f"- {when} {title}{place}", (source,), 0.95,
            f"in the calendar {raw.get('calendar_name') or ''}".rstrip())))
    return timed


def _local(iso_utc: str, zone: tzinfo) -> datetime:
    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).astimezone(zone)


def day_suggestions(items: Sequence[Mapping[str, Any]], target: Target,
                    zone: tzinfo) -> list[Suggestion]:
    """
    The day's lines from every source, in the order they began: GitHub
    activity, local commits by repository and topic, meetings. A commit both
    pushed to GitHub and found locally is told once, from the local record.
    """
    by_source: dict[str, list[Mapping[str, Any]]] = {}
    for item in items:
        by_source.setdefault(str(item.get("source") or "github"), []).append(item)
    local = by_source.get("git", [])
    local_shas = {sha for item in local for sha in _shas(item)}
    github = [i for i in by_source.get("github", [])
              if not (i["kind"] == "commit" and _github_sha(i) in local_shas)]
    timed = [*timed_activity(github, target), *git_commit_groups(local, target),
             *meeting_lines([i for i in by_source.get("calendar", []) if i["kind"] == "event"],
                            target, zone)]
    return [s for _, s in sorted(timed, key=lambda pair: pair[0])]


def _github_sha(item: Mapping[str, Any]) -> str:
    """The sha of a GitHub commit item (C{commit:owner/repo:sha})."""
    return str(item.get("id") or "").rsplit(":", 1)[-1]
