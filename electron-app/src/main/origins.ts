/**
 * The backend answers browsers only from origins in its `allowed_origins`
 * setting; the main process adds the renderer's origin once the backend is ready.
 */
import type { BackendConnection } from "../backend/supervisor";

/** A page loaded from file:// sends `Origin: null` (fetch) or `file://` (some WebSocket handshakes). */
export const FILE_ORIGINS = ["null", "file://"];

/** The origins of a renderer served by the Vite dev server at `devUrl`. */
export function devServerOrigins(devUrl: string): string[] {
  const url = new URL(devUrl);
  const origins = [url.origin];
  if (url.hostname === "localhost" || url.hostname === "127.0.0.1") {
    const other = url.hostname === "localhost" ? "127.0.0.1" : "localhost";
    origins.push(`${url.protocol}//${other}:${url.port}`);
  }
  return origins;
}

/**
 * Add `origins` to the backend's `allowed_origins`, keeping those already there.
 *
 * @throws when the backend refuses or does not answer within `timeoutMs`.
 */
export async function allowOrigins(
  backend: BackendConnection,
  origins: readonly string[],
  timeoutMs = 5000,
): Promise<string[]> {
  const headers = { "X-Backend-Token": backend.token, "Content-Type": "application/json" };
  const current = await request(`${backend.baseUrl}/settings`, { headers }, timeoutMs);
  const existing = Array.isArray(current.allowed_origins) ? (current.allowed_origins as string[]) : [];
  const wanted = [...new Set([...existing, ...origins])];
  if (wanted.length === existing.length) {
    return existing;
  }
  const body = JSON.stringify({ allowed_origins: wanted });
  const saved = await request(`${backend.baseUrl}/settings`, { method: "POST", headers, body }, timeoutMs);
  return saved.allowed_origins as string[];
}

async function request(url: string, init: RequestInit, timeoutMs: number): Promise<Record<string, unknown>> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const body = (await response.json()) as Record<string, unknown>;
  if (!response.ok) {
    throw new Error(`${init.method ?? "GET"} ${url} answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body;
}
