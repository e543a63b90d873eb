/**
 * The jobs list as a pure state machine: a page loaded from /jobs, then kept
 * current by /events messages. Events only move a job forward (a finished job
 * never goes back to running, progress never shrinks while running), so an old
 * event applied over fresher data does no harm.
 */
import { type EventMessage, type Job, TERMINAL_STATUSES } from "../api/types";

export const MAX_SHOWN_JOBS = 30;

export interface JobsState {
  /** Newest first. */
  jobs: Job[];
}

export type JobsAction =
  | { type: "loaded"; jobs: Job[] }
  | { type: "upsert"; job: Job }
  | { type: "event"; message: EventMessage };

export const initialJobsState: JobsState = { jobs: [] };

export function jobsReducer(state: JobsState, action: JobsAction): JobsState {
  switch (action.type) {
    case "loaded":
      return { jobs: action.jobs.slice(0, MAX_SHOWN_JOBS) };
    case "upsert":
      return { jobs: upsert(state.jobs, action.job) };
    case "event":
      return { jobs: applyEvent(state.jobs, action.message) };
  }
}

/** Whether `message` concerns a job the list does not know yet. */
export function isUnknownJob(state: JobsState, message: EventMessage): string | null {
  if (message.type !== "job.status" && message.type !== "job.progress") {
    return null;
  }
  return state.jobs.some((job) => job.job_id === message.job_id) ? null : message.job_id;
}

function upsert(jobs: Job[], job: Job): Job[] {
  const index = jobs.findIndex((j) => j.job_id === job.job_id);
  if (index === -1) {
    return [job, ...jobs].sort(newestFirst).slice(0, MAX_SHOWN_JOBS);
  }
  const copy = jobs.slice();
  copy[index] = fresher(copy[index], job);
  return copy;
}

/** Of two snapshots of one job, the one further along (they may arrive out of order). */
function fresher(current: Job, incoming: Job): Job {
  const rank = (job: Job): number => (TERMINAL_STATUSES.has(job.status) ? 2 : job.status === "running" ? 1 : 0);
  if (rank(incoming) !== rank(current)) {
    return rank(incoming) > rank(current) ? incoming : current;
  }
  return incoming.progress >= current.progress ? incoming : current;
}

function applyEvent(jobs: Job[], message: EventMessage): Job[] {
  if (message.type !== "job.status" && message.type !== "job.progress") {
    return jobs;
  }
  return jobs.map((job) => (job.job_id === message.job_id ? advance(job, message) : job));
}

function advance(job: Job, message: EventMessage): Job {
  const finished = TERMINAL_STATUSES.has(job.status);
  if (message.type === "job.status") {
    if (finished) {
      return job;
    }
    const done = message.status === "succeeded";
    return {
      ...job,
      status: message.status,
      error: message.error ?? job.error,
      progress: done ? 1 : job.progress,
    };
  }
  if (message.type === "job.progress" && !finished && message.progress >= job.progress) {
    return { ...job, status: "running", progress: message.progress, message: message.message ?? job.message };
  }
  return job;
}

function newestFirst(a: Job, b: Job): number {
  if (a.created_at !== b.created_at) {
    return a.created_at < b.created_at ? 1 : -1;
  }
  return a.job_id < b.job_id ? 1 : -1;
}
