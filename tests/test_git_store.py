"""Writing a repository's commits and the cursor: merged sightings, all or nothing."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors.git.parse import Commit
from enttok.connectors.git.store import ReadWalk, get_cursor, merge_raw, save_repo
from enttok.store import Database
from enttok.threads import run_inline

NOW = "2024-05-10T00:00:00Z"


def commit(sha: str, subject: str = "로그인 고침", when: str = "2024-05-01T10:00:00Z") -> Commit:
    return Commit(sha * 40, (), "me@example.com", "Me", when, when, subject, ("a.py",), 1, 2, 0)


class SaveRepoTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.db = Database(self.mktemp(), run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.conn = self.db.connection

    def rows(self) -> dict[str, dict]:
        return {r[0]: {"title": r[1], "occurred_at": r[2], "repo": r[3], **json.loads(r[4])}
                for r in self.conn.execute(
                    "select identity, title, occurred_at, repo, raw_json from activity")}

    def test_sightings_of_one_change(self) -> None:
        """
        Copies of one change (a patch id) are one item: the earliest time, every
        commit and branch; a change without a patch id is its commit.
        """
        new = save_repo(self.conn, [
            ReadWalk("main", [commit("a", when="2024-05-02T10:00:00Z"), commit("c", "empty")],
                     {"a" * 40: "p" * 40}),
            ReadWalk("hotfix", [commit("b", when="2024-05-01T10:00:00Z")],
                     {"b" * 40: "p" * 40})], "app", "/src/app", NOW, "git",
            {"repos": {"/src/app": {}}})
        self.assertEqual(new, 2)
        rows = self.rows()
        self.assertEqual(set(rows), {"git:" + "p" * 40, "git:" + "c" * 40})
        change = rows["git:" + "p" * 40]
        self.assertEqual((change["occurred_at"], change["shas"], change["branches"],
                          change["title"]),
                         ("2024-05-01T10:00:00Z", ["a" * 40, "b" * 40], ["main", "hotfix"],
                          "로그인 고침"))
        # Seen again later in another repository: the lists grow, nothing else moves.
        again = save_repo(self.conn,
                          [ReadWalk("dev", [commit("d", "other words")], {"d" * 40: "p" * 40})],
                          "fork", "/src/fork", NOW, "git", {"repos": {}})
        self.assertEqual(again, 0)
        change = self.rows()["git:" + "p" * 40]
        self.assertEqual((change["repo"], change["repos"], change["branches"], change["title"]),
                         ("app", ["app", "fork"], ["main", "hotfix", "dev"], "로그인 고침"))

    def test_all_or_nothing(self) -> None:
        """A write that fails part-way leaves neither items nor the cursor behind."""
        save_repo(self.conn, [ReadWalk("main", [commit("a")], {"a" * 40: "p" * 40})], "app",
                  "/src/app", NOW, "git", {"repos": {"/src/app": {"tip": "old"}}})
        no_time: Any = None  # occurred_at is NOT NULL
        broken = attrs.evolve(commit("b"), authored_at=no_time)
        self.assertRaises(sqlite3.IntegrityError, save_repo, self.conn,
                          [ReadWalk("main", [commit("c", "fine"), broken], {})],
                          "app", "/src/app", NOW, "git", {"repos": {"/src/app": {"tip": "new"}}})
        self.assertEqual(list(self.rows()), ["git:" + "p" * 40])
        self.assertEqual(get_cursor(self.conn, "git"), {"repos": {"/src/app": {"tip": "old"}}})


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
