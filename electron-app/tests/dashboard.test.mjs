// The renderer in a real (headless) Chromium, served by `vite preview`, against a
// real backend on a copy of the demo vault. Outside Electron the page takes
// {baseUrl, token} from its URL (the dev/test-only path, see api/connection.ts).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { appDir, freePort, importBuilt, repoPython, repoRoot, tempDir, waitFor, withTimeout } from "./helpers.mjs";

const { BackendSupervisor } = await importBuilt("backend/supervisor.js");

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const READY_MS = 60_000;
const JOB_MS = 180_000; // index.update loads the embedding model in a worker process
const SCREENSHOT = path.join(appDir, "test-results", "dashboard.png");

/** `vite preview` of dist-react/ on 127.0.0.1; resolves once it serves the page. */
async function startPreview(port) {
  if (!existsSync(path.join(appDir, "dist-react", "index.html"))) {
    throw new Error("dist-react/index.html is missing: run `npm run build` first");
  }
  const vite = path.join(appDir, "node_modules", "vite", "bin", "vite.js");
  const child = spawn(process.execPath, [vite, "preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: appDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) {
        throw new Error(`vite preview exited: ${output}`);
      }
      return (await fetch(origin, { signal: AbortSignal.timeout(2000) })).ok;
    }, 30_000, `vite preview on ${origin}`);
  } catch (error) {
    child.kill();
    throw error;
  }
  return { origin, child };
}

function stopPreview(preview) {
  if (!preview || preview.child.exitCode !== null) {
    return Promise.resolve();
  }
  const exited = new Promise((resolve) => preview.child.once("exit", resolve));
  preview.child.kill("SIGTERM");
  return withTimeout(exited, 5000, "vite preview to exit").catch(() => preview.child.kill("SIGKILL"));
}

async function postSettings(backend, update) {
  const response = await fetch(`${backend.baseUrl}/settings`, {
    method: "POST",
    headers: { "X-Backend-Token": backend.token, "Content-Type": "application/json" },
    body: JSON.stringify(update),
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(response.status, 200, await response.text());
}

/** The job row of the newest job of `type`. */
function jobRow(page, type) {
  return page.locator(`li.job[data-job-type="${type}"]`).first();
}

async function waitForJob(page, type, status = "succeeded") {
  const row = jobRow(page, type);
  await row.waitFor({ state: "attached", timeout: 10_000 });
  await waitFor(async () => {
    const now = await row.getAttribute("data-status", { timeout: 2000 });
    if (now === "failed" || now === "canceled") {
      throw new Error(`${type} ended ${now}: ${await row.innerText()}`);
    }
    return now === status;
  }, JOB_MS, `${type} to reach ${status}`, 250);
  return row;
}

/** Submit `query` (again every few seconds: the index may still be filling) until a hit shows. */
async function searchUntilHit(page, query, expectedPath) {
  const input = page.getByLabel("Search query");
  await input.fill(query);
  const results = page.locator(`[data-testid="search-results"][data-query="${query}"]`);
  const hit = results.locator(`li.hit[data-path="${expectedPath}"]`);
  await waitFor(async () => {
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await results.waitFor({ timeout: 5000 });
    return (await hit.count()) > 0;
  }, 60_000, `a hit for ${query} in ${expectedPath}`, 1500);
  return hit.first();
}

describe("the dashboard in Chromium against a real backend", () => {
  const temp = tempDir("dashboard");
  const vault = path.join(temp.dir, "vault");
  let supervisor;
  let backend;
  let preview;
  let context;
  let page;
  const problems = [];

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    }
    cpSync(path.join(repoRoot, "demo-vault"), vault, { recursive: true });
    supervisor = new BackendSupervisor({
      backendDir: repoRoot, python: repoPython(), appDataDir: path.join(temp.dir, "data"), readyTimeoutMs: READY_MS,
    });
    backend = await withTimeout(supervisor.start(), READY_MS + 5000, "backend start");
    preview = await startPreview(await freePort());
    await postSettings(backend, { allowed_origins: [preview.origin], vault_path: vault });

    const profile = path.join(temp.dir, "chromium-profile");
    mkdirSync(profile);
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: preview.origin });
    context.setDefaultTimeout(15_000);
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      const url = message.location().url ?? "";
      // GET /suggestions answers 404 until suggestions exist; Chromium logs every 4xx.
      const expected = url.startsWith(`${backend.baseUrl}/suggestions`) && message.text().includes("404");
      if (message.type() === "error" && !expected) {
        problems.push(`console: ${message.text()} (${url})`);
      }
    });
    const query = new URLSearchParams({ backend: backend.baseUrl, token: backend.token });
    await page.goto(`${preview.origin}/?${query}`);
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await stopPreview(preview);
    await supervisor?.stop();
    temp.cleanup();
  });

  test("shows the backend's state and a live event stream", async () => {
    await waitFor(async () => (await page.getByTestId("health").innerText()) === "ok", 15_000, "health ok");
    assert.equal(await page.getByTestId("version").innerText(), "0.1.0");
    await waitFor(async () => (await page.getByTestId("socket").innerText()) === "live", 15_000, "events live");
  });

  test("scans the vault and follows the job to 100 % through /events", async () => {
    await page.getByRole("button", { name: "Scan vault" }).click();
    const row = await waitForJob(page, "vault.scan");
    assert.equal(await row.getByTestId("job-percent").innerText(), "100 %");
    assert.equal(await row.getByTestId("job-status").innerText(), "succeeded");
    // The scan queued an index update, which the list learned about from /events alone.
    await waitForJob(page, "index.update");
  });

  test("finds Korean and English words from the demo vault, highlighted safely", async () => {
    const korean = await searchUntilHit(page, "회의", "meetings/주간 회의.md");
    const marks = await korean.locator("mark").allInnerTexts();
    assert.ok(marks.length > 0 && marks.every((m) => m.includes("회의")), `marks: ${marks}`);
    const english = await searchUntilHit(page, "FTS5", "projects/enttok backend.md");
    assert.ok((await english.locator("mark").allInnerTexts()).some((m) => /fts5/i.test(m)));
  });

  test("generates today's suggestions and copies the checked lines", async () => {
    await page.getByRole("button", { name: "Generate suggestions" }).click();
    await waitForJob(page, "suggest.generate");
    const items = page.locator('[data-testid="suggestions"] li');
    await items.first().waitFor({ timeout: 15_000 });
    const lines = await items.locator(".suggestion-text").allInnerTexts();
    await page.getByRole("button", { name: "Insert checked" }).click();
    await page.getByText(/^Copied \d+ lines?/).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, lines.join("\n"));
  });

  test("saves settings; the GitHub token is write-only", async () => {
    const secret = "ghp_testtoken_0123456789abcdef";
    await page.getByLabel(/GitHub token/).fill(secret);
    await page.getByLabel(/Repositories/).fill("octo/demo\nocto/other");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByText("Settings saved.").waitFor();
    assert.equal(await page.getByTestId("token-state").innerText(), "set");
    assert.equal(await page.getByLabel(/GitHub token/).inputValue(), "");
    assert.ok(!(await page.content()).includes(secret), "the token must not appear in the page");
  });

  test("leaves a readable screenshot at 1280x800 and no page errors", async () => {
    await page.getByLabel("Search query").fill("회의");
    await page.getByRole("button", { name: "Search", exact: true }).click();
    await page.locator('[data-testid="search-results"][data-query="회의"] li.hit').first().waitFor();
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    assert.ok(existsSync(SCREENSHOT));
    assert.deepEqual(problems, []);
  });
});
