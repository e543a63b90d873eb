"""The calendar (.ics) connector plugin."""

from __future__ import annotations

from enttok.connectors.interface import ConnectorDeps, ConnectorPlugin, IConnector


def _build(deps: ConnectorDeps) -> IConnector:
    from enttok.connectors.calendar.connector import CalendarConnector

    return CalendarConnector(deps)


calendar = ConnectorPlugin("calendar", _build)
