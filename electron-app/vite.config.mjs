// Builds the renderer (src/renderer) into dist-react/ with relative asset paths,
// so Electron can load dist-react/index.html from file:// (or from inside app.asar).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root: `${here}src/renderer`,
  base: "./",
  publicDir: false,
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: `${here}dist-react`,
    emptyOutDir: true,
    target: "chrome120",
    sourcemap: true,
  },
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  preview: { host: "127.0.0.1", strictPort: true },
});
