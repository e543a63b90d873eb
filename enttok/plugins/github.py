"""The GitHub connector plugin."""

from __future__ import annotations

from enttok.connectors.interface import ConnectorDeps, ConnectorPlugin, IConnector


def _build(deps: ConnectorDeps) -> IConnector:
    from enttok.connectors.github.connector import GitHubConnector

    return GitHubConnector(deps)


github = ConnectorPlugin("github", _build)
