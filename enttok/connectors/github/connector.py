"""GitHub as an L{IConnector}: the C{github} settings, the sync of its C{sync} module."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from zope.interface import implementer

from enttok.connectors.github.client import GitHubClient
from enttok.connectors.github.settings import GitHubSettings
from enttok.connectors.github.sync import PAYLOAD, sync_handler
from enttok.connectors.interface import ConnectorDeps, IConnector, Settings
from enttok.jobs.context import JobContext


@implementer(IConnector)
class GitHubConnector:
    """The user's GitHub events, issues, pull requests and commits (workspace C{default})."""

    connector_id = "github"
    display_name = "GitHub"
    payload_schema = PAYLOAD
    #: The cursor row of the default workspace (other workspaces have their own rows).
    state_key = "github:default"

    def __init__(self, deps: ConnectorDeps) -> None:
        def client_for(github: GitHubSettings) -> GitHubClient:
            return GitHubClient(deps.http, deps.reactor, github.api_base_url, github.token)

        self._handle = sync_handler(
            deps.db, deps.reactor, lambda: GitHubSettings.of(deps.settings()["github"]),
            client_for)

    def configured(self, settings: Settings) -> bool:
        return GitHubSettings.of(settings["github"]).configured

    def enabled(self, settings: Settings) -> bool:
        # No switch of its own: a token turns it on, schedule.github_sync_minutes = 0 pauses it.
        return self.configured(settings)

    def interval_minutes(self, settings: Settings) -> int | None:
        minutes = int(settings["schedule"]["github_sync_minutes"])
        return minutes if minutes and self.configured(settings) else None

    def sync(self, ctx: JobContext) -> Deferred[dict[str, Any]]:
        return maybeDeferred(self._handle, ctx)
