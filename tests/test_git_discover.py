"""Finding repositories under search roots: bounded in depth, not inside repositories."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors.git import discover
from enttok.connectors.git.discover import candidates


class CandidatesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(self.mktemp()).absolute()
        self.root.mkdir()

    def repo(self, relative: str, bare: bool = False) -> str:
        path = self.root / relative
        if bare:
            path.mkdir(parents=True)
            (path / "HEAD").write_text("ref: refs/heads/main\n")
        else:
            (path / ".git").mkdir(parents=True)
        return str(path)

    def test_search(self) -> None:
        """
        Repositories (with a .git folder or file, or bare C{*.git}) down to the
        depth; hidden, dependency and repository folders are not searched.
        """
        top = self.repo("프로젝트")
        self.repo("프로젝트/vendor-inside")  # inside a repository: not searched
        bare = self.repo("mirrors/tool.git", bare=True)
        worktree = self.root / "wt"
        worktree.mkdir()
        (worktree / ".git").write_text("gitdir: /elsewhere\n")
        self.repo(".hidden/secret")
        self.repo("web/node_modules/dep")
        deep = self.repo("a/b/c/deep")
        found = candidates([], [str(self.root)], 2)
        self.assertEqual(sorted(found.paths), sorted([top, bare, str(worktree)]))
        self.assertEqual(found.warnings, [])
        self.assertIn(deep, candidates([], [str(self.root)], 4).paths)

    def test_listed(self) -> None:
        """Listed folders are kept in order, once by real path; missing ones warned of."""
        first = self.repo("one")
        link = self.root / "link"
        link.symlink_to(first)
        missing = str(self.root / "없음")
        found = candidates([first, str(link), missing], [missing], 3)
        self.assertEqual(found.paths, [first])
        self.assertEqual(found.warnings, [f"{missing}: no such folder",
                                          f"{missing}: no such folder (search root)"])

    def test_symlink_loop(self) -> None:
        """Folder links are not followed, so a loop ends."""
        (self.root / "loop").symlink_to(self.root)
        self.assertEqual(candidates([], [str(self.root)], 8).paths, [])

    def test_bounded(self) -> None:
        """A root with more folders than the limit stops with a warning."""
        self.patch(discover, "MAX_FOLDERS", 5)
        for n in range(8):
            os.mkdir(self.root / f"d{n}")
        repo = self.repo("d0/repo")
        found = candidates([], [str(self.root)], 3)
        self.assertEqual(found.paths, [])
        self.assertEqual(found.warnings, [
            f"{self.root}: stopped after 5 folders; list repositories or lower search_depth"])
        self.patch(discover, "MAX_FOLDERS", 100)
        self.assertEqual(candidates([], [str(self.root)], 3).paths, [repo])
