import { isDeepStrictEqual } from "node:util";
import type { JsonObject, JsonValue, RecordBatch } from "@machina/protos";
import type { MachinaError } from "@machina/wire";
import type { ForwardFillSpec } from "../config/aggregator-kind";
import { EventTime } from "./event-time";
import type { InRecord, KindContext, StatefulKind } from "./kind";

/** The last known value of each field of one key, with the event time it was seen at. */
export interface LastValues {
  values: Map<string, { v: JsonValue; t: number }>;
}

/**
 * `forward_fill`: every record passes on, its null fields filled with the last non-null value
 * the key had at or before the record's event time — unless that value is older than `max_age`.
 * A record older than a field's last value (out of order) neither fills from it (that would fill
 * backwards in time) nor replaces it. Fields a record does not carry stay absent.
 */
export class ForwardFillKind implements StatefulKind<LastValues> {
  private readonly only: ReadonlySet<string> | undefined;
  private readonly maxAge: number | undefined;
  private readonly skip: ReadonlySet<string>;
  private readonly time: EventTime;

  constructor(spec: ForwardFillSpec, keyFields: readonly string[]) {
    this.only = spec.fields === undefined ? undefined : new Set(spec.fields);
    this.maxAge = spec.max_age;
    this.skip = new Set(keyFields);
    this.time = new EventTime(spec.time_field);
  }

  check(record: JsonObject, batch: Omit<RecordBatch, "records">, index: number): MachinaError | null {
    return this.time.check(record, batch, index);
  }

  eventTime(record: JsonObject, batch: Omit<RecordBatch, "records">): number {
    return this.time.of(record, batch);
  }

  apply(rec: InRecord, ctx: KindContext<LastValues>): void {
    const state = ctx.get(rec.keyId) ?? { values: new Map() };
    const out: JsonObject = { ...rec.record };
    let changed = false;
    for (const [f, v] of Object.entries(rec.record)) {
      if (this.skip.has(f) || (this.only !== undefined && !this.only.has(f))) continue;
      const last = state.values.get(f);
      if (v === null) {
        const fresh = this.maxAge === undefined || (last !== undefined && rec.time - last.t <= this.maxAge);
        if (last !== undefined && last.t <= rec.time && fresh) out[f] = last.v;
        continue;
      }
      if (last !== undefined && rec.time < last.t) continue;
      // Without max_age only the value matters, so an unchanged value costs no state write.
      if (last !== undefined && this.maxAge === undefined && isDeepStrictEqual(last.v, v)) continue;
      state.values.set(f, { v, t: rec.time });
      changed = true;
    }
    if (changed) ctx.set(rec.keyId, state);
    ctx.passOn(rec, out);
  }

  fireDue(): boolean {
    return false;
  }

  restore(): void {
    // Nothing falls due: values only age relative to later records.
  }

  encode(state: LastValues): JsonValue {
    return { values: [...state.values].map(([f, x]) => [f, x.v, x.t]) };
  }

  decode(value: JsonValue): LastValues {
    const v = value as { values: [string, JsonValue, number][] };
    return { values: new Map(v.values.map(([f, x, t]) => [f, { v: x, t }])) };
  }
}
