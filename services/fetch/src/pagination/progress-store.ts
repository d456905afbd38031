import { createHash } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { MachinaError } from "@machina/wire";
import { tallyOf, type CursorTally } from "../incremental";
import { asProgress, type PageProgress } from "./page-progress";

/**
 * How long a task's progress outlives its last page. A FetchTask waits on the stream while its
 * source is over quota, a daily window included, so a day and some; one left behind by a task
 * that a newer one superseded (or that went to the dead-letter stream) expires after it.
 */
export const PROGRESS_TTL_MS = 36 * 3_600_000;

/** The FetchTask a progress entry belongs to. */
export interface ProgressTask {
  readonly id: string;
  readonly source: string;
}

/** What the store holds for a task. */
export type StoredProgress =
  /** Nothing usable: start at page 1; `reason` says why an entry there was not used. */
  | { readonly state: "fresh"; readonly reason?: string }
  /** `tally`: an incremental query's cursor progress over the earlier pages (the value they used included). */
  | { readonly state: "resume"; readonly progress: PageProgress; readonly tally?: CursorTally }
  /** The task fetched its last page and was finished: a redelivery has nothing left to do. */
  | { readonly state: "done" };

/** Options of {@link ProgressStore.open}. */
export interface ProgressStoreOptions {
  /** Bucket name (`names.buckets.fetchPages`). */
  readonly bucket: string;
  /** Bucket max age; default {@link PROGRESS_TTL_MS}. */
  readonly ttlMs?: number;
  readonly replicas?: number;
}

interface Entry {
  readonly task: string;
  /** Fingerprint of the query's pagination the progress was made under. */
  readonly fp: string;
  readonly progress: PageProgress;
  /** An incremental query's cursor progress, its value pinned for every page of the task. */
  readonly tally?: CursorTally;
}

/**
 * Pagination progress of FetchTasks in a JetStream KV bucket, so whichever replica gets a
 * redelivered task continues at the page the last delivery stopped before. Entries are written
 * only after a page's records are stored, deleted when the last page is, and expire with the
 * bucket's max age.
 */
export class ProgressStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket, creating it when missing (an existing bucket is used as it is). */
  static async open(nc: NatsConnection, opts: ProgressStoreOptions): Promise<ProgressStore> {
    const kv = await new Kvm(nc).create(opts.bucket, {
      history: 1,
      ttl: opts.ttlMs ?? PROGRESS_TTL_MS,
      replicas: opts.replicas ?? 1,
    });
    return new ProgressStore(kv);
  }

  /** The task's progress; `fp` is the current pagination fingerprint, and an entry made under another is not used. */
  async load(task: ProgressTask, fp: string): Promise<StoredProgress> {
    const e = await this.kv.get(progressKey(task));
    if (e === null) return { state: "fresh" };
    // The key of a finished task keeps its delete marker until the bucket's max age.
    if (e.operation === "DEL" || e.operation === "PURGE") return { state: "done" };
    let v: Partial<Entry> | null = null;
    try {
      v = e.json<Partial<Entry>>();
    } catch {
      return { state: "fresh", reason: "the stored progress is not JSON" };
    }
    if (v === null || typeof v !== "object" || v.task !== task.id)
      return { state: "fresh", reason: "the stored progress belongs to another task" };
    if (v.fp !== fp) return { state: "fresh", reason: "the query's pagination changed since the progress was stored" };
    const progress = asProgress(v.progress);
    if (progress === null) return { state: "fresh", reason: "the stored progress is malformed" };
    if (v.tally === undefined) return { state: "resume", progress };
    const tally = tallyOf(v.tally);
    if (tally === null) return { state: "fresh", reason: "the stored cursor progress is malformed" };
    return { state: "resume", progress, tally };
  }

  /** Records that the task continues at `progress` (its pages before are stored), with its cursor progress. */
  async save(task: ProgressTask, fp: string, progress: PageProgress, tally?: CursorTally): Promise<void> {
    const entry: Entry = tally === undefined ? { task: task.id, fp, progress } : { task: task.id, fp, progress, tally };
    await this.kv.put(progressKey(task), JSON.stringify(entry)).catch((err: unknown) => {
      throw unavailable(err, "store pagination progress");
    });
  }

  /** Marks the task finished: its last page is stored. */
  async finish(task: ProgressTask): Promise<void> {
    await this.kv.delete(progressKey(task)).catch((err: unknown) => {
      throw unavailable(err, "finish pagination progress");
    });
  }
}

/** A short stable digest of a query's pagination, so progress made under another one is not resumed. */
export function paginationFingerprint(source: string, query: string, spec: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify([source, query, spec]))
    .digest("base64url")
    .slice(0, 16);
}

/** The KV key of a task: its source, then a digest of its id (task ids hold characters keys may not). */
export function progressKey(task: ProgressTask): string {
  return `${task.source}.${createHash("sha256").update(task.id).digest("base64url").slice(0, 32)}`;
}

// A KV write that fails is NATS being away: retryable, and the task keeps its place.
function unavailable(err: unknown, what: string): MachinaError {
  if (err instanceof MachinaError) return err;
  return new MachinaError("UNAVAILABLE", `could not ${what}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    details: { dependency: "nats" },
  });
}
