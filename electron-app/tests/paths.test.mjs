// Where the supervisor looks for the backend on each platform (dist-electron/backend/paths.js),
// and that the afterPack check agrees with it. Pure path logic: runs on any OS.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, test } from "node:test";

import { appDir, importBuilt } from "./helpers.mjs";

const require = createRequire(import.meta.url);
const paths = await importBuilt("backend/paths.js");
const { resourcesDir } = require(path.join(appDir, "scripts", "after-pack.cjs"));
const { runtimeExecutable: buildScriptExecutable } = await import(path.join(appDir, "scripts", "build-backend.mjs"));

const OPTIONS = ["--port", "0", "--exit-on-stdin-close"];

describe("the packaged app starts the frozen runtime from its resources", () => {
  const cases = [
    ["linux", "/tmp/.mount_enttokXyZ/resources", "/tmp/.mount_enttokXyZ/resources/backend/enttok-backend"],
    ["darwin", "/Applications/enttok-e.app/Contents/Resources",
      "/Applications/enttok-e.app/Contents/Resources/backend/enttok-backend"],
    ["win32", "C:\\Users\\김민지\\AppData\\Local\\Programs\\enttok-e\\resources",
      "C:\\Users\\김민지\\AppData\\Local\\Programs\\enttok-e\\resources\\backend\\enttok-backend.exe"],
  ];
  for (const [platform, resourcesPath, executable] of cases) {
    test(platform, () => {
      const command = paths.resolveBackendCommand({ packaged: true, resourcesPath, devRoot: "/unused" }, platform);
      assert.deepEqual(command, {
        executable, args: OPTIONS, cwd: executable.slice(0, executable.lastIndexOf(platform === "win32" ? "\\" : "/")),
        frozen: true,
      });
      assert.equal(buildScriptExecutable(command.cwd, platform), executable, "the build script names it the same");
    });
  }

  test("a packaged app without resourcesPath is refused", () => {
    assert.throws(() => paths.resolveBackendCommand({ packaged: true, devRoot: "/x" }, "linux"), /resourcesPath/);
  });

  test("the options are a copy (a caller cannot change the next command)", () => {
    const one = paths.resolveBackendCommand({ packaged: true, resourcesPath: "/r", devRoot: "/x" }, "linux");
    one.args.push("--vault");
    assert.deepEqual(paths.resolveBackendCommand({ packaged: true, resourcesPath: "/r", devRoot: "/x" }, "linux").args, OPTIONS);
  });
});

describe("development runs python -m enttok from the checkout's .venv", () => {
  test("linux and macOS", () => {
    for (const platform of ["linux", "darwin"]) {
      assert.deepEqual(paths.resolveBackendCommand({ packaged: false, devRoot: "/home/dev/enttok" }, platform), {
        executable: "/home/dev/enttok/.venv/bin/python", args: ["-m", "enttok", ...OPTIONS],
        cwd: "/home/dev/enttok", frozen: false,
      });
    }
  });

  test("windows", () => {
    assert.deepEqual(paths.resolveBackendCommand({ packaged: false, devRoot: "D:\\src\\enttok" }, "win32"), {
      executable: "D:\\src\\enttok\\.venv\\Scripts\\python.exe", args: ["-m", "enttok", ...OPTIONS],
      cwd: "D:\\src\\enttok", frozen: false,
    });
  });
});

describe("afterPack looks where electron-builder puts resources", () => {
  const packager = { appInfo: { productFilename: "enttok-e" } };
  test("linux and windows: <appOutDir>/resources", () => {
    for (const electronPlatformName of ["linux", "win32"]) {
      assert.equal(resourcesDir({ electronPlatformName, appOutDir: "/out/x-unpacked", packager }),
        path.join("/out/x-unpacked", "resources"));
    }
  });

  test("macOS: <appOutDir>/<product>.app/Contents/Resources", () => {
    for (const electronPlatformName of ["darwin", "mas"]) {
      assert.equal(resourcesDir({ electronPlatformName, appOutDir: "/out/mac", packager }),
        path.join("/out/mac", "enttok-e.app", "Contents", "Resources"));
    }
  });
});
