"""Walking a vault: what is listed, what is skipped, symlinks and limits.

Its speed is measured by bench/index_bench.py (part b), not here.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from enttok.vault.walker import FileEntry, is_inside, list_notes, note_folders


def make(root: Path, files: Iterable[str], content: bytes = b"x") -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def walk(root: Path, should_stop: Callable[[], bool] = lambda: False,
         max_bytes: int = 5 * 1024 * 1024) -> tuple[list[str], list[tuple[str, str]]]:
    """The walk as (note paths, (path, warning) pairs), each in output order."""
    files, warnings = list_notes(root, should_stop, max_bytes)
    return [f.rel_path for f in files], [(w.rel_path, w.message) for w in warnings]


class VaultCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(self.mktemp()).absolute()
        self.root.mkdir()


class ListingTests(VaultCase):
    def test_notes_sorted_and_filtered(self) -> None:
        make(self.root, ["b.md", "a.md", "C.MD", "image.png", "notes.txt", "sub/z.md",
                         "sub/deeper/y.md", "sub/a.md", "folder.md/inside.md"])
        notes, warnings = walk(self.root)
        # A folder's notes come before its subfolders', each in name order.
        self.assertEqual(notes, ["C.MD", "a.md", "b.md", "folder.md/inside.md", "sub/a.md",
                                 "sub/z.md", "sub/deeper/y.md"])
        self.assertEqual(warnings, [])

    def test_entry_fields(self) -> None:
        make(self.root, ["daily/2026-11-27.md"], b"# Today\n")
        [entry], _ = list_notes(str(self.root))
        assert isinstance(entry, FileEntry)
        st = os.stat(self.root / "daily" / "2026-11-27.md")
        self.assertEqual(entry, FileEntry("daily/2026-11-27.md",
                                          str((self.root / "daily" / "2026-11-27.md").absolute()),
                                          8, st.st_mtime_ns))

    def test_empty_file_and_empty_vault(self) -> None:
        self.assertEqual(walk(self.root), ([], []))
        make(self.root, ["empty.md"], b"")
        [entry], _ = list_notes(self.root)
        assert isinstance(entry, FileEntry)
        self.assertEqual(entry.size, 0)

    def test_hidden_and_skipped_folders(self) -> None:
        make(self.root, [".obsidian/workspace.md", ".git/x.md", ".trash/old.md", ".hidden.md",
                         "node_modules/pkg/readme.md", "sub/.secret/s.md", "visible.md"])
        self.assertEqual(walk(self.root), (["visible.md"], []))

    def test_unicode_and_korean_names(self) -> None:
        make(self.root, ["회의/주간 회의.md", "café.md", "emoji 🚀.md"])
        notes, _ = walk(self.root)
        self.assertEqual(notes, ["café.md", "emoji 🚀.md", "회의/주간 회의.md"])

    def test_nfd_names_become_nfc(self) -> None:
        folder = unicodedata.normalize("NFD", "회의록")
        name = unicodedata.normalize("NFD", "주간 회의.md")
        make(self.root, [f"{folder}/{name}"], b"hello")
        [entry], _ = list_notes(self.root)
        assert isinstance(entry, FileEntry)
        self.assertEqual(entry.rel_path, "회의록/주간 회의.md")
        self.assertTrue(unicodedata.is_normalized("NFC", entry.rel_path))
        self.assertEqual(Path(entry.abs_path).read_bytes(), b"hello")

    def test_names_equal_after_normalisation(self) -> None:
        make(self.root, [unicodedata.normalize(form, "é.md") for form in ("NFC", "NFD")])
        notes, warnings = walk(self.root)
        self.assertEqual(notes, ["é.md"])
        self.assertEqual(len(warnings), 1)
        self.assertIn("normalisation", warnings[0][1])

    def test_too_large(self) -> None:
        make(self.root, ["big.md"], b"x" * 101)
        make(self.root, ["edge.md"], b"x" * 100)
        notes, warnings = walk(self.root, max_bytes=100)
        self.assertEqual(notes, ["edge.md"])
        self.assertEqual(warnings, [("big.md", "file too large: 101 bytes")])

    def test_fifo_is_not_a_note(self) -> None:
        os.mkfifo(self.root / "pipe.md")
        self.assertEqual(walk(self.root), ([], []))

    def test_missing_root_raises(self) -> None:
        self.assertRaises(FileNotFoundError, list_notes, self.root / "nope")
        make(self.root, ["file.md"])
        self.assertRaises(NotADirectoryError, list_notes, self.root / "file.md")


class SymlinkTests(VaultCase):
    def test_link_to_ancestor_terminates(self) -> None:
        make(self.root, ["a/b/note.md"])
        os.symlink("../..", self.root / "a" / "b" / "up")
        os.symlink(".", self.root / "self")
        self.assertEqual(walk(self.root), (["a/b/note.md"], []))

    def test_folders_linking_to_each_other(self) -> None:
        make(self.root, ["x/in_x.md", "y/in_y.md"])
        os.symlink("../y", self.root / "x" / "to_y")
        os.symlink("../x", self.root / "y" / "to_x")
        self.assertEqual(walk(self.root), (["x/in_x.md", "y/in_y.md"], []))

    def test_symlink_cycle_between_links(self) -> None:
        os.symlink("two", self.root / "one")
        os.symlink("one", self.root / "two")
        os.symlink("loop.md", self.root / "loop.md")
        make(self.root, ["real.md"])
        notes, warnings = walk(self.root)
        self.assertEqual(notes, ["real.md"])
        self.assertEqual(warnings, [("loop.md", "skipped: broken symlink")])

    def test_escaping_links_are_not_followed(self) -> None:
        outside = Path(self.mktemp()).absolute()
        make(outside, ["secret.md", "folder/deep.md"])
        make(self.root, ["inside.md"])
        os.symlink(outside / "folder", self.root / "out_dir")
        os.symlink(outside / "secret.md", self.root / "out_file.md")
        os.symlink(outside / "secret.md", self.root / "out_file.txt")
        notes, warnings = walk(self.root)
        self.assertEqual(notes, ["inside.md"])
        self.assertEqual(warnings, [("out_dir", "skipped: symlink to outside the vault"),
                                    ("out_file.md", "skipped: symlink to outside the vault")])

    def test_inside_folder_link_followed_once(self) -> None:
        make(self.root, ["real/note.md"])
        os.symlink("real", self.root / "alias")
        os.symlink("real", self.root / "0first")
        self.assertEqual(walk(self.root), (["real/note.md"], []))

    def test_link_to_unvisited_folder_is_followed(self) -> None:
        make(self.root, [".archive/2025/old.md", "current.md"])
        os.symlink(".archive/2025", self.root / "archive")
        os.symlink(".archive/2025/old.md", self.root / "pinned.md")
        self.assertEqual(walk(self.root), (["current.md", "pinned.md", "archive/old.md"], []))

    def test_vault_root_through_a_symlink(self) -> None:
        make(self.root, ["n.md", "sub/m.md"])
        link = Path(self.mktemp()).absolute()
        os.symlink(self.root, link)
        os.symlink("sub", self.root / "again")
        entries, _ = list_notes(link)
        self.assertEqual([e.rel_path for e in entries], ["n.md", "sub/m.md"])
        self.assertTrue(entries[0].abs_path.startswith(str(link)))


class ErrorAndStopTests(VaultCase):
    def test_unreadable_folder_warns_and_goes_on(self) -> None:
        if os.geteuid() == 0:
            self.skipTest("root can read any folder")
        make(self.root, ["locked/x.md", "open/y.md"])
        (self.root / "locked").chmod(0)
        self.addCleanup((self.root / "locked").chmod, 0o755)
        notes, warnings = walk(self.root)
        self.assertEqual(notes, ["open/y.md"])
        self.assertEqual([path for path, _ in warnings], ["locked"])
        self.assertIn("cannot read folder", warnings[0][1])

    def test_folder_vanishing_warns_and_goes_on(self) -> None:
        make(self.root, ["a/x.md", "b/y.md", "c/z.md"])

        calls: list[int] = []

        def remove_b() -> bool:
            # Called before each folder is read: the second time, "b" is already listed.
            calls.append(1)
            target = self.root / "b"
            if len(calls) == 2:
                (target / "y.md").unlink()
                target.rmdir()
            return False

        notes, warnings = walk(self.root, should_stop=remove_b)
        self.assertEqual(notes, ["a/x.md", "c/z.md"])
        self.assertEqual([path for path, _ in warnings], ["b"])
        self.assertIn("cannot read folder", warnings[0][1])

    def test_should_stop_between_folders(self) -> None:
        make(self.root, ["top.md", "a/x.md", "b/y.md"])
        calls: list[int] = []

        def stop_after(n: int) -> Callable[[], bool]:
            def should_stop() -> bool:
                calls.append(1)
                return len(calls) > n
            return should_stop

        self.assertEqual(walk(self.root, should_stop=stop_after(2))[0], ["top.md", "a/x.md"])
        calls.clear()
        self.assertEqual(walk(self.root, should_stop=stop_after(0))[0], [])


class IsInsideTests(VaultCase):
    def test_containment(self) -> None:
        make(self.root, ["n.md"])
        sibling = Path(str(self.root) + "2")
        sibling.mkdir()
        os.symlink(sibling, self.root / "escape")
        root = str(self.root)
        self.assertTrue(is_inside(root, root))
        self.assertTrue(is_inside(root, str(self.root / "n.md")))
        self.assertTrue(is_inside(root, str(self.root / "missing" / "x.md")))
        self.assertFalse(is_inside(root, str(sibling / "n.md")))
        self.assertFalse(is_inside(root, str(self.root / "escape" / "n.md")))
        self.assertFalse(is_inside(root, str(self.root / ".." / "other.md")))
        self.assertFalse(is_inside(root, "/"))


class NoteFoldersTests(VaultCase):
    def test_visible_real_folders_only(self) -> None:
        make(self.root, ["a/x.md", "a/b/y.md", "c/z.md", ".git/objects/o", ".obsidian/w.json",
                         "node_modules/p/readme.md", "a/.trash/t.md"])
        os.symlink(self.root / "a", self.root / "link-to-a")
        os.mkdir(self.root / "empty")
        root = str(self.root)
        self.assertEqual(note_folders(root), [os.path.join(root, *p) for p in
                                              [("a",), ("c",), ("empty",), ("a", "b")]])

    def test_unreadable_root(self) -> None:
        self.assertEqual(note_folders(str(self.root / "missing")), [])
