/**
 * The /events WebSocket, kept open: reconnects with backoff and resumes with
 * `?since=<last seq>`, so nothing is missed across a short drop. When the
 * backend can no longer replay, it sends `{"type": "resync"}`; then (and on the
 * first connection) the caller reloads its state from /jobs.
 */
import type { BackendClient } from "./client";
import type { EventMessage } from "./types";

export type SocketState = "connecting" | "live" | "reconnecting" | "closed";

export interface EventStreamHandlers {
  onMessage(message: EventMessage): void;
  onState(state: SocketState): void;
  /** The stream (re)opened; `resumed` is false when nothing could be replayed. */
  onOpen(resumed: boolean): void;
}

/** Browsers cannot set headers on a WebSocket: the token travels as a subprotocol. */
export const SUBPROTOCOL = "enttok.v1";
export const TOKEN_SUBPROTOCOL_PREFIX = "enttok.token.";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

export class EventStream {
  private socket: WebSocket | null = null;
  private lastSeq: number | null = null;
  private retryMs = FIRST_RETRY_MS;
  private timer: number | null = null;
  private closed = false;

  /**
   * @param client returns the client to use for each attempt (the backend's
   *   port changes when it restarts, so the caller may look it up again).
   */
  constructor(
    private readonly client: () => Promise<BackendClient>,
    private readonly handlers: EventStreamHandlers,
  ) {}

  start(): void {
    this.closed = false;
    void this.connect();
  }

  stop(): void {
    this.closed = true;
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
    this.socket?.close();
    this.socket = null;
    this.handlers.onState("closed");
  }

  private async connect(): Promise<void> {
    this.handlers.onState(this.lastSeq === null ? "connecting" : "reconnecting");
    let client: BackendClient;
    try {
      client = await this.client();
    } catch {
      this.retry();
      return;
    }
    if (this.closed) {
      return;
    }
    const resuming = this.lastSeq !== null;
    const socket = new WebSocket(client.eventsUrl(this.lastSeq), [
      SUBPROTOCOL,
      TOKEN_SUBPROTOCOL_PREFIX + client.connection.token,
    ]);
    this.socket = socket;
    socket.onopen = () => {
      this.retryMs = FIRST_RETRY_MS;
      this.handlers.onState("live");
      this.handlers.onOpen(resuming);
    };
    socket.onmessage = (event) => this.receive(event.data);
    socket.onclose = () => {
      if (this.socket === socket) {
        this.socket = null;
        this.retry();
      }
    };
  }

  private receive(data: unknown): void {
    if (typeof data !== "string") {
      return;
    }
    let message: EventMessage;
    try {
      message = JSON.parse(data) as EventMessage;
    } catch {
      return;
    }
    if (typeof message.seq === "number") {
      this.lastSeq = message.seq;
    }
    this.handlers.onMessage(message);
  }

  private retry(): void {
    if (this.closed) {
      return;
    }
    this.handlers.onState("reconnecting");
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.timer = window.setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, wait);
  }
}
