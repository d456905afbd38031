import type { JsonObject, JsonValue, RecordBatch } from "@machina/protos";
import { describeValue } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** Epoch ms of a time value (epoch ms number, or a text Date.parse reads, such as ISO 8601); null when it is none. */
export function timeOf(v: JsonValue | undefined): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? Math.trunc(v) : null;
  if (typeof v === "string" && v.trim() !== "") {
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/**
 * Reads event times: the record's `field` when one is configured, else when its batch was
 * fetched (a batch without `fetched_at` has no time, and is refused).
 */
export class EventTime {
  constructor(private readonly field: string | undefined) {}

  /** Why record `index` has no usable event time, or null. */
  check(record: JsonObject, batch: Omit<RecordBatch, "records">, index: number): MachinaError | null {
    if (this.field === undefined) {
      if (batch.fetchedAt > 0) return null;
      return new MachinaError(
        "BAD_REQUEST",
        `batch ${batch.id || "(no id)"} has no fetched_at, and its records' event time is when they were fetched; set fetchedAt (epoch ms) or configure time_field`,
        { retryable: false, details: { batch: batch.id, field: "fetchedAt" } },
      );
    }
    const v = Object.hasOwn(record, this.field) ? record[this.field] : undefined;
    if (timeOf(v) !== null) return null;
    return new MachinaError(
      "BAD_REQUEST",
      `record ${index}: ${this.field} is the event time (time_field), so it needs epoch ms or an ISO 8601 time, got ${shown(v)}`,
      { retryable: false, details: { index, field: this.field } },
    );
  }

  /** The event time of a checked record. */
  of(record: JsonObject, batch: Omit<RecordBatch, "records">): number {
    if (this.field === undefined) return batch.fetchedAt;
    return timeOf(record[this.field]) ?? batch.fetchedAt;
  }
}

/** A value as an error message shows it ("nothing" when absent). */
export function shown(v: JsonValue | undefined): string {
  return v === undefined ? "nothing" : describeValue(v, "json");
}
