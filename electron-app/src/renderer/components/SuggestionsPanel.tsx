/**
 * Today's suggested lines for the daily note (GET /suggestions): the checked ones are
 * appended to the note (POST /notes/daily/{date}/append) or copied.
 */
import { useEffect, useState } from "react";

import { ApiError, type BackendClient } from "../api/client";
import type { AppendResult, NoteState, Suggestions } from "../api/types";
import { errorText } from "../format";
import { Panel } from "./Panel";

interface SuggestionsPanelProps {
  client: BackendClient;
  /** Changes when a suggest.generate job succeeded. */
  refreshKey: number;
}

interface Notice {
  text: string;
  error: boolean;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** What the note looked like when read: sent back so the backend refuses a changed note. */
function baseOf(note: NoteState): { sha256: string } | null {
  return note.exists && note.sha256 ? { sha256: note.sha256 } : null;
}

function appendedText(result: AppendResult): string {
  const skipped = result.skipped > 0 ? ` (${plural(result.skipped, "line")} already there)` : "";
  if (result.appended === 0) {
    return `Nothing new: the checked lines are already in ${result.path}.`;
  }
  const verb = result.created ? "Created" : "Added to";
  const reindex = result.index_job_id ? ` Re-indexing as ${result.index_job_id}.` : "";
  return `${verb} ${result.path}: ${plural(result.appended, "line")}${skipped}.${reindex}`;
}

export function SuggestionsPanel({ client, refreshKey }: SuggestionsPanelProps) {
  const [data, setData] = useState<Suggestions | null>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [unchecked, setUnchecked] = useState<ReadonlySet<string>>(new Set());
  const [notice, setNotice] = useState<Notice | null>(null);
  const [note, setNote] = useState<NoteState | null>(null);
  const [noteProblem, setNoteProblem] = useState<string | null>(null);
  const [changed, setChanged] = useState(false);
  const [busy, setBusy] = useState(false);
  // Bumped by "Reload": reads the suggestions and the note again.
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    let alive = true;
    client
      .get<Suggestions>("/suggestions")
      .then(async (found) => {
        if (!alive) {
          return;
        }
        setData(found);
        setMissing(null);
        setError(null);
        setUnchecked(new Set());
        try {
          const state = await client.get<NoteState>(`/notes/daily/${found.note_date}`);
          if (alive) {
            setNote(state);
            setNoteProblem(null);
          }
        } catch (e) {
          if (alive) {
            setNote(null);
            setNoteProblem(`Cannot write to the daily note: ${errorText(e)}`);
          }
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
  }, [client, refreshKey, reloads]);

  const copy = async (text: string, what: string) => {
    try {
      await navigator.clipboard.writeText(text);
      setNotice({ text: `Copied ${what}.`, error: false });
    } catch (e) {
      setNotice({ text: `Could not copy: ${errorText(e)}`, error: true });
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

  const insert = async () => {
    if (!data || !note) {
      return;
    }
    setBusy(true);
    try {
      const result = await client.post<AppendResult>(`/notes/daily/${data.note_date}/append`, {
        lines: checked.map((s) => s.text),
        base: baseOf(note),
      });
      setNote(result);
      setChanged(false);
      setNotice({ text: appendedText(result), error: false });
    } catch (e) {
      if (e instanceof ApiError && e.code === "note_changed") {
        setChanged(true);
        setNotice(null);
      } else {
        setNotice({ text: `Could not insert: ${errorText(e)}`, error: true });
      }
    } finally {
      setBusy(false);
    }
  };

  const reload = () => {
    setChanged(false);
    setNotice(null);
    setReloads((n) => n + 1);
  };

  const copyChecked = () => {
    const target = note ? ` — paste them into ${note.path}` : "";
    void copy(checked.map((s) => s.text).join("\n"), `${plural(checked.length, "line")}${target}`);
  };

  return (
    <Panel
      title="Today's suggestions"
      className="grow"
      actions={
        data && (
          <div className="button-row">
            <button
              type="button"
              disabled={checked.length === 0 || note === null || busy || changed}
              title={note ? `Append to ${note.path}` : (noteProblem ?? undefined)}
              onClick={() => void insert()}
            >
              Insert checked
            </button>
            <button type="button" className="secondary" disabled={checked.length === 0} onClick={copyChecked}>
              Copy checked
            </button>
          </div>
        )
      }
    >
      {missing && <p className="muted">{missing}</p>}
      {error && <p className="error">{error}</p>}
      {changed && (
        <p className="error" role="alert" data-testid="note-changed">
          The note changed since it was read; reload to see the current state, then insert again.{" "}
          <button type="button" className="small" onClick={reload}>
            Reload
          </button>
        </p>
      )}
      {notice && (
        <p className={notice.error ? "error" : "notice"} role="status">
          {notice.text}
        </p>
      )}
      {noteProblem && <p className="muted">{noteProblem}</p>}
      {data && (
        <>
          <p className="muted" data-testid="note-target">
            For {data.note_date}
            {note ? ` → ${note.path}${note.exists ? "" : " (created on insert)"}` : ""}
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
