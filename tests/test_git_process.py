"""GitRunner: git as child processes of the reactor, piped without a shell."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, TimeoutError, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from enttok.connectors.git.process import (
    GitError,
    GitMissing,
    GitRunner,
    find_git,
    git_environ,
)

GIT = shutil.which("git")


class FindGitTests(SynchronousTestCase):
    def test_missing(self) -> None:
        empty = self.mktemp()
        os.mkdir(empty)
        self.assertRaises(GitMissing, find_git, {"PATH": empty})
        self.assertRaises(GitMissing, find_git, {})

    def test_found(self) -> None:
        if GIT is None:
            raise SkipTest("git is not installed")
        self.assertEqual(find_git({"PATH": os.path.dirname(GIT)}),
                         os.path.join(os.path.dirname(GIT), "git"))

    def test_environ(self) -> None:
        """git never prompts for credentials or pages."""
        env = git_environ({"PATH": "/bin", "GIT_TERMINAL_PROMPT": "1"})
        self.assertEqual((env["PATH"], env["GIT_TERMINAL_PROMPT"], env["GIT_PAGER"]),
                         ("/bin", "0", "cat"))


class GitRunnerTests(TestCase):
    def setUp(self) -> None:
        if GIT is None:
            raise SkipTest("git is not installed")
        self.root = Path(tempfile.mkdtemp(prefix="enttok-git-process-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self.root),
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_CONFIG_GLOBAL": str(self.root / "gitconfig")}
        self.repo = self.root / "저장소"
        self.repo.mkdir()
        subprocess.run(["git", "init", "-q", str(self.repo)], env=self.env, check=True)
        self.runner = GitRunner(reactor, GIT, git_environ(self.env))

    def blob(self, data: bytes) -> str:
        done = subprocess.run(["git", "-C", str(self.repo), "hash-object", "-w", "--stdin"],
                              input=data, env=self.env, check=True, capture_output=True)
        return done.stdout.decode().strip()

    @inlineCallbacks
    def test_run(self) -> Any:
        """Output and exit status, success or not; stderr kept for messages."""
        sha = self.blob("한국어 내용\n".encode())
        ok = yield self.runner.run(str(self.repo), ["cat-file", "-p", sha])
        self.assertEqual((ok.code, ok.stdout), (0, "한국어 내용\n".encode()))
        bad = yield self.runner.run(str(self.repo), ["cat-file", "-p", "0" * 40])
        self.assertNotEqual(bad.code, 0)
        self.assertIn("0" * 40, bad.stderr)
        self.assertEqual(self.runner.commands, 2)

    @inlineCallbacks
    def test_check(self) -> Any:
        error = yield self.assertFailure(
            self.runner.check(str(self.repo), ["rev-parse", "--verify", "nope"]), GitError)
        self.assertEqual(error.code, 128)
        self.assertTrue(str(error).startswith("fatal:"), str(error))

    @inlineCallbacks
    def test_stream(self) -> Any:
        """Output arrives in chunks; an exception from the consumer fails the run."""
        data = os.urandom(300_000)
        sha = self.blob(data)
        chunks: list[bytes] = []
        out = yield self.runner.stream(str(self.repo), ["cat-file", "blob", sha], chunks.append)
        self.assertEqual((out.code, b"".join(chunks)), (0, data))
        self.assertGreater(len(chunks), 1)

        def refuse(chunk: bytes) -> None:
            raise ValueError("bad record")

        yield self.assertFailure(
            self.runner.stream(str(self.repo), ["cat-file", "blob", sha], refuse), ValueError)

    @inlineCallbacks
    def test_pipe(self) -> Any:
        """
        C{git a | git b} without a shell, paced: 20 MB through the pipe arrive
        whole (the second hashes exactly what the first wrote).
        """
        data = os.urandom(20_000_000)
        sha = self.blob(data)
        out = yield self.runner.pipe(str(self.repo), ["cat-file", "blob", sha],
                                     ["hash-object", "--stdin"])
        self.assertEqual(out.decode().strip(), sha)
        self.assertEqual(sha, hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest())

    @inlineCallbacks
    def test_pipe_canceled(self) -> Any:
        """Canceling the pipe kills both commands; it fails once both are gone."""
        sha = self.blob(os.urandom(20_000_000))
        d = self.runner.pipe(str(self.repo), ["cat-file", "blob", sha],
                             ["hash-object", "--stdin"])
        d.cancel()
        yield self.assertFailure(d, CancelledError)

    @inlineCallbacks
    def test_pipe_second_quits_early(self) -> Any:
        """The second command leaving before reading everything stops the first: an error."""
        sha = self.blob(os.urandom(20_000_000))
        yield self.assertFailure(
            self.runner.pipe(str(self.repo), ["cat-file", "blob", sha], ["version"]), GitError)

    @inlineCallbacks
    def test_pipe_first_fails(self) -> Any:
        """The first command's failure is the pipe's; the second is stopped."""
        error = yield self.assertFailure(
            self.runner.pipe(str(self.repo), ["cat-file", "blob", "0" * 40],
                             ["hash-object", "--stdin"]), GitError)
        self.assertEqual(error.command, ["cat-file", "blob", "0" * 40])

    @inlineCallbacks
    def test_pipe_second_fails(self) -> Any:
        sha = self.blob(b"x\n")
        error = yield self.assertFailure(
            self.runner.pipe(str(self.repo), ["cat-file", "blob", sha],
                             ["no-such-command"]), GitError)
        self.assertEqual(error.command, ["no-such-command"])

    @inlineCallbacks
    def test_timeout(self) -> Any:
        """A command still running after the timeout is killed; it fails once gone."""
        clock = Clock()
        runner = GitRunner(reactor, self.runner.git, git_environ(self.env), timeout=30.0,
                           clock=clock)
        # git waits for a shell that keeps none of its pipes (so killing git ends them).
        hang = ["-c", "alias.hang=!exec sleep 3 </dev/null >/dev/null 2>&1", "hang"]
        d = runner.run(str(self.repo), hang)
        clock.advance(29.0)
        self.assertNoResult(d)
        clock.advance(1.0)
        yield self.assertFailure(d, TimeoutError)

    @inlineCallbacks
    def test_not_executable(self) -> Any:
        """A git that is gone since it was found fails the run with L{GitMissing}."""
        runner = GitRunner(reactor, str(self.root / "missing-git"), self.env)
        yield self.assertFailure(runner.run(str(self.repo), ["version"]), GitMissing)
        yield self.assertFailure(runner.pipe(str(self.repo), ["version"], ["version"]),
                                 GitMissing)
