// A pipeline flow with replicas as separate processes against one NATS (a server or a cluster)
// and one Cassandra: N leads fired once through fetch → invoke → aggregate → data → clean job,
// watched until every dump and clean row is stored, then counted per replica and in Cassandra.
// The scaling demo (`make scale-demo`), the scale-out test and the NATS cluster test drive it.
import { rmSync } from "node:fs";
import type cassandra from "cassandra-driver";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { meshNames, type MeshNames } from "@machina/subjects";
import { adminCqlClient } from "./cassandra-env";
import { startFakeApiProc, type FakeApiProc } from "./fake-api-proc";
import { exactlyOnce, tallyRows, type RowTally } from "./flow-rows";
import { NATS_URL, removeNetwork, uniquePrefix } from "./nats-env";
import { PIPELINE, leadDomain, writePipelineConfig, type FlowSource } from "./pipeline-config";
import {
  cleanMerged,
  countPerReplica,
  pipelineWorkers,
  startReplicas,
  type Replica,
  type ReplicaCount,
} from "./replica-set";
import { scrapeMetrics, sumSamples } from "./metrics-text";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Options of {@link PipelineFlow.start}. */
export interface PipelineFlowOptions {
  /** Leads in the ledger; each source fetches every one once. */
  leads: number;
  /** Replicas per service, started in this order (data first: it makes the tables). */
  replicas: Record<string, number>;
  /** Partitions of the website forward_fill aggregator. Default: the aggregate replicas, at least 2. */
  partitions?: number;
  /** Default: one unlimited source. Each source's key env var gets its `apiKeys` key. */
  sources?: FlowSource[];
  /** FAKE_API_KEYS of the upstream. Default one key, `flow-key`, with no practical limit. */
  apiKeys?: string;
  /** The key each source sends, by source name. Default `flow-key`. */
  keyOf?(source: string): string;
  /** Comma-separated server URLs the services and this process use. Default the test server. */
  natsUrl?: string;
  /** More env of every replica (e.g. MACHINA_NATS_REPLICAS). */
  env?: Record<string, string>;
  /** Clean job interval of the data replicas, ms. Default 1000. */
  cleanIntervalMs?: number;
  /** Hears progress lines. Default silent. */
  note?(line: string): void;
  /** Prefix label. Default `flow`. */
  label?: string;
  /** Replicas starting at once. Default 3. */
  parallel?: number;
}

/** Rows so far: dump rows per (lead, source) and clean rows per lead. */
export interface FlowRows {
  dump: RowTally;
  clean: RowTally;
}

/** What a finished flow shows. */
export interface FlowReport extends FlowRows {
  perReplica: ReplicaCount[];
  /** Dead letters of the flow's network. */
  deadLetters: number;
  /** True when every expected dump and clean row is stored exactly once. */
  exactlyOnce: boolean;
}

/** One running flow: its network, upstream, processes and clients; `close()` removes it all. */
export class PipelineFlow {
  readonly names: MeshNames;
  readonly keyspace: string;
  replicas: Replica[] = [];
  private readonly closers: Array<() => Promise<unknown>> = [];
  private nc!: NatsConnection;
  private jsm!: JetStreamManager;
  private cql!: cassandra.Client;
  private api!: FakeApiProc;
  private readonly sources: FlowSource[];

  private constructor(
    readonly opts: PipelineFlowOptions,
    readonly prefix: string,
  ) {
    this.names = meshNames(prefix);
    this.keyspace = `${prefix}_ks`;
    this.sources = opts.sources ?? [{ name: PIPELINE.source }];
  }

  /** Starts the upstream and every replica; on a failure what was started is closed again. */
  static async start(opts: PipelineFlowOptions): Promise<PipelineFlow> {
    const flow = new PipelineFlow(opts, uniquePrefix(opts.label ?? "flow"));
    try {
      await flow.open();
    } catch (err) {
      await flow.close();
      throw err;
    }
    return flow;
  }

  private note(line: string): void {
    this.opts.note?.(line);
  }

  private async open(): Promise<void> {
    const { opts } = this;
    const url = opts.natsUrl ?? NATS_URL;
    this.nc = await connect({ servers: url.split(","), maxReconnectAttempts: -1 });
    this.closers.push(async () => {
      await removeNetwork(this.nc, this.names).catch(() => undefined);
      await this.nc.close();
    });
    this.jsm = await jetstreamManager(this.nc);
    const { client, localDataCenter } = await adminCqlClient();
    this.cql = client;
    this.closers.push(async () => {
      await client.execute(`DROP KEYSPACE IF EXISTS ${this.keyspace}`).catch(() => undefined);
      await client.shutdown();
    });
    this.api = await startFakeApiProc(opts.apiKeys ?? "flow-key:1000000000/1000");
    this.closers.push(() => this.api.stop());
    const aggregates = opts.replicas.aggregate ?? 0;
    const partitions = opts.partitions ?? Math.max(2, aggregates);
    const configDir = writePipelineConfig(opts.leads, this.api.url, {
      sources: this.sources,
      aggregator: `aggregator: forward_fill\nmax_age: 1d\npartitions: ${partitions}\n`,
    });
    this.closers.push(async () => rmSync(configDir, { recursive: true, force: true }));
    const keys = Object.fromEntries(
      this.sources.map((s) => [s.keyEnv ?? PIPELINE.keyEnv, opts.keyOf?.(s.name) ?? "flow-key"]),
    );
    this.note(`starting ${describePlan(opts.replicas)} (prefix ${this.prefix}, ${opts.leads} leads)`);
    this.closers.push(() => Promise.allSettled(this.replicas.map((r) => r.stop())));
    this.replicas = await startReplicas(opts.replicas, {
      configDir,
      prefix: this.prefix,
      readyTimeoutMs: 180_000,
      parallel: opts.parallel,
      env: {
        ...keys,
        MACHINA_NATS_URL: url,
        MACHINA_DATA_CASSANDRA_KEYSPACE: this.keyspace,
        MACHINA_DATA_CASSANDRA_LOCAL_DATA_CENTER: localDataCenter,
        MACHINA_DATA_CASSANDRA_REPLICATION: `${localDataCenter}:1`,
        MACHINA_DATA_CLEAN_INTERVAL_MS: String(opts.cleanIntervalMs ?? 1000),
        ...opts.env,
      },
    });
    // Partitions move to a replica that joins within a lease round; fire once every one has some.
    const owners = this.byService("aggregate").slice(0, partitions);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const owned = await Promise.all(
        owners.map(async (r) => sumSamples(await scrapeMetrics(r.probePort), "machina_aggregate_partition_owned")),
      );
      if (owned.every((n) => n > 0)) break;
      if (Date.now() > deadline) throw new Error(`aggregate partitions did not spread: owned ${owned.join(", ")}`);
      await sleep(250);
    }
  }

  /** The replicas of one service. */
  byService(service: string): Replica[] {
    return this.replicas.filter((r) => r.service === service);
  }

  /** The flow's upstream (its stats count calls per key and the most in any interval). */
  get upstream(): FakeApiProc {
    return this.api;
  }

  /** A connection to the flow's NATS, with the JetStream manager. */
  get connection(): { nc: NatsConnection; jsm: JetStreamManager } {
    return { nc: this.nc, jsm: this.jsm };
  }

  /** Fires the flow's trigger once; resolves with invoke's reply once every task is published. */
  async fire(): Promise<{ tasks: number; duplicates: number }> {
    const m = await this.nc.request(this.names.invoke.fire, JSON.stringify({ trigger: PIPELINE.trigger }), {
      timeout: 120_000,
    });
    const error = m.headers?.get("Nats-Service-Error");
    if (error) throw new Error(`invoke.fire answered ${error}: ${m.string()}`);
    return JSON.parse(m.string()) as { tasks: number; duplicates: number };
  }

  /** Dump rows per (lead, source) and clean rows per lead, against what the flow must store. */
  async rows(): Promise<FlowRows> {
    const n = this.opts.leads;
    const leads = Array.from({ length: n }, (_, i) => leadDomain(i));
    const dump = await tallyRows(
      this.cql,
      `${this.keyspace}.dump_${PIPELINE.type}`,
      ["domain", "source"],
      (r) => `${String(r.get("domain"))}|${String(r.get("source"))}`,
      this.sources.flatMap((s) => leads.map((d) => `${d}|${s.name}`)),
    );
    const clean = await tallyRows(
      this.cql,
      `${this.keyspace}.clean_${PIPELINE.type}`,
      ["domain"],
      (r) => String(r.get("domain")),
      leads,
    );
    return { dump, clean };
  }

  /** Expected dump rows (leads × sources). */
  get expectedDump(): number {
    return this.opts.leads * this.sources.length;
  }

  /**
   * Waits until every expected dump and clean row is there and the pipeline streams are drained
   * (nothing pending or unacked, so no late copy is still on its way), or `timeoutMs` passed.
   */
  async settle(timeoutMs: number): Promise<FlowRows> {
    const deadline = Date.now() + timeoutMs;
    let lastNote = Date.now();
    let rows = await this.rows().catch(() => undefined);
    while (Date.now() < deadline) {
      rows = await this.rows().catch(() => rows);
      if (
        rows !== undefined &&
        rows.dump.missing === 0 &&
        rows.clean.missing === 0 &&
        (await this.drained().catch(() => false))
      )
        return rows;
      if (Date.now() - lastNote > 10_000 && rows !== undefined) {
        lastNote = Date.now();
        this.note(
          `dump rows ${rows.dump.rows} of ${this.expectedDump}, clean rows ${rows.clean.rows} of ${this.opts.leads}`,
        );
      }
      await sleep(1_000);
    }
    return rows ?? (await this.rows());
  }

  /** True when no durable consumer of the pipeline streams has pending or unacked messages. */
  async drained(): Promise<boolean> {
    for (const key of ["FETCH", "FETCHED", "AGGREGATE", "STORE"] as const) {
      const stream = this.names.streams[key];
      for await (const c of this.jsm.consumers.list(stream))
        if (c.num_pending > 0 || c.num_ack_pending > 0) return false;
    }
    return true;
  }

  /** Per-replica counts and the rows, once the flow settled. */
  async report(rows: FlowRows): Promise<FlowReport> {
    const perReplica = await countPerReplica(this.replicas, pipelineWorkers(this.sources[0].name));
    // A fetch replica works one consumer per source: count them all.
    for (const c of perReplica) {
      const r = this.replicas.find((x) => x.label === c.label)!;
      if (r.service === "fetch" && this.sources.length > 1) {
        const samples = await scrapeMetrics(r.probePort);
        c.acked = this.sources.reduce(
          (n, s) => n + sumSamples(samples, "machina_messages_total", { consumer: `fetch-${s.name}`, outcome: "ack" }),
          0,
        );
      }
      if (r.service === "data") c.extra.cleanMerged = cleanMerged(r);
    }
    const deadLetters = (await this.jsm.streams.info(this.names.streams.DLQ)).state.messages;
    return {
      ...rows,
      perReplica,
      deadLetters,
      exactlyOnce: exactlyOnce(rows.dump, this.expectedDump) && exactlyOnce(rows.clean, this.opts.leads),
    };
  }

  /** Stops every replica and the upstream, removes the network's streams, buckets and keyspace. */
  async close(): Promise<void> {
    for (const c of this.closers.reverse()) await c().catch(() => undefined);
    this.closers.length = 0;
  }
}

/** `3 fetch, 2 aggregate, …` */
export function describePlan(plan: Record<string, number>): string {
  return Object.entries(plan)
    .map(([s, n]) => `${n} ${s}`)
    .join(", ");
}
