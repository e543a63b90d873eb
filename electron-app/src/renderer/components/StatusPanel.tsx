/** The backend's state: health, version, queue depth, workers and the index. */
import { useEffect, useState } from "react";

import type { BackendClient } from "../api/client";
import type { SocketState } from "../api/events";
import type { BackendStatus, Health, IndexStatus } from "../api/types";
import { duration, errorText } from "../format";
import { Panel } from "./Panel";

const POLL_MS = 5000;

interface Snapshot {
  health: Health;
  status: BackendStatus;
  index: IndexStatus | null;
}

interface StatusPanelProps {
  client: BackendClient;
  socket: SocketState;
  /** Changes when something worth re-reading happened (e.g. a job finished). */
  refreshKey: number;
}

export function StatusPanel({ client, socket, refreshKey }: StatusPanelProps) {
  const [snapshot, setSnapshot] = useState<Snapshot | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    const poll = async () => {
      try {
        const [health, status, index] = await Promise.all([
          client.get<Health>("/health"),
          client.get<BackendStatus>("/status"),
          client.get<IndexStatus>("/index/status").catch(() => null),
        ]);
        if (alive) {
          setSnapshot({ health, status, index });
          setError(null);
        }
      } catch (e) {
        if (alive) {
          setError(errorText(e));
        }
      }
    };
    void poll();
    const timer = window.setInterval(poll, POLL_MS);
    return () => {
      alive = false;
      window.clearInterval(timer);
    };
  }, [client, refreshKey]);

  const healthy = snapshot !== null && error === null && snapshot.health.status === "ok";
  return (
    <Panel title="Backend">
      <dl className="facts" data-testid="backend-state">
        <div>
          <dt>Health</dt>
          <dd>
            <span className={`pill ${healthy ? "ok" : "bad"}`} data-testid="health">
              {healthy ? "ok" : error ? "unreachable" : "…"}
            </span>
          </dd>
        </div>
        <div>
          <dt>Version</dt>
          <dd data-testid="version">{snapshot?.health.version ?? "–"}</dd>
        </div>
        <div>
          <dt>Uptime</dt>
          <dd>{snapshot ? duration(snapshot.health.uptime_sec) : "–"}</dd>
        </div>
        <div>
          <dt>Live events</dt>
          <dd>
            <span className={`pill ${socket === "live" ? "ok" : "warn"}`} data-testid="socket">
              {socket}
            </span>
          </dd>
        </div>
        <div>
          <dt>Queue</dt>
          <dd data-testid="queue-depth">{snapshot?.status.queue_depth ?? "–"}</dd>
        </div>
        <div>
          <dt>Workers</dt>
          <dd>
            {snapshot ? `${snapshot.status.workers.active} busy, ${snapshot.status.workers.idle} idle` : "–"}
          </dd>
        </div>
        <div>
          <dt>Notes</dt>
          <dd>{snapshot?.index ? `${snapshot.index.notes} (${snapshot.index.chunks} chunks)` : "–"}</dd>
        </div>
        <div>
          <dt>Vectors</dt>
          <dd>
            {snapshot?.index
              ? `${snapshot.index.vectors}${snapshot.index.model_loaded ? "" : " (model not loaded)"}`
              : "–"}
          </dd>
        </div>
      </dl>
      {snapshot?.status.database?.damaged && (
        <p className="error" data-testid="database-damaged">
          The index database is damaged. Restart enttok to repair it: the index is rebuilt
          from your vault, and your jobs and embeddings are kept where readable.
        </p>
      )}
      {error && <p className="error">{error}</p>}
    </Panel>
  );
}
