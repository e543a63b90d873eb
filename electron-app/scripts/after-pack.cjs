// electron-builder afterPack hook: make every Twisted plugin cache in the packaged
// backend newer than the plugin modules beside it.
//
// electron-builder copies files without keeping their modification times, so a
// copied twisted/plugins/enttok_plugin.py can look newer than the dropin.cache
// that scripts/build-backend.mjs generated; Twisted would then try to rewrite the
// cache at every start, which fails (and logs) in a read-only installation.
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

/** Every dropin.cache under `dir` (symlinks are not followed). */
function findPluginCaches(dir, found = []) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      findPluginCaches(full, found);
    } else if (entry.isFile() && entry.name === "dropin.cache" && path.basename(dir) === "plugins") {
      found.push(full);
    }
  }
  return found;
}

/** Set each cache's mtime to `now`, after everything was copied. */
function freshenPluginCaches(backendDir, now = new Date()) {
  const caches = findPluginCaches(backendDir);
  for (const cache of caches) {
    fs.utimesSync(cache, now, now);
  }
  return caches;
}

async function afterPack(context) {
  const backendDir = path.join(resourcesDir(context), "backend");
  if (!fs.existsSync(backendDir)) {
    throw new Error(`afterPack: no backend at ${backendDir}; check extraResources`);
  }
  const caches = freshenPluginCaches(backendDir);
  if (!caches.some((c) => c.endsWith(path.join("backend", "twisted", "plugins", "dropin.cache")))) {
    throw new Error("afterPack: backend/twisted/plugins/dropin.cache is missing; run npm run build:backend");
  }
  console.log(`  • afterPack: freshened ${caches.length} Twisted plugin cache(s)`);
}

module.exports = afterPack;
module.exports.default = afterPack;
module.exports.freshenPluginCaches = freshenPluginCaches;
module.exports.resourcesDir = resourcesDir;
