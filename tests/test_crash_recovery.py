"""A real daemon killed with SIGKILL loses no submitted job and reuses no job id."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

TOKEN = "crash-test-token-0123456789"
ROOT = Path(__file__).resolve().parent.parent
#: Bounds for each wait (seconds); the whole test stays well under 20 s.
START_WAIT = 8.0
FINISH_WAIT = 6.0
PAYLOADS = [{"vacuum": False, "analyze": True}, {"vacuum": False, "analyze": False},
            {"vacuum": True, "analyze": True}, {"vacuum": True, "analyze": False}]


class Daemon:
    """C{twistd -n enttok} in a child process, on a free port of 127.0.0.1."""

    def __init__(self, case: SynchronousTestCase, data_dir: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("BACKEND_PORT", "BACKEND_TOKEN", "APP_DATA_DIR", "LOG_DIR",
                            "BACKEND_PARENT_PID")}
        self.process = subprocess.Popen(
            # "-m twisted.scripts.twistd" would do nothing: the module has no main guard.
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=",
             "--logfile", os.path.join(data_dir, "twistd.log"),
             "enttok", "--port", "0", "--data-dir", data_dir, "--token", TOKEN],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        case.addCleanup(self.stop)
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self._ready()["port"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def _ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("the daemon did not print its ready line") from None
            if not line:
                assert self.process.stderr is not None
                raise AssertionError(f"the daemon exited: {self.process.stderr.read()!r}")
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("event") == "ready":
                return message

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"X-Backend-Token": TOKEN, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class CrashRecoveryTests(SynchronousTestCase):
    def submit_all(self, daemon: Daemon) -> list[str]:
        ids = []
        for payload in PAYLOADS:
            code, body = daemon.call("POST", "/jobs", {"type": "maintenance.compact",
                                                       "payload": payload})
            self.assertIn(code, (200, 201), body)
            ids.append(body["job_id"])
        return ids

    def wait_finished(self, daemon: Daemon, job_ids: list[str]) -> dict[str, Any]:
        deadline = time.monotonic() + FINISH_WAIT
        while True:
            jobs = {}
            for job_id in job_ids:
                code, body = daemon.call("GET", f"/jobs/{job_id}")
                self.assertEqual(code, 200, body)
                jobs[job_id] = body
            if all(j["status"] in ("succeeded", "failed", "canceled") for j in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                self.fail(f"jobs did not finish: {[j['status'] for j in jobs.values()]}")
            time.sleep(0.05)

    def test_kill_and_restart(self) -> None:
        data_dir = os.path.abspath(self.mktemp())  # the daemon runs in another folder
        os.makedirs(data_dir)
        first = Daemon(self, data_dir)
        before = self.submit_all(first)
        first.kill()
        self.assertEqual(first.process.returncode, -signal.SIGKILL)
        self.assertEqual(len(set(before)), len(PAYLOADS))

        second = Daemon(self, data_dir)
        self.assertNotEqual(second.port, 0)
        jobs = self.wait_finished(second, before)
        for job in jobs.values():
            # Each either finished before the kill or ran again after it.
            self.assertEqual(job["status"], "succeeded", job)
            self.assertEqual(job["result"]["integrity_check"], "ok")
            self.assertIn(job["attempts"], (1, 2))
        after = self.submit_all(second)
        self.assertEqual(set(before) & set(after), set())
        self.assertEqual(len(set(after)), len(PAYLOADS))
        jobs = self.wait_finished(second, after)
        self.assertEqual({j["status"] for j in jobs.values()}, {"succeeded"})
        _, body = second.call("GET", "/jobs?limit=200")
        self.assertEqual(sorted(j["job_id"] for j in body["jobs"]), sorted(before + after))
