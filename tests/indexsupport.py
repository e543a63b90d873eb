"""Shared pieces for the vault index tests: temp vaults, an inline index, checks."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from enttok.api.app import BackendAPI
from enttok.api.guard import Guard
from enttok.index import store as index_store
from enttok.index.embedder import IEmbedder
from enttok.index.indexer import VaultIndex, list_vault
from enttok.index.jobs import rebuild_job, scan_job, update_job
from enttok.index.search import Searcher, SearchQuery
from enttok.index.vectors import VectorIndex
from enttok.jobs.context import JobContext
from enttok.jobs.engine import JobEngine
from enttok.jobs.registry import JobType
from enttok.settings import SettingsStore
from enttok.store import Database
from enttok.threads import BlockingRunner, run_inline
from tests.embedders import HashingEmbedder
from tests.jobsupport import START, Harness, on_reactor


def write(root: Path, rel: str, content: str | bytes, mtime_ns: int | None = None) -> Path:
    """Write a file below C{root} (folders created), optionally with a fixed mtime."""
    path = root.joinpath(*rel.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def make_vault(case: SynchronousTestCase, notes: dict[str, str | bytes]) -> Path:
    root = Path(case.mktemp()).absolute()
    root.mkdir(parents=True)
    for rel, content in notes.items():
        write(root, rel, content)
    return root


class Recorder:
    """A L{enttok.jobs.context.Reporter} that keeps what a job reported."""

    def __init__(self) -> None:
        self.progress_calls: list[tuple[float, str | None]] = []
        self.notes: list[tuple[str, str, dict[str, Any]]] = []

    def progress(self, job_id: str, fraction: float, message: str | None) -> None:
        self.progress_calls.append((fraction, message))

    def note(self, job_id: str, level: str, message: str, meta: dict[str, Any]) -> None:
        self.notes.append((level, message, meta))


def no_model_switch(path: str | None) -> Deferred[Any]:
    return fail(AssertionError("index.rebuild must not switch models in these tests"))


class IndexFixture:
    """
    A L{VaultIndex} over a temp database and hnsw file, everything inline.

    Several fixtures on the same files stand for successive daemon runs.
    """

    def __init__(self, case: SynchronousTestCase, vault: Path | None = None,
                 db_path: str | None = None, hnsw_path: Path | None = None,
                 embedder: IEmbedder | None = None, prepare: bool = True) -> None:
        self.case = case
        self.vault = vault if vault is not None else make_vault(case, {})
        self.db_path = db_path if db_path is not None else case.mktemp()
        self.hnsw_path = hnsw_path if hnsw_path is not None else Path(
            case.mktemp()).absolute().with_name("index.hnsw")
        self.clock = Clock()
        self.clock.advance(START)
        self.db = Database(self.db_path, run_inline)
        self.db.open()
        case.addCleanup(self.db.connection.close)
        self.embedder: Any = embedder if embedder is not None else HashingEmbedder()
        self.vectors = VectorIndex(self.hnsw_path)
        self.index = VaultIndex(self.clock, self.db, self.embedder, self.vectors,
                                run_inline, run_inline)
        self.searcher = Searcher(self.index)
        self.recorder = Recorder()
        if prepare:
            case.successResultOf(self.index.prepare_vectors())

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.connection

    def context(self) -> JobContext:
        return JobContext("job_test", "index.update", {}, self.recorder, run_inline,
                          on_reactor, self.clock)

    def update(self, changed: Sequence[str], deleted: Sequence[str] = (),
               skip_indexed: bool = True) -> dict[str, int]:
        result: dict[str, int] = self.case.successResultOf(self.index.update(
            self.context(), str(self.vault), list(changed), list(deleted), skip_indexed))
        return result

    def index_all(self) -> dict[str, int]:
        files, _ = list_vault(str(self.vault), lambda: False)
        return self.update([f.rel_path for f in files])

    def search(self, q: str, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.case.successResultOf(
            self.searcher.search(SearchQuery(q=q, **options)))
        return result

    def paths(self, q: str, **options: Any) -> list[str]:
        return [hit["path"] for hit in self.search(q, **options)["hits"]]


def index_harness(case: SynchronousTestCase, vault: Path, workers: int = 2,
                  runner: BlockingRunner = run_inline, embedder: IEmbedder | None = None,
                  vault_path: Callable[[], str | None] | None = None,
                  ) -> tuple[Harness, VaultIndex]:
    """
    A started L{Harness} whose registry also has C{vault.scan}, C{index.update}
    and C{index.rebuild} over C{vault}, with the index's vectors prepared.

    @param runner: the engine's runner (where the jobs' file reading happens).
    """
    made: list[VaultIndex] = []
    setting = vault_path if vault_path is not None else (lambda: str(vault))

    def types(h: Harness) -> list[JobType]:
        index = VaultIndex(h.clock, h.db, embedder if embedder is not None else HashingEmbedder(),
                           VectorIndex(Path(case.mktemp()).absolute().with_name("index.hnsw")),
                           run_inline, run_inline)
        made.append(index)
        return [scan_job(index, setting, lambda job_type, payload: h.engine.submit(
                    job_type, payload)),
                update_job(index, setting),
                rebuild_job(index, setting, no_model_switch)]

    h = Harness(case, workers=workers, runner=runner, extra_types=types)
    [index] = made
    case.successResultOf(index.prepare_vectors())
    h.engine.startService()
    case.addCleanup(h.engine.stopService)
    return h, index


def live_labels(vectors: VectorIndex) -> set[int]:
    """The chunk ids the hnsw index itself holds and has not marked deleted."""
    index = vectors._index  # the hnswlib index: what is really in it, not the bookkeeping
    if index is None:
        return set()
    live = set()
    for label in index.get_ids_list():
        try:
            index.get_items([label])
        except RuntimeError:  # marked deleted
            continue
        live.add(int(label))
    return live


def check_consistent(case: SynchronousTestCase, index: VaultIndex) -> None:
    """Every chunk has an FTS row and vice versa; hnsw holds exactly the stored vectors."""
    import numpy as np

    conn = index._db.connection
    chunk_ids = {r[0] for r in conn.execute("select chunk_id from chunks")}
    fts_ids = {r[0] for r in conn.execute("select rowid from chunk_fts")}
    case.assertEqual(chunk_ids, fts_ids)
    orphans = conn.execute("select count(*) from chunks c left join notes n "
                           "on n.note_id = c.note_id where n.note_id is null").fetchone()[0]
    case.assertEqual(orphans, 0)
    stored = dict(index_store.vector_page(conn, index.model_id, 0, 1_000_000))
    vectors: Any = index.vectors
    case.assertEqual(vectors.live_count, len(stored))
    case.assertEqual(live_labels(vectors), set(stored))
    if stored:
        ids = sorted(stored)
        expected = np.frombuffer(b"".join(stored[i] for i in ids), dtype=np.float32)
        got = vectors._index.get_items(ids, return_type="numpy")
        np.testing.assert_allclose(got, expected.reshape(len(ids), -1), atol=1e-5)


def chunk_hashes(conn: sqlite3.Connection, path: str | None = None) -> set[str]:
    if path is None:
        return {r[0] for r in conn.execute("select content_hash from chunks")}
    return {r[0] for r in conn.execute(
        "select c.content_hash from chunks c join notes n on n.note_id = c.note_id "
        "where n.path = ?", (path,))}


def embedded_hashes(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("select content_hash from embeddings")}


def count(conn: sqlite3.Connection, sql: str, *args: Any) -> int:
    return int(conn.execute(sql, args).fetchone()[0])


TOKEN = "index-api-token-0123456789"
PORT = 4343


class APIClient:
    """The HTTP API (through the guard) around an engine and an index, via StubTreq."""

    def __init__(self, case: SynchronousTestCase, clock: Clock,
                 engine: JobEngine | None = None, index: VaultIndex | None = None) -> None:
        self.case = case
        settings = SettingsStore(Path(case.mktemp()), run_inline)
        status = engine.status if engine is not None else (lambda: {})
        api = BackendAPI(clock, settings, status, engine, index)
        guard = Guard(api.resource(), None, TOKEN, lambda: [])
        guard.port = PORT
        self.client = StubTreq(guard)

    def call(self, method: str, path: str, body: Any = None,
             params: Any = None) -> tuple[int, Any]:
        """Make one request; return the status and the decoded JSON body."""
        headers = {"Host": f"127.0.0.1:{PORT}", "X-Backend-Token": TOKEN,
                   "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode("utf-8")
        url = f"http://127.0.0.1:{PORT}{path}"
        d = self.client.request(  # type: ignore[attr-defined]
            method, url, headers=headers, data=data, params=params)
        self.client.flush()
        response = self.case.successResultOf(d)
        content = self.case.successResultOf(response.content())
        self.case.assertEqual(response.headers.getRawHeaders("content-type"),
                              ["application/json"])
        return response.code, json.loads(content)

    def error(self, answer: tuple[int, Any], status: int, code: str) -> Any:
        self.case.assertEqual((answer[0], answer[1]["error"]["code"]), (status, code), answer)
        return answer[1]["error"]
