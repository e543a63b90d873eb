/**
 * The settings the user edits here: vault path, GitHub token and repositories.
 * The token is write-only: the backend only says whether one is set.
 */
import { type FormEvent, useEffect, useState } from "react";

import { ApiError, type BackendClient } from "../api/client";
import type { PublicSettings } from "../api/types";
import { errorText } from "../format";
import { Panel } from "./Panel";

export function SettingsForm({ client }: { client: BackendClient }) {
  const [settings, setSettings] = useState<PublicSettings | null>(null);
  const [vaultPath, setVaultPath] = useState("");
  const [token, setToken] = useState("");
  const [repos, setRepos] = useState("");
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const [saving, setSaving] = useState(false);

  const show = (loaded: PublicSettings) => {
    setSettings(loaded);
    setVaultPath(loaded.vault_path ?? "");
    setRepos(loaded.github.repos.join("\n"));
    setToken("");
  };

  useEffect(() => {
    client
      .get<PublicSettings>("/settings")
      .then(show)
      .catch((e: unknown) => setMessage({ text: errorText(e), error: true }));
  }, [client]);

  const save = async (update: Record<string, unknown>, done: string) => {
    setSaving(true);
    try {
      show(await client.post<PublicSettings>("/settings", update));
      setMessage({ text: done, error: false });
    } catch (e) {
      const field = e instanceof ApiError && e.field ? `${e.field}: ` : "";
      setMessage({ text: field + errorText(e), error: true });
    } finally {
      setSaving(false);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const github: Record<string, unknown> = {
      repos: repos.split(/[\s,]+/).filter(Boolean),
    };
    if (token.trim()) {
      github.token = token.trim();
    }
    void save({ vault_path: vaultPath.trim() || null, github }, "Settings saved.");
  };

  const tokenSet = settings?.github.token_set ?? false;
  return (
    <Panel title="Settings">
      <form className="settings" onSubmit={submit}>
        <label>
          Vault folder
          <input
            type="text"
            value={vaultPath}
            onChange={(e) => setVaultPath(e.target.value)}
            placeholder="/home/me/Notes"
            spellCheck={false}
          />
        </label>
        <label>
          GitHub token{" "}
          <span className={`pill ${tokenSet ? "ok" : "muted"}`} data-testid="token-state">
            {tokenSet ? "set" : "not set"}
          </span>
          <input
            type="password"
            value={token}
            onChange={(e) => setToken(e.target.value)}
            placeholder={tokenSet ? "set (type a new one to replace it)" : "ghp_…"}
            autoComplete="off"
          />
        </label>
        <label>
          Repositories (owner/name, one per line)
          <textarea value={repos} onChange={(e) => setRepos(e.target.value)} rows={3} spellCheck={false} />
        </label>
        <div className="button-row">
          <button type="submit" disabled={saving || settings === null}>
            Save settings
          </button>
          {tokenSet && (
            <button
              type="button"
              className="secondary"
              disabled={saving}
              onClick={() => void save({ github: { token: null } }, "GitHub token removed.")}
            >
              Remove token
            </button>
          )}
        </div>
        {message && (
          <p className={message.error ? "error" : "notice"} role="status">
            {message.text}
          </p>
        )}
      </form>
    </Panel>
  );
}
