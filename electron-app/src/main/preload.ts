/**
 * The renderer's only bridge: `window.enttok.backend()` resolves to the
 * backend's {baseUrl, token}. Nothing else of Node or Electron is exposed.
 */
import { contextBridge, ipcRenderer } from "electron";

// Must equal BACKEND_CHANNEL in ipc.ts; a sandboxed preload can only require "electron".
const BACKEND_CHANNEL = "enttok:backend";

interface BackendConnection {
  baseUrl: string;
  token: string;
}

contextBridge.exposeInMainWorld("enttok", {
  backend: (): Promise<BackendConnection> => ipcRenderer.invoke(BACKEND_CHANNEL),
});
