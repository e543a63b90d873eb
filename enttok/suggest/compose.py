"""Turning a day's activity, open tasks and notes into ready-to-insert Markdown lines.

Pure functions: the same inputs always give the same suggestions, each with
its sources and the reason it was made. No language model is involved.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import PurePosixPath
from typing import Any

from attrs import frozen

MAX_COMMIT_MESSAGES = 3


@frozen
class Note:
    """What composing needs to know about one note."""

    path: str
    title: str
    date: str | None
    tasks: tuple[Mapping[str, Any], ...] = ()
    links: tuple[str, ...] = ()


@frozen
class Target:
    """The note the suggestions are for (possibly not written yet)."""

    path: str | None
    text: str
    links: frozenset[str]
    tasks: frozenset[str]

    def mentions(self, *needles: str | None) -> bool:
        """
        Whether the note already contains any of C{needles} (case-insensitive) as a
        whole reference: C{o/r#1} is not in C{o/r#12}, nor C{o/r#12} in C{xo/r#12}.
        """
        return any(n and re.search(_NOT_AFTER_NAME + re.escape(n) + _NOT_BEFORE_NAME,
                                   self.text, re.IGNORECASE) for n in needles)

    def mentions_commit(self, sha: str) -> bool:
        """Whether the note holds C{sha} (abbreviated or in full, e.g. in a commit URL)."""
        return bool(sha) and re.search(rf"(?<![0-9a-z]){re.escape(sha)}", self.text,
                                       re.IGNORECASE) is not None

    def links_to(self, note: Note) -> bool:
        stem = PurePosixPath(note.path).stem
        # Markdown links keep the ".md" ([x](projects/Plan.md)); wikilinks usually do not.
        return bool({normalize(stem), normalize(note.title), normalize(f"{stem}.md"),
                     normalize(note.path), normalize(note.path.removesuffix(".md"))}
                    & self.links)


# Around a reference: no ASCII name character (repository names also hold . and -
# inside; a Korean particle right after a reference, as in "o/r#12에서", is fine).
_NOT_AFTER_NAME = r"(?<![0-9A-Za-z_.-])"
_NOT_BEFORE_NAME = r"(?![0-9A-Za-z_]|[.-][0-9A-Za-z_])"


@frozen
class Suggestion:
    id: str
    kind: str
    text: str
    sources: tuple[Mapping[str, Any], ...]
    score: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "text": self.text,
                "sources": [dict(s) for s in self.sources], "score": self.score,
                "reason": self.reason}


def normalize(text: str) -> str:
    """NFC, lower case, single spaces: how tasks and links are compared."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().lower()


def _id(kind: str, ref: str) -> str:
    return hashlib.sha1(f"{kind}\n{ref}".encode()).hexdigest()[:12]


def wikilink(note: Note) -> str:
    """An Obsidian link that resolves by file name, showing the title."""
    stem = PurePosixPath(note.path).stem
    return f"[[{stem}]]" if stem == note.title else f"[[{stem}|{note.title}]]"


def target_for(path: str | None, text: str, links: Iterable[str],
               tasks: Iterable[str]) -> Target:
    return Target(path, text, frozenset(normalize(link) for link in links),
                  frozenset(normalize(t) for t in tasks))


# GitHub activity

_AUTHORED = {"pr_opened": "Opened", "pr_merged": "Merged", "pr_closed": "Closed",
             "issue_opened": "Opened", "issue_closed": "Closed"}


def _authored_verb(kinds: set[str]) -> str:
    finished = [k for k in ("pr_merged", "pr_closed", "issue_closed") if k in kinds]
    opened = "pr_opened" in kinds or "issue_opened" in kinds
    if finished and opened:
        return f"Opened and {_AUTHORED[finished[0]].lower()}"
    return _AUTHORED[finished[0] if finished else sorted(kinds)[0]]


def activity_suggestions(items: Sequence[Mapping[str, Any]], target: Target) -> list[Suggestion]:
    """
    One line per pull request or issue (what the user did to it), one per kind
    of interaction (reviews, comments), and one per repository for commits.
    """
    return [s for _, s in sorted(timed_activity(items, target), key=lambda pair: pair[0])]


def timed_activity(items: Sequence[Mapping[str, Any]],
                   target: Target) -> list[tuple[str, Suggestion]]:
    """L{activity_suggestions}, each with the time of its first item (unsorted)."""
    groups: dict[tuple[str, str, int | None], list[Mapping[str, Any]]] = {}
    for item in items:
        kind = item["kind"]
        family = ("authored" if kind in _AUTHORED else
                  "commit" if kind == "commit" else kind)
        number = None if family == "commit" else item.get("number")
        groups.setdefault((family, item.get("repo") or "", number), []).append(item)
    timed: list[tuple[str, Suggestion]] = []
    for (family, repo, number), members in groups.items():
        suggestion = (_commits(repo, members, target) if family == "commit"
                      else _interaction(family, repo, number, members, target))
        if suggestion is not None:
            timed.append((min(m["occurred_at"] for m in members), suggestion))
    return timed


def _sources(members: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple({"type": "github", "ref": m.get("id") or m["kind"], "url": m.get("url")}
                 for m in members)


def _interaction(family: str, repo: str, number: int | None,
                 members: Sequence[Mapping[str, Any]], target: Target) -> Suggestion | None:
    latest = max(members, key=lambda m: m["occurred_at"])
    url, title = latest.get("url"), latest.get("title") or ""
    is_pr = any(m["kind"].startswith("pr_") for m in members) or "/pull/" in (url or "")
    noun = "PR" if is_pr else "issue"
    ref = f"{repo}#{number}" if number is not None else repo
    if target.mentions(url, ref if number is not None else None):
        return None
    if family == "authored":
        verb = f"{_authored_verb({m['kind'] for m in members})} {noun}"
    elif family == "pr_reviewed":
        verb = "Reviewed PR"
    elif family == "comment":
        times = f" {len(members)} times" if len(members) > 1 else ""
        verb = f"Commented{times} on" + (f" {noun}" if number is not None else "")
    elif family == "release_published":
        verb = "Published release"
    else:
        verb = family.replace("_", " ").capitalize()
    link = f"[#{number}]({url})" if number is not None and url else (
        f"#{number}" if number is not None else "")
    # Without a number (a release) the title carries the link.
    title_part = (f" *{title}*" if number is not None or not url else f" [{title}]({url})"
                  ) if title else ""
    text = f"- {verb} {link}{title_part} in {repo}".replace("  ", " ")
    return Suggestion(_id("activity", f"{family}:{ref}"), "activity", text, _sources(members),
                      1.0, f"{len(members)} GitHub event(s) on {ref} that day")


def _commits(repo: str, members: Sequence[Mapping[str, Any]], target: Target) -> Suggestion | None:
    ordered = sorted(members, key=lambda m: m["occurred_at"])
    shas = [str(m.get("id", "")).rsplit(":", 1)[-1][:7] for m in ordered]
    count = len(ordered)
    noun = "commit" if count == 1 else "commits"
    commit_url = str(ordered[0].get("url") or "")
    where = (f"[{repo}]({commit_url.split('/commit/')[0]}/commits)"
             if "/commit/" in commit_url else repo)
    # The line itself names no sha: once inserted, it is found by "commits to <where>".
    if target.mentions(f"commits to {repo}", f"commit to {repo}", f"commits to {where}",
                       f"commit to {where}") or any(
            target.mentions_commit(s) for s in shas if len(s) == 7):
        return None
    messages = [str(m["title"]) for m in ordered if m.get("title")][:MAX_COMMIT_MESSAGES]
    more = "; …" if count > len(messages) else ""
    summary = f": {'; '.join(messages)}{more}" if messages else ""
    return Suggestion(_id("commits", repo), "commits",
                      f"- {count} {noun} to {where}{summary}", _sources(ordered), 0.9,
                      f"{count} commit(s) authored that day")


# Notes

def carryover_suggestions(previous: Sequence[Note], target: Target,
                          today: date) -> list[Suggestion]:
    """
    Unchecked tasks of earlier daily notes (newest first) that were not done or
    carried on later, and are not already in the target note.
    """
    seen = set(target.tasks)
    out: list[Suggestion] = []
    for note in sorted(previous, key=lambda n: n.date or "", reverse=True):
        for task in note.tasks:
            key = normalize(str(task.get("text", "")))
            if not key or key in seen:
                continue
            seen.add(key)
            if task.get("done"):
                continue
            days = (today - date.fromisoformat(note.date)).days if note.date else None
            ago = f"{days} day{'s' if days != 1 else ''} ago" if days is not None else ""
            out.append(Suggestion(
                _id("task", key), "task", f"- [ ] {task['text']}",
                ({"type": "task", "ref": f"{note.path}:{task.get('line')}",
                  "path": note.path},),
                0.8, f"still open in {wikilink(note)} ({ago})".replace(" ()", "")))
    return out


def edited_suggestions(edited: Sequence[Note], target: Target) -> list[Suggestion]:
    """Notes changed that day (other than the target)."""
    return [Suggestion(_id("edited", n.path), "edited", f"- Edited {wikilink(n)}",
                       ({"type": "note", "ref": n.path, "path": n.path},), 0.6,
                       "modified that day")
            for n in edited if n.path != target.path and not target.links_to(n)]


def related_suggestions(hits: Sequence[Mapping[str, Any]], target: Target,
                        exclude: set[str], limit: int) -> list[Suggestion]:
    """Notes that hybrid search finds for the day's note and activity."""
    out: list[Suggestion] = []
    for hit in hits:
        note = Note(hit["path"], hit["title"], hit.get("date"))
        if note.path in exclude or note.path == target.path or target.links_to(note):
            continue
        ranks = hit.get("ranks") or {}
        how = ", ".join(f"{mode} #{rank}" for mode, rank in ranks.items() if rank)
        out.append(Suggestion(_id("related", note.path), "related",
                              f"- Related: {wikilink(note)}",
                              ({"type": "note", "ref": note.path, "path": note.path},),
                              round(0.5 - 0.01 * len(out), 2),
                              f"matches today's note and activity ({how})"))
        if len(out) >= limit:
            break
    return out
