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

const here = path.dirname(fileURLToPath(import.meta.url));
const dev = process.argv.includes("--dev");
const watch = process.argv.includes("--watch");

// Add later widgets (table, detail, diff, dashboard) here.
const entries = ["intercept_panel"];

const options = {
  entryPoints: entries.map((name) => path.join(here, "src", `${name}.js`)),
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

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
