"""The indexing jobs: vault.scan, index.update, index.rebuild, through an inline engine."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from enttok.index.indexer import MAX_FILE_BYTES, VaultIndex
from enttok.index.search import Searcher, SearchQuery
from enttok.jobs import store
from enttok.jobs.model import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED
from enttok.validation import ValidationError
from tests.embedders import HashingEmbedder
from tests.indexsupport import (
    APIClient,
    check_consistent,
    chunk_hashes,
    count,
    embedded_hashes,
    index_harness,
    live_labels,
    make_vault,
    write,
)
from tests.jobsupport import Harness, ManualRunner

KOREAN_NAME = "korean/회의록 2024-05-03.md"


def long_note(edit: str = "") -> str:
    """A note of three sections, each its own chunk; C{edit} goes into the second."""
    parts = ["# Long note\n"]
    for i, topic in enumerate(["alpha", "beta", "gamma"]):
        words = " ".join(f"{topic}{j}" for j in range(180))
        parts.append(f"## Section {topic}\n\n{words} {edit if i == 1 else ''}\n")
    return "\n".join(parts)


NOTES: dict[str, str | bytes] = {
    "english.md": ("---\ntags: [work, project]\ndate: 2024-05-01\n---\n# Project plan\n\n"
                   "We plan the index and the search.\n\n- [ ] write tests\n- [x] read docs\n"),
    "journal/2024-05-02.md": "# 주간 회의\n\n오늘 회의를 시작했다. #회의\n\n- [ ] 일정 정리\n",
    unicodedata.normalize("NFD", KOREAN_NAME): "# 회의록\n\n회의록 작성을 마쳤다.\n",
    "crlf.md": "# Windows note\r\n\r\nFirst line\r\n- [ ] crlf task\r\n",
    "bom.md": b"\xef\xbb\xbf# BOM title\n\nbody after a byte order mark\n",
    "empty.md": "",
    "long.md": long_note(),
    "binary.md": b"\x00\x01\x02 not text \xff",
    "notes.txt": "not a note",
    ".obsidian/workspace.md": "# hidden settings",
    ".trash/old.md": "# trashed note",
    "node_modules/pkg/readme.md": "# a package",
}

INDEXED = sorted(["english.md", "journal/2024-05-02.md", KOREAN_NAME, "crlf.md", "bom.md",
                  "empty.md", "long.md"])


def odd_vault(case: SynchronousTestCase) -> Path:
    """L{NOTES}, a huge file, a symlink loop and symlinks escaping the vault."""
    vault = make_vault(case, NOTES)
    with open(vault / "huge.md", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    (vault / "loop").mkdir()
    os.symlink("..", vault / "loop" / "back")  # a folder link back to the vault root
    os.symlink("self.md", vault / "loop" / "self.md")  # a link to itself (ELOOP)
    outside = make_vault(case, {"secret.md": "# secret outside the vault"})
    os.symlink(outside / "secret.md", vault / "escape.md")
    os.symlink(outside, vault / "escape_dir")
    return vault


def warnings(h: Harness, job_id: str | None = None) -> list[str]:
    return [m["message"] for m in h.messages if m["type"] == "log" and m["level"] == "warn"
            and (job_id is None or m["job_id"] == job_id)]


def jobs_of(h: Harness, job_type: str) -> list[Any]:
    ids = [r[0] for r in h.db.connection.execute(
        "select job_id from jobs where type = ? order by job_id", (job_type,))]
    return [h.stored(job_id) for job_id in ids]


def note_row(h: Harness, path: str) -> dict[str, Any] | None:
    row = h.db.connection.execute(
        "select title, note_date, tags_json, tasks_json, content_hash, indexed_hash "
        "from notes where path = ?", (path,)).fetchone()
    if row is None:
        return None
    return {"title": row[0], "date": row[1], "tags": json.loads(row[2]),
            "tasks": json.loads(row[3]), "hash": row[4], "indexed": row[5]}


class ScanTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.vault = odd_vault(self)
        self.embedder = HashingEmbedder()
        self.h, self.index = index_harness(self, self.vault, embedder=self.embedder)
        self.conn = self.h.db.connection

    def scan(self, **payload: Any) -> Any:
        job_id, _ = self.h.submit(self, "vault.scan", payload)
        job = self.h.stored(job_id)
        self.assertEqual(job.status, SUCCEEDED, job.error)
        return job

    def paths(self) -> list[str]:
        return [r[0] for r in self.conn.execute("select path from notes order by path")]

    def test_first_scan(self) -> None:
        scan = self.scan()
        self.assertEqual(self.paths(), INDEXED)
        [update] = jobs_of(self.h, "index.update")
        self.assertEqual((update.status, scan.result["index_update_job"]),
                         (SUCCEEDED, update.job_id))
        self.assertEqual(update.result["notes_indexed"], len(INDEXED))
        # binary.md is listed, then skipped when read.
        self.assertEqual((scan.result["files"], scan.result["new"]), (len(INDEXED) + 1,
                                                                      len(INDEXED)))
        self.assertEqual(count(self.conn, "select count(*) from notes where indexed_hash is "
                                          "null or indexed_hash != content_hash"), 0)
        check_consistent(self, self.index)
        self.assertGreater(self.index.vectors.live_count, 0)

    def test_metadata(self) -> None:
        self.scan()
        english = note_row(self.h, "english.md")
        assert english is not None
        self.assertEqual((english["title"], english["date"], english["tags"]),
                         ("Project plan", "2024-05-01", ["work", "project"]))
        self.assertEqual(english["tasks"], [{"text": "write tests", "done": False, "line": 9},
                                            {"text": "read docs", "done": True, "line": 10}])
        journal = note_row(self.h, "journal/2024-05-02.md")
        assert journal is not None
        self.assertEqual((journal["title"], journal["date"], journal["tags"]),
                         ("주간 회의", "2024-05-02", ["회의"]))
        crlf = note_row(self.h, "crlf.md")
        assert crlf is not None
        self.assertEqual((crlf["title"], [t["text"] for t in crlf["tasks"]]),
                         ("Windows note", ["crlf task"]))
        bom = note_row(self.h, "bom.md")
        assert bom is not None
        self.assertEqual(bom["title"], "BOM title")
        empty = note_row(self.h, "empty.md")
        assert empty is not None
        self.assertEqual((empty["title"], empty["indexed"]), ("empty", empty["hash"]))
        self.assertEqual(chunk_hashes(self.conn, "empty.md"), set())
        tags = self.conn.execute("select tag from note_tags t join notes n "
                                 "on n.note_id = t.note_id where n.path = ? order by tag",
                                 ("english.md",)).fetchall()
        self.assertEqual([t[0] for t in tags], ["project", "work"])

    def test_korean_nfd_file_name_is_stored_nfc(self) -> None:
        self.scan()
        korean = note_row(self.h, KOREAN_NAME)
        assert korean is not None, self.paths()
        self.assertEqual((korean["title"], korean["date"]), ("회의록", "2024-05-03"))
        self.assertEqual(len(chunk_hashes(self.conn, KOREAN_NAME)), 1)
        self.assertNotIn(unicodedata.normalize("NFD", KOREAN_NAME), self.paths())
        hits = Searcher(self.index).search(SearchQuery(q="회의록", mode="fts"))
        self.assertEqual([hit["path"] for hit in self.successResultOf(hits)["hits"]],
                         [KOREAN_NAME])

    def test_odd_files_are_warnings(self) -> None:
        scan = self.scan()
        found = warnings(self.h, scan.job_id)
        for name, why in [("binary.md", "binary"), ("huge.md", "too large"),
                          ("escape.md", "outside the vault"),
                          ("escape_dir", "outside the vault"), ("loop/self.md", "symlink")]:
            self.assertTrue(any(w.startswith(name + ":") and why in w for w in found),
                            (name, found))
        self.assertEqual(scan.result["warnings"], len(found))
        for hidden in (".obsidian", ".trash", "node_modules", "notes.txt", "secret"):
            self.assertFalse(any(hidden in w for w in found), found)
        recorded = [e.message for e in store.recent_events(self.conn, scan.job_id)
                    if e.level == "warn"]
        self.assertEqual(sorted(recorded), sorted(found))
        # The symlink loop ends, and the vault is not indexed again below loop/back.
        self.assertFalse([p for p in self.paths() if p.startswith("loop/")])

    def test_rescan_without_changes(self) -> None:
        self.scan()
        embedded = self.embedder.texts_embedded
        self.assertGreater(embedded, 0)
        scan = self.scan()
        self.assertIsNone(scan.result["index_update_job"])
        self.assertEqual((scan.result["new"], scan.result["changed"], scan.result["deleted"]),
                         (0, 0, 0))
        self.assertEqual(len(jobs_of(self.h, "index.update")), 1)
        self.assertEqual(self.embedder.texts_embedded, embedded)

    def test_touched_file_is_read_but_not_reindexed(self) -> None:
        """A new mtime with the same content: read once (the hash matches), the new
        stat stored, nothing queued; the next scan does not read it again."""
        self.scan()
        path = self.vault / "english.md"
        os.utime(path, ns=(10**18, 10**18))
        scan = self.scan()
        self.assertEqual((scan.result["changed"], scan.result["index_update_job"]), (0, None))
        stat = self.conn.execute("select mtime_ns from notes where path = 'english.md'")
        self.assertEqual(stat.fetchone()[0], 10**18)
        self.assertEqual(len(jobs_of(self.h, "index.update")), 1)

    def test_since_reads_only_files_modified_after_it(self) -> None:
        self.scan()
        old = 1_600_000_000 * 10**9  # 2020-09-13
        write(self.vault, "english.md", "# Old edit\n\nchanged long ago\n", mtime_ns=old)
        write(self.vault, "long.md", long_note(edit="a recent edit"), mtime_ns=old * 2)
        write(self.vault, "brand-new.md", "# New\n\nnew note\n", mtime_ns=old)
        os.remove(self.vault / "crlf.md")
        scan = self.scan(since="2021-01-01T00:00:00Z")
        # The old edit waits for a full scan; new notes and deletions are always seen.
        self.assertEqual((scan.result["new"], scan.result["changed"], scan.result["deleted"]),
                         (1, 1, 1))
        self.assertEqual(note_row(self.h, "english.md")["title"], "Project plan")
        scan = self.scan()
        self.assertEqual(scan.result["changed"], 1)
        self.assertEqual(note_row(self.h, "english.md")["title"], "Old edit")

    def test_force_full_reads_every_file(self) -> None:
        self.scan()
        embedded = self.embedder.texts_embedded
        scan = self.scan(force_full=True)
        self.assertEqual((scan.result["new"], scan.result["changed"], scan.result["unchanged"],
                          scan.result["index_update_job"]), (0, 0, scan.result["files"], None))
        self.assertEqual(self.embedder.texts_embedded, embedded)

    def test_edit_embeds_only_changed_chunks(self) -> None:
        self.scan()
        before_note = chunk_hashes(self.conn, "long.md")
        self.assertEqual(len(before_note), 3)
        stored = embedded_hashes(self.conn)
        embedded = self.embedder.texts_embedded
        write(self.vault, "long.md", long_note(edit="an added sentence"))
        scan = self.scan()
        self.assertEqual(scan.result["changed"], 1)
        after_note = chunk_hashes(self.conn, "long.md")
        new_hashes = after_note - stored
        self.assertEqual(len(new_hashes), 1)
        self.assertEqual(len(before_note & after_note), 2)
        self.assertEqual(self.embedder.texts_embedded - embedded, len(new_hashes))
        check_consistent(self, self.index)

    def test_rename_embeds_nothing(self) -> None:
        self.scan()
        hashes = chunk_hashes(self.conn, "long.md")
        embedded = self.embedder.texts_embedded
        (self.vault / "archive").mkdir()
        os.rename(self.vault / "long.md", self.vault / "archive" / "renamed.md")
        os.rename(self.vault / "english.md", self.vault / "english-2.md")
        scan = self.scan()
        self.assertEqual((scan.result["new"], scan.result["deleted"]), (2, 2))
        self.assertEqual(self.embedder.texts_embedded, embedded)
        self.assertEqual(chunk_hashes(self.conn, "archive/renamed.md"), hashes)
        self.assertIsNone(note_row(self.h, "long.md"))
        self.assertIsNone(note_row(self.h, "english.md"))
        check_consistent(self, self.index)

    def test_delete(self) -> None:
        self.scan()
        old_ids = {r[0] for r in self.conn.execute(
            "select chunk_id from chunks c join notes n on n.note_id = c.note_id "
            "where n.path = 'long.md'")}
        self.assertEqual(len(old_ids), 3)
        self.assertTrue(old_ids <= live_labels(self.index.vectors))
        os.remove(self.vault / "long.md")
        scan = self.scan()
        self.assertEqual(scan.result["deleted"], 1)
        self.assertIsNone(note_row(self.h, "long.md"))
        marks = ",".join("?" * len(old_ids))
        self.assertEqual(count(self.conn, f"select count(*) from chunks where chunk_id in "
                                          f"({marks})", *old_ids), 0)
        self.assertEqual(count(self.conn, f"select count(*) from chunk_fts where rowid in "
                                          f"({marks})", *old_ids), 0)
        self.assertEqual(count(self.conn, "select count(*) from chunk_fts where chunk_fts "
                                          "match 'alpha1'"), 0)
        self.assertFalse(old_ids & live_labels(self.index.vectors))
        check_consistent(self, self.index)

    def test_rebuild_reuses_embeddings(self) -> None:
        self.scan()
        searcher = Searcher(self.index)

        def results() -> list[Any]:
            found = []
            for q in ["plan index", "회의", "beta7 section", "windows note"]:
                answers = {mode: self.successResultOf(searcher.search(SearchQuery(
                    q=q, mode=mode)))["hits"] for mode in ("fts", "vector", "hybrid")}
                # Unrelated notes tie on vector distance: compare the full FTS ranking
                # and the top of the others.
                found.append(([hit["path"] for hit in answers["fts"]],
                              answers["vector"][0]["path"], answers["hybrid"][0]["path"]))
            return found

        before = results()
        self.assertTrue(all(before), before)
        embedded = self.embedder.texts_embedded
        job_id, _ = self.h.submit(self, "index.rebuild")
        job = self.h.stored(job_id)
        self.assertEqual(job.status, SUCCEEDED, job.error)
        self.assertEqual(self.embedder.texts_embedded, embedded)
        self.assertEqual(job.result["chunks_embedded"], 0)
        self.assertEqual(results(), before)
        check_consistent(self, self.index)


class UpdatePathTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.vault = make_vault(self, {"a.md": "# A\n\nalpha text\n",
                                       "b.md": "# B\n\nbeta text\n"})
        self.h, self.index = index_harness(self, self.vault)

    def test_outside_the_vault_is_refused_at_submit(self) -> None:
        for payload, field in [
                ({"changed_paths": ["/etc/passwd"]}, "payload.changed_paths[0]"),
                ({"changed_paths": ["a.md", "../x.md"]}, "payload.changed_paths[1]"),
                ({"changed_paths": [str(self.vault.parent / "x.md")]},
                 "payload.changed_paths[0]"),
                ({"deleted_paths": ["a.md", "sub/../../x.md"]}, "payload.deleted_paths[1]")]:
            e = self.assertRaises(ValidationError, self.h.engine.submit, "index.update",
                                  payload)
            self.assertEqual(e.field, field)
        self.assertEqual(jobs_of(self.h, "index.update"), [])

    def test_outside_the_vault_through_the_api(self) -> None:
        api = APIClient(self, self.h.clock, self.h.engine, self.index)
        answer = api.call("POST", "/jobs", {"type": "index.update",
                                            "payload": {"changed_paths": ["../x.md"]}})
        error = api.error(answer, 400, "invalid_payload")
        self.assertEqual(error["details"], {"field": "payload.changed_paths[0]"})

    def test_another_vault_is_refused_at_submit(self) -> None:
        other = make_vault(self, {"foreign.md": "# Foreign\n"})
        os.symlink(self.vault, self.vault.parent / "vault-link")
        for job_type in ("vault.scan", "index.rebuild"):
            e = self.assertRaises(ValidationError, self.h.engine.submit, job_type,
                                  {"vault_path": str(other)})
            self.assertEqual(e.field, "payload.vault_path")
            self.assertIn("set vault_path in /settings", str(e))
            # The configured vault, however it is spelt, is accepted.
            self.h.submit(self, job_type, {"vault_path": str(self.vault.parent / "vault-link")})
        self.assertEqual(count(self.h.db.connection, "select count(*) from notes "
                                                     "where path = 'foreign.md'"), 0)
        self.assertEqual(count(self.h.db.connection, "select count(*) from notes"), 2)

    def test_paths_are_made_vault_relative(self) -> None:
        job_id, _ = self.h.submit(self, "index.update", {
            "changed_paths": [str(self.vault / "a.md"), "./b.md", "b.md"]})
        job = self.h.stored(job_id)
        self.assertEqual(job.payload, {"changed_paths": ["a.md", "b.md"], "deleted_paths": []})
        self.assertEqual((job.status, job.result["notes_indexed"]), (SUCCEEDED, 2))

    def test_changed_path_that_is_gone_counts_as_deleted(self) -> None:
        self.h.submit(self, "index.update", {"changed_paths": ["a.md", "b.md"]})
        os.remove(self.vault / "a.md")
        job_id, _ = self.h.submit(self, "index.update", {"changed_paths": ["a.md"]})
        job = self.h.stored(job_id)
        self.assertEqual((job.status, job.result["notes_deleted"]), (SUCCEEDED, 1))
        self.assertIsNone(note_row(self.h, "a.md"))
        check_consistent(self, self.index)

    def test_odd_files_given_by_path(self) -> None:
        # What the watcher or a client may name: the same rules as the scan.
        with open(self.vault / "huge.md", "wb") as f:
            f.truncate(MAX_FILE_BYTES + 1)
        write(self.vault, "binary.md", b"\x00binary")
        outside = make_vault(self, {"secret.md": "# secret"})
        os.symlink(outside / "secret.md", self.vault / "escape.md")
        write(self.vault, unicodedata.normalize("NFD", "한글.md"), "# 한글 노트\n\n본문\n")
        job_id, _ = self.h.submit(self, "index.update", {"changed_paths": [
            "huge.md", "binary.md", "escape.md", unicodedata.normalize("NFD", "한글.md"),
            "a.md"]})
        job = self.h.stored(job_id)
        self.assertEqual((job.status, job.result["notes_indexed"], job.result["warnings"]),
                         (SUCCEEDED, 2, 3))
        self.assertEqual(sorted(r[0] for r in self.h.db.connection.execute(
            "select path from notes")), ["a.md", "한글.md"])
        found = warnings(self.h, job_id)
        for name, why in [("huge.md", "too large"), ("binary.md", "binary"),
                          ("escape.md", "outside the vault")]:
            self.assertTrue(any(w.startswith(name + ":") and why in w for w in found), found)
        check_consistent(self, self.index)

    def test_no_vault(self) -> None:
        h, _ = index_harness(self, self.vault, vault_path=lambda: None)
        e = self.assertRaises(ValidationError, h.engine.submit, "index.update",
                              {"changed_paths": ["a.md"]})
        self.assertEqual(e.field, "payload.changed_paths")
        job_id, _ = h.submit(self, "vault.scan")
        job = h.stored(job_id)
        self.assertEqual((job.status, job.error["code"]), (FAILED, "no_vault"))


class QueueTests(SynchronousTestCase):
    def test_queued_updates_merge(self) -> None:
        vault = make_vault(self, {f"{n}.md": f"# {n}\n\ntext {n}\n" for n in "abcd"})
        h, index = index_harness(self, vault, workers=1)
        blocker, _ = h.submit(self, "test.wait")  # holds the only worker
        first, coalesced = h.submit(self, "index.update", {"changed_paths": ["a.md", "b.md"]})
        self.assertFalse(coalesced)
        second, coalesced = h.submit(self, "index.update",
                                     {"changed_paths": ["c.md"], "deleted_paths": ["b.md"]})
        third, _ = h.submit(self, "index.update", {"changed_paths": ["d.md"]})
        self.assertEqual((second, third, coalesced), (first, first, True))
        job = h.stored(first)
        self.assertEqual((job.status, job.payload),
                         (QUEUED, {"changed_paths": ["a.md", "c.md", "d.md"],
                                   "deleted_paths": ["b.md"]}))
        h.controls.pending[blocker].callback(None)
        job = h.stored(first)
        self.assertEqual((job.status, job.result["notes_indexed"]), (SUCCEEDED, 3))
        self.assertEqual(len(jobs_of(h, "index.update")), 1)
        self.assertEqual(sorted(r[0] for r in h.db.connection.execute("select path from notes")),
                         ["a.md", "c.md", "d.md"])
        check_consistent(self, index)


class CancelTests(SynchronousTestCase):
    def drain(self, runner: ManualRunner, limit: int = 200) -> None:
        for _ in range(limit):
            if not runner.calls:
                return
            runner.run_next()
        self.fail("the jobs did not finish")

    def test_cancel_after_first_batch(self) -> None:
        vault = make_vault(self, {f"notes/{i:03d}.md": f"# Note {i}\n\nbody of note {i}\n"
                                  for i in range(100)})
        runner = ManualRunner()
        embedder = HashingEmbedder()
        h, index = index_harness(self, vault, runner=runner, embedder=embedder)
        h.submit(self, "vault.scan")
        for _ in range(10):  # the scan: list the vault, read files in two batches
            if jobs_of(h, "index.update") and jobs_of(h, "index.update")[0].status == RUNNING:
                break
            runner.run_next()
        [update] = jobs_of(h, "index.update")
        self.assertEqual(update.status, RUNNING)
        runner.run_next()  # the first batch of the update is read, then written
        self.assertEqual(len(runner.calls), 1)  # the second batch is being read
        indexed = count(h.db.connection, "select count(*) from notes "
                                         "where indexed_hash = content_hash")
        self.assertEqual(indexed, 32)
        canceling = h.engine.cancel(update.job_id)
        self.assertNoResult(canceling)  # waits for the batch being read
        runner.run_next()
        self.assertEqual(self.successResultOf(canceling).status, CANCELED)
        self.assertEqual(h.stored(update.job_id).status, CANCELED)
        self.assertEqual(runner.calls, [])
        self.assertEqual(count(h.db.connection, "select count(*) from notes where "
                                                "indexed_hash = content_hash"), 32)
        self.assertEqual(embedder.texts_embedded, 0)
        check_consistent(self, index)

        # The next scan picks up the notes left stale.
        job_id, _ = h.submit(self, "vault.scan")
        self.drain(runner)
        scan = h.stored(job_id)
        self.assertEqual(scan.status, SUCCEEDED)
        [_, second] = jobs_of(h, "index.update")
        self.assertEqual((second.status, second.result["notes_indexed"]), (SUCCEEDED, 68))
        self.assertEqual(count(h.db.connection, "select count(*) from notes where "
                                                "indexed_hash = content_hash"), 100)
        check_consistent(self, index)
        self.assertEqual(index.vectors.live_count, 100)


class RebuildOnFreshIndexTests(SynchronousTestCase):
    def test_rebuild_without_prior_update(self) -> None:
        vault = make_vault(self, {"a.md": "# A\n\nalpha\n"})
        h, index = index_harness(self, vault)
        job_id, _ = h.submit(self, "index.rebuild")
        job = h.stored(job_id)
        self.assertEqual((job.status, job.result["notes_indexed"]), (SUCCEEDED, 1))
        check_consistent(self, index)
        self.assertIsInstance(index, VaultIndex)
