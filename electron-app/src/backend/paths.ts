/**
 * Where the backend lives: inside the packaged app's resources, or in the
 * developer's checkout (the repository root, one level above electron-app/).
 */
import * as path from "node:path";

export interface BackendLocation {
  /** True in an installed app (Electron's `app.isPackaged`). */
  packaged: boolean;
  /** `process.resourcesPath` of the packaged app. */
  resourcesPath?: string;
  /** The repository root of a development checkout. */
  devRoot: string;
}

/** The folder holding `enttok/`, `twisted/plugins/` and `.venv/` (the backend's cwd). */
export function resolveBackendDir(location: BackendLocation): string {
  if (location.packaged) {
    if (!location.resourcesPath) {
      throw new Error("a packaged app needs resourcesPath to find its backend");
    }
    return path.join(location.resourcesPath, "backend");
  }
  return path.resolve(location.devRoot);
}

/** The virtualenv's interpreter under `backendDir`, for the given platform. */
export function venvPython(backendDir: string, platform: NodeJS.Platform = process.platform): string {
  return platform === "win32"
    ? path.join(backendDir, ".venv", "Scripts", "python.exe")
    : path.join(backendDir, ".venv", "bin", "python");
}
