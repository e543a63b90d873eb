/**
 * Runs the backend (`enttok-backend` in a packaged app, `python -m enttok`, i.e.
 * `twistd -n enttok`, in development) as a child process: starts it on
 * a free port with a fresh token, waits until it answers, restarts it after a
 * crash (with backoff, within a budget), and stops it cleanly.
 *
 * A plain Node module: nothing here imports Electron, so tests drive it directly.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline";

import { fetchHealth } from "./health";
import { delay, exitOf, isRunning, within } from "./processes";
import { OutputLog } from "./outputLog";
import { type BackendCommand, venvCommand } from "./paths";
import { type ReadyLine, parseReadyLine } from "./readyLine";

export type BackendStatus = "starting" | "ready" | "restarting" | "failed" | "stopped";

/** What a client needs to talk to the backend. */
export interface BackendConnection {
  baseUrl: string;
  token: string;
}

export interface ReadyInfo extends BackendConnection, ReadyLine {}

export interface ExitInfo {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when stop() asked for it. */
  expected: boolean;
}

export interface RestartInfo {
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface FailureInfo {
  message: string;
  /** The last lines the backend wrote to stderr, oldest first. */
  stderr: string[];
}

export interface SupervisorOptions {
  /** The backend's folder: the frozen runtime's, or the checkout holding enttok/ and .venv/. */
  backendDir: string;
  /** APP_DATA_DIR, e.g. `<userData>/enttok-e`. */
  appDataDir: string;
  /** How to start it (default: `python -m enttok` with `python` in backendDir). */
  command?: BackendCommand;
  /** Without `command`: the interpreter (default: the .venv's under backendDir). */
  python?: string;
  /** LOG_DIR (default `<appDataDir>/backend/logs`); the console log goes here too. */
  logDir?: string;
  runEnv?: "dev" | "prod";
  /** The environment the backend inherits (default process.env). */
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** First restart delay; it doubles with each restart inside the window. */
  restartDelayMs?: number;
  /** Restarts allowed within restartWindowMs before giving up ("failed"). */
  maxRestarts?: number;
  restartWindowMs?: number;
}

export interface SupervisorEvents {
  status: [BackendStatus];
  ready: [ReadyInfo];
  exit: [ExitInfo];
  restarting: [RestartInfo];
  failed: [FailureInfo];
}

/** The exit status of a backend that refuses its configuration; retrying cannot help. */
const CONFIG_ERROR_STATUS = 2;
const HEALTH_ATTEMPTS = 3;
const HEALTH_TIMEOUT_MS = 3000;
const KILL_WAIT_MS = 2000;

export class BackendSupervisor extends EventEmitter<SupervisorEvents> {
  readonly token = crypto.randomBytes(32).toString("base64url");
  /** The command line it runs (see paths.ts). */
  readonly command: BackendCommand;
  readonly logDir: string;
  private readonly log: OutputLog;
  private readonly options: Required<Omit<SupervisorOptions, "command" | "python" | "logDir" | "env">> & {
    env: NodeJS.ProcessEnv;
  };
  private _status: BackendStatus = "stopped";
  private child: ChildProcess | null = null;
  private ready: ReadyInfo | null = null;
  private _failure: FailureInfo | null = null;
  /** Bumped for every new process, so events of an older one are ignored. */
  private generation = 0;
  private restartTimes: number[] = [];
  private restartTimer: NodeJS.Timeout | null = null;
  private readyTimer: NodeJS.Timeout | null = null;
  private stopping = false;

  constructor(options: SupervisorOptions) {
    super();
    // `python -m enttok ARGS` runs `twistd --nodaemon --pidfile= enttok ARGS`; the
    // cwd, the checkout, puts enttok/ and twisted/plugins/ on sys.path.
    const dev = venvCommand(options.backendDir);
    this.command = options.command ?? { ...dev, executable: options.python ?? dev.executable };
    this.logDir = options.logDir ?? path.join(options.appDataDir, "backend", "logs");
    this.log = new OutputLog(path.join(this.logDir, "backend-stderr.log"));
    this.options = {
      backendDir: options.backendDir,
      appDataDir: options.appDataDir,
      runEnv: options.runEnv ?? "prod",
      env: options.env ?? process.env,
      readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
      stopTimeoutMs: options.stopTimeoutMs ?? 5_000,
      restartDelayMs: options.restartDelayMs ?? 500,
      maxRestarts: options.maxRestarts ?? 5,
      restartWindowMs: options.restartWindowMs ?? 60_000,
    };
  }

  get status(): BackendStatus {
    return this._status;
  }

  /** The program it runs: `enttok-backend` or a Python interpreter. */
  get executable(): string {
    return this.command.executable;
  }

  /** The running backend's process id, if one is running. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Why the supervisor gave up, once status is "failed". */
  get failure(): FailureInfo | null {
    return this._failure;
  }

  /** The file the backend's console output is appended to. */
  get consoleLogFile(): string {
    return this.log.file;
  }

  /** {baseUrl, token} while ready, else null. */
  connection(): BackendConnection | null {
    return this.ready && { baseUrl: this.ready.baseUrl, token: this.ready.token };
  }

  /**
   * Start the backend (a no-op while it runs).
   *
   * @returns fires once it is ready; rejects if it fails or is stopped first.
   */
  start(): Promise<ReadyInfo> {
    if (this._status === "stopped" || this._status === "failed") {
      this.stopping = false;
      this._failure = null;
      this.restartTimes = [];
      this.setStatus("starting");
      this.launch();
    }
    return this.whenReady();
  }

  /**
   * Wait until the backend is ready (immediately if it is).
   *
   * @param timeoutMs give up after this long (default: never, but "failed" and
   *   "stopped" always end the wait).
   */
  whenReady(timeoutMs?: number): Promise<ReadyInfo> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (status: BackendStatus): boolean => {
        if (status === "ready" && this.ready) {
          resolve(this.ready);
        } else if (status === "failed") {
          reject(new Error(this._failure?.message ?? "the backend failed"));
        } else if (status === "stopped") {
          reject(new Error("the backend is stopped"));
        } else {
          return false;
        }
        clearTimeout(timer);
        this.off("status", settle);
        return true;
      };
      if (settle(this._status)) {
        return;
      }
      this.on("status", settle);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.off("status", settle);
          reject(new Error(`the backend was not ready within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  /**
   * Stop the backend: close its stdin and send SIGTERM, then SIGKILL if it has
   * not exited within stopTimeoutMs.
   *
   * @returns fires once the process is gone.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.clearTimers();
    const child = this.child;
    if (child !== null && isRunning(child)) {
      this.log.note(`stopping the backend (pid ${child.pid})`);
      const exited = exitOf(child);
      child.stdin?.end();
      if (process.platform !== "win32") {
        child.kill("SIGTERM"); // on Windows this would be a hard kill; stdin EOF is the polite ask
      }
      if (!(await within(exited, this.options.stopTimeoutMs))) {
        this.log.note(`the backend did not exit within ${this.options.stopTimeoutMs} ms; killing it`);
        child.kill("SIGKILL");
        await within(exited, KILL_WAIT_MS);
      }
    }
    this.child = null;
    this.ready = null;
    this.setStatus("stopped");
    await this.log.close();
  }

  private setStatus(status: BackendStatus): void {
    if (this._status !== status) {
      this._status = status;
      this.emit("status", status);
    }
  }

  private launch(): void {
    const generation = ++this.generation;
    const problem = this.checkPaths();
    if (problem !== null) {
      this.fail(problem);
      return;
    }
    this.log.resetRecent();
    const { executable, args, cwd } = this.command;
    const child = spawn(executable, args, {
      cwd,
      env: this.backendEnv(),
      stdio: ["pipe", "pipe", "pipe"],
      windowsHide: true,
    });
    this.child = child;
    child.stdin.on("error", () => undefined); // EPIPE once the backend has gone
    child.on("error", (error) => {
      if (generation === this.generation) {
        this.fail(`could not run the backend at ${executable}: ${error.message}`);
      }
    });
    child.on("exit", (code, signal) => this.onExit(generation, child, code, signal));
    this.watchOutput(generation, child);
    this.readyTimer = setTimeout(() => this.onReadyTimeout(generation), this.options.readyTimeoutMs);
    this.log.note(`started the backend (pid ${child.pid ?? "?"}): ${executable} ${args.join(" ")}`);
  }

  /** A clear message for a missing executable or folder, instead of a bare ENOENT. */
  private checkPaths(): string | null {
    const { executable, cwd, frozen } = this.command;
    if (!fs.existsSync(cwd)) {
      return `the backend folder ${cwd} does not exist`;
    }
    try {
      fs.accessSync(executable, fs.constants.X_OK);
    } catch {
      return frozen
        ? `the backend runtime was not found (or is not executable) at ${executable}; ` +
          "the app was packaged without it (build it with `npm run build:backend`)"
        : `the backend's Python was not found (or is not executable) at ${executable}; ` +
          "create the development environment with `uv sync --frozen` in the repository";
    }
    return null;
  }

  private backendEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...this.options.env };
    // A user's PYTHONHOME/PYTHONPATH would pull in another Python's packages.
    delete env.PYTHONHOME;
    delete env.PYTHONPATH;
    return {
      ...env,
      BACKEND_PORT: "0",
      BACKEND_TOKEN: this.token,
      APP_DATA_DIR: this.options.appDataDir,
      LOG_DIR: this.logDir,
      RUN_ENV: this.options.runEnv,
      BACKEND_PARENT_PID: String(process.pid),
      PYTHONUNBUFFERED: "1",
      PYTHONNOUSERSITE: "1",
      PYTHONIOENCODING: "utf-8",
    };
  }

  private watchOutput(generation: number, child: ChildProcess): void {
    let announced = false;
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      const ready = announced ? null : parseReadyLine(line);
      if (ready === null) {
        this.log.stdout(line);
        return;
      }
      announced = true;
      void this.onReadyLine(generation, child, ready);
    });
    readline.createInterface({ input: child.stderr! }).on("line", (line) => this.log.stderr(line));
  }

  private async onReadyLine(generation: number, child: ChildProcess, line: ReadyLine): Promise<void> {
    const baseUrl = `http://127.0.0.1:${line.port}`;
    let lastError: unknown = null;
    for (let attempt = 0; attempt < HEALTH_ATTEMPTS; attempt++) {
      try {
        await fetchHealth(baseUrl, this.token, HEALTH_TIMEOUT_MS);
        lastError = null;
        break;
      } catch (error) {
        lastError = error;
        await delay(300);
      }
    }
    if (generation !== this.generation || this.stopping || !isRunning(child)) {
      return;
    }
    if (lastError !== null) {
      this.log.note(`the backend announced port ${line.port} but GET /health failed: ${String(lastError)}`);
      child.kill("SIGKILL"); // its exit schedules a restart
      return;
    }
    this.clearReadyTimer();
    this.ready = { ...line, baseUrl, token: this.token };
    this.log.note(`the backend is ready on ${baseUrl} (pid ${line.pid}, version ${line.version})`);
    this.setStatus("ready");
    this.emit("ready", this.ready);
  }

  private onReadyTimeout(generation: number): void {
    this.readyTimer = null;
    if (generation !== this.generation || this.child === null) {
      return;
    }
    this.log.note(`the backend did not announce itself within ${this.options.readyTimeoutMs} ms; killing it`);
    this.child.kill("SIGKILL"); // its exit schedules a restart
  }

  private onExit(generation: number, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const expected = this.stopping;
    this.emit("exit", { pid: child.pid, code, signal, expected });
    if (generation !== this.generation || expected || this._status === "failed") {
      return;
    }
    const wasReady = this.ready !== null;
    this.clearReadyTimer();
    this.child = null;
    this.ready = null;
    const reason = code !== null ? `exit status ${code}` : `signal ${signal}`;
    this.log.note(`the backend (pid ${child.pid}) exited unexpectedly: ${reason}`);
    if (!wasReady && code === CONFIG_ERROR_STATUS) {
      const said = this.log.lastStderr().at(-1) ?? "no message";
      this.fail(`the backend refused to start (exit status ${code}): ${said}`);
      return;
    }
    this.scheduleRestart(reason);
  }

  private scheduleRestart(reason: string): void {
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((t) => now - t < this.options.restartWindowMs);
    if (this.restartTimes.length >= this.options.maxRestarts) {
      const seconds = Math.round(this.options.restartWindowMs / 1000);
      this.fail(`the backend stopped ${this.restartTimes.length + 1} times within ${seconds} s ` +
        `(last: ${reason}); not restarting it again`);
      return;
    }
    const delayMs = this.options.restartDelayMs * 2 ** this.restartTimes.length;
    this.restartTimes.push(now);
    this.setStatus("restarting");
    this.emit("restarting", { attempt: this.restartTimes.length, delayMs, reason });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.stopping) {
        this.launch();
      }
    }, delayMs);
  }

  private fail(message: string): void {
    this.clearTimers();
    this.generation++; // whatever the current process does next is no longer news
    const child = this.child;
    if (child !== null && isRunning(child)) {
      child.kill("SIGKILL");
    }
    this.child = null;
    this.ready = null;
    this._failure = { message, stderr: this.log.lastStderr() };
    this.log.note(`giving up: ${message}`);
    this.setStatus("failed");
    this.emit("failed", this._failure);
  }

  private clearReadyTimer(): void {
    if (this.readyTimer !== null) {
      clearTimeout(this.readyTimer);
      this.readyTimer = null;
    }
  }

  private clearTimers(): void {
    this.clearReadyTimer();
    if (this.restartTimer !== null) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
  }
}
