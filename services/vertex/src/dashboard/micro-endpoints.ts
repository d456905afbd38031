import type { NatsConnection } from "@nats-io/nats-core";
import { meshMicroStats } from "../monitoring/index";
import type { DashboardEndpoint } from "./dashboard-snapshot";

const NS_PER_MS = 1_000_000;

/** Requests, errors and handler time of every endpoint of one mesh, from NATS micro stats, summed over replicas. */
export async function readMicroEndpoints(
  nc: NatsConnection,
  prefix: string,
  waitMs: number,
): Promise<DashboardEndpoint[]> {
  // Done once replies stop coming for a moment, so a quiet mesh costs little more than one
  // round trip, while `waitMs` caps the wait when nothing answers at all.
  const stats = await meshMicroStats(nc, prefix, { maxWaitMs: waitMs, stallMs: Math.min(300, waitMs) });
  const sums = new Map<string, DashboardEndpoint>();
  for (const e of stats) {
    const key = `${e.service}\u0000${e.endpoint}`;
    const sum = sums.get(key) ?? {
      service: e.service,
      endpoint: e.endpoint,
      instances: 0,
      requests: 0,
      errors: 0,
      totalMs: 0,
      meanMs: 0,
    };
    sum.instances += 1;
    sum.requests += e.requests;
    sum.errors += e.errors;
    sum.totalMs += e.processingNs / NS_PER_MS;
    sums.set(key, sum);
  }
  const out = [...sums.values()];
  for (const e of out) e.meanMs = e.requests > 0 ? e.totalMs / e.requests : 0;
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.endpoint.localeCompare(b.endpoint));
}
