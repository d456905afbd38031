import type { NatsConnection } from "@nats-io/nats-core";
import type { Collector } from "./collector";
import { meshMicroStats } from "./mesh-micro-stats";
import { seriesName } from "./series-names";
import type { Sample } from "./series-names";

interface Counters {
  requests: number;
  errors: number;
  /** Nanoseconds, every request. */
  processing: number;
}

// Replies to $SRV.STATS are gathered for this long after the last one came.
const STATS_WAIT_MS = 1000;

/**
 * Requests, errors and mean handler time per (service, endpoint) from NATS micro stats, summed
 * over the service's replicas of this mesh, as the change since the previous tick. The micro
 * stats are totals since each instance started; a new instance (unseen id) counts from zero,
 * and one whose totals went down restarted its counters, so its totals are its change.
 */
export class EndpointStatsCollector implements Collector {
  readonly name = "endpoint stats";
  private readonly previous = new Map<string, Counters>();

  constructor(
    private readonly nc: NatsConnection,
    /** Only instances whose micro metadata names this prefix belong to the mesh. */
    private readonly prefix: string,
  ) {}

  async collect(t: number): Promise<Sample[]> {
    const sums = new Map<string, Counters & { service: string; endpoint: string }>();
    const seen = new Set<string>();
    for (const ep of await meshMicroStats(this.nc, this.prefix, { maxWaitMs: STATS_WAIT_MS * 3 })) {
      const id = `${ep.service}\u0000${ep.instance}\u0000${ep.endpoint}`;
      seen.add(id);
      const now: Counters = { requests: ep.requests, errors: ep.errors, processing: ep.processingNs };
      const before = this.previous.get(id) ?? { requests: 0, errors: 0, processing: 0 };
      this.previous.set(id, now);
      const restarted = now.requests < before.requests || now.errors < before.errors;
      const base = restarted ? { requests: 0, errors: 0, processing: 0 } : before;
      const key = `${ep.service}\u0000${ep.endpoint}`;
      const sum = sums.get(key) ?? {
        service: ep.service,
        endpoint: ep.endpoint,
        requests: 0,
        errors: 0,
        processing: 0,
      };
      sum.requests += now.requests - base.requests;
      sum.errors += now.errors - base.errors;
      sum.processing += Math.max(0, now.processing - base.processing);
      sums.set(key, sum);
    }
    // Instances that left are forgotten, so the map stays as large as the mesh.
    for (const id of this.previous.keys()) if (!seen.has(id)) this.previous.delete(id);
    const out: Sample[] = [];
    for (const s of sums.values()) {
      out.push({ series: seriesName.endpoint(s.service, s.endpoint, "requests"), t, value: s.requests });
      out.push({ series: seriesName.endpoint(s.service, s.endpoint, "errors"), t, value: s.errors });
      if (s.requests > 0)
        out.push({
          series: seriesName.endpoint(s.service, s.endpoint, "mean_ms"),
          t,
          value: s.processing / s.requests / 1e6,
        });
    }
    return out;
  }
}
