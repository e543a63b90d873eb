"""GET /notes/daily/{date} and POST /notes/daily/{date}/append through the guard."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from enttok.api.app import BackendAPI
from enttok.api.guard import Guard
from enttok.settings import SettingsStore
from enttok.threads import run_inline
from tests.daemonsupport import start, write_settings
from tests.indexsupport import index_harness, write

TOKEN = "notes-api-token-0123456789"
PORT = 4344
#: The harness clock starts at 2024-05-01T12:00:00Z (21:00 in Asia/Seoul).
TODAY = "2024-05-01"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class NotesAPITests(SynchronousTestCase):
    def setUp(self) -> None:
        self.vault = Path(self.mktemp()).absolute()
        self.vault.mkdir()
        write(self.vault, "projects/enttok.md", "# enttok\n\nbackend work\n")
        self.h, self.index = index_harness(self, self.vault)
        self.settings = SettingsStore(Path(self.mktemp()), run_inline)
        self.successResultOf(self.settings.update({"vault_path": str(self.vault),
                                                   "timezone": "Asia/Seoul"}))
        self.api = BackendAPI(self.h.clock, self.settings, self.h.engine.status, self.h.engine,
                              self.index, self.h.db, run_blocking=run_inline)
        guard = Guard(self.api.resource(), None, TOKEN, lambda: [])
        guard.port = PORT
        self.client = StubTreq(guard)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Host": f"127.0.0.1:{PORT}", "X-Backend-Token": TOKEN,
                   "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode("utf-8")
        d = self.client.request(method, f"http://127.0.0.1:{PORT}{path}",  # type: ignore[attr-defined]
                                headers=headers, data=data)
        self.client.flush()
        response = self.successResultOf(d)
        return response.code, json.loads(self.successResultOf(response.content()))

    def error(self, answer: tuple[int, Any], status: int, code: str) -> Any:
        self.assertEqual((answer[0], answer[1]["error"]["code"]), (status, code), answer)
        return answer[1]["error"]

    def state(self, day: str = TODAY) -> Any:
        status, body = self.call("GET", f"/notes/daily/{day}")
        self.assertEqual(status, 200, body)
        return body

    def append(self, body: dict[str, Any], day: str = TODAY) -> tuple[int, Any]:
        return self.call("POST", f"/notes/daily/{day}/append", body)

    def base(self, state: Any) -> dict[str, Any] | None:
        return {"sha256": state["sha256"]} if state["exists"] else None

    def test_creates_today_s_note_and_indexes_it(self) -> None:
        self.assertEqual(self.state("today"), {
            "date": TODAY, "path": f"daily/{TODAY}.md", "exists": False, "sha256": None,
            "mtime_ns": None, "size": None})
        status, done = self.append({"lines": ["- [ ] 코드 리뷰 zebrafish"], "base": None},
                                   "today")
        self.assertEqual(status, 200, done)
        path = self.vault / "daily" / f"{TODAY}.md"
        data = path.read_bytes()
        self.assertEqual(data.decode(), "## Suggestions\n- [ ] 코드 리뷰 zebrafish\n")
        self.assertEqual({k: done[k] for k in ("path", "exists", "sha256", "mtime_ns", "size",
                                                "created", "appended", "skipped")},
                         {"path": f"daily/{TODAY}.md", "exists": True, "sha256": sha(data),
                          "mtime_ns": str(path.stat().st_mtime_ns), "size": len(data),
                          "created": True, "appended": 1, "skipped": 0})
        job = self.h.stored(done["index_job_id"])
        self.assertEqual((job.type, job.status), ("index.update", "succeeded"))
        hits = self.call("GET", "/search?q=zebrafish&mode=fts")[1]["hits"]
        self.assertEqual([h["path"] for h in hits], [f"daily/{TODAY}.md"])
        self.assertEqual(self.state()["sha256"], sha(data))

    def test_template_and_heading_settings(self) -> None:
        write(self.vault, "templates/daily.md", "# {{date:dddd}} {{date}}\n\n## 할 일\n")
        self.successResultOf(self.settings.update({"daily_notes": {
            "path_pattern": "일기/YYYY/YYYY-MM-DD.md", "template": "templates/daily.md",
            "heading": "## 할 일"}}))
        status, done = self.append({"lines": ["- 회의 준비"], "base": None})
        self.assertEqual(status, 200, done)
        self.assertEqual(done["path"], f"일기/2024/{TODAY}.md")
        self.assertEqual((self.vault / "일기" / "2024" / f"{TODAY}.md").read_text("utf-8"),
                         f"# Wednesday {TODAY}\n\n## 할 일\n- 회의 준비\n")
        # The request may name another heading.
        status, done = self.append({"lines": ["- x"], "heading": "### Later",
                                    "base": {"mtime_ns": done["mtime_ns"]}})
        self.assertEqual(status, 200, done)
        self.assertTrue((self.vault / "일기" / "2024" / f"{TODAY}.md").read_text(
            "utf-8").endswith("## 할 일\n- 회의 준비\n\n### Later\n- x\n"))

    def test_an_unreadable_template_creates_nothing(self) -> None:
        self.successResultOf(self.settings.update({"daily_notes": {"template": "nope.md"}}))
        self.error(self.append({"lines": ["- a"], "base": None}), 422, "template_unreadable")
        self.assertFalse((self.vault / "daily").exists())

    def test_concurrent_edit_is_refused_with_the_current_hash(self) -> None:
        path = write(self.vault, f"daily/{TODAY}.md", "# Today\n")
        seen = self.state()
        path.write_text("# Today\n\nwritten in the editor meanwhile\n", "utf-8")
        error = self.error(self.append({"lines": ["- a"], "base": self.base(seen)}), 409,
                           "note_changed")
        now = path.read_bytes()
        self.assertEqual(now, b"# Today\n\nwritten in the editor meanwhile\n")
        self.assertEqual(error["details"]["sha256"], sha(now))
        self.assertEqual(error["details"]["path"], f"daily/{TODAY}.md")
        # After reading again the append goes through, keeping the editor's text.
        status, done = self.append({"lines": ["- a"],
                                    "base": {"sha256": error["details"]["sha256"]}})
        self.assertEqual(status, 200, done)
        self.assertEqual(path.read_bytes(), now + b"\n## Suggestions\n- a\n")

    def test_two_clients_with_the_same_base_one_wins(self) -> None:
        write(self.vault, f"daily/{TODAY}.md", "# Today\n")
        base = self.base(self.state())
        first = self.append({"lines": ["- first"], "base": base})
        second = self.append({"lines": ["- second"], "base": base})
        self.assertEqual(first[0], 200)
        self.error(second, 409, "note_changed")
        self.assertEqual((self.vault / "daily" / f"{TODAY}.md").read_text("utf-8"),
                         "# Today\n\n## Suggestions\n- first\n")

    def test_a_client_that_saw_no_file_does_not_overwrite_one(self) -> None:
        write(self.vault, f"daily/{TODAY}.md", "made meanwhile\n")
        self.error(self.append({"lines": ["- a"]}), 409, "note_changed")
        self.assertEqual((self.vault / "daily" / f"{TODAY}.md").read_text("utf-8"),
                         "made meanwhile\n")

    def test_finds_an_indexed_daily_note_in_another_folder_nfd(self) -> None:
        """A day's note kept elsewhere (here in a Mac-made NFD folder) is the one used."""
        folder = unicodedata.normalize("NFD", "저널")
        path = write(self.vault, f"{folder}/{TODAY}.md", "# 오늘\n")
        self.h.submit(self, "vault.scan")
        found = self.state()
        self.assertEqual(found["path"], f"저널/{TODAY}.md")  # NFC, as indexed
        status, done = self.append({"lines": ["- 회의"], "base": self.base(found)})
        self.assertEqual(status, 200, done)
        self.assertEqual(path.read_text("utf-8"), "# 오늘\n\n## Suggestions\n- 회의\n")
        self.assertFalse((self.vault / "daily").exists())
        self.assertFalse((self.vault / "저널").exists())  # no NFC twin of the folder
        job = self.h.stored(done["index_job_id"])
        self.assertEqual((job.status, job.payload["changed_paths"]),
                         ("succeeded", [f"저널/{TODAY}.md"]))

    def test_bad_requests(self) -> None:
        fullwidth = "%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%94-05-01"  # "２０２４-05-01"  # noqa: RUF003
        for day in ("2024-02-30", "20240501", "yesterday", "2024-5-1", fullwidth,
                    "2024-05-01%00"):
            self.error(self.call("GET", f"/notes/daily/{day}"), 400, "invalid_date")
            self.error(self.append({"lines": ["- a"]}, day), 400, "invalid_date")
        for body, field in (({"lines": []}, "lines"), ({"lines": ["a\nb"]}, "lines[0]"),
                            ({"lines": ["a"], "heading": "Suggestions"}, "heading"),
                            ({"lines": ["a"], "base": {"sha256": "xyz"}}, "base.sha256"),
                            ({"lines": ["a"], "base": {"mtime_ns": -1}}, "base.mtime_ns"),
                            ({"lines": ["a"], "base": {}}, "base"),
                            ({"lines": ["a"], "base": {"sha256": None, "mtime_ns": "5"}},
                             "base.sha256"),
                            ({"lines": ["a"], "base": {"mtime_ns": None}}, "base.mtime_ns"),
                            ({"lines": ["a"], "base": {"mtime_ns": "1" * 25}}, "base.mtime_ns"),
                            ({"lines": ["a"], "heading": "## #"}, "heading"),
                            ({"lines": ["a"], "base": {"size": 3}}, "base"),
                            ({"lines": ["a"], "path": "../x.md"}, "path")):
            error = self.error(self.append(body), 400, "invalid_body")
            self.assertEqual(error["details"], {"field": field}, body)
        self.error(self.call("POST", f"/notes/daily/{TODAY}/append", ["- a"]), 400,
                   "invalid_body")
        self.assertEqual(list(self.vault.iterdir()), [self.vault / "projects"])
        # An encoded slash does not reach the route: no path can be smuggled in.
        self.error(self.call("GET", "/notes/daily/..%2F..%2Fetc"), 404, "not_found")

    def test_a_pattern_into_a_linked_folder_outside_is_refused(self) -> None:
        outside = Path(self.mktemp()).absolute()
        outside.mkdir()
        (self.vault / "daily").symlink_to(outside)
        self.error(self.append({"lines": ["- a"]}), 400, "outside_vault")
        self.assertEqual(list(outside.iterdir()), [])

    def test_no_vault(self) -> None:
        self.successResultOf(self.settings.update({"vault_path": None}))
        self.error(self.call("GET", f"/notes/daily/{TODAY}"), 409, "no_vault")
        self.error(self.append({"lines": ["- a"]}), 409, "no_vault")

    def test_without_an_index_the_routes_are_absent(self) -> None:
        api = BackendAPI(self.h.clock, self.settings)
        guard = Guard(api.resource(), None, TOKEN, lambda: [])
        guard.port = PORT
        self.client = StubTreq(guard)
        self.error(self.call("GET", f"/notes/daily/{TODAY}"), 404, "not_found")



class DaemonTests(SynchronousTestCase):
    """The routes in a real daemon: its thread pool, its job engine, its index."""

    def test_append_in_a_daemon_is_indexed(self) -> None:
        root = Path(self.mktemp()).absolute()
        vault = root / "vault"
        write(vault, "projects/enttok.md", "# enttok\n")
        data_dir = root / "data"
        data_dir.mkdir()
        write_settings(data_dir, {"vault_path": str(vault), "timezone": "Asia/Seoul"})
        daemon = start(self, data_dir)
        day = "2026-12-04"
        state = daemon.ok("GET", f"/notes/daily/{day}")
        self.assertEqual((state["path"], state["exists"]), (f"daily/{day}.md", False))
        done = daemon.ok("POST", f"/notes/daily/{day}/append",
                         {"lines": ["- [ ] 배포 준비 quokka"], "base": None})
        note = vault / "daily" / f"{day}.md"
        self.assertEqual(note.read_text("utf-8"), "## Suggestions\n- [ ] 배포 준비 quokka\n")
        job = daemon.wait_jobs([done["index_job_id"]], 30.0)[done["index_job_id"]]
        self.assertEqual((job["type"], job["status"]), ("index.update", "succeeded"), job)
        hits = daemon.ok("GET", "/search?q=quokka&mode=fts")["hits"]
        self.assertEqual([h["path"] for h in hits], [f"daily/{day}.md"])
        # A client holding the old state is refused; the note is left as it is.
        status, answer = daemon.call("POST", f"/notes/daily/{day}/append",
                                     {"lines": ["- late"], "base": None})
        self.assertEqual((status, answer["error"]["code"]), (409, "note_changed"), answer)
        self.assertEqual(answer["error"]["details"]["sha256"], done["sha256"])
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
