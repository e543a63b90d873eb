"""Logging: JSON lines under LOG_DIR, rotated by size, with secrets redacted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from twisted.application.service import Service
from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogPublisher,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.logfile import LogFile
from twisted.web.http import Request, combinedLogFormatter
from zope.interface import implementer

REDACTED = "[redacted]"
ROTATE_BYTES = 5 * 1024 * 1024
KEEP_FILES = 5


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in C{text}."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def redacting_formatter(secrets: Callable[[], Iterable[str]]) -> Callable[[str, Request], str]:
    """
    Twisted's combined access-log format with every secret replaced: a client may
    put the token in a URL or a header, and the access log reaches every log
    observer (twistd's console log too), not only the JSON file.
    """

    def format_line(timestamp: str, request: Request) -> str:
        return redact(combinedLogFormatter(timestamp, request), secrets())

    return format_line


def event_as_line(event: LogEvent, secrets: Iterable[str] = ()) -> str:
    """
    One compact JSON object: time, level, namespace, message, and a traceback if any.

    @param secrets: strings replaced by C{[redacted]} in every field.
    """
    record = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", "-"),
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    # Redact before encoding: JSON escapes quotes and backslashes, so a secret
    # holding one would no longer match in the encoded line.
    secrets = list(secrets)
    redacted = {key: redact(value, secrets) for key, value in record.items()}
    return json.dumps(redacted, ensure_ascii=False)


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Writes each event as one JSON line to a size-rotated file.

    @param secrets: returns the strings that must never be written.
    """

    def __init__(self, logfile: LogFile, secrets: Callable[[], Iterable[str]]) -> None:
        self._file = logfile
        self._secrets = secrets

    def __call__(self, event: LogEvent) -> None:
        self._file.write(event_as_line(event, self._secrets()) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class JSONLogService(Service):
    """Adds the JSON-lines observer while running."""

    def __init__(self, log_dir: Path, secrets: Callable[[], Iterable[str]],
                 publisher: LogPublisher = globalLogPublisher) -> None:
        self._log_dir = log_dir
        self._secrets = secrets
        self._publisher = publisher
        self._observer: JSONLinesObserver | None = None

    def startService(self) -> None:
        logfile = LogFile("backend.jsonl", str(self._log_dir), rotateLength=ROTATE_BYTES,
                          maxRotatedFiles=KEEP_FILES, defaultMode=0o600)
        self._observer = JSONLinesObserver(logfile, self._secrets)
        self._publisher.addObserver(self._observer)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self._observer is not None:
            self._publisher.removeObserver(self._observer)
            self._observer.close()
            self._observer = None
