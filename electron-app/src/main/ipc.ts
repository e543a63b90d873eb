/** The one IPC channel the renderer may use (preload.ts repeats the name: a sandboxed preload cannot import it). */
import { ipcMain, type IpcMainInvokeEvent } from "electron";

import type { BackendConnection } from "../backend/supervisor";

export const BACKEND_CHANNEL = "enttok:backend";

/**
 * Answer `enttok.backend()` with `connection()`; only frames showing the app's
 * own page may ask.
 */
export function serveBackendConnection(
  connection: () => Promise<BackendConnection>,
  isAppPage: (url: string) => boolean,
): void {
  ipcMain.handle(BACKEND_CHANNEL, async (event: IpcMainInvokeEvent): Promise<BackendConnection> => {
    const url = event.senderFrame?.url ?? "";
    if (!isAppPage(url)) {
      throw new Error(`refused: ${url || "an unknown frame"} is not the app's page`);
    }
    return connection();
  });
}
