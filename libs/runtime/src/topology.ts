import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import type { MeshNames } from "@machina/subjects";

/** Stream keys of the durable pipeline. */
export type PipelineStream = "FETCH" | "FETCHED" | "AGGREGATE" | "STORE" | "DLQ";

const NS_PER_MS = 1_000_000;

/** Stream configs of the pipeline: work queues for tasks, a limits stream for dead letters. */
export function pipelineStreams(
  names: MeshNames,
  replicas = 1,
): Record<PipelineStream, Partial<StreamConfig> & { name: string }> {
  const work = (key: Exclude<PipelineStream, "DLQ">): Partial<StreamConfig> & { name: string } => ({
    name: names.streams[key],
    subjects: [names.streamSubjects[key]],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    // Task ids are deterministic (tick + lead + query); within this window a second
    // publish of the same id, e.g. from another invoke replica, is dropped.
    duplicate_window: 5 * 60_000 * NS_PER_MS,
  });
  return {
    // One queued task per (source, query, lead): a newer one supersedes it, so a source whose
    // quota is smaller than demand keeps a bounded backlog.
    FETCH: { ...work("FETCH"), max_msgs_per_subject: 1 },
    FETCHED: work("FETCHED"),
    AGGREGATE: work("AGGREGATE"),
    STORE: work("STORE"),
    DLQ: {
      name: names.streams.DLQ,
      subjects: [names.streamSubjects.DLQ],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      max_age: 14 * 86_400_000 * NS_PER_MS,
    },
  };
}

/** Creates a stream, or updates it when it exists (idempotent; safe from every replica). */
export async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add(cfg);
    } catch (addErr) {
      // Another replica won the race; the stream now exists.
      if (!/already in use|exists/i.test(String((addErr as Error).message))) throw addErr;
    }
  }
}

/** Options of a durable pull consumer. */
export interface DurableOptions {
  /** Ack wait before redelivery, ms. Default 30 000. */
  ackWaitMs?: number;
  /** Max unacked messages outstanding across replicas. Default 1000. */
  maxAckPending?: number;
}

/** Creates (or keeps) a durable pull consumer that every replica of a service shares. */
export async function ensureDurable(
  jsm: JetStreamManager,
  stream: string,
  durable: string,
  filter: string,
  opts: DurableOptions = {},
): Promise<void> {
  const cfg = {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filter,
    ack_wait: (opts.ackWaitMs ?? 30_000) * NS_PER_MS,
    // Redelivery is bounded by our own dead-letter logic, not by the server, so that
    // quota delays (naks) never push a task into the dead-letter stream.
    max_deliver: -1,
    max_ack_pending: opts.maxAckPending ?? 1000,
  };
  try {
    await jsm.consumers.info(stream, durable);
    await jsm.consumers.update(stream, durable, cfg);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.consumers.add(stream, cfg);
    } catch (addErr) {
      if (!/already|exists/i.test(String((addErr as Error).message))) throw addErr;
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: number }; message?: string };
  return (
    /not found/i.test(String(e?.message ?? "")) || e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014
  );
}
