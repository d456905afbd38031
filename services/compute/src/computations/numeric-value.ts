import type { JsonValue } from "@machina/protos";

/**
 * A record's value of a numeric field (see NUMERIC_TYPES) as a number: booleans as 0/1,
 * timestamps (ISO text as data answers them) as epoch ms; null when missing or not a number.
 */
export function numericValue(v: JsonValue | undefined): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string") {
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}
