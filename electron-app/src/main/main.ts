/**
 * The Electron main process: starts the backend, opens the window, and stops
 * the backend when the app quits.
 *
 * Development: set VITE_DEV_SERVER_URL (e.g. http://localhost:5173, from
 * `npm run dev:react`) to load the renderer from Vite instead of dist-react/.
 */
import * as path from "node:path";
import { pathToFileURL } from "node:url";

import { app, dialog } from "electron";

import { resolveBackendCommand } from "../backend/paths";
import { BackendSupervisor, type FailureInfo } from "../backend/supervisor";
import { serveBackendConnection } from "./ipc";
import { FILE_ORIGINS, allowOrigins, devServerOrigins } from "./origins";
import { type RendererSource, createMainWindow } from "./window";

const WAIT_FOR_READY_MS = 20_000;

function rendererSource(): RendererSource {
  const devUrl = process.env.VITE_DEV_SERVER_URL;
  if (!app.isPackaged && devUrl) {
    return { kind: "url", url: devUrl };
  }
  return { kind: "file", path: path.join(app.getAppPath(), "dist-react", "index.html") };
}

function rendererOrigins(source: RendererSource): string[] {
  return source.kind === "url" ? devServerOrigins(source.url) : FILE_ORIGINS;
}

function isAppPage(source: RendererSource): (url: string) => boolean {
  const prefix = source.kind === "url"
    ? new URL(source.url).origin + "/"
    : pathToFileURL(path.dirname(source.path)).href + "/";
  return (url) => url.startsWith(prefix);
}

function createSupervisor(): BackendSupervisor {
  const command = resolveBackendCommand({
    packaged: app.isPackaged,
    resourcesPath: process.resourcesPath,
    devRoot: path.dirname(app.getAppPath()), // electron-app/ sits in the repository root
  });
  return new BackendSupervisor({
    backendDir: command.cwd,
    command,
    appDataDir: path.join(app.getPath("userData"), "enttok-e"),
    runEnv: app.isPackaged ? "prod" : "dev",
  });
}

function reportFailure(failure: FailureInfo, logFile: string): void {
  const tail = failure.stderr.slice(-10).join("\n");
  dialog.showErrorBox(
    "enttok-e: the backend stopped",
    `${failure.message}\n\n${tail}\n\nMore in ${logFile}`,
  );
}

/** Quit only after the backend is gone; a second quit request just waits for the first. */
function stopBackendOnQuit(supervisor: BackendSupervisor): void {
  let stopped = false;
  let stopping: Promise<void> | null = null;
  app.on("before-quit", (event) => {
    if (stopped) {
      return;
    }
    event.preventDefault();
    stopping ??= supervisor.stop().finally(() => {
      stopped = true;
      app.quit();
    });
  });
}

function main(): void {
  if (!app.requestSingleInstanceLock()) {
    app.quit(); // a second instance would start a second backend on the same data
    return;
  }
  const supervisor = createSupervisor();
  const source = rendererSource();
  let originsAllowed: Promise<void> = Promise.resolve();
  supervisor.on("ready", (ready) => {
    originsAllowed = allowOrigins(ready, rendererOrigins(source)).then(
      () => undefined,
      (error: unknown) => console.error(`could not allow the renderer's origin: ${String(error)}`),
    );
  });
  supervisor.on("failed", (failure) => reportFailure(failure, supervisor.consoleLogFile));
  // The renderer gets the connection once the backend is ready *and* accepts its origin.
  serveBackendConnection(async () => {
    const ready = await supervisor.whenReady(WAIT_FOR_READY_MS);
    await originsAllowed;
    return { baseUrl: ready.baseUrl, token: ready.token };
  }, isAppPage(source));
  stopBackendOnQuit(supervisor);
  app.on("window-all-closed", () => app.quit());

  void app.whenReady().then(() => {
    supervisor.start().catch(() => undefined); // a failure is reported by the "failed" handler
    const window = createMainWindow(path.join(__dirname, "preload.js"), source);
    app.on("second-instance", () => window.isDestroyed() || window.focus());
  });
}

main();
