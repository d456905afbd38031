import type { NatsConnection } from "@nats-io/nats-core";
import { Svcm } from "@nats-io/services";

/** One endpoint of one instance, as its NATS micro stats say: totals since the instance started. */
export interface InstanceEndpointStats {
  service: string;
  /** The instance's micro id. */
  instance: string;
  endpoint: string;
  requests: number;
  errors: number;
  /** Nanoseconds, every request. */
  processingNs: number;
}

/**
 * The micro stats of every endpoint of one mesh's instances. Every micro service on the server
 * answers `$SRV.STATS`, other meshes' too, so replies count only when their metadata names
 * `prefix`. Replies are gathered until they stop for `stallMs`, at most `maxWaitMs`.
 */
export async function meshMicroStats(
  nc: NatsConnection,
  prefix: string,
  opts: { maxWaitMs: number; stallMs?: number },
): Promise<InstanceEndpointStats[]> {
  const client = new Svcm(nc).client({
    strategy: "stall",
    maxWait: opts.maxWaitMs,
    ...(opts.stallMs === undefined ? {} : { stall: opts.stallMs }),
  });
  const out: InstanceEndpointStats[] = [];
  for await (const s of await client.stats()) {
    if (s.metadata?.prefix !== prefix) continue;
    for (const ep of s.endpoints ?? [])
      out.push({
        service: s.name,
        instance: s.id,
        endpoint: ep.name,
        requests: ep.num_requests,
        errors: ep.num_errors,
        processingNs: ep.processing_time,
      });
  }
  return out;
}
