/**
 * Where the renderer finds the backend.
 *
 * In Electron, the preload script exposes `window.enttok.backend()`.
 *
 * DEV/TEST ONLY: opened in a plain browser (e.g. `vite preview` driven by the
 * browser tests), the page reads `?backend=http://127.0.0.1:PORT&token=...` from
 * its own URL instead. The token then sits in the address bar and history, so
 * this path is for throwaway test backends, never for a user's real one.
 */

export interface BackendConnection {
  baseUrl: string;
  token: string;
}

interface EnttokBridge {
  backend(): Promise<BackendConnection>;
}

declare global {
  interface Window {
    enttok?: EnttokBridge;
  }
}

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost"]);

/** @throws when neither the bridge nor usable query parameters are present. */
export async function getConnection(): Promise<BackendConnection> {
  if (window.enttok) {
    return window.enttok.backend();
  }
  return connectionFromQuery(window.location.search);
}

/** The dev/test-only connection in `?backend=...&token=...`. */
export function connectionFromQuery(search: string): BackendConnection {
  const params = new URLSearchParams(search);
  const backend = params.get("backend");
  const token = params.get("token");
  if (!backend || !token) {
    throw new Error(
      "No backend connection: open this page in the enttok-e app, or (development and tests " +
        "only) add ?backend=http://127.0.0.1:PORT&token=TOKEN to its URL.",
    );
  }
  let url: URL;
  try {
    url = new URL(backend);
  } catch {
    throw new Error(`?backend= is not a URL: ${backend}`);
  }
  // Never send the token anywhere but a backend on this machine.
  if (url.protocol !== "http:" || !LOCAL_HOSTS.has(url.hostname)) {
    throw new Error("?backend= must be http://127.0.0.1:PORT or http://localhost:PORT");
  }
  return { baseUrl: url.origin, token };
}
