// electron-builder afterPack hook: the packaged app must hold the backend runtime
// (build/backend/, copied by extraResources) at exactly the path the supervisor
// computes (dist-electron/backend/paths.js), as an executable file; a package
// made before `npm run build:backend` would otherwise only fail on the user's
// machine.
const fs = require("node:fs");
const path = require("node:path");

/** The resources folder of the packaged app. */
function resourcesDir(context) {
  if (context.electronPlatformName === "darwin" || context.electronPlatformName === "mas") {
    const app = `${context.packager.appInfo.productFilename}.app`;
    return path.join(context.appOutDir, app, "Contents", "Resources");
  }
  return path.join(context.appOutDir, "resources");
}

/** Node's platform name for electron-builder's. */
function nodePlatform(electronPlatformName) {
  return electronPlatformName === "mas" ? "darwin" : electronPlatformName;
}

/**
 * The runtime executable the supervisor will start in the app packed at
 * `resources`, checked to exist (and, off Windows, to be executable).
 * @returns its path.
 */
function checkRuntime(resources, platform, pathsModule = path.join(__dirname, "..", "dist-electron", "backend", "paths.js")) {
  if (!fs.existsSync(pathsModule)) {
    throw new Error(`afterPack: ${pathsModule} is missing; run npm run build first`);
  }
  const { resolveBackendCommand } = require(pathsModule);
  const { executable } = resolveBackendCommand({ packaged: true, resourcesPath: resources, devRoot: "." }, platform);
  let stat;
  try {
    stat = fs.statSync(executable);
  } catch {
    throw new Error(`afterPack: no backend runtime at ${executable}; run npm run build:backend before packaging`);
  }
  if (!stat.isFile() || (platform !== "win32" && (stat.mode & 0o111) === 0)) {
    throw new Error(`afterPack: the backend runtime ${executable} is not an executable file`);
  }
  return executable;
}

async function afterPack(context) {
  const executable = checkRuntime(resourcesDir(context), nodePlatform(context.electronPlatformName));
  console.log(`  • afterPack: backend runtime at ${executable}`);
}

module.exports = afterPack;
module.exports.default = afterPack;
module.exports.checkRuntime = checkRuntime;
module.exports.resourcesDir = resourcesDir;
