"""
The seam between the daemon and its connectors (GitHub, local git, calendar...).

A connector is found at run time as a plugin: each module in L{enttok.plugins}
holds a L{ConnectorPlugin} (it provides L{IConnectorPlugin} and Twisted's
C{IPlugin}), whose C{build(deps)} returns an L{IConnector}. Each connector gets
the job type C{connector.{id}.sync}, a timer in the scheduler and a row in
C{GET /connectors}. Its cursor lives in the C{sync_state} table under
C{state_key}; its items go to the C{activity} table (see
L{enttok.connectors.activity}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen
from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface, implementer

if TYPE_CHECKING:
    from treq.client import HTTPClient
    from twisted.internet.defer import Deferred

    from enttok.jobs.context import JobContext
    from enttok.store import Database

#: Settings are passed as the whole current settings dict.
Settings = Mapping[str, Any]


def job_type_name(connector_id: str) -> str:
    """The job type that syncs connector C{connector_id}."""
    return f"connector.{connector_id}.sync"


class IConnector(Interface):
    """One source of activity, synced by its own job type."""

    connector_id: str = Attribute(
        "Short lowercase id (\"github\", \"git\", \"calendar\"); the job type is "
        "connector.{id}.sync and its lock is the id.")
    display_name: str = Attribute("Name shown to the user (\"GitHub\", \"Local git\").")
    payload_schema: Any = Attribute(
        "The job payload's fields: an enttok.validation Schema (a dict of Field).")
    state_key: str = Attribute(
        "The sync_state row (connector column) holding this connector's cursor.")

    def configured(settings: Settings) -> bool:
        """Whether the settings hold what a sync needs (a token, paths...)."""

    def enabled(settings: Settings) -> bool:
        """Whether the user turned the connector on (configured or not)."""

    def interval_minutes(settings: Settings) -> int | None:
        """
        Minutes between scheduled syncs; C{None} or 0 when it is not scheduled
        (turned off or not configured). The scheduler asks again whenever the
        settings change, and syncs once at start when scheduled.
        """

    def sync(ctx: JobContext) -> Deferred[dict[str, Any]]:
        """
        Run one sync: write normalised activity items and move the cursor.

        @param ctx: the job's context; C{ctx.payload} is validated against
            C{payload_schema}. Blocking work goes through C{ctx.run_blocking}.
        @return: fires with the job's result, a JSON-able dict that holds at
            least C{items_new} (int) and C{warnings} (list of str); raising
            L{enttok.jobs.context.JobFailed} fails the job with its code.
        """


@frozen
class ConnectorDeps:
    """
    What a plugin may use to build its connector.

    @ivar reactor: the reactor (C{IReactorTime}, C{IReactorProcess}, C{IReactorThreads}).
    @ivar db: the daemon's database (C{db.run(f, ...)} runs on its writer thread).
    @ivar settings: returns the whole current settings dict.
    @ivar http: the shared treq client.
    """

    reactor: Any
    db: Database
    settings: Callable[[], Settings]
    http: HTTPClient


class IConnectorPlugin(Interface):
    """What L{enttok.plugins} modules offer: a factory of one connector."""

    connector_id: str = Attribute("The id of the connector it builds.")

    def build(deps: ConnectorDeps) -> IConnector:
        """Build the connector (cheap: no I/O; heavy imports may happen here)."""


@implementer(IPlugin, IConnectorPlugin)
@frozen
class ConnectorPlugin:
    """
    A plugin module's single object, e.g.
    C{calendar = ConnectorPlugin("calendar", _build)}.
    """

    connector_id: str
    factory: Callable[[ConnectorDeps], IConnector]

    def build(self, deps: ConnectorDeps) -> IConnector:
        return self.factory(deps)


class SectionSettings:
    """
    For a connector whose settings are C{connectors.<connector_id>} with
    C{enabled} and C{interval_minutes}: the section, the switch, the interval
    (C{None} when off, unconfigured or 0). Subclasses say what C{configured} means.
    """

    connector_id: str

    def section(self, settings: Settings) -> Mapping[str, Any]:
        section: Mapping[str, Any] = settings["connectors"][self.connector_id]
        return section

    def configured(self, settings: Settings) -> bool:
        raise NotImplementedError

    def enabled(self, settings: Settings) -> bool:
        return bool(self.section(settings)["enabled"])

    def interval_minutes(self, settings: Settings) -> int | None:
        minutes = int(self.section(settings)["interval_minutes"])
        on = minutes and self.enabled(settings) and self.configured(settings)
        return minutes if on else None
