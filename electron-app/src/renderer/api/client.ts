/** A small JSON client for the backend's REST API. */
import type { BackendConnection } from "./connection";

const REQUEST_TIMEOUT_MS = 15_000;

/** An error answer: `{"error": {"code", "message", "details"}}`, or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The offending field, when the backend names one. */
  get field(): string | null {
    const details = this.details as { field?: unknown } | null;
    return typeof details?.field === "string" ? details.field : null;
  }
}

export class BackendClient {
  constructor(readonly connection: BackendConnection) {}

  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== "") {
        params.set(name, String(value));
      }
    }
    const suffix = params.size > 0 ? `?${params}` : "";
    return this.request<T>("GET", path + suffix);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  /** The /events WebSocket URL, resuming after `since` when given. */
  eventsUrl(since: number | null): string {
    const url = new URL("/events", this.connection.baseUrl);
    url.protocol = "ws:";
    if (since !== null) {
      url.searchParams.set("since", String(since));
    }
    return url.href;
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "X-Backend-Token": this.connection.token };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    let response: Response;
    try {
      response = await fetch(this.connection.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ApiError(0, "unreachable", `the backend did not answer (${String(error)})`);
    }
    const parsed: unknown = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
      throw new ApiError(
        response.status,
        error?.code ?? "http_error",
        error?.message ?? `${method} ${path} answered ${response.status}`,
        error?.details ?? null,
      );
    }
    return parsed as T;
  }
}
