/** The dashboard: backend state and jobs | search | suggestions and settings. */
import { useCallback, useState } from "react";

import type { EventMessage } from "./api/types";
import { ConnectorsPanel } from "./components/ConnectorsPanel";
import { JobActions } from "./components/JobActions";
import { JobsList } from "./components/JobsList";
import { Panel } from "./components/Panel";
import { SearchPanel } from "./components/SearchPanel";
import { SettingsForm } from "./components/SettingsForm";
import { StatusPanel } from "./components/StatusPanel";
import { SuggestionsPanel } from "./components/SuggestionsPanel";
import { useJobs } from "./jobs/useJobs";
import { useBackend } from "./useBackend";

export function App() {
  const backend = useBackend();
  // Counts finished jobs by type, so panels can re-read what those jobs changed.
  const [finished, setFinished] = useState<Record<string, number>>({});
  const onFinished = useCallback((message: EventMessage) => {
    if (message.type === "job.status") {
      setFinished((counts) => ({ ...counts, [message.job_type]: (counts[message.job_type] ?? 0) + 1 }));
    }
  }, []);
  const jobs = useJobs(backend.lookup, onFinished);
  const anyFinished = Object.values(finished).reduce((a, b) => a + b, 0);
  const connectorsFinished = Object.entries(finished)
    .filter(([type]) => type.startsWith("connector."))
    .reduce((sum, [, n]) => sum + n, 0);

  if (backend.client === null) {
    return (
      <div className="splash">
        <h1>enttok-e</h1>
        <p className={backend.error ? "error" : "muted"}>{backend.error ?? "Connecting to the backend…"}</p>
      </div>
    );
  }
  const client = backend.client;
  return (
    <div className="app">
      <header className="topbar">
        <h1>enttok-e</h1>
        <span className="muted">work journal</span>
      </header>
      <main className="columns">
        <div className="column">
          <StatusPanel client={client} socket={jobs.socket} refreshKey={anyFinished} />
          <ConnectorsPanel client={client} refreshKey={connectorsFinished} onSubmitted={jobs.add} />
          <Panel title="Jobs" className="grow">
            <JobActions client={client} onSubmitted={jobs.add} />
            <JobsList client={client} jobs={jobs.jobs} loadError={jobs.loadError} />
          </Panel>
        </div>
        <div className="column">
          <SearchPanel client={client} />
        </div>
        <div className="column">
          <SuggestionsPanel client={client} refreshKey={finished["suggest.generate"] ?? 0} />
          <SettingsForm client={client} />
        </div>
      </main>
    </div>
  );
}
