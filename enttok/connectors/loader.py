"""Finding the connector plugins and turning each into a job type."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.plugin import getPlugins

import enttok.plugins
from enttok.connectors.interface import (
    ConnectorDeps,
    IConnector,
    IConnectorPlugin,
    job_type_name,
)
from enttok.jobs.registry import JobType

if TYPE_CHECKING:
    from enttok.jobs.context import JobContext

log = Logger(namespace="enttok.connectors")

#: The plugins this build ships, imported directly when Twisted's plugin scan
#: finds nothing (a frozen app has no module files to walk) or fails. Their
#: order is the order of C{GET /connectors}.
BUILTIN = ("enttok.plugins.github", "enttok.plugins.git", "enttok.plugins.calendar")


def _provided(module: ModuleType) -> list[IConnectorPlugin]:
    return [value for value in vars(module).values() if IConnectorPlugin.providedBy(value)]


def _scan(package: ModuleType) -> list[IConnectorPlugin]:
    """Twisted's scan (it keeps C{dropin.cache} beside the modules when it can write there)."""
    if getattr(sys, "frozen", False):
        return []
    try:
        return list(getPlugins(IConnectorPlugin, package))
    except Exception:
        log.failure("scanning {package} for connector plugins failed",
                    package=package.__name__)
        return []


def find_plugins(package: ModuleType = enttok.plugins,
                 builtin: Sequence[str] = BUILTIN) -> list[IConnectorPlugin]:
    """
    Every connector plugin under C{package}, plus the built-in ones the scan
    missed; one per connector id (the first found), built-ins first in their
    order, then the others by id.
    """
    found: dict[str, IConnectorPlugin] = {}
    for plugin in _scan(package):
        found.setdefault(plugin.connector_id, plugin)
    for name in builtin:
        try:
            module = importlib.import_module(name)
        except ImportError as e:
            if e.name != name:  # a built-in plugin that cannot import what it needs
                log.failure("connector plugin {name} cannot be loaded", name=name)
            continue
        for plugin in _provided(module):
            found.setdefault(plugin.connector_id, plugin)
    order = {name.rsplit(".", 1)[-1]: i for i, name in enumerate(builtin)}
    return sorted(found.values(), key=lambda p: (order.get(p.connector_id, len(order)),
                                                 p.connector_id))


def build_connectors(deps: ConnectorDeps,
                     plugins: Iterable[IConnectorPlugin] | None = None) -> list[IConnector]:
    """Build the connector of each plugin (by default, of L{find_plugins})."""
    return [plugin.build(deps) for plugin in (find_plugins() if plugins is None else plugins)]


def connector_job(connector: IConnector) -> JobType:
    """
    The C{connector.{id}.sync} job type: the connector's payload schema, its
    C{sync}, and a lock per connector (two syncs of one source never overlap).
    """

    def handle(ctx: JobContext) -> Deferred[dict[str, Any]]:
        return connector.sync(ctx)

    return JobType(name=job_type_name(connector.connector_id),
                   payload=connector.payload_schema, handler=handle,
                   lock=connector.connector_id,
                   description=f"Sync {connector.display_name} activity.")
