"""Properties, checked by Hypothesis: input validation and the Markdown pipeline never
fail except in the way they document, whatever they are given.

- Job payloads and settings updates (any JSON): normalised values or a
  L{ValidationError} naming a field, never another exception (which the API
  would answer with a 500); what is accepted is accepted again unchanged.
- Request bodies (any bytes): JSON the rest of the daemon can store and send
  back, or a 400.
- Notes (any text, and Markdown-shaped text): parsed, chunked, indexed and
  searched without an error; the results keep their documented shape.
- The vault walker: symlinked folders that vanish mid-walk give warnings, not a crash.
"""

from __future__ import annotations

import io
import json
import shutil
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from enttok.api.errors import APIError
from enttok.api.requests import read_json
from enttok.index import store as index_store
from enttok.index.indexer import VaultIndex
from enttok.index.search import SearchQuery, fts_ranked
from enttok.index.store import NoteUpdate
from enttok.index.text import fts_text, highlight, query_terms
from enttok.index.vectors import VectorIndex
from enttok.jobs.registry import JobType
from enttok.service import registry_for
from enttok.settings import SettingsStore
from enttok.settings.schema import defaults as settings_defaults
from enttok.settings.schema import load, merge, public_view, secrets_of
from enttok.store import Database
from enttok.threads import run_inline
from enttok.validation import ValidationError
from enttok.vault.chunker import chunk_note
from enttok.vault.parser import NotText, parse_note
from enttok.vault.walker import list_notes
from tests.embedders import HashingEmbedder

EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

#: Strings that have broken validators before, or sit on their edges.
EDGE_STRINGS = [
    "", " ", "~", "~/notes", "~\x00x", "~nobody-here/x", "/", "/a\x00b", "relative/path",
    "../outside.md", "daily/../../x.md", "daily/2026-01-05.md", "daily\x00.md", ".hidden/a.md",
    "a.MD", "http://[", "http://[::1", "http://[::1]:8080", "HTTP://Example.com/", "https://",
    "app://enttok", "null", "file://", "http://localhost:5173/path", "\t\nhttp://x",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-27T10:00:00Z",
    "2026-11-27", "2026-02-30", "2026-11-27T25:00:00", "Europe/Paris", "America", "../../etc",
    "Etc/GMT+5", "octo/project-0", "octo", "default", "a" * 5000, "\u00e9\u0301", "회의",
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=20), st.sampled_from(EDGE_STRINGS))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def keyed_objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that mostly use the known C{keys}, with any values."""
    key = st.one_of(st.sampled_from(keys), st.text(max_size=8)) if keys else st.text(
        max_size=8)
    return st.dictionaries(key, json_values, max_size=5)


class Registry:
    """The daemon's real job types, over a throwaway database and vault."""

    def __init__(self, case: SynchronousTestCase) -> None:
        folder = Path(case.mktemp()).absolute()
        self.vault = folder / "vault"
        (self.vault / "daily").mkdir(parents=True)
        db = Database(folder / "index.db", run_inline)
        db.open()
        case.addCleanup(db.connection.close)
        store = SettingsStore(folder / "settings.json", run_inline)
        store.load()
        store.override({"vault_path": str(self.vault)})
        index = VaultIndex(Clock(), db, HashingEmbedder(), VectorIndex(folder / "index.hnsw"),
                           run_inline, run_inline)
        self.types: dict[str, JobType] = {}
        registry = registry_for(Clock(), db, store, index, lambda t, p: None)  # type: ignore[arg-type, return-value]
        for name in registry.names():
            self.types[name] = registry.get(name)


class PayloadValidationTests(SynchronousTestCase):
    """Every job type's payload check, on any JSON."""

    def check_payload(self, job_type: JobType, payload: Any) -> None:
        try:
            clean = job_type.validate(payload)
        except ValidationError as e:
            self.assertTrue(e.field.startswith("payload"), e.field)
            self.assertIsInstance(e.message, str)
            return
        self.assertEqual(set(clean), set(job_type.payload))
        json.dumps(clean, allow_nan=False)
        # What was accepted is normalised: accepting it again changes nothing.
        self.assertEqual(job_type.validate(clean), clean)

    @EXAMPLES
    @given(st.data())
    def test_any_payload(self, data: st.DataObject) -> None:
        registry = self.registry
        name = data.draw(st.sampled_from(sorted(registry.types)))
        job_type = registry.types[name]
        payload = data.draw(st.one_of(json_values, keyed_objects(sorted(job_type.payload))))
        self.check_payload(job_type, payload)

    @EXAMPLES
    @given(st.lists(st.one_of(st.sampled_from(EDGE_STRINGS), st.text(max_size=30)),
                    max_size=5))
    def test_index_update_paths(self, paths: list[str]) -> None:
        job_type = self.registry.types["index.update"]
        try:
            clean = job_type.validate({"changed_paths": paths, "deleted_paths": paths[:1]})
        except ValidationError as e:
            self.assertRegex(e.field, r"^payload\.(changed|deleted)_paths\[\d+\]$")
            return
        for rel in clean["changed_paths"] + clean["deleted_paths"]:
            self.assertTrue(rel.lower().endswith(".md"), rel)
            self.assertNotIn("\x00", rel)
            parts = rel.split("/")
            self.assertFalse(any(p in ("", ".", "..") or p.startswith(".") for p in parts), rel)

    def setUp(self) -> None:
        self.registry = Registry(self)


class SettingsValidationTests(SynchronousTestCase):
    @EXAMPLES
    @given(st.one_of(json_values, keyed_objects(sorted(settings_defaults())),
                     st.fixed_dictionaries({}, optional={
                         "github": keyed_objects(["token", "api_base_url", "username",
                                                  "repos"]),
                         "llm": keyed_objects(["base_url", "model", "api_key"]),
                         "schedule": keyed_objects(["vault_scan_minutes",
                                                    "github_sync_minutes", "compact_hours"]),
                         "allowed_origins": st.lists(st.sampled_from(EDGE_STRINGS),
                                                     max_size=3),
                         "timezone": st.sampled_from(EDGE_STRINGS),
                         "vault_path": st.sampled_from(EDGE_STRINGS)})))
    def test_any_update(self, update: Any) -> None:
        current = settings_defaults()
        try:
            new = merge(current, update)
        except ValidationError as e:
            self.assertIsInstance(e.field, str)
            return
        stored = json.loads(json.dumps(new, allow_nan=False))
        # What is saved reads back as it was; secrets are only said to be set.
        self.assertEqual(load(stored), new)
        view = public_view(new)
        self.assertEqual((set(view["github"]) - {"token_set"}) & {"token"}, set())
        self.assertNotIn("api_key", view["llm"])
        self.assertEqual(view["github"]["token_set"], bool(new["github"]["token"]))
        self.assertEqual(len(secrets_of(new)),
                         bool(new["github"]["token"]) + bool(new["llm"]["api_key"]))
        self.assertEqual(merge(new, update), new)


class BodyTests(SynchronousTestCase):
    """C{read_json}: any bytes give storable JSON or a 400/415 in the one error shape."""

    @EXAMPLES
    @given(st.one_of(
        st.binary(max_size=64),
        st.builds(lambda v: json.dumps(v).encode(), json_values),
        st.builds(lambda s: b'{"a": "' + s.encode() + b'"}',
                  st.sampled_from(["\\ud800", "\\udfff\\ud800", "\\ud83d\\ude00", "\\u0000"])),
        st.builds(lambda n: b"[" * n + b"]" * n, st.integers(0, 200_000)),
        st.builds(lambda n: b"1" * n, st.integers(4000, 5000))))
    def test_any_body(self, body: bytes) -> None:
        request: Any = DummyRequest([b"jobs"])
        request.content = io.BytesIO(body)
        request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
        try:
            value = read_json(request)
        except APIError as e:
            self.assertEqual((e.status, e.code), (400, "malformed_json"))
            return
        json.dumps(value, ensure_ascii=False).encode("utf-8")


# Markdown-shaped text: the constructs the parser and the chunker look for.
_words = st.text(alphabet=string.ascii_letters + "가나다회의 éß_-'`*[]()#!|>", min_size=0,
                 max_size=12)
_line = st.one_of(
    _words,
    st.builds(lambda n, w: "#" * n + " " + w, st.integers(1, 7), _words),
    st.builds(lambda w: f"- [ ] {w}", _words), st.builds(lambda w: f"* [x] {w}", _words),
    st.builds(lambda w: f"[[{w}]]", _words), st.builds(lambda w, u: f"[{w}]({u})", _words, _words),
    st.builds(lambda w: f"#{w}", _words), st.sampled_from(["```", "```python", "~~~", "---",
                                                            "...", "", "    code", "> quote",
                                                            "| a | b |", "\t", "\r", "\ufeff"]),
    st.text(max_size=30))
markdown = st.builds(lambda lines, eol: eol.join(lines), st.lists(_line, max_size=40),
                     st.sampled_from(["\n", "\r\n", "\r"]))
frontmatter = st.one_of(
    st.just(""),
    st.builds(lambda body: f"---\n{body}\n---\n", st.one_of(
        st.text(max_size=60),
        st.sampled_from(["title: T", "tags: [a, b]", "tags: a, b", "date: 2026-02-30",
                         "date: 2026-11-27T10:00:00Z", "a: &x [*x]", "? [a]\n: b", "- 1\n- 2",
                         "tags:\n  - x\n  - {y: z}", "title: !!binary aGk=", "x: .nan",
                         "x: 1e400", "k: {a: {b: {c: [1, [2, [3]]]}}}", ": :", "'"]))))


class MarkdownPipelineTests(SynchronousTestCase):
    """Any note goes through parsing, chunking, the FTS index and search."""

    def setUp(self) -> None:
        self.db = Database(":memory:", run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)

    def index_and_search(self, rel: str, raw: bytes, query: str) -> None:
        try:
            parsed = parse_note(rel, raw)
        except NotText:
            self.assertTrue(b"\x00" in raw or not _is_utf8(raw), raw[:80])
            return
        json.dumps(parsed.frontmatter, allow_nan=False)
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        lines = text.count("\n") + 1
        for task in parsed.tasks:
            self.assertTrue(1 <= task.line <= lines, (task, lines))
        self.assertTrue(parsed.title)
        chunks = tuple(chunk_note(parsed.body))
        for i, chunk in enumerate(chunks):
            self.assertEqual(chunk.ordinal, i)
            self.assertTrue(chunk.text.strip())
        note = NoteUpdate(rel, len(raw), 1, "hash", parsed, chunks)
        conn = self.db.connection
        index_store.apply_batch(conn, [note], [], "m", "2026-11-27T00:00:00Z")
        self.assertEqual(conn.execute("select count(*) from chunk_fts").fetchone()[0],
                         len(chunks))
        terms = query_terms(query)
        if terms:
            fts_ranked(conn, SearchQuery(q=query, tag=query[:5] or None, path_prefix=query[:3]),
                       terms, 10)
        for chunk in chunks:
            snippet, spans = highlight(chunk.text, terms)
            previous = 0
            for start, end in spans:
                self.assertTrue(previous <= start < end <= len(snippet), (spans, snippet))
                previous = end
        index_store.apply_batch(conn, [], [rel], "m", "2026-11-27T00:00:01Z")
        self.assertEqual(conn.execute("select count(*) from chunk_fts").fetchone()[0], 0)

    @EXAMPLES
    @given(frontmatter, markdown, st.text(max_size=40))
    def test_markdown_shaped_text(self, head: str, body: str, query: str) -> None:
        self.index_and_search("daily/2026-11-27.md", (head + body).encode("utf-8",
                                                                        "surrogatepass"),
                              query)

    @EXAMPLES
    @given(st.text(), st.text(max_size=20))
    def test_any_text(self, text: str, query: str) -> None:
        raw = text.encode("utf-8", "surrogatepass")
        self.index_and_search("notes/any.md", raw, query)

    @EXAMPLES
    @given(st.binary(max_size=200))
    def test_any_bytes(self, raw: bytes) -> None:
        self.index_and_search("notes/bytes.md", raw, "bytes")

    @EXAMPLES
    @given(st.text(max_size=60))
    def test_fts_text_keeps_latin_words(self, text: str) -> None:
        stored = fts_text(text)
        self.assertIsInstance(stored, str)
        for term in query_terms(text):
            self.assertLessEqual(len(term), len(stored) + 1)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class VanishingFolderTests(SynchronousTestCase):
    """A symlinked folder removed while the walk runs is a warning, not an error."""

    @settings(max_examples=30, deadline=None)
    @given(st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=4))
    def test_linked_folder_removed_mid_walk(self, when: int, folders: int) -> None:
        base = Path(self.mktemp()).absolute()
        root, outside = base / "vault", base / "vault" / "real"
        for i in range(folders):
            (root / f"d{i}").mkdir(parents=True)
            (root / f"d{i}" / "a.md").write_text("a")
        outside.mkdir(parents=True)
        (outside / "b.md").write_text("b")
        (root / "zlink").symlink_to(outside, target_is_directory=True)
        # Walked after "real" and before the link is followed.
        (root / "zz").mkdir()
        (root / "zz" / "c.md").write_text("c")
        calls = [0]

        def should_stop() -> bool:
            calls[0] += 1
            if calls[0] == when:
                shutil.rmtree(outside)
            return False

        files, warnings = list_notes(root, should_stop)
        notes = {f.rel_path for f in files}
        self.assertLessEqual({f"d{i}/a.md" for i in range(folders)} | {"zz/c.md"}, notes)
        for warning in warnings:
            self.assertIn(warning.rel_path, ("real", "zlink"), warning)
        shutil.rmtree(base)

    @settings(max_examples=20, deadline=None)
    @given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=3))
    def test_linked_folders_walked_after_a_folder_vanished(self, when: int,
                                                          folders: int) -> None:
        base = Path(self.mktemp()).absolute()
        root = base / "vault"
        for i in range(folders):
            (root / f"d{i}").mkdir(parents=True)
            (root / f"d{i}" / "a.md").write_text("a")
        (root / ".hidden" / "notes").mkdir(parents=True)  # walked only through the link
        (root / ".hidden" / "notes" / "b.md").write_text("b")
        (root / "link").symlink_to(root / ".hidden" / "notes", target_is_directory=True)
        calls = [0]

        def should_stop() -> bool:
            calls[0] += 1
            if calls[0] == when and (root / f"d{folders - 1}").exists():
                shutil.rmtree(root / f"d{folders - 1}")  # the folder walked last
            return False

        notes = {f.rel_path for f in list_notes(root, should_stop)[0]}
        self.assertIn("link/b.md", notes)
        shutil.rmtree(base)
