"""Daily notes on disk: finding a day's note, templates, and appends that lose nothing."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from datetime import date
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from enttok.validation import ValidationError
from enttok.vault import daily
from enttok.vault.daily import Base, NoteChanged, NoteProblem

DAY = date(2026, 12, 4)
HEADING = "## Suggestions"
NO_FILE = Base()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class InsertLinesTests(SynchronousTestCase):
    def test_new_heading_at_the_end_after_a_blank_line(self) -> None:
        text, added, skipped = daily.insert_lines("# Day\n\nwrote code\n", HEADING, ["- a", "- b"])
        self.assertEqual(text, "# Day\n\nwrote code\n\n## Suggestions\n- a\n- b\n")
        self.assertEqual((added, skipped), (2, 0))

    def test_text_without_a_final_newline(self) -> None:
        text, _, _ = daily.insert_lines("# Day\nlast", HEADING, ["- a"])
        self.assertEqual(text, "# Day\nlast\n\n## Suggestions\n- a\n")

    def test_empty_note(self) -> None:
        self.assertEqual(daily.insert_lines("", HEADING, ["- a"])[0], "## Suggestions\n- a\n")

    def test_appends_at_the_end_of_an_existing_section(self) -> None:
        note = ("# Day\n\n## Suggestions\n- old\n\n### Detail\nkept\n\n"
                "## Notes\nmine\n")
        text, added, _ = daily.insert_lines(note, HEADING, ["- new"])
        self.assertEqual(text, "# Day\n\n## Suggestions\n- old\n\n### Detail\nkept\n- new\n\n"
                               "## Notes\nmine\n")
        self.assertEqual(added, 1)

    def test_empty_section_right_before_the_next_heading(self) -> None:
        text, _, _ = daily.insert_lines("## Suggestions\n## Notes\nx", HEADING, ["- new"])
        self.assertEqual(text, "## Suggestions\n- new\n## Notes\nx")

    def test_section_at_the_end_without_newline(self) -> None:
        text, _, _ = daily.insert_lines("## Suggestions\n- old", HEADING, ["- new"])
        self.assertEqual(text, "## Suggestions\n- old\n- new\n")

    def test_heading_matched_loosely_but_not_in_code_or_front_matter(self) -> None:
        note = ("---\n# suggestions: a YAML comment\n---\n"
                "```\n## Suggestions\n```\n"
                "##   suggestions  ##\n- old\n")
        text, _, _ = daily.insert_lines(note, HEADING, ["- new"])
        self.assertEqual(text, note + "- new\n")

    def test_another_level_is_another_heading(self) -> None:
        text, _, _ = daily.insert_lines("### Suggestions\n- x\n", HEADING, ["- new"])
        self.assertEqual(text, "### Suggestions\n- x\n\n## Suggestions\n- new\n")

    def test_korean_heading_nfd_in_the_note(self) -> None:
        nfd = unicodedata.normalize("NFD", "## 오늘 제안")
        text, added, _ = daily.insert_lines(f"{nfd}\n- 회의\n", "## 오늘 제안", ["- 코드 리뷰"])
        self.assertEqual(text, f"{nfd}\n- 회의\n- 코드 리뷰\n")
        self.assertEqual(added, 1)

    def test_crlf_notes_get_crlf_lines(self) -> None:
        text, _, _ = daily.insert_lines("# Day\r\n\r\n## Suggestions\r\n- old\r\n", HEADING,
                                        ["- a", "- b"])
        self.assertEqual(text, "# Day\r\n\r\n## Suggestions\r\n- old\r\n- a\r\n- b\r\n")

    def test_lines_already_there_are_skipped(self) -> None:
        text, added, skipped = daily.insert_lines("- [ ] review o/r#12\n", HEADING,
                                                  ["- [ ] review o/r#12", "- b", "- b"])
        self.assertEqual(text, "- [ ] review o/r#12\n\n## Suggestions\n- b\n")
        self.assertEqual((added, skipped), (1, 2))

    @given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
           st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")),
                            min_size=1, max_size=20).filter(str.strip), min_size=1,
                    max_size=5))
    def test_the_user_text_is_kept(self, note: str, lines: list[str]) -> None:
        text, added, skipped = daily.insert_lines(note, HEADING, lines)
        self.assertEqual(added + skipped, len(lines))
        # Nothing of the note is lost or reordered: it is the new text minus insertions.
        position = 0
        for char in note:
            position = text.index(char, position) + 1
        for line in lines:
            self.assertIn(line.strip(), text)


class SettingsChecksTests(SynchronousTestCase):
    def test_patterns(self) -> None:
        self.assertEqual(daily.check_pattern("일기/YYYY년 MM월 DD일.md", "p"),
                         "일기/YYYY년 MM월 DD일.md")
        for bad in ("/abs/YYYY-MM-DD.md", "../YYYY-MM-DD.md", "a/../YYYY-MM-DD.md",
                    ".hidden/YYYY-MM-DD.md", "YYYY-MM.md", "YYYY-MM-DD.txt", "a//YYYY-MM-DD.md",
                    "a\\YYYY-MM-DD.md", "", 3):
            self.assertRaises(ValidationError, daily.check_pattern, bad, "p")

    def test_headings(self) -> None:
        self.assertEqual(daily.check_heading("### 제안 ", "h"), "### 제안")
        for bad in ("Suggestions", "####### Seven", "##", "## a\n## b", "#tag", None):
            self.assertRaises(ValidationError, daily.check_heading, bad, "h")

    def test_lines(self) -> None:
        self.assertEqual(daily.check_lines(["- a  ", "- 회의"], "l"), ["- a", "- 회의"])
        for bad in ([], ["a\nb"], ["a\rb"], [" "], [1], ["x" * 2001], "a", ["a"] * 501):
            self.assertRaises(ValidationError, daily.check_lines, bad, "l")

    def test_note_path_and_template(self) -> None:
        self.assertEqual(daily.note_path("일기/YYYY/MM-DD.md", DAY), "일기/2026/12-04.md")
        self.assertEqual(daily.render_template(
            "# {{title}}\n{{date}} {{ date:dddd, DD.MM.YYYY }} {{date:ddd}} {{other}}\n",
            DAY, "daily/2026-12-04.md"),
            "# 2026-12-04\n2026-12-04 Friday, 04.12.2026 Fri {{other}}\n")


class AppendTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.vault = Path(self.mktemp()).absolute()
        self.vault.mkdir()
        self.root = os.path.realpath(self.vault)

    def append(self, rel: str, lines: list[str], base: Base = NO_FILE,
               template: str | None = None, pause: daily.Pause = daily._no_pause
               ) -> daily.Appended:
        return daily.append(self.root, rel, lines, HEADING, base, template, DAY, pause)

    def leftovers(self) -> list[str]:
        return [str(p) for p in self.vault.rglob(f"*{daily.TEMP_SUFFIX}")]

    def test_creates_from_the_template_with_folders(self) -> None:
        done = self.append("daily/2026/2026-12-04.md", ["- a"], template="# {{date}}\n\n")
        path = self.vault / "daily" / "2026" / "2026-12-04.md"
        data = path.read_bytes()
        self.assertEqual(data, b"# 2026-12-04\n\n## Suggestions\n- a\n")
        self.assertEqual((done.created, done.appended), (True, 1))
        self.assertEqual(done.state, daily.NoteState("daily/2026/2026-12-04.md", True, sha(data),
                                                     path.stat().st_mtime_ns, len(data)))
        self.assertEqual(path.stat().st_mode & 0o777, daily.NEW_NOTE_MODE)
        self.assertEqual(self.leftovers(), [])

    def test_appends_when_the_base_matches_and_keeps_the_mode(self) -> None:
        path = self.vault / "n.md"
        path.write_bytes(b"# Mine\n")
        path.chmod(0o600)
        by_hash = self.append("n.md", ["- a"], Base(sha256=sha(b"# Mine\n")))
        self.assertEqual(path.read_bytes(), b"# Mine\n\n## Suggestions\n- a\n")
        self.assertFalse(by_hash.created)
        self.append("n.md", ["- b"], Base(mtime_ns=path.stat().st_mtime_ns))
        self.assertEqual(path.read_bytes(), b"# Mine\n\n## Suggestions\n- a\n- b\n")
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)

    def test_refuses_a_note_that_is_not_what_the_client_saw(self) -> None:
        path = self.vault / "n.md"
        path.write_bytes(b"edited by the user\n")
        for base in (NO_FILE, Base(sha256=sha(b"before\n")),
                     Base(mtime_ns=path.stat().st_mtime_ns + 1),
                     Base(sha256=sha(b"edited by the user\n"), mtime_ns=1)):
            error = self.assertRaises(NoteChanged, self.append, "n.md", ["- a"], base)
            self.assertEqual(error.state.sha256, sha(b"edited by the user\n"))
        self.assertEqual(path.read_bytes(), b"edited by the user\n")
        missing = self.assertRaises(NoteChanged, self.append, "gone.md", ["- a"],
                                    Base(sha256=sha(b"x")))
        self.assertFalse(missing.state.exists)
        self.assertFalse((self.vault / "gone.md").exists())

    def test_an_edit_while_writing_wins(self) -> None:
        """An editor that saves between our read and our rename keeps its text."""
        path = self.vault / "n.md"
        path.write_bytes(b"v1\n")

        def editor_saves(stage: str) -> None:
            if stage == "synced":
                path.write_bytes(b"v2 from the editor, longer\n")

        error = self.assertRaises(NoteChanged, self.append, "n.md", ["- a"],
                                  Base(sha256=sha(b"v1\n")), pause=editor_saves)
        self.assertEqual(path.read_bytes(), b"v2 from the editor, longer\n")
        self.assertEqual(error.state.sha256, sha(b"v2 from the editor, longer\n"))
        self.assertEqual(self.leftovers(), [])

    def test_a_note_created_while_writing_wins(self) -> None:
        path = self.vault / "n.md"

        def editor_creates(stage: str) -> None:
            if stage == "synced":
                path.write_bytes(b"made by the user\n")

        self.assertRaises(NoteChanged, self.append, "n.md", ["- a"], pause=editor_creates)
        self.assertEqual(path.read_bytes(), b"made by the user\n")
        self.assertEqual(self.leftovers(), [])

    def test_leftovers_of_a_crash_are_removed(self) -> None:
        (self.vault / "n.md").write_bytes(b"x\n")
        (self.vault / f".n.md.abc{daily.TEMP_SUFFIX}").write_bytes(b"half")
        (self.vault / f".other.md.abc{daily.TEMP_SUFFIX}").write_bytes(b"not ours to remove")
        self.append("n.md", ["- a"], Base(sha256=sha(b"x\n")))
        self.assertEqual([p.name for p in self.vault.iterdir() if p.name.startswith(".")],
                         [f".other.md.abc{daily.TEMP_SUFFIX}"])

    def test_nothing_new_writes_nothing(self) -> None:
        path = self.vault / "n.md"
        path.write_bytes(b"- a\n")
        before = path.stat()
        done = self.append("n.md", ["- a"], Base(sha256=sha(b"- a\n")))
        self.assertEqual((done.appended, done.skipped), (0, 1))
        self.assertEqual(path.stat().st_ino, before.st_ino)

    def test_not_utf8_is_left_alone(self) -> None:
        path = self.vault / "n.md"
        path.write_bytes(b"\xff\xfe latin-1 \xe9\n")
        error = self.assertRaises(NoteProblem, self.append, "n.md", ["- a"],
                                  Base(sha256=sha(b"\xff\xfe latin-1 \xe9\n")))
        self.assertEqual(error.code, "note_not_utf8")
        self.assertEqual(path.read_bytes(), b"\xff\xfe latin-1 \xe9\n")

    def test_nfd_folder_and_file_on_disk_are_used(self) -> None:
        """A Mac-made folder (NFD bytes) is written into, not duplicated in NFC."""
        folder = self.vault / unicodedata.normalize("NFD", "일기")
        folder.mkdir()
        name = unicodedata.normalize("NFD", "회의 2026-12-04.md")
        (folder / name).write_bytes("# 회의\n".encode())
        rel = "일기/회의 2026-12-04.md"
        state = daily.read_state(self.root, rel)
        self.assertEqual((state.path, state.sha256), (rel, sha("# 회의\n".encode())))
        self.append(rel, ["- 결정 사항"], Base(sha256=state.sha256))
        self.assertEqual(os.listdir(self.vault), [folder.name])
        self.assertEqual(os.listdir(folder), [name])
        self.assertEqual((folder / name).read_text("utf-8"),
                         "# 회의\n\n## Suggestions\n- 결정 사항\n")
        # A new note in the NFD folder keeps the folder's name and an NFC file name.
        self.append("일기/2026-12-05.md", ["- 내일"])
        self.assertEqual(sorted(os.listdir(folder)), sorted([name, "2026-12-05.md"]))
        self.assertEqual(os.listdir(self.vault), [folder.name])

    def test_symlinks_out_of_the_vault_are_refused(self) -> None:
        outside = Path(self.mktemp()).absolute()
        outside.mkdir()
        (outside / "n.md").write_bytes(b"secret\n")
        (self.vault / "daily").symlink_to(outside)
        (self.vault / "link.md").symlink_to(outside / "n.md")
        for rel in ("daily/n.md", "daily/new.md", "link.md"):
            error = self.assertRaises(NoteProblem, self.append, rel, ["- a"],
                                      Base(sha256=sha(b"secret\n")))
            self.assertEqual(error.code, "outside_vault")
        self.assertEqual(sorted(os.listdir(outside)), ["n.md"])
        self.assertEqual((outside / "n.md").read_bytes(), b"secret\n")

    def test_a_symlink_inside_the_vault_stays_a_link(self) -> None:
        (self.vault / "real.md").write_bytes(b"x\n")
        (self.vault / "link.md").symlink_to(self.vault / "real.md")
        self.append("link.md", ["- a"], Base(sha256=sha(b"x\n")))
        self.assertTrue((self.vault / "link.md").is_symlink())
        self.assertEqual((self.vault / "real.md").read_bytes(), b"x\n\n## Suggestions\n- a\n")

    def test_locate_prefers_the_pattern_then_the_indexed_note(self) -> None:
        (self.vault / "journal").mkdir()
        (self.vault / "journal" / "2026-12-04.md").write_bytes(b"x")
        self.assertEqual(daily.locate(self.root, "daily/2026-12-04.md",
                                      "journal/2026-12-04.md"), "journal/2026-12-04.md")
        self.assertEqual(daily.locate(self.root, "daily/2026-12-04.md",
                                      "gone/2026-12-04.md"), "daily/2026-12-04.md")
        (self.vault / "daily").mkdir()
        (self.vault / "daily" / "2026-12-04.md").write_bytes(b"x")
        self.assertEqual(daily.locate(self.root, "daily/2026-12-04.md",
                                      "journal/2026-12-04.md"), "daily/2026-12-04.md")

    def test_templates(self) -> None:
        (self.vault / "templates").mkdir()
        (self.vault / "templates" / "일일.md").write_text("# {{date}}\n", "utf-8")
        self.assertEqual(daily.read_template(self.root, "templates/일일.md"), "# {{date}}\n")
        absolute = str(self.vault / "templates" / "일일.md")
        self.assertEqual(daily.read_template(self.root, absolute), "# {{date}}\n")
        self.assertIsNone(daily.read_template(self.root, None))
        for bad in ("templates/missing.md", "../outside.md", "templates", "/dev/zero"):
            error = self.assertRaises(NoteProblem, daily.read_template, self.root, bad)
            self.assertEqual(error.code, "template_unreadable")
