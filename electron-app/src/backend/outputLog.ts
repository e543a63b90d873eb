/**
 * The backend's console output: appended to a log file, with the last lines
 * kept in memory so a failure can say what the backend printed last.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export class OutputLog {
  private readonly recent: string[] = [];
  private stream: fs.WriteStream | null = null;

  /**
   * @param file the log file (its folder is created on first write).
   * @param keep how many recent stderr lines to remember.
   */
  constructor(readonly file: string, private readonly keep = 40) {}

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
    if (this.stream === null) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.stream = fs.createWriteStream(this.file, { flags: "a" });
      // A full disk must not take the app down; the lines are only diagnostics.
      this.stream.on("error", () => undefined);
    }
    this.stream.write(line + "\n");
  }
}
