"""The daemon's service tree (L{EnttokService}), built from its configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from treq.client import HTTPClient
from twisted.application.service import IService
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
from enttok.events.websocket import EventsResource, EventStream
from enttok.index.indexer import VaultIndex
from enttok.index.jobs import Submit, embed_job, rebuild_job, scan_job, update_job
from enttok.index.models import parse_models
from enttok.index.search import Searcher
from enttok.index.service import IndexService, embedder_for, starting_models
from enttok.index.vector_client import VectorHost, VectorHostService
from enttok.index.vectors import IVectorIndex, VectorIndex, model_file
from enttok.index.watcher import VaultWatcher
from enttok.jobs import store as job_store
from enttok.jobs.engine import JobEngine
from enttok.jobs.model import Job
from enttok.jobs.registry import JobRegistry, JobType
from enttok.jobs.scheduler import Scheduler
from enttok.lifecycle import OrderedServices, StdinWatcher, WebService, parent_watch
from enttok.logs import JSONLogService, redacting_formatter
from enttok.maintenance.compact import compact_job
from enttok.periodic import PeriodicService
from enttok.settings import SettingsStore
from enttok.settings.schema import secrets_of
from enttok.store import Database
from enttok.store.service import open_database
from enttok.suggest.job import suggest_job
from enttok.threads import ThreadPoolService, pool_runner

log = Logger(namespace="enttok.service")

#: Idle HTTP connections are closed after this many seconds.
HTTP_TIMEOUT = 60
#: Whether the hnsw indexes live in the vector host process (L{VectorHost}), so
#: that hnswlib's saves and loads never hold this process's GIL; C{False} (for
#: the benchmark's baseline only): in this process.
VECTOR_HOST = True

_Child = TypeVar("_Child", bound=IService)


def registry_for(reactor: Any, db: Database, settings: SettingsStore, index: VaultIndex,
                 submit: Submit, http: HTTPClient | None = None,
                 connectors: Sequence[IConnector] | None = None) -> JobRegistry:
    """
    Every job type this build can run.

    @param connectors: those whose sync jobs are registered (default: every plugin's).
    """
    vault_path = lambda: settings.get("vault_path")  # noqa: E731

    def use_model(value: str) -> Deferred[Any]:
        # The setting's change switches the index (see EnttokService._switch_models).
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


def follow(settings: SettingsStore, key: str, react: Callable[[Any], object]) -> None:
    """Call C{react(new value)} after each change of the top-level setting C{key}."""

    def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if old[key] != new[key]:
            react(new[key])

    settings.subscribe(changed)


class Secrets:
    """The strings the logs redact: the API token and the secrets in the settings."""

    def __init__(self, token: str, settings: SettingsStore) -> None:
        self._token = token
        self._from_settings = secrets_of(settings.current)
        settings.subscribe(self._changed)

    def _changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self._from_settings = secrets_of(new)

    def __call__(self) -> list[str]:
        return [self._token, *self._from_settings]


class EnttokService(OrderedServices):
    """
    The whole daemon, bound but not started; nothing runs until the reactor does.

    Named children, started in this order and stopped in reverse, each after the
    one after it has stopped: C{log}, C{db-threads}, C{database}, C{job-threads},
    C{embed-threads}, C{vector-host}, C{index}, C{jobs}, C{scheduler}, C{watcher}, C{web}, and
    when configured C{stdin-watch} and C{parent-watch}. The children that react
    to settings follow them: C{jobs} its C{workers}, C{watcher} C{vault_path},
    C{index} C{embedding_model}, C{scheduler} its timers, C{log} the secrets.

    @ivar settings: the settings store (loaded, with the command line's overrides).
    @raise ConfigError: when the daemon cannot start (e.g. the port is taken).
    """

    def __init__(self, reactor: Any, config: Config,
                 extra_job_types: Iterable[JobType] = ()) -> None:
        """@param extra_job_types: more job types to register (tests and benchmarks)."""
        super().__init__()
        self._reactor = reactor
        self.config = config
        token = config.token or load_or_create_token(config.token_path)
        if config.token is None:
            log.info("token stored in {path}", path=str(config.token_path))
        self.settings = self._load_settings()
        self.secrets = Secrets(token, self.settings)
        self._add("log", JSONLogService(config.log_dir, self.secrets))
        self.db = open_database(reactor, config, self)
        self._job_pool = self._threads("job-threads", ThreadPool(1, 2, "enttok-jobs"))
        self.bus = EventBus(max(job_store.max_event_id(self.db.connection),
                                job_store.pruned_through(self.db.connection)))
        self.index = self._build_index()
        self.http = http_client(reactor)
        self.connectors = build_connectors(
            ConnectorDeps(reactor, self.db, lambda: self.settings.current, self.http))
        self.engine = self._build_engine(extra_job_types)
        self.scheduler = self._add(
            "scheduler", Scheduler(reactor, self.engine, self.settings, connectors=self.connectors))
        follow(self.settings, "workers", self.engine.set_workers)
        follow(self.settings, "embedding_model", self._switch_models)
        self._rescan_if_recovered()
        self.watcher = self._add("watcher", VaultWatcher(
            reactor, lambda: self.settings.get("vault_path"), self.engine.submit,
            pool_runner(reactor, self._job_pool)))
        follow(self.settings, "vault_path", self.watcher.watch)
        self.web = self._build_web(token)
        self._watch_parent()

    def _add(self, name: str, child: _Child) -> _Child:
        """Make C{child} the next child, called C{name}."""
        child.setName(name)
        child.setServiceParent(self)
        return child

    def _threads(self, name: str, pool: ThreadPool) -> ThreadPool:
        """A thread pool started and stopped with the tree."""
        self._add(name, ThreadPoolService(self._reactor, pool))
        return pool

    def submit(self, job_type: str, payload: Any) -> Deferred[tuple[Job, bool]]:
        """Queue a job on the engine (see L{JobEngine.submit})."""
        return self.engine.submit(job_type, payload)

    def _load_settings(self) -> SettingsStore:
        settings = SettingsStore(self.config.settings_path,
                                 pool_runner(self._reactor, self._reactor.getThreadPool()))
        settings.load()
        if self.config.vault is not None:
            settings.override({"vault_path": str(self.config.vault)})
        return settings

    def _build_index(self) -> VaultIndex:
        """
        The vault index, with the embedders on their own thread: the models search
        used last (recorded in the database), switching to the setting's if they
        differ (a switch a stop or crash interrupted goes on).
        """
        reactor = self._reactor
        # Two threads: while a batch of a model being switched to is embedded, a query
        # to the active model (another worker process) need not wait behind it.
        embed_pool = self._threads("embed-threads", ThreadPool(1, 2, "enttok-embed"))
        wanted = parse_models(self.settings.get("embedding_model"))
        active = starting_models(self.db.connection, wanted)
        hnsw = self.config.db_path.with_name("index.hnsw")
        # One host process for every model's index, ended after the index is saved.
        host = VectorHost() if VECTOR_HOST else None
        if host is not None:
            self._add("vector-host", VectorHostService(host, pool_runner(reactor, embed_pool)))

        def vectors_for(model_id: str) -> IVectorIndex:
            path = model_file(hnsw, model_id)
            return VectorIndex(path) if host is None else host.index(path)

        # (Looked up when called: the tests replace embedder_for.)
        first = embedder_for(active[0])
        index = VaultIndex(reactor, self.db, first, vectors_for(str(first.model_id)),
                           pool_runner(reactor, self._job_pool), pool_runner(reactor, embed_pool),
                           active[0], make_embedder=lambda name: embedder_for(name),
                           vectors_for=vectors_for, more=active[1:])
        index.use_models(wanted, prepare=False)
        self._add("index", IndexService(reactor, index, self.submit))
        return index

    def _switch_models(self, setting: str | None) -> None:
        # The new models' vectors are embedded in the background; search goes on
        # with the old ones until they are complete.
        if self.index.use_models(parse_models(setting)):
            self.submit("index.embed", {}).addErrback(
                lambda f: log.failure("could not queue index.embed", f))

    def _build_engine(self, extra_job_types: Iterable[JobType]) -> JobEngine:
        registry = registry_for(self._reactor, self.db, self.settings, self.index, self.submit,
                                self.http, self.connectors)
        for job_type in extra_job_types:
            registry.register(job_type)
        return self._add("jobs", JobEngine(
            self._reactor, self.db, registry, self.bus, pool_runner(self._reactor, self._job_pool),
            self._reactor.callFromThread, workers=self.settings.get("workers")))

    def _rescan_if_recovered(self) -> None:
        """After a damaged database was replaced, rebuild the index from the vault."""
        if self.db.recovered and self.settings.get("vault_path"):
            self._reactor.callWhenRunning(lambda: self.submit("vault.scan", {}).addErrback(
                lambda f: log.failure("could not queue the rebuilding scan", f)))

    def status(self) -> Mapping[str, Any]:
        """What C{GET /status} reports beyond the API's own fields."""
        return {**self.engine.status(), "scheduler": self.scheduler.status(),
                "database": {"damaged": self.db.damage is not None, "error": self.db.damage}}

    def _build_web(self, token: str) -> WebService:
        """The API and C{/events} behind the guard, listening on 127.0.0.1 already."""
        reactor, settings = self._reactor, self.settings
        # Appends to daily notes get threads of their own: not queued behind indexing work.
        api = BackendAPI(reactor, settings, self.status, self.engine, self.index, self.db,
                         connectors=self.connectors,
                         run_blocking=pool_runner(reactor, reactor.getThreadPool()))
        events = EventsResource(EventStream(self.bus, self.db))
        guard = Guard(api.resource(), events, token, lambda: settings.get("allowed_origins"))
        reactor.callWhenRunning(lambda: events.preload(reactor).addErrback(
            lambda f: log.failure("could not import the WebSocket library", f)))
        site = APISite(guard, timeout=HTTP_TIMEOUT,
                       logFormatter=redacting_formatter(self.secrets))
        web = WebService(reactor, self.config.port, site, guard)
        try:
            web.bind()
        except CannotListenError as e:
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{self.config.port}: {e.socketError}") from None
        return self._add("web", web)

    def _watch_parent(self) -> None:
        """Stop when standard input closes or the parent process goes, if configured."""
        if self.config.exit_on_stdin_close:
            self._add("stdin-watch", StdinWatcher(self._reactor))
        if self.config.parent_pid is not None:
            PeriodicService(self._reactor, 1.0, parent_watch(self._reactor, self.config.parent_pid),
                            "parent-watch").setServiceParent(self)


def from_config(reactor: Any, config: Config,
                extra_job_types: Iterable[JobType] = ()) -> EnttokService:
    """
    Build (and bind) the whole daemon; nothing runs until the reactor does.

    @param extra_job_types: more job types to register (tests and benchmarks).
    @raise ConfigError: when the daemon cannot start (e.g. the port is taken).
    """
    return EnttokService(reactor, config, extra_job_types)
