"""The local git connector plugin."""

from __future__ import annotations

from enttok.connectors.interface import ConnectorDeps, ConnectorPlugin, IConnector


def _build(deps: ConnectorDeps) -> IConnector:
    from enttok.connectors.git.connector import GitConnector

    return GitConnector(deps)


git = ConnectorPlugin("git", _build)
