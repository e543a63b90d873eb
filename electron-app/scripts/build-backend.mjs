#!/usr/bin/env node
// Prepares the Python backend for packaging (electron-builder copies it from the
// repository root into resources/backend/):
//
//   1. `uv sync --frozen --no-dev --no-install-project` in the repository root:
//      .venv/ with exactly the locked runtime dependencies (dev tools such as ruff
//      and mypy are removed). The project itself is not installed: an editable
//      install is a .pth naming this checkout's absolute path, meaningless on the
//      user's machine; the backend runs from its copied sources (its cwd) instead.
//   2. Regenerates Twisted's plugin cache, twisted/plugins/dropin.cache, so an
//      installed, read-only copy never tries to write it at start-up.
//
// Usage: node scripts/build-backend.mjs [--repo <root>] [--plugin-cache-only]
//   --repo               the repository root (default: the folder above electron-app/)
//   --plugin-cache-only  skip step 1 (for an existing .venv, e.g. in tests and CI)
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PLUGIN_CACHE_CODE =
  "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))";
const STEP_TIMEOUT_MS = 30 * 60 * 1000; // the first sync downloads PyTorch

function parseArgs(argv) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const options = { repo: path.resolve(here, "..", ".."), pluginCacheOnly: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--repo" && argv[i + 1]) {
      options.repo = path.resolve(argv[++i]);
    } else if (argv[i] === "--plugin-cache-only") {
      options.pluginCacheOnly = true;
    } else {
      throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return options;
}

export function venvPython(repo, platform = process.platform) {
  return platform === "win32"
    ? path.join(repo, ".venv", "Scripts", "python.exe")
    : path.join(repo, ".venv", "bin", "python");
}

function run(what, command, args, cwd) {
  console.log(`build-backend: ${what}: ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd, stdio: "inherit", timeout: STEP_TIMEOUT_MS });
  if (result.error) {
    throw new Error(`${what} could not run ${command}: ${result.error.message}`);
  }
  if (result.status !== 0) {
    throw new Error(`${what} failed (${command} exited with ${result.status ?? result.signal})`);
  }
}

/** Run both steps (or only the second) for the repository at `repo`. */
export function buildBackend({ repo, pluginCacheOnly = false }) {
  if (!existsSync(path.join(repo, "uv.lock")) || !existsSync(path.join(repo, "enttok"))) {
    throw new Error(`${repo} does not look like the enttok repository (no uv.lock or enttok/)`);
  }
  if (!pluginCacheOnly) {
    run("sync the runtime environment", "uv", ["sync", "--frozen", "--no-dev", "--no-install-project"], repo);
  }
  const python = venvPython(repo);
  if (!existsSync(python)) {
    throw new Error(`no Python at ${python}: run without --plugin-cache-only to create .venv`);
  }
  // Run from the repository root so twisted/plugins/ of the checkout is on sys.path.
  run("regenerate the Twisted plugin cache", python, ["-c", PLUGIN_CACHE_CODE], repo);
  const cache = path.join(repo, "twisted", "plugins", "dropin.cache");
  if (!existsSync(cache)) {
    throw new Error(`the plugin cache ${cache} was not written`);
  }
  console.log(`build-backend: ok (${cache})`);
  return { python, cache };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    buildBackend(parseArgs(process.argv.slice(2)));
  } catch (error) {
    console.error(`build-backend: ${error.message}`);
    process.exit(1);
  }
}
