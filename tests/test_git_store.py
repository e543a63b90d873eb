"""A repository's git output as items, and their write with the cursor: merged, all or nothing."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors.activity import Activity
from enttok.connectors.git.parse import BadLogOutput
from enttok.connectors.git.store import ReadWalk, get_cursor, items_of, merge_raw, save_items
from enttok.store import Database
from enttok.threads import run_inline
from tests.test_git_parse import record

NOW = "2024-05-10T00:00:00Z"


def walk(branch: str, commits: list[tuple[str, str, str]],
         patch_ids: dict[str, str]) -> ReadWalk:
    """What git writes for C{commits} (sha letter, subject, time) and their patch ids."""
    log = b"".join(record(sha * 40, subject, [("2", "0", "a.py")], date=when)
                   for sha, subject, when in commits)
    ids = "".join(f"{pid * 40} {sha * 40}\n" for sha, pid in patch_ids.items())
    return ReadWalk(branch, log, ids.encode())


class SaveItemsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.db = Database(self.mktemp(), run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.conn = self.db.connection

    def rows(self) -> dict[str, dict[str, Any]]:
        return {r[0]: {"title": r[1], "occurred_at": r[2], "repo": r[3], **json.loads(r[4])}
                for r in self.conn.execute(
                    "select identity, title, occurred_at, repo, raw_json from activity")}

    def save(self, walks: list[ReadWalk], repo: str, path: str,
             cursor: dict[str, Any]) -> tuple[int, int]:
        items, commits = items_of(walks, repo, path)
        return save_items(self.conn, items, NOW, "git", cursor), commits

    def test_sightings_of_one_change(self) -> None:
        """
        Copies of one change (a patch id) are one item: the earliest time, every
        commit and branch; a change without a patch id is its commit.
        """
        new, commits = self.save([
            walk("main", [("a", "로그인 고침", "2024-05-02T10:00:00Z"),
                          ("c", "empty", "2024-05-01T10:00:00Z")], {"a": "p"}),
            walk("hotfix", [("b", "로그인 고침", "2024-05-01T10:00:00Z")], {"b": "p"})],
            "app", "/src/app", {"repos": {"/src/app": {}}})
        self.assertEqual((new, commits), (2, 3))
        rows = self.rows()
        self.assertEqual(set(rows), {"git:" + "p" * 40, "git:" + "c" * 40})
        change = rows["git:" + "p" * 40]
        self.assertEqual((change["occurred_at"], change["shas"], change["branches"],
                          change["title"], change["files"], change["insertions"]),
                         ("2024-05-01T10:00:00Z", ["a" * 40, "b" * 40], ["main", "hotfix"],
                          "로그인 고침", ["a.py"], 2))
        # Seen again in another repository, authored earlier there: the lists grow,
        # the earliest time is kept.
        again, _ = self.save([walk("dev", [("d", "로그인 고침", "2024-05-01T09:00:00Z")],
                                   {"d": "p"})], "fork", "/src/fork", {"repos": {}})
        self.assertEqual(again, 0)
        change = self.rows()["git:" + "p" * 40]
        self.assertEqual((change["repo"], change["repos"], change["branches"],
                          change["occurred_at"]),
                         ("app", ["app", "fork"], ["main", "hotfix", "dev"],
                          "2024-05-01T09:00:00Z"))

    def test_all_or_nothing(self) -> None:
        """A write that fails part-way leaves neither items nor the cursor behind."""
        self.save([walk("main", [("a", "first", "2024-05-01T10:00:00Z")], {"a": "p"})],
                  "app", "/src/app", {"repos": {"/src/app": {"tip": "old"}}})
        no_time: Any = None  # occurred_at is NOT NULL
        items = [Activity("git:fine", "commit", "fine", "2024-05-02T10:00:00Z"),
                 Activity("git:broken", "commit", "broken", no_time)]
        self.assertRaises(sqlite3.IntegrityError, save_items, self.conn, items, NOW, "git",
                          {"repos": {"/src/app": {"tip": "new"}}})
        self.assertEqual(list(self.rows()), ["git:" + "p" * 40])
        self.assertEqual(get_cursor(self.conn, "git"), {"repos": {"/src/app": {"tip": "old"}}})

    def test_bad_output(self) -> None:
        self.assertRaises(BadLogOutput, items_of, [ReadWalk("main", b"fatal: no", b"")],
                          "app", "/src/app")


class MergeRawTests(SynchronousTestCase):
    def test_amended_subject_wins(self) -> None:
        """The most recently committed version's subject is the item's."""
        old = {"subject": "Fix typo", "committed_at": "2024-05-01T10:00:00Z", "sha": "a"}
        new = {"subject": "Fix typo in 로그인 form", "committed_at": "2024-05-01T10:05:00Z",
               "sha": "b"}
        merged = merge_raw(old, new)
        self.assertEqual((merged["subject"], merged["committed_at"], merged["sha"]),
                         ("Fix typo in 로그인 form", "2024-05-01T10:05:00Z", "a"))
        self.assertEqual(merge_raw(new, old)["subject"], "Fix typo in 로그인 form")

    def test_lists_grow_rest_kept(self) -> None:
        old = {"branches": ["main"], "shas": ["a"], "repos": ["app"], "subject": "first"}
        new = {"branches": ["main", "dev"], "shas": ["b"], "repos": ["app"],
               "subject": "second", "files": ["x"]}
        self.assertEqual(merge_raw(old, new), {
            "branches": ["main", "dev"], "shas": ["a", "b"], "repos": ["app"],
            "subject": "first", "files": ["x"]})
