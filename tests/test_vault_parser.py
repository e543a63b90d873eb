"""Parsing one note: decoding, frontmatter, title, tags, links, tasks and date."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from enttok.vault.parser import Link, NotText, ParsedNote, Task, parse_note


def parse(text: str, rel_path: str = "notes/Note.md") -> ParsedNote:
    return parse_note(rel_path, text.encode("utf-8"))


class DecodingTests(SynchronousTestCase):
    def test_bom_and_crlf(self) -> None:
        note = parse_note("a.md", b"\xef\xbb\xbf---\r\ntitle: T\r\n---\r\n# H\r\nline\rmore\r\n")
        self.assertEqual(note.frontmatter, {"title": "T"})
        self.assertEqual(note.body, "# H\nline\nmore\n")
        self.assertEqual(note.title, "T")

    def test_empty_file(self) -> None:
        note = parse_note("daily/Empty.md", b"")
        self.assertEqual((note.title, note.body, note.frontmatter, note.tags, note.links,
                          note.tasks, note.date, note.warnings),
                         ("Empty", "", {}, (), (), (), None, ()))

    def test_nul_byte_is_not_text(self) -> None:
        with self.assertRaises(NotText) as caught:
            parse_note("x.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        self.assertIn("NUL", str(caught.exception))

    def test_invalid_utf8_is_not_text(self) -> None:
        with self.assertRaises(NotText) as caught:
            parse_note("x.md", "caf\u00e9".encode("latin-1"))
        self.assertIn("UTF-8", str(caught.exception))

    def test_nfd_hangul_becomes_nfc(self) -> None:
        text = "---\ntags: [회의]\n---\n주간 회의 메모 #검색\n"
        nfd = unicodedata.normalize("NFD", text)
        self.assertNotEqual(nfd, text)
        note = parse_note(unicodedata.normalize("NFD", "meetings/주간 회의.md"),
                          nfd.encode("utf-8"))
        self.assertEqual(note.title, "주간 회의")
        self.assertEqual(note.body, "주간 회의 메모 #검색\n")
        self.assertEqual(note.tags, ("회의", "검색"))
        self.assertTrue(unicodedata.is_normalized("NFC", note.title))


class FrontmatterTests(SynchronousTestCase):
    def test_mapping(self) -> None:
        note = parse("---\ntitle: Hello\nrating: 3\n---\nBody\n")
        self.assertEqual(note.frontmatter, {"title": "Hello", "rating": 3})
        self.assertEqual(note.body, "Body\n")
        self.assertEqual(note.warnings, ())

    def test_dots_terminator_and_empty_block(self) -> None:
        self.assertEqual(parse("---\na: 1\n...\nBody").frontmatter, {"a": 1})
        note = parse("---\n---\nBody")
        self.assertEqual((note.frontmatter, note.body, note.warnings), ({}, "Body", ()))

    def test_unclosed_block_is_body(self) -> None:
        note = parse("---\na: 1\nno end\n")
        self.assertEqual(note.frontmatter, {})
        self.assertEqual(note.body, "---\na: 1\nno end\n")

    def test_invalid_yaml_warns_and_still_parses(self) -> None:
        note = parse("---\ntitle: [unclosed\n---\n# Real title\n- [ ] task #tag\n")
        self.assertEqual(note.frontmatter, {})
        self.assertEqual(len(note.warnings), 1)
        self.assertTrue(note.warnings[0].startswith("invalid YAML frontmatter: "))
        self.assertEqual(note.body, "# Real title\n- [ ] task #tag\n")
        self.assertEqual(note.title, "Real title")
        self.assertEqual(note.tags, ("tag",))
        self.assertEqual(note.tasks, (Task("task #tag", False, 5),))

    def test_not_a_mapping_warns(self) -> None:
        note = parse("---\n- a\n- b\n---\nBody")
        self.assertEqual(note.frontmatter, {})
        self.assertIn("not a mapping", note.warnings[0])
        self.assertEqual(note.body, "Body")

    def test_json_safe_values(self) -> None:
        note = parse("---\ndate: 2026-11-27\nwhen: 2026-11-27 09:30:00+09:00\n"
                     "bad: 2026-02-30\nblob: !!binary aGk=\nset: !!set {b, a}\n"
                     "inf: .inf\n1: one\nnull: nothing\n---\n")
        self.assertEqual(note.warnings, ())
        fm = note.frontmatter
        self.assertEqual(fm["date"], "2026-11-27")
        self.assertEqual(fm["when"], "2026-11-27 09:30:00+09:00")
        self.assertEqual(fm["bad"], "2026-02-30")
        self.assertEqual(fm["blob"], "aGk=")
        self.assertEqual(fm["set"], ["a", "b"])
        self.assertEqual(fm["inf"], "inf")
        self.assertEqual((fm["1"], fm["null"]), ("one", "nothing"))
        json.dumps(fm, allow_nan=False)

    def test_recursive_alias_warns(self) -> None:
        note = parse("---\na: &x [1, *x]\n---\nBody")
        self.assertEqual(note.frontmatter, {})
        self.assertIn("nested", note.warnings[0])

    def test_alias_bomb_warns(self) -> None:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
        note = parse("---\n" + "\n".join(lines) + "\n---\nBody")
        self.assertEqual(note.frontmatter, {})
        self.assertIn("too large", note.warnings[0])


class TitleTests(SynchronousTestCase):
    def test_frontmatter_title_wins(self) -> None:
        self.assertEqual(parse("---\ntitle: ' From FM '\n---\n# Heading\n").title, "From FM")

    def test_non_string_frontmatter_title_ignored(self) -> None:
        self.assertEqual(parse("---\ntitle: 42\n---\n# Heading\n").title, "Heading")

    def test_first_h1(self) -> None:
        text = ("intro\n## Second level\n```\n# not a heading\n```\n"
                "#notheading\n# Real # \n# Later\n")
        self.assertEqual(parse(text).title, "Real")

    def test_closing_hashes_and_csharp(self) -> None:
        self.assertEqual(parse("# Notes on C#\n").title, "Notes on C#")
        self.assertEqual(parse("# Title ##\n").title, "Title")

    def test_file_name(self) -> None:
        self.assertEqual(parse("no heading", "a/b/Weekly sync.MD").title, "Weekly sync")
        self.assertEqual(parse("", "회의록.md").title, "회의록")


class TagTests(SynchronousTestCase):
    def test_frontmatter_forms(self) -> None:
        self.assertEqual(parse("---\ntags: [a, '#b', c/d]\n---\n").tags, ("a", "b", "c/d"))
        self.assertEqual(parse("---\ntags: '#x, y z'\n---\n").tags, ("x", "y", "z"))
        self.assertEqual(parse("---\ntags: solo\n---\n").tags, ("solo",))
        self.assertEqual(parse("---\ntags: [2024, y2024, null]\n---\n").tags, ("y2024",))

    def test_inline_rules(self) -> None:
        text = (
            "# Heading is not a tag\n"
            "#start of line, #mid-word ok, #nested/tag, #한글태그, #snake_case.\n"
            "#123 is a number, #y1984 is not, word#glued is not, ##double not\n"
            "see https://example.com/page#fragment and [[Note#Heading]] and [[#Local]]\n"
            "[text](other.md#anchor) `#inline_code` ``#more ` code``\n"
            "```\n#in_fence\n```\n"
            "~~~python\n#tilde_fence\n~~~\n"
            "## Heading with #heading_tag\n"
        )
        self.assertEqual(parse(text).tags, (
            "start", "mid-word", "nested/tag", "한글태그", "snake_case", "y1984", "heading_tag"))

    def test_order_and_dedup(self) -> None:
        note = parse("---\ntags: [Project]\n---\n#b #project #a #b #A\n")
        self.assertEqual(note.tags, ("Project", "b", "a"))


class LinkTests(SynchronousTestCase):
    def test_wiki_links(self) -> None:
        note = parse("[[Target]] [[Other|alias]] [[Note#Heading|x]] ![[image.png]] "
                     "[[#Local heading]] | [[Table\\|alias]] [[주간 회의]]")
        self.assertEqual(note.links, tuple(Link(t, "wiki") for t in (
            "Target", "Other", "Note", "image.png", "Table", "주간 회의")))

    def test_markdown_links(self) -> None:
        note = parse("[docs](https://docs.twisted.org/a#b) ![img](pic.png) "
                     "[rel](../My%20Note.md#Heading) [angle](<with space.md>) "
                     '[wiki](https://en.wikipedia.org/wiki/Foo_(bar) "title") [local](#anchor) '
                     "[![badge](b.svg)](https://ci.example)")
        self.assertEqual(note.links, tuple(Link(t, "markdown") for t in (
            "https://docs.twisted.org/a#b", "../My Note.md", "with space.md",
            "https://en.wikipedia.org/wiki/Foo_(bar)", "https://ci.example")))

    def test_not_in_code_and_deduplicated(self) -> None:
        note = parse("`[[InCode]]` [[A]] [[A|again]]\n```\n[[Fenced]] [x](y.md)\n```\n")
        self.assertEqual(note.links, (Link("A", "wiki"),))


class TaskTests(SynchronousTestCase):
    def test_task_forms_and_lines(self) -> None:
        text = ("---\ntitle: t\n---\n"
                "- [ ] open\n* [x] done\n+ [X] DONE\n1. [ ] numbered\n"
                "    - [x] indented\n> - [ ] quoted\n- [ ]\n"
                "- [] not\n- [x]not\n-[ ] not\n- [-] not\n"
                "```\n- [ ] fenced\n```\n")
        self.assertEqual(parse(text).tasks, (
            Task("open", False, 4), Task("done", True, 5), Task("DONE", True, 6),
            Task("numbered", False, 7), Task("indented", True, 8), Task("quoted", False, 9),
            Task("", False, 10)))


class DateTests(SynchronousTestCase):
    def test_from_file_name(self) -> None:
        self.assertEqual(parse("x", "daily/2026-11-27.md").date, "2026-11-27")
        self.assertEqual(parse("x", "log 2026-01-05 standup.md").date, "2026-01-05")

    def test_folder_name_does_not_count(self) -> None:
        self.assertIsNone(parse("x", "2026-11-27/notes.md").date)

    def test_file_name_wins_over_frontmatter(self) -> None:
        self.assertEqual(parse("---\ndate: 2020-01-01\n---\n", "2026-11-27.md").date,
                         "2026-11-27")

    def test_from_frontmatter(self) -> None:
        self.assertEqual(parse("---\ndate: 2026-11-25\n---\n").date, "2026-11-25")
        self.assertEqual(parse("---\ndate: 2026-11-25T10:00:00Z\n---\n").date, "2026-11-25")
        self.assertEqual(parse("---\ndate: '2026-11-25 meeting'\n---\n").date, "2026-11-25")

    def test_invalid_dates(self) -> None:
        self.assertIsNone(parse("---\ndate: 2026-02-30\n---\n").date)
        self.assertIsNone(parse("---\ndate: soon\n---\n").date)
        self.assertIsNone(parse("---\ndate: 20261125\n---\n").date)
        self.assertEqual(parse("---\ndate: 2026-11-25\n---\n", "2026-13-01.md").date,
                         "2026-11-25")


class RobustnessTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.text(), st.binary())
    def test_arbitrary_bytes(self, rel_path: str, raw: bytes) -> None:
        try:
            note = parse_note(rel_path, raw)
        except NotText:
            return
        json.dumps(note.frontmatter, allow_nan=False)

    @settings(max_examples=200, deadline=None)
    @given(st.text(), st.text(), st.sampled_from(["", "---\n", "\ufeff---\n"]))
    def test_arbitrary_text(self, head: str, body: str, opener: str) -> None:
        raw = f"{opener}{head}\n---\n{body}".encode()
        try:
            note = parse_note("x.md", raw)
        except NotText:
            self.assertIn(b"\x00", raw)
            return
        json.dumps(note.frontmatter, allow_nan=False)
        self.assertTrue(unicodedata.is_normalized("NFC", note.body))
        self.assertNotIn("\r", note.body)

    def test_long_hostile_lines_are_fast(self) -> None:
        line = "[" * 20000 + "](" * 20000 + "`" * 3 + " " * 20000 + "a.b" * 20000 + " #t\n"
        note = parse(line + "- " + " " * 20000 + "[x]\n")
        self.assertEqual(note.links, ())
