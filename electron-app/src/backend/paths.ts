/**
 * Where the backend lives and how it is started: the frozen runtime
 * `enttok-backend` inside the packaged app's resources, or `python -m enttok`
 * with the `.venv` of the developer's checkout (the repository root, one level
 * above electron-app/).
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

/** A command line that starts the backend, and the folder it runs in. */
export interface BackendCommand {
  /** The program: `enttok-backend[.exe]` or the `.venv`'s Python. */
  executable: string;
  args: string[];
  /** The working directory (the runtime's folder, or the repository root). */
  cwd: string;
  /** True for the frozen runtime (PyInstaller), false for `python -m enttok`. */
  frozen: boolean;
}

/** The folder under `resources/` that electron-builder copies build/backend/ to. */
export const RUNTIME_FOLDER = "backend";

/**
 * The options the supervisor always passes: a free port (read from the ready
 * line), and exit when Electron's end of stdin closes.
 */
export const BACKEND_OPTIONS = ["--port", "0", "--exit-on-stdin-close"];

/** Path functions of `platform` (so Windows paths can be computed elsewhere, e.g. in tests). */
function pathsOf(platform: NodeJS.Platform): path.PlatformPath {
  return platform === "win32" ? path.win32 : path.posix;
}

/**
 * The backend's folder: `<resources>/backend` (the frozen runtime) in a packaged
 * app, else the repository root (holding enttok/, twisted/plugins/ and .venv/).
 */
export function resolveBackendDir(location: BackendLocation, platform: NodeJS.Platform = process.platform): string {
  const p = pathsOf(platform);
  if (location.packaged) {
    if (!location.resourcesPath) {
      throw new Error("a packaged app needs resourcesPath to find its backend");
    }
    return p.join(location.resourcesPath, RUNTIME_FOLDER);
  }
  return p.resolve(location.devRoot);
}

/** The virtualenv's interpreter under `backendDir`, for the given platform. */
export function venvPython(backendDir: string, platform: NodeJS.Platform = process.platform): string {
  const p = pathsOf(platform);
  return platform === "win32"
    ? p.join(backendDir, ".venv", "Scripts", "python.exe")
    : p.join(backendDir, ".venv", "bin", "python");
}

/** The frozen runtime's executable in `runtimeDir` (`enttok-backend.exe` on Windows). */
export function runtimeExecutable(runtimeDir: string, platform: NodeJS.Platform = process.platform): string {
  return pathsOf(platform).join(runtimeDir, platform === "win32" ? "enttok-backend.exe" : "enttok-backend");
}

/** `python -m enttok` from the `.venv` under `backendDir` (development, tests). */
export function venvCommand(backendDir: string, platform: NodeJS.Platform = process.platform): BackendCommand {
  return { executable: venvPython(backendDir, platform), args: ["-m", "enttok", ...BACKEND_OPTIONS], cwd: backendDir, frozen: false };
}

/**
 * How to start the backend here: `<resources>/backend/enttok-backend` in a
 * packaged app (macOS: `<app>.app/Contents/Resources/backend/enttok-backend`,
 * Windows: `resources\backend\enttok-backend.exe`), else `python -m enttok`.
 */
export function resolveBackendCommand(location: BackendLocation, platform: NodeJS.Platform = process.platform): BackendCommand {
  const dir = resolveBackendDir(location, platform);
  if (!location.packaged) {
    return venvCommand(dir, platform);
  }
  return { executable: runtimeExecutable(dir, platform), args: [...BACKEND_OPTIONS], cwd: dir, frozen: true };
}
