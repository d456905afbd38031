import { jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { NodeInfo } from "@machina/protos";
import { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import type { DashboardEndpoint, DashboardNode, DashboardSnapshot, DashboardSource } from "./dashboard-snapshot";
import { readFetchQuotas } from "./fetch-quotas";
import { addHistograms, histogramDelta, quantile } from "../monitoring/index";
import type { HistogramDelta } from "../monitoring/index";
import { readMicroEndpoints } from "./micro-endpoints";
import { readConsumerLag, readDeadLetterSize } from "./stream-backlog";

/** Options of {@link natsSnapshot}. */
export interface NatsSnapshotOptions {
  /** Longest wait for any one part of a snapshot, ms. Default 1 500, under the page's 2 s interval. */
  timeoutMs?: number;
}

function nodeRow(n: NodeInfo, now: number): DashboardNode {
  return {
    service: n.service,
    id: n.id,
    hostname: n.hostname,
    version: n.version,
    configHead: n.configHead,
    cpuCores: n.cpuCores,
    ramBytes: Number(n.ramBytes),
    // A node from before heartbeats carried load reports zeros: show nothing rather than 0 %.
    ...(n.rssBytes ? { cpuPercent: n.cpuPercent, rssBytes: Number(n.rssBytes) } : {}),
    uptimeMs: n.uptimeMs ? Number(n.uptimeMs) : Math.max(0, now - Number(n.startedAt)),
  };
}

// p99 per endpoint from the handler-time histograms the replicas send with their heartbeats, over
// each replica's lifetime (vertex.stats has it per interval). A replica with other bounds is left out.
function addPercentiles(endpoints: DashboardEndpoint[], nodes: readonly NodeInfo[]): void {
  const byEndpoint = new Map<string, HistogramDelta>();
  for (const n of nodes) {
    for (const h of n.handlerTimes ?? []) {
      if (h.kind !== "endpoint") continue;
      const key = `${n.service}\u0000${h.name}`;
      const was = byEndpoint.get(key);
      const sum = addHistograms(was, histogramDelta(h, undefined));
      if (sum !== undefined) byEndpoint.set(key, sum);
    }
  }
  for (const e of endpoints) {
    const h = byEndpoint.get(`${e.service}\u0000${e.endpoint}`);
    const p99 = h === undefined ? NaN : quantile(h, 0.99);
    if (!Number.isNaN(p99)) e.p99Ms = p99 * 1000;
  }
}

/**
 * A dashboard source reading what the mesh of `names` exposes over NATS today: live nodes
 * (`vertex.nodes`), micro stats of every endpoint, consumer backlog of the work streams, the
 * DLQ's size, and `fetch.quota` of every source when a fetch service answers. Each part is read
 * on its own, so one that fails is named in `unavailable` and the others still show.
 */
export function natsSnapshot(nc: NatsConnection, names: MeshNames, opts: NatsSnapshotOptions = {}): DashboardSource {
  const timeoutMs = opts.timeoutMs ?? 1_500;
  const client = new MeshClient(nc);
  let jsm: Promise<JetStreamManager> | undefined;
  const manager = () => {
    jsm ??= jetstreamManager(nc).catch((err: unknown) => {
      jsm = undefined; // try again next time, e.g. after a reconnect
      throw err;
    });
    return jsm;
  };

  return async () => {
    const at = Date.now();
    const unavailable: string[] = [];
    const part = async <T>(what: string, read: () => Promise<T>, empty: T): Promise<T> => {
      try {
        return await read();
      } catch (err) {
        unavailable.push(`${what}: ${(err as Error).message}`);
        return empty;
      }
    };
    const [infos, endpoints, lag, dlq, quotas] = await Promise.all([
      part(
        "nodes",
        async () => (await client.request(names.vertex.nodes, "Empty", {}, "NodeList", { timeoutMs })).nodes,
        [] as NodeInfo[],
      ),
      part("endpoints", () => readMicroEndpoints(nc, names.prefix, timeoutMs), [] as DashboardEndpoint[]),
      part("lag", async () => readConsumerLag(await manager(), names), []),
      part("dlq", async () => readDeadLetterSize(await manager(), names), { messages: 0, bytes: 0 }),
      part("quotas", () => readFetchQuotas(client, names, timeoutMs), []),
    ]);
    addPercentiles(endpoints, infos);
    const snapshot: DashboardSnapshot = {
      at,
      nodes: infos.map((n) => nodeRow(n, at)),
      endpoints,
      lag,
      dlq,
      quotas,
      unavailable,
    };
    return snapshot;
  };
}
