"""The twistd plugin: found in the source tree and shipped correctly in the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SkipTest, SynchronousTestCase

import enttok.tap

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "twisted/plugins/enttok_plugin.py"


def enttok_makers() -> list[IServiceMaker]:
    return [maker for maker in getPlugins(IServiceMaker) if maker.tapname == "enttok"]


class PluginTests(SynchronousTestCase):
    def test_found_by_twistd(self) -> None:
        [maker] = enttok_makers()
        self.assertIs(maker.makeService, enttok.tap.makeService)
        self.assertIs(maker.options, enttok.tap.Options)
        self.assertTrue(maker.description)

    def test_no_package_init_in_plugins(self) -> None:
        # An __init__.py would shadow Twisted's own twisted/plugins package.
        self.assertTrue((REPO / PLUGIN).is_file())
        self.assertFalse((REPO / "twisted" / "__init__.py").exists())
        self.assertFalse((REPO / "twisted" / "plugins" / "__init__.py").exists())


#: The wheel built by the first test that needs it (one build per run).
_built: list[Path] = []


class WheelTests(SynchronousTestCase):
    """Build the wheel and look inside it."""

    def build_wheel(self) -> Path:
        uv = shutil.which("uv")
        if uv is None:
            raise SkipTest("uv is not on PATH, so the wheel cannot be built")
        if _built and _built[0].exists():
            return _built[0]
        out = Path(self.mktemp()).absolute()
        result = subprocess.run([uv, "build", "--wheel", "-o", str(out)], cwd=REPO,
                                capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        [wheel] = out.glob("enttok-*.whl")
        _built[:] = [wheel]
        return wheel

    def test_wheel_contents(self) -> None:
        names = set(zipfile.ZipFile(self.build_wheel()).namelist())
        self.assertIn(PLUGIN, names)
        self.assertIn("enttok/__init__.py", names)
        self.assertIn("enttok/tap.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertNotIn("twisted/plugins/dropin.cache", names)
        self.assertEqual({n for n in names if n.startswith("twisted/")}, {PLUGIN})
        self.assertFalse([n for n in names if n.startswith("tests/")])

    def test_plugin_found_from_wheel(self) -> None:
        # Unpack the wheel where nothing else provides enttok and ask twistd's
        # plugin system, in a fresh interpreter that does not see the source tree.
        target = Path(self.mktemp()).absolute()
        zipfile.ZipFile(self.build_wheel()).extractall(target)
        site_packages = [p for p in sys.path if p.endswith("site-packages")]
        code = (
            "import json, sys\n"
            "from twisted.application.service import IServiceMaker\n"
            "from twisted.plugin import getPlugins\n"
            "found = [m for m in getPlugins(IServiceMaker) if m.tapname == 'enttok']\n"
            "import enttok.tap\n"
            "same = [m.makeService is enttok.tap.makeService for m in found]\n"
            "print(json.dumps({'found': len(found), 'tap': enttok.tap.__file__, 'same': same}))\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = os.pathsep.join([str(target), *site_packages])
        # -S: skip site-packages' .pth files, which would add the source tree.
        result = subprocess.run([sys.executable, "-S", "-c", code], cwd=str(target), env=env,
                                capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout.splitlines()[-1])
        self.assertEqual(report["found"], 1, report)
        self.assertEqual(report["same"], [True])
        self.assertTrue(report["tap"].startswith(str(target)), report["tap"])
