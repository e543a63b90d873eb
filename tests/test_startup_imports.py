"""The daemon starts without importing the heavy machine-learning stack.

The embedding model and the vector index are loaded lazily, on the first job
that needs them; importing them at start-up would cost seconds on every launch.
Autobahn and PyYAML are left out of the path to the open port too: Autobahn is
imported in a thread once the reactor runs, PyYAML at the first front matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from enttok.config import ENV_NAMES

HEAVY = ("torch", "sentence_transformers", "transformers", "hnswlib", "numpy")
#: Imported after the port is open, not before.
LATER = ("autobahn", "yaml")

#: Builds the daemon exactly as ``twistd enttok`` does, runs the reactor until
#: the ready line is out, then reports which heavy modules were imported.
PROBE = """
import json, sys
import twisted.plugins.enttok_plugin
from twisted.internet import reactor
from enttok.tap import Options, makeService

options = Options()
options.parseOptions(["--port", "0", "--data-dir", sys.argv[1]])
service = makeService(options)
service.startService()

def report(label):
    heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))
    sys.stderr.write(label + " " + json.dumps(heavy) + "\\n")

def done():
    report("HEAVY")
    service.stopService().addBoth(lambda _: reactor.stop())

report("LISTENING")

reactor.callWhenRunning(reactor.callLater, 0.5, done)
reactor.run()
"""


class StartupImportTests(SynchronousTestCase):
    def probe(self, prelude: str = "", modules: tuple[str, ...] = HEAVY,
              when: str = "HEAVY") -> list[str]:
        """
        Run L{PROBE} in a fresh interpreter; return which of C{modules} it saw
        imported C{when}: C{"LISTENING"} (the service started, the reactor not
        yet running) or C{"HEAVY"} (half a second after the ready line).
        """
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES.values()}
        result = subprocess.run([sys.executable, "-c", prelude + PROBE, str(data_dir), *modules],
                                capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(data_dir))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('"event": "ready"', result.stdout)
        [line] = [line for line in result.stderr.splitlines() if line.startswith(when + " ")]
        heavy: list[str] = json.loads(line[len(when) + 1:])
        return heavy

    def test_no_heavy_modules_after_ready(self) -> None:
        self.assertEqual(self.probe(), [])

    def test_probe_sees_heavy_modules(self) -> None:
        # The check above must be able to fail: numpy is installed, so importing it shows.
        self.assertIn("numpy", self.probe("import numpy\n"))

    def test_autobahn_and_yaml_after_the_port_is_open(self) -> None:
        self.assertEqual(self.probe(modules=LATER, when="LISTENING"), [])
        # The WebSocket library is preloaded once the reactor runs.
        self.assertEqual(self.probe(modules=LATER), ["autobahn"])
