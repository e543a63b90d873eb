/** The main window: a locked-down renderer that can only reach the backend through preload. */
import { BrowserWindow, shell } from "electron";

export type RendererSource = { kind: "file"; path: string } | { kind: "url"; url: string };

export function createMainWindow(preload: string, source: RendererSource): BrowserWindow {
  const window = new BrowserWindow({
    width: 1280,
    height: 800,
    minWidth: 960,
    minHeight: 600,
    title: "enttok-e",
    show: false,
    webPreferences: {
      preload,
      contextIsolation: true,
      nodeIntegration: false,
      sandbox: true,
      webSecurity: true,
    },
  });
  window.once("ready-to-show", () => window.show());
  // Links to the web open in the user's browser; the window itself never navigates away.
  window.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith("https://")) {
      void shell.openExternal(url);
    }
    return { action: "deny" };
  });
  window.webContents.on("will-navigate", (event) => event.preventDefault());
  if (source.kind === "file") {
    void window.loadFile(source.path);
  } else {
    void window.loadURL(source.url);
  }
  return window;
}
