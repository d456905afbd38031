// Several replicas of several services, each its own process on one config tree and prefix, and
// what each replica handled according to its own /metrics.
import { scrapeMetrics, sumSamples } from "./metrics-text";
import { startServiceProc, type ProcOptions, type ServiceProc } from "./service-procs";

/** One replica process, named `<service>#<n>` (n from 1). */
export interface Replica extends ServiceProc {
  readonly label: string;
  readonly index: number;
}

/** Options of {@link startReplicas}. */
export interface ReplicaOptions extends ProcOptions {
  /** Extra env of one replica, over `env`. Default none. */
  envOf?(service: string, index: number): Record<string, string>;
  /** Processes starting at once (each compiles its sources first). Default 3. */
  parallel?: number;
}

/**
 * Starts `plan` (replicas per service, in the order given) as separate processes. When one fails
 * to start, the ones started are stopped and the error is thrown.
 */
export async function startReplicas(plan: Record<string, number>, opts: ReplicaOptions): Promise<Replica[]> {
  const todo = Object.entries(plan).flatMap(([service, n]) =>
    Array.from({ length: n }, (_, i) => ({ service, index: i + 1 })),
  );
  const started: Replica[] = [];
  let failure: unknown;
  let next = 0;
  const lane = async () => {
    while (failure === undefined && next < todo.length) {
      const { service, index } = todo[next++];
      try {
        const p = await startServiceProc(service, {
          ...opts,
          env: { ...opts.env, ...opts.envOf?.(service, index) },
        });
        started.push(Object.assign(p, { label: `${service}#${index}`, index }));
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 3) }, lane));
  if (failure !== undefined) {
    await Promise.allSettled(started.map((p) => p.stop()));
    throw failure;
  }
  const order = (r: Replica) => todo.findIndex((t) => t.service === r.service && t.index === r.index);
  return started.sort((a, b) => order(a) - order(b));
}

/** What one replica counted: durable messages acked by its worker, and any extra counts. */
export interface ReplicaCount {
  label: string;
  service: string;
  pid: number;
  /** Messages its pipeline worker acked (machina_messages_total{outcome="ack"}), 0 without one. */
  acked: number;
  /** Messages its worker settled otherwise (nak, delay, dead…), by outcome. */
  otherOutcomes: Record<string, number>;
  /** Further per-service counts (aggregate's key states written and partitions owned, data's merged entities). */
  extra: Record<string, number>;
}

/** The durable worker of each pipeline service (the `consumer` label of machina_messages_total). */
export function pipelineWorkers(source: string): Record<string, string> {
  return { fetch: `fetch-${source}`, invoke: "handler", aggregate: "aggregate", data: "store" };
}

/** Scrapes every replica's /metrics for what its worker (`workers[service]`) handled. */
export async function countPerReplica(
  replicas: readonly Replica[],
  workers: Record<string, string>,
): Promise<ReplicaCount[]> {
  return Promise.all(
    replicas.map(async (r) => {
      const samples = await scrapeMetrics(r.probePort);
      const consumer = workers[r.service];
      const otherOutcomes: Record<string, number> = {};
      for (const s of samples)
        if (s.name === "machina_messages_total" && s.labels.consumer === consumer && s.labels.outcome !== "ack")
          otherOutcomes[s.labels.outcome] = (otherOutcomes[s.labels.outcome] ?? 0) + s.value;
      const extra: Record<string, number> = {};
      if (r.service === "aggregate") {
        // Key states its partitions committed: forward_fill writes one per entity it passes on.
        extra.keysWritten = sumSamples(samples, "machina_aggregate_state_writes_total");
        extra.partitions = sumSamples(samples, "machina_aggregate_partition_owned");
      }
      if (r.service === "compute" || r.service === "vertex")
        extra.requests = sumSamples(samples, "machina_requests_total");
      return {
        label: r.label,
        service: r.service,
        pid: r.child.pid ?? -1,
        acked: consumer ? sumSamples(samples, "machina_messages_total", { consumer, outcome: "ack" }) : 0,
        otherOutcomes,
        extra,
      };
    }),
  );
}

/** Entities a data replica's clean job merged so far, from its "clean job merged" log lines. */
export function cleanMerged(r: ServiceProc): number {
  let n = 0;
  for (const m of r.output().matchAll(/"entities":(\d+)[^\n]*"msg":"clean job merged dirty entities"/g))
    n += Number(m[1]);
  return n;
}
