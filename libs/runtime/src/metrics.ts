import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { FastCounter, FastHistogram } from "./fast-metrics";

/** The metrics every service exposes on /metrics. */
export interface ServiceMetrics {
  registry: Registry;
  requests: FastCounter<"endpoint" | "outcome">;
  requestSeconds: FastHistogram<"endpoint">;
  messages: FastCounter<"consumer" | "outcome">;
  messageSeconds: FastHistogram<"consumer">;
  /** Messages a durable consumer has not delivered yet (its lag; what a KEDA scaler reads). */
  consumerPending: Gauge<"stream" | "consumer">;
  /** Messages delivered and not yet acknowledged. */
  consumerAckPending: Gauge<"stream" | "consumer">;
}

/** Creates the registry and standard metrics of one service process. */
export function createMetrics(service: string): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new FastCounter({
      name: "machina_requests_total",
      help: "Request/reply calls handled, by endpoint and outcome (ok or an error code).",
      labelNames: ["endpoint", "outcome"],
      registers: [registry],
    }),
    requestSeconds: new FastHistogram({
      name: "machina_request_seconds",
      help: "Handler time of request/reply calls, including awaited work.",
      labelNames: ["endpoint"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15],
      registers: [registry],
    }),
    messages: new FastCounter({
      name: "machina_messages_total",
      help: "Durable pipeline messages handled, by consumer and outcome (ack, nak, delay, dead).",
      labelNames: ["consumer", "outcome"],
      registers: [registry],
    }),
    messageSeconds: new FastHistogram({
      name: "machina_message_seconds",
      help: "Handler time of durable pipeline messages.",
      labelNames: ["consumer"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15],
      registers: [registry],
    }),
    consumerPending: new Gauge({
      name: "machina_consumer_pending",
      help: "Messages waiting for a durable consumer (lag), sampled every few seconds.",
      labelNames: ["stream", "consumer"],
      registers: [registry],
    }),
    consumerAckPending: new Gauge({
      name: "machina_consumer_ack_pending",
      help: "Messages a durable consumer delivered that are not acknowledged yet.",
      labelNames: ["stream", "consumer"],
      registers: [registry],
    }),
  };
}

/** Adds a gauge read from `read()` at every scrape, e.g. a counter kept by a library object. */
export function observeGauge(metrics: ServiceMetrics, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [metrics.registry],
    collect() {
      this.set(read());
    },
  });
}

/** Adds a counter with labels to the service's registry. */
export function addCounter<L extends string>(
  metrics: ServiceMetrics,
  name: string,
  help: string,
  labelNames: readonly L[],
): Counter<L> {
  return new Counter({ name, help, labelNames: [...labelNames], registers: [metrics.registry] });
}
