// Bundles every widget entry in src/ into ../flowbook/static/<name>.js (+ .css).
//
// One self-contained ES module per widget: no code splitting, because anywidget loads the
// bundle from a blob URL and split chunks would be fetched from a relative path that does not
// exist (lonboard's build.mjs hit this). Shared helpers in src/shared/ are inlined into each
// bundle. Nothing is loaded from a CDN at run time.
//
//   node build.mjs            production build (minified, no source maps)
//   node build.mjs --dev      inline source maps, not minified
//   node build.mjs --watch    rebuild on change (use with ANYWIDGET_HMR=1 jupyter lab)
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";
import fs from "node:fs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dev = process.argv.includes("--dev");
const watch = process.argv.includes("--watch");

// Every top-level src/<name>.js is a widget entry (src/shared/ holds what they share).
const jsIn = (dir) =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => f.endsWith(".js")).map((f) => path.join(dir, f))
    : [];
const entries = jsIn(path.join(here, "src"));
// Every top-level node/<name>.js is a Node.js preload (e.g. routing fetch through the proxy),
// bundled with its npm dependencies into flowbook/static/node/<name>.mjs.
const nodeEntries = jsIn(path.join(here, "node"));

const options = {
  entryPoints: entries,
  outdir: path.join(here, "..", "flowbook", "static"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  // anywidget#369: bundled UMD dependencies must not see an AMD loader in JupyterLab.
  define: { "define.amd": "false" },
  logLevel: "info",
};

const nodeOptions = {
  entryPoints: nodeEntries,
  outdir: path.join(here, "..", "flowbook", "static", "node"),
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: !dev,
  // Bundled CommonJS dependencies (undici) call require() on Node built-ins.
  banner: { js: "import { createRequire as __fbCreateRequire } from 'node:module'; const require = __fbCreateRequire(import.meta.url);" },
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
  if (nodeEntries.length) await esbuild.build(nodeOptions);
}
