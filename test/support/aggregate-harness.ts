// Helpers of the aggregate tests: in-process aggregate replicas, batches into AGGREGATE, and a
// collector of everything aggregate stores on STORE (the data service is not running).
import type { NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { ConsumerMessages } from "@nats-io/jetstream";
import type { JsonObject, RecordBatch } from "@machina/protos";
import { codec } from "@machina/protos";
import { createAggregateService } from "@machina/aggregate";
import type { AggregateConfig } from "@machina/aggregate";
import { MeshClient, publishDurable, startService } from "@machina/runtime";
import type { RunningService } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { NATS_URL } from "./nats-env";
import { writeConfig } from "./service-procs";

export { eventually } from "./eventually";

/** A config root whose aggregators are `files` (`<type>.yaml` → text), with the example website type. */
export function aggregateConfig(files: Record<string, string>): string {
  return writeConfig(Object.fromEntries(Object.entries(files).map(([f, t]) => [`aggregate/aggregators/${f}`, t])));
}

/** Starts one aggregate replica in this process. */
export function startAggregate(opts: {
  configDir: string;
  prefix: string;
  node: string;
  clock?: () => number;
  leaseTtlMs?: number;
}): Promise<RunningService<AggregateConfig>> {
  return startService(createAggregateService({ clock: opts.clock }), {
    configDir: opts.configDir,
    handleSignals: false,
    env: {
      MACHINA_NATS_URL: NATS_URL,
      MACHINA_MESH_PREFIX: opts.prefix,
      MACHINA_MESH_NODE: opts.node,
      MACHINA_HTTP_PORT: "0",
      MACHINA_LOG_LEVEL: process.env.MACHINA_TEST_LOG_LEVEL ?? "error",
      MACHINA_AGGREGATE_LEASE_TTL_MS: String(opts.leaseTtlMs ?? 3000),
    },
  });
}

/** A batch of `type` with its dump-row provenance. */
export function batch(type: string, id: string, fetchedAt: number, records: JsonObject[], source = "src"): RecordBatch {
  return { id, type, source, query: "q", taskId: id, fetchedAt, records, firstSeq: 0 };
}

/** Publishes each batch as its own AGGREGATE message (as invoke's handler does), all at once (in no set order). */
export async function sendBatches(nc: NatsConnection, names: MeshNames, batches: RecordBatch[]): Promise<void> {
  const client = new MeshClient(nc);
  await Promise.all(
    batches.map((b) =>
      publishDurable(client, names.task.aggregate(b.type), "RecordBatches", { batches: [b] }, { msgID: b.id }),
    ),
  );
  client.close();
}

/** Everything aggregate published to STORE, message by message. */
export interface StoreCollector {
  /** Every stored output batch, in arrival order. */
  batches(): RecordBatch[];
  /** The Nats-Msg-Id of every STORE message. */
  messageIds(): string[];
  stop(): Promise<void>;
}

/** Consumes (and acks) the STORE stream of `names`, keeping what arrives. */
export async function collectStore(nc: NatsConnection, names: MeshNames): Promise<StoreCollector> {
  const jsm = await jetstreamManager(nc);
  const durable = "test-collector";
  await jsm.consumers.add(names.streams.STORE, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    filter_subject: names.streamSubjects.STORE,
  });
  const consumer = await jetstream(nc).consumers.get(names.streams.STORE, durable);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 256 });
  const got: RecordBatch[] = [];
  const ids: string[] = [];
  const c = codec("RecordBatches");
  const done = (async () => {
    for await (const m of messages) {
      got.push(...c.decode(m.data).batches);
      ids.push(m.headers?.get("Nats-Msg-Id") ?? "");
      m.ack();
    }
  })();
  return {
    batches: () => [...got],
    messageIds: () => [...ids],
    async stop() {
      messages.stop();
      await done;
    },
  };
}

/** Output records as comparable lines: batch id, row (fetched_at, source, query, seq) and the record. */
export function outputLines(batches: readonly RecordBatch[]): string[] {
  return batches
    .flatMap((b) =>
      b.records.map(
        (r, i) =>
          `${b.id} ${b.fetchedAt} ${b.source} ${b.query} ${(b.firstSeq || 0) + i} ${JSON.stringify(r, Object.keys(r).sort())}`,
      ),
    )
    .sort();
}

/** Deletes the pipeline streams and aggregate's buckets of a test network. */
export async function dropNetwork(nc: NatsConnection, names: MeshNames): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => undefined);
  for (const b of [names.buckets.aggregateState, names.buckets.aggregateLeases, names.buckets.nodes])
    await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
}
