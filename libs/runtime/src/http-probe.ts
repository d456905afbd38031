import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/** Health facts the probe server reports. */
export interface ProbeState {
  /** Liveness: false makes /healthz answer 503. */
  healthy(): boolean;
  /** Readiness: false makes /readyz answer 503 (e.g. before setup or while draining). */
  ready(): boolean;
  /** Extra facts shown on /healthz and /readyz. */
  info(): Record<string, unknown>;
}

/** A running probe server. */
export interface ProbeServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /healthz, /readyz and /metrics (prom-client) on a small HTTP port. */
export async function startProbeServer(
  host: string,
  port: number,
  registry: Registry,
  state: ProbeState,
): Promise<ProbeServer> {
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    const reply = (status: number, body: string, type = "application/json") => {
      res.writeHead(status, { "Content-Type": type });
      res.end(body);
    };
    if (url === "/healthz" || url === "/readyz") {
      const ok = url === "/healthz" ? state.healthy() : state.ready();
      reply(ok ? 200 : 503, JSON.stringify({ ok, ...state.info() }));
      return;
    }
    if (url === "/metrics") {
      registry.metrics().then(
        (text) => reply(200, text, registry.contentType),
        (err: Error) => reply(500, JSON.stringify({ error: err.message })),
      );
      return;
    }
    reply(404, JSON.stringify({ error: "not found: try /healthz, /readyz or /metrics" }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
