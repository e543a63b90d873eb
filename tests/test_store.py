"""The SQLite store: schema versions, pragmas, and the job and event queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from enttok.jobs import store
from enttok.jobs.model import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    IllegalTransition,
    Job,
)
from enttok.jobs.store import EventRow
from enttok.store import Database, SchemaTooNew
from enttok.store import salvage as salvage_module
from enttok.store.db import BUSY_TIMEOUT_MS, damage_marker, is_damage
from enttok.store.migrations import LATEST, MIGRATIONS, current_version, migrate
from enttok.store.salvage import highest_job_id, salvage
from enttok.threads import run_inline


def make_job(job_id: str, status: str = QUEUED, job_type: str = "test.wait",
             updated_at: str = "2024-05-01T12:00:00Z") -> Job:
    return Job(job_id=job_id, type=job_type, status=status, created_at="2024-05-01T12:00:00Z",
               updated_at=updated_at, payload={"n": 1}, key=f"{job_type}\n{job_id}")


def event(event_id: int, job_id: str) -> EventRow:
    return EventRow(event_id=event_id, job_id=job_id, created_at="2024-05-01T12:00:00Z",
                    level="info", message=f"event {event_id}",
                    meta={"type": "job.status", "seq": event_id})


class StoreCase(SynchronousTestCase):
    def open_db(self) -> sqlite3.Connection:
        db = Database(self.mktemp(), run_inline)
        db.open()
        self.addCleanup(db.close)
        return db.connection

    def job_ids(self, conn: sqlite3.Connection) -> list[str]:
        return [r[0] for r in conn.execute("select job_id from jobs order by job_id")]

    def event_ids(self, conn: sqlite3.Connection) -> list[int]:
        return [r[0] for r in conn.execute("select event_id from job_events order by event_id")]


class MigrationTests(StoreCase):
    def test_empty_database_reaches_latest(self) -> None:
        conn = self.open_db()
        self.assertEqual(current_version(conn), LATEST)
        columns = {r[1] for r in conn.execute("pragma table_info(jobs)")}
        self.assertTrue({"job_id", "status", "attempts", "payload_key"} <= columns)
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
        self.assertTrue({"jobs", "job_events", "sync_state", "meta", "jobs_status"} <= tables)

    def test_version_1_database_is_upgraded_in_place(self) -> None:
        path = self.mktemp()
        conn = sqlite3.connect(path, isolation_level=None)
        self.assertEqual(migrate(conn, MIGRATIONS[:1]), 1)
        self.assertEqual(current_version(conn), 1)
        conn.execute(
            "insert into jobs (job_id, type, status, created_at, updated_at, progress, "
            "message, payload_json, result_json, error_json) values "
            "('job_20240101_001', 'maintenance.compact', 'succeeded', '2024-01-01T00:00:00Z', "
            "'2024-01-01T00:01:00Z', 1.0, 'done', '{\"vacuum\": true}', '{\"ok\": 1}', null)")
        conn.execute("insert into job_events (event_id, job_id, created_at, level, message, "
                     "meta_json) values (7, 'job_20240101_001', '2024-01-01T00:00:00Z', "
                     "'info', 'queued', null)")
        conn.close()

        db = Database(path, run_inline)
        db.open()
        self.addCleanup(db.close)
        self.assertEqual(current_version(db.connection), LATEST)
        job = store.get_job(db.connection, "job_20240101_001")
        assert job is not None
        self.assertEqual((job.status, job.attempts, job.payload, job.result, job.message),
                         (SUCCEEDED, 0, {"vacuum": True}, {"ok": 1}, "done"))
        self.assertEqual(job.key, "")
        self.assertEqual([e.event_id for e in store.recent_events(db.connection, job.job_id)],
                         [7])

    def test_reopening_applies_nothing(self) -> None:
        conn = self.open_db()
        self.assertEqual(migrate(conn), 0)
        self.assertEqual(current_version(conn), LATEST)

    def test_newer_schema_is_refused(self) -> None:
        path = self.mktemp()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"pragma user_version = {LATEST + 1}")
        conn.close()
        db = Database(path, run_inline)
        error = self.assertRaises(SchemaTooNew, db.open)
        self.assertIn(str(LATEST + 1), str(error))
        self.assertRaises(RuntimeError, lambda: db.connection)
        conn = sqlite3.connect(path)
        self.assertEqual(current_version(conn), LATEST + 1)
        self.assertEqual(conn.execute("select count(*) from sqlite_master").fetchone()[0], 0)
        conn.close()

    def test_failed_step_is_rolled_back(self) -> None:
        conn = self.open_db()
        broken = [*MIGRATIONS, "create table extra (a integer); insert into nowhere values (1)"]
        self.assertRaises(sqlite3.OperationalError, migrate, conn, broken)
        self.assertEqual(current_version(conn), LATEST)
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
        self.assertNotIn("extra", tables)

    def test_pragmas(self) -> None:
        conn = self.open_db()
        self.assertEqual(conn.execute("pragma journal_mode").fetchone()[0], "wal")
        self.assertEqual(conn.execute("pragma busy_timeout").fetchone()[0], BUSY_TIMEOUT_MS)
        self.assertGreater(BUSY_TIMEOUT_MS, 0)
        self.assertEqual(conn.execute("pragma foreign_keys").fetchone()[0], 1)

    def test_run_calls_with_the_connection(self) -> None:
        db = Database(self.mktemp(), run_inline)
        self.assertRaises(RuntimeError, lambda: db.connection)
        db.open()
        result = self.successResultOf(db.run(lambda conn, x: conn.execute(
            "select ?", (x,)).fetchone()[0], 42))
        self.assertEqual(result, 42)
        self.successResultOf(db.close())
        self.assertRaises(RuntimeError, lambda: db.connection)
        self.assertIsNone(self.successResultOf(db.close()))


class SaveJobTests(StoreCase):
    def setUp(self) -> None:
        self.conn = self.open_db()
        store.insert_job(self.conn, make_job("job_20240501_001"), [event(1, "job_20240501_001")])

    def test_saves_when_status_matches(self) -> None:
        job = evolve(make_job("job_20240501_001"), status=RUNNING, attempts=1, progress=0.5)
        self.assertTrue(store.save_job(self.conn, job, QUEUED, [event(2, job.job_id)]))
        stored = store.get_job(self.conn, job.job_id)
        assert stored is not None
        self.assertEqual((stored.status, stored.attempts, stored.progress), (RUNNING, 1, 0.5))
        self.assertEqual(self.event_ids(self.conn), [1, 2])

    def test_wrong_expected_status_writes_nothing(self) -> None:
        job = evolve(make_job("job_20240501_001"), status=SUCCEEDED, result={"x": 1})
        self.assertFalse(store.save_job(self.conn, job, RUNNING, [event(2, job.job_id)]))
        stored = store.get_job(self.conn, job.job_id)
        assert stored is not None
        self.assertEqual((stored.status, stored.result), (QUEUED, None))
        self.assertEqual(self.event_ids(self.conn), [1])

    def test_illegal_transition_is_refused(self) -> None:
        job = evolve(make_job("job_20240501_001"), status=RUNNING)
        self.assertTrue(store.save_job(self.conn, job, QUEUED))
        done = evolve(job, status=SUCCEEDED)
        self.assertTrue(store.save_job(self.conn, done, RUNNING))
        again = evolve(job, status=RUNNING)
        self.assertRaises(IllegalTransition, store.save_job, self.conn, again, SUCCEEDED,
                          [event(2, job.job_id)])
        self.assertRaises(IllegalTransition, store.save_job, self.conn,
                          evolve(job, status=SUCCEEDED), QUEUED)
        stored = store.get_job(self.conn, job.job_id)
        assert stored is not None
        self.assertEqual(stored.status, SUCCEEDED)
        self.assertEqual(self.event_ids(self.conn), [1])

    def test_same_status_update(self) -> None:
        job = evolve(make_job("job_20240501_001"), message="still waiting")
        self.assertTrue(store.save_job(self.conn, job, QUEUED))
        stored = store.get_job(self.conn, job.job_id)
        assert stored is not None
        self.assertEqual(stored.message, "still waiting")

    def test_unknown_job_is_not_saved(self) -> None:
        self.assertFalse(store.save_job(self.conn, make_job("job_20240501_999"), QUEUED))
        self.assertEqual(self.job_ids(self.conn), ["job_20240501_001"])


class ListJobsTests(StoreCase):
    def setUp(self) -> None:
        self.conn = self.open_db()
        self.specs = [(QUEUED, "a"), (RUNNING, "b"), (SUCCEEDED, "a"), (FAILED, "b"),
                      (CANCELED, "a"), (SUCCEEDED, "b"), (QUEUED, "a")]
        # Inserted out of id order: "newest" means most recently inserted.
        self.ids = [f"job_20240501_{n:03d}" for n in (5, 1, 7, 3, 2, 6, 4)]
        for job_id, (status, job_type) in zip(self.ids, self.specs, strict=True):
            store.insert_job(self.conn, make_job(job_id, status, job_type))
        self.newest_first = list(reversed(self.ids))

    def listed(self, statuses: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> list[str]:
        jobs, _ = store.list_jobs(self.conn, statuses, types)
        return [j.job_id for j in jobs]

    def expected(self, statuses: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> list[str]:
        return [job_id for job_id, (status, job_type)
                in reversed(list(zip(self.ids, self.specs, strict=True)))
                if (not statuses or status in statuses) and (not types or job_type in types)]

    def test_newest_first(self) -> None:
        self.assertEqual(self.listed(), self.newest_first)

    def test_filters(self) -> None:
        cases = [((QUEUED, RUNNING), ()), ((), ("b",)), ((SUCCEEDED,), ("a",)),
                 ((), ("a", "b")), ((), ("nothing",))]
        for statuses, types in cases:
            self.assertEqual(self.listed(statuses, types), self.expected(statuses, types))
        self.assertEqual(self.listed((QUEUED, RUNNING)),
                         [self.ids[6], self.ids[1], self.ids[0]])
        self.assertEqual(self.listed((SUCCEEDED,), ("a",)), [self.ids[2]])
        self.assertEqual(self.listed(types=("nothing",)), [])

    def test_paging(self) -> None:
        seen: list[str] = []
        cursor: int | None = None
        pages = 0
        while True:
            jobs, cursor = store.list_jobs(self.conn, limit=3, before=cursor)
            pages += 1
            self.assertLessEqual(len(jobs), 3)
            seen.extend(j.job_id for j in jobs)
            if cursor is None:
                break
        self.assertEqual((pages, seen), (3, self.newest_first))

    def test_exact_last_page_has_no_cursor(self) -> None:
        jobs, cursor = store.list_jobs(self.conn, limit=7)
        self.assertEqual((len(jobs), cursor), (7, None))
        jobs, cursor = store.list_jobs(self.conn, limit=6)
        self.assertEqual(len(jobs), 6)
        self.assertIsNotNone(cursor)

    def test_paging_with_filter(self) -> None:
        first, cursor = store.list_jobs(self.conn, types=["a"], limit=2)
        rest, end = store.list_jobs(self.conn, types=["a"], limit=2, before=cursor)
        self.assertEqual((len(first), len(rest)), (2, 2))
        self.assertIsNone(end)
        self.assertEqual([j.job_id for j in first + rest], self.expected(types=("a",)))


class PruneTests(StoreCase):
    OLD = "2024-01-01T00:00:00Z"
    NEW = "2024-06-01T00:00:00Z"
    CUTOFF = "2024-03-01T00:00:00Z"

    def setUp(self) -> None:
        self.conn = self.open_db()
        jobs = [("old_succeeded", SUCCEEDED, self.OLD), ("old_failed", FAILED, self.OLD),
                ("old_canceled", CANCELED, self.OLD), ("old_queued", QUEUED, self.OLD),
                ("old_running", RUNNING, self.OLD), ("new_succeeded", SUCCEEDED, self.NEW)]
        next_event = 1
        for job_id, status, updated in jobs:
            events = [event(next_event, job_id), event(next_event + 1, job_id)]
            next_event += 2
            store.insert_job(self.conn, make_job(job_id, status, updated_at=updated), events)

    def test_deletes_only_old_finished_jobs_and_their_events(self) -> None:
        self.assertEqual(store.pruned_through(self.conn), 0)
        self.assertEqual(store.prune_finished(self.conn, self.CUTOFF), (3, 6))
        self.assertEqual(self.job_ids(self.conn),
                         ["new_succeeded", "old_queued", "old_running"])
        self.assertEqual(self.event_ids(self.conn), [7, 8, 9, 10, 11, 12])
        self.assertEqual(store.pruned_through(self.conn), 6)

    def test_pruned_point_never_goes_back(self) -> None:
        store.prune_finished(self.conn, self.CUTOFF)
        self.assertEqual(store.prune_finished(self.conn, self.CUTOFF), (0, 0))
        self.assertEqual(store.pruned_through(self.conn), 6)
        # A job with low event ids pruned later leaves the mark where it was.
        store.insert_job(self.conn, make_job("late", SUCCEEDED, updated_at=self.OLD),
                         [event(3, "late")])
        self.assertEqual(store.prune_finished(self.conn, self.CUTOFF), (1, 1))
        self.assertEqual(store.pruned_through(self.conn), 6)
        self.assertEqual(store.prune_finished(self.conn, "2025-01-01T00:00:00Z"), (1, 2))
        self.assertEqual(store.pruned_through(self.conn), 12)

    def test_events_after(self) -> None:
        self.assertEqual(store.max_event_id(self.conn), 12)
        self.assertEqual([e.event_id for e in store.events_after(self.conn, 9)], [10, 11, 12])
        self.assertEqual([e.event_id for e in store.events_after(self.conn, 0, limit=2)],
                         [1, 2])
        row = store.events_after(self.conn, 11)[0]
        self.assertEqual((row.job_id, row.meta), ("new_succeeded",
                                                  {"type": "job.status", "seq": 12}))


class JobNumberTests(StoreCase):
    def test_max_job_number(self) -> None:
        conn = self.open_db()
        self.assertEqual(store.max_job_number(conn, "job_20240501_"), 0)
        self.assertEqual(store.max_event_id(conn), 0)
        for job_id in ("job_20240501_001", "job_20240501_007", "job_20240501_1000",
                       "job_20240501_0x2", "job_20240502_004", "job_20240430_999"):
            store.insert_job(conn, make_job(job_id))
        self.assertEqual(store.max_job_number(conn, "job_20240501_"), 1000)
        self.assertEqual(store.max_job_number(conn, "job_20240502_"), 4)
        self.assertEqual(store.max_job_number(conn, "job_20240503_"), 0)
        store.set_meta(conn, store.JOB_ID_FLOOR, "job_20240502_040")
        self.assertEqual(store.max_job_number(conn, "job_20240502_"), 40)
        self.assertEqual(store.max_job_number(conn, "job_20240501_"), 1000)


class DamageTests(StoreCase):
    """SQLite reporting a damaged file while running, and the salvage at the next start."""

    def test_damage_is_recorded_once_for_the_next_start(self) -> None:
        path = self.mktemp()
        db = Database(path, run_inline)
        db.open()
        self.addCleanup(db.close)

        def fails(conn: sqlite3.Connection, error: Exception) -> None:
            raise error

        busy = sqlite3.OperationalError("database is locked")
        self.failureResultOf(db.run(fails, busy), sqlite3.OperationalError)
        self.assertIsNone(db.damage)
        self.assertFalse(damage_marker(path).exists())
        for text in ("database disk image is malformed", "a later one"):
            self.failureResultOf(db.run(fails, sqlite3.DatabaseError(text)),
                                 sqlite3.DatabaseError)
        self.assertEqual(db.damage, "database disk image is malformed")
        self.assertEqual(damage_marker(path).read_text(), "database disk image is malformed\n")

    def test_is_damage(self) -> None:
        self.assertTrue(is_damage(sqlite3.DatabaseError("file is not a database")))
        self.assertTrue(is_damage(sqlite3.DatabaseError("database disk image is malformed")))
        self.assertFalse(is_damage(sqlite3.OperationalError("disk I/O error")))
        self.assertFalse(is_damage(ValueError("malformed")))

    def test_highest_job_id_across_blocks(self) -> None:
        path = Path(self.mktemp())
        ids = [b"job_20240501_009", b"job_20240502_003", b"job_20240501_1200"]
        # Blocks shorter than an id: each id spans two or three of them.
        self.patch(salvage_module, "_SCAN_BLOCK", 7)
        path.write_bytes(b"\0junk" + b"\xff".join(ids) + b"job_2024050_1 job_x")
        wal = Path(f"{path}-wal")
        wal.write_bytes(b"..job_20240502_017..")
        self.assertEqual(highest_job_id([path]), "job_20240502_003")
        self.assertEqual(highest_job_id([path, wal, Path("/nonexistent")]), "job_20240502_017")
        self.assertIsNone(highest_job_id([Path("/nonexistent")]))

    def test_salvage_keeps_job_ids_going_when_the_jobs_are_lost(self) -> None:
        path = Path(self.mktemp())
        db = Database(path, run_inline)
        db.open()
        for n in (1, 2, 41):
            store.insert_job(db.connection, make_job(f"job_20240501_{n:03d}"))
        db.close()
        with open(path, "r+b") as f:
            f.write(b"not a database" * 8)  # the header: nothing is readable
        aside = salvage(path)
        self.assertTrue(aside.exists())
        conn = sqlite3.connect(path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("select count(*) from jobs").fetchone()[0], 0)
        self.assertEqual(store.max_job_number(conn, "job_20240501_"), 41)
