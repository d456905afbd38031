import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { loadDashboardAssets } from "./dashboard-assets";
import type { DashboardSource } from "./dashboard-snapshot";
import { openEventStream } from "./event-stream";
import type { EventStream } from "./event-stream";
import { SnapshotFeed } from "./snapshot-feed";

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** Called once per interval while a page is open. */
  snapshot: DashboardSource;
  /** Address to listen on. Default 127.0.0.1: the page shows the mesh's topology, so it is opt-in to expose. */
  host?: string;
  /** Port to listen on; 0 picks a free one. Default 0. */
  port?: number;
  /** Time between snapshots sent to each page, ms. Default 2 000. */
  intervalMs?: number;
  /** Shown in the page's heading, e.g. the mesh prefix. Default "". */
  title?: string;
}

/** A running dashboard. */
export interface RunningDashboard {
  /** The port it listens on. */
  port: number;
  /** Ends every open event stream and stops listening. */
  close(): Promise<void>;
}

// Only the dashboard's own files run or load: no CDN, no inline script, no framing by other sites.
const SECURITY_HEADERS = {
  "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", ...SECURITY_HEADERS, ...extra });
  res.end(`${text}\n`);
}

/**
 * Serves the live dashboard over HTTP: `/` the page, its script and style, `/uplot.js` and
 * `/uplot.css` from the installed uPlot package, and `/events`, server-sent events with one
 * `snapshot` at connect and one per interval.
 */
export async function startDashboard(opts: DashboardOptions): Promise<RunningDashboard> {
  const intervalMs = opts.intervalMs ?? 2_000;
  if (!Number.isFinite(intervalMs) || intervalMs < 100)
    throw new RangeError(`dashboard intervalMs: expected at least 100 ms, got ${intervalMs}`);
  const assets = loadDashboardAssets();
  const feed = new SnapshotFeed(opts.snapshot, intervalMs);
  const streams = new Set<EventStream>();
  const hello = { title: opts.title ?? "", uplotVersion: assets.uplotVersion, intervalMs };

  const events = (req: IncomingMessage, res: ServerResponse) => {
    const stream = openEventStream(res, intervalMs);
    streams.add(stream);
    stream.send("hello", hello);
    const unsubscribe = feed.subscribe((item) =>
      "snapshot" in item ? stream.send("snapshot", item.snapshot) : stream.send("problem", item),
    );
    req.on("close", () => {
      unsubscribe();
      streams.delete(stream);
    });
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://dashboard");
    if (req.method !== "GET" && req.method !== "HEAD") {
      plain(res, 405, "method not allowed", { Allow: "GET, HEAD" });
      return;
    }
    if (url.pathname === "/events" && req.method === "GET") {
      events(req, res);
      return;
    }
    if (url.pathname === "/favicon.ico") {
      // Browsers ask for it on their own; an answer without a body keeps a 404 out of the console.
      res.writeHead(204, SECURITY_HEADERS);
      res.end();
      return;
    }
    const asset = assets.files.get(url.pathname);
    if (!asset) {
      plain(res, 404, `not found: ${url.pathname}`);
      return;
    }
    res.writeHead(200, {
      "Content-Type": asset.contentType,
      "Content-Length": String(asset.body.length),
      "Cache-Control": "no-cache",
      ...SECURITY_HEADERS,
    });
    res.end(req.method === "HEAD" ? undefined : asset.body);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });

  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        feed.close();
        for (const s of streams) s.end();
        streams.clear();
        server.close(() => resolve());
        // Keep-alive sockets of finished requests would hold close() open until they time out.
        server.closeAllConnections();
      })),
  };
}
