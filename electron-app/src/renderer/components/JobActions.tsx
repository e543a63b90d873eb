/** Buttons that queue the backend's main jobs (POST /jobs). */
import { useState } from "react";

import type { BackendClient } from "../api/client";
import type { Job, SubmittedJob } from "../api/types";
import { errorText, jobLabel } from "../format";

const ACTIONS: { type: string; label: string }[] = [
  { type: "vault.scan", label: "Scan vault" },
  { type: "index.rebuild", label: "Rebuild index" },
  { type: "connector.github.sync", label: "Sync GitHub" },
  { type: "suggest.generate", label: "Generate suggestions" },
];

interface JobActionsProps {
  client: BackendClient;
  onSubmitted(job: Job): void;
}

export function JobActions({ client, onSubmitted }: JobActionsProps) {
  const [busy, setBusy] = useState<string | null>(null);
  const [notice, setNotice] = useState<{ text: string; error: boolean } | null>(null);

  const submit = async (type: string) => {
    setBusy(type);
    try {
      const job = await client.post<SubmittedJob>("/jobs", { type, payload: {} });
      onSubmitted(job);
      setNotice({
        text: job.coalesced
          ? `${jobLabel(type)} is already queued (${job.job_id}).`
          : `${jobLabel(type)} queued as ${job.job_id}.`,
        error: false,
      });
    } catch (e) {
      setNotice({ text: `${jobLabel(type)}: ${errorText(e)}`, error: true });
    } finally {
      setBusy(null);
    }
  };

  return (
    <div className="job-actions">
      <div className="button-row">
        {ACTIONS.map((action) => (
          <button key={action.type} type="button" disabled={busy !== null} onClick={() => void submit(action.type)}>
            {action.label}
          </button>
        ))}
      </div>
      {notice && (
        <p className={notice.error ? "error" : "notice"} role="status">
          {notice.text}
        </p>
      )}
    </div>
  );
}
