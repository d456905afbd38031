// Every monitoring series is one name; its parts say what it measures, its last part the unit.

/** One monitoring sample: a series' value at a time. */
export interface Sample {
  series: string;
  /** Epoch ms (the sampler's tick). */
  t: number;
  value: number;
}

/** How samples of one series fold into a bucket. */
export const REDUCERS = ["sum", "mean", "max", "min", "last"] as const;

/** One reducer name. */
export type Reducer = (typeof REDUCERS)[number];

/** Names of the series the sampler writes. */
export const seriesName = {
  /** Calls, errors and handler time of one endpoint over all replicas of a service, per sample. */
  endpoint: (service: string, endpoint: string, metric: "requests" | "errors" | "mean_ms" | "p50_ms" | "p99_ms") =>
    `endpoint.${service}.${endpoint}.${metric}`,
  /** Messages and handler time of one durable worker over all replicas of a service, per sample. */
  worker: (service: string, consumer: string, metric: "messages" | "p50_ms" | "p99_ms") =>
    `worker.${service}.${consumer}.${metric}`,
  /** Lag of one durable consumer. */
  consumer: (stream: string, durable: string, metric: "pending" | "ack_pending") =>
    `consumer.${stream}.${durable}.${metric}`,
  /** Dead letters stored. */
  dlq: (metric: "messages" | "bytes") => `dlq.${metric}`,
  /** Machine use of one instance, from its heartbeats. */
  node: (service: string, id: string, metric: "cpu_percent" | "rss_bytes" | "load1") =>
    `node.${service}.${id}.${metric}`,
  /** Use of one rate window of a source across every fetch replica (`per` in ms). */
  quota: (source: string, perMs: number, metric: "usage" | "percent") => `quota.${source}.${perMs}.${metric}`,
};

/**
 * The reducer a series gets when the request names none: counts per sample add up, a
 * percentile keeps its worst sample (a mean of p99s is no p99), the DLQ's size its highest, and
 * anything else is averaged.
 */
export function defaultReducer(series: string): Reducer {
  // The DLQ's size is a level, not a count per sample: its bucket shows the highest level reached.
  if (series.startsWith("dlq.")) return "max";
  if (/\.(requests|errors|messages)$/.test(series)) return "sum";
  if (/\.p\d+_ms$/.test(series)) return "max";
  return "mean";
}
