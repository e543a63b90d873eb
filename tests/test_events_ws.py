"""Live events: the bus, the stream's replay and backpressure, and the /events
WebSocket end to end (a whole daemon on 127.0.0.1 and Autobahn clients)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectionResponse
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from enttok.api.guard import Guard
from enttok.api.requests import APISite
from enttok.config import prepare_directories, resolve_config
from enttok.events.bus import RESTART_GAP, EventBus, Message
from enttok.events.protocol import SUBPROTOCOL
from enttok.events.websocket import EventsResource, EventStream
from enttok.jobs import store
from enttok.jobs.context import JobContext
from enttok.jobs.engine import PROGRESS_INTERVAL
from enttok.jobs.model import TERMINAL, Job
from enttok.jobs.registry import JobType
from enttok.service import from_config
from enttok.store import Database
from enttok.threads import run_inline
from enttok.validation import Field, integer
from tests.jobsupport import ManualRunner

TOKEN = "events-ws-token-0123456789"
WAIT = 5.0
#: The stream's allowance for a paused client in the unit tests (bytes).
SMALL_WATER = 500


def steps_job() -> JobType:
    """C{test.steps}: reports progress C{steps} times, C{delay_ms} apart."""

    @inlineCallbacks
    def handle(ctx: JobContext) -> Any:
        steps = ctx.payload["steps"]
        for i in range(1, steps + 1):
            ctx.progress(i / steps, f"step {i}")
            yield deferLater(reactor, ctx.payload["delay_ms"] / 1000, lambda: None)
        return {"steps": steps}

    return JobType("test.steps", {"steps": Field(integer(1, 1000), 3, "How many steps."),
                                  "delay_ms": Field(integer(0, 1000), 10, "Pause per step.")},
                   handle)


class Refused(Exception):
    """The server refused the opening handshake."""


class _Protocol(WebSocketClientProtocol):
    client: EventsClient

    def onConnect(self, response: ConnectionResponse) -> None:
        self.client.protocol = self

    def onOpen(self) -> None:
        self.client.opened.callback(self.client)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.client.received(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.client.opened.called:
            self.client.opened.errback(Refused(reason))
        self.client.closed.callback((wasClean, code, reason))


class EventsClient:
    """An Autobahn client of C{/events} that keeps every message it receives."""

    def __init__(self, port: int, query: str = "", protocols: list[str] | None = None,
                 headers: dict[str, str] | None = None, origin: str | None = None) -> None:
        self.messages: list[Message] = []
        self.protocol: _Protocol | None = None
        self.opened: Deferred[EventsClient] = Deferred()
        self.closed: Deferred[tuple[bool, int | None, str | None]] = Deferred()
        self._waits: list[tuple[Callable[[list[Message]], bool], Deferred[None]]] = []
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/events{query}",
                                         protocols=protocols or [], headers=headers or {},
                                         origin=origin)
        client = self

        class Protocol(_Protocol):
            pass

        Protocol.client = client
        factory.protocol = Protocol
        reactor.connectTCP("127.0.0.1", port, factory, timeout=WAIT)

    def received(self, message: Message) -> None:
        self.messages.append(message)
        for wait in list(self._waits):
            if wait[0](self.messages):
                self._waits.remove(wait)
                wait[1].callback(None)

    def wait_for(self, done: Callable[[list[Message]], bool], what: str) -> Deferred[None]:
        """Fire once C{done(messages)} holds; fail after L{WAIT} seconds."""
        d: Deferred[None] = Deferred()
        if done(self.messages):
            d.callback(None)
            return d
        self._waits.append((done, d))

        def timed_out(failure: Any) -> Any:
            raise AssertionError(f"timed out waiting for {what}; got {self.messages}")

        return d.addTimeout(WAIT, reactor).addErrback(timed_out)

    def wait_finished(self, job_id: str) -> Deferred[None]:
        return self.wait_for(lambda ms: any(is_terminal(m, job_id) for m in ms),
                             f"the end of {job_id}")

    def close(self) -> Deferred[Any]:
        if self.protocol is not None and not self.closed.called:
            self.protocol.sendClose()
        return self.closed.addTimeout(WAIT, reactor)


def is_terminal(message: Message, job_id: str) -> bool:
    return (message["type"] == "job.status" and message["job_id"] == job_id
            and message["status"] in ("succeeded", "failed", "canceled"))


def of_job(messages: list[Message], job_id: str) -> list[Message]:
    return [m for m in messages if m.get("job_id") == job_id]


class DaemonCase(TestCase):
    """Runs a whole daemon (as C{twistd enttok} builds it) in this process."""

    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:
        data_dir = self.mktemp()
        self.config = resolve_config({"port": "0", "token": TOKEN, "data-dir": data_dir}, {})
        prepare_directories(self.config)
        self.daemon = from_config(reactor, self.config, extra_job_types=[steps_job()])
        web = self.daemon.getServiceNamed("web")
        web._announce = lambda port: None  # no ready line on trial's stdout
        self.daemon.startService()
        self.addCleanup(self.daemon.stopService)
        self.port = web.port
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        yield self.settle()

    def settle(self) -> Deferred[Any]:
        """
        Wait for the start-up work still in flight (preparing the vector index).

        Stopping the daemon while it runs can hang the stop: IndexService.stopService
        neither waits for it nor for thread pools that its parent stops meanwhile.
        """
        waits = []
        for child in self.daemon:
            preparing = getattr(child, "_preparing", None)
            if isinstance(preparing, Deferred):
                done: Deferred[None] = Deferred()
                preparing.addBoth(lambda result, done=done: (done.callback(None), result)[1])
                waits.append(done.addTimeout(WAIT, reactor))
        return DeferredList(waits, fireOnOneErrback=True)

    def connect(self, query: str = "", token: str | None = TOKEN, **kwargs: Any
                ) -> EventsClient:
        if token is not None:
            kwargs.setdefault("protocols", ["enttok.token." + token])
        client = EventsClient(self.port, query, **kwargs)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def opened(self, query: str = "", **kwargs: Any) -> Any:
        client = self.connect(query, **kwargs)
        yield client.opened.addTimeout(WAIT, reactor)
        return client

    @inlineCallbacks
    def refused(self, **kwargs: Any) -> Any:
        """Connect and return the reason the handshake was refused."""
        client = self.connect(**kwargs)
        failure = yield self.assertFailure(client.opened.addTimeout(WAIT, reactor), Refused)
        return str(failure)

    @inlineCallbacks
    def http(self, method: str, path: str, body: Any = None) -> Any:
        response = yield treq.request(
            method, f"http://127.0.0.1:{self.port}{path}".encode("ascii"), json=body,
            headers={"X-Backend-Token": TOKEN}, pool=self.pool, timeout=WAIT)
        content = yield response.json()
        return response.code, content

    @inlineCallbacks
    def submit(self, payload: dict[str, Any], job_type: str = "test.steps") -> Any:
        code, body = yield self.http("POST", "/jobs", {"type": job_type, "payload": payload})
        self.assertEqual(code, 201, body)
        return body["job_id"]


class HandshakeTests(DaemonCase):
    @inlineCallbacks
    def test_token_as_subprotocol(self) -> Any:
        client = yield self.opened()
        self.assertEqual(client.protocol.websocket_protocol_in_use, "enttok.token." + TOKEN)
        job_id = yield self.submit({"steps": 1, "delay_ms": 0})
        yield client.wait_finished(job_id)

    @inlineCallbacks
    def test_named_subprotocol_is_preferred(self) -> Any:
        client = yield self.opened(protocols=[SUBPROTOCOL, "enttok.token." + TOKEN])
        self.assertEqual(client.protocol.websocket_protocol_in_use, SUBPROTOCOL)

    @inlineCallbacks
    def test_token_as_header(self) -> Any:
        client = yield self.opened(token=None, headers={"X-Backend-Token": TOKEN})
        job_id = yield self.submit({"steps": 1, "delay_ms": 0})
        yield client.wait_finished(job_id)

    @inlineCallbacks
    def test_missing_or_wrong_token(self) -> Any:
        reason = yield self.refused(token=None)
        self.assertIn("[401]", reason)
        reason = yield self.refused(token="not-the-token-0123456789")
        self.assertIn("[401]", reason)
        reason = yield self.refused(token=None, headers={"X-Backend-Token": "x" * 20})
        self.assertIn("[401]", reason)

    @inlineCallbacks
    def test_origin(self) -> Any:
        app = "http://localhost:5173"
        reason = yield self.refused(origin=app)
        self.assertIn("[403]", reason)
        code, body = yield self.http("POST", "/settings", {"allowed_origins": [app]})
        self.assertEqual((code, body["allowed_origins"]), (200, [app]))
        yield self.opened(origin=app)
        reason = yield self.refused(origin="http://evil.example")
        self.assertIn("[403]", reason)

    @inlineCallbacks
    def test_bad_since(self) -> Any:
        for since in ("abc", "-1", "%C2%B2"):  # the last one is "²", a digit to str.isdigit
            reason = yield self.refused(query=f"?since={since}")
            self.assertIn("[400]", reason)


class StreamTests(DaemonCase):
    @inlineCallbacks
    def test_job_events_in_order(self) -> Any:
        client = yield self.opened()
        job_id = yield self.submit({"steps": 3, "delay_ms": 150})
        yield client.wait_finished(job_id)
        seqs = [m["seq"] for m in client.messages]
        self.assertEqual(seqs, sorted(set(seqs)))
        mine = of_job(client.messages, job_id)
        self.assertEqual([m.get("status") for m in mine if m["type"] == "job.status"],
                         ["queued", "running", "succeeded"])
        self.assertEqual([m["type"] for m in mine],
                         ["job.status", "job.status"] + ["job.progress"] * 3 + ["job.status"])
        self.assertEqual([m["progress"] for m in mine if m["type"] == "job.progress"],
                         [1 / 3, 2 / 3, 1.0])
        self.assertEqual(mine[0]["job_type"], "test.steps")

    @inlineCallbacks
    def test_resume_replays_missed_events_then_live_ones(self) -> Any:
        watcher = yield self.opened()
        first = yield self.submit({"steps": 2, "delay_ms": 0})
        yield watcher.wait_finished(first)
        since = watcher.messages[0]["seq"]
        missed = [m for m in watcher.messages if m["seq"] > since]
        self.assertGreaterEqual(len(missed), 4)

        resumed = yield self.opened(query=f"?since={since}")
        yield resumed.wait_finished(first)
        self.assertEqual(resumed.messages, missed)
        second = yield self.submit({"steps": 2, "delay_ms": 0})
        yield watcher.wait_finished(second)
        yield resumed.wait_finished(second)
        self.assertEqual(resumed.messages, [m for m in watcher.messages if m["seq"] > since])

    @inlineCallbacks
    def test_resume_from_zero(self) -> Any:
        watcher = yield self.opened()
        first = yield self.submit({"steps": 1, "delay_ms": 0})
        yield watcher.wait_finished(first)
        resumed = yield self.opened(query="?since=0")
        yield resumed.wait_finished(first)
        self.assertEqual(resumed.messages, watcher.messages)

    @inlineCallbacks
    def test_resume_below_the_pruned_point_resyncs(self) -> Any:
        watcher = yield self.opened()
        first = yield self.submit({"steps": 1, "delay_ms": 0})
        yield watcher.wait_finished(first)
        db = Database(self.config.db_path, run_inline)
        db.open()
        self.addCleanup(db.close)
        # The daemon records the terminal status on its database thread: wait for it.
        for _ in range(100):
            job = store.get_job(db.connection, first)
            if job is not None and job.status in TERMINAL:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(store.prune_finished(db.connection, "9999-01-01T00:00:00Z")[0], 1)
        self.assertEqual(store.pruned_through(db.connection), watcher.messages[-1]["seq"])

        resumed = yield self.opened(query=f"?since={watcher.messages[0]['seq']}")
        yield resumed.wait_for(lambda ms: len(ms) >= 1, "a resync")
        self.assertEqual(resumed.messages,
                         [{"type": "resync", "seq": watcher.messages[-1]["seq"]}])
        second = yield self.submit({"steps": 1, "delay_ms": 0})
        yield resumed.wait_finished(second)
        self.assertEqual(resumed.messages[1:], of_job(watcher.messages, second))

    @inlineCallbacks
    def test_resume_from_the_future_resyncs(self) -> Any:
        resumed = yield self.opened(query="?since=99999999999")
        yield resumed.wait_for(lambda ms: len(ms) >= 1, "a resync")
        self.assertEqual(resumed.messages[0]["type"], "resync")

    @inlineCallbacks
    def test_progress_is_throttled_on_the_wire(self) -> Any:
        client = yield self.opened()
        job_id = yield self.submit({"steps": 100, "delay_ms": 5})
        yield client.wait_for(
            lambda ms: any(m.get("status") == "running" for m in of_job(ms, job_id)),
            "the job to start")
        started = reactor.seconds()
        yield client.wait_finished(job_id)
        elapsed = reactor.seconds() - started
        progress = [m for m in of_job(client.messages, job_id) if m["type"] == "job.progress"]
        self.assertGreaterEqual(elapsed, 0.4)
        # One per interval, plus the first one and the last value flushed at the end.
        self.assertLessEqual(len(progress), elapsed / PROGRESS_INTERVAL + 2)
        self.assertGreaterEqual(len(progress), 2)
        self.assertLess(len(progress), 40)
        self.assertEqual((progress[-1]["progress"], progress[-1]["message"]), (1.0, "step 100"))
        self.assertEqual(of_job(client.messages, job_id)[-2], progress[-1])
        _, body = yield self.http("GET", f"/jobs/{job_id}")
        recorded = [e for e in body["events"] if e["meta"]["type"] == "job.progress"]
        self.assertEqual(len(recorded), len(progress))


class _FakeClient:
    """What the stream uses of an L{EventsProtocol}, over a L{StringTransport}."""

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.sent: list[Message] = []

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def sendMessage(self, payload: bytes, isBinary: bool = False) -> None:
        self.sent.append(json.loads(payload))

    @property
    def producer(self) -> IPushProducer:
        producer: IPushProducer = self.transport.producer
        return producer


class EventStreamTests(SynchronousTestCase):
    """The stream's replay and slow-client handling, without sockets."""

    def setUp(self) -> None:
        self.db_runner = ManualRunner()
        self.db = Database(self.mktemp(), self.db_runner)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.bus = EventBus()
        self.stream = EventStream(self.bus, self.db, high_water=SMALL_WATER)
        self.store_job = True

    def publish(self, record: bool = True) -> Message:
        """Publish a job event and, unless told not to, record it at once."""
        message = self.bus.publish({"type": "job.progress", "job_id": "job_1",
                                    "progress": 0.5, "message": None})
        if record:
            self.record(message)
        return message

    def record(self, message: Message) -> None:
        if self.store_job:
            store.insert_job(self.db.connection, Job(
                job_id="job_1", type="t", status="running", created_at="", updated_at="",
                payload={}))
            self.store_job = False
        store.add_events(self.db.connection, [store.EventRow(
            message["seq"], "job_1", "", "info", "", message)])

    def attach(self, since: int | None) -> _FakeClient:
        client = _FakeClient()
        self.stream.attach(client, since)  # type: ignore[arg-type]
        return client

    def seqs(self, client: _FakeClient) -> list[int]:
        return [m["seq"] for m in client.sent]

    def test_live(self) -> None:
        client = self.attach(None)
        self.publish()
        self.publish()
        self.assertEqual(self.seqs(client), [1, 2])
        self.assertEqual(self.db_runner.calls, [])
        self.stream.detach(client)  # type: ignore[arg-type]
        self.publish()
        self.assertEqual((self.seqs(client), self.stream.client_count), ([1, 2], 0))

    def test_events_during_replay_are_held_then_sent_once(self) -> None:
        for _ in range(3):
            self.publish()
        client = self.attach(1)
        late = self.publish(record=False)  # sent while the replay reads the database
        self.assertEqual(client.sent, [])
        self.db_runner.run_next()
        self.record(late)
        self.assertEqual(self.seqs(client), [2, 3, 4])
        self.publish()
        self.assertEqual(self.seqs(client), [2, 3, 4, 5])

    def test_event_both_recorded_and_held_is_sent_once(self) -> None:
        self.publish()
        client = self.attach(0)
        self.publish()  # recorded before the replay's read runs
        self.db_runner.run_next()
        self.assertEqual(self.seqs(client), [1, 2])

    def test_replay_below_pruned_point(self) -> None:
        for _ in range(3):
            self.publish()
        store.set_meta(self.db.connection, store.PRUNED_THROUGH, "2")
        client = self.attach(1)
        self.publish(record=False)
        self.db_runner.run_next()
        self.assertEqual(client.sent, [{"type": "resync", "seq": 4}, self.bus_message(4)])

    def bus_message(self, seq: int) -> Message:
        return {"type": "job.progress", "job_id": "job_1", "progress": 0.5, "message": None,
                "seq": seq}

    def test_attach_registers_a_streaming_producer(self) -> None:
        client = self.attach(None)
        verifyObject(IPushProducer, client.producer)
        self.assertTrue(client.transport.streaming)

    def test_slow_client_is_skipped_then_resynced(self) -> None:
        """Paused by its transport, a client is sent at most C{high_water} more bytes,
        then nothing until its transport resumes it (its buffer drained): a resync."""
        slow = self.attach(None)
        fast = self.attach(None)
        slow.producer.pauseProducing()
        sizes = []
        for _ in range(20):  # ~85 bytes each: 1700 in all, over the 500 allowed
            sizes.append(len(json.dumps(self.publish(record=False)).encode()))
            slow.producer.pauseProducing()  # the transport asks again at every write
        self.assertEqual(self.seqs(fast), list(range(1, 21)))
        sent = len(slow.sent)
        self.assertEqual(self.seqs(slow), list(range(1, sent + 1)))
        self.assertLessEqual(sum(sizes[:sent]), SMALL_WATER)
        self.assertGreater(sum(sizes[:sent + 1]), SMALL_WATER)
        slow.producer.resumeProducing()
        self.assertEqual(slow.sent[sent:], [{"type": "resync", "seq": 20}])
        self.publish(record=False)
        self.assertEqual(self.seqs(slow)[-2:], [20, 21])
        self.assertEqual(self.seqs(fast), list(range(1, 22)))

    def test_paused_client_within_budget_misses_nothing(self) -> None:
        client = self.attach(None)
        client.producer.pauseProducing()
        self.publish(record=False)
        client.producer.resumeProducing()
        client.producer.pauseProducing()  # a new pause starts a new budget
        for _ in range(4):
            self.publish(record=False)
        client.producer.resumeProducing()
        self.assertEqual(self.seqs(client), [1, 2, 3, 4, 5])

    def test_detached_client_is_not_resynced(self) -> None:
        slow = self.attach(None)
        slow.producer.pauseProducing()
        for _ in range(10):
            self.publish(record=False)
        sent = list(slow.sent)
        self.stream.detach(slow)  # type: ignore[arg-type]
        slow.producer.stopProducing()
        slow.producer.resumeProducing()
        self.assertEqual(slow.sent, sent)


class SlowSocketTests(TestCase):
    """Back-pressure on real sockets: the TCP transport pauses the stream's producer
    for a client that stops reading (after Autobahn took the connection over from
    twisted.web), while another client gets everything."""

    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Any:
        self.db = Database(self.mktemp(), run_inline)
        self.db.open()
        self.addCleanup(self.db.connection.close)
        self.bus = EventBus()
        self.stream = EventStream(self.bus, self.db)
        guard = Guard(Resource(), EventsResource(self.stream), TOKEN, lambda: [])
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(APISite(guard))
        self.addCleanup(port.stopListening)
        guard.port = self.port = port.getHost().port
        self.warnings: list[LogEvent] = []
        observer = self.warnings.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def too_slow_warned(self) -> bool:
        return any("too slow" in (e.get("log_format") or "") for e in self.warnings)

    @inlineCallbacks
    def test_a_client_that_stops_reading(self) -> Any:
        clients = []
        for _ in range(2):
            client = EventsClient(self.port, protocols=["enttok.token." + TOKEN])
            self.addCleanup(client.close)
            clients.append((yield client.opened.addTimeout(WAIT, reactor)))
        fast, slow = clients
        assert slow.protocol is not None
        slow.protocol.transport.pauseProducing()  # reads nothing more
        text = "가" * 10_000  # 30 KB of UTF-8 a message
        # Kernel buffers take a few MB first; 32 MB is far more than they hold.
        for _ in range(1100):
            self.bus.publish({"type": "log", "level": "info", "message": text})
            yield deferLater(reactor, 0, lambda: None)
            if self.too_slow_warned():
                break
        self.assertTrue(self.too_slow_warned())
        last = self.bus.seq
        yield fast.wait_for(lambda ms: bool(ms) and ms[-1]["seq"] == last, "every message")
        self.assertEqual([m["seq"] for m in fast.messages], list(range(1, last + 1)))
        slow.protocol.transport.resumeProducing()
        yield slow.wait_for(lambda ms: bool(ms) and ms[-1]["type"] == "resync", "a resync")
        seqs = [m["seq"] for m in slow.messages]
        self.assertEqual(seqs[:-1], list(range(1, len(seqs))))  # a prefix, then the resync
        self.assertLess(len(seqs) - 1, last)
        self.assertEqual(slow.messages[-1], {"type": "resync", "seq": last})
        self.bus.publish({"type": "log", "level": "info", "message": "after"})
        yield slow.wait_for(lambda ms: ms[-1].get("message") == "after", "live again")


class EventBusTests(SynchronousTestCase):
    def test_seq_increases_and_reaches_every_subscriber(self) -> None:
        bus = EventBus()
        seen: list[Message] = []
        also: list[Message] = []

        def broken(message: Message) -> None:
            raise RuntimeError("subscriber bug")

        bus.subscribe(seen.append)
        bus.subscribe(broken)
        unsubscribe = bus.subscribe(also.append)
        first = bus.publish({"type": "x"})
        bus.publish({"type": "y"})
        unsubscribe()
        unsubscribe()
        bus.publish({"type": "z"})
        self.assertEqual(first, {"type": "x", "seq": 1})
        self.assertEqual([m["seq"] for m in seen], [1, 2, 3])
        self.assertEqual([m["seq"] for m in also], [1, 2])
        self.assertEqual(bus.seq, 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)

    def test_restart_leaves_a_gap(self) -> None:
        bus = EventBus(last_recorded=41)
        self.assertEqual(bus.publish({})["seq"], 41 + RESTART_GAP + 1)
        self.assertEqual(EventBus(0).publish({})["seq"], 1)
