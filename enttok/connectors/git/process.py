"""Running the C{git} command through the reactor's process support (never blocking)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from attrs import frozen
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import (
    IConsumer,
    IProcessTransport,
    IPushProducer,
    IReactorProcess,
    IReactorTime,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from enttok.common.deferreds import Yielding

#: Seconds one git command may take before it is killed (a hung network mount).
TIMEOUT = 600.0
#: Bytes of stderr kept for error messages.
STDERR_LIMIT = 4096

#: Options that keep user configuration from running programs or changing output.
SAFE_CONFIG = ("-c", "log.showSignature=false", "-c", "core.quotePath=false",
               "-c", "color.ui=never", "-c", "core.fsmonitor=false")


class GitMissing(Exception):
    """No C{git} executable on the PATH."""


class GitError(Exception):
    """A git command exited with a non-zero status."""

    def __init__(self, args: Sequence[str], code: int | None, stderr: str) -> None:
        first = stderr.strip().splitlines()[0] if stderr.strip() else f"exit status {code}"
        super().__init__(first)
        #: The git arguments that failed.
        self.command = list(args)
        self.code = code
        self.stderr = stderr


@frozen
class GitOutput:
    """What a finished git command wrote, and its exit status."""

    stdout: bytes
    stderr: str
    code: int


def find_git(environ: Mapping[str, str]) -> str:
    """
    The C{git} executable on C{environ}'s PATH.

    @raise GitMissing: when there is none.
    """
    found = shutil.which("git", path=environ.get("PATH", ""))
    if found is None:
        raise GitMissing("git was not found on the PATH")
    return found


def git_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """
    The environment git runs in: never prompts, never pages, no locale
    surprises, and local time is UTC (dates come out ready to store).
    """
    env = dict(environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "PAGER": "cat",
                "GIT_OPTIONAL_LOCKS": "0", "LANGUAGE": "C", "TZ": "UTC"})
    return env


class _Collect(ProcessProtocol):
    """
    Hands stdout to C{on_stdout} as it arrives, keeps the head of stderr, and
    fires C{done} with the exit status (or the failure that ended it).
    """

    def __init__(self, on_stdout: Callable[[bytes], None]) -> None:
        self.on_stdout = on_stdout
        self.stderr = bytearray()
        self.done: Deferred[int] = Deferred(self._cancel)
        #: Fires once the process is gone, however it ended.
        self.ended: Deferred[None] = Deferred()
        self.error: BaseException | None = None

    def _cancel(self, _: Deferred[int]) -> None:
        transport = self.transport
        if transport is not None:
            with contextlib.suppress(ProcessExitedAlready):  # processEnded follows
                transport.signalProcess("KILL")

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        self.process: IProcessTransport = transport

    def outReceived(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self.on_stdout(data)
        except Exception as e:  # a bad record: stop reading, report at the end
            self.error = e
            with contextlib.suppress(ProcessExitedAlready):
                self.process.signalProcess("KILL")

    def errReceived(self, data: bytes) -> None:
        if len(self.stderr) < STDERR_LIMIT:
            self.stderr += data[:STDERR_LIMIT - len(self.stderr)]

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        if self.done.called:  # canceled: the Deferred already failed
            return
        if self.error is not None:
            self.done.errback(self.error)
        elif isinstance(reason.value, ProcessDone):
            self.done.callback(0)
        elif isinstance(reason.value, ProcessTerminated):
            code = getattr(reason.value, "exitCode", None)
            self.done.callback(code if code is not None else -1)
        else:
            self.done.errback(reason)


@implementer(IPushProducer)
class _Pacer:
    """A process as the producer of a pipe: paced by the consumer, killed if it goes."""

    def __init__(self, process: IProcessTransport) -> None:
        self.process = process

    def pauseProducing(self) -> None:
        cast(IPushProducer, self.process).pauseProducing()

    def resumeProducing(self) -> None:
        cast(IPushProducer, self.process).resumeProducing()

    def stopProducing(self) -> None:
        with contextlib.suppress(ProcessExitedAlready):
            self.process.signalProcess("KILL")


def _abort(proto: _Collect, done: Deferred[int]) -> Deferred[None]:
    """Kill C{proto}'s process (its result dropped); fires once it is gone."""
    done.addErrback(lambda _: None)
    done.cancel()
    return proto.ended


class GitRunner:
    """
    Runs git commands as child processes of C{reactor}.

    @param reactor: provides C{IReactorProcess} (and C{IReactorTime} without C{clock}).
    @param git: the executable (see L{find_git}).
    @param environ: the environment (see L{git_environ}).
    @param timeout: seconds after which a command is killed.
    @param clock: what the timeout is measured on (default C{reactor}).
    """

    def __init__(self, reactor: Any, git: str, environ: Mapping[str, str],
                 timeout: float = TIMEOUT, clock: IReactorTime | None = None) -> None:
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.git = git
        self.environ = dict(environ)
        self.timeout = timeout
        #: Commands started (for results and benchmarks).
        self.commands = 0

    def _argv(self, repo: str, args: Sequence[str]) -> list[str]:
        return [self.git, "-C", repo, *SAFE_CONFIG, *args]

    def _spawn(self, proto: _Collect, repo: str, args: Sequence[str]) -> Deferred[int]:
        self.commands += 1
        if not os.access(self.git, os.X_OK):  # uninstalled since it was found
            raise GitMissing(f"cannot run {self.git}")
        spawner: IReactorProcess = self.reactor
        try:
            spawner.spawnProcess(proto, self.git, self._argv(repo, args), env=self.environ)
        except OSError as e:
            raise GitMissing(f"cannot run {self.git}: {e.strerror or e}") from None
        return proto.done.addTimeout(self.timeout, self.clock)

    def stream(self, repo: str, args: Sequence[str],
               on_stdout: Callable[[bytes], None]) -> Deferred[GitOutput]:
        """
        Run C{git -C repo args}, handing its stdout to C{on_stdout} in chunks.

        @return: fires with L{GitOutput} (C{stdout} empty) whatever the exit
            status; fails with what C{on_stdout} raised, L{GitMissing} or
            C{TimeoutError}. Canceling kills the process; a failure fires
            once the process is gone.
        """
        return Deferred.fromCoroutine(self._stream(repo, args, on_stdout))

    async def _stream(self, repo: str, args: Sequence[str],
                      on_stdout: Callable[[bytes], None]) -> GitOutput:
        proto = _Collect(on_stdout)
        done = self._spawn(proto, repo, args)
        proto.process.closeStdin()
        try:
            code = await done
        except BaseException:  # canceled, timed out, or on_stdout raised: it was killed
            await proto.ended
            raise
        return GitOutput(b"", proto.stderr.decode("utf-8", "replace"), code)

    def run(self, repo: str, args: Sequence[str]) -> Deferred[GitOutput]:
        """Run C{git -C repo args}; fires with its whole output and exit status."""
        out = bytearray()
        d = self.stream(repo, args, out.extend)
        return d.addCallback(lambda o: GitOutput(bytes(out), o.stderr, o.code))

    def check(self, repo: str, args: Sequence[str]) -> Deferred[bytes]:
        """Like L{run}, but fails with L{GitError} on a non-zero exit status."""
        def checked(output: GitOutput) -> bytes:
            if output.code != 0:
                raise GitError(args, output.code, output.stderr)
            return output.stdout
        return self.run(repo, args).addCallback(checked)

    @inlineCallbacks
    def pipe(self, repo: str, first: Sequence[str],
             second: Sequence[str]) -> Yielding[bytes]:
        """
        C{git first | git second} in C{repo}, without a shell: the first's
        output is written to the second's stdin, paced by it.

        @return: a Deferred firing with the second command's stdout; failing
            with L{GitError} when either exits with a non-zero status.
        """
        out = bytearray()
        sink = _Collect(out.extend)
        sink_done = self._spawn(sink, repo, second)
        source = _Collect(sink.process.write)
        try:
            source_done = self._spawn(source, repo, first)
        except BaseException:
            yield _abort(sink, sink_done)
            raise
        source.process.closeStdin()
        # The second pauses the first while its stdin buffer is full.
        consumer = cast(IConsumer, sink.process)  # a Process is its stdin's consumer
        consumer.registerProducer(_Pacer(source.process), True)
        try:
            code = yield source_done
        except BaseException:  # killed: canceled, timed out
            yield _abort(sink, sink_done)
            yield source.ended
            raise
        finally:
            consumer.unregisterProducer()
            sink.process.closeStdin()
        if code != 0:
            yield _abort(sink, sink_done)
            raise GitError(first, code, source.stderr.decode("utf-8", "replace"))
        sink_code = yield sink_done
        if sink_code != 0:
            raise GitError(second, sink_code, sink.stderr.decode("utf-8", "replace"))
        return bytes(out)
