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
      user: {
        doc: 'NATS user; "" connects without one (a server without authorization). With the generated users (tools/nats-admin.ts) it is the service\'s name.',
        format: String,
        default: "",
      },
      pass: { doc: "NATS password (use env, never a committed file).", format: String, default: "", sensitive: true },
      passFile: {
        doc: 'File holding the NATS password (e.g. a mounted Secret), read at start, surrounding whitespace dropped; "" none. Set pass or passFile, not both.',
        format: String,
        default: "",
      },
      replicas: { doc: "Replicas of streams and buckets this service creates.", format: "nat", default: 1 },
      tls: {
        ca: {
          doc: 'PEM file of the CA(s) the NATS server\'s certificate must chain to; "" trusts the system CAs. Setting any nats.tls key makes TLS required.',
          format: String,
          default: "",
        },
        cert: { doc: 'PEM client certificate, for servers that verify clients; "" none.', format: String, default: "" },
        key: { doc: 'PEM private key of nats.tls.cert; "" none.', format: String, default: "" },
        serverName: {
          doc: 'Name the server\'s certificate must carry (SNI too); "" is the host of the URL.',
          format: String,
          default: "",
        },
        verify: {
          doc: "Verify the server's certificate; false accepts any (testing only, never in production).",
          format: Boolean,
          default: true,
        },
      },
    },
    http: {
      port: {
        doc: "Port of /healthz, /readyz and /metrics (0 picks a free port).",
        format: "port",
        default: defaults.httpPort,
      },
      host: { doc: "Address the HTTP port binds.", format: String, default: "127.0.0.1" },
    },
    resources: {
      cpu: {
        doc: 'CPU cores this replica offers tasks that carry Machina-Resources (e.g. "2", "500m"); "" measures them.',
        format: String,
        default: "",
      },
      ram: {
        doc: 'RAM this replica offers such tasks (e.g. "4G"); "" is the machine\'s, capped by what is available as it changes.',
        format: String,
        default: "",
      },
      gpu: {
        doc: 'GPUs this replica offers such tasks; "" counts the ones systeminformation lists.',
        format: String,
        default: "",
      },
      storage: {
        doc: 'Disk this replica offers such tasks (e.g. "100G"); "" is the free space of its working directory\'s filesystem.',
        format: String,
        default: "",
      },
      network: {
        doc: 'Network bandwidth this replica offers such tasks, bytes per second (e.g. "100M"); "" is its fastest interface\'s speed (0 when unknown).',
        format: String,
        default: "",
      },
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
  nats: { url: string; user: string; pass: string; passFile: string; replicas: number; tls: TlsSettings };
  http: { port: number; host: string };
  resources: { cpu: string; ram: string; gpu: string; storage: string; network: string };
  log: { level: string };
}

/** TLS settings of a client connection (NATS here; data's `cassandra.tls` has the same keys plus `enabled`). */
export interface TlsSettings {
  ca: string;
  cert: string;
  key: string;
  serverName: string;
  verify: boolean;
}
