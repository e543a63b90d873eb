// Shared by the tests: paths, the real backend's interpreter, bounded waits.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = path.dirname(appDir);

/** The repository's .venv interpreter; a clear error when it is missing. */
export function repoPython() {
  const python = process.platform === "win32"
    ? path.join(repoRoot, ".venv", "Scripts", "python.exe")
    : path.join(repoRoot, ".venv", "bin", "python");
  if (!existsSync(python)) {
    throw new Error(
      `no backend Python at ${python}: create the environment first, e.g. ` +
        `\`uv run --frozen trial tests\` or \`uv sync --frozen\` in ${repoRoot}`,
    );
  }
  return python;
}

/** Import a compiled module from dist-electron/ (built by `npm run build`). */
export async function importBuilt(relative) {
  const file = path.join(appDir, "dist-electron", relative);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run \`npm run build\` first`);
  }
  return import(file);
}

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `enttok-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Reject with `what` when `promise` takes longer than `ms`. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `check` until it returns a truthy value (returned) or `ms` pass. */
export async function waitFor(check, ms, what, intervalMs = 200) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) {
        return value;
      }
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${ms} ms: ${what}${last ? ` (last error: ${last.message})` : ""}`);
}

/** Resolve with the next `event` of `emitter`, bounded in time. */
export function nextEvent(emitter, event, ms) {
  return withTimeout(new Promise((resolve) => emitter.once(event, resolve)), ms, `event "${event}"`);
}

/** Whether the process `pid` is gone. */
export function processGone(pid) {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return error.code === "ESRCH";
  }
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
