/** One authenticated GET /health, bounded in time. */

export interface Health {
  status: string;
  version: string;
  uptime_sec: number;
}

/**
 * @returns the backend's health document.
 * @throws when the request fails, times out or answers other than 200.
 */
export async function fetchHealth(baseUrl: string, token: string, timeoutMs: number): Promise<Health> {
  const response = await fetch(`${baseUrl}/health`, {
    headers: { "X-Backend-Token": token },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status !== 200) {
    throw new Error(`GET /health answered ${response.status}`);
  }
  return (await response.json()) as Health;
}
