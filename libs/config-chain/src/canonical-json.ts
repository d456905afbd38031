import { createHash } from "node:crypto";

/**
 * JSON with object keys sorted at every level and no whitespace: one text per value, whatever
 * order a file, a client or a codec produced the keys in, so equal configs hash equal.
 */
export function canonicalJson(value: unknown): string {
  return write(value, "");
}

/** SHA-256 of a value's canonical JSON, as 64 lower-case hex digits. */
export function canonicalHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value), "utf8").digest("hex");
}

function write(v: unknown, at: string): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "string":
      return JSON.stringify(v);
    case "number":
      // JSON has no NaN or Infinity; writing them as null would give two values one hash.
      if (!Number.isFinite(v)) throw new TypeError(`${at || "value"}: ${String(v)} has no JSON form`);
      return JSON.stringify(v);
    case "object":
      break;
    default:
      throw new TypeError(`${at || "value"}: a ${typeof v} has no JSON form`);
  }
  if (Array.isArray(v)) return `[${v.map((x, i) => write(x, `${at}[${i}]`)).join(",")}]`;
  const keys = Object.keys(v as object).sort(byCodePoint);
  const parts: string[] = [];
  for (const k of keys) {
    const x = (v as Record<string, unknown>)[k];
    // As JSON.stringify does: an undefined member is no member.
    if (x === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${write(x, at ? `${at}.${k}` : k)}`);
  }
  return `{${parts.join(",")}}`;
}

// Code-point order, not localeCompare: the hash must not depend on the machine's locale.
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
