// The frozen backend runtime (build/backend/, `npm run build:backend`) as a user's
// machine would see it: copied to a fresh path and run in a bubblewrap sandbox
// where only /usr, /etc and that copy (read-only) are visible, so neither the
// build machine's Python nor the checkout can be used by accident. It must print
// the ready line, answer /health, index a Korean + English vault, find notes by
// meaning (GET /search?mode=vector) and exit 0 on SIGTERM.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";

import { processGone, tempDir, waitFor, withTimeout } from "./helpers.mjs";
import { runtimeDir, skipWithoutRuntime } from "./runtimesupport.mjs";

const READY_MS = 60_000;
const INDEX_MS = 120_000; // the first vector search loads the model in the worker process
const TOKEN = "runtime-test-token-0123456789abcdef";
const bwrap = spawnSync("bwrap", ["--version"], { encoding: "utf8" });
const skip = process.platform !== "linux"
  ? "bubblewrap sandboxes run on Linux only"
  : bwrap.error
    ? "bwrap is not installed (apt-get install bubblewrap)"
    : skipWithoutRuntime();

/** Five notes: Korean (an NFC and an NFD file name), English, and both. */
const NOTES = {
  "daily/2026-12-01.md": "# 2026-12-01\n\n## 회의\n\n오늘 팀 회의에서 다음 주 배포 일정과 릴리스 체크리스트를 논의했다.\n",
  [`${"장보기".normalize("NFD")}.md`]: "# 장보기 목록\n\n사과, 우유, 빵, 계란을 사야 한다.\n",
  "garden.md": "# Garden\n\nPlanted tomatoes, basil and peppers in the backyard beds this weekend.\n",
  "reading.md": "# Reading\n\nFinished a novel about a lighthouse keeper on a remote island.\n",
  "mixed.md": "# 여행 계획\n\nBooked the train to Busan; 부산에서 해운대 해변을 걸을 예정이다.\n",
};

/** bwrap's arguments: /usr and /etc read-only, the host's /bin, /lib... links, and `rw`/`ro` folders. */
function sandboxArgs({ rw, ro }) {
  const args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"];
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    const top = `/${name}`;
    if (!existsSync(top)) {
      continue;
    }
    args.push(...(lstatSync(top).isSymbolicLink() ? ["--symlink", readlinkSync(top), top] : ["--ro-bind", top, top]));
  }
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--die-with-parent", "--clearenv");
  for (const dir of ro) {
    args.push("--ro-bind", dir, dir);
  }
  for (const dir of rw) {
    args.push("--bind", dir, dir);
  }
  return args;
}

/** Pids of processes running an executable under `dir` (from /proc). */
function runtimeProcesses(dir) {
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")[0].startsWith(dir + path.sep)) {
        pids.push(Number(entry));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Resolve with the first ready line on `stream`, bounded in time; every line also goes to `sink`. */
function readyLine(stream, ms, sink) {
  const lines = createInterface({ input: stream });
  return withTimeout(new Promise((resolve) => {
    lines.on("line", (line) => {
      sink(line);
      try {
        const value = JSON.parse(line);
        if (value.event === "ready") {
          resolve(value);
        }
      } catch {
        // twistd's own log lines
      }
    });
  }), ms, "the ready line");
}

describe("the frozen runtime in a sandbox (only /usr, /etc and a copy of build/backend)", { skip }, () => {
  const temp = tempDir("runtime");
  const root = temp.dir;
  const runtime = path.join(root, "opt", "enttok-e", "resources", "backend");
  const home = path.join(root, "home");
  const vault = path.join(home, "vault");
  const data = path.join(home, "data");
  let child;
  let ready;
  let stderr = "";
  const output = [];
  /** What the backend printed last (twistd logs to stdout), for failure messages. */
  const tail = () => `\nstdout (last lines):\n${output.slice(-40).join("\n")}\nstderr: ${stderr}`;

  const api = (route) => fetch(`http://127.0.0.1:${ready.port}${route}`, {
    headers: { "X-Backend-Token": TOKEN }, signal: AbortSignal.timeout(10_000),
  });

  before(() => {
    cpSync(runtimeDir, runtime, { recursive: true, verbatimSymlinks: true });
    for (const [name, text] of Object.entries(NOTES)) {
      mkdirSync(path.dirname(path.join(vault, name)), { recursive: true });
      writeFileSync(path.join(vault, name), text);
    }
    mkdirSync(data, { recursive: true });
  });

  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
    }
    temp.cleanup();
  });

  test("the sandbox hides the build machine's Python and the checkout", () => {
    const python = spawnSync("python3", ["-c", "import sys; print(sys.base_prefix)"], { encoding: "utf8" });
    const hidden = [runtimeDir, ...(python.status === 0 ? [python.stdout.trim()] : [])];
    const probe = spawnSync("bwrap", [...sandboxArgs({ rw: [home], ro: [runtime] }), "/usr/bin/ls", "-d", ...hidden],
      { encoding: "utf8", timeout: 10_000 });
    assert.notEqual(probe.status, 0, `visible in the sandbox: ${probe.stdout}`);
    assert.match(probe.stderr, /No such file or directory/);
  });

  test("prints the ready line and answers /health", { timeout: READY_MS + 10_000 }, async () => {
    const exe = path.join(runtime, "enttok-backend");
    child = spawn("bwrap", [
      ...sandboxArgs({ rw: [home], ro: [runtime] }),
      "--setenv", "HOME", home, "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "BACKEND_TOKEN", TOKEN,
      exe, "--port", "0", "--data-dir", data, "--vault", vault,
    ], { stdio: ["ignore", "pipe", "pipe"] });
    child.stderr.on("data", (chunk) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    ready = await readyLine(child.stdout, READY_MS, (line) => output.push(line) > 400 && output.shift()).catch((error) => {
      throw new Error(`${error.message}${tail()}`);
    });
    assert.ok(ready.port > 0 && ready.pid > 0, JSON.stringify(ready));
    const health = await api("/health");
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    assert.equal((await fetch(`http://127.0.0.1:${ready.port}/health`)).status, 401);
  });

  test("indexes a Korean + English vault and finds notes by meaning", { timeout: INDEX_MS + 10_000 }, async () => {
    assert.ok(ready, "the backend did not start");
    const scan = await fetch(`http://127.0.0.1:${ready.port}/jobs`, {
      method: "POST", headers: { "X-Backend-Token": TOKEN, "Content-Type": "application/json" },
      body: JSON.stringify({ type: "vault.scan", payload: {} }),
    });
    assert.ok([200, 201].includes(scan.status), `POST /jobs: ${scan.status} ${await scan.text()}`);
    // Queries sharing no word with their note: found by meaning, in both languages.
    const expectations = [
      ["출시 날짜를 정한 미팅", "daily/2026-12-01.md"],
      ["vegetables growing outside", "garden.md"],
      ["시장에서 살 식료품", "장보기.md"],
      ["a book I read", "reading.md"],
    ];
    for (const [q, expected] of expectations) {
      const hits = await waitFor(async () => {
        const response = await api(`/search?mode=vector&k=5&q=${encodeURIComponent(q)}`);
        const body = await response.json();
        return response.status === 200 && body.hits.length === Object.keys(NOTES).length ? body.hits : null;
      }, INDEX_MS, `vector hits for ${q}`, 500).catch((error) => {
        throw new Error(`${error.message}${tail()}`);
      });
      assert.equal(hits[0].path.normalize("NFC"), expected, `${q}: ${hits.map((h) => h.path).join(", ")}`);
    }
    assert.ok(existsSync(path.join(data, "backend", "data", "index.db")));
  });

  test("exits 0 on SIGTERM, its worker process too", { timeout: 20_000 }, async () => {
    assert.ok(ready, "the backend did not start");
    const workers = runtimeProcesses(runtime).filter((pid) => pid !== ready.pid);
    assert.ok(workers.length >= 1, "the embedding worker runs from the runtime too");
    const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    process.kill(ready.pid, "SIGTERM"); // the backend itself (bwrap shares our pid namespace)
    const { code, signal } = await withTimeout(exited, 15_000, "exit after SIGTERM");
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, tail());
    await waitFor(() => [ready.pid, ...workers].every(processGone), 5000, "the backend and its workers to be gone");
  });
});
