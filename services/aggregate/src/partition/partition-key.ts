import { createHash } from "node:crypto";
import type { JsonObject } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { shown } from "../kinds/event-time";

/** A record's entity key: the key fields' values (shared between records: read, never change) and their digest. */
export interface RecordKey {
  key: JsonObject;
  /** 128-bit digest of the key values, base64url: a KV key token whatever the values hold. */
  keyId: string;
  /** The digest's first 32 bits, for the partition. */
  hash: number;
}

/**
 * The key of record `index`, or BAD_REQUEST naming the key field it lacks: state is kept per
 * key, so a record without one cannot be aggregated.
 */
export function recordKey(record: JsonObject, keyFields: readonly string[], index: number): RecordKey | MachinaError {
  const key: JsonObject = {};
  const values: unknown[] = [];
  for (const f of keyFields) {
    const v = Object.hasOwn(record, f) ? record[f] : undefined;
    if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
      return new MachinaError(
        "BAD_REQUEST",
        `record ${index}: key field ${f} needs a text, number or boolean value, got ${shown(v)}; every record of the type must carry its key (${keyFields.join(", ")})`,
        { retryable: false, details: { index, field: f } },
      );
    }
    key[f] = v;
    values.push(v);
  }
  const text = JSON.stringify(values);
  const known = seen.get(text);
  if (known !== undefined) return known;
  const digest = createHash("sha256").update(text).digest();
  const out = { key, keyId: digest.subarray(0, 16).toString("base64url"), hash: digest.readUInt32BE(0) };
  // Entities recur (the same keys fetched again and again): their digest is worked out once.
  if (seen.size >= KEY_MEMO) seen.clear();
  seen.set(text, out);
  return out;
}

// Keys whose digest is remembered; past this the memo starts over.
const KEY_MEMO = 50_000;
const seen = new Map<string, RecordKey>();

/** The partition (of `n`) a key hash belongs to. */
export function partitionOf(hash: number, n: number): number {
  return hash % n;
}
