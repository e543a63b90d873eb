/** The current backend client; looked up again when the connection may have changed. */
import { useCallback, useEffect, useRef, useState } from "react";

import { BackendClient } from "./api/client";
import { getConnection } from "./api/connection";
import { errorText } from "./format";

export interface BackendView {
  client: BackendClient | null;
  error: string | null;
  /** Ask for the connection again (the backend's port changes when it restarts). */
  lookup(): Promise<BackendClient>;
}

export function useBackend(): BackendView {
  const [client, setClient] = useState<BackendClient | null>(null);
  const [error, setError] = useState<string | null>(null);
  const current = useRef<BackendClient | null>(null);

  const lookup = useCallback(async (): Promise<BackendClient> => {
    const connection = await getConnection();
    const known = current.current?.connection;
    if (!known || known.baseUrl !== connection.baseUrl || known.token !== connection.token) {
      current.current = new BackendClient(connection);
      setClient(current.current);
    }
    setError(null);
    return current.current!;
  }, []);

  useEffect(() => {
    lookup().catch((e: unknown) => setError(errorText(e)));
  }, [lookup]);

  return { client, error, lookup };
}
