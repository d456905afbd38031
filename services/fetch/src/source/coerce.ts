// Coercion of extracted fields to a declared type. The fetch service does not read the data
// layer's type declarations (no service imports another's internals), so a mapping declares the
// type itself, under the names the data service uses for entity fields, plus `float` and `date`.
// Results stay plain JSON, since records travel as protobuf Structs: a bigint past 2^53 becomes
// decimal text (the data service parses integer text exactly), a timestamp ISO 8601 text.

/** Type names a mapped field may be coerced to. */
export const VALUE_TYPES = [
  "text",
  "int",
  "bigint",
  "float",
  "double",
  "boolean",
  "timestamp",
  "date",
  "json",
] as const;

/** One of {@link VALUE_TYPES}. */
export type ValueType = (typeof VALUE_TYPES)[number];

/** A coerced value, or why the value cannot be one of the type. */
export type Coerced = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problem: string };

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;
const FLOAT_MAX = 3.4028234663852886e38;
const INTEGER_TEXT = /^\s*[-+]?\d+\s*$/;
const ISO_TEXT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;
const DAY_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Coerces `value` to `type`; null and undefined pass through as null (a missing value is not a wrong one). */
export function coerceValue(type: ValueType, value: unknown): Coerced {
  if (value === null || value === undefined) return { ok: true, value: null };
  const ok = (v: unknown): Coerced => ({ ok: true, value: v });
  const bad = (expected: string): Coerced => ({ ok: false, problem: `${show(value)} is not ${expected}` });
  switch (type) {
    case "text":
      if (typeof value === "string") return ok(value);
      if ((typeof value === "number" && Number.isFinite(value)) || typeof value === "boolean") return ok(String(value));
      return bad("text (a string, number or boolean)");
    case "int": {
      const n = typeof value === "string" && INTEGER_TEXT.test(value) ? Number(value) : value;
      if (typeof n === "number" && Number.isInteger(n) && n >= INT_MIN && n <= INT_MAX) return ok(n);
      return bad("a 32-bit int");
    }
    case "bigint": {
      let n: bigint | undefined;
      if (typeof value === "number" && Number.isSafeInteger(value)) n = BigInt(value);
      else if (typeof value === "string" && INTEGER_TEXT.test(value)) n = BigInt(value.trim());
      if (n === undefined || n < LONG_MIN || n > LONG_MAX) return bad("a 64-bit integer");
      const small = Number(n);
      return ok(Number.isSafeInteger(small) ? small : n.toString());
    }
    case "float":
    case "double": {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isFinite(n)) return bad("a finite number");
      if (type === "float" && Math.abs(n) > FLOAT_MAX) return bad("within the range of a float");
      return ok(n);
    }
    case "boolean":
      if (typeof value === "boolean") return ok(value);
      if (value === 0 || value === 1) return ok(value === 1);
      if (typeof value === "string" && /^\s*(true|false)\s*$/i.test(value))
        return ok(value.trim().toLowerCase() === "true");
      return bad("a boolean (true, false, 1 or 0)");
    case "timestamp": {
      const d = typeof value === "number" || typeof value === "string" ? toDate(value) : null;
      if (d === null) return bad("a timestamp (ISO 8601 text or epoch milliseconds)");
      return ok(d.toISOString());
    }
    case "date": {
      // A bare date is a calendar day and kept as written; a timestamp is moved to its UTC day.
      const text = typeof value === "string" ? value.trim() : null;
      const day = text === null ? null : DAY_TEXT.exec(text);
      if (day !== null)
        return validDay(Number(day[1]), Number(day[2]), Number(day[3]))
          ? ok(text)
          : bad("a date (no such day in the calendar)");
      const d = typeof value === "number" || typeof value === "string" ? toDate(value) : null;
      if (d === null) return bad("a date (YYYY-MM-DD, ISO 8601 text or epoch milliseconds)");
      return ok(d.toISOString().slice(0, 10));
    }
    case "json":
      return ok(value);
  }
}

// ISO 8601 only: Date's own parser also takes "Dec 5" (as 2001) and rolls Feb 30 into March.
function toDate(value: number | string): Date | null {
  if (typeof value === "number" || INTEGER_TEXT.test(value)) {
    const d = new Date(Number(value));
    return Number.isNaN(d.getTime()) ? null : d;
  }
  const m = ISO_TEXT.exec(value.trim());
  if (m === null || !validDay(Number(m[1]), Number(m[2]), Number(m[3]))) return null;
  // A time without an offset is read as UTC, so the stored instant does not depend on the replica's zone.
  const text = value.trim().replace(" ", "T");
  const zoned = text.length === 10 || /(?:Z|[+-]\d{2}:?\d{2})$/i.test(text);
  const d = new Date(zoned ? text : `${text}Z`);
  return Number.isNaN(d.getTime()) ? null : d;
}

function validDay(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

/** A short rendering of `v` for error messages. */
export function show(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
