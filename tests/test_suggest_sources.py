"""Suggestions from every source: local commits by repository and topic, meetings, GitHub."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors import activity as activity_store
from enttok.connectors.activity import Activity
from enttok.connectors.calendar.parse import Window, read_calendars
from enttok.jobs.model import SUCCEEDED
from enttok.settings import SettingsStore
from enttok.suggest.compose import target_for
from enttok.suggest.day import commit_topic, day_suggestions, git_commit_groups, meeting_lines
from enttok.threads import run_inline
from tests.test_suggest_job import DAY, REPO, SHA1, SHA2, TARGET, WEB, Day, texts

SEOUL = ZoneInfo("Asia/Seoul")
LOCAL_SHAS = ["aaaa111" + "0" * 33, "bbbb222" + "0" * 33, "cccc333" + "0" * 33,
              "dddd444" + "0" * 33]


def target(text: str = "") -> Any:
    return target_for(TARGET, text, (), ())


def commit(sha: str, subject: str, when: str, repo: str = "enttok",
           branch: str = "main", files: int = 1, plus: int = 10, minus: int = 2,
           extra_shas: tuple[str, ...] = ()) -> dict[str, Any]:
    """A local git activity row as enttok.suggest.store.day_activity gives it."""
    raw = {"sha": sha, "shas": [sha, *extra_shas], "patch_id": f"p{sha[:6]}", "branch": branch,
           "branches": [branch], "repo": repo, "files": ["a.py"] * files,
           "files_changed": files, "insertions": plus, "deletions": minus,
           "author_email": "me@example.com"}
    return {"source": "git", "kind": "commit", "repo": repo, "number": None, "title": subject,
            "url": None, "occurred_at": when, "id": f"p{sha[:6]}", "raw": raw}


def event(uid: str, title: str | None, start: str, end: str, all_day: bool = False,
          location: str | None = None) -> dict[str, Any]:
    raw = {"start": start, "end": end, "all_day": all_day, "location": location,
           "calendar": "/cal/work.ics", "calendar_name": "업무", "uid": uid,
           "recurrence_id": None}
    return {"source": "calendar", "kind": "event", "repo": None, "number": None,
            "title": title, "url": None, "occurred_at": start, "id": f"{uid}:{start}",
            "raw": raw}


def github_commit(sha: str, subject: str, when: str) -> dict[str, Any]:
    return {"source": "github", "kind": "commit", "repo": REPO, "number": None,
            "title": subject, "url": f"{WEB}/{REPO}/commit/{sha}", "occurred_at": when,
            "id": f"commit:{REPO}:{sha}", "raw": {}}


class TopicTests(SynchronousTestCase):
    def test_conventional_scope_then_branch_then_none(self) -> None:
        self.assertEqual(commit_topic(commit(LOCAL_SHAS[0], "feat(calendar): RRULE", "x")),
                         "calendar")
        self.assertEqual(commit_topic(commit(LOCAL_SHAS[0], "fix(검색)!: 한글 색인", "x")), "검색")
        self.assertEqual(commit_topic(commit(LOCAL_SHAS[0], "Tidy", "x",
                                             branch="feature/daily-notes")), "daily-notes")
        self.assertEqual(commit_topic(commit(LOCAL_SHAS[0], "Tidy", "x", branch="한글-브랜치")),
                         "한글-브랜치")
        self.assertIsNone(commit_topic(commit(LOCAL_SHAS[0], "Tidy", "x", branch="main")))
        self.assertIsNone(commit_topic(commit(LOCAL_SHAS[0], "feat: no scope", "x",
                                              branch="master")))


class GitLineTests(SynchronousTestCase):
    COMMITS = [
        commit(LOCAL_SHAS[0], "feat(calendar): expand RRULE", "2024-05-01T01:00:00Z",
               files=3, plus=120, minus=4),
        commit(LOCAL_SHAS[1], "Fix the watcher", "2024-05-01T02:00:00Z"),
        commit(LOCAL_SHAS[2], "feat(calendar): 시간대 처리", "2024-05-01T03:00:00Z",
               files=2, plus=30, minus=10),
        commit(LOCAL_SHAS[3], "Draft notes", "2024-05-01T04:00:00Z", repo="노트"),
    ]

    def lines(self, text: str = "") -> list[Any]:
        return [s for _, s in sorted(git_commit_groups(self.COMMITS, target(text)),
                                     key=lambda pair: pair[0])]

    def test_grouped_by_repository_and_topic(self) -> None:
        found = self.lines()
        self.assertEqual([s.text for s in found], [
            "- 2 commits to enttok (calendar): feat(calendar): expand RRULE; "
            "feat(calendar): 시간대 처리",
            "- 1 commit to enttok: Fix the watcher",
            "- 1 commit to 노트: Draft notes"])
        self.assertEqual({s.kind for s in found}, {"commits"})
        self.assertEqual(found[0].sources, (
            {"type": "git", "ref": f"enttok:{LOCAL_SHAS[0]}"},
            {"type": "git", "ref": f"enttok:{LOCAL_SHAS[2]}"}))
        self.assertEqual(found[0].reason, "2 local commit(s) that day (5 files, +150 -14)")
        self.assertEqual(len({s.id for s in found}), 3)

    def test_many_commits_show_the_first_messages(self) -> None:
        many = [commit(f"{i:07x}" + "0" * 33, f"Step {i}", f"2024-05-01T0{i}:00:00Z")
                for i in range(1, 6)]
        [line] = [s for _, s in git_commit_groups(many, target())]
        self.assertEqual(line.text, "- 5 commits to enttok: Step 1; Step 2; Step 3; …")

    def test_lines_already_in_the_note_are_not_suggested(self) -> None:
        inserted = self.lines()[0].text
        self.assertEqual([s.text for s in self.lines(inserted)],
                         ["- 1 commit to enttok: Fix the watcher",
                          "- 1 commit to 노트: Draft notes"])
        by_sha = self.lines(f"see {LOCAL_SHAS[1][:7]} for the fix")
        self.assertNotIn("- 1 commit to enttok: Fix the watcher", [s.text for s in by_sha])
        self.assertEqual(len(by_sha), 2)
        # A line about one repository is not taken for another's.
        self.assertEqual(len(self.lines("- 1 commit to enttok2: x\n- 1 commit to 노트a: y")), 3)


class MeetingTests(SynchronousTestCase):
    EVENTS = [
        event("standup", "주간 팀 회의", "2024-05-01T01:00:00Z", "2024-05-01T01:30:00Z",
              location="회의실 3"),
        event("holiday", "어린이날 준비", "2024-04-30T15:00:00Z", "2024-05-01T15:00:00Z",
              all_day=True),
        event("untitled", None, "2024-05-01T08:00:00Z", "2024-05-01T08:00:00Z"),
    ]

    def test_times_in_the_users_zone(self) -> None:
        found = [s for _, s in sorted(meeting_lines(self.EVENTS, target(), SEOUL),
                                      key=lambda p: p[0])]
        self.assertEqual([s.text for s in found], ["- All day: 어린이날 준비",
                                                   "- 10:00-10:30 주간 팀 회의 (회의실 3)",
                                                   "- 17:00 (no title)"])
        self.assertEqual({s.kind for s in found}, {"meeting"})
        self.assertEqual(found[1].sources,
                         ({"type": "calendar", "ref": "standup:2024-05-01T01:00:00Z"},))
        self.assertEqual(found[1].reason, "in the calendar 업무")
        new_york = meeting_lines(self.EVENTS[:1], target(), ZoneInfo("America/New_York"))
        self.assertEqual(new_york[0][1].text, "- 21:00-21:30 주간 팀 회의 (회의실 3)")

    def test_a_meeting_the_note_names_is_not_suggested(self) -> None:
        text = unicodedata.normalize("NFC", "## 회의\n- 주간 팀 회의: 일정 공유\n")
        found = meeting_lines(self.EVENTS, target(text), SEOUL)
        self.assertEqual([s.text for _, s in found], ["- All day: 어린이날 준비",
                                                      "- 17:00 (no title)"])


class MergeTests(SynchronousTestCase):
    def test_every_source_in_the_order_it_happened(self) -> None:
        items = [
            github_commit(SHA1, "Add the suggest job", "2024-05-01T00:30:00Z"),
            commit(LOCAL_SHAS[0], "feat(calendar): expand RRULE", "2024-05-01T01:30:00Z"),
            *MeetingTests.EVENTS[:1],
        ]
        found = day_suggestions(items, target(), SEOUL)
        self.assertEqual([s.kind for s in found], ["commits", "meeting", "commits"])
        self.assertEqual([s.sources[0]["type"] for s in found], ["github", "calendar", "git"])

    def test_a_commit_pushed_and_found_locally_is_told_once(self) -> None:
        items = [github_commit(SHA1, "Add the suggest job", "2024-05-01T00:30:00Z"),
                 github_commit(SHA2, "Fix carry-over", "2024-05-01T00:40:00Z"),
                 commit(SHA1, "Add the suggest job", "2024-05-01T00:29:00Z", repo="enttok")]
        found = day_suggestions(items, target(), SEOUL)
        self.assertEqual([s.text for s in found], [
            "- 1 commit to enttok: Add the suggest job",
            f"- 1 commit to [{REPO}]({WEB}/{REPO}/commits): Fix carry-over"])

    def test_a_rebased_commit_matches_by_any_of_its_shas(self) -> None:
        items = [github_commit(SHA2, "Fix carry-over", "2024-05-01T00:40:00Z"),
                 commit(LOCAL_SHAS[0], "Fix carry-over", "2024-05-01T00:29:00Z",
                        extra_shas=(SHA2,))]
        self.assertEqual([s.sources[0]["type"] for s in day_suggestions(items, target(), SEOUL)],
                         ["git"])


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//enttok tests//EN\r
BEGIN:VEVENT\r
UID:weekly\r
DTSTART;TZID=Asia/Seoul:20240424T140000\r
DTEND;TZID=Asia/Seoul:20240424T150000\r
RRULE:FREQ=WEEKLY\r
SUMMARY:설계 리뷰\r
LOCATION:Zoom\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:yesterday\r
DTSTART;TZID=Asia/Seoul:20240430T100000\r
DTEND;TZID=Asia/Seoul:20240430T110000\r
SUMMARY:Yesterday's meeting\r
END:VEVENT\r
END:VCALENDAR\r
"""


class JobTests(SynchronousTestCase):
    """suggest.generate over stored GitHub, local git and calendar activity."""

    def setUp(self) -> None:
        self.settings = SettingsStore(Path(self.mktemp()), run_inline)
        self.day = Day(self, self.settings)
        conn = self.day.h.db.connection
        ics = Path(self.mktemp()).absolute()
        ics.write_text(ICS, encoding="utf-8")
        start = 1_714_489_200.0  # 2024-05-01T00:00 in Seoul
        harvest = read_calendars([str(ics)], Window.around(start, SEOUL, 1, 1), SEOUL)
        self.assertEqual(harvest.warnings, [])
        activity_store.save(conn, "calendar", harvest.items, "2024-05-02T00:00:00Z",
                            "calendar", {})
        local = commit(SHA1, "Add the suggest job", "2024-05-01T01:00:00Z")
        topic = commit(LOCAL_SHAS[0], "feat(검색): 한글 색인", "2024-05-01T07:00:00Z")
        activity_store.save(conn, "git", [Activity(
            identity=f"git:{c['id']}", kind="commit", title=c["title"],
            occurred_at=c["occurred_at"], raw=c["raw"], repo=c["repo"]) for c in (local, topic)],
            "2024-05-02T00:00:00Z", "git", {})

    def test_the_day_from_every_source(self) -> None:
        job = self.day.run_job("suggest.generate", {"note_date": DAY})
        self.assertEqual(job.status, SUCCEEDED, job.error)
        result = self.day.stored_result()
        lines = texts(result)
        self.assertIn("- 1 commit to enttok: Add the suggest job", lines)
        self.assertIn("- 1 commit to enttok (검색): feat(검색): 한글 색인", lines)
        self.assertIn("- 14:00-15:00 설계 리뷰 (Zoom)", lines)
        self.assertNotIn("Yesterday's meeting", " ".join(lines))
        # SHA1 was also pushed to GitHub: only SHA2 is left on the GitHub line.
        self.assertIn(f"- 1 commit to [{REPO}]({WEB}/{REPO}/commits): Fix carry-over", lines)
        kinds = [s["kind"] for s in result["suggestions"]]
        # By first time: PR #12 (opened 01:00 KST), local then GitHub commits, the
        # 14:00 meeting, the 16:00 local commit, the 23:59 comment.
        self.assertEqual(kinds[:6], ["activity", "commits", "commits", "meeting", "commits",
                                     "activity"])
        types = {s["sources"][0]["type"] for s in result["suggestions"]}
        self.assertEqual(types, {"github", "git", "calendar", "task", "note"})
        self.assertEqual(result["counts"]["activity"], 6 + 2 + 1)


names = st.text(alphabet=st.sampled_from("abcXYZ019._-한글노트 "), min_size=1,
                max_size=12).map(str.strip).filter(bool)


class InsertedLineProperties(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(groups=st.lists(st.tuples(names, st.one_of(st.none(), names)), min_size=1,
                           max_size=4, unique=True),
           pick=st.integers(min_value=0))
    def test_an_inserted_line_hides_itself_only(self, groups: list[tuple[str, str | None]],
                                                pick: int) -> None:
        commits = []
        for i, (repo, topic) in enumerate(groups):
            subject = f"feat({topic}): change {i}" if topic else f"change {i}"
            commits.append(commit(f"{i:07x}" + "f" * 33, subject,
                                  f"2024-05-01T0{i}:00:00Z", repo=repo))
        # A topic may also come from the branch; keep the scope the only source here.
        lines = [s.text for _, s in git_commit_groups(commits, target())]
        self.assertEqual(len(lines), len({(r, commit_topic(c)) for (r, _), c
                                          in zip(groups, commits, strict=True)}))
        chosen = lines[pick % len(lines)]
        left = [s.text for _, s in git_commit_groups(commits, target(f"# Log\n{chosen}\n"))]
        self.assertEqual(left, [line for line in lines if line != chosen])
