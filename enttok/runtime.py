"""Where the daemon runs: a normal Python installation or the frozen desktop runtime.

The desktop app ships the daemon as one PyInstaller executable, C{enttok-backend}
(see C{docs/packaging.md}). There C{sys.executable} is that program, not a Python
interpreter, so child processes are started through here (bundled model files:
L{enttok.index.models.models_dir}).
"""

from __future__ import annotations

import sys

#: The frozen executable's option that runs a module like C{python -m}.
RUN_MODULE_OPTION = "--run-module"


def is_frozen() -> bool:
    """Whether this process is the PyInstaller-built C{enttok-backend}."""
    return bool(getattr(sys, "frozen", False))


def worker_argv(module: str) -> list[str]:
    """
    The command line that runs C{module} as a script in a child process.

    @return: C{[python, "-m", module]} in a normal installation; in the frozen
        runtime C{[enttok-backend, "--run-module", module]}, which the launcher
        (L{enttok.frozen}) dispatches to the module's C{__main__}.
    """
    if is_frozen():
        return [sys.executable, RUN_MODULE_OPTION, module]
    return [sys.executable, "-m", module]

