"""Persistence of the user's settings as one JSON file, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.logger import Logger

from enttok.settings import schema
from enttok.threads import BlockingRunner

Listener = Callable[[Mapping[str, Any], Mapping[str, Any]], None]


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace C{path} with C{data}: temp file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SettingsStore:
    """
    The current settings, loaded at start and replaced on each valid update.

    Listeners are told C{(old, new)} after a change is on disk.
    """

    log = Logger()

    def __init__(self, path: Path, run_blocking: BlockingRunner) -> None:
        self._path = path
        self._run = run_blocking
        self._current: dict[str, Any] = schema.defaults()
        self._lock = DeferredLock()
        self._listeners: list[Listener] = []

    @property
    def current(self) -> Mapping[str, Any]:
        """The settings in force (do not mutate)."""
        return self._current

    def get(self, dotted: str) -> Any:
        """Return one setting by its dotted path, e.g. C{"schedule.vault_scan_minutes"}."""
        value: Any = self._current
        for part in dotted.split("."):
            value = value[part]
        return value

    def load(self) -> None:
        """Read the file (blocking; call before the reactor runs). A broken file is set aside."""
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return
        try:
            stored = json.loads(raw)
        except ValueError:
            aside = self._path.with_name(self._path.name + ".corrupt")
            os.replace(self._path, aside)
            self.log.warn("settings file was corrupt; moved to {aside}, using defaults",
                          aside=str(aside))
            return
        self._current = schema.load(stored)

    def override(self, update: Any) -> None:
        """
        Apply C{update} for this run only, without saving it (command-line options).

        @raise SettingsError: when the update is invalid.
        """
        self._current = self.validate(update)

    def subscribe(self, listener: Listener) -> None:
        """Call C{listener(old, new)} after every change."""
        self._listeners.append(listener)

    def validate(self, update: Any) -> dict[str, Any]:
        """
        Return the settings that C{update} would produce.

        @raise SettingsError: naming the offending field.
        """
        return schema.merge(self._current, update)

    def update(self, update: Any) -> Deferred[Mapping[str, Any]]:
        """
        Validate, persist and apply a partial update.

        @return: fires with the new settings once they are on disk.
        @raise SettingsError: synchronously, when the update is invalid.
        """
        self.validate(update)

        def apply() -> Deferred[Mapping[str, Any]]:
            new = self.validate(update)
            data = json.dumps(new, indent=2, sort_keys=True).encode("utf-8")
            written: Deferred[None] = self._run(write_atomically, self._path, data)
            return written.addCallback(lambda _: self._replace(new))

        return self._lock.run(apply)

    def _replace(self, new: dict[str, Any]) -> Mapping[str, Any]:
        old, self._current = self._current, new
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                self.log.failure("settings listener failed")
        return new
