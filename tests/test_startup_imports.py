"""The daemon starts without importing the heavy machine-learning stack.

The embedding model and the vector index are loaded lazily, on the first job
that needs them; importing them at start-up would cost seconds on every launch.
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

def report():
    heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))
    sys.stderr.write("HEAVY " + json.dumps(heavy) + "\\n")
    service.stopService().addBoth(lambda _: reactor.stop())

reactor.callWhenRunning(reactor.callLater, 0.5, report)
reactor.run()
"""


class StartupImportTests(SynchronousTestCase):
    def probe(self, prelude: str = "") -> list[str]:
        """Run L{PROBE} in a fresh interpreter; return the heavy modules it saw."""
        data_dir = Path(self.mktemp()).absolute()
        data_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES.values()}
        result = subprocess.run([sys.executable, "-c", prelude + PROBE, str(data_dir), *HEAVY],
                                capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL, env=env, cwd=str(data_dir))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('"event": "ready"', result.stdout)
        [line] = [line for line in result.stderr.splitlines() if line.startswith("HEAVY ")]
        heavy: list[str] = json.loads(line[len("HEAVY "):])
        return heavy

    def test_no_heavy_modules_after_ready(self) -> None:
        self.assertEqual(self.probe(), [])

    def test_probe_sees_heavy_modules(self) -> None:
        # The check above must be able to fail: numpy is installed, so importing it shows.
        self.assertIn("numpy", self.probe("import numpy\n"))
