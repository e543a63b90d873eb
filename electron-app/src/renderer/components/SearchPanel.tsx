/** Search the vault (GET /search) and show hits with their highlighted snippets. */
import { type FormEvent, useState } from "react";

import type { BackendClient } from "../api/client";
import type { SearchResult } from "../api/types";
import { errorText } from "../format";
import { Highlighted } from "./Highlighted";
import { Panel } from "./Panel";

const MODES = ["hybrid", "fts", "vector"] as const;

export function SearchPanel({ client }: { client: BackendClient }) {
  const [query, setQuery] = useState("");
  const [mode, setMode] = useState<(typeof MODES)[number]>("hybrid");
  const [result, setResult] = useState<SearchResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [searching, setSearching] = useState(false);

  const search = async (event: FormEvent) => {
    event.preventDefault();
    const q = query.trim();
    if (!q) {
      return;
    }
    setSearching(true);
    try {
      setResult(await client.get<SearchResult>("/search", { q, mode, k: 20 }));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setSearching(false);
    }
  };

  return (
    <Panel title="Search" className="search-panel">
      <form className="search-form" onSubmit={(e) => void search(e)} role="search">
        <input
          type="search"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          placeholder="Search notes (e.g. 회의, FTS5)"
          aria-label="Search query"
        />
        <select value={mode} onChange={(e) => setMode(e.target.value as (typeof MODES)[number])} aria-label="Search mode">
          {MODES.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
        <button type="submit" disabled={searching}>
          Search
        </button>
      </form>
      {error && <p className="error">{error}</p>}
      {result && (
        <div data-testid="search-results" data-query={result.query}>
          <p className="muted">
            {result.hits.length} {result.hits.length === 1 ? "hit" : "hits"} for “{result.query}”
            {result.degraded && " · full text only (the embedding model is still loading)"}
          </p>
          <ol className="hits">
            {result.hits.map((hit) => (
              <li key={hit.chunk_id} className="hit" data-path={hit.path}>
                <div className="hit-title">{hit.title}</div>
                <div className="hit-path muted">
                  {hit.path}
                  {hit.heading && hit.heading !== hit.title && ` › ${hit.heading}`}
                  {hit.date && ` · ${hit.date}`}
                </div>
                <p className="snippet">
                  <Highlighted text={hit.snippet} ranges={hit.highlights} />
                </p>
                {hit.tags.length > 0 && (
                  <div className="tags">
                    {hit.tags.map((tag) => (
                      <span key={tag} className="tag">
                        #{tag}
                      </span>
                    ))}
                  </div>
                )}
              </li>
            ))}
          </ol>
        </div>
      )}
    </Panel>
  );
}
