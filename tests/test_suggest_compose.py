"""enttok.suggest.compose: fixtures of activity and notes -> exactly the expected lines."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.suggest.compose import (
    Note,
    Suggestion,
    Target,
    activity_suggestions,
    carryover_suggestions,
    edited_suggestions,
    normalize,
    related_suggestions,
    target_for,
    wikilink,
)

WEB = "https://github.com"
REPO = "owner/repo"
TODAY = date(2024, 5, 1)
SHAS = ["a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "b2c3d4e5f60718293a4b5c6d7e8f901234567891",
        "c3d4e5f60718293a4b5c6d7e8f90123456789012", "d4e5f60718293a4b5c6d7e8f9012345678901234",
        "e5f60718293a4b5c6d7e8f901234567890123456"]


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def at(hhmm: str) -> str:
    """A UTC time on the fixtures' day."""
    return f"2024-05-01T{hhmm}:00Z"


# Activity items as enttok.connectors.github.store.list_activity gives them.


def item(identity: str, kind: str, repo: str, number: int | None, title: str | None,
         url: str | None, when: str) -> dict[str, Any]:
    return {"kind": kind, "repo": repo, "number": number, "title": title, "url": url,
            "occurred_at": when, "id": identity}


def pr(kind: str, number: int, title: str, when: str, repo: str = REPO) -> dict[str, Any]:
    return item(f"{kind}:{repo}#{number}", kind, repo, number, title,
                f"{WEB}/{repo}/pull/{number}", when)


def issue(kind: str, number: int, title: str, when: str, repo: str = REPO) -> dict[str, Any]:
    return item(f"{kind}:{repo}#{number}", kind, repo, number, title,
                f"{WEB}/{repo}/issues/{number}", when)


def review(number: int, review_id: int, title: str, when: str) -> dict[str, Any]:
    return item(f"pr_reviewed:{REPO}#{number}:{review_id}", "pr_reviewed", REPO, number, title,
                f"{WEB}/{REPO}/pull/{number}#pullrequestreview-{review_id}", when)


def comment(number: int, comment_id: int, title: str, when: str,
            on: str = "issues") -> dict[str, Any]:
    return item(f"comment:{REPO}:{comment_id}", "comment", REPO, number, title,
                f"{WEB}/{REPO}/{on}/{number}#issuecomment-{comment_id}", when)


def commit(sha: str, message: str, when: str, repo: str = REPO) -> dict[str, Any]:
    return item(f"commit:{repo}:{sha}", "commit", repo, None, message,
                f"{WEB}/{repo}/commit/{sha}", when)


def pr_url(number: int, repo: str = REPO) -> str:
    return f"{WEB}/{repo}/pull/{number}"


def issue_url(number: int, repo: str = REPO) -> str:
    return f"{WEB}/{repo}/issues/{number}"


def target(text: str = "", links: Iterable[str] = (), tasks: Iterable[str] = (),
           path: str | None = "daily/2024-05-01.md") -> Target:
    return target_for(path, text, links, tasks)


def texts(suggestions: Sequence[Suggestion]) -> list[str]:
    return [s.text for s in suggestions]


class ActivityTests(SynchronousTestCase):
    """GitHub activity grouped as a person would write it."""

    def test_pr_opened_and_merged_the_same_day_is_one_line(self) -> None:
        [line] = activity_suggestions([pr("pr_opened", 12, "Add FTS5 index", at("09:00")),
                                       pr("pr_merged", 12, "Add FTS5 index", at("11:30"))],
                                      target())
        self.assertEqual(line.to_json(), {
            "id": line.id, "kind": "activity",
            "text": f"- Opened and merged PR [#12]({pr_url(12)}) *Add FTS5 index* in {REPO}",
            "sources": [{"type": "github", "ref": f"pr_opened:{REPO}#12", "url": pr_url(12)},
                        {"type": "github", "ref": f"pr_merged:{REPO}#12", "url": pr_url(12)}],
            "score": 1.0, "reason": f"2 GitHub event(s) on {REPO}#12 that day"})

    def test_merged_only(self) -> None:
        found = activity_suggestions([pr("pr_merged", 12, "Add FTS5 index", at("11:30"))],
                                     target())
        self.assertEqual(texts(found),
                         [f"- Merged PR [#12]({pr_url(12)}) *Add FTS5 index* in {REPO}"])
        self.assertEqual(found[0].reason, f"1 GitHub event(s) on {REPO}#12 that day")

    def test_opened_only_and_closed_unmerged(self) -> None:
        found = activity_suggestions([pr("pr_opened", 3, "Draft idea", at("08:00")),
                                      pr("pr_closed", 7, "Abandoned idea", at("09:00"))],
                                     target())
        self.assertEqual(texts(found), [
            f"- Opened PR [#3]({pr_url(3)}) *Draft idea* in {REPO}",
            f"- Closed PR [#7]({pr_url(7)}) *Abandoned idea* in {REPO}"])

    def test_issues(self) -> None:
        found = activity_suggestions([
            issue("issue_opened", 3, "Crash on start", at("08:00")),
            issue("issue_closed", 4, "Old bug", at("09:00")),
            issue("issue_opened", 5, "Typo", at("10:00")),
            issue("issue_closed", 5, "Typo", at("10:05")),
        ], target())
        self.assertEqual(texts(found), [
            f"- Opened issue [#3]({issue_url(3)}) *Crash on start* in {REPO}",
            f"- Closed issue [#4]({issue_url(4)}) *Old bug* in {REPO}",
            f"- Opened and closed issue [#5]({issue_url(5)}) *Typo* in {REPO}"])
        self.assertEqual({s.kind for s in found}, {"activity"})

    def test_reviews_of_one_pr_are_one_line(self) -> None:
        [line] = activity_suggestions([review(6, 901, "Their change", at("08:00")),
                                       review(6, 902, "Their change", at("09:00"))], target())
        self.assertEqual(line.text, f"- Reviewed PR [#6]({pr_url(6)}#pullrequestreview-902) "
                                    f"*Their change* in {REPO}")
        self.assertEqual([s["ref"] for s in line.sources],
                         [f"pr_reviewed:{REPO}#6:901", f"pr_reviewed:{REPO}#6:902"])
        self.assertEqual(line.reason, f"2 GitHub event(s) on {REPO}#6 that day")

    def test_comments_are_counted(self) -> None:
        found = activity_suggestions([
            comment(5, 71, "Same here", at("08:00")),
            comment(6, 80, "Their change", at("08:30"), on="pull"),
            comment(5, 72, "Same here", at("09:00")),
            comment(5, 73, "Same here", at("10:00")),
        ], target())
        self.assertEqual(texts(found), [
            f"- Commented 3 times on issue [#5]({issue_url(5)}#issuecomment-73) "
            f"*Same here* in {REPO}",
            f"- Commented on PR [#6]({pr_url(6)}#issuecomment-80) *Their change* in {REPO}"])
        self.assertEqual([len(s.sources) for s in found], [3, 1])

    def test_commits_to_one_repo_are_one_line_with_the_count(self) -> None:
        commits = [commit(sha, f"Step {i}", at(f"0{i}:00")) for i, sha in enumerate(SHAS, 1)]
        [line] = activity_suggestions(list(reversed(commits)), target())
        self.assertEqual(line.to_json(), {
            "id": line.id, "kind": "commits",
            "text": f"- 5 commits to [{REPO}]({WEB}/{REPO}/commits): Step 1; Step 2; Step 3; …",
            "sources": [{"type": "github", "ref": f"commit:{REPO}:{sha}",
                         "url": f"{WEB}/{REPO}/commit/{sha}"} for sha in SHAS],
            "score": 0.9, "reason": "5 commit(s) authored that day"})

    def test_one_commit_and_commits_to_two_repos(self) -> None:
        found = activity_suggestions([
            commit(SHAS[0], "Fix the watcher", at("08:00")),
            commit(SHAS[1], "Bump version", at("09:00"), repo="owner/other"),
            commit(SHAS[2], "Add tests", at("10:00")),
        ], target())
        self.assertEqual(texts(found), [
            f"- 2 commits to [{REPO}]({WEB}/{REPO}/commits): Fix the watcher; Add tests",
            f"- 1 commit to [owner/other]({WEB}/owner/other/commits): Bump version"])

    def test_release_links_to_it(self) -> None:
        url = f"{WEB}/{REPO}/releases/tag/v1.0"
        [line] = activity_suggestions([item(f"release:{REPO}:5", "release_published", REPO,
                                            None, "v1.0", url, at("12:00"))], target())
        self.assertEqual(line.text, f"- Published release [v1.0]({url}) in {REPO}")
        self.assertEqual(line.sources, ({"type": "github", "ref": f"release:{REPO}:5",
                                         "url": url},))

    def test_ordered_by_the_first_event_of_each_line(self) -> None:
        found = activity_suggestions([
            commit(SHAS[0], "Morning fix", at("07:00")),
            pr("pr_opened", 12, "Add FTS5 index", at("08:00")),
            comment(5, 71, "Same here", at("09:00")),
            commit(SHAS[1], "Afternoon fix", at("14:00")),
            pr("pr_merged", 12, "Add FTS5 index", at("16:00")),
            issue("issue_opened", 20, "New bug", at("08:30")),
        ], target())
        self.assertEqual(texts(found), [
            f"- 2 commits to [{REPO}]({WEB}/{REPO}/commits): Morning fix; Afternoon fix",
            f"- Opened and merged PR [#12]({pr_url(12)}) *Add FTS5 index* in {REPO}",
            f"- Opened issue [#20]({issue_url(20)}) *New bug* in {REPO}",
            f"- Commented on issue [#5]({issue_url(5)}#issuecomment-71) *Same here* in {REPO}"])

    def test_ids_are_stable_and_distinct(self) -> None:
        items = [pr("pr_merged", 12, "A", at("08:00")), issue("issue_opened", 12, "B", at("09:00"),
                                                              repo="owner/other"),
                 commit(SHAS[0], "C", at("10:00"))]
        first = [s.id for s in activity_suggestions(items, target())]
        again = [s.id for s in activity_suggestions(list(reversed(items)), target())]
        self.assertEqual(sorted(first), sorted(again))
        self.assertEqual(len(set(first)), 3)

    def test_korean_titles(self) -> None:
        found = activity_suggestions([issue("issue_opened", 15, "한글 검색 개선", at("06:00")),
                                      commit(SHAS[0], "형태소 분석 추가", at("07:00"))], target())
        self.assertEqual(texts(found), [
            f"- Opened issue [#15]({issue_url(15)}) *한글 검색 개선* in {REPO}",
            f"- 1 commit to [{REPO}]({WEB}/{REPO}/commits): 형태소 분석 추가"])


class ActivityDedupeTests(SynchronousTestCase):
    """Nothing the target note already links or refers to is suggested again."""

    ITEMS = [pr("pr_opened", 12, "Add FTS5 index", at("08:00")),
             pr("pr_merged", 12, "Add FTS5 index", at("09:00")),
             pr("pr_merged", 1, "First", at("10:00")),
             issue("issue_closed", 4, "Old bug", at("11:00")),
             review(6, 901, "Their change", at("12:00")),
             comment(5, 71, "Same here", at("13:00")),
             commit(SHAS[0], "Fix one", at("14:00")),
             commit(SHAS[1], "Fix two", at("15:00"), repo="owner/other"),
             item(f"release:{REPO}:5", "release_published", REPO, None, "v1.0",
                  f"{WEB}/{REPO}/releases/tag/v1.0", at("16:00"))]

    def lines(self, text: str) -> list[str]:
        return texts(activity_suggestions(self.ITEMS, target(text)))

    def without(self, *prefixes: str) -> list[str]:
        everything = self.lines("")
        self.assertEqual(len(everything), 8)
        return [t for t in everything if not t.startswith(prefixes)]

    def test_same_url(self) -> None:
        self.assertEqual(self.lines(f"Shipped it: <{pr_url(12)}>\n"),
                         self.without("- Opened and merged PR [#12]"))

    def test_same_reference(self) -> None:
        self.assertEqual(self.lines(f"- merged {REPO}#12 today"),
                         self.without("- Opened and merged PR [#12]"))
        self.assertEqual(self.lines("- OWNER/Repo#12, finally"),
                         self.without("- Opened and merged PR [#12]"))

    def test_reference_followed_by_korean(self) -> None:
        self.assertEqual(self.lines(f"- {REPO}#12에서 리뷰 반영"),
                         self.without("- Opened and merged PR [#12]"))

    def test_a_longer_number_is_another_item(self) -> None:
        self.assertEqual(self.lines(f"- {REPO}#123 and {pr_url(10)} and {REPO}#4000\n"),
                         self.without())
        self.assertEqual(self.lines(f"- {REPO}#1\n"), self.without("- Merged PR [#1]"))

    def test_another_repository_with_a_longer_name(self) -> None:
        self.assertEqual(self.lines("- xowner/repo#12 and owner/repo-two#12"), self.without())

    def test_commit_sha(self) -> None:
        self.assertEqual(self.lines(f"fixed in {SHAS[0][:7]}"),
                         self.without(f"- 1 commit to [{REPO}]"))
        self.assertEqual(self.lines(f"see {WEB}/owner/other/commit/{SHAS[1]}"),
                         self.without("- 1 commit to [owner/other]"))
        self.assertEqual(self.lines(f"not a sha: x{SHAS[0][:7]}"), self.without())

    def test_each_inserted_line_is_not_suggested_again(self) -> None:
        everything = activity_suggestions(self.ITEMS, target())
        for one in everything:
            again = activity_suggestions(self.ITEMS, target(f"# Today\n\n{one.text}\n"))
            self.assertEqual(texts(again), [s.text for s in everything if s is not one],
                             one.text)


def daily(day: str, *tasks: tuple[str, bool], folder: str = "daily") -> Note:
    return Note(f"{folder}/{day}.md", day, day,
                tuple({"text": text, "done": done, "line": 3 + i}
                      for i, (text, done) in enumerate(tasks)))


class CarryOverTests(SynchronousTestCase):
    """Unchecked tasks of the previous daily notes."""

    def test_newest_first_and_done_later_is_not_carried(self) -> None:
        previous = [
            daily("2024-04-28", ("Call the bank", False), ("Fix the watcher", False),
                  ("Write tests", False)),
            daily("2024-04-30", ("Write tests", False), ("Fix the watcher", True),
                  ("Review PR", False)),
        ]
        found = carryover_suggestions(previous, target(), TODAY)
        self.assertEqual([s.to_json() for s in found], [
            {"id": found[0].id, "kind": "task", "text": "- [ ] Write tests",
             "sources": [{"type": "task", "ref": "daily/2024-04-30.md:3",
                          "path": "daily/2024-04-30.md"}],
             "score": 0.8, "reason": "still open in [[2024-04-30]] (1 day ago)"},
            {"id": found[1].id, "kind": "task", "text": "- [ ] Review PR",
             "sources": [{"type": "task", "ref": "daily/2024-04-30.md:5",
                          "path": "daily/2024-04-30.md"}],
             "score": 0.8, "reason": "still open in [[2024-04-30]] (1 day ago)"},
            {"id": found[2].id, "kind": "task", "text": "- [ ] Call the bank",
             "sources": [{"type": "task", "ref": "daily/2024-04-28.md:3",
                          "path": "daily/2024-04-28.md"}],
             "score": 0.8, "reason": "still open in [[2024-04-28]] (3 days ago)"},
        ])

    def test_reopened_later_is_carried(self) -> None:
        previous = [daily("2024-04-28", ("Fix the watcher", True)),
                    daily("2024-04-29", ("Fix the watcher", False))]
        self.assertEqual(texts(carryover_suggestions(previous, target(), TODAY)),
                         ["- [ ] Fix the watcher"])

    def test_already_in_todays_note(self) -> None:
        previous = [daily("2024-04-30", ("Write  the tests", False), ("Call the bank", False),
                          ("Done today", False))]
        today = target(tasks=["  write the   TESTS ", "done today"])
        self.assertEqual(texts(carryover_suggestions(previous, today, TODAY)),
                         ["- [ ] Call the bank"])

    def test_korean_tasks_nfd_and_nfc(self) -> None:
        previous = [daily("2024-04-30", (nfd("회의록 정리"), False), ("일정 정리", False),
                          (nfd("보고서 작성"), False)),
                    daily("2024-04-29", ("보고서 작성", True))]
        today = target(tasks=["회의록 정리"])
        found = carryover_suggestions(previous, today, TODAY)
        self.assertEqual(texts(found), ["- [ ] 일정 정리", "- [ ] " + nfd("보고서 작성")])
        self.assertEqual(found[0].reason, "still open in [[2024-04-30]] (1 day ago)")
        # The same task written NFC in today's note and NFD in the earlier one.
        nfd_today = target(tasks=[nfd("회의록 정리"), nfd("일정 정리"), "보고서 작성"])
        self.assertEqual(carryover_suggestions(previous, nfd_today, TODAY), [])

    def test_duplicates_within_notes_and_empty_tasks(self) -> None:
        previous = [daily("2024-04-30", ("Plan", False), ("", False), ("plan", False))]
        found = carryover_suggestions(previous, target(), TODAY)
        self.assertEqual(texts(found), ["- [ ] Plan"])

    def test_nothing_open(self) -> None:
        self.assertEqual(carryover_suggestions([], target(), TODAY), [])
        self.assertEqual(carryover_suggestions(
            [daily("2024-04-30", ("Done", True))], target(), TODAY), [])


class NoteSuggestionTests(SynchronousTestCase):
    """Notes edited that day, and related notes."""

    NOTES = [Note("daily/2024-05-01.md", "2024-05-01", "2024-05-01"),
             Note("projects/search-design.md", "Search design", None),
             Note("projects/Plan.md", "Project plan", None),
             Note("inbox/Ideas.md", "Ideas", None),
             Note("회의/주간 회의.md", "주간 회의", None),
             Note("topics/fts.md", "Full-text search", None),
             Note("people/Alice.md", "Alice", None)]

    LINKED = target(links=["Search design", "topics/fts", "people/Alice.md"])

    def test_wikilink(self) -> None:
        self.assertEqual([wikilink(n) for n in self.NOTES], [
            "[[2024-05-01]]", "[[search-design|Search design]]", "[[Plan|Project plan]]",
            "[[Ideas]]", "[[주간 회의]]", "[[fts|Full-text search]]", "[[Alice]]"])

    def test_edited_excludes_the_target_and_linked_notes(self) -> None:
        found = edited_suggestions(self.NOTES, self.LINKED)
        self.assertEqual([s.to_json() for s in found], [
            {"id": s.id, "kind": "edited", "text": text,
             "sources": [{"type": "note", "ref": path, "path": path}], "score": 0.6,
             "reason": "modified that day"}
            for s, (text, path) in zip(found, [
                ("- Edited [[Plan|Project plan]]", "projects/Plan.md"),
                ("- Edited [[Ideas]]", "inbox/Ideas.md"),
                ("- Edited [[주간 회의]]", "회의/주간 회의.md")], strict=True)])

    def test_links_compare_by_stem_title_or_path_nfc_and_case_insensitive(self) -> None:
        links = ["plan", nfd("주간 회의"), "INBOX/IDEAS"]
        self.assertEqual(texts(edited_suggestions(self.NOTES, target(links=links))), [
            "- Edited [[search-design|Search design]]", "- Edited [[fts|Full-text search]]",
            "- Edited [[Alice]]"])

    def hits(self) -> list[dict[str, Any]]:
        return [{"path": n.path, "title": n.title, "date": n.date,
                 "ranks": {"fts": i + 1 if i % 2 == 0 else None, "vector": i + 2}}
                for i, n in enumerate(self.NOTES)]

    def test_related(self) -> None:
        found = related_suggestions(self.hits(), self.LINKED, {"inbox/Ideas.md"}, 5)
        self.assertEqual([s.to_json() for s in found], [
            {"id": found[0].id, "kind": "related", "text": "- Related: [[Plan|Project plan]]",
             "sources": [{"type": "note", "ref": "projects/Plan.md", "path": "projects/Plan.md"}],
             "score": 0.5, "reason": "matches today's note and activity (fts #3, vector #4)"},
            {"id": found[1].id, "kind": "related", "text": "- Related: [[주간 회의]]",
             "sources": [{"type": "note", "ref": "회의/주간 회의.md", "path": "회의/주간 회의.md"}],
             "score": 0.49, "reason": "matches today's note and activity (fts #5, vector #6)"},
        ])

    def test_related_limit(self) -> None:
        found = related_suggestions(self.hits(), target(), set(), 3)
        self.assertEqual(texts(found), ["- Related: [[search-design|Search design]]",
                                        "- Related: [[Plan|Project plan]]",
                                        "- Related: [[Ideas]]"])
        self.assertEqual([s.score for s in found], [0.5, 0.49, 0.48])

    def test_normalize(self) -> None:
        self.assertEqual(normalize(f"  {nfd('회의록')}\t정리  NOW "), "회의록 정리 now")
