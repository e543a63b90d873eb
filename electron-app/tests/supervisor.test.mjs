// The backend supervisor (dist-electron/backend/supervisor.js) against the REAL
// Python backend from the repository's .venv.
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  importBuilt,
  nextEvent,
  processGone,
  repoPython,
  repoRoot,
  tempDir,
  waitFor,
  withTimeout,
} from "./helpers.mjs";

const { BackendSupervisor } = await importBuilt("backend/supervisor.js");
const { parseReadyLine } = await importBuilt("backend/readyLine.js");
const { resolveBackendDir, venvPython } = await importBuilt("backend/paths.js");
const { OutputLog } = await importBuilt("backend/outputLog.js");

const READY_MS = 60_000; // the first start imports a lot; CI machines can be slow

function health(connection, token = connection.token) {
  return fetch(`${connection.baseUrl}/health`, {
    headers: token ? { "X-Backend-Token": token } : {},
    signal: AbortSignal.timeout(5000),
  });
}

describe("helpers", () => {
  test("parseReadyLine accepts only the ready line", () => {
    assert.deepEqual(parseReadyLine('{"event": "ready", "port": 4321, "pid": 99, "version": "0.1.0"}'),
      { port: 4321, pid: 99, version: "0.1.0" });
    assert.equal(parseReadyLine("2026-11-27T05:26:56+0000 [-] Site starting on 43031"), null);
    assert.equal(parseReadyLine('{"event": "ready", "port": 0, "pid": 1}'), null);
    assert.equal(parseReadyLine('{"event": "other", "port": 80, "pid": 1}'), null);
    assert.equal(parseReadyLine("{not json"), null);
  });

  test("the interpreter and backend folder are found per platform and packaging", () => {
    assert.equal(venvPython("/b", "linux"), path.join("/b", ".venv", "bin", "python"));
    assert.equal(venvPython("C:\\b", "win32"), "C:\\b\\.venv\\Scripts\\python.exe");
    assert.equal(resolveBackendDir({ packaged: true, resourcesPath: "/r", devRoot: "/x" }), path.join("/r", "backend"));
    assert.equal(resolveBackendDir({ packaged: false, devRoot: repoRoot }), repoRoot);
  });

  test("the console log keeps the last stderr lines and rotates past its size", async () => {
    const temp = tempDir("outputlog");
    try {
      const file = path.join(temp.dir, "logs", "console.log");
      const log = new OutputLog(file, 2, 100);
      log.stdout("twistd says hello");
      for (const n of [1, 2, 3]) {
        log.stderr(`error line ${n} ${"x".repeat(20)}`);
      }
      assert.deepEqual(log.lastStderr().map((l) => l.slice(0, 12)), ["error line 2", "error line 3"]);
      await log.close();
      assert.ok(existsSync(`${file}.1`), "rotated");
      const current = readFileSync(file, "utf8");
      assert.ok(current.length <= 100, `${current.length} bytes`);
      assert.match(current, /error line 3/);
      assert.match(readFileSync(`${file}.1`, "utf8"), /twistd says hello/);
    } finally {
      temp.cleanup();
    }
  });
});

describe("supervising the real backend", () => {
  const data = tempDir("supervisor");
  let supervisor;
  let first;

  before(() => {
    supervisor = new BackendSupervisor({
      backendDir: repoRoot,
      python: repoPython(),
      appDataDir: data.dir,
      runEnv: "dev",
      readyTimeoutMs: READY_MS,
    });
  });

  after(async () => {
    await supervisor?.stop();
    data.cleanup();
  });

  test("starts on a free port, says ready, and answers /health with the token", async () => {
    const statuses = [];
    supervisor.on("status", (s) => statuses.push(s));
    first = await withTimeout(supervisor.start(), READY_MS + 5000, "first start");
    assert.ok(first.port > 0, `port ${first.port}`);
    assert.equal(first.baseUrl, `http://127.0.0.1:${first.port}`);
    assert.equal(supervisor.status, "ready");
    assert.deepEqual(statuses, ["starting", "ready"]);
    assert.deepEqual(supervisor.connection(), { baseUrl: first.baseUrl, token: supervisor.token });
    assert.equal(supervisor.pid, first.pid);

    const ok = await health(first);
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).status, "ok");
    assert.equal((await health(first, "wrong-token-0123456789")).status, 401);
    assert.equal((await health(first, null)).status, 401);
  });

  test("keeps the token off the command line and logs stderr to a file", { skip: process.platform !== "linux" }, () => {
    const cmdline = readFileSync(`/proc/${first.pid}/cmdline`, "utf8");
    assert.ok(!cmdline.includes(supervisor.token), "the token must not be visible in ps");
    assert.ok(cmdline.includes("--exit-on-stdin-close"));
    const environ = readFileSync(`/proc/${first.pid}/environ`, "utf8").split("\0");
    assert.ok(environ.includes(`BACKEND_PARENT_PID=${process.pid}`));
    assert.ok(environ.includes(`APP_DATA_DIR=${data.dir}`));
    assert.ok(existsSync(supervisor.consoleLogFile), supervisor.consoleLogFile);
  });

  test("restarts the backend after kill -9, with a new pid", async () => {
    const restarting = nextEvent(supervisor, "restarting", 10_000);
    const ready = nextEvent(supervisor, "ready", READY_MS + 5000);
    const exit = nextEvent(supervisor, "exit", 10_000);
    process.kill(first.pid, "SIGKILL");
    const exited = await exit;
    assert.equal(exited.signal, "SIGKILL");
    assert.equal(exited.expected, false);
    const planned = await restarting;
    assert.equal(planned.attempt, 1);
    assert.equal(planned.delayMs, 500);
    assert.equal(supervisor.status, "restarting");
    const second = await ready;
    assert.notEqual(second.pid, first.pid);
    assert.ok(second.port > 0);
    assert.equal(second.token, first.token);
    assert.equal((await health(second)).status, 200);
    first = second;
  });

  test("stops cleanly: the process is gone within 5 s", async () => {
    const pid = supervisor.pid;
    assert.ok(pid);
    const exit = nextEvent(supervisor, "exit", 10_000);
    const started = Date.now();
    await withTimeout(supervisor.stop(), 8000, "stop()");
    const exited = await exit;
    assert.ok(Date.now() - started < 5000, `stop took ${Date.now() - started} ms`);
    assert.equal(exited.expected, true);
    assert.equal(exited.code, 0, "SIGTERM is a clean exit (status 0)");
    assert.ok(processGone(pid), `pid ${pid} is still there`);
    assert.equal(supervisor.status, "stopped");
    assert.equal(supervisor.connection(), null);
  });
});

describe("failures", () => {
  test("a bad python path fails at once with a message naming the path", async () => {
    const data = tempDir("badpython");
    const python = path.join(data.dir, "no-such-venv", "bin", "python");
    const supervisor = new BackendSupervisor({ backendDir: repoRoot, python, appDataDir: data.dir });
    try {
      const failed = nextEvent(supervisor, "failed", 5000);
      await assert.rejects(withTimeout(supervisor.start(), 5000, "start()"), (error) => error.message.includes(python));
      const failure = await failed;
      assert.match(failure.message, /Python was not found/);
      assert.ok(failure.message.includes(python));
      assert.equal(supervisor.status, "failed");
    } finally {
      await supervisor.stop();
      data.cleanup();
    }
  });

  test("a configuration the backend refuses (exit status 2) fails without retrying", async () => {
    const data = tempDir("badconfig");
    const notAFolder = path.join(data.dir, "data-is-a-file");
    writeFileSync(notAFolder, "");
    const supervisor = new BackendSupervisor({
      backendDir: repoRoot, python: repoPython(), appDataDir: notAFolder, logDir: path.join(data.dir, "logs"),
      readyTimeoutMs: READY_MS,
    });
    let restarts = 0;
    supervisor.on("restarting", () => restarts++);
    try {
      const failed = nextEvent(supervisor, "failed", READY_MS);
      await assert.rejects(supervisor.start(), /exit status 2/);
      const failure = await failed;
      assert.match(failure.message, /cannot create data directory/);
      assert.ok(failure.stderr.some((line) => line.includes("data-is-a-file")));
      assert.equal(restarts, 0);
    } finally {
      await supervisor.stop();
      data.cleanup();
    }
  });

  test("gives up after the restart budget, with the last stderr lines", { skip: process.platform === "win32" }, async () => {
    const data = tempDir("crashloop");
    const fake = path.join(data.dir, "python");
    writeFileSync(fake, "#!/bin/sh\necho 'Traceback: boom' >&2\nexit 1\n");
    chmodSync(fake, 0o755);
    const supervisor = new BackendSupervisor({
      backendDir: repoRoot, python: fake, appDataDir: data.dir, restartDelayMs: 20, maxRestarts: 3,
    });
    const delays = [];
    supervisor.on("restarting", (r) => delays.push(r.delayMs));
    try {
      const failed = nextEvent(supervisor, "failed", 10_000);
      await assert.rejects(supervisor.start(), /stopped 4 times within 60 s/);
      const failure = await failed;
      assert.deepEqual(delays, [20, 40, 80]);
      assert.deepEqual(failure.stderr, ["Traceback: boom"]);
      await waitFor(() => readFileSync(supervisor.consoleLogFile, "utf8").includes("Traceback: boom"), 2000,
        "stderr in the log file");
    } finally {
      await supervisor.stop();
      data.cleanup();
    }
  });
});
