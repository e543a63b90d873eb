// The renderer in a real (headless) Chromium, served by `vite preview`, against a
// real backend on a copy of the demo vault. Outside Electron the page takes
// {baseUrl, token} from its URL (the dev/test-only path, see api/connection.ts).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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
  let noteFile = null;
  let insertedLines = [];

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
      // GET /suggestions answers 404 until suggestions exist, an append to a note changed
      // meanwhile 409, and /connectors 404 in a backend without it; Chromium logs every 4xx.
      const expected = (url.startsWith(`${backend.baseUrl}/suggestions`) && message.text().includes("404"))
        || (url.startsWith(`${backend.baseUrl}/notes/daily/`) && message.text().includes("409"))
        || (url === `${backend.baseUrl}/connectors` && message.text().includes("404"));
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

  test("generates today's suggestions and inserts the checked lines into today's note", async () => {
    await page.getByRole("button", { name: "Generate suggestions" }).click();
    await waitForJob(page, "suggest.generate");
    const items = page.locator('[data-testid="suggestions"] li');
    await items.first().waitFor({ timeout: 15_000 });
    // Leave the last line out: only checked lines are inserted.
    await items.last().locator('input[type="checkbox"]').uncheck();
    const all = await items.locator(".suggestion-text").allInnerTexts();
    const lines = all.slice(0, -1);
    assert.ok(lines.length > 0, "the demo vault gives more than one suggestion");
    const target = await page.getByTestId("note-target").innerText();
    const rel = /→ (\S+\.md) \(created on insert\)/.exec(target)?.[1];
    assert.match(rel ?? "", /^daily\/\d{4}-\d{2}-\d{2}\.md$/, target);
    const file = path.join(vault, ...rel.split("/"));
    assert.ok(!existsSync(file), `${rel} must not exist before the insert`);

    await page.getByRole("button", { name: "Insert checked" }).click();
    const notice = page.getByText(`Created ${rel}: ${lines.length} line`);
    await notice.waitFor();
    assert.equal(readFileSync(file, "utf8"), `## Suggestions\n${lines.join("\n")}\n`);
    // The note is re-indexed right away, by the index.update job the notice names.
    const jobId = /Re-indexing as (\S+)\.$/.exec(await notice.innerText())?.[1];
    assert.ok(jobId, await notice.innerText());
    const row = page.locator(`li.job[data-job-id="${jobId}"]`);
    await row.waitFor({ state: "attached", timeout: 10_000 });
    assert.equal(await row.getAttribute("data-job-type"), "index.update");
    await waitFor(async () => (await row.getAttribute("data-status")) === "succeeded", JOB_MS, `${jobId} to succeed`, 250);

    await page.getByRole("button", { name: "Copy checked" }).click();
    await page.getByText(/^Copied \d+ lines? — paste them into /).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), lines.join("\n"));
    noteFile = file;
    insertedLines = lines;
  });

  test("a note edited meanwhile is not overwritten: 'the note changed; reload'", async () => {
    assert.ok(noteFile, "runs after the insert test");
    writeFileSync(noteFile, "# 오늘\n\n편집기에서 쓴 글\n", "utf8");
    await page.getByRole("button", { name: "Insert checked" }).click();
    await page.getByTestId("note-changed").waitFor();
    assert.match(await page.getByTestId("note-changed").innerText(), /The note changed since it was read; reload/);
    assert.equal(readFileSync(noteFile, "utf8"), "# 오늘\n\n편집기에서 쓴 글\n");
    assert.ok(await page.getByRole("button", { name: "Insert checked" }).isDisabled());

    await page.getByTestId("note-changed").getByRole("button", { name: "Reload" }).click();
    await page.getByTestId("note-changed").waitFor({ state: "detached" });
    const insert = page.getByRole("button", { name: "Insert checked" });
    await waitFor(async () => !(await insert.isDisabled()), 10_000, "Insert enabled after reload");
    // Reloading re-reads the suggestions: every line is checked again.
    const checked = await page.locator('[data-testid="suggestions"] li input:checked').count();
    const all = await page.locator('[data-testid="suggestions"] .suggestion-text').allInnerTexts();
    assert.equal(checked, all.length);
    await insert.click();
    await page.getByText(/^Added to daily\/.*: \d+ lines?/).waitFor();
    assert.equal(readFileSync(noteFile, "utf8"), `# 오늘\n\n편집기에서 쓴 글\n\n## Suggestions\n${all.join("\n")}\n`);
    assert.ok(all.length >= insertedLines.length);
  });

  test("the connectors panel shows each connector's state and last error (fixed answer)", async () => {
    const answer = {
      connectors: [
        {
          id: "github", name: "GitHub", job_type: "connector.github.sync", configured: true, enabled: true,
          interval_minutes: 15, last_sync_at: "2026-12-01T08:00:00Z",
          cursor_summary: { since: null, repositories: 1, newest: "2026-12-01T07:00:00Z", title_misses: 0 },
          last_job: { job_id: "job_7", status: "failed", finished_at: "2026-12-01T08:10:00Z" },
          last_error: { code: "github_unauthorized", message: "the token was refused (401)" },
        },
        {
          id: "git", name: "Local git", job_type: "connector.git.sync", configured: false, enabled: false,
          interval_minutes: null, last_sync_at: null, cursor_summary: null, last_job: null, last_error: null,
        },
        {
          id: "calendar", name: "Calendar", job_type: "connector.calendar.sync", configured: true, enabled: true,
          interval_minutes: 60, last_sync_at: "2026-12-01T09:00:00Z",
          cursor_summary: { window: { start: "2026-11-24T00:00:00Z", end: "2026-12-16T00:00:00Z" }, files: 2, events: 1 },
          last_job: { job_id: "job_9", status: "succeeded", finished_at: "2026-12-01T09:00:01Z" }, last_error: null,
        },
      ],
    };
    const url = `${backend.baseUrl}/connectors`;
    await page.route(url, (route) => route.fulfill({
      status: 200, contentType: "application/json", body: JSON.stringify(answer),
      headers: { "access-control-allow-origin": preview.origin },
    }));
    try {
      await page.reload();
      const list = page.getByTestId("connectors");
      await list.locator("li").nth(2).waitFor();
      const github = list.locator('li[data-connector="github"]');
      assert.equal(await github.getByTestId("connector-state").innerText(), "failing");
      assert.equal(await github.getByTestId("connector-error").innerText(),
        "github_unauthorized the token was refused (401)");
      assert.equal(await github.getByTestId("connector-last-job").innerText(), "last job job_7: failed");
      const git = list.locator('li[data-connector="git"]');
      assert.equal(await git.getByTestId("connector-state").innerText(), "not configured");
      assert.equal(await git.getByTestId("connector-last-sync").innerText(), "Last sync: never");
      assert.ok(await git.getByRole("button", { name: "Sync Local git now" }).isDisabled());
      assert.equal(await git.getByTestId("connector-error").count(), 0);
      assert.equal(await git.getByTestId("connector-coverage").count(), 0);
      assert.equal(await github.getByTestId("connector-coverage").innerText(), "1 repository");
      const calendar = list.locator('li[data-connector="calendar"]');
      assert.equal(await calendar.getByTestId("connector-state").innerText(), "ok");
      assert.match(await calendar.innerText(), /every 60 min/);
      assert.equal(await calendar.getByTestId("connector-coverage").innerText(),
        "2026-11-24 to 2026-12-16, 1 event");
    } finally {
      await page.unroute(url);
    }
  });

  test("the connectors panel lists what the backend's GET /connectors answers", async () => {
    await page.reload();
    const response = await fetch(`${backend.baseUrl}/connectors`, {
      headers: { "X-Backend-Token": backend.token }, signal: AbortSignal.timeout(5000),
    });
    if (response.status === 404) {
      await page.getByText("This backend lists no connectors.").waitFor();
      return;
    }
    assert.equal(response.status, 200);
    const { connectors } = await response.json();
    const list = page.getByTestId("connectors");
    if (connectors.length > 0) {
      await list.locator("li").nth(connectors.length - 1).waitFor();
    }
    const shown = await list.locator("li").evaluateAll((items) => items.map((li) => li.dataset.connector));
    assert.deepEqual(shown, connectors.map((c) => c.id));
    for (const c of connectors) {
      const item = list.locator(`li[data-connector="${c.id}"]`);
      assert.equal(await item.getByTestId("connector-error").count(), c.last_error ? 1 : 0, c.id);
      const state = await item.getByTestId("connector-state").innerText();
      assert.equal(state === "not configured", !c.configured, `${c.id}: ${state}`);
    }
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
    // With a token GitHub is configured: the connectors panel says so at its next read.
    const github = page.locator('[data-testid="connectors"] li[data-connector="github"]');
    if ((await github.count()) > 0) {
      await waitFor(async () => (await github.getByTestId("connector-state").innerText()) !== "not configured",
        20_000, "GitHub configured in the connectors panel");
    }
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
