// What the dashboard page draws, one reading of the mesh at a time. Counters are totals since
// each instance started, as the sources report them; the page turns two readings into rates,
// so a snapshot source needs no memory of its own.

/** One live service instance, as the registry lists it. */
export interface DashboardNode {
  service: string;
  id: string;
  hostname: string;
  version: string;
  /** Head of the config chain the instance runs ("" until live config exists). */
  configHead: string;
  cpuCores: number;
  ramBytes: number;
  /** Share of its cores the instance uses now, 0–100, when the source knows it. */
  cpuPercent?: number;
  /** Resident memory of the instance now, when the source knows it. */
  rssBytes?: number;
  uptimeMs: number;
}

/** One endpoint of one service, summed over the service's replicas. */
export interface DashboardEndpoint {
  service: string;
  endpoint: string;
  /** Replicas that reported this endpoint. */
  instances: number;
  requests: number;
  errors: number;
  /** Handler time summed over every request, ms (the page divides deltas for an interval's mean). */
  totalMs: number;
  /** Mean handler time since the replicas started, ms. */
  meanMs: number;
  /** 99th percentile handler time, ms, when the source measures it (micro stats carry no percentiles). */
  p99Ms?: number;
}

/** Backlog of one durable consumer. */
export interface DashboardLag {
  stream: string;
  durable: string;
  /** Messages waiting to be delivered. */
  pending: number;
  /** Delivered, not yet acknowledged. */
  ackPending: number;
}

/** Use of one rate window of one source, across every fetch replica. */
export interface DashboardQuota {
  source: string;
  windowMs: number;
  align: string;
  used: number;
  quota: number;
  percent: number;
}

/** One reading of the mesh for the dashboard. */
export interface DashboardSnapshot {
  /** When it was taken, epoch ms. */
  at: number;
  nodes: DashboardNode[];
  endpoints: DashboardEndpoint[];
  lag: DashboardLag[];
  dlq: { messages: number; bytes: number };
  quotas: DashboardQuota[];
  /** Parts that could not be read this time, each with why; the rest of the snapshot still holds. */
  unavailable: string[];
}

/** Where the dashboard gets its readings: called once per interval, shared by every open page. */
export type DashboardSource = () => Promise<DashboardSnapshot>;
