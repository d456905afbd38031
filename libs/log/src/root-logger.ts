import { hostname } from "node:os";
import pino from "pino";
import type { Logger, LoggerOptions } from "pino";

/** Options of the process's root logger. */
export interface RootLoggerOptions {
  /** Service name, on every line. Required. */
  service: string;
  /** Node id, on every line. Default `<hostname>-<pid>`. */
  node?: string;
  /** pino level. Default `info` (env LOG_LEVEL wins when set). */
  level?: string;
  /** Where lines go. Default stdout. */
  destination?: pino.DestinationStream;
}

// Secrets must never reach a log line even when someone logs a whole config object.
const REDACT = [
  "*.apiKey",
  "*.api_key",
  "*.password",
  "*.pass",
  "*.token",
  "*.secret",
  "*.authorization",
  "*.Authorization",
  "headers.authorization",
  "headers.Authorization",
  "*.headers.authorization",
  "*.headers.Authorization",
];

let root: Logger | undefined;

/** Creates the one root logger of this process (a second call returns the first). */
export function createRootLogger(opts: RootLoggerOptions): Logger {
  if (root) return root;
  const options: LoggerOptions = {
    level: process.env.LOG_LEVEL ?? opts.level ?? "info",
    base: { service: opts.service, node: opts.node ?? `${hostname()}-${process.pid}` },
    redact: { paths: REDACT, censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  root = opts.destination ? pino(options, opts.destination) : pino(options);
  return root;
}

/** A logger that writes nothing, for library code called outside a service. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
