import type { KV } from "@nats-io/kv";
import { formatDuration } from "@machina/config";
import { MachinaError } from "@machina/wire";
import type { WindowGate } from "./window-gate";

/** OVER_QUOTA for a window with no room soon enough. */
export function overQuota(s: { readonly name: string }, gate: WindowGate | undefined, retry: number): MachinaError {
  const w = gate?.w;
  const what =
    w === undefined
      ? ""
      : ` (${w.limit} calls per ${formatDuration(w.perMs)}${w.align === "clock" ? ", clock-aligned" : ""})`;
  const ms = Math.ceil(retry);
  return new MachinaError("OVER_QUOTA", `source ${s.name} is over quota${what}; retry in ${ms} ms`, {
    retryable: true,
    details: {
      source: s.name,
      window: w === undefined ? null : formatDuration(w.perMs),
      limit: w?.limit ?? null,
      retryAfterMs: ms,
    },
  });
}

/** OVER_QUOTA while the upstream paused the source. */
export function blockedError(s: { readonly name: string; readonly blockedUntil: number }, retry: number): MachinaError {
  const ms = Math.max(1, Math.ceil(retry));
  return new MachinaError(
    "OVER_QUOTA",
    `source ${s.name} is paused until ${new Date(Date.now() + ms).toISOString()} because the upstream reported its quota exhausted; retry in ${ms} ms`,
    {
      retryable: true,
      details: { source: s.name, retryAfterMs: ms, blockedUntil: Math.round(s.blockedUntil) },
    },
  );
}

/** UNAVAILABLE when the limiter cannot reach its KV bucket. */
export function unavailable(kv: KV, source: string, err: unknown): MachinaError {
  const bucket = (kv as { bucket?: string }).bucket ?? "?";
  return new MachinaError(
    "UNAVAILABLE",
    `limiter for source ${source} cannot reach KV bucket "${bucket}": ${(err as Error)?.message ?? String(err)}; check the NATS connection and JetStream`,
    {
      retryable: true,
      cause: err,
      details: { source, bucket, dependency: "nats-kv" },
    },
  );
}
