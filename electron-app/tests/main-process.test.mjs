// dist-electron/main/main.js under plain Node with a stand-in "electron" module
// (tests/support/electron-stub.cjs) and the REAL backend: the wiring of the
// supervisor, the window, the IPC channel, allowed_origins and quitting.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, describe, test } from "node:test";

import { appDir, processGone, repoPython, tempDir, waitFor } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const stubPath = path.join(appDir, "tests", "support", "electron-stub.cjs");
const mainPath = path.join(appDir, "dist-electron", "main", "main.js");
const READY_MS = 60_000;

/** Pids of this process's children running the backend (Linux: from /proc; elsewhere none). */
function backendChildren() {
  if (process.platform !== "linux") {
    return [];
  }
  return readdirSync("/proc").filter((name) => /^\d+$/.test(name)).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      return ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("enttok");
    } catch {
      return false;
    }
  }).map(Number);
}

describe("the main process (stand-in Electron, real backend)", () => {
  const temp = tempDir("main");
  const originalResolve = Module._resolveFilename;
  let electron;
  let connection;

  after(async () => {
    Module._resolveFilename = originalResolve;
    if (electron && !electron.__state.quitted) {
      electron.app.quit();
      await waitFor(() => electron.__state.quitted, 10_000, "quit");
    }
    temp.cleanup();
  });

  test("starts the backend and opens a 1280x800 locked-down window on dist-react", async () => {
    repoPython(); // a clear error when the .venv is missing
    Module._resolveFilename = function (request, ...rest) {
      return request === "electron" ? stubPath : originalResolve.call(this, request, ...rest);
    };
    electron = require(stubPath);
    electron.__state.userData = temp.dir;
    electron.__state.appPath = appDir;
    require(mainPath);
    await waitFor(() => electron.__state.windows.length === 1, 5000, "the window");
    const [window] = electron.__state.windows;
    assert.equal(window.options.width, 1280);
    assert.equal(window.options.height, 800);
    const prefs = window.options.webPreferences;
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.preload, path.join(appDir, "dist-electron", "main", "preload.js"));
    assert.deepEqual(window.loaded, { file: path.join(appDir, "dist-react", "index.html") });
    assert.deepEqual(window.openHandler({ url: "https://example.com" }), { action: "deny" });
  });

  test("answers enttok.backend() for the app's page once the backend accepts file:// pages", { timeout: READY_MS + 10_000 }, async () => {
    const handler = electron.__state.handlers.get("enttok:backend");
    assert.ok(handler, "the IPC channel is registered");
    const page = pathToFileURL(path.join(appDir, "dist-react", "index.html")).href;
    connection = await handler({ senderFrame: { url: page } });
    assert.match(connection.baseUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(connection.token.length >= 32);
    const settings = await (await fetch(`${connection.baseUrl}/settings`, {
      headers: { "X-Backend-Token": connection.token }, signal: AbortSignal.timeout(5000),
    })).json();
    assert.ok(settings.allowed_origins.includes("null"));
    assert.ok(settings.allowed_origins.includes("file://"));
    assert.equal(settings.allowed_origins.length, 2);
  });

  test("refuses frames that are not the app's page", async () => {
    const handler = electron.__state.handlers.get("enttok:backend");
    await assert.rejects(handler({ senderFrame: { url: "https://example.com/" } }), /not the app's page/);
  });

  test("stops the backend before quitting", async () => {
    const backends = backendChildren();
    assert.equal(backends.length, process.platform === "linux" ? 1 : 0, "one backend process");
    electron.app.quit();
    assert.equal(electron.__state.quitted, false, "the first quit waits for the backend");
    await waitFor(() => electron.__state.quitted, 10_000, "the app to quit after the backend stopped");
    assert.ok(backends.every(processGone), "the backend process is gone");
    await assert.rejects(fetch(`${connection.baseUrl}/health`, { signal: AbortSignal.timeout(2000) }));
  });
});
