/** The one JSON line the backend prints on stdout once it listens. */

export interface ReadyLine {
  port: number;
  pid: number;
  version: string;
}

/**
 * Parse a line of the backend's stdout.
 *
 * @returns the ready announcement, or null for any other line (twistd also logs
 *   to stdout, so most lines are plain text).
 */
export function parseReadyLine(line: string): ReadyLine | null {
  const text = line.trim();
  if (!text.startsWith("{")) {
    return null;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null) {
    return null;
  }
  const { event, port, pid, version } = parsed as Record<string, unknown>;
  if (event !== "ready" || !isPort(port) || !Number.isInteger(pid)) {
    return null;
  }
  return { port, pid: pid as number, version: typeof version === "string" ? version : "unknown" };
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536;
}
