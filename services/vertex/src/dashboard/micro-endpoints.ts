import type { NatsConnection } from "@nats-io/nats-core";
import { Svcm } from "@nats-io/services";
import type { DashboardEndpoint } from "./dashboard-snapshot";

const NS_PER_MS = 1_000_000;

/**
 * Requests, errors and handler time of every endpoint of one mesh, from NATS micro stats, summed
 * over replicas. Every micro service on the server answers the stats request, other meshes' too,
 * so replies are kept only when their metadata names this mesh's prefix.
 */
export async function readMicroEndpoints(
  nc: NatsConnection,
  prefix: string,
  waitMs: number,
): Promise<DashboardEndpoint[]> {
  // "stall": done once replies stop coming for a moment, so a quiet mesh costs little more
  // than one round trip, while `waitMs` caps the wait when nothing answers at all.
  const client = new Svcm(nc).client({ strategy: "stall", maxWait: waitMs, stall: Math.min(300, waitMs) });
  const sums = new Map<string, DashboardEndpoint>();
  for await (const s of await client.stats()) {
    if (s.metadata?.prefix !== prefix) continue;
    for (const e of s.endpoints ?? []) {
      const key = `${s.name}\u0000${e.name}`;
      const sum = sums.get(key) ?? {
        service: s.name,
        endpoint: e.name,
        instances: 0,
        requests: 0,
        errors: 0,
        totalMs: 0,
        meanMs: 0,
      };
      sum.instances += 1;
      sum.requests += e.num_requests;
      sum.errors += e.num_errors;
      sum.totalMs += e.processing_time / NS_PER_MS;
      sums.set(key, sum);
    }
  }
  const out = [...sums.values()];
  for (const e of out) e.meanMs = e.requests > 0 ? e.totalMs / e.requests : 0;
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.endpoint.localeCompare(b.endpoint));
}
