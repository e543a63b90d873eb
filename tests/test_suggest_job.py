"""suggest.generate end to end: an indexed vault, stored GitHub activity, GET /suggestions.

The vault has English and Korean daily notes over several days and a few
project notes, indexed with the HashingEmbedder; the day is 2024-05-01 in
Asia/Seoul (UTC+9), i.e. 2024-04-30T15:00Z to 2024-05-01T15:00Z.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from enttok.api.app import BackendAPI, StatusSource, idle_status
from enttok.api.guard import Guard
from enttok.connectors.github import store as gh_store
from enttok.connectors.github.normalize import ActivityItem
from enttok.index.indexer import VaultIndex
from enttok.index.jobs import update_job
from enttok.index.search import Searcher
from enttok.index.vectors import VectorIndex
from enttok.jobs.model import FAILED, SUCCEEDED, TERMINAL, Job
from enttok.jobs.registry import JobType
from enttok.settings import SettingsStore
from enttok.suggest import llm
from enttok.suggest.job import suggest_job
from enttok.threads import run_inline
from enttok.validation import ValidationError
from tests.apisupport import PORT, TOKEN, APITestCase
from tests.embedders import HashingEmbedder
from tests.fakegithub import wait_until
from tests.fakellm import PATH, FakeLLM
from tests.indexsupport import make_vault, write
from tests.jobsupport import Harness

ZONE = ZoneInfo("Asia/Seoul")
DAY = "2024-05-01"
WEB = "https://github.com"
REPO = "o/enttok"
TARGET = "daily/2024-05-01.md"
KOREAN_NOTE = "프로젝트/한글 검색.md"
SHA1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
SHA2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
SHA3 = "3333333ccccccccccccccccccccccccccccccccc"


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def seoul(when: str) -> float:
    """Epoch seconds of a wall-clock time in Seoul."""
    return datetime.fromisoformat(when).replace(tzinfo=ZONE).timestamp()


def seoul_ns(when: str) -> int:
    return int(seoul(when)) * 1_000_000_000


#: vault-relative path -> (content, modified at (Seoul wall clock)).
NOTES: dict[str, tuple[str, str]] = {
    TARGET: ("# 2024-05-01\n\n## Log\n\n- Worked on [[Search design]] with [Alice](Alice.md)\n"
             f"- Filed {WEB}/{REPO}/issues/15 for Korean search\n\n## Tasks\n\n"
             "- [ ] review the search  PR\n- [x] 회의록 정리\n", "2024-05-01T18:00"),
    # Korean text written NFD (as a Mac may): the index stores it NFC.
    "daily/2024-04-30.md": ("# 2024-04-30\n\n- [ ] Write the suggest tests\n"
                            "- [x] Fix the watcher\n" + nfd("- [ ] 회의록 정리\n")
                            + "- [ ] Review the search PR\n" + nfd("- [ ] 일정 정리\n"),
                            "2024-04-30T22:00"),
    "daily/2024-04-29.md": ("# 2024-04-29\n\n- [ ] Fix the watcher\n- [ ] Call the bank\n",
                            "2024-04-29T20:00"),
    "daily/2024-04-24.md": ("# 2024-04-24\n\n- [ ] Renew the domain\n", "2024-04-24T20:00"),
    "daily/2024-04-23.md": ("# 2024-04-23\n\n- [ ] Too old to carry\n", "2024-04-23T20:00"),
    "daily/2024-05-02.md": ("# 2024-05-02\n\n- [ ] Tomorrow's task\n", "2024-05-02T09:00"),
    "meetings/Standup 2024-04-30.md": ("# Standup\n\n- [ ] Meeting action item\n",
                                       "2024-04-30T10:00"),
    "projects/search-design.md": ("# Search design\n\nHybrid search: BM25 over FTS5 and "
                                  "vectors, fused by rank.\n", "2024-04-20T12:00"),
    "projects/fts5.md": ("# FTS5 index\n\nHow to add the FTS5 index and rank notes with "
                         "BM25.\n", "2024-04-20T12:00"),
    KOREAN_NOTE: ("# 한글 검색\n\n한글 검색 개선 계획: 형태소 분석과 색인.\n"
                  f"- [ ] 검색 결과 확인\n\n{WEB}/{REPO}/pull/12 참고\n", "2024-04-21T12:00"),
    "Alice.md": ("# Alice\n\nAlice reviews the search PRs.\n", "2024-05-01T11:00"),
    "inbox/Ideas.md": ("# Ideas\n\nGardening and bread baking.\n", "2024-05-01T01:00"),
    "topics/Gardening.md": ("---\ntitle: Garden log\n---\nTomatoes and basil.\n",
                            "2024-05-01T12:00"),
    "inbox/Late.md": ("# Late\n\nWritten after midnight.\n", "2024-05-02T00:30"),
}


def activity(identity: str, kind: str, number: int | None, title: str, url: str,
             when: str, repo: str = REPO) -> ActivityItem:
    return ActivityItem(identity, kind, repo, number, title, url, when, {})


#: Items of the day in Seoul (some are on 2024-04-30 in UTC).
IN_DAY = [
    activity(f"pr_opened:{REPO}#12", "pr_opened", 12, "Add FTS5 index",
             f"{WEB}/{REPO}/pull/12", "2024-04-30T16:00:00Z"),  # Seoul 05-01 01:00
    activity(f"commit:{REPO}:{SHA1}", "commit", None, "Add the suggest job",
             f"{WEB}/{REPO}/commit/{SHA1}", "2024-05-01T01:00:00Z"),
    activity(f"commit:{REPO}:{SHA2}", "commit", None, "Fix carry-over",
             f"{WEB}/{REPO}/commit/{SHA2}", "2024-05-01T02:00:00Z"),
    activity(f"pr_merged:{REPO}#12", "pr_merged", 12, "Add FTS5 index",
             f"{WEB}/{REPO}/pull/12", "2024-05-01T05:00:00Z"),
    activity(f"issue_opened:{REPO}#15", "issue_opened", 15, "한글 검색 개선",
             f"{WEB}/{REPO}/issues/15", "2024-05-01T06:00:00Z"),  # in the note already
    activity(f"comment:{REPO}:901", "comment", 9, "Flaky test",
             f"{WEB}/{REPO}/issues/9#issuecomment-901", "2024-05-01T14:59:59Z"),  # 23:59:59
]
#: Items on neighbouring days (in Seoul): never suggested for DAY.
OUTSIDE = [
    activity(f"commit:{REPO}:{SHA3}", "commit", None, "Late night fix",
             f"{WEB}/{REPO}/commit/{SHA3}", "2024-05-01T15:00:00Z"),  # Seoul 05-02 00:00
    activity(f"issue_closed:{REPO}#3", "issue_closed", 3, "Old bug",
             f"{WEB}/{REPO}/issues/3", "2024-04-30T14:59:59Z"),  # Seoul 04-30 23:59:59
]
#: Another workspace's item inside the day.
OTHER_WORKSPACE = activity("pr_opened:o/work#1", "pr_opened", 1, "Work thing",
                           f"{WEB}/o/work/pull/1", "2024-05-01T03:00:00Z", repo="o/work")

ACTIVITY_LINES = [
    f"- Opened and merged PR [#12]({WEB}/{REPO}/pull/12) *Add FTS5 index* in {REPO}",
    f"- 2 commits to [{REPO}]({WEB}/{REPO}/commits): Add the suggest job; Fix carry-over",
    f"- Commented on issue [#9]({WEB}/{REPO}/issues/9#issuecomment-901) *Flaky test* in {REPO}",
]
TASK_LINES = ["- [ ] Write the suggest tests", "- [ ] 일정 정리", "- [ ] Call the bank",
              "- [ ] Renew the domain"]
TASK_REASONS = ["still open in [[2024-04-30]] (1 day ago)",
                "still open in [[2024-04-30]] (1 day ago)",
                "still open in [[2024-04-29]] (2 days ago)",
                "still open in [[2024-04-24]] (7 days ago)"]
EDITED_LINES = ["- Edited [[Gardening|Garden log]]", "- Edited [[Ideas]]"]
#: Never related: the target, notes it links, and notes already suggested as edited.
NOT_RELATED = {TARGET, "projects/search-design.md", "Alice.md", "inbox/Ideas.md",
               "topics/Gardening.md"}


class Day:
    """
    The vault, an engine that can index it and run C{suggest.generate}, the day's activity.

    @param llm_clock: the summary's clock and treq's reactor (the engine's L{Clock}
        unless a test talks to a real server).
    """

    def __init__(self, case: SynchronousTestCase, settings: SettingsStore,
                 llm_clock: Any = None, http: Any = None) -> None:
        self.case = case
        self.settings = settings
        self.vault = make_vault(case, {})
        for rel, (content, modified) in NOTES.items():
            write(self.vault, nfd(rel) if rel == KOREAN_NOTE else rel, content,
                  seoul_ns(modified))
        case.successResultOf(settings.update({"vault_path": str(self.vault),
                                              "timezone": "Asia/Seoul"}))
        self._llm_clock = llm_clock
        self._http = http
        self.h = Harness(case, extra_types=self._types)
        case.successResultOf(self.index.prepare_vectors())
        self.h.engine.startService()
        case.addCleanup(self.h.engine.stopService)
        job = self.run_job("index.update", {"changed_paths": sorted(NOTES)})
        case.assertEqual(job.status, SUCCEEDED, job.error)
        conn = self.h.db.connection
        gh_store.save(conn, "default", IN_DAY + OUTSIDE, "2024-05-02T00:00:00Z")
        gh_store.save(conn, "work", [OTHER_WORKSPACE], "2024-05-02T00:00:00Z")

    def _types(self, h: Harness) -> list[JobType]:
        self.index = VaultIndex(h.clock, h.db, HashingEmbedder(), VectorIndex(
            Path(self.case.mktemp()).absolute().with_name("index.hnsw")), run_inline, run_inline)
        self.searcher = Searcher(self.index)
        return [update_job(self.index, lambda: self.settings.get("vault_path")),
                suggest_job(h.db, self._llm_clock or h.clock, self.searcher,
                            lambda: self.settings.current, self._http)]

    def submit(self, payload: Any = None, job_type: str = "suggest.generate") -> str:
        job_id, _ = self.h.submit(self.case, job_type, payload)
        return job_id

    def run_job(self, job_type: str, payload: Any = None) -> Job:
        """Submit a job whose work is all inline: it has ended on return."""
        job = self.h.stored(self.submit(payload, job_type))
        self.case.assertIn(job.status, TERMINAL)
        return job

    def stored_result(self, day: str = DAY) -> Any:
        from enttok.suggest import store as suggest_store

        return suggest_store.latest(self.h.db.connection, day)

    def warnings(self, job_id: str) -> list[str]:
        return [m["message"] for m in self.h.messages if m["type"] == "log"
                and m["level"] == "warn" and m["job_id"] == job_id]


def texts(result: dict[str, Any], kind: str | None = None) -> list[str]:
    return [s["text"] for s in result["suggestions"] if kind is None or s["kind"] == kind]


def related_paths(result: dict[str, Any]) -> list[str]:
    return [s["sources"][0]["path"] for s in result["suggestions"] if s["kind"] == "related"]


class SuggestJobTests(APITestCase):
    """The job and C{GET /suggestions}, everything inline on the engine's clock."""

    def setUp(self) -> None:
        super().setUp()
        self.day = Day(self, self.settings)
        self.h = self.day.h
        self.clock = self.h.clock
        self.build()

    def build(self, status: StatusSource = idle_status) -> None:
        day = getattr(self, "day", None)
        if day is None:
            super().build(status)
            return
        self.api = BackendAPI(self.clock, self.settings, day.h.engine.status, day.h.engine,
                              day.index, day.h.db)
        self.guard = Guard(self.api.resource(), None, TOKEN,
                           lambda: self.settings.get("allowed_origins"))
        self.guard.port = PORT
        self.treq = StubTreq(self.guard)

    def generate(self, payload: Any = None) -> Job:
        job = self.day.run_job("suggest.generate", {"note_date": DAY} if payload is None
                               else payload)
        self.assertEqual((job.status, job.error), (SUCCEEDED, None))
        return job

    def get(self, query: str = f"date={DAY}") -> Any:
        response = self.request("GET", f"/suggestions?{query}")
        self.assertEqual(response.code, 200, response.body)
        return response.json()

    def test_the_day(self) -> None:
        job = self.generate()
        result = self.get()
        self.assertEqual(job.result, {"note_date": DAY, "suggestions":
                                      len(result["suggestions"]), "degraded": False})
        self.assertEqual((result["job_id"], result["note_date"], result["note_path"],
                          result["summary"], result["degraded"]),
                         (job.job_id, DAY, TARGET, None, False))
        self.assertEqual(result["created_at"], "2024-05-01T12:00:00Z")
        kinds = [s["kind"] for s in result["suggestions"]]
        self.assertEqual(kinds, ["activity", "commits", "activity", "task", "task", "task",
                                 "task", "edited", "edited"] + ["related"] * 5)
        self.assertEqual(texts(result)[:9], ACTIVITY_LINES + TASK_LINES + EDITED_LINES)
        self.assertEqual([s["reason"] for s in result["suggestions"] if s["kind"] == "task"],
                         TASK_REASONS)
        self.assertEqual(result["counts"], {"activity": len(IN_DAY),
                                            "suggestions": len(result["suggestions"])})
        for s in result["suggestions"]:
            self.assertEqual(set(s), {"id", "kind", "text", "sources", "score", "reason"})
            self.assertTrue(s["sources"], s)
        self.assertEqual(len({s["id"] for s in result["suggestions"]}), 14)

    def test_sources(self) -> None:
        self.generate()
        by_text = {s["text"]: s for s in self.get()["suggestions"]}
        self.assertEqual(by_text[ACTIVITY_LINES[0]]["sources"], [
            {"type": "github", "ref": f"pr_opened:{REPO}#12", "url": f"{WEB}/{REPO}/pull/12"},
            {"type": "github", "ref": f"pr_merged:{REPO}#12", "url": f"{WEB}/{REPO}/pull/12"}])
        self.assertEqual(by_text[ACTIVITY_LINES[1]]["sources"], [
            {"type": "github", "ref": f"commit:{REPO}:{sha}", "url": f"{WEB}/{REPO}/commit/{sha}"}
            for sha in (SHA1, SHA2)])
        self.assertEqual(by_text["- [ ] 일정 정리"]["sources"], [
            {"type": "task", "ref": "daily/2024-04-30.md:7", "path": "daily/2024-04-30.md"}])
        self.assertEqual(by_text["- Edited [[Ideas]]"]["sources"], [
            {"type": "note", "ref": "inbox/Ideas.md", "path": "inbox/Ideas.md"}])

    def test_related_notes(self) -> None:
        self.generate()
        result = self.get()
        paths = related_paths(result)
        self.assertEqual(len(paths), 5)
        self.assertFalse(set(paths) & NOT_RELATED, paths)
        # Both notes that share words with the day's activity are found.
        self.assertLessEqual({"projects/fts5.md", KOREAN_NOTE}, set(paths))
        related = [s for s in result["suggestions"] if s["kind"] == "related"]
        self.assertEqual([s["score"] for s in related], [0.5, 0.49, 0.48, 0.47, 0.46])
        by_path = {s["sources"][0]["path"]: s for s in related}
        self.assertEqual(by_path["projects/fts5.md"]["text"], "- Related: [[fts5|FTS5 index]]")
        self.assertEqual(by_path[KOREAN_NOTE]["text"], "- Related: [[한글 검색]]")
        self.assertRegex(by_path["projects/fts5.md"]["reason"],
                         r"^matches today's note and activity \(fts #\d+, vector #\d+\)$")

    def test_context_limit(self) -> None:
        self.generate({"note_date": DAY, "context_limit": 0})
        result = self.get()
        self.assertEqual(related_paths(result), [])
        self.assertEqual(texts(result), ACTIVITY_LINES + TASK_LINES + EDITED_LINES)
        self.generate({"note_date": DAY, "context_limit": 1})
        self.assertEqual(len(related_paths(self.get())), 1)

    def test_neighbouring_days(self) -> None:
        self.generate({"note_date": "2024-05-02"})
        result = self.get("date=2024-05-02")
        self.assertEqual(result["note_path"], "daily/2024-05-02.md")
        self.assertEqual(texts(result, "commits"),
                         [f"- 1 commit to [{REPO}]({WEB}/{REPO}/commits): Late night fix"])
        self.assertEqual(texts(result, "activity"), [])
        self.assertEqual(texts(result, "edited"), ["- Edited [[Late]]"])
        # Today's note is the day before: its open task is carried, its done one is not.
        self.assertEqual(texts(result, "task"), [
            "- [ ] review the search  PR", "- [ ] Write the suggest tests", "- [ ] 일정 정리",
            "- [ ] Call the bank"])
        self.generate({"note_date": "2024-04-30"})
        self.assertEqual(texts(self.get("date=2024-04-30"), "activity"), [
            f"- Closed issue [#3]({WEB}/{REPO}/issues/3) *Old bug* in {REPO}"])

    def test_not_found_before_and_bad_date(self) -> None:
        error = self.assertError(self.request("GET", f"/suggestions?date={DAY}"), 404,
                                 "no_suggestions")
        self.assertEqual(error["details"], {"date": DAY})
        for bad in ("2024-13-01", "yesterday", "2024-02-30"):
            error = self.assertError(self.request("GET", f"/suggestions?date={bad}"), 400,
                                     "invalid_query")
            self.assertEqual(error["details"], {"field": "date"})
        self.generate()
        self.assertEqual(self.request("GET", "/suggestions?date=2024-04-30").code, 404)

    def test_latest_result_wins(self) -> None:
        first = self.generate()
        self.clock.advance(60)
        second = self.generate({"note_date": DAY, "context_limit": 0})
        result = self.get()
        self.assertNotEqual(first.job_id, second.job_id)
        self.assertEqual((result["job_id"], result["created_at"]),
                         (second.job_id, "2024-05-01T12:01:00Z"))

    def test_terminal_status_event(self) -> None:
        job = self.generate()
        self.assertEqual(self.h.statuses(job.job_id), ["queued", "running", "succeeded"])
        [done] = self.h.terminal_messages(job.job_id)
        self.assertEqual(done["status"], "succeeded")

    def test_default_date_is_today_in_the_timezone(self) -> None:
        # 2024-05-01T16:00Z: still the 1st in UTC, already the 2nd in Seoul.
        self.clock.advance(4 * 3600)
        job = self.generate({})
        self.assertEqual(job.result["note_date"], "2024-05-02")
        self.assertEqual(self.get("date=2024-05-02")["note_path"], "daily/2024-05-02.md")
        self.assertEqual(self.get("")["job_id"], job.job_id)  # GET's default: today there
        self.successResultOf(self.settings.update({"timezone": "UTC"}))
        job = self.generate({})
        self.assertEqual(job.result["note_date"], DAY)
        self.assertEqual(self.get("")["job_id"], job.job_id)

    def test_explicit_note_path(self) -> None:
        # A Korean note (NFD on disk, as a Mac writes it), given NFD too: it links PR #12.
        self.generate({"note_date": DAY, "note_path": nfd(KOREAN_NOTE)})
        result = self.get()
        self.assertEqual(result["note_path"], KOREAN_NOTE)
        self.assertEqual(texts(result, "activity"), [
            f"- Opened issue [#15]({WEB}/{REPO}/issues/15) *한글 검색 개선* in {REPO}",
            ACTIVITY_LINES[2]])
        self.assertNotIn(KOREAN_NOTE, related_paths(result))
        # The daily note is just another note now: edited that day.
        self.assertIn("- Edited [[2024-05-01]]", texts(result, "edited"))

    def test_unknown_note_path(self) -> None:
        job = self.day.run_job("suggest.generate", {"note_path": "nowhere/missing.md"})
        self.assertEqual((job.status, (job.error or {}).get("code")), (FAILED, "note_not_found"))
        self.assertIsNone(self.day.stored_result())

    def test_no_note_for_the_day(self) -> None:
        self.generate({"note_date": "2024-04-25"})
        result = self.get("date=2024-04-25")
        self.assertIsNone(result["note_path"])
        self.assertEqual(texts(result, "task"), ["- [ ] Renew the domain",
                                                 "- [ ] Too old to carry"])

    def test_payload_validation(self) -> None:
        for payload in ({"note_date": "2024-02-30"}, {"note_date": "2024-5-1"},
                        {"note_date": 20240501}, {"context_limit": -1},
                        {"context_limit": 51}, {"unknown": 1}, {"note_path": 3}):
            error = self.assertRaises(ValidationError, self.h.engine.submit,
                                      "suggest.generate", payload)
            self.assertTrue(error.field.startswith("payload."), (payload, error.field))
        response = self.post_json("/jobs", {"type": "suggest.generate",
                                            "payload": {"note_date": "2024-02-30"}})
        self.assertEqual(response.code, 400, response.body)
        self.assertEqual(self.h.db.connection.execute(
            "select count(*) from jobs where type = 'suggest.generate'").fetchone()[0], 0)

    def test_inserted_lines_are_not_suggested_again(self) -> None:
        self.generate({"note_date": DAY, "context_limit": 0})
        lines = texts(self.get())
        note = self.day.vault / TARGET
        note.write_text(note.read_text("utf-8") + "\n".join(lines) + "\n", "utf-8")
        job = self.day.run_job("index.update", {"changed_paths": [TARGET]})
        self.assertEqual(job.status, SUCCEEDED, job.error)
        self.generate({"note_date": DAY, "context_limit": 0})
        self.assertEqual(texts(self.get()), [])


class SummaryTests(TestCase):
    """The optional summary from a fake OpenAI-compatible server, on the real reactor."""

    timeout = 30

    def setUp(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        self.settings = SettingsStore(folder / "settings.json", run_inline)
        pool = HTTPConnectionPool(reactor)  # persistent, as in the daemon
        self.addCleanup(pool.closeCachedConnections)
        self.day = Day(self, self.settings, reactor, HTTPClient(Agent(reactor, pool=pool)))

    def serve(self, mode: str) -> FakeLLM:
        fake = FakeLLM(reactor, mode)
        base_url = fake.listen()
        self.addCleanup(fake.close)
        self.successResultOf(self.settings.update({"llm": {
            "base_url": base_url, "model": "fake-model", "api_key": "sk-fake"}}))
        return fake

    async def generate(self, payload: Any = None) -> tuple[Job, dict[str, Any]]:
        job_id = self.day.submit({"note_date": DAY} if payload is None else payload)
        await wait_until(reactor, lambda: self.day.h.stored(job_id).status in TERMINAL,
                         timeout=10, what=f"{job_id} to end")
        job = self.day.h.stored(job_id)
        self.assertEqual((job.status, job.error), (SUCCEEDED, None))
        result: dict[str, Any] = self.day.stored_result()
        self.assertEqual(result["job_id"], job_id)
        self.assertEqual(texts(result)[:9], ACTIVITY_LINES + TASK_LINES + EDITED_LINES)
        return job, result

    async def test_summary(self) -> None:
        fake = self.serve("success")
        job, result = await self.generate()
        self.assertEqual(result["summary"], fake.reply)
        self.assertEqual(self.day.warnings(job.job_id), [])
        [request] = fake.requests
        self.assertEqual((request.method, request.path), ("POST", PATH))
        self.assertEqual(request.headers["authorization"], "Bearer sk-fake")
        self.assertEqual(request.headers["content-type"], "application/json")
        self.assertEqual(request.json["model"], "fake-model")
        system, user = request.json["messages"]
        self.assertEqual((system["role"], system["content"]), ("system", llm.PROMPT))
        self.assertEqual((user["role"], user["content"]),
                         ("user", "\n".join(ACTIVITY_LINES + TASK_LINES)))

    async def test_no_llm_configured(self) -> None:
        job, result = await self.generate()
        self.assertIsNone(result["summary"])
        self.assertEqual(self.day.warnings(job.job_id), [])

    async def test_no_model_configured(self) -> None:
        fake = self.serve("success")
        self.successResultOf(self.settings.update({"llm": {"model": None}}))
        job, result = await self.generate()
        self.assertIsNone(result["summary"])
        self.assertEqual(self.day.warnings(job.job_id),
                         ["summary skipped: no llm.base_url / llm.model configured"])
        self.assertEqual(fake.requests, [])

    async def test_timeout(self) -> None:
        self.patch(llm, "TIMEOUT", 0.3)
        fake = self.serve("hang")
        started = reactor.seconds()
        job, result = await self.generate()
        self.assertLess(reactor.seconds() - started, 5)
        self.assertIsNone(result["summary"])
        self.assertEqual(self.day.warnings(job.job_id),
                         ["summary skipped: no answer within 0.3 s"])
        self.assertEqual(len(fake.requests), 1)
        await wait_until(reactor, lambda: fake.hanging == 0, what="the request to be dropped")

    async def test_server_down(self) -> None:
        fake = self.serve("success")
        await fake.close()
        job, result = await self.generate()
        self.assertIsNone(result["summary"])
        self.assertEqual(self.day.warnings(job.job_id),
                         ["summary skipped: request failed: ConnectionRefusedError"])

    async def garbage(self, mode: str, why: str) -> None:
        fake = self.serve(mode)
        job, result = await self.generate()
        self.assertIsNone(result["summary"])
        self.assertEqual(self.day.warnings(job.job_id), [f"summary skipped: {why}"])
        self.assertEqual(len(fake.requests), 1)

    async def test_not_json(self) -> None:
        await self.garbage("not_json", "the reply is not an OpenAI-style chat completion")

    async def test_wrong_shape(self) -> None:
        await self.garbage("wrong_shape", "the reply is not an OpenAI-style chat completion")

    async def test_empty_reply(self) -> None:
        await self.garbage("empty", "the reply is empty")

    async def test_server_error(self) -> None:
        await self.garbage("error", "the server answered 500")
