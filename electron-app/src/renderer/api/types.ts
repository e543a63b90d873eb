/** The JSON shapes of the backend's API (see the repository's README.md). */

export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "canceled";

export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "canceled"]);

export interface JobError {
  code: string;
  message: string;
}

export interface Job {
  job_id: string;
  type: string;
  status: JobStatus;
  created_at: string;
  updated_at: string;
  progress: number;
  message: string | null;
  payload: Record<string, unknown>;
  result: unknown;
  error: JobError | null;
  attempts: number;
}

export interface SubmittedJob extends Job {
  coalesced: boolean;
}

export interface JobPage {
  jobs: Job[];
  next_cursor: string | null;
}

export interface Health {
  status: string;
  version: string;
  uptime_sec: number;
}

export interface BackendStatus {
  uptime_sec: number;
  queue_depth: number;
  workers: { active: number; idle: number };
  scheduler: { running: boolean; jobs: number };
  /** Damaged: SQLite found index.db damaged; the next start repairs it. */
  database: { damaged: boolean; error: string | null };
}

export interface IndexStatus {
  notes: number;
  chunks: number;
  vectors: number;
  stale_notes: number;
  last_update: string | null;
  model_loaded: boolean;
}

export interface SearchHit {
  path: string;
  title: string;
  heading: string | null;
  snippet: string;
  /** [start, end) offsets into `snippet`, in Unicode code points. */
  highlights: [number, number][];
  score: number;
  date: string | null;
  tags: string[];
  chunk_id: number;
}

export interface SearchResult {
  query: string;
  mode: string;
  degraded: boolean;
  hits: SearchHit[];
}

export interface Suggestion {
  id: string;
  kind: string;
  text: string;
  sources: Record<string, unknown>[];
  score: number;
  reason: string;
}

export interface Suggestions {
  job_id: string;
  created_at: string;
  note_date: string;
  note_path: string | null;
  suggestions: Suggestion[];
  summary: string | null;
  degraded: boolean;
}

/** GET /settings: secrets appear only as `<name>_set`. */
export interface PublicSettings {
  vault_path: string | null;
  github: {
    token_set: boolean;
    api_base_url: string;
    username: string | null;
    repos: string[];
  };
  allowed_origins: string[];
  [key: string]: unknown;
}

/** Messages on the /events WebSocket. */
export type EventMessage =
  | { type: "job.status"; seq: number; job_id: string; job_type: string; status: JobStatus; error?: JobError }
  | { type: "job.progress"; seq: number; job_id: string; progress: number; message: string | null }
  | { type: "log"; seq: number; level: string; message: string; job_id?: string }
  | { type: "resync"; seq: number };

/** GET /notes/daily/{date}: where a day's note is and what it holds now. */
export interface NoteState {
  date: string;
  /** Vault-relative (NFC). */
  path: string;
  exists: boolean;
  sha256: string | null;
  /** Nanoseconds as a decimal string (past JavaScript's exact integers). */
  mtime_ns: string | null;
  size: number | null;
}

/** POST /notes/daily/{date}/append: the note's new state and what was done. */
export interface AppendResult extends NoteState {
  created: boolean;
  appended: number;
  skipped: number;
  index_job_id: string | null;
}

/** GET /connectors' cursor_summary: git, calendar and GitHub fill some of these. */
export interface CursorSummary {
  repositories?: number;
  branches?: number;
  newest_sync_at?: string | null;
  window?: { start: string; end: string } | null;
  files?: number | null;
  events?: number | null;
  since?: string | null;
  newest?: string | null;
  title_misses?: number;
  chars?: number;
}

/** One entry of GET /connectors. */
export interface ConnectorState {
  id: string;
  name: string;
  job_type: string;
  configured: boolean;
  enabled: boolean;
  interval_minutes: number | null;
  last_sync_at: string | null;
  /** The cursor in a few fields; keys depend on the connector (null before its first sync). */
  cursor_summary: CursorSummary | null;
  last_job: { job_id: string; status: JobStatus; finished_at: string | null } | null;
  last_error: JobError | null;
}
