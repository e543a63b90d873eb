"""Local git as an L{IConnector}: the C{connectors.git} settings, the sync of L{sync}."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from enttok.connectors.git.sync import PAYLOAD, STATE_KEY, sync_git
from enttok.connectors.interface import ConnectorDeps, IConnector, Settings
from enttok.jobs.context import JobContext


def _section(settings: Settings) -> Mapping[str, Any]:
    section: Mapping[str, Any] = settings["connectors"]["git"]
    return section


@implementer(IConnector)
class GitConnector:
    """
    The user's own commits in local repositories.

    @param environ: where C{git} is looked up and the environment it runs
        with (default: the daemon's, read at each sync).
    """

    connector_id = "git"
    display_name = "Local git"
    payload_schema = PAYLOAD
    state_key = STATE_KEY

    def __init__(self, deps: ConnectorDeps, environ: Mapping[str, str] | None = None) -> None:
        self._deps = deps
        self._environ = environ

    def configured(self, settings: Settings) -> bool:
        git = _section(settings)
        return bool(git["repositories"] or git["search_roots"])

    def enabled(self, settings: Settings) -> bool:
        return bool(_section(settings)["enabled"])

    def interval_minutes(self, settings: Settings) -> int | None:
        minutes = int(_section(settings)["interval_minutes"])
        on = minutes and self.enabled(settings) and self.configured(settings)
        return minutes if on else None

    def sync(self, ctx: JobContext) -> Deferred[dict[str, Any]]:
        environ = self._environ if self._environ is not None else os.environ
        return sync_git(ctx, self._deps.db, self._deps.reactor,
                        _section(self._deps.settings()), environ)
