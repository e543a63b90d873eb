"""The entry point of the frozen desktop runtime, C{enttok-backend}.

C{enttok-backend [options]} is C{python -m enttok [options]} (the same options,
environment variables and ready line); C{enttok-backend --run-module MODULE
[args]} runs C{MODULE} like C{python -m MODULE [args]}, which is how the daemon
starts its worker processes there (see L{enttok.runtime.worker_argv}).

Twistd finds its sub-command by scanning C{twisted/plugins/} for source files;
a frozen application has none (its modules live in an archive), so the service
maker of C{twisted/plugins/enttok_plugin.py} is handed to twistd directly.
"""

from __future__ import annotations

import functools
import runpy
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from enttok.runtime import RUN_MODULE_OPTION

if TYPE_CHECKING:
    from twisted.application.service import ServiceMaker
    from twisted.scripts.twistd import ServerOptions

#: Also accepted for C{--run-module}, so a C{[sys.executable, "-m", module]}
#: command line works unchanged in the frozen runtime.
_PYTHON_MODULE_OPTION = "-m"
#: What C{python -m enttok} puts before its own options (see C{enttok.__main__}).
_TWISTD_PREFIX = ["--nodaemon", "--pidfile=", "enttok"]

# Twisted is imported only for the daemon: a worker process (--run-module) starts
# without paying for twistd's imports (~1 s of CPU on a busy machine).


@functools.cache
def service_maker() -> ServiceMaker:
    """The same as C{twisted/plugins/enttok_plugin.py}'s (a test compares the two)."""
    from twisted.application.service import ServiceMaker

    return ServiceMaker(
        "enttok",
        "enttok.tap",
        "The local backend of the enttok-e desktop app (REST + WebSocket on 127.0.0.1).",
        "enttok",
    )


def enttok_plugins(interface: Any, package: Any = None) -> Iterable[Any]:
    """The plugins twistd may use here: the enttok service maker, and nothing else."""
    from twisted.application.service import IServiceMaker

    return [service_maker()] if interface is IServiceMaker else []


@functools.cache
def server_options() -> type[ServerOptions]:
    """Twistd's options class, with the plugin list given instead of scanned."""
    from twisted.scripts import twistd

    class FrozenServerOptions(twistd.ServerOptions):
        _getPlugins = staticmethod(enttok_plugins)

    return FrozenServerOptions


def run_module(module: str, args: Sequence[str]) -> None:
    """Run C{module} as C{__main__} with C{args}, like C{python -m module args}."""
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def run_daemon(args: Sequence[str]) -> None:
    """Run the daemon in the foreground with C{args} (C{enttok}'s own options)."""
    from twisted.application import app
    from twisted.scripts import twistd

    sys.argv = [sys.argv[0], *_TWISTD_PREFIX, *args]
    app.run(twistd.runApp, server_options())


def main(argv: Sequence[str] | None = None) -> None:
    """Dispatch C{argv} (default C{sys.argv}) to a module or to the daemon."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) >= 3 and argv[1] in (RUN_MODULE_OPTION, _PYTHON_MODULE_OPTION):
        run_module(argv[2], argv[3:])
    elif len(argv) == 2 and argv[1] in (RUN_MODULE_OPTION, _PYTHON_MODULE_OPTION):
        sys.stderr.write(f"enttok-backend: {argv[1]} needs a module name\n")
        raise SystemExit(2)
    else:
        run_daemon(argv[1:])


if __name__ == "__main__":
    main()
