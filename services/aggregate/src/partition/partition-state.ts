import { randomBytes } from "node:crypto";
import type { JsonObject, JsonValue, RecordBatch } from "@machina/protos";
import type { InRecord, KindContext, Outcome, StatefulKind } from "../kinds/kind";
import { RecentBatches } from "./recent-batches";
import type { Checkpoint, CommitWrite, LoadedPartition, OutboxEntry } from "./state-store";

/** Most output batches in one outbox entry (one STORE message). */
export const BATCHES_PER_OUTBOX_ENTRY = 256;
// A commit is one atomic batch of at most 1000 messages: key states, outbox entries and the checkpoint.
const MAX_KEYS_PER_COMMIT = 800;
const MAX_EMITS_PER_COMMIT = 16 * BATCHES_PER_OUTBOX_ENTRY;

/** A record passed on by forward_fill, waiting for its message's output. */
export interface PassedOn {
  rec: InRecord;
  record: JsonObject;
}

/**
 * The in-memory state of one owned partition: key states, the kind's partition-wide values and
 * the checkpoint, plus what changed since the last commit. The kind changes it through
 * {@link KindContext}; {@link takeCommit} turns the changes into one commit.
 */
export class PartitionState<S> implements KindContext<S> {
  readonly keys = new Map<string, S>();
  readonly meta: Map<string, JsonValue>;
  /** Where the partition stands now (ahead of the stored checkpoint until the next commit). */
  checkpoint: Checkpoint;
  /** The checkpoint as last stored, and its revision. */
  private stored: Checkpoint;
  revision: number;
  /** Keys changed since the last commit. */
  private readonly touched = new Set<string>();
  private emitted: RecordBatch[] = [];
  private passed: PassedOn[] = [];
  /** Outcomes since the last commit, for metrics once it is stored. */
  private outcomes = new Map<Outcome, number>();
  /** Outbox entries loaded or committed that are not published yet. */
  unpublished: OutboxEntry[];
  /** Batches applied lately, so a second copy is skipped. */
  readonly recent: RecentBatches;

  constructor(
    private readonly kind: StatefulKind<S>,
    loaded: LoadedPartition,
  ) {
    this.checkpoint = loaded.checkpoint ?? {
      seq: 0,
      rec: 0,
      done: true,
      out: 0,
      pub: 0,
      life: randomBytes(6).toString("base64url"),
      meta: [],
    };
    this.stored = { ...this.checkpoint };
    this.revision = loaded.revision;
    this.meta = new Map(this.checkpoint.meta);
    for (const [keyId, v] of loaded.keys) this.keys.set(keyId, kind.decode(v));
    kind.restore(this.keys, this.meta);
    this.unpublished = loaded.outbox.filter((o) => o.n >= this.checkpoint.pub);
    this.recent = new RecentBatches(loaded.recent);
  }

  get(keyId: string): S | undefined {
    return this.keys.get(keyId);
  }

  set(keyId: string, state: S): void {
    this.keys.set(keyId, state);
    this.touched.add(keyId);
  }

  delete(keyId: string): void {
    this.keys.delete(keyId);
    this.touched.add(keyId);
  }

  emit(batch: RecordBatch, outcome: Outcome): void {
    this.emitted.push(batch);
    this.count(outcome);
  }

  passOn(rec: InRecord, record: JsonObject): void {
    this.passed.push({ rec, record });
  }

  count(outcome: Outcome): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }

  /** True when the changes since the last commit fill one commit. */
  get full(): boolean {
    return this.touched.size >= MAX_KEYS_PER_COMMIT || this.emitted.length >= MAX_EMITS_PER_COMMIT;
  }

  /** True when there is anything to commit (a change, or a position or publication to record). */
  get dirty(): boolean {
    const c = this.checkpoint;
    const stored = this.stored;
    return (
      this.touched.size > 0 ||
      this.emitted.length > 0 ||
      c.seq !== stored.seq ||
      c.rec !== stored.rec ||
      c.done !== stored.done ||
      c.pub !== stored.pub
    );
  }

  /** Records passed on since the last commit (cleared). */
  takePassed(): PassedOn[] {
    const p = this.passed;
    this.passed = [];
    return p;
  }

  /** The commit of everything changed since the last one (cleared once {@link committed} is called). */
  takeCommit(): CommitWrite {
    const keys = new Map<string, JsonValue | null>();
    for (const keyId of this.touched) {
      const s = this.keys.get(keyId);
      keys.set(keyId, s === undefined ? null : this.kind.encode(s));
    }
    const outbox: OutboxEntry[] = [];
    let n = this.checkpoint.out;
    for (let i = 0; i < this.emitted.length; i += BATCHES_PER_OUTBOX_ENTRY)
      outbox.push({ n: n++, batches: this.emitted.slice(i, i + BATCHES_PER_OUTBOX_ENTRY) });
    const checkpoint: Checkpoint = { ...this.checkpoint, out: n, meta: [...this.meta] };
    return { keys, outbox, recent: this.recent.takeChanged(), checkpoint, expectRevision: this.revision };
  }

  /** Records that `write` is stored at checkpoint revision `revision`; the outcomes it holds. */
  committed(write: CommitWrite, revision: number): Map<Outcome, number> {
    this.stored = write.checkpoint;
    this.checkpoint = { ...write.checkpoint };
    this.revision = revision;
    this.touched.clear();
    this.emitted = [];
    const outcomes = this.outcomes;
    this.outcomes = new Map();
    this.unpublished.push(...write.outbox);
    return outcomes;
  }
}
