"""Live watching: edits in the vault become one debounced index.update."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from enttok.index.watcher import DEBOUNCE, POLL_INTERVAL, VaultWatcher
from enttok.threads import run_inline
from tests.indexsupport import make_vault, write

Submitted = tuple[str, dict[str, Any]]


class Submits:
    """The watcher's C{submit}: records each call, answers as the engine would."""

    def __init__(self) -> None:
        self.calls: list[Submitted] = []
        self.result: Deferred[Any] | None = None

    def __call__(self, job_type: str, payload: dict[str, Any]) -> Deferred[Any]:
        self.calls.append((job_type, payload))
        return self.result if self.result is not None else succeed((None, False))


def update(changed: list[str], deleted: list[str]) -> Submitted:
    return ("index.update", {"changed_paths": changed, "deleted_paths": deleted})


class PollingTests(SynchronousTestCase):
    debounce = DEBOUNCE
    poll = POLL_INTERVAL

    def setUp(self) -> None:
        self.vault = make_vault(self, {"a.md": "# a\n", "sub/b.md": "# b\n",
                                       "sub/deeper/c.md": "# c\n"})
        self.clock = Clock()
        self.submits = Submits()
        self.vault_path: str | None = str(self.vault)
        self.watcher = VaultWatcher(self.clock, lambda: self.vault_path, self.submits,
                                    run_inline, use_inotify=False, poll_interval=self.poll,
                                    debounce=self.debounce)
        self.watcher.startService()
        self.addCleanup(self.stop)

    def stop(self) -> None:
        if self.watcher.running:
            self.successResultOf(self.watcher.stopService())

    def advance(self, seconds: float) -> None:
        """Move the clock on by C{seconds}, stopping at each timer exactly (no rounding)."""
        target = self.clock.seconds() + seconds + 1e-9
        for _ in range(10_000):
            due = [c.getTime() for c in self.clock.getDelayedCalls() if c.getTime() <= target]
            if not due:
                self.clock.advance(max(0.0, target - self.clock.seconds()))
                return
            self.clock.advance(max(0.0, min(due) - self.clock.seconds()))
        self.fail("timers keep firing")

    def test_polling_mode_and_no_submit_at_start(self) -> None:
        self.assertEqual(self.watcher.mode, "polling")
        self.advance(10 * self.poll)
        self.assertEqual(self.submits.calls, [])

    def test_create_modify_delete(self) -> None:
        write(self.vault, "new.md", "# new\n")
        write(self.vault, "a.md", "# a, edited\n")
        os.remove(self.vault / "sub" / "b.md")
        self.advance(self.poll)
        self.assertEqual(self.submits.calls, [])  # seen, waiting for quiet
        self.advance(self.debounce)
        self.assertEqual(self.submits.calls, [update(["a.md", "new.md"], ["sub/b.md"])])
        self.advance(10 * self.poll)
        self.assertEqual(len(self.submits.calls), 1)

    def test_mtime_only_change(self) -> None:
        st = os.stat(self.vault / "sub" / "deeper" / "c.md")
        os.utime(self.vault / "sub" / "deeper" / "c.md",
                 ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        self.advance(self.poll + self.debounce)
        self.assertEqual(self.submits.calls, [update(["sub/deeper/c.md"], [])])

    def test_rename_is_a_delete_and_a_change(self) -> None:
        os.rename(self.vault / "a.md", self.vault / "sub" / "renamed.md")
        self.advance(self.poll + self.debounce)
        self.assertEqual(self.submits.calls, [update(["sub/renamed.md"], ["a.md"])])

    def test_other_files_are_ignored(self) -> None:
        write(self.vault, "notes.txt", "text")
        write(self.vault, "image.png", b"\x89PNG")
        write(self.vault, ".hidden.md", "# hidden")
        write(self.vault, ".obsidian/workspace.md", "# settings")
        write(self.vault, "sub/.trash/old.md", "# old")
        write(self.vault, "a.md.swp", "swap")
        self.advance(5 * self.poll)
        self.assertEqual(self.submits.calls, [])

    def test_edits_in_one_poll_make_one_submit(self) -> None:
        for i in range(5):
            write(self.vault, "a.md", "# a" + " more" * (i + 1))
            write(self.vault, f"n{i}.md", f"# {i}")
        self.advance(self.poll + self.debounce)
        self.assertEqual(self.submits.calls,
                         [update(["a.md", *[f"n{i}.md" for i in range(5)]], [])])

    def test_direct_changes_coalesce(self) -> None:
        self.watcher.changed({"x.md"}, set())
        self.advance(self.debounce * 0.6)
        self.watcher.changed({"y.md"}, {"z.md"})
        self.advance(self.debounce * 0.6)
        self.watcher.changed(set(), {"x.md"})  # created, then deleted again
        self.advance(self.debounce * 0.6)
        self.watcher.changed({"z.md"}, set())  # deleted, then written again
        self.advance(self.debounce * 0.9)
        self.assertEqual(self.submits.calls, [])
        self.advance(self.debounce * 0.2)
        self.assertEqual(self.submits.calls, [update(["y.md", "z.md"], ["x.md"])])

    def test_stop_drops_a_pending_update(self) -> None:
        write(self.vault, "new.md", "# new\n")
        self.advance(self.poll)
        self.stop()
        self.assertEqual(self.watcher.mode, "off")
        self.advance(10 * self.poll)
        self.assertEqual(self.submits.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failed_submit_is_logged(self) -> None:
        self.submits.result = fail(RuntimeError("queue is gone"))
        write(self.vault, "new.md", "# new\n")
        self.advance(self.poll + self.debounce)
        self.assertEqual(len(self.submits.calls), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.submits.result = None
        write(self.vault, "other.md", "# other\n")
        self.advance(self.poll + self.debounce)
        self.assertEqual(self.submits.calls[1], update(["other.md"], []))

    def test_vault_gone_for_a_while(self) -> None:
        aside = Path(str(self.vault) + "-aside")
        os.rename(self.vault, aside)
        self.advance(3 * self.poll)
        self.assertEqual(self.flushLoggedErrors(), [])  # an unmounted vault is not an error
        self.assertEqual(self.submits.calls, [])
        os.rename(aside, self.vault)
        write(self.vault, "back.md", "# back\n")
        self.advance(self.poll + self.debounce)
        self.assertEqual(self.submits.calls, [update(["back.md"], [])])

    def test_watch_another_vault(self) -> None:
        other = make_vault(self, {"o.md": "# o\n"})
        self.watcher.watch(str(other))
        self.assertEqual(self.watcher.mode, "polling")
        write(self.vault, "ignored.md", "# not watched any more\n")
        write(other, "p.md", "# p\n")
        self.advance(self.poll + self.debounce)
        self.assertEqual(self.submits.calls, [update(["p.md"], [])])
        self.watcher.watch(None)
        self.assertEqual(self.watcher.mode, "off")
        self.watcher.watch(str(other / "missing"))
        self.assertEqual(self.watcher.mode, "off")

    def test_no_vault_configured(self) -> None:
        self.stop()
        self.vault_path = None
        self.watcher.startService()
        self.assertEqual(self.watcher.mode, "off")
        self.advance(5 * self.poll)
        self.assertEqual((self.submits.calls, self.clock.getDelayedCalls()), ([], []))


class SlowDebounceTests(PollingTests):
    """Edits in successive polls, within the debounce time, make one submit."""

    debounce = 4.0
    poll = 1.0

    def test_successive_polls_coalesce(self) -> None:
        write(self.vault, "a.md", "# a, first edit\n")
        self.advance(self.poll)
        write(self.vault, "a.md", "# a, second edit, longer\n")
        write(self.vault, "new.md", "# new\n")
        self.advance(self.poll)
        os.remove(self.vault / "sub" / "b.md")
        self.advance(self.poll)
        self.advance(self.debounce - 0.5)
        self.assertEqual(self.submits.calls, [])
        self.advance(1.0)
        self.assertEqual(self.submits.calls, [update(["a.md", "new.md"], ["sub/b.md"])])


class InotifyTests(TestCase):
    """Real inotify on the real reactor: edits are seen within a bounded time."""

    timeout = 15

    def setUp(self) -> None:
        try:
            from twisted.internet import inotify  # noqa: F401
        except ImportError:
            raise SkipTest("twisted.internet.inotify is not available here") from None
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.vault = make_vault(self, {"a.md": "# a\n", "sub/b.md": "# b\n",
                                       ".hidden/h.md": "# h\n"})
        self.submits: list[Submitted] = []
        self.waiting: list[tuple[int, Deferred[None]]] = []
        # The folder listing waits here until a test lets it run.
        self.listings: list[tuple[Deferred[Any], Any, tuple[Any, ...]]] = []
        self.watcher = VaultWatcher(reactor, lambda: str(self.vault), self.submit,
                                    self.deferred_run, use_inotify=True, debounce=0.2)
        self.watcher.startService()
        self.addCleanup(self.watcher.stopService)
        if self.watcher.mode != "inotify":
            raise SkipTest("inotify could not watch the temp folder")

    def deferred_run(self, f: Any, *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.listings.append((d, f, args))
        return d

    def run_listings(self) -> None:
        listings, self.listings = self.listings, []
        for d, f, args in listings:
            d.callback(f(*args))

    def submit(self, job_type: str, payload: dict[str, Any]) -> Deferred[Any]:
        self.submits.append((job_type, payload))
        self.submit_check()
        return succeed((None, False))

    def submitted(self, n: int = 1) -> Deferred[list[Submitted]]:
        """Fires with the submits once there are C{n} (within 2 s)."""
        d: Deferred[None] = Deferred()
        self.waiting.append((n, d))
        self.submit_check()
        return d.addTimeout(2.0, self.reactor).addCallback(lambda _: self.submits)

    def submit_check(self) -> None:
        for n, d in list(self.waiting):
            if len(self.submits) >= n:
                self.waiting.remove((n, d))
                d.callback(None)

    def later(self, f: Any, *args: Any) -> None:
        self.reactor.callLater(0.05, f, *args)

    def test_subfolders_are_listed_off_the_reactor(self) -> None:
        """The vault's folders are listed through the blocking runner; visible ones
        are watched when the listing comes back."""
        from enttok.vault.walker import note_folders

        [(_, f, args)] = self.listings
        self.assertEqual((f, args), (note_folders, (os.path.realpath(self.vault),)))
        self.assertEqual(note_folders(*args), [os.path.join(args[0], "sub")])

    def test_edit_is_submitted(self) -> Deferred[Any]:
        self.run_listings()
        self.later(write, self.vault, "sub/b.md", "# b, edited\n")
        self.later(write, self.vault, "notes.txt", "ignored")
        self.later(write, self.vault, ".hidden/h.md", "# h, edited\n")
        d = self.submitted()
        d.addCallback(self.assertEqual, [update(["sub/b.md"], [])])
        return d

    def test_new_folder_is_watched(self) -> Deferred[Any]:
        self.run_listings()
        self.later(write, self.vault, "new/deep/n.md", "# n\n")
        d = self.submitted()
        d.addCallback(self.assertEqual, [update(["new/deep/n.md"], [])])
        return d

    def test_folder_moved_in_asks_for_a_scan(self) -> Deferred[Any]:
        self.run_listings()
        outside = make_vault(self, {"moved/m.md": "# m\n", "moved/inner/i.md": "# i\n"})
        self.later(os.rename, outside / "moved", self.vault / "moved")
        d = self.submitted()

        def edit_inside(submits: list[Submitted]) -> Deferred[Any]:
            self.assertEqual(submits, [("vault.scan", {})])
            # The moved folder and the one below it are watched now.
            self.run_listings()
            self.later(write, self.vault, "moved/inner/i.md", "# i, edited\n")
            return self.submitted(2)

        d.addCallback(edit_inside)
        d.addCallback(lambda submits: self.assertEqual(
            submits[1:], [update(["moved/inner/i.md"], [])]))
        return d
