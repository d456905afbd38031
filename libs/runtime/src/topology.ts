import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import type { Kvm } from "@nats-io/kv";
import { ChainStore } from "@machina/config-chain";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";

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

/**
 * Creates a stream, or updates it when its settings differ from `cfg` (idempotent; safe from
 * every replica). Under a NATS user that may not manage the stream (the admin bootstrap made
 * it): a missing stream is UNAVAILABLE naming the bootstrap, and differing settings are kept,
 * told to `onKept`.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
  onKept?: (why: string) => void,
): Promise<void> {
  let have: StreamConfig;
  try {
    have = (await jsm.streams.info(cfg.name)).config;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await jsm.streams.add(cfg);
    } catch (addErr) {
      if (isPermissionDenied(addErr)) throw notBootstrapped(`stream ${cfg.name}`, addErr);
      // Another replica won the race; the stream now exists.
      if (!/already in use|exists/i.test(String((addErr as Error).message))) throw addErr;
    }
    return;
  }
  const differ = differingSettings(cfg, have);
  if (differ.length === 0) return;
  try {
    await jsm.streams.update(cfg.name, cfg);
  } catch (err) {
    if (!isPermissionDenied(err)) throw err;
    onKept?.(
      `stream ${cfg.name} differs from this version's settings (${differ.join(", ")}) and this NATS user may not update it; ` +
        "it keeps its settings until the admin bootstrap (tools/nats-admin.ts bootstrap) runs",
    );
  }
}

// Keys of `want` whose values the stream does not have (the server fills in the rest).
function differingSettings(want: Partial<StreamConfig>, have: StreamConfig): string[] {
  return Object.entries(want)
    .filter(([k, v]) => JSON.stringify(v) !== JSON.stringify((have as unknown as Record<string, unknown>)[k]))
    .map(([k]) => k);
}

/** True when the server refused a request for the connection's permissions. */
export function isPermissionDenied(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e?.name === "PermissionViolationError" || /permissions violation/i.test(String(e?.message ?? ""));
}

function notBootstrapped(what: string, cause: unknown): MachinaError {
  return new MachinaError(
    "UNAVAILABLE",
    `${what} does not exist and this NATS user may not create it: run the admin bootstrap first ` +
      "(tools/nats-admin.ts bootstrap; make up and the machina-nats-bootstrap Job run it)",
    { retryable: false, cause, details: { dependency: "nats" } },
  );
}

/**
 * The objects several services share: the pipeline streams and the config chain's bucket. The
 * admin bootstrap creates them; every service ensures them at start too, which creates them on a
 * server without users (tests, a laptop) and only checks them under its least-privilege user.
 */
export async function ensureSharedTopology(
  jsm: JetStreamManager,
  kvm: Kvm,
  names: MeshNames,
  replicas: number,
  onKept?: (why: string) => void,
): Promise<void> {
  for (const cfg of Object.values(pipelineStreams(names, replicas))) await ensureStream(jsm, cfg, onKept);
  try {
    await ChainStore.open(kvm, names.buckets.config, { replicas });
  } catch (err) {
    if (isPermissionDenied(err)) throw notBootstrapped(`KV bucket ${names.buckets.config}`, err);
    throw err;
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
