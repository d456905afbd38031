import type { JsonObject, JsonValue, RecordBatch } from "@machina/protos";
import type { MachinaError } from "@machina/wire";
import type { MergePartialsSpec } from "../config/aggregator-kind";
import { DueQueue } from "./due-queue";
import type { InRecord, KindContext, StatefulKind } from "./kind";

/** The partials held for one key. */
export interface PartialState {
  /** Merged fields so far (the key fields included); a later non-null value wins. */
  record: JsonObject;
  /** Sources and queries that contributed, sorted. */
  sources: string[];
  queries: string[];
  /** Latest fetch time among the partials. */
  fetchedAt: number;
  /** Origin of the first partial (batch id and index): names the output, and the timeout entry. */
  first: string;
  /** Epoch ms (arrival time of the first partial + timeout) after which what is known is emitted. */
  deadline: number;
}

/**
 * `merge_partials`: holds the partial records of a key, merging their non-null fields, until the
 * required fields are all present (emitted then, complete) or `timeout` passes after the first
 * partial arrived (emitted with `incomplete_field: true`). Arrival is the time the message was
 * stored on the partition's stream, so a replay after a crash times out exactly as the first run
 * would have, and a record that arrived before the deadline is merged even when it is applied after it.
 */
export class MergePartialsKind implements StatefulKind<PartialState> {
  private readonly required: readonly string[];
  private readonly due = new DueQueue();

  constructor(
    private readonly type: string,
    private readonly spec: MergePartialsSpec,
  ) {
    this.required = spec.required;
  }

  check(): MachinaError | null {
    return null;
  }

  eventTime(_record: JsonObject, batch: Omit<RecordBatch, "records">): number {
    return batch.fetchedAt;
  }

  apply(rec: InRecord, ctx: KindContext<PartialState>): void {
    let state = ctx.get(rec.keyId);
    if (state === undefined) {
      state = {
        record: { ...rec.key },
        sources: [],
        queries: [],
        fetchedAt: rec.batch.fetchedAt,
        first: rec.origin,
        deadline: rec.arrival + this.spec.timeout,
      };
      this.due.push({ due: state.deadline, keyId: rec.keyId, tag: state.first });
    }
    for (const [f, v] of Object.entries(rec.record)) if (v !== null) state.record[f] = v;
    addSorted(state.sources, rec.batch.source);
    addSorted(state.queries, rec.batch.query);
    state.fetchedAt = Math.max(state.fetchedAt, rec.batch.fetchedAt);
    if (this.required.every((f) => Object.hasOwn(state.record, f) && state.record[f] !== null)) {
      this.emitPartial(rec.keyId, state, false, ctx);
      ctx.delete(rec.keyId);
    } else {
      ctx.set(rec.keyId, state);
    }
  }

  fireDue(clock: number, ctx: KindContext<PartialState>): boolean {
    for (;;) {
      const top = this.due.peek();
      if (top === undefined || top.due > clock) return false;
      this.due.pop();
      const state = ctx.get(top.keyId);
      // Completed since (or a new partial began): nothing to time out.
      if (state === undefined || state.first !== top.tag) continue;
      this.emitPartial(top.keyId, state, true, ctx);
      ctx.delete(top.keyId);
      return true;
    }
  }

  restore(states: ReadonlyMap<string, PartialState>): void {
    this.due.clear();
    for (const [keyId, s] of states) this.due.push({ due: s.deadline, keyId, tag: s.first });
  }

  encode(state: PartialState): JsonValue {
    return { ...state };
  }

  decode(value: JsonValue): PartialState {
    return value as unknown as PartialState;
  }

  private emitPartial(keyId: string, state: PartialState, timedOut: boolean, ctx: KindContext<PartialState>): void {
    const record: JsonObject = { ...state.record };
    if (timedOut) record[this.spec.incomplete_field] = true;
    ctx.emit(
      {
        id: `${this.type}:m:${keyId}:${state.first}`,
        type: this.type,
        source: state.sources.join("+") || "merge_partials",
        query: state.queries.join("+"),
        taskId: "",
        fetchedAt: state.fetchedAt,
        records: [record],
        firstSeq: 0,
      },
      timedOut ? "timed_out" : "complete",
    );
  }
}

function addSorted(list: string[], v: string): void {
  if (v === "" || list.includes(v)) return;
  list.push(v);
  list.sort();
}
