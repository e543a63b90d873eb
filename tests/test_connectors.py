"""Connector plugins: discovery, job types, the scheduler's timers and GET /connectors."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
import unicodedata
import uuid
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import enttok.plugins
from enttok.api.app import BackendAPI
from enttok.api.guard import Guard
from enttok.connectors import activity
from enttok.connectors.interface import (
    ConnectorDeps,
    IConnector,
    IConnectorPlugin,
    job_type_name,
)
from enttok.connectors.loader import BUILTIN, build_connectors, connector_job, find_plugins
from enttok.jobs import store as job_store
from enttok.jobs.context import JobContext
from enttok.jobs.registry import JobType
from enttok.jobs.scheduler import Scheduler
from enttok.settings import SettingsStore
from enttok.threads import run_inline
from enttok.validation import ValidationError
from tests import test_plugin as plugin_tests
from tests.apisupport import PORT, TOKEN, APITestCase
from tests.jobsupport import Harness

SPEC = Path(__file__).parent.parent / "docs" / "openapi.yaml"
BUILT_IN_IDS = ["github", "git", "calendar"]
MINUTE = 60.0

EXTRA_PLUGIN = '''
from enttok.connectors.interface import ConnectorPlugin

def _build(deps):
    raise AssertionError("not built in this test")

extra = ConnectorPlugin("extra", _build)
'''


def connectors_for(clock: Any, db: Any, settings: SettingsStore) -> list[IConnector]:
    return build_connectors(ConnectorDeps(clock, db, lambda: settings.current,
                                          None))  # type: ignore[arg-type]


class DiscoveryTests(SynchronousTestCase):
    def test_the_built_in_plugins_are_found(self) -> None:
        plugins = find_plugins()
        self.assertEqual([p.connector_id for p in plugins], BUILT_IN_IDS)
        for plugin in plugins:
            self.assertTrue(verifyObject(IConnectorPlugin, plugin))

    def test_each_builds_a_connector_with_its_job_type(self) -> None:
        settings = SettingsStore(Path(self.mktemp()), run_inline)
        connectors = connectors_for(Clock(), None, settings)
        for connector in connectors:
            self.assertTrue(verifyObject(IConnector, connector))
            job = connector_job(connector)
            self.assertEqual((job.name, job.lock),
                             (f"connector.{connector.connector_id}.sync",
                              connector.connector_id))
            # Every payload field has a default: an empty payload is valid.
            self.assertIsInstance(job.validate(None), dict)
            with self.assertRaises(ValidationError):
                job.validate({"no_such_field": 1})
            defaults = settings.current
            self.assertFalse(connector.configured(defaults))
            self.assertIsNone(connector.interval_minutes(defaults))

    def test_github_follows_its_existing_settings(self) -> None:
        settings = SettingsStore(Path(self.mktemp()), run_inline)
        [github] = [c for c in connectors_for(Clock(), None, settings)
                    if c.connector_id == "github"]
        self.assertEqual((github.state_key, github.display_name), ("github:default", "GitHub"))
        self.successResultOf(settings.update({"github": {"token": "ghp_x"}}))
        self.assertEqual((github.configured(settings.current), github.enabled(settings.current),
                          github.interval_minutes(settings.current)), (True, True, 15))
        self.successResultOf(settings.update({"schedule": {"github_sync_minutes": 0}}))
        self.assertIsNone(github.interval_minutes(settings.current))
        job = connector_job(github)
        self.assertEqual(job.validate({"workspace_id": "work"})["workspace_id"], "work")
        with self.assertRaises(ValidationError):
            job.validate({"workspace_id": "no spaces"})

    def package(self) -> Any:
        """A throwaway plugin package holding one extra connector plugin."""
        root = Path(self.mktemp()).absolute()
        name = f"plugins_{uuid.uuid4().hex[:8]}"
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (root / name / "extra.py").write_text(EXTRA_PLUGIN)
        sys.path.insert(0, str(root))
        self.addCleanup(sys.path.remove, str(root))
        self.addCleanup(lambda: [sys.modules.pop(m) for m in list(sys.modules)
                                 if m.startswith(name)])
        return importlib.import_module(name)

    def test_a_plugin_dropped_into_the_package_is_found(self) -> None:
        package = self.package()
        plugins = find_plugins(package)
        self.assertEqual([p.connector_id for p in plugins], [*BUILT_IN_IDS, "extra"])
        self.assertTrue(os.path.exists(os.path.join(package.__path__[0], "dropin.cache")))

    def test_an_unwritable_plugin_cache_still_finds_them(self) -> None:
        # A read-only install: the cache cannot be written (a folder stands in its
        # way, which stops root too); Twisted logs that and still answers.
        package = self.package()
        os.mkdir(os.path.join(package.__path__[0], "dropin.cache"))
        self.assertEqual([p.connector_id for p in find_plugins(package, builtin=())],
                         ["extra"])

    def test_a_frozen_app_uses_the_built_in_list(self) -> None:
        package = self.package()
        sys.frozen = True  # type: ignore[attr-defined]
        self.addCleanup(delattr, sys, "frozen")
        self.assertEqual([p.connector_id for p in find_plugins(package)], BUILT_IN_IDS)
        self.assertFalse(os.path.exists(os.path.join(package.__path__[0], "dropin.cache")))

    def test_a_missing_built_in_module_is_skipped(self) -> None:
        plugins = find_plugins(self.package(),
                               builtin=("enttok.plugins.calendar", "enttok.plugins.nothing"))
        self.assertEqual([p.connector_id for p in plugins], ["calendar", "extra"])

    def test_the_plugin_package_has_no_side_effects(self) -> None:
        # Nothing but its submodules (imported by the scan) lives in the package.
        self.assertEqual([n for n, v in vars(enttok.plugins).items()
                          if not n.startswith("__") and not isinstance(v, types.ModuleType)], [])
        self.assertEqual(BUILTIN, tuple(f"enttok.plugins.{i}" for i in BUILT_IN_IDS))


def stand_ins(names: list[str]) -> Any:
    def handler(ctx: JobContext) -> dict[str, str]:
        return {"ran": ctx.job_type}

    return lambda h: [JobType(name, {}, handler) for name in names]


class SchedulerTests(SynchronousTestCase):
    """Connectors get timers from their own settings; GitHub keeps its schedule entry."""

    def setUp(self) -> None:
        names = ["connector.github.sync", "connector.git.sync", "connector.calendar.sync",
                 "maintenance.compact"]
        self.h = Harness(self, workers=4, extra_types=stand_ins(names))
        self.settings = SettingsStore(Path(self.mktemp()), run_inline)
        self.successResultOf(self.settings.update({"github": {"token": "ghp_test"}}))
        self.connectors = connectors_for(self.h.clock, self.h.db, self.settings)
        self.h.engine.startService()

    def start(self, at_start: bool = False) -> Scheduler:
        scheduler = Scheduler(self.h.clock, self.h.engine, self.settings, at_start=at_start,
                              connectors=self.connectors)
        scheduler.startService()
        self.addCleanup(scheduler.stopService)
        return scheduler

    def counts(self) -> Counter[str]:
        jobs, _ = job_store.list_jobs(self.h.db.connection, limit=1000)
        return Counter(job.type for job in jobs)

    def advance(self, seconds: float) -> None:
        for _ in range(int(seconds // MINUTE)):
            self.h.clock.advance(MINUTE)

    def calendar_on(self, **more: Any) -> None:
        folder = os.path.abspath(self.mktemp())
        self.successResultOf(self.settings.update({"connectors": {"calendar": {
            "enabled": True, "paths": [folder], **more}}}))

    def test_off_connectors_are_not_scheduled(self) -> None:
        scheduler = self.start(at_start=True)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 1}))
        self.assertEqual(scheduler.status()["jobs"], 2)  # GitHub and compaction
        self.advance(60 * MINUTE)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 5}))

    def test_turning_one_on_syncs_now_then_at_its_interval(self) -> None:
        scheduler = self.start()
        self.calendar_on(interval_minutes=20)
        self.assertEqual(self.counts()["connector.calendar.sync"], 1)
        self.assertEqual(scheduler.status()["jobs"], 3)
        self.advance(19 * MINUTE)
        self.assertEqual(self.counts()["connector.calendar.sync"], 1)
        self.advance(MINUTE)
        self.assertEqual(self.counts()["connector.calendar.sync"], 2)

    def test_interval_changes_live_and_zero_or_disabled_stops(self) -> None:
        self.calendar_on()
        self.start()
        self.advance(30 * MINUTE)
        self.assertEqual(self.counts()["connector.calendar.sync"], 1)
        self.successResultOf(self.settings.update(
            {"connectors": {"calendar": {"interval_minutes": 5}}}))
        self.advance(10 * MINUTE)
        self.assertEqual(self.counts()["connector.calendar.sync"], 3)
        self.successResultOf(self.settings.update(
            {"connectors": {"calendar": {"enabled": False}}}))
        self.advance(60 * MINUTE)
        self.assertEqual(self.counts()["connector.calendar.sync"], 3)

    def test_a_change_of_what_it_syncs_syncs_now(self) -> None:
        self.calendar_on()
        self.start()
        self.assertEqual(self.counts()["connector.calendar.sync"], 0)
        other = os.path.abspath(self.mktemp())
        self.successResultOf(self.settings.update(
            {"connectors": {"calendar": {"paths": [other]}}}))
        self.assertEqual(self.counts()["connector.calendar.sync"], 1)
        # Its interval alone is no reason to sync now.
        self.successResultOf(self.settings.update(
            {"connectors": {"calendar": {"interval_minutes": 45}}}))
        self.assertEqual(self.counts()["connector.calendar.sync"], 1)
        self.advance(45 * MINUTE)
        self.assertEqual(self.counts()["connector.calendar.sync"], 2)

    def test_unconfigured_is_not_scheduled_even_when_enabled(self) -> None:
        self.start()
        self.successResultOf(self.settings.update(
            {"connectors": {"git": {"enabled": True, "interval_minutes": 1}}}))
        self.advance(10 * MINUTE)
        self.assertEqual(self.counts()["connector.git.sync"], 0)

    def test_at_start_syncs_the_scheduled_connectors_once(self) -> None:
        self.calendar_on()
        self.start(at_start=True)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 1,
                                                 "connector.calendar.sync": 1}))

    def test_github_is_not_scheduled_twice(self) -> None:
        self.start()
        self.advance(15 * MINUTE)
        self.assertEqual(self.counts(), Counter({"connector.github.sync": 1}))


class ConnectorsAPITests(APITestCase):
    def build(self, status: Any = None) -> None:
        if not hasattr(self, "h"):
            self.h = Harness(self, workers=2)
            self.connectors = connectors_for(self.h.clock, self.h.db, self.settings)
            for connector in self.connectors:
                self.h.registry.register(connector_job(connector))
            self.h.engine.startService()
        self.api = BackendAPI(self.clock, self.settings, db=self.h.db,
                              connectors=self.connectors)
        self.guard = Guard(self.api.resource(), None, TOKEN,
                           lambda: self.settings.get("allowed_origins"))
        self.guard.port = PORT
        self.treq = StubTreq(self.guard)

    def listing(self) -> dict[str, dict[str, Any]]:
        response = self.request("GET", "/connectors")
        self.assertEqual(response.code, 200, response.body)
        entries = response.json()["connectors"]
        self.assertEqual([e["id"] for e in entries], BUILT_IN_IDS)
        return {e["id"]: e for e in entries}

    def test_fresh_state(self) -> None:
        found = self.listing()
        self.assertEqual(found["calendar"], {
            "id": "calendar", "name": "Calendar", "job_type": "connector.calendar.sync",
            "configured": False, "enabled": False, "interval_minutes": None,
            "last_sync_at": None, "cursor_summary": None, "last_job": None,
            "last_error": None})
        self.assertEqual(found["github"]["name"], "GitHub")

    def test_settings_cursor_and_jobs_are_reported(self) -> None:
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.successResultOf(self.settings.update({
            "github": {"token": "ghp_x"}, "schedule": {"github_sync_minutes": 10},
            "connectors": {"calendar": {"enabled": True, "paths": [folder]}}}))
        job_id, _ = self.h.submit(self, "connector.calendar.sync")
        self.assertEqual(self.h.stored(job_id).status, "succeeded")
        found = self.listing()
        calendar = found["calendar"]
        self.assertEqual((calendar["configured"], calendar["enabled"],
                          calendar["interval_minutes"], calendar["last_sync_at"]),
                         (True, True, 30, "2024-05-01T12:00:00Z"))
        result = self.h.stored(job_id).result
        self.assertEqual(calendar["cursor_summary"],
                         {"window": result["window"], "files": 0, "events": 0})
        self.assertEqual(calendar["last_job"], {"job_id": job_id, "status": "succeeded",
                                                "finished_at": "2024-05-01T12:00:00Z"})
        self.assertIsNone(calendar["last_error"])
        self.assertEqual((found["github"]["configured"], found["github"]["interval_minutes"]),
                         (True, 10))

    def save_cursor(self, state_key: str, source: str, cursor: dict[str, Any] | str,
                    now: str = "2024-05-01T12:00:00Z") -> None:
        self.successResultOf(self.h.db.run(activity.save, source, [], now, state_key, cursor))

    def test_a_git_cursor_is_summed_up(self) -> None:
        # 150 repositories (Korean and NFD folder names among them), 1 to 4 branches each:
        # the cursor runs to tens of kilobytes, its summary to three fields.
        repos = {}
        for n in range(150):
            name = f"/home/사용자/코드/저장소-{n}" if n % 2 else f"/srv/{'가나다'}-{n}"
            if n % 3 == 0:
                name = unicodedata.normalize("NFD", name)
            repos[name] = {"branches": {
                f"기능/{b}": {"tip": uuid.uuid4().hex * 2,
                             "synced_at": f"2024-04-{10 + (n + b) % 20:02d}T08:00:00Z"}
                for b in range(1 + n % 4)}}
        repos["/srv/empty"] = {"branches": {}}
        cursor = {"repos": repos}
        self.save_cursor("git", "git", cursor)
        response = self.request("GET", "/connectors")
        self.assertLess(len(response.body), 4000)
        self.assertGreater(len(json.dumps(cursor)), 10 * len(response.body))
        summary = self.listing()["git"]["cursor_summary"]
        self.assertEqual(summary, {
            "repositories": 151,
            "branches": sum(1 + n % 4 for n in range(150)),
            "newest_sync_at": max(b["synced_at"] for r in repos.values()
                                  for b in r["branches"].values())})
        self.assertEqual(summary["newest_sync_at"], "2024-04-29T08:00:00Z")

    def test_a_github_cursor_is_summed_up(self) -> None:
        self.save_cursor("github:default", "github", {
            "since": "2024-04-01T00:00:00Z",
            "repos": {"o/일기": {"issues": "2024-04-30T10:00:00Z",
                                "commits": "2024-04-29T00:00:00Z"},
                      "o/b": {"commits": "2024-05-01T00:00:00Z"}},
            "title_misses": {"o/b#12": "2024-04-30T00:00:00Z"}})
        self.assertEqual(self.listing()["github"]["cursor_summary"], {
            "since": "2024-04-01T00:00:00Z", "repositories": 2,
            "newest": "2024-05-01T00:00:00Z", "title_misses": 1})

    def test_cursors_of_other_shapes_are_summed_up_as_far_as_they_go(self) -> None:
        self.save_cursor("git", "git", "not json at all")
        self.save_cursor("calendar", "calendar", {"window": ["2024-04-24T00:00:00Z"],
                                                  "files": "3", "events": True})
        self.save_cursor("github:default", "github", {"repos": ["o/a"], "since": 5})
        found = self.listing()
        self.assertEqual(found["git"]["cursor_summary"],
                         {"repositories": 0, "branches": 0, "newest_sync_at": None})
        self.assertEqual(found["calendar"]["cursor_summary"],
                         {"window": None, "files": None, "events": None})
        self.assertEqual(found["github"]["cursor_summary"],
                         {"since": None, "repositories": 0, "newest": None, "title_misses": 0})

    def test_the_last_failure_is_reported_until_a_sync_succeeds(self) -> None:
        # No token: the GitHub sync fails as github_auth.
        failed, _ = self.h.submit(self, "connector.github.sync")
        github = self.listing()["github"]
        self.assertEqual(github["last_job"]["job_id"], failed)
        self.assertEqual(github["last_job"]["status"], "failed")
        self.assertEqual(github["last_error"]["code"], "github_auth")
        self.assertIn("token", github["last_error"]["message"])
        self.assertEqual(github["configured"], False)

    def test_unknown_arguments_are_refused(self) -> None:
        self.assertError(self.request("GET", "/connectors?verbose=1"), 400, "invalid_query")

    def test_the_answer_matches_the_spec(self) -> None:
        spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        schema = spec["components"]["schemas"]["Connector"]
        self.h.submit(self, "connector.github.sync")
        self.successResultOf(self.h.db.run(activity.save, "calendar", [], "2024-05-01T00:00:00Z",
                                           "calendar", {"events": 0}))
        self.save_cursor("git", "git", {"repos": {"/r": {"branches": {}}}})
        for entry in self.listing().values():
            self.assertEqual(set(entry), set(schema["properties"]))
            self.assertEqual(set(schema["required"]), set(schema["properties"]))
            for name, value in entry.items():
                if value is None:
                    self.assertTrue(schema["properties"][name].get("nullable"), name)
            if entry["last_job"] is not None:
                self.assertEqual(set(entry["last_job"]),
                                 set(schema["properties"]["last_job"]["properties"]))
                self.assertIn(entry["last_job"]["status"],
                              schema["properties"]["last_job"]["properties"]["status"]["enum"])
            if entry["last_error"] is not None:
                self.assertEqual(set(entry["last_error"]), {"code", "message"})
            if entry["cursor_summary"] is not None:
                summary = schema["properties"]["cursor_summary"]["properties"]
                self.assertLessEqual(set(entry["cursor_summary"]), set(summary), entry["id"])
                for name, value in entry["cursor_summary"].items():
                    if value is None:
                        self.assertTrue(summary[name].get("nullable"), name)

    def test_without_a_database_the_route_is_absent(self) -> None:
        self.api = BackendAPI(self.clock, self.settings)
        self.guard = Guard(self.api.resource(), None, TOKEN, lambda: [])
        self.guard.port = PORT
        self.treq = StubTreq(self.guard)
        self.assertError(self.request("GET", "/connectors"), 404, "not_found")


WHEEL_PROBE = """
import json, os, sys
import enttok.plugins
from enttok.connectors.loader import find_plugins
# No cache can be written beside the installed modules (a read-only install).
os.mkdir(os.path.join(enttok.plugins.__path__[0], "dropin.cache"))
found = [p.connector_id for p in find_plugins(builtin=())]
print(json.dumps({"found": found, "from": enttok.plugins.__path__[0]}))
"""


class WheelTests(SynchronousTestCase):
    """The plugins are found by Twisted's scan in the installed wheel."""

    def test_found_from_the_wheel(self) -> None:
        # The wheel test_plugin builds (once per run).
        wheel = plugin_tests.WheelTests("test_wheel_contents").build_wheel()
        target = Path(self.mktemp()).absolute()
        zipfile.ZipFile(wheel).extractall(target)
        names = set(zipfile.ZipFile(wheel).namelist())
        self.assertTrue({f"enttok/plugins/{i}.py" for i in BUILT_IN_IDS} <= names)
        self.assertNotIn("enttok/plugins/dropin.cache", names)
        site_packages = [p for p in sys.path if p.endswith("site-packages")]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = os.pathsep.join([str(target), *site_packages])
        result = subprocess.run([sys.executable, "-S", "-c", WHEEL_PROBE], cwd=str(target),
                                env=env, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout.splitlines()[-1])
        self.assertEqual(report["found"], sorted(BUILT_IN_IDS))  # by id without the list
        self.assertTrue(report["from"].startswith(str(target)), report)


class JobTypeNameTests(SynchronousTestCase):
    def test_name(self) -> None:
        self.assertEqual(job_type_name("calendar"), "connector.calendar.sync")
