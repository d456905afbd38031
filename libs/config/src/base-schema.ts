import { hostname } from "node:os";

/** Process settings every service has; services extend this schema with their own keys. */
export function baseSchema(defaults: { httpPort: number }) {
  return {
    mesh: {
      prefix: {
        doc: "Subject prefix of this network, so several networks can share one NATS cluster.",
        format: String,
        default: "machina",
      },
      node: {
        doc: "Id of this instance in vertex and logs.",
        format: String,
        default: `${hostname()}-${process.pid}`,
      },
    },
    nats: {
      url: { doc: "NATS server URL(s), comma-separated.", format: String, default: "nats://127.0.0.1:4222" },
      user: { doc: "NATS user, if the server requires one.", format: String, default: "" },
      pass: { doc: "NATS password (use env, never a committed file).", format: String, default: "", sensitive: true },
      replicas: { doc: "Replicas of streams and buckets this service creates.", format: "nat", default: 1 },
    },
    http: {
      port: {
        doc: "Port of /healthz, /readyz and /metrics (0 picks a free port).",
        format: "port",
        default: defaults.httpPort,
      },
      host: { doc: "Address the HTTP port binds.", format: String, default: "127.0.0.1" },
    },
    log: {
      level: {
        doc: "pino log level.",
        format: ["fatal", "error", "warn", "info", "debug", "trace", "silent"],
        default: "info",
      },
    },
  };
}

/** Values of the base schema. */
export interface BaseConfig {
  mesh: { prefix: string; node: string };
  nats: { url: string; user: string; pass: string; replicas: number };
  http: { port: number; host: string };
  log: { level: string };
}
