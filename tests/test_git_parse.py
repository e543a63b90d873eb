"""Parsing git log -z --numstat output however it is chunked, and patch-id output."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from enttok.connectors.git.parse import (
    BadLogOutput,
    Commit,
    LogParser,
    parse_patch_ids,
    parse_record,
    utc,
)

SHA1 = "1" * 40
SHA2 = "2" * 40


def record(sha: str, subject: str, numstat: list[tuple[str, str, str]],
           parents: str = "", date: str = "2024-05-01T18:30:00+09:00") -> bytes:
    """One commit as git writes it for L{enttok.connectors.git.parse.FORMAT} with -z."""
    head = "\x00".join([sha, parents, "me@example.com", "Me", date, date, subject]) + "\x00"
    body = "\x00" + ("\n" + "".join(f"{a}\t{d}\t{p}\x00" for a, d, p in numstat)
                     if numstat else "")
    return ("\x1e" + head + body).encode("utf-8")


def parse_chunks(data: bytes, sizes: list[int]) -> list[Commit]:
    commits: list[Commit] = []
    parser = LogParser(commits.append)
    at = 0
    for size in sizes:
        parser.feed(data[at:at + size])
        at += size
    parser.feed(data[at:])
    parser.close()
    return commits


OUTPUT = (record(SHA1, "로그인 화면 고침", [("3", "1", "로그인/화면.txt"), ("-", "-", "logo.png"),
                                       ("1", "0", "name\twith tab")], parents=SHA2)
          + record(SHA2, "a subject with \x1e inside", [])
          + record("3" * 40, "third", [("10", "2", "\x1e" + "4" * 40 + ".txt")]))


class LogParserTests(SynchronousTestCase):
    def test_record(self) -> None:
        """Fields, file names (tabs included), counts (binary files count 0), UTC dates."""
        [first, second, third] = parse_chunks(OUTPUT, [])
        self.assertEqual(first, Commit(
            SHA1, (SHA2,), "me@example.com", "Me", "2024-05-01T09:30:00Z",
            "2024-05-01T09:30:00Z", "로그인 화면 고침",
            ("로그인/화면.txt", "logo.png", "name\twith tab"), 3, 4, 1))
        self.assertEqual((second.subject, second.files, second.files_changed, second.parents),
                         ("a subject with \x1e inside", (), 0, ()))
        self.assertEqual((third.sha, third.insertions, third.deletions), ("3" * 40, 10, 2))

    @given(st.lists(st.integers(1, 40), max_size=30))
    def test_any_chunks(self, sizes: list[int]) -> None:
        """Chunk boundaries anywhere (inside a header, a UTF-8 character) change nothing."""
        self.assertEqual(parse_chunks(OUTPUT, sizes), parse_chunks(OUTPUT, []))

    def test_one_byte_at_a_time(self) -> None:
        self.assertEqual(parse_chunks(OUTPUT, [1] * len(OUTPUT)), parse_chunks(OUTPUT, []))

    def test_empty(self) -> None:
        self.assertEqual(parse_chunks(b"", []), [])

    def test_garbage(self) -> None:
        """Output that is not the asked format fails loudly instead of storing nonsense."""
        self.assertRaises(BadLogOutput, parse_chunks, b"fatal: bad revision\n", [])
        self.assertRaises(BadLogOutput, parse_record, f"{SHA1}\x00only two".encode())
        bad_count = record(SHA1, "s", [("x", "1", "a.txt")])[1:]
        self.assertRaises(ValueError, parse_record, bad_count)

    def test_utc(self) -> None:
        self.assertEqual(utc("2024-01-01T00:30:00-05:00"), "2024-01-01T05:30:00Z")
        self.assertRaises(BadLogOutput, utc, "yesterday")


class PatchIdTests(SynchronousTestCase):
    def test_pairs(self) -> None:
        output = f"{'a' * 40} {SHA1}\n{'b' * 40} {SHA2}\n\n".encode()
        self.assertEqual(parse_patch_ids(output), {SHA1: "a" * 40, SHA2: "b" * 40})
