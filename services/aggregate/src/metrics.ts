import { Counter, Gauge, Histogram } from "prom-client";
import type { ServiceMetrics } from "@machina/runtime";

/** Aggregate's own metrics, on the service's /metrics. */
export interface AggregateMetrics {
  /** Records by type and outcome: closed, complete, timed_out (emitted), late_dropped, late_corrected, refused. */
  records: Counter<"type" | "outcome">;
  /** Time to store one commit of a partition's state. */
  commitSeconds: Histogram<"type">;
  /** Key states written (or deleted) by commits. */
  stateWrites: Counter<"type">;
  /** Keys with state in each partition this replica owns. */
  stateKeys: Gauge<"type" | "partition">;
  /** 1 for each partition this replica owns now. */
  owned: Gauge<"type" | "partition">;
}

/** Registers aggregate's metrics in the service registry. */
export function createAggregateMetrics(m: ServiceMetrics): AggregateMetrics {
  const registers = [m.registry];
  return {
    records: new Counter({
      name: "machina_aggregate_records_total",
      help: "Records of stateful aggregators by outcome: closed, complete and timed_out emit a record; late_dropped and refused do not; late_corrected emits a window again.",
      labelNames: ["type", "outcome"],
      registers,
    }),
    commitSeconds: new Histogram({
      name: "machina_aggregate_commit_seconds",
      help: "Time to store one atomic commit of a partition's state.",
      labelNames: ["type"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    stateWrites: new Counter({
      name: "machina_aggregate_state_writes_total",
      help: "Key states written or deleted by commits (one KV entry each; records applied per write show how well commits batch).",
      labelNames: ["type"],
      registers,
    }),
    stateKeys: new Gauge({
      name: "machina_aggregate_state_keys",
      help: "Keys with state (open windows, partials, last values) in each partition this replica owns.",
      labelNames: ["type", "partition"],
      registers,
    }),
    owned: new Gauge({
      name: "machina_aggregate_partition_owned",
      help: "1 for each partition of a stateful type this replica owns (works on) now.",
      labelNames: ["type", "partition"],
      registers,
    }),
  };
}
