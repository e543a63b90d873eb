// Shared by the tests of the frozen backend runtime (build/backend/, made by
// `npm run build:backend`): where it is, and whether a test must have it.
import { existsSync } from "node:fs";
import path from "node:path";

import { appDir } from "./helpers.mjs";

export const runtimeDir = path.join(appDir, "build", "backend");
export const runtimeExe = path.join(runtimeDir, process.platform === "win32" ? "enttok-backend.exe" : "enttok-backend");

/**
 * Whether build/backend/ exists. Without it the tests that run it are skipped,
 * unless ENTTOK_REQUIRE_RUNTIME=1 (as in .ci/run, which builds it first): then
 * its absence fails them.
 */
export function runtimeBuilt() {
  if (existsSync(runtimeExe)) {
    return true;
  }
  if (process.env.ENTTOK_REQUIRE_RUNTIME === "1") {
    throw new Error(`${runtimeExe} is missing: run npm run build:backend`);
  }
  return false;
}

/** A skip reason for `test(..., { skip })` when the runtime is not built. */
export function skipWithoutRuntime() {
  return runtimeBuilt() ? false : "build/backend/ is not built (npm run build:backend)";
}
