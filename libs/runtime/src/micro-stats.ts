import type { Service } from "@nats-io/services";

// The services library calls handlers synchronously: it counts only errors thrown before the
// first await and only the synchronous part of the time. Our handlers are async, so their real
// outcome is added here to keep `nats micro stats` honest. This reaches into the library's
// endpoint records and degrades to a no-op if their shape changes.

/** The library's per-endpoint counters (the fields this module touches). */
export interface EndpointStats {
  num_requests?: number;
  processing_time?: number;
  average_processing_time?: number;
  countError?(err: Error): void;
}

/** The library's record of one endpoint; its `stats` object is replaced when the endpoint is set up again. */
interface EndpointRecord {
  name: string;
  stats?: EndpointStats;
}

function recordOf(svc: Service, name: string): EndpointRecord | undefined {
  const handlers = (svc as unknown as { handlers?: EndpointRecord[] }).handlers;
  return Array.isArray(handlers) ? handlers.find((h) => h.name === name) : undefined;
}

/**
 * Returns a function that records an async handler's outcome in the micro-service stats of
 * endpoint `name`. The endpoint's record is looked up once (not per request) and its current
 * `stats` read at each call.
 */
export function asyncOutcomeCounter(svc: Service, name: string): (awaitedMs: number, err?: Error) => void {
  let record: EndpointRecord | undefined;
  return (awaitedMs, err) => {
    record ??= recordOf(svc, name);
    const stats = record?.stats;
    if (!stats) return;
    if (err) stats.countError?.(err);
    if (typeof stats.processing_time === "number" && typeof stats.num_requests === "number" && stats.num_requests > 0) {
      stats.processing_time += Math.round(awaitedMs * 1_000_000);
      stats.average_processing_time = Math.round(stats.processing_time / stats.num_requests);
    }
  };
}
