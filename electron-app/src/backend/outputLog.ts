/**
 * The backend's console output: appended to a log file (rotated to `<file>.1`
 * past maxBytes: twistd logs every request there), with the last stderr lines
 * kept in memory so a failure can say what the backend printed last.
 *
 * Writing is best effort: a full disk or an unwritable folder loses log lines,
 * never the app.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export class OutputLog {
  private readonly recent: string[] = [];
  private stream: fs.WriteStream | null = null;
  private size = 0;
  private broken = false;

  /**
   * @param file the log file (its folder is created on first write).
   * @param keep how many recent stderr lines to remember.
   * @param maxBytes rotate the file once it would grow past this.
   */
  constructor(
    readonly file: string,
    private readonly keep = 40,
    private readonly maxBytes = 5 * 1024 * 1024,
  ) {}

  /** Record a line the backend wrote to stderr. */
  stderr(line: string): void {
    this.recent.push(line);
    if (this.recent.length > this.keep) {
      this.recent.shift();
    }
    this.write(line);
  }

  /** Record a stdout line that is not the ready line (twistd's own log). */
  stdout(line: string): void {
    this.write(line);
  }

  /** Record a note from the supervisor itself. */
  note(message: string): void {
    this.write(`[supervisor ${new Date().toISOString()}] ${message}`);
  }

  /** The last stderr lines, oldest first. */
  lastStderr(): string[] {
    return [...this.recent];
  }

  /** Forget the remembered stderr lines (a new process starts). */
  resetRecent(): void {
    this.recent.length = 0;
  }

  close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    if (stream === null) {
      return Promise.resolve();
    }
    return new Promise((resolve) => stream.end(resolve));
  }

  private write(line: string): void {
    const text = line + "\n";
    const bytes = Buffer.byteLength(text);
    if (this.stream === null && !this.open()) {
      return;
    }
    if (this.size > 0 && this.size + bytes > this.maxBytes) {
      this.rotate();
      if (!this.open()) {
        return;
      }
    }
    this.stream!.write(text);
    this.size += bytes;
  }

  /** Open the file for appending; false when it cannot be (then lines are dropped). */
  private open(): boolean {
    if (this.broken) {
      return false;
    }
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.size = fs.existsSync(this.file) ? fs.statSync(this.file).size : 0;
      // Opened synchronously, so the file exists at once (and rotation can rename it).
      this.stream = fs.createWriteStream(this.file, { fd: fs.openSync(this.file, "a") });
      this.stream.on("error", () => {
        this.broken = true;
        this.stream = null;
      });
      return true;
    } catch {
      this.broken = true;
      return false;
    }
  }

  private rotate(): void {
    this.stream?.end();
    this.stream = null;
    try {
      fs.renameSync(this.file, `${this.file}.1`);
    } catch {
      try {
        fs.rmSync(this.file, { force: true }); // start over rather than grow without bound
      } catch {
        this.broken = true;
      }
    }
  }
}
