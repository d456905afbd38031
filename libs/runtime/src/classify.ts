import { MachinaError, toMachinaError } from "@machina/wire";

// Errors of the NATS client that mean "the server or the stream is not reachable right now".
const TRANSIENT_NATS = new Set([
  "TimeoutError",
  "NoRespondersError",
  "ClosedConnectionError",
  "ConnectionError",
  "DrainingConnectionError",
  "RequestError",
  "JetStreamStatusError",
]);

/**
 * Turns anything a handler threw into a MachinaError. A NATS client error that a reconnect can
 * cure (time-out, no responders during a server restart, a closed connection) is UNAVAILABLE
 * and retryable, so an outage makes work wait instead of dead-lettering it.
 */
export function classifyThrown(thrown: unknown): MachinaError {
  if (thrown instanceof MachinaError) return thrown;
  const name = (thrown as { name?: unknown } | null)?.name;
  if (typeof name === "string" && TRANSIENT_NATS.has(name)) {
    return new MachinaError("UNAVAILABLE", `NATS is not reachable: ${(thrown as Error).message}`, {
      cause: thrown,
      details: { dependency: "nats" },
    });
  }
  return toMachinaError(thrown);
}
