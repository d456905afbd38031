import type { KV } from "@nats-io/kv";
import { formatDuration } from "@machina/config";
import { MachinaError } from "@machina/wire";
import type { WindowGate } from "./window-gate";

/** Who a refusal is about: a source, or one credential of its pool. */
export interface Refused {
  readonly source: string;
  readonly credential: string | null;
  /** E.g. `source sitestats` or `source sitestats, credential primary`. */
  readonly what: string;
}

const who = (s: Refused) =>
  s.credential === null ? { source: s.source } : { source: s.source, credential: s.credential };

/** OVER_QUOTA for a window with no room soon enough. */
export function overQuota(s: Refused, gate: WindowGate | undefined, retry: number, now: number): MachinaError {
  const w = gate?.w;
  const limit = gate?.limitAt(now);
  const lowered =
    w !== undefined && limit !== undefined && limit < w.limit ? `, lowered by the upstream from ${w.limit}` : "";
  const what =
    w === undefined
      ? ""
      : ` (${limit} calls per ${formatDuration(w.perMs)}${w.align === "clock" ? ", clock-aligned" : ""}${lowered})`;
  const ms = Math.ceil(retry);
  return new MachinaError("OVER_QUOTA", `${s.what} is over quota${what}; retry in ${ms} ms`, {
    retryable: true,
    details: {
      ...who(s),
      window: w === undefined ? null : formatDuration(w.perMs),
      limit: limit ?? null,
      retryAfterMs: ms,
    },
  });
}

/** OVER_QUOTA while the upstream paused the source (or credential). */
export function blockedError(s: Refused, blockedUntil: number, retry: number): MachinaError {
  const ms = Math.max(1, Math.ceil(retry));
  return new MachinaError(
    "OVER_QUOTA",
    `${s.what} is paused until ${new Date(Date.now() + ms).toISOString()} because the upstream reported its quota exhausted; retry in ${ms} ms`,
    {
      retryable: true,
      details: { ...who(s), retryAfterMs: ms, blockedUntil: Math.round(blockedUntil) },
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
