"""Chunking note bodies: headings, sizes, code fences, overlap and stability."""

from __future__ import annotations

import hashlib
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from enttok.vault.chunker import Chunk, approx_tokens, chunk_note

SMALL = {"target_tokens": 30, "max_tokens": 40, "overlap_tokens": 8}


def words(n: int, word: str = "word") -> str:
    """A paragraph of C{n} distinct one-token words, in sentences of five words."""
    items = [f"{word}{i}" for i in range(n)]
    return " ".join(" ".join(items[i:i + 5]) + "." for i in range(0, n, 5))


def fence_lines(chunk: Chunk) -> int:
    return sum(1 for line in chunk.text.split("\n") if line.lstrip().startswith("```"))


class ApproxTokensTests(SynchronousTestCase):
    def test_counts(self) -> None:
        self.assertEqual(approx_tokens(""), 0)
        self.assertEqual(approx_tokens("  \n\t"), 0)
        self.assertEqual(approx_tokens("Hello, world!"), 4)
        self.assertEqual(approx_tokens("foo_bar 42 3.14"), 5)
        self.assertEqual(approx_tokens("안녕하세요 세계"), 7)
        self.assertEqual(approx_tokens("漢字かなカナ"), 6)
        self.assertEqual(approx_tokens("회의abc"), 3)


class StructureTests(SynchronousTestCase):
    def test_blank_body(self) -> None:
        self.assertEqual(chunk_note(""), [])
        self.assertEqual(chunk_note(" \n\n\t\n"), [])

    def test_small_note_is_one_chunk_under_its_title(self) -> None:
        body = "# Project\n\nIntro.\n\n## Decisions\n- use Twisted\n"
        [chunk] = chunk_note(body)
        self.assertEqual(chunk.heading_path, ("Project",))
        self.assertEqual(chunk.text, "Intro.\n\n## Decisions\n- use Twisted")
        self.assertEqual(chunk.embed_text, "Project\n\n" + chunk.text)
        self.assertEqual(chunk.content_hash,
                         hashlib.sha256(chunk.embed_text.encode()).hexdigest())
        self.assertEqual(chunk.token_count, approx_tokens(chunk.text))
        self.assertEqual(chunk.ordinal, 0)

    def test_no_heading(self) -> None:
        [chunk] = chunk_note("\n\nJust text.\n")
        self.assertEqual((chunk.heading_path, chunk.text, chunk.embed_text),
                         ((), "Just text.", "Just text."))

    def test_lone_heading(self) -> None:
        [chunk] = chunk_note("# Meeting with Bob\n")
        self.assertEqual((chunk.heading_path, chunk.text), ((), "# Meeting with Bob"))

    def test_heading_paths(self) -> None:
        body = (f"Preamble {words(25)}\n"
                f"# Project\n{words(25, 'p')}\n"
                f"## Decisions\n{words(25, 'd')}\n"
                f"### Storage\n{words(25, 's')}\n"
                f"## Risks\n{words(25, 'r')}\n"
                f"# Other\n{words(25, 'o')}\n")
        chunks = chunk_note(body, **SMALL)
        self.assertEqual([c.heading_path for c in chunks], [
            (), ("Project",), ("Project", "Decisions"), ("Project", "Decisions", "Storage"),
            ("Project", "Risks"), ("Other",)])
        self.assertEqual([c.ordinal for c in chunks], list(range(6)))
        self.assertEqual(chunks[3].embed_text,
                         "Project > Decisions > Storage\n\n" + chunks[3].text)
        self.assertTrue(chunks[3].text.startswith("s0 s1"))

    def test_headings_inside_fences_do_not_count(self) -> None:
        body = "# Real\n```python\n# not a heading\nx = 1\n```\n~~~\n## nor this\n~~~\n"
        [chunk] = chunk_note(body)
        self.assertEqual(chunk.heading_path, ("Real",))
        self.assertIn("# not a heading", chunk.text)

    def test_tiny_sections_merge_under_common_parent(self) -> None:
        body = (f"# Big\n{words(40, 'b')}\n"
                "## A\nalpha one\n## B\nbeta two\n### B1\nbeta child\n## C\ngamma\n")
        chunks = chunk_note(body, **SMALL)
        merged = [c for c in chunks if "alpha" in c.text]
        self.assertEqual(len(merged), 1)
        self.assertEqual(merged[0].heading_path, ("Big",))
        self.assertEqual(merged[0].text,
                         "## A\nalpha one\n## B\nbeta two\n### B1\nbeta child\n## C\ngamma")
        self.assertTrue(all(c.token_count <= SMALL["target_tokens"] for c in chunks[-1:]))

    def test_merging_respects_the_target(self) -> None:
        sections = "".join(f"## S{i}\n{words(8, f's{i}x')}\n" for i in range(6))
        chunks = chunk_note(f"# Top\n{sections}", **SMALL)
        self.assertEqual([c.heading_path for c in chunks],
                         [("Top",), ("Top",), ("Top",)])
        self.assertTrue(all(c.token_count <= 30 for c in chunks))
        self.assertEqual([c.text.split("\n")[0] for c in chunks], ["## S0", "## S2", "## S4"])

    def test_single_small_child_keeps_its_own_path(self) -> None:
        body = f"# Top\n## Big\n{words(40)}\n## Small\nonly this\n"
        chunks = chunk_note(body, **SMALL)
        self.assertEqual(chunks[-1].heading_path, ("Top", "Small"))
        self.assertEqual(chunks[-1].text, "only this")


class SizeTests(SynchronousTestCase):
    def test_max_tokens_respected(self) -> None:
        body = "# Long\n" + "\n\n".join(words(n, f"w{n}x") for n in (3, 80, 17, 120, 45))
        body += "\n" + " ".join(f"z{i}" for i in range(300)) + "\n"  # one line, no sentences
        for target, max_tokens, overlap in ((30, 40, 8), (250, 320, 40), (50, 50, 10)):
            chunks = chunk_note(body, target, max_tokens, overlap)
            self.assertGreater(len(chunks), 1)
            for chunk in chunks:
                self.assertLessEqual(chunk.token_count, max_tokens)
                self.assertEqual(chunk.token_count, approx_tokens(chunk.text))

    def test_code_fence_never_split(self) -> None:
        fence = ("```python\n" + "\n\n".join(f"# step {i}\nvalue_{i} = compute({i})"
                                              for i in range(40)) + "\n```")
        body = f"# Code\n{words(50)}\n\n{fence}\n\n{words(50, 'after')}\n"
        chunks = chunk_note(body, **SMALL)
        holding = [c for c in chunks if "value_0" in c.text]
        self.assertEqual(len(holding), 1)
        self.assertEqual(holding[0].text, fence)
        self.assertGreater(holding[0].token_count, SMALL["max_tokens"])
        for chunk in chunks:
            self.assertEqual(fence_lines(chunk) % 2, 0)
            if chunk is not holding[0]:
                self.assertLessEqual(chunk.token_count, SMALL["max_tokens"])
        self.assertEqual({c.heading_path for c in chunks}, {("Code",)})

    def test_small_fence_stays_whole_with_overlap_elsewhere(self) -> None:
        fence = "~~~\nline one\n\nline two\n~~~"
        body = f"{words(28)}\n\n{fence}\n\n{words(28, 'x')}\n"
        chunks = chunk_note(body, **SMALL)
        self.assertEqual(sum(fence in c.text for c in chunks), 1)
        self.assertTrue(all(fence_lines(c) % 2 == 0 for c in chunks))
        self.assertFalse(any(c.text.startswith(("line two", "~~~\n")) for c in chunks[1:]
                             if fence not in c.text))

    def test_overlap_on_split_sections_only(self) -> None:
        body = f"# Split\n{words(100)}\n# Whole\n{words(20, 'small')}\n"
        chunks = chunk_note(body, **SMALL)
        split = [c for c in chunks if c.heading_path == ("Split",)]
        self.assertGreater(len(split), 2)
        for before, after in itertools.pairwise(split):
            first_word = after.text.split()[0]
            self.assertIn(first_word, before.text.split())
            shared = before.text[before.text.rindex(first_word):]
            self.assertTrue(after.text.startswith(shared))
            self.assertGreaterEqual(approx_tokens(shared), 3)
            self.assertLessEqual(approx_tokens(shared), SMALL["overlap_tokens"])
        [whole] = [c for c in chunks if c.heading_path == ("Whole",)]
        self.assertTrue(whole.text.startswith("small0 "))

    def test_no_overlap_requested(self) -> None:
        chunks = chunk_note(words(100), 30, 40, 0)
        self.assertEqual(" ".join(c.text for c in chunks), words(100))

    def test_bad_sizes(self) -> None:
        self.assertRaises(ValueError, chunk_note, "x", 0, 10, 0)
        self.assertRaises(ValueError, chunk_note, "x", 20, 10, 0)
        self.assertRaises(ValueError, chunk_note, "x", 10, 20, -1)


class KoreanTests(SynchronousTestCase):
    def test_korean_text_splits_at_sentences(self) -> None:
        sentences = [f"오늘 회의에서 검색 품질 {i}번 항목을 논의했다." for i in range(40)]
        body = "# 주간 회의\n## 결정 사항\n" + " ".join(sentences) + "\n"
        chunks = chunk_note(body, 60, 80, 12)
        self.assertGreater(len(chunks), 3)
        for chunk in chunks:
            self.assertEqual(chunk.heading_path, ("주간 회의", "결정 사항"))
            self.assertLessEqual(chunk.token_count, 80)
            self.assertTrue(chunk.text.endswith("했다."), chunk.text)
        self.assertTrue(chunks[0].embed_text.startswith("주간 회의 > 결정 사항\n\n오늘"))
        text = " ".join(c.text for c in chunks)
        for sentence in sentences:
            self.assertIn(sentence, text)

    def test_unspaced_cjk_is_cut_at_characters(self) -> None:
        chunks = chunk_note("漢" * 500, 30, 40, 8)
        self.assertTrue(all(c.token_count <= 40 for c in chunks))
        self.assertEqual("".join(c.text[8:] if i else c.text for i, c in enumerate(chunks)),
                         "漢" * 500)


class StabilityTests(SynchronousTestCase):
    def note(self, decisions: str) -> str:
        return (f"# Project\n{words(20, 'intro')}\n"
                f"## Context\n{words(60, 'ctx')}\n"
                f"## Decisions\n{decisions}\n"
                f"## Risks\n{words(60, 'risk')}\n"
                f"# Archive\n## Old\nold stuff\n## Older\nolder stuff\n")

    def test_deterministic(self) -> None:
        body = self.note(words(60, "d"))
        self.assertEqual(chunk_note(body, **SMALL), chunk_note(body, **SMALL))
        self.assertEqual(chunk_note(body), chunk_note(body))

    def test_edit_changes_only_that_section(self) -> None:
        before = chunk_note(self.note(words(60, "d")), **SMALL)
        after = chunk_note(self.note(words(60, "d") + " One more decision."), **SMALL)
        edited = ("Project", "Decisions")
        self.assertEqual([c.content_hash for c in before if c.heading_path != edited],
                         [c.content_hash for c in after if c.heading_path != edited])
        self.assertNotEqual([c.content_hash for c in before if c.heading_path == edited],
                            [c.content_hash for c in after if c.heading_path == edited])

    def test_edit_in_small_subtree_keeps_neighbours(self) -> None:
        body = "# A\n## a1\nfirst\n## a2\nsecond\n# B\n## b1\nthird\n# C\nfourth\n"
        small = {"target_tokens": 12, "max_tokens": 16, "overlap_tokens": 2}
        before = chunk_note(body, **small)
        after = chunk_note(body.replace("first", "first, edited"), **small)
        self.assertEqual(len(before), len(after))
        changed = [(b.heading_path, b.text) for b, a in zip(before, after, strict=True)
                   if b.content_hash != a.content_hash]
        self.assertEqual(changed, [(("A",), "## a1\nfirst\n## a2\nsecond")])


_LINES = st.one_of(
    st.lists(st.sampled_from(["alpha", "beta", "gamma", "x1", "회의", "결정", ",", "."]),
             min_size=1, max_size=8).map(" ".join),
    st.sampled_from(["", "", "# Top", "## Mid", "### Low", "- [ ] task", "오늘 회의를 했다."]),
    st.lists(st.sampled_from(["code()", "# comment", "", "x = 1"]), max_size=12).map(
        lambda body: "\n".join(["```", *body, "```"])),
)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(_LINES, max_size=40))
    def test_invariants(self, lines: list[str]) -> None:
        body = "\n".join(lines)
        chunks = chunk_note(body, **SMALL)
        self.assertEqual(chunks, chunk_note(body, **SMALL))
        for chunk in chunks:
            self.assertTrue(chunk.text.strip())
            self.assertEqual(fence_lines(chunk) % 2, 0, chunk.text)
            if chunk.token_count > SMALL["max_tokens"]:
                self.assertTrue(chunk.text.startswith("```"), chunk.text)
                self.assertTrue(chunk.text.endswith("```"), chunk.text)
        for line in body.split("\n"):
            if line.strip() and not line.startswith("#"):
                self.assertTrue(any(line in c.text for c in chunks), line)
