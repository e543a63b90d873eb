/** Today's suggested lines for the daily note (GET /suggestions), ready to copy. */
import { useEffect, useState } from "react";

import { ApiError, type BackendClient } from "../api/client";
import type { Suggestions } from "../api/types";
import { errorText } from "../format";
import { Panel } from "./Panel";

interface SuggestionsPanelProps {
  client: BackendClient;
  /** Changes when a suggest.generate job succeeded. */
  refreshKey: number;
}

export function SuggestionsPanel({ client, refreshKey }: SuggestionsPanelProps) {
  const [data, setData] = useState<Suggestions | null>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unchecked, setUnchecked] = useState<ReadonlySet<string>>(new Set());
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    client
      .get<Suggestions>("/suggestions")
      .then((found) => {
        if (alive) {
          setData(found);
          setMissing(null);
          setError(null);
          setUnchecked(new Set());
        }
      })
      .catch((e: unknown) => {
        if (!alive) {
          return;
        }
        if (e instanceof ApiError && e.code === "no_suggestions") {
          setMissing("No suggestions for today yet: use “Generate suggestions”.");
        } else {
          setError(errorText(e));
        }
      });
    return () => {
      alive = false;
    };
  }, [client, refreshKey]);

  const copy = async (text: string, what: string) => {
    try {
      await navigator.clipboard.writeText(text);
      setNotice(`Copied ${what}.`);
    } catch (e) {
      setNotice(`Could not copy: ${errorText(e)}`);
    }
  };

  const toggle = (id: string) => {
    const next = new Set(unchecked);
    if (!next.delete(id)) {
      next.add(id);
    }
    setUnchecked(next);
  };

  const checked = data?.suggestions.filter((s) => !unchecked.has(s.id)) ?? [];
  const insert = () => {
    const target = data?.note_path ? ` — paste them into ${data.note_path}` : "";
    void copy(checked.map((s) => s.text).join("\n"), `${checked.length} line${checked.length === 1 ? "" : "s"}${target}`);
  };

  return (
    <Panel
      title="Today's suggestions"
      className="grow"
      actions={
        data && (
          <button type="button" disabled={checked.length === 0} onClick={insert}>
            Insert checked
          </button>
        )
      }
    >
      {missing && <p className="muted">{missing}</p>}
      {error && <p className="error">{error}</p>}
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      {data && (
        <>
          <p className="muted">
            For {data.note_date}
            {data.note_path ? ` (${data.note_path})` : " (no daily note yet)"}
            {data.degraded && " · without related-note vectors"}
          </p>
          {data.summary && <p className="summary">{data.summary}</p>}
          {data.suggestions.length === 0 && <p className="muted">Nothing to suggest today.</p>}
          <ul className="suggestions" data-testid="suggestions">
            {data.suggestions.map((s) => (
              <li key={s.id} className="suggestion">
                <label>
                  <input type="checkbox" checked={!unchecked.has(s.id)} onChange={() => toggle(s.id)} />
                  <code className="suggestion-text">{s.text}</code>
                </label>
                <div className="suggestion-meta muted">
                  <span className="tag">{s.kind}</span> {s.reason}
                  <button type="button" className="small" onClick={() => void copy(s.text, "the line")}>
                    Copy
                  </button>
                </div>
              </li>
            ))}
          </ul>
        </>
      )}
    </Panel>
  );
}
