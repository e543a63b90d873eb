"""Live watching: edits in the vault become one debounced C{index.update}.

inotify where Twisted has it (Linux), else a polling snapshot of the vault taken
on a worker thread.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from enttok.index.indexer import list_vault
from enttok.periodic import PeriodicService
from enttok.threads import BlockingRunner
from enttok.vault.walker import note_folders

#: Quiet time after the last event before the update is submitted (seconds).
DEBOUNCE = 0.5
POLL_INTERVAL = 1.5

Snapshot = dict[str, tuple[int, int]]
Submit = Callable[[str, Any], Deferred[Any]]


def snapshot(root: str) -> Snapshot:
    """rel path -> (size, mtime_ns) of every note (blocking)."""
    files, _ = list_vault(root, lambda: False)
    return {f.rel_path: (f.size, f.mtime_ns) for f in files}


def diff(old: Snapshot, new: Snapshot) -> tuple[set[str], set[str]]:
    """(changed or new, deleted) between two snapshots."""
    changed = {p for p, stat in new.items() if old.get(p) != stat}
    return changed, set(old) - set(new)


def _is_visible(rel: str) -> bool:
    """Whether a vault-relative path is outside hidden folders (and not hidden)."""
    return not any(p.startswith(".") for p in rel.split("/"))


def _is_note(rel: str) -> bool:
    return rel.lower().endswith(".md") and _is_visible(rel)


class VaultWatcher(Service):
    """
    Watches the vault at C{vault_path()} and submits coalesced index updates.

    @param use_inotify: try Twisted's inotify first (tests pass C{False}).
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, vault_path: Callable[[], str | None],
                 submit: Submit, run_blocking: BlockingRunner, use_inotify: bool = True,
                 poll_interval: float = POLL_INTERVAL, debounce: float = DEBOUNCE) -> None:
        self._clock = clock
        self._vault_path = vault_path
        self._submit = submit
        self._run = run_blocking
        self._use_inotify = use_inotify
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._root: str | None = None
        self._notifier: Any = None
        self._poller: PeriodicService | None = None
        self._snapshot: Snapshot | None = None
        self._changed: set[str] = set()
        self._deleted: set[str] = set()
        self._scan = False
        self._mask = 0
        self._timer: IDelayedCall | None = None
        self.mode = "off"

    def startService(self) -> None:
        super().startService()
        self.watch(self._vault_path())

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._unwatch()

    def watch(self, root: str | None) -> None:
        """(Re)start watching C{root} (C{None}: stop)."""
        self._unwatch()
        if root is None or not os.path.isdir(root) or not self.running:
            return
        self._root = os.path.realpath(root)
        if self._use_inotify and self._start_inotify(self._root):
            self.mode = "inotify"
            return
        self.mode = "polling"
        self._snapshot = None
        self._poller = PeriodicService(self._clock, self._poll_interval, self._poll,
                                       "vault-poll", now=True)
        self._poller.startService()

    def _unwatch(self) -> Deferred[None]:
        self.mode = "off"
        self._changed, self._deleted, self._scan = set(), set(), False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
        poller, self._poller = self._poller, None
        if poller is not None:
            return poller.stopService()
        return succeed(None)

    # inotify

    def _start_inotify(self, root: str) -> bool:
        """
        Watch C{root} at once and its subfolders when a worker thread has listed them.

        Not Twisted's C{recursive=True}, which walks every file of the vault on the
        reactor thread (3.75 s for 20,000 notes): the start-up scan covers what
        changes before the watches are in place.
        """
        try:
            from twisted.internet import inotify
        except ImportError:
            return False
        self._mask = (inotify.IN_CLOSE_WRITE | inotify.IN_CREATE | inotify.IN_DELETE
                      | inotify.IN_MOVED_FROM | inotify.IN_MOVED_TO | inotify.IN_MODIFY)
        try:
            notifier = inotify.INotify()
            notifier.startReading()
            self._notifier = notifier
            self._add_watch(root)
        except Exception as e:
            self.log.warn("inotify unavailable ({error}); polling instead", error=str(e))
            self._notifier = None
            return False
        self._watch_below(root)
        return True

    def _add_watch(self, folder: str) -> None:
        # autoAdd: Twisted watches folders created later, and reports what they hold.
        self._notifier.watch(FilePath(folder), mask=self._mask, autoAdd=True,
                             callbacks=[self._inotify_event])

    def _watch_below(self, folder: str) -> None:
        """Watch the folders below C{folder}, listed on a worker thread."""
        notifier = self._notifier

        def add(folders: list[str]) -> None:
            for path in folders:
                if self._notifier is not notifier:
                    return  # stopped or watching another vault meanwhile
                try:
                    self._add_watch(path)
                except Exception as e:  # gone meanwhile, or out of inotify watches
                    self.log.warn("cannot watch {path}: {error}", path=path, error=str(e))

        self._run(note_folders, folder).addCallback(add).addErrback(
            lambda f: self.log.failure("listing the vault's folders failed", f))

    def _inotify_event(self, ignored: object, path: FilePath[str], mask: int) -> None:
        from twisted.internet import inotify

        if self._root is None:
            return
        # Twisted's inotify gives bytes paths; note paths are NFC text.
        full = os.fsdecode(path.path)
        rel = unicodedata.normalize("NFC", os.path.relpath(full, self._root))
        rel = rel.replace(os.sep, "/")
        if mask & inotify.IN_ISDIR and mask & (inotify.IN_MOVED_FROM | inotify.IN_MOVED_TO):
            # A folder moved in, out or within: which notes moved is unknown here.
            if mask & inotify.IN_MOVED_TO and _is_visible(rel):
                try:
                    self._add_watch(full)
                except Exception as e:  # moved on again, or out of inotify watches
                    self.log.warn("cannot watch {path}: {error}", path=full, error=str(e))
                else:
                    self._watch_below(full)
            self.rescan()
            return
        if not _is_note(rel):
            return
        if mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM):
            self.changed(set(), {rel})
        else:
            self.changed({rel}, set())

    # polling

    def _poll(self) -> Deferred[None]:
        root = self._root
        if root is None or not os.path.isdir(root):
            return succeed(None)  # an unmounted vault: keep the last snapshot

        def compare(new: Snapshot) -> None:
            old, self._snapshot = self._snapshot, new
            if old is not None:
                changed, deleted = diff(old, new)
                if changed or deleted:
                    self.changed(changed, deleted)

        return self._run(snapshot, root).addCallback(compare)

    # debouncing

    def changed(self, changed: set[str], deleted: set[str]) -> None:
        """Note edits; one update is submitted after L{DEBOUNCE} seconds of quiet."""
        self._deleted = (self._deleted | deleted) - changed
        self._changed = (self._changed | changed) - deleted
        self._quiet_then_flush()

    def rescan(self) -> None:
        """Changes not known note by note: one C{vault.scan} after the quiet time."""
        self._scan = True
        self._quiet_then_flush()

    def _quiet_then_flush(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self._debounce)
        else:
            self._timer = self._clock.callLater(self._debounce, self._flush)

    def _flush(self) -> None:
        self._timer = None
        changed, deleted, self._changed, self._deleted = self._changed, self._deleted, set(), set()
        scan, self._scan = self._scan, False
        if self._root is None:
            return
        if changed or deleted:
            self._submit("index.update", {"changed_paths": sorted(changed),
                                          "deleted_paths": sorted(deleted)}).addErrback(
                lambda f: self.log.failure("could not queue index.update", f))
        if scan:
            self._submit("vault.scan", {}).addErrback(
                lambda f: self.log.failure("could not queue vault.scan", f))
