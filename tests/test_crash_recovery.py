"""A real daemon killed with SIGKILL loses no job, and its job ids never repeat."""

from __future__ import annotations

import signal
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.daemonsupport import MODULE, Daemon, start

#: Bound on waiting for the jobs (seconds).
FINISH_WAIT = 6.0
PAYLOADS = [{"vacuum": False, "analyze": True}, {"vacuum": False, "analyze": False},
            {"vacuum": True, "analyze": True}, {"vacuum": True, "analyze": False}]


class CrashRecoveryTests(SynchronousTestCase):
    def submit_all(self, daemon: Daemon) -> list[str]:
        return [daemon.submit("maintenance.compact", payload) for payload in PAYLOADS]

    def test_kill_and_restart(self) -> None:
        data_dir = Path(self.mktemp()).absolute()  # the daemon runs in another folder
        data_dir.mkdir(parents=True)
        first = start(self, data_dir, runner=MODULE)
        before = self.submit_all(first)
        first.kill9()
        self.assertEqual(first.process.returncode, -signal.SIGKILL)
        self.assertEqual(len(set(before)), len(PAYLOADS))

        second = start(self, data_dir, runner=MODULE)
        self.assertNotEqual(second.port, 0)
        jobs = second.wait_jobs(before, FINISH_WAIT)
        for job in jobs.values():
            # Each either finished before the kill or ran again after it.
            self.assertEqual(job["status"], "succeeded", job)
            self.assertEqual(job["result"]["integrity_check"], "ok")
            self.assertIn(job["attempts"], (1, 2))
        after = self.submit_all(second)
        self.assertEqual(set(before) & set(after), set())
        self.assertEqual(len(set(after)), len(PAYLOADS))
        jobs = second.wait_jobs(after, FINISH_WAIT)
        self.assertEqual({j["status"] for j in jobs.values()}, {"succeeded"})
        body = second.ok("GET", "/jobs?limit=200")
        self.assertEqual(sorted(j["job_id"] for j in body["jobs"]), sorted(before + after))
