"""The frozen runtime's launcher (enttok.frozen) and worker command lines (enttok.runtime).

The frozen executable itself is tested in electron-app/tests/runtime.test.mjs
(built by C{npm run build:backend}); here the same code runs unfrozen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface

from enttok import frozen, runtime, tap
from tests.daemonsupport import Daemon

REPO = Path(__file__).resolve().parent.parent

#: How long the daemon may take to print its ready line.
READY_TIMEOUT = 60.0


class IServiceMakerLike(Interface):
    """Another plugin interface: the launcher offers nothing for it."""


class Frozen:
    """Make C{sys.frozen} and C{sys.executable} look like PyInstaller's for a test."""

    def __init__(self, case: SynchronousTestCase, executable: str) -> None:
        had, old = hasattr(sys, "frozen"), getattr(sys, "frozen", None)
        case.patch(sys, "executable", executable)
        sys.frozen = True  # type: ignore[attr-defined]

        def restore() -> None:
            if had:
                sys.frozen = old  # type: ignore[attr-defined]
            else:
                del sys.frozen  # type: ignore[attr-defined]

        case.addCleanup(restore)


class WorkerArgvTests(SynchronousTestCase):
    def test_python(self) -> None:
        self.assertFalse(runtime.is_frozen())
        self.assertEqual(runtime.worker_argv("enttok.index.embed_worker"),
                         [sys.executable, "-m", "enttok.index.embed_worker"])

    def test_frozen(self) -> None:
        Frozen(self, "/opt/enttok-e/resources/backend/enttok-backend")
        self.assertTrue(runtime.is_frozen())
        self.assertEqual(runtime.worker_argv("enttok.index.embed_worker"),
                         ["/opt/enttok-e/resources/backend/enttok-backend", "--run-module",
                          "enttok.index.embed_worker"])


class RunModuleTests(SynchronousTestCase):
    """C{enttok-backend --run-module M args} is C{python -m M args}."""

    def setUp(self) -> None:
        folder = Path(self.mktemp())
        folder.mkdir()
        self.out = folder / "결과.json"
        (folder / "h6_probe_module.py").write_text(textwrap.dedent(f"""
            import json, sys
            with open({str(self.out)!r}, "w", encoding="utf-8") as f:
                json.dump({{"name": __name__, "argv": sys.argv}}, f, ensure_ascii=False)
        """), "utf-8")
        self.patch(sys, "path", [str(folder), *sys.path])
        self.patch(sys, "argv", list(sys.argv))
        self.addCleanup(sys.modules.pop, "h6_probe_module", None)

    def ran(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.out.read_text("utf-8"))
        return result

    def test_run_module(self) -> None:
        frozen.main(["enttok-backend", runtime.RUN_MODULE_OPTION, "h6_probe_module",
                     "--model", "use-multilingual", "한국어"])
        ran = self.ran()
        self.assertEqual(ran["name"], "__main__")
        argv = ran["argv"]
        assert isinstance(argv, list)
        self.assertEqual(argv[1:], ["--model", "use-multilingual", "한국어"])

    def test_python_m_alias(self) -> None:
        # What an unchanged [sys.executable, "-m", module] becomes when frozen.
        frozen.main(["enttok-backend", "-m", "h6_probe_module"])
        self.assertEqual(self.ran()["name"], "__main__")

    def test_worker_does_not_import_twistd(self) -> None:
        # A fresh interpreter: this one has imported Twisted already.
        probe = Path(self.mktemp())
        probe.mkdir()
        (probe / "h6_twisted_probe.py").write_text(
            "import sys\nprint(sorted(m for m in sys.modules if m.startswith('twisted')))\n",
            "utf-8")
        code = "from enttok.frozen import main; main()"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(probe), str(REPO)])}
        result = subprocess.run([sys.executable, "-c", code, "--run-module", "h6_twisted_probe"],
                                capture_output=True, text=True, env=env, timeout=60,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "[]")

    def test_module_name_required(self) -> None:
        self.patch(sys, "stderr", open(os.devnull, "w"))  # noqa: SIM115
        self.addCleanup(sys.stderr.close)
        with self.assertRaises(SystemExit) as caught:
            frozen.main(["enttok-backend", runtime.RUN_MODULE_OPTION])
        self.assertEqual(caught.exception.code, 2)
        self.assertFalse(self.out.exists())


class ServiceMakerTests(SynchronousTestCase):
    """The launcher hands twistd the plugin instead of letting it scan for one."""

    def test_same_as_the_plugin(self) -> None:
        [plugin] = [m for m in getPlugins(IServiceMaker) if m.tapname == "enttok"]
        made = frozen.service_maker()
        for name in ("tapname", "module", "description"):
            self.assertEqual(getattr(made, name), getattr(plugin, name), name)
        self.assertIs(made.options, tap.Options)
        self.assertIs(made.makeService, tap.makeService)

    def test_options_without_a_plugin_scan(self) -> None:
        options = frozen.server_options()()
        options.parseOptions(["--nodaemon", "--pidfile=", "enttok", "--port", "0",
                              "--vault", "/노트"])
        self.assertEqual(options.subCommand, "enttok")
        self.assertEqual(options.subOptions["port"], "0")
        self.assertEqual(options.subOptions["vault"], "/노트")
        self.assertEqual(list(frozen.enttok_plugins(IServiceMaker)), [frozen.service_maker()])
        self.assertEqual(list(frozen.enttok_plugins(IServiceMakerLike)), [])


class DaemonTests(SynchronousTestCase):
    """The launcher starts the real daemon even when twistd's plugin scan finds nothing."""

    def test_ready_line_without_a_service_maker_scan(self) -> None:
        # twistd's scan for service makers broken before twistd is imported: only the
        # launcher's own list can work (other scans, e.g. for connectors, still run).
        code = ("import twisted.plugin as p\n"
                "from twisted.application.service import IServiceMaker\n"
                "original = p.getPlugins\n"
                "def scan(interface, package=None):\n"
                "    if interface is IServiceMaker:\n"
                "        raise AssertionError('service maker scan')\n"
                "    return original(interface, package)\n"
                "p.getPlugins = scan\n"
                "from enttok.frozen import main\n"
                "main()\n")
        daemon = Daemon(self, Path(self.mktemp()).absolute(), runner=["-c", code],
                        ready_timeout=READY_TIMEOUT)
        ready = daemon.wait_ready()
        self.assertGreater(ready["port"], 0)
        self.assertEqual(daemon.call("GET", "/health")[0], 200)
        self.assertEqual(daemon.terminate(), 0)
        self.assertNotIn("service maker scan", daemon.stderr())
