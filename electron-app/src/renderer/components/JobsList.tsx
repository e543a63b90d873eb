/** Recent jobs with live status and progress. */
import { useState } from "react";

import type { BackendClient } from "../api/client";
import { type Job, TERMINAL_STATUSES } from "../api/types";
import { errorText, jobLabel, percent, when } from "../format";

interface JobsListProps {
  client: BackendClient;
  jobs: Job[];
  loadError: string | null;
}

export function JobsList({ client, jobs, loadError }: JobsListProps) {
  const [cancelError, setCancelError] = useState<string | null>(null);

  const cancel = async (job: Job) => {
    try {
      await client.post(`/jobs/${encodeURIComponent(job.job_id)}/cancel`, {});
      setCancelError(null);
    } catch (e) {
      setCancelError(`${job.job_id}: ${errorText(e)}`);
    }
  };

  return (
    <div className="jobs">
      {loadError && <p className="error">Could not load jobs: {loadError}</p>}
      {cancelError && <p className="error">{cancelError}</p>}
      {jobs.length === 0 && !loadError && <p className="muted">No jobs yet.</p>}
      <ul className="job-list" data-testid="jobs">
        {jobs.map((job) => (
          <JobRow key={job.job_id} job={job} onCancel={() => void cancel(job)} />
        ))}
      </ul>
    </div>
  );
}

function JobRow({ job, onCancel }: { job: Job; onCancel(): void }) {
  const finished = TERMINAL_STATUSES.has(job.status);
  const progress = job.status === "succeeded" ? 1 : job.progress;
  return (
    <li className="job" data-job-id={job.job_id} data-job-type={job.type} data-status={job.status}>
      <div className="job-line">
        <strong>{jobLabel(job.type)}</strong>
        <span className={`pill status-${job.status}`} data-testid="job-status">
          {job.status}
        </span>
        <span className="job-percent" data-testid="job-percent">
          {percent(progress)}
        </span>
        <span className="muted job-time">{when(job.created_at)}</span>
        {!finished && (
          <button type="button" className="small" onClick={onCancel} aria-label={`Cancel ${job.job_id}`}>
            Cancel
          </button>
        )}
      </div>
      <progress max={1} value={progress} aria-label={`${jobLabel(job.type)} progress`} />
      <div className="job-detail muted">
        <span>{job.job_id}</span>
        {job.message && !finished && <span> · {job.message}</span>}
      </div>
      {job.error && (
        <p className="error">
          {job.error.code}: {job.error.message}
        </p>
      )}
    </li>
  );
}
