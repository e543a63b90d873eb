"""The git connector as a plugin: found, its settings read, its job type syncing."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase
from zope.interface.verify import verifyObject

from enttok.connectors.git.connector import GitConnector
from enttok.connectors.interface import ConnectorDeps, IConnector
from enttok.connectors.loader import connector_job, find_plugins
from enttok.jobs.context import JobContext
from enttok.settings import schema
from enttok.store import Database
from enttok.threads import run_inline
from tests.test_git_sync import ME, Recorder, Repo, isolated_env, on_reactor


def settings_with(**git: Any) -> dict[str, Any]:
    return schema.merge(schema.defaults(), {"connectors": {"git": git}})


class GitConnectorTests(TestCase):
    def setUp(self) -> None:
        self.db = Database(self.mktemp(), run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.current = schema.defaults()
        deps = ConnectorDeps(reactor, self.db, lambda: self.current, None)  # type: ignore[arg-type]
        [plugin] = [p for p in find_plugins() if p.connector_id == "git"]
        self.root = Path(tempfile.mkdtemp(prefix="enttok-git-plugin-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.env = isolated_env(str(self.root))
        self.connector = plugin.build(deps)
        self.assertIsInstance(self.connector, GitConnector)
        # The daemon's connector reads os.environ; this one runs git isolated.
        self.connector = GitConnector(deps, self.env)

    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IConnector, self.connector))
        self.assertEqual((self.connector.connector_id, self.connector.state_key),
                         ("git", "git"))

    def test_settings(self) -> None:
        """Scheduled only when turned on, given repositories or roots, and an interval."""
        off = schema.defaults()
        self.assertEqual((self.connector.configured(off), self.connector.enabled(off),
                          self.connector.interval_minutes(off)), (False, False, None))
        listed = settings_with(enabled=True, repositories=["/src/app"])
        self.assertEqual((self.connector.configured(listed),
                          self.connector.interval_minutes(listed)), (True, 15))
        roots = settings_with(enabled=True, search_roots=["/src"], interval_minutes=0)
        self.assertEqual((self.connector.configured(roots),
                          self.connector.interval_minutes(roots)), (True, None))
        unconfigured = settings_with(enabled=True)
        self.assertIsNone(self.connector.interval_minutes(unconfigured))
        paused = settings_with(enabled=False, repositories=["/src/app"])
        self.assertIsNone(self.connector.interval_minutes(paused))

    @inlineCallbacks
    def test_job(self) -> Any:
        """connector.git.sync with an empty payload syncs the repositories in the settings."""
        if shutil.which("git") is None:
            raise SkipTest("git is not installed")
        repo = Repo(self.root / "앱", self.env)
        # Within the default 30 days before now.
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reactor.seconds() - 2 * 86400))
        repo.commit("오늘 한 일", {"a.txt": "1\n"}, date=when)
        self.current = settings_with(enabled=True, repositories=[str(repo.path)],
                                     author_emails=[ME])
        job = connector_job(self.connector)
        self.assertEqual(job.name, "connector.git.sync")
        payload = job.validate(None)
        ctx = JobContext("job_test", job.name, payload, Recorder(), run_inline, on_reactor,
                         reactor)
        result = yield job.handler(ctx)
        self.assertEqual((result["items_new"], result["warnings"]), (1, []))
        row = self.db.connection.execute(
            "select source, title, repo, raw_json from activity").fetchone()
        self.assertEqual(row[:3], ("git", "오늘 한 일", "앱"))
        self.assertEqual(json.loads(row[3])["branches"], ["main"])
        cursor = self.db.connection.execute(
            "select cursor from sync_state where connector = 'git'").fetchone()[0]
        self.assertIn(str(repo.path), json.loads(cursor)["repos"])
