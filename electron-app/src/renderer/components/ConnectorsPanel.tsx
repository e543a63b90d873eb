/** Every connector (GET /connectors): configured or not, last sync, last job and error. */
import { useEffect, useState } from "react";

import { ApiError, type BackendClient } from "../api/client";
import type { ConnectorState, CursorSummary, Job, SubmittedJob } from "../api/types";
import { errorText, when } from "../format";
import { Panel } from "./Panel";

const POLL_MS = 10_000;

interface ConnectorsPanelProps {
  client: BackendClient;
  /** Changes when a connector's sync job finished. */
  refreshKey: number;
  onSubmitted(job: Job): void;
}

function stateOf(c: ConnectorState): { label: string; tone: string } {
  if (!c.configured) {
    return { label: "not configured", tone: "warn" };
  }
  if (!c.enabled) {
    return { label: "off", tone: "warn" };
  }
  if (c.last_error) {
    return { label: "failing", tone: "bad" };
  }
  return { label: c.last_sync_at ? "ok" : "never synced", tone: c.last_sync_at ? "ok" : "warn" };
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** What the cursor covers, in a few words ("" when there is nothing to say). */
function coverage(s: CursorSummary | null): string {
  if (!s) {
    return "";
  }
  const parts: string[] = [];
  if (s.window) {
    parts.push(`${s.window.start.slice(0, 10)} to ${s.window.end.slice(0, 10)}`);
  }
  if (typeof s.events === "number") {
    parts.push(plural(s.events, "event", "events"));
  }
  if (typeof s.repositories === "number") {
    parts.push(plural(s.repositories, "repository", "repositories"));
  }
  if (typeof s.branches === "number") {
    parts.push(plural(s.branches, "branch", "branches"));
  }
  return parts.join(", ");
}

export function ConnectorsPanel({ client, refreshKey, onSubmitted }: ConnectorsPanelProps) {
  const [connectors, setConnectors] = useState<ConnectorState[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<{ text: string; error: boolean } | null>(null);

  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const load = () => {
      client
        .get<{ connectors: ConnectorState[] }>("/connectors")
        .then((found) => {
          if (alive) {
            setConnectors(found.connectors);
            setError(null);
            // Settings saved elsewhere change "configured": read again now and then.
            timer = window.setTimeout(load, POLL_MS);
          }
        })
        .catch((e: unknown) => {
          if (alive) {
            setError(
              e instanceof ApiError && e.status === 404
                ? "This backend lists no connectors."
                : `Could not read the connectors: ${errorText(e)}`,
            );
            if (!(e instanceof ApiError && e.status === 404)) {
              timer = window.setTimeout(load, POLL_MS);
            }
          }
        });
    };
    load();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [client, refreshKey]);

  const sync = async (c: ConnectorState) => {
    try {
      const job = await client.post<SubmittedJob>("/jobs", { type: c.job_type, payload: {} });
      onSubmitted(job);
      setNotice({ text: `${c.name} sync ${job.coalesced ? "already queued" : "queued"} (${job.job_id}).`, error: false });
    } catch (e) {
      setNotice({ text: `${c.name}: ${errorText(e)}`, error: true });
    }
  };

  return (
    <Panel title="Connectors">
      {error && <p className="error">{error}</p>}
      {notice && (
        <p className={notice.error ? "error" : "notice"} role="status">
          {notice.text}
        </p>
      )}
      {connectors && connectors.length === 0 && <p className="muted">No connectors installed.</p>}
      <ul className="connectors" data-testid="connectors">
        {(connectors ?? []).map((c) => {
          const state = stateOf(c);
          const covers = coverage(c.cursor_summary);
          return (
            <li key={c.id} className="connector" data-connector={c.id} data-state={state.label}>
              <div className="connector-head">
                <strong>{c.name}</strong>
                <span className={`pill ${state.tone}`} data-testid="connector-state">
                  {state.label}
                </span>
                <button
                  type="button"
                  className="small"
                  disabled={!c.configured}
                  aria-label={`Sync ${c.name} now`}
                  onClick={() => void sync(c)}
                >
                  Sync now
                </button>
              </div>
              <div className="connector-meta muted">
                <span data-testid="connector-last-sync">
                  Last sync: {c.last_sync_at ? when(c.last_sync_at) : "never"}
                </span>
                {" · "}
                <span>{c.interval_minutes ? `every ${c.interval_minutes} min` : "manual only"}</span>
                {covers && (
                  <>
                    {" · "}
                    <span data-testid="connector-coverage">{covers}</span>
                  </>
                )}
                {c.last_job && (
                  <>
                    {" · "}
                    <span data-testid="connector-last-job">
                      last job {c.last_job.job_id}: {c.last_job.status}
                    </span>
                  </>
                )}
              </div>
              {c.last_error && (
                <p className="error connector-error" data-testid="connector-error">
                  <code>{c.last_error.code}</code> {c.last_error.message}
                </p>
              )}
            </li>
          );
        })}
      </ul>
    </Panel>
  );
}
