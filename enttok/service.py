"""Builds the daemon's service tree from its configuration."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.client import Agent, HTTPConnectionPool

from enttok.api.app import BackendAPI
from enttok.api.guard import Guard
from enttok.api.requests import APISite
from enttok.config import Config, ConfigError, load_or_create_token
from enttok.connectors.interface import ConnectorDeps, IConnector
from enttok.connectors.loader import build_connectors, connector_job
from enttok.events.bus import EventBus
from enttok.events.websocket import EventStream, events_resource
from enttok.index.indexer import VaultIndex
from enttok.index.jobs import Submit, embed_job, rebuild_job, scan_job, update_job
from enttok.index.models import parse_models
from enttok.index.search import Searcher
from enttok.index.service import IndexService, embedder_for, starting_models
from enttok.index.vectors import VectorIndex, model_file
from enttok.index.watcher import VaultWatcher
from enttok.jobs import store as job_store
from enttok.jobs.engine import JobEngine
from enttok.jobs.registry import JobRegistry, JobType
from enttok.jobs.scheduler import Scheduler
from enttok.lifecycle import OrderedServices, StdinWatcher, WebService, parent_watch
from enttok.logs import JSONLogService, redacting_formatter
from enttok.maintenance.compact import compact_job
from enttok.periodic import PeriodicService
from enttok.settings import SettingsStore
from enttok.settings.schema import secrets_of
from enttok.store import Database, SchemaTooNew
from enttok.store.db import damage_marker, is_damage
from enttok.store.salvage import salvage
from enttok.suggest.job import suggest_job
from enttok.threads import ThreadPoolService, pool_runner

log = Logger(namespace="enttok.service")

#: Idle HTTP connections are closed after this many seconds.
HTTP_TIMEOUT = 60


class DatabaseService(Service):
    """Closes the database when the daemon stops (after the services that use it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._db.close()


def open_database(reactor: Any, config: Config, parent: MultiService) -> Database:
    """
    Open (and migrate) C{index.db} with its own single writer thread.

    A file that cannot be opened, or that was found damaged while running (see
    L{Database.note_damage}), is set aside and replaced by a fresh one that
    keeps what was readable of the jobs and embeddings; the vault is rescanned.
    """
    pool = ThreadPool(1, 1, "enttok-db")
    ThreadPoolService(reactor, pool).setServiceParent(parent)
    db = Database(config.db_path, pool_runner(reactor, pool))
    marker = damage_marker(config.db_path)
    damage = _recorded_damage(marker)
    if damage is None:
        try:
            db.open()
        except SchemaTooNew as e:
            raise ConfigError(str(e)) from None
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and not is_damage(e):
                raise ConfigError(f"cannot open {config.db_path}: {e}{_if_full(config)}") from None
            damage = str(e)
    if damage is not None:
        aside = salvage(config.db_path)
        marker.unlink(missing_ok=True)
        # Once running, so that the JSON log (which starts with the services) has it too.
        reactor.callWhenRunning(
            log.warn, "{path} was corrupt ({error}); moved to {aside} and started afresh, "
            "keeping what was readable of the jobs; the index is rebuilt from the vault",
            path=str(config.db_path), error=damage, aside=str(aside))
        try:
            db.open()
        except sqlite3.DatabaseError as again:
            raise ConfigError(f"cannot open {config.db_path}: {again}") from None
        db.recovered = True
    DatabaseService(db).setServiceParent(parent)
    return db


def _recorded_damage(marker: Path) -> str | None:
    """The error a previous run recorded in C{marker}, if it did."""
    try:
        return marker.read_text(encoding="utf-8", errors="replace").strip() or "damaged"
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"damaged (the note of it is unreadable: {e.strerror})"


def _if_full(config: Config) -> str:
    """A note when the data folder's disk is full (SQLite may only say "disk I/O error")."""
    try:
        free = shutil.disk_usage(config.db_path.parent).free
    except OSError:
        return ""
    return " (the disk is full)" if free < 64 * 1024 else ""


def registry_for(reactor: Any, db: Database, settings: SettingsStore, index: VaultIndex,
                 submit: Submit, http: HTTPClient | None = None,
                 connectors: Sequence[IConnector] | None = None) -> JobRegistry:
    """
    Every job type this build can run.

    @param connectors: those whose sync jobs are registered (default: every plugin's).
    """
    vault_path = lambda: settings.get("vault_path")  # noqa: E731

    def use_model(value: str) -> Deferred[Any]:
        # The setting's change switches the index (see model_changed in from_config).
        return settings.update({"embedding_model": value})

    http = http_client(reactor) if http is None else http
    current = lambda: settings.current  # noqa: E731
    if connectors is None:
        connectors = build_connectors(ConnectorDeps(reactor, db, current, http))

    return JobRegistry([
        compact_job(db, reactor.seconds, lambda: settings.get("retention.jobs_days")),
        *(connector_job(connector) for connector in connectors),
        scan_job(index, vault_path, submit),
        update_job(index, vault_path),
        rebuild_job(index, vault_path, use_model, parse_models),
        embed_job(index),
        suggest_job(db, reactor, Searcher(index), current, http),
    ])


def http_client(reactor: Any) -> HTTPClient:
    """The daemon's treq client (connectors, LLM), with persistent connections."""
    return HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor)))


def build_index(reactor: Any, db: Database, settings: SettingsStore, config: Config,
                job_pool: ThreadPool, parent: MultiService, submit: Submit) -> VaultIndex:
    """
    The vault index, with the embedders on their own thread: the models search
    used last (recorded in the database), switching to the setting's if they
    differ (a switch a stop or crash interrupted goes on).
    """
    # Two threads: while a batch of a model being switched to is embedded, a query
    # to the active model (another worker process) need not wait behind it.
    embed_pool = ThreadPool(1, 2, "enttok-embed")
    ThreadPoolService(reactor, embed_pool).setServiceParent(parent)
    wanted = parse_models(settings.get("embedding_model"))
    active = starting_models(db.connection, wanted)
    hnsw = config.db_path.with_name("index.hnsw")

    def vectors_for(model_id: str) -> VectorIndex:
        return VectorIndex(model_file(hnsw, model_id))

    # (Looked up when called: the tests replace embedder_for.)
    first = embedder_for(active[0])
    index = VaultIndex(reactor, db, first, vectors_for(str(first.model_id)),
                       pool_runner(reactor, job_pool), pool_runner(reactor, embed_pool),
                       active[0], make_embedder=lambda name: embedder_for(name),
                       vectors_for=vectors_for, more=active[1:])
    index.use_models(wanted, prepare=False)
    IndexService(reactor, index, submit).setServiceParent(parent)
    return index


def from_config(reactor: Any, config: Config,
                extra_job_types: Iterable[JobType] = ()) -> MultiService:
    """
    Build (and bind) the whole daemon; nothing runs until the reactor does.

    @param extra_job_types: more job types to register (tests and benchmarks).
    @raise ConfigError: when the daemon cannot start (e.g. the port is taken).
    """
    top = OrderedServices()
    token = config.token or load_or_create_token(config.token_path)
    if config.token is None:
        log.info("token stored in {path}", path=str(config.token_path))

    settings = SettingsStore(config.settings_path, pool_runner(reactor, reactor.getThreadPool()))
    settings.load()
    if config.vault is not None:
        settings.override({"vault_path": str(config.vault)})

    secrets = [token, *secrets_of(settings.current)]

    def secrets_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        secrets[1:] = secrets_of(new)

    settings.subscribe(secrets_changed)
    JSONLogService(config.log_dir, lambda: secrets).setServiceParent(top)

    db = open_database(reactor, config, top)
    job_pool = ThreadPool(1, 2, "enttok-jobs")
    ThreadPoolService(reactor, job_pool).setServiceParent(top)
    bus = EventBus(max(job_store.max_event_id(db.connection),
                       job_store.pruned_through(db.connection)))
    index = build_index(reactor, db, settings, config, job_pool, top,
                        lambda job_type, payload: engine.submit(job_type, payload))
    http = http_client(reactor)
    connectors = build_connectors(ConnectorDeps(reactor, db, lambda: settings.current, http))
    registry = registry_for(reactor, db, settings, index,
                            lambda job_type, payload: engine.submit(job_type, payload),
                            http, connectors)
    for job_type in extra_job_types:
        registry.register(job_type)
    engine = JobEngine(reactor, db, registry, bus,
                       pool_runner(reactor, job_pool), reactor.callFromThread,
                       workers=settings.get("workers"))
    engine.setName("jobs")
    engine.setServiceParent(top)
    scheduler = Scheduler(reactor, engine, settings, connectors=connectors)
    scheduler.setName("scheduler")
    scheduler.setServiceParent(top)

    def workers_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if old["workers"] != new["workers"]:
            engine.set_workers(new["workers"])

    settings.subscribe(workers_changed)

    def model_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        # The new models' vectors are embedded in the background; search goes on
        # with the old ones until they are complete.
        if old["embedding_model"] != new["embedding_model"] and index.use_models(
                parse_models(new["embedding_model"])):
            engine.submit("index.embed", {}).addErrback(
                lambda f: log.failure("could not queue index.embed", f))

    settings.subscribe(model_changed)

    if db.recovered and settings.get("vault_path"):
        reactor.callWhenRunning(lambda: engine.submit("vault.scan", {}).addErrback(
            lambda f: log.failure("could not queue the rebuilding scan", f)))

    watcher = VaultWatcher(reactor, lambda: settings.get("vault_path"), engine.submit,
                           pool_runner(reactor, job_pool))
    watcher.setName("watcher")
    watcher.setServiceParent(top)

    def vault_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if old["vault_path"] != new["vault_path"]:
            watcher.watch(new["vault_path"])

    settings.subscribe(vault_changed)

    def status() -> Mapping[str, Any]:
        return {**engine.status(), "scheduler": scheduler.status(),
                "database": {"damaged": db.damage is not None, "error": db.damage}}

    # Appends to daily notes get threads of their own: not queued behind indexing work.
    api = BackendAPI(reactor, settings, status, engine, index, db, connectors=connectors,
                     run_blocking=pool_runner(reactor, reactor.getThreadPool()))
    stream = EventStream(bus, db)
    guard = Guard(api.resource(), events_resource(stream), token,
                  lambda: settings.get("allowed_origins"))
    site = APISite(guard, timeout=HTTP_TIMEOUT, logFormatter=redacting_formatter(lambda: secrets))
    web = WebService(reactor, config.port, site, guard)
    try:
        web.bind()
    except CannotListenError as e:
        raise ConfigError(f"cannot listen on 127.0.0.1:{config.port}: {e.socketError}") from None
    web.setName("web")
    web.setServiceParent(top)

    if config.exit_on_stdin_close:
        StdinWatcher(reactor).setServiceParent(top)
    if config.parent_pid is not None:
        PeriodicService(reactor, 1.0, parent_watch(reactor, config.parent_pid),
                        "parent-watch").setServiceParent(top)
    return top
