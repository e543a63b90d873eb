// The electron-builder configuration, checked as far as possible without the
// Electron binary: the config itself, the paths it copies, the backend build
// script's plugin cache, the preload's sandbox constraints, and a real
// `electron-builder --dir` run on a miniature repository with a stand-in
// Electron distribution (so nothing is downloaded and nothing is executed).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, test } from "node:test";

import { appDir, repoPython, repoRoot, tempDir } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(path.join(appDir, "package.json"), "utf8"));
const config = pkg.build;
const BACKEND_SOURCES = ["../enttok", "../twisted", "../pyproject.toml", "../uv.lock", "../.venv"];

describe("electron-builder configuration", () => {
  test("ships only the two build outputs", () => {
    assert.deepEqual(config.files, ["dist-react/**/*", "dist-electron/**/*"]);
    assert.equal(pkg.main, "dist-electron/main/main.js");
    assert.deepEqual(pkg.dependencies ?? {}, {}, "the renderer is bundled: no node_modules in the app");
  });

  test("copies the backend and its .venv into resources/backend, unpacked", () => {
    assert.deepEqual(config.extraResources, BACKEND_SOURCES.map((from) => ({ from, to: `backend/${path.basename(from)}` })));
    assert.deepEqual(config.asarUnpack, ["**/backend/**"]);
    assert.equal(config.afterPack, "scripts/after-pack.cjs");
    assert.ok(existsSync(path.join(appDir, config.afterPack)));
  });

  test("every path it copies exists in this checkout", () => {
    for (const from of BACKEND_SOURCES) {
      assert.ok(existsSync(path.resolve(appDir, from)), `${from} is missing`);
    }
    repoPython(); // .venv/bin/python (or Scripts\python.exe), with a clear error if absent
    assert.ok(existsSync(path.join(repoRoot, "twisted", "plugins", "enttok_plugin.py")));
  });

  test("the main entry and preload are built", () => {
    for (const file of [pkg.main, "dist-electron/main/preload.js", "dist-react/index.html"]) {
      assert.ok(existsSync(path.join(appDir, file)), `${file} is missing: run npm run build`);
    }
  });
});

describe("scripts/build-backend.mjs", () => {
  test("regenerates twisted/plugins/dropin.cache with the .venv's Python", () => {
    const script = path.join(appDir, "scripts", "build-backend.mjs");
    const result = spawnSync(process.execPath, [script, "--plugin-cache-only"], { encoding: "utf8", timeout: 120_000 });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const cache = path.join(repoRoot, "twisted", "plugins", "dropin.cache");
    assert.ok(existsSync(cache));
    assert.ok(statSync(cache).mtimeMs >= statSync(path.join(repoRoot, "twisted", "plugins", "enttok_plugin.py")).mtimeMs);
  });

  test("refuses a folder that is not the repository", () => {
    const temp = tempDir("notrepo");
    try {
      const script = path.join(appDir, "scripts", "build-backend.mjs");
      const result = spawnSync(process.execPath, [script, "--repo", temp.dir], { encoding: "utf8", timeout: 30_000 });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /does not look like the enttok repository/);
    } finally {
      temp.cleanup();
    }
  });
});

describe("preload", () => {
  const preload = readFileSync(path.join(appDir, "dist-electron", "main", "preload.js"), "utf8");

  test("requires nothing but electron (a sandboxed preload cannot)", () => {
    const required = [...preload.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
    assert.deepEqual(required, ["electron"]);
  });

  test("uses the channel the main process serves", () => {
    const ipc = readFileSync(path.join(appDir, "dist-electron", "main", "ipc.js"), "utf8");
    const channel = ipc.match(/BACKEND_CHANNEL = "([^"]+)"/)[1];
    assert.ok(preload.includes(`"${channel}"`), `preload does not use ${channel}`);
    assert.match(preload, /exposeInMainWorld\("enttok"/);
  });
});

describe("after-pack hook", () => {
  test("makes plugin caches newer than the plugins copied beside them", () => {
    const { freshenPluginCaches } = require(path.join(appDir, "scripts", "after-pack.cjs"));
    const temp = tempDir("afterpack");
    try {
      const plugins = path.join(temp.dir, "backend", "twisted", "plugins");
      mkdirSync(plugins, { recursive: true });
      writeFileSync(path.join(plugins, "enttok_plugin.py"), "");
      writeFileSync(path.join(plugins, "dropin.cache"), "");
      const old = new Date(Date.now() - 60_000);
      utimesSync(path.join(plugins, "dropin.cache"), old, old);
      const found = freshenPluginCaches(path.join(temp.dir, "backend"));
      assert.deepEqual(found, [path.join(plugins, "dropin.cache")]);
      assert.ok(statSync(found[0]).mtimeMs >= statSync(path.join(plugins, "enttok_plugin.py")).mtimeMs);
    } finally {
      temp.cleanup();
    }
  });
});

/** A small copy of the repository: real sources, a stand-in .venv and Electron. */
function miniatureRepo(root) {
  cpSync(path.join(repoRoot, "enttok"), path.join(root, "enttok"), { recursive: true });
  mkdirSync(path.join(root, "twisted", "plugins"), { recursive: true });
  for (const name of ["enttok_plugin.py", "dropin.cache"]) {
    cpSync(path.join(repoRoot, "twisted", "plugins", name), path.join(root, "twisted", "plugins", name));
  }
  cpSync(path.join(repoRoot, "pyproject.toml"), path.join(root, "pyproject.toml"));
  cpSync(path.join(repoRoot, "uv.lock"), path.join(root, "uv.lock"));
  mkdirSync(path.join(root, ".venv", "bin"), { recursive: true });
  writeFileSync(path.join(root, ".venv", "bin", "python"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  writeFileSync(path.join(root, ".venv", "pyvenv.cfg"), "home = /usr/bin\n");
  const app = path.join(root, "electron-app");
  mkdirSync(app);
  for (const name of ["package.json", "dist-electron", "dist-react", "scripts"]) {
    cpSync(path.join(appDir, name), path.join(app, name), { recursive: true });
  }
  symlinkSync(path.join(appDir, "node_modules"), path.join(app, "node_modules"), "junction");
  const electronDist = path.join(root, "electron-dist");
  mkdirSync(electronDist);
  writeFileSync(path.join(electronDist, "electron"), "#!/bin/sh\necho stand-in\n", { mode: 0o755 });
  writeFileSync(path.join(electronDist, "LICENSE"), "");
  return { app, electronDist };
}

describe("electron-builder --dir (stand-in Electron, miniature .venv)", { skip: process.platform !== "linux" }, () => {
  test("lays out app.asar and resources/backend as configured", () => {
    const temp = tempDir("builder");
    try {
      const { app, electronDist } = miniatureRepo(temp.dir);
      const electronVersion = require(path.join(appDir, "node_modules", "electron", "package.json")).version;
      const cli = path.join(appDir, "node_modules", "electron-builder", "cli.js");
      const result = spawnSync(process.execPath, [
        cli, "--dir", "--linux", "--x64", `-c.electronDist=${electronDist}`, `-c.electronVersion=${electronVersion}`,
      ], { cwd: app, encoding: "utf8", timeout: 240_000, env: { ...process.env, CSC_IDENTITY_AUTO_DISCOVERY: "false" } });
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /afterPack: freshened/);

      const resources = path.join(app, "release", "linux-unpacked", "resources");
      const backend = path.join(resources, "backend");
      for (const file of ["enttok/__init__.py", "enttok/tap.py", "twisted/plugins/enttok_plugin.py",
        "twisted/plugins/dropin.cache", "pyproject.toml", "uv.lock", ".venv/bin/python", ".venv/pyvenv.cfg"]) {
        assert.ok(existsSync(path.join(backend, file)), `resources/backend/${file} is missing`);
      }
      const plugins = path.join(backend, "twisted", "plugins");
      assert.ok(statSync(path.join(plugins, "dropin.cache")).mtimeMs >= statSync(path.join(plugins, "enttok_plugin.py")).mtimeMs);

      const asar = require(path.join(appDir, "node_modules", "@electron", "asar"));
      const inside = asar.listPackage(path.join(resources, "app.asar")).map((p) => p.split(path.sep).join("/"));
      for (const file of ["/package.json", "/dist-react/index.html", "/dist-electron/main/main.js", "/dist-electron/main/preload.js"]) {
        assert.ok(inside.includes(file), `${file} is not in app.asar`);
      }
      assert.ok(!inside.some((p) => p.startsWith("/node_modules")), "node_modules must not be packed");
      assert.ok(!inside.some((p) => p.startsWith("/src")), "sources must not be packed");
    } finally {
      temp.cleanup();
    }
  });
});
