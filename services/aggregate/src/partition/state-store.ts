import { DeliverPolicy } from "@nats-io/jetstream";
import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { JsonValue, RecordBatch } from "@machina/protos";
import { MeshClient, publishAtomic } from "@machina/runtime";
import type { AtomicEntry } from "@machina/runtime";

/** Where a partition stands, stored with every commit. */
export interface Checkpoint {
  /** Stream sequence of the last message applied (wholly or in part); 0 before any. */
  seq: number;
  /** Records of that message applied (when it is not done). */
  rec: number;
  /** Whether that message is applied whole. */
  done: boolean;
  /** Number of the next outbox entry. */
  out: number;
  /** Outbox entries below this number are published. */
  pub: number;
  /** Random id of this state's lifetime: output message ids carry it, so state started afresh never collides with old ids. */
  life: string;
  /** The kind's partition-wide values (the watermark…). */
  meta: [string, JsonValue][];
}

/** Output batches committed with the state change that made them, waiting to be published. */
export interface OutboxEntry {
  n: number;
  batches: RecordBatch[];
}

/** A partition's stored state. */
export interface LoadedPartition {
  checkpoint: Checkpoint | null;
  /** Revision of the checkpoint entry (0 when there is none): the next commit expects it. */
  revision: number;
  keys: Map<string, JsonValue>;
  outbox: OutboxEntry[];
  /** Stored seconds of recently applied batch ids ({@link RecentBatches}). */
  recent: JsonValue[];
}

/** What one commit writes: key states (null deletes), new outbox entries, recent batch ids, and the checkpoint. */
export interface CommitWrite {
  keys: Map<string, JsonValue | null>;
  outbox: OutboxEntry[];
  /** Changed parts of recent batch ids, by KV key suffix (`<slot>.<part>`). */
  recent: Map<string, JsonValue>;
  checkpoint: Checkpoint;
  /** Revision of the checkpoint the partition was loaded at or last committed. */
  expectRevision: number;
}

/** Outbox slots per partition: entries reuse them, so deleted entries leave no markers behind. */
export const OUTBOX_SLOTS = 64;

const enc = new TextEncoder();
const dec = new TextDecoder();
const DELETE: readonly (readonly [string, string])[] = [["KV-Operation", "DEL"]];

/**
 * The KV bucket holding every stateful aggregator's state, one key per entity key:
 * `<type>.<n>.k.<key id>` (the key's state), `<type>.<n>.o.<slot>` (outbox), `<type>.<n>.d.<slot>.<part>`
 * (recently applied batch ids) and `<type>.<n>.ck` (the checkpoint), plus `<type>.layout`. A commit writes all of a change in one atomic batch
 * whose checkpoint write expects the checkpoint's last revision: it is stored whole or not at
 * all, and never over a commit another owner made.
 */
export class StateStore {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly client: MeshClient,
    /** Bucket name. */
    readonly bucket: string,
    /** The bucket, for single-key reads and writes. */
    readonly kv: KV,
  ) {}

  /** Opens (creating if needed) the state bucket, with atomic batches allowed on its stream. */
  static async open(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    kvm: Kvm,
    bucket: string,
    replicas: number,
  ): Promise<StateStore> {
    const kv = await kvm.create(bucket, { history: 1, replicas });
    const stream = `KV_${bucket}`;
    const info = await jsm.streams.info(stream);
    if (info.config.allow_atomic !== true) await jsm.streams.update(stream, { ...info.config, allow_atomic: true });
    return new StateStore(nc, js, new MeshClient(nc), bucket, kv);
  }

  /** The stream behind the bucket. */
  get stream(): string {
    return `KV_${this.bucket}`;
  }

  /** KV subject of a key. */
  subject(key: string): string {
    return `$KV.${this.bucket}.${key}`;
  }

  /** Reads a partition's latest state (one ordered pass over its keys). */
  async load(type: string, partition: number): Promise<LoadedPartition> {
    const prefix = `${type}.${partition}.`;
    const out: LoadedPartition = { checkpoint: null, revision: 0, keys: new Map(), outbox: [], recent: [] };
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: [this.subject(`${prefix}>`)],
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
    const info = await consumer.info(true);
    let left = info.num_pending;
    while (left > 0) {
      const batch = await consumer.fetch({ max_messages: Math.min(left, 1000), expires: 5_000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        left = m.info.pending;
        this.take(m, prefix, out);
        if (left === 0) break;
      }
      if (got === 0) throw new Error(`loading ${type}.${partition}: the state bucket stopped answering`);
    }
    await consumer.delete().catch(() => undefined);
    out.outbox.sort((a, b) => a.n - b.n);
    return out;
  }

  /** Stores a commit atomically; resolves with the checkpoint's new revision. CONFLICT when another owner committed first. */
  async commit(type: string, partition: number, w: CommitWrite): Promise<number> {
    const prefix = `${type}.${partition}.`;
    const entries: AtomicEntry[] = [];
    for (const [keyId, v] of w.keys) {
      const subject = this.subject(`${prefix}k.${keyId}`);
      entries.push(
        v === null
          ? { subject, data: new Uint8Array(0), headers: DELETE }
          : { subject, data: enc.encode(JSON.stringify(v)) },
      );
    }
    for (const o of w.outbox)
      entries.push({ subject: this.subject(`${prefix}o.${o.n % OUTBOX_SLOTS}`), data: enc.encode(JSON.stringify(o)) });
    for (const [suffix, v] of w.recent)
      entries.push({ subject: this.subject(`${prefix}d.${suffix}`), data: enc.encode(JSON.stringify(v)) });
    entries.push({
      subject: this.subject(`${prefix}ck`),
      data: enc.encode(JSON.stringify(w.checkpoint)),
      headers: [["Nats-Expected-Last-Subject-Sequence", String(w.expectRevision)]],
    });
    const ack = await publishAtomic(this.nc, this.client, entries);
    return ack.seq;
  }

  // One stored entry into the loaded partition (deletes are skipped: the key has no state).
  private take(m: JsMsg, prefix: string, out: LoadedPartition): void {
    const op = m.headers?.get("KV-Operation");
    if (op === "DEL" || op === "PURGE") return;
    const key = m.subject.slice(this.subject("").length + prefix.length);
    const value = JSON.parse(dec.decode(m.data)) as JsonValue;
    if (key === "ck") {
      out.checkpoint = value as unknown as Checkpoint;
      out.revision = m.seq;
    } else if (key.startsWith("k.")) {
      out.keys.set(key.slice(2), value);
    } else if (key.startsWith("o.")) {
      out.outbox.push(value as unknown as OutboxEntry);
    } else if (key.startsWith("d.")) {
      out.recent.push(value);
    }
  }
}
