"""Schemathesis against a real daemon: every route of docs/openapi.yaml, with the token.

No request may get a 5xx, and every response must match the description (status
code, content type, body schema, headers); requests the description calls invalid
must be refused, and (where the description can say it) valid ones accepted.

The run is deterministic (the same requests every time) and bounded: a few
examples per operation in each of Schemathesis's phases, about 850 requests.
Values that would make the daemon reach outside the test are rewritten before
they are sent (see L{HOOKS}): vault and model paths point at the test's vault,
URLs at a closed port of 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.daemonsupport import (
    REPO,
    TOKEN,
    child_env,
    log_text,
    start,
    write_settings,
)

SPEC = REPO / "docs" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 3
RUN_TIMEOUT = 240.0

#: Schemathesis hooks: make every request harmless before it is sent. A path
#: accepted as a vault would be scanned (C{"/"}: the whole disk), a URL accepted
#: for GitHub or a language model would be called.
HOOKS = '''
import os

import schemathesis

VAULT = os.environ["FUZZ_VAULT"]
LOCAL_URL = os.environ["FUZZ_LOCAL_URL"]


def harmless(value):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and key in ("vault_path", "embedding_model"):
                if item.lstrip()[:1] in ("/", "~"):
                    item = VAULT if key == "vault_path" else None
            elif isinstance(item, str) and key in ("api_base_url", "base_url"):
                if ":" in item:
                    item = LOCAL_URL
            else:
                item = harmless(item)
            out[key] = item
        return out
    if isinstance(value, list):
        return [harmless(item) for item in value]
    return value


@schemathesis.hook
def before_call(context, case, **kwargs):
    if isinstance(case.body, (dict, list)):
        safe = harmless(case.body)
        if safe != case.body:
            case.body = safe
'''

#: Where the description cannot say what the daemon accepts, only the
#: "valid data is accepted" check is off: /activity's date excludes from/to and
#: from..to is at most 366 days; a settings update names a real time zone; /events
#: answers 101 only to a WebSocket handshake, which Schemathesis does not make.
CONFIG = '''
headers = { "X-Backend-Token" = "${FUZZ_TOKEN}" }

[[operations]]
include-path = "/activity"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/events"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/settings"
include-method = "POST"
checks.positive_data_acceptance.enabled = false
'''


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class SchemathesisTests(SynchronousTestCase):
    def test_every_operation(self) -> None:
        root = Path(self.mktemp()).absolute()
        vault = root / "vault"
        (vault / "daily").mkdir(parents=True)
        (vault / "daily" / "2026-11-27.md").write_text(
            "---\ntags: [work]\n---\n# Friday\n\nSearch relevance review #search\n\n"
            "- [ ] label queries\n", encoding="utf-8")
        (vault / "Kubernetes.md").write_text("# Kubernetes\n\nCluster upgrade notes.\n",
                                             encoding="utf-8")
        data_dir = root / "data"
        data_dir.mkdir()
        write_settings(data_dir, {"vault_path": str(vault)})
        daemon = start(self, data_dir)
        work = root / "schemathesis"
        work.mkdir()
        (work / "fuzz_hooks.py").write_text(HOOKS, encoding="utf-8")
        (work / "schemathesis.toml").write_text(CONFIG, encoding="utf-8")
        env = child_env({"FUZZ_VAULT": str(vault), "FUZZ_TOKEN": TOKEN,
                         "FUZZ_LOCAL_URL": f"http://127.0.0.1:{closed_port()}",
                         "SCHEMATHESIS_HOOKS": "fuzz_hooks"})
        env["PYTHONPATH"] = f"{work}:{env['PYTHONPATH']}"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", str(SPEC),
                 "--url", f"http://127.0.0.1:{daemon.port}",
                 "--max-examples", str(EXAMPLES_PER_OPERATION), "--generation-deterministic",
                 "--workers", "1", "--suppress-health-check", "all", "--no-color",
                 "--request-timeout", "10", "--report", "junit",
                 "--report-dir", str(work / "report")],
                cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=RUN_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as e:
            self.fail(f"schemathesis did not finish within {RUN_TIMEOUT} s: {e.stdout!r}")
        output = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
        self.assertEqual(done.returncode, 0, output[-12000:])
        summary = output.split("SUMMARY")[-1]
        self.assertNotIn("errored", summary, output[-4000:])
        generated = re.search(r"(\d+) generated, (\d+) passed", summary)
        assert generated is not None, summary
        self.assertGreaterEqual(int(generated.group(1)), 300, summary)
        self.assertEqual(generated.group(1), generated.group(2), summary)

        # The daemon lived through it, and logged no unexpected error.
        status, health = daemon.call("GET", "/health")
        self.assertEqual((status, health["status"]), (200, "ok"))
        self.assertEqual(daemon.terminate(), 0, daemon.output_tail())
        critical = [line for line in log_text(data_dir).splitlines()
                    if json.loads(line).get("level") == "critical"]
        self.assertEqual(critical, [], "\n".join(critical)[:4000])
