import { MachinaError } from "@machina/wire";
import type { FieldType, TypeDef } from "./type-def";

/** A value as the driver binds or returns it (the client runs with `useBigIntAsLong`, so bigint is a JS bigint). */
export type CqlValue = string | number | bigint | boolean | Date | null;

/** Where a value came from, for error messages. */
export interface ValueOrigin {
  readonly type: string;
  readonly field: string;
  readonly source?: string;
}

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;
const INTEGER_TEXT = /^\s*[-+]?\d+\s*$/;

/** Coerces an incoming value to what the driver binds for a field of `type`; null/undefined give null; throws BAD_REQUEST naming the field. */
export function toCql(type: FieldType, value: unknown, at: ValueOrigin): CqlValue {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "text":
      if (typeof value === "string") return value;
      if (
        (typeof value === "number" && Number.isFinite(value)) ||
        typeof value === "boolean" ||
        typeof value === "bigint"
      ) {
        return String(value);
      }
      return refuse(at, value, "text");
    case "int": {
      const n = typeof value === "string" && INTEGER_TEXT.test(value) ? Number(value) : value;
      if (typeof n === "number" && Number.isInteger(n) && n >= INT_MIN && n <= INT_MAX) return n;
      if (typeof n === "bigint" && n >= INT_MIN && n <= INT_MAX) return Number(n);
      return refuse(at, value, "a 32-bit int");
    }
    case "bigint": {
      let n: bigint | undefined;
      if (typeof value === "bigint") n = value;
      else if (typeof value === "number" && Number.isSafeInteger(value)) n = BigInt(value);
      else if (typeof value === "string" && INTEGER_TEXT.test(value)) n = BigInt(value.trim());
      if (n === undefined || n < LONG_MIN || n > LONG_MAX) return refuse(at, value, "a 64-bit integer");
      return n;
    }
    case "double": {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n === "number" && Number.isFinite(n)) return n;
      return refuse(at, value, "a finite number");
    }
    case "boolean":
      if (typeof value === "boolean") return value;
      if (typeof value === "string" && /^(true|false)$/i.test(value.trim()))
        return value.trim().toLowerCase() === "true";
      return refuse(at, value, "a boolean");
    case "timestamp": {
      const d =
        value instanceof Date
          ? value
          : typeof value === "number"
            ? new Date(value)
            : typeof value === "string"
              ? new Date(value)
              : undefined;
      if (d === undefined || Number.isNaN(d.getTime()))
        return refuse(at, value, "a timestamp (ISO 8601 text or epoch milliseconds)");
      return d;
    }
    case "json": {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch {
        text = undefined;
      }
      if (text === undefined) return refuse(at, value, "JSON-serialisable");
      return text;
    }
  }
}

function refuse(at: ValueOrigin, value: unknown, expected: string): never {
  const where = at.source === undefined ? `type ${at.type}` : `type ${at.type}, source ${at.source}`;
  throw new MachinaError("BAD_REQUEST", `${where}: field "${at.field}": ${show(value)} is not ${expected}`, {
    details: { type: at.type, field: at.field, ...(at.source === undefined ? {} : { source: at.source }) },
  });
}

/** Converts a driver value of a field of `type` into plain JSON (ISO timestamps, bigint as number, parsed json). */
export function toPlain(type: FieldType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "bigint":
      return typeof value === "bigint" ? Number(value) : value;
    case "timestamp":
      return value instanceof Date ? value.toISOString() : value;
    case "json":
      if (typeof value !== "string") return value;
      try {
        return JSON.parse(value) as unknown;
      } catch {
        // A row written outside the data layer may hold non-JSON text; show it rather than fail the read.
        return value;
      }
    default:
      return value;
  }
}

/** Coerces the key fields of `input`; throws BAD_REQUEST naming a missing or empty key field. */
export function keyValues(
  def: TypeDef,
  input: Record<string, unknown>,
  source?: string,
): Record<string, Exclude<CqlValue, null>> {
  const out: Record<string, Exclude<CqlValue, null>> = {};
  for (const field of def.key) {
    // Own keys only: a record without `constructor` must not read Object's as its value.
    const given = Object.hasOwn(input, field) ? input[field] : undefined;
    const v = toCql(def.fields[field], given, { type: def.name, field, source });
    if (v === null || v === "") {
      const where = source === undefined ? `type ${def.name}` : `type ${def.name}, source ${source}`;
      throw new MachinaError(
        "BAD_REQUEST",
        `${where}: key field "${field}" is ${v === "" ? "empty" : "missing"} (key: ${def.key.join(", ")})`,
        { details: { type: def.name, field, ...(source === undefined ? {} : { source }) } },
      );
    }
    out[field] = v;
  }
  return out;
}

/** Stable JSON of an entity's key (key order, exact bigint as text, ISO timestamps); the dirty table's `key` column. */
export function entityKeyJson(def: TypeDef, key: Record<string, CqlValue>): string {
  const plain: Record<string, unknown> = {};
  for (const field of def.key) {
    const v = key[field];
    plain[field] = typeof v === "bigint" ? v.toString() : v instanceof Date ? v.toISOString() : v;
  }
  return JSON.stringify(plain);
}

/** Parses a key written by {@link entityKeyJson} back into bindable key values. */
export function parseEntityKeyJson(def: TypeDef, json: string): Record<string, Exclude<CqlValue, null>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new MachinaError("INTERNAL", `type ${def.name}: dirty key ${show(json)} is not a JSON object`, {
      retryable: false,
    });
  }
  return keyValues(def, parsed as Record<string, unknown>);
}

function show(v: unknown): string {
  let text: string;
  try {
    text = typeof v === "bigint" ? v.toString() : v instanceof Date ? String(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    text = String(v);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
