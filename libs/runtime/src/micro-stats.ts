import type { Service } from "@nats-io/services";

// The services library calls handlers synchronously: it counts only errors thrown before the
// first await and only the synchronous part of the time. Our handlers are async, so their real
// outcome is added here to keep `nats micro stats` honest. This reaches into the library's
// endpoint records and degrades to a no-op if their shape changes.
interface EndpointStats {
  num_requests?: number;
  processing_time?: number;
  average_processing_time?: number;
  countError?(err: Error): void;
}

function statsOf(svc: Service, name: string): EndpointStats | undefined {
  const handlers = (svc as unknown as { handlers?: Array<{ name: string; stats?: EndpointStats }> }).handlers;
  return Array.isArray(handlers) ? handlers.find((h) => h.name === name)?.stats : undefined;
}

/** Records an async handler's outcome in the micro-service stats of endpoint `name`. */
export function countAsyncOutcome(svc: Service, name: string, awaitedMs: number, err?: Error): void {
  const stats = statsOf(svc, name);
  if (!stats) return;
  if (err) stats.countError?.(err);
  if (typeof stats.processing_time === "number" && typeof stats.num_requests === "number" && stats.num_requests > 0) {
    stats.processing_time += Math.round(awaitedMs * 1_000_000);
    stats.average_processing_time = Math.round(stats.processing_time / stats.num_requests);
  }
}
