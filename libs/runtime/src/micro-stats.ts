import type { Service } from "@nats-io/services";

// The services library only counts errors that a handler throws synchronously; our
// handlers are async, so failures are counted here to keep `nats micro stats` honest.
// It reaches into the library's endpoint records and degrades to a no-op if they change.
interface EndpointRecord {
  name: string;
  stats?: { countError?(err: Error): void };
}

/** Counts an async handler failure in the micro-service stats of endpoint `name`. */
export function countAsyncOutcome(svc: Service, name: string, err: Error): void {
  const handlers = (svc as unknown as { handlers?: EndpointRecord[] }).handlers;
  const rec = Array.isArray(handlers) ? handlers.find((h) => h.name === name) : undefined;
  rec?.stats?.countError?.(err);
}
