"""Local git as an L{IConnector}: the C{connectors.git} settings, the sync of L{sync}."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from enttok.connectors.git.sync import PAYLOAD, STATE_KEY, sync_git
from enttok.connectors.interface import ConnectorDeps, IConnector, SectionSettings, Settings
from enttok.jobs.context import JobContext


@implementer(IConnector)
class GitConnector(SectionSettings):
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
        git = self.section(settings)
        return bool(git["repositories"] or git["search_roots"])

    def sync(self, ctx: JobContext) -> Deferred[dict[str, Any]]:
        environ = self._environ if self._environ is not None else os.environ
        return sync_git(ctx, self._deps.db, self._deps.reactor,
                        self.section(self._deps.settings()), environ)
