"""kill -9 while a daily note is appended to leaves the old note or the new one, whole.

A child process appends with L{enttok.vault.daily.append} to a large note; it is
killed with SIGKILL at each stage of the write (held there by the pause hook),
and then at random moments of a stream of appends. After each kill the note must
be exactly one of the versions the appends produce, and the next append must
clean up what the killed one left.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import IO

from twisted.trial.unittest import SynchronousTestCase

from enttok.vault import daily
from tests.daemonsupport import child_env

SEED = 20261204
#: A note of ~2 MB in long lines: writing it, more than parsing it, takes the time.
OLD = "".join(f"- 기록 {i}: " + "something the user wrote by hand " * 14 + "\n"
              for i in range(4_000))
REL = "daily/2026-12-04.md"
LINE_WAIT = 30.0
ROUNDS = 10
APPENDS = 200

CHILD = r"""
import datetime, os, sys, time
from enttok.vault import daily

root, rel, mode, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
day = datetime.date(2026, 12, 4)

def hold(stage):
    if stage == mode:
        print("at", stage, flush=True)
        time.sleep(600)  # until killed

with open(os.path.join(root, rel), encoding="utf-8") as f:
    first = f.read().count("- appended ")
print("ready", flush=True)
for i in range(first, first + count):
    state = daily.read_state(root, rel)
    base = daily.Base(state.sha256) if state.exists else daily.Base()
    daily.append(root, rel, [f"- appended {i}"], "## Suggestions", base, None, day, hold)
    print("appended", i, flush=True)
"""


def version(appended: int) -> str:
    """The note after C{appended} appends (0: the old note)."""
    if appended == 0:
        return OLD
    return OLD + "\n## Suggestions\n" + "".join(f"- appended {i}\n" for i in range(appended))


def _pump(pipe: IO[bytes], lines: queue.Queue[str | None]) -> None:
    for line in pipe:
        lines.put(line.decode().strip())
    lines.put(None)


class Writer:
    """The child process and its output lines."""

    def __init__(self, case: SynchronousTestCase, root: str, mode: str, count: int) -> None:
        self.case = case
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, root, REL, mode, str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
        case.addCleanup(self.cleanup)
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.process.stdout is not None
        self.thread = threading.Thread(target=_pump, args=(self.process.stdout, self.lines),
                                       daemon=True)
        self.thread.start()

    def expect(self, wanted: str) -> None:
        """Wait for a line starting with C{wanted}."""
        deadline = time.monotonic() + LINE_WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.case.fail(f"no {wanted!r} from the writer within {LINE_WAIT} s")
            if line is None:
                assert self.process.stderr is not None
                self.case.fail(f"the writer exited: {self.process.stderr.read().decode()}")
            if line.startswith(wanted):
                return

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.thread.join(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


class KillNineTests(SynchronousTestCase):
    def setUp(self) -> None:
        vault = Path(self.mktemp()).absolute()
        (vault / "daily").mkdir(parents=True)
        self.root = os.path.realpath(vault)
        self.note = vault / "daily" / "2026-12-04.md"
        self.note.write_text(OLD, "utf-8")

    def appended(self) -> int:
        """How many appends the note holds; fails unless it is exactly one version."""
        text = self.note.read_text("utf-8")
        count = text.count("- appended ")
        self.assertEqual(text, version(count))
        return count

    def leftovers(self) -> list[str]:
        return [n for n in os.listdir(self.note.parent) if n.endswith(daily.TEMP_SUFFIX)]

    def test_killed_at_each_stage(self) -> None:
        for stage, after in (("written", 0), ("synced", 0), ("renamed", 1)):
            self.note.write_text(OLD, "utf-8")
            writer = Writer(self, self.root, stage, 1)
            writer.expect(f"at {stage}")
            writer.kill9()
            self.assertEqual(self.appended(), after, stage)
            if stage != "renamed":
                self.assertEqual(len(self.leftovers()), 1, stage)  # the unrenamed copy
            # The next append goes through and removes what the killed one left.
            base = daily.read_state(self.root, REL)
            daily.append(self.root, REL, [f"- appended {after}"], "## Suggestions",
                         daily.Base(base.sha256), None, date(2026, 12, 4))
            self.assertEqual(self.appended(), after + 1)
            self.assertEqual(self.leftovers(), [])

    def test_killed_at_random_moments(self) -> None:
        rng = random.Random(SEED)
        seen = []
        torn = 0
        for _ in range(ROUNDS):
            before = self.appended()
            writer = Writer(self, self.root, "never", APPENDS)
            writer.expect("appended")  # past the start-up: the kill lands among writes
            time.sleep(rng.uniform(0, 0.3))
            writer.kill9()
            now = self.appended()
            self.assertGreater(now, before)
            seen.append(now - before)
            self.assertLessEqual(len(self.leftovers()), 1)
            torn += len(self.leftovers())
        print(f"\n  appends between kills (seed {SEED}): {seen}; killed mid-write: {torn}")

