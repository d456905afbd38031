import type { JsonObject, JsonValue, RecordBatch } from "@machina/protos";
import type { MachinaError } from "@machina/wire";

/** One record on its way through a stateful aggregator, with what its outputs need to know. */
export interface InRecord {
  record: JsonObject;
  /** Digest of the key values: names the key's state. */
  keyId: string;
  /** The key fields and their values. */
  key: JsonObject;
  /** Event time, epoch ms (the record's time field, or when it was fetched). */
  time: number;
  /** When its message was stored on its partition's stream, epoch ms: the same on every redelivery. */
  arrival: number;
  /** The batch it came in (its records left out). */
  batch: Omit<RecordBatch, "records">;
  /** Its dump-row position (the batch's first_seq plus its index). */
  seq: number;
  /** `<stream seq>.<batch index>.<record index>`: where it sits on its partition's stream. */
  position: string;
  /** `<batch id>/<record index>`: names the record by its content's identity, for output ids. */
  origin: string;
  /** Records in its batch. */
  batchSize: number;
}

/** Why a record left the aggregator other than as output, or why an output was made: metric labels. */
export type Outcome = "late_dropped" | "late_corrected" | "closed" | "complete" | "timed_out" | "duplicate";

/** Where a kind puts what it changes and emits. */
export interface KindContext<S> {
  /** Key states by key id. */
  get(keyId: string): S | undefined;
  /** Stores a key's new state (marks it for the next commit). */
  set(keyId: string, state: S): void;
  /** Removes a key's state. */
  delete(keyId: string): void;
  /** Partition-wide values kept with the checkpoint (e.g. the watermark). */
  readonly meta: Map<string, JsonValue>;
  /** Queues an output batch; it is stored in the commit that stores this change, then published. */
  emit(batch: RecordBatch, outcome: Outcome): void;
  /** The output of one input record, published as part of its input message's output (forward_fill). */
  passOn(rec: InRecord, record: JsonObject): void;
  /** Counts an outcome that emits nothing (a dropped late record). */
  count(outcome: Outcome): void;
}

/**
 * A stateful aggregator of one entity type. Its state is a value per key (kept in KV, encoded by
 * the kind) plus partition-wide `meta`; it changes only in `apply` and `fireDue`, which must be
 * deterministic functions of the state and their arguments, so a partition replayed from its
 * last checkpoint ends in the same state with the same outputs.
 */
export interface StatefulKind<S> {
  /** Why `record` cannot be aggregated (a missing or mistyped field), checked before it is queued; null when fine. */
  check(record: JsonObject, batch: Omit<RecordBatch, "records">, index: number): MachinaError | null;
  /** The record's event time, epoch ms (only called on checked records). */
  eventTime(record: JsonObject, batch: Omit<RecordBatch, "records">): number;
  /** Applies one record. */
  apply(rec: InRecord, ctx: KindContext<S>): void;
  /**
   * Fires one thing that is due (a window to close, a partial timed out) at `clock` — the arrival
   * time of the record about to be applied, or the wall clock when the partition is idle; false
   * when nothing is due.
   */
  fireDue(clock: number, ctx: KindContext<S>): boolean;
  /** Rebuilds in-memory indexes from the states loaded at start (or after a reload). */
  restore(states: ReadonlyMap<string, S>, meta: ReadonlyMap<string, JsonValue>): void;
  /** A key state as stored. */
  encode(state: S): JsonValue;
  /** A stored key state back. */
  decode(value: JsonValue): S;
}
