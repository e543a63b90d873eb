"""JSON-lines logging with redaction, and periodic work driven by a fake clock."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.logfile import LogFile
from twisted.trial.unittest import SynchronousTestCase

from enttok.logs import REDACTED, JSONLinesObserver, JSONLogService, event_as_line
from enttok.periodic import PeriodicService

SECRET = "tok-0123456789abcdef-SECRET"


class JSONLinesObserverTests(SynchronousTestCase):
    """Each event becomes one JSON object on its own line."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.secrets = [SECRET]
        self.logfile = LogFile("test.jsonl", str(self.folder))
        self.observer = JSONLinesObserver(self.logfile, lambda: self.secrets)
        self.addCleanup(self.observer.close)
        self.log = Logger(namespace="enttok.test", observer=self.observer)

    def lines(self) -> list[dict[str, Any]]:
        text = (self.folder / "test.jsonl").read_text(encoding="utf-8")
        self.assertTrue(text.endswith("\n"))
        return [json.loads(line) for line in text.splitlines()]

    def raw(self) -> str:
        return (self.folder / "test.jsonl").read_text(encoding="utf-8")

    def test_one_object_per_line(self) -> None:
        self.log.info("hello {who}", who="world")
        self.log.warn("second\nwith a newline")
        lines = self.lines()
        self.assertEqual(len(lines), 2)
        self.assertEqual(set(lines[0]), {"time", "level", "namespace", "message"})
        self.assertEqual(lines[0]["level"], "info")
        self.assertEqual(lines[0]["namespace"], "enttok.test")
        self.assertEqual(lines[0]["message"], "hello world")
        self.assertEqual(lines[1]["level"], "warn")
        self.assertEqual(lines[1]["message"], "second\nwith a newline")

    def test_time_is_utc_iso(self) -> None:
        self.observer({"log_time": 86400.25, "log_level": LogLevel.error,
                       "log_namespace": "ns", "log_format": "x"})
        line = self.lines()[0]
        self.assertEqual(line["time"], "1970-01-02T00:00:00.250Z")
        self.assertEqual(line["level"], "error")
        self.assertIsNotNone(datetime.fromisoformat(line["time"]).tzinfo)

    def test_failure_has_traceback(self) -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            self.log.failure("it broke")
        line = self.lines()[0]
        self.assertEqual(line["level"], "critical")
        self.assertEqual(line["message"], "it broke")
        self.assertIn("ZeroDivisionError", line["traceback"])

    def test_secret_redacted(self) -> None:
        self.log.info("token is {token}", token=SECRET)
        self.assertNotIn(SECRET, self.raw())
        self.assertEqual(self.lines()[0]["message"], f"token is {REDACTED}")

    def test_secret_redacted_in_traceback(self) -> None:
        try:
            raise ValueError(f"bad token {SECRET}")
        except ValueError:
            self.log.failure("request failed")
        self.assertNotIn(SECRET, self.raw())
        self.assertIn(REDACTED, self.lines()[0]["traceback"])

    def test_secret_that_json_escapes(self) -> None:
        # A quote, a backslash or a non-ASCII character changes the encoded form.
        tricky = ['quote"d-token-0123456789', "back\\slash-token-0123", "tökén-0123456789"]
        self.secrets = tricky
        for secret in tricky:
            self.log.info("value {v}", v=secret)
        raw = self.raw()
        for line, secret in zip(self.lines(), tricky, strict=True):
            self.assertEqual(line["message"], f"value {REDACTED}")
            self.assertNotIn(json.dumps(secret)[1:-1], raw)

    def test_secrets_read_for_each_event(self) -> None:
        self.secrets = []
        self.log.info("first {v}", v="later-secret-value")
        self.secrets = ["later-secret-value"]
        self.log.info("second {v}", v="later-secret-value")
        messages = [line["message"] for line in self.lines()]
        self.assertEqual(messages, ["first later-secret-value", f"second {REDACTED}"])

    def test_empty_secret_ignored(self) -> None:
        self.secrets = ["", SECRET]
        self.log.info("plain text")
        self.assertEqual(self.lines()[0]["message"], "plain text")

    def test_event_as_line_is_one_line(self) -> None:
        line = event_as_line({"log_time": 0, "log_format": "a\nb\r\nc", "log_namespace": "n",
                              "log_level": LogLevel.info})
        self.assertNotIn("\n", line)
        self.assertEqual(json.loads(line)["message"], "a\nb\r\nc")


class JSONLogServiceTests(SynchronousTestCase):
    """The service observes its publisher only while running."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir()
        self.publisher = LogPublisher()
        self.log = Logger(namespace="enttok.test", observer=self.publisher)
        self.service = JSONLogService(self.folder, lambda: [SECRET], self.publisher)

    def lines(self) -> list[dict[str, Any]]:
        path = self.folder / "backend.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def test_writes_only_while_running(self) -> None:
        self.log.info("before start")
        self.service.startService()
        self.log.info("while running {t}", t=SECRET)
        self.service.stopService()
        self.log.info("after stop")
        self.assertEqual([line["message"] for line in self.lines()],
                         [f"while running {REDACTED}"])

    def test_restart_appends(self) -> None:
        for n in range(2):
            self.service.startService()
            self.log.info("run {n}", n=n)
            self.service.stopService()
        self.assertEqual([line["message"] for line in self.lines()], ["run 0", "run 1"])

    def test_file_is_private(self) -> None:
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.log.info("x")
        mode = stat.S_IMODE((self.folder / "backend.jsonl").stat().st_mode)
        self.assertEqual(mode, 0o600)

    def test_global_publisher_untouched(self) -> None:
        from twisted.logger import globalLogPublisher

        before = list(globalLogPublisher._observers)
        self.service.startService()
        self.assertEqual(list(globalLogPublisher._observers), before)
        self.service.stopService()


class PeriodicServiceTests(SynchronousTestCase):
    """L{PeriodicService} with a L{Clock}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: list[float] = []

    def service(self, work: Callable[[], Any] | None = None, interval: float = 10,
                now: bool = False) -> PeriodicService:
        def record() -> Any:
            self.calls.append(self.clock.seconds())
            return work() if work is not None else None

        service = PeriodicService(self.clock, interval, record, "test-periodic", now=now)
        self.assertEqual(service.name, "test-periodic")
        return service

    def advance(self, seconds: float, step: float = 1) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def test_runs_every_interval(self) -> None:
        service = self.service()
        service.startService()
        self.advance(35)
        self.assertEqual(self.calls, [10, 20, 30])

    def test_now_runs_at_start(self) -> None:
        service = self.service(now=True)
        service.startService()
        self.advance(20)
        self.assertEqual(self.calls, [0, 10, 20])

    def test_nothing_before_start_or_after_stop(self) -> None:
        service = self.service()
        self.advance(30)
        self.assertEqual(self.calls, [])
        service.startService()
        self.advance(10)
        self.successResultOf(service.stopService())
        self.advance(50)
        self.assertEqual(self.calls, [40])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_survives_exception(self) -> None:
        def flaky() -> None:
            if len(self.calls) == 1:
                raise ZeroDivisionError("first run fails")

        service = self.service(flaky)
        service.startService()
        self.advance(30)
        self.assertEqual(self.calls, [10, 20, 30])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_survives_failed_deferred(self) -> None:
        service = self.service(lambda: fail(KeyError("async failure")))
        service.startService()
        self.advance(20)
        self.assertEqual(self.calls, [10, 20])
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 2)

    def test_no_overlap_while_pending(self) -> None:
        pending: list[Deferred[None]] = []

        def slow() -> Deferred[None]:
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d

        service = self.service(slow)
        service.startService()
        self.advance(45)
        self.assertEqual(self.calls, [10])
        pending[0].callback(None)
        self.advance(5)
        self.assertEqual(self.calls, [10, 50])

    def test_stop_waits_for_run_in_progress(self) -> None:
        pending: Deferred[None] = Deferred()
        service = self.service(lambda: pending)
        service.startService()
        self.advance(10)
        stopped = service.stopService()
        self.assertNoResult(stopped)
        pending.callback(None)
        self.successResultOf(stopped)
        self.advance(30)
        self.assertEqual(self.calls, [10])

    def test_set_interval_takes_effect(self) -> None:
        service = self.service()
        service.startService()
        self.advance(5)
        service.set_interval(3)
        self.advance(10)
        self.assertEqual(self.calls, [8, 11, 14])
        self.assertEqual(service.interval, 3)

    def test_set_interval_before_start(self) -> None:
        service = self.service()
        service.set_interval(4)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        service.startService()
        self.advance(8)
        self.assertEqual(self.calls, [4, 8])

    def test_interval_zero_is_off(self) -> None:
        service = self.service(interval=0, now=True)
        service.startService()
        self.advance(100, step=10)
        self.assertEqual(self.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(service.stopService())

    def test_set_interval_zero_stops_and_back_on(self) -> None:
        service = self.service()
        service.startService()
        self.advance(10)
        service.set_interval(0)
        self.advance(100, step=10)
        self.assertEqual(self.calls, [10])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        service.set_interval(20)
        self.advance(40)
        self.assertEqual(self.calls, [10, 130, 150])
