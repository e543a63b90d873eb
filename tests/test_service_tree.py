"""The daemon's service tree: named children, built by the plugin, following the settings."""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.plugin import getPlugins
from twisted.trial.unittest import TestCase

from enttok.config import Config, prepare_directories, resolve_config
from enttok.service import EnttokService, from_config

TOKEN = "service-tree-token-" + "x" * 8
CHILDREN = ["log", "db-threads", "database", "job-threads", "embed-threads", "vector-host",
            "index", "jobs", "scheduler", "watcher", "web"]


class ServiceTreeTests(TestCase):
    """An L{EnttokService} built (and bound on 127.0.0.1), never started as a whole."""

    timeout = 30

    def build(self, **changes: Any) -> EnttokService:
        config: Config = resolve_config(
            {"port": "0", "token": TOKEN, "data-dir": self.mktemp()}, {})
        config = attrs.evolve(config, **changes)
        prepare_directories(config)
        tree = from_config(reactor, config)
        self.addCleanup(tree.getServiceNamed("web").stopService)
        self.addCleanup(tree.db.connection.close)
        return tree

    def test_named_children_in_start_order(self) -> None:
        tree = self.build()
        self.assertIsInstance(tree, EnttokService)
        self.assertEqual([child.name for child in tree], CHILDREN)
        self.assertIs(tree.getServiceNamed("jobs"), tree.engine)
        self.assertIs(tree.getServiceNamed("watcher"), tree.watcher)
        self.assertIs(tree.getServiceNamed("scheduler"), tree.scheduler)

    def test_the_plugin_builds_it(self) -> None:
        [maker] = [m for m in getPlugins(IServiceMaker) if m.tapname == "enttok"]
        options = maker.options()
        options.parseOptions(["--port", "0", "--token", TOKEN, "--data-dir", self.mktemp()])
        tree = maker.makeService(options)
        self.addCleanup(tree.getServiceNamed("web").stopService)
        self.assertIsInstance(tree, EnttokService)
        self.addCleanup(tree.db.connection.close)
        self.assertEqual([child.name for child in tree], CHILDREN)

    def test_process_watchers_when_configured(self) -> None:
        tree = self.build(exit_on_stdin_close=True, parent_pid=os.getppid())
        self.assertEqual([child.name for child in tree],
                         [*CHILDREN, "stdin-watch", "parent-watch"])

    @inlineCallbacks
    def test_workers_setting_reaches_the_engine(self) -> Any:
        tree = self.build()
        self.assertEqual(tree.engine.workers, 2)
        yield tree.settings.update({"workers": 3})
        self.assertEqual(tree.engine.workers, 3)

    @inlineCallbacks
    def test_vault_setting_reaches_the_watcher(self) -> Any:
        tree = self.build()
        vault = os.path.abspath(os.path.join(self.mktemp(), "일지 vault"))
        os.makedirs(vault)
        tree.watcher.startService()
        self.addCleanup(tree.watcher.stopService)
        self.assertEqual(tree.watcher.mode, "off")
        yield tree.settings.update({"vault_path": vault})
        self.assertIn(tree.watcher.mode, ("inotify", "polling"))
        yield tree.settings.update({"vault_path": None})
        self.assertEqual(tree.watcher.mode, "off")

    @inlineCallbacks
    def test_secret_settings_are_redacted(self) -> Any:
        tree = self.build()
        self.assertEqual(tree.secrets(), [TOKEN])
        yield tree.settings.update({"github": {"token": "ghp_비밀토큰123"}})
        self.assertEqual(tree.secrets(), [TOKEN, "ghp_비밀토큰123"])
        yield tree.settings.update({"github": {"token": None}})
        self.assertEqual(tree.secrets(), [TOKEN])
