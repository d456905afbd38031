import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/** One file the dashboard serves, read once at start. */
export interface DashboardAsset {
  contentType: string;
  body: Buffer;
}

/** Every static file of the dashboard by URL path, and the uPlot version it serves. */
export interface DashboardAssets {
  files: ReadonlyMap<string, DashboardAsset>;
  uplotVersion: string;
}

// uPlot is served from the installed package, never copied into the repo; resolving it from this
// file finds the version services/vertex/package.json pins.
const require = createRequire(import.meta.url);

/** Reads the page, its script and style, and uPlot's browser build and stylesheet. */
export function loadDashboardAssets(): DashboardAssets {
  const { version } = require("uplot/package.json") as { version: string };
  const uplotDist = path.join(path.dirname(require.resolve("uplot/package.json")), "dist");
  const own = (name: string) => readFileSync(new URL(`./client/${name}`, import.meta.url));
  const files = new Map<string, DashboardAsset>([
    ["/", { contentType: "text/html; charset=utf-8", body: own("dashboard.html") }],
    ["/dashboard.js", { contentType: "text/javascript; charset=utf-8", body: own("dashboard-client.js") }],
    ["/dashboard.css", { contentType: "text/css; charset=utf-8", body: own("dashboard.css") }],
    // The IIFE build defines the global `uPlot` the page's plain script uses.
    [
      "/uplot.js",
      { contentType: "text/javascript; charset=utf-8", body: readFileSync(path.join(uplotDist, "uPlot.iife.min.js")) },
    ],
    [
      "/uplot.css",
      { contentType: "text/css; charset=utf-8", body: readFileSync(path.join(uplotDist, "uPlot.min.css")) },
    ],
  ]);
  return { files, uplotVersion: version };
}
