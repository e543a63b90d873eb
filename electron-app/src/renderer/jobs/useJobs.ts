/** The jobs list, live: loads /jobs, then follows /events (reloading on resync). */
import { useCallback, useEffect, useReducer, useRef, useState } from "react";

import type { BackendClient } from "../api/client";
import { EventStream, type SocketState } from "../api/events";
import type { EventMessage, Job, JobPage } from "../api/types";
import { MAX_SHOWN_JOBS, initialJobsState, isUnknownJob, jobsReducer } from "./jobsState";

export interface JobsView {
  jobs: Job[];
  socket: SocketState;
  loadError: string | null;
  /** Show a job the app just submitted, before its events arrive. */
  add(job: Job): void;
}

/**
 * @param client returns the current client (looked up again after a drop).
 * @param onFinished called for each job that reaches a final status.
 */
export function useJobs(client: () => Promise<BackendClient>, onFinished: (message: EventMessage) => void): JobsView {
  const [state, dispatch] = useReducer(jobsReducer, initialJobsState);
  const [socket, setSocket] = useState<SocketState>("connecting");
  const [loadError, setLoadError] = useState<string | null>(null);
  const stateRef = useRef(state);
  stateRef.current = state;
  const finishedRef = useRef(onFinished);
  finishedRef.current = onFinished;

  useEffect(() => {
    // Events that arrive while /jobs loads are applied again on top of its answer.
    let buffered: EventMessage[] | null = null;
    const reload = async (): Promise<void> => {
      buffered = [];
      try {
        const page = await (await client()).get<JobPage>("/jobs", { limit: MAX_SHOWN_JOBS });
        dispatch({ type: "loaded", jobs: page.jobs });
        buffered.forEach((message) => dispatch({ type: "event", message }));
        setLoadError(null);
      } catch (error) {
        setLoadError(String(error instanceof Error ? error.message : error));
      } finally {
        buffered = null;
      }
    };
    const fetchJob = async (jobId: string): Promise<void> => {
      try {
        dispatch({ type: "upsert", job: await (await client()).get<Job>(`/jobs/${encodeURIComponent(jobId)}`) });
      } catch {
        // It may have been pruned already; the next reload settles it.
      }
    };
    const stream = new EventStream(client, {
      onState: setSocket,
      onOpen: (resumed) => {
        if (!resumed) {
          void reload();
        }
      },
      onMessage: (message) => {
        if (message.type === "resync") {
          void reload();
          return;
        }
        buffered?.push(message);
        const unknown = isUnknownJob(stateRef.current, message);
        dispatch({ type: "event", message });
        if (unknown !== null && buffered === null) {
          void fetchJob(unknown);
        }
        if (message.type === "job.status" && ["succeeded", "failed", "canceled"].includes(message.status)) {
          finishedRef.current(message);
        }
      },
    });
    stream.start();
    return () => stream.stop();
  }, [client]);

  const add = useCallback((job: Job) => dispatch({ type: "upsert", job }), []);
  return { jobs: state.jobs, socket, loadError, add };
}
