import protobuf from "protobufjs";
import { ProtoShapeError } from "./proto-error";
import { PROTO_KEY, protoKeyPath } from "./struct-json";
import { describeValue, isPlainObject } from "./plain-value";

const describeJson = (v: unknown) => describeValue(v, "json");

// protobufjs' fromObject silently drops unknown keys and coerces wrong types;
// a typo in a hand-typed `nats req` body must instead say which field is wrong.

const INT_TYPES = new Set([
  "int32",
  "uint32",
  "sint32",
  "fixed32",
  "sfixed32",
  "int64",
  "uint64",
  "sint64",
  "fixed64",
  "sfixed64",
]);
const FLOAT_TYPES = new Set(["double", "float"]);
// protobufjs wraps 32-bit values silently (3e9 becomes -1294967296); say so instead.
const INT32_RANGE: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647],
  sint32: [-2147483648, 2147483647],
  sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  fixed32: [0, 4294967295],
};

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Checks `value` against message type `type` and returns a copy whose message keys are
 * the camelCase field names (snake_case proto names are accepted too); throws ProtoShapeError.
 */
export function normalizeShape(
  type: protobuf.Type,
  value: unknown,
  root = type.name,
  path = "",
): Record<string, unknown> {
  if (!isPlainObject(value)) {
    throw new ProtoShapeError(root, path, `expected a JSON object, got ${describeJson(value)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [rawKey, v] of Object.entries(value)) {
    // Own keys only: `constructor` or `toString` must be unknown fields, not Object.prototype members.
    const key = Object.hasOwn(type.fields, rawKey) ? rawKey : camel(rawKey);
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    const at = path ? `${path}.${rawKey}` : rawKey;
    if (!field) {
      const known = Object.keys(type.fields).join(", ");
      throw new ProtoShapeError(root, at, `unknown field (known fields of ${type.name}: ${known || "none"})`);
    }
    if (v === null || v === undefined) continue; // proto3 JSON: null means "default"
    out[key] = checkField(field, v, root, at);
  }
  return out;
}

function checkField(field: protobuf.Field, v: unknown, root: string, at: string): unknown {
  if (field instanceof protobuf.MapField) {
    if (!isPlainObject(v)) throw new ProtoShapeError(root, at, `expected an object (map), got ${describeJson(v)}`);
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) {
      if (k === PROTO_KEY) throw new ProtoShapeError(root, `${at}.${k}`, RESERVED_KEY);
      out[k] = checkSingle(field, item, root, `${at}.${k}`);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(v)) throw new ProtoShapeError(root, at, `expected an array, got ${describeJson(v)}`);
    return v.map((item, i) => checkSingle(field, item, root, `${at}[${i}]`));
  }
  return checkSingle(field, v, root, at);
}

// protobufjs computes fullName by walking parents on every read; it is asked per field per message.
const fullNames = new WeakMap<protobuf.Type, string>();
function fullNameOf(t: protobuf.Type): string {
  let n = fullNames.get(t);
  if (n === undefined) {
    n = t.fullName;
    fullNames.set(t, n);
  }
  return n;
}

function checkSingle(field: protobuf.Field, v: unknown, root: string, at: string): unknown {
  const resolved = field.resolve().resolvedType;
  if (resolved instanceof protobuf.Type) {
    switch (fullNameOf(resolved)) {
      case ".google.protobuf.Struct":
        if (!isPlainObject(v)) throw new ProtoShapeError(root, at, `expected a JSON object, got ${describeJson(v)}`);
        return freeJson(v, root, at);
      case ".google.protobuf.ListValue":
        if (!Array.isArray(v)) throw new ProtoShapeError(root, at, `expected a JSON array, got ${describeJson(v)}`);
        return freeJson(v, root, at);
      case ".google.protobuf.Value":
        // protobufjs' generated fromObject demands an object here, so "text" or 3 would fail;
        // the built Value message passes through untouched.
        return resolved.fromObject(freeJson(v, root, at) as { [k: string]: unknown });
      default:
        return normalizeShape(resolved, v, root, at);
    }
  }
  if (resolved instanceof protobuf.Enum) {
    if (typeof v === "string" && Object.hasOwn(resolved.values, v)) return v;
    if (typeof v === "number" && Object.values(resolved.values).includes(v)) return v;
    throw new ProtoShapeError(
      root,
      at,
      `expected one of ${Object.keys(resolved.values).join(", ")}, got ${describeJson(v)}`,
    );
  }
  const t = field.type;
  if (t === "string") {
    if (typeof v !== "string") throw new ProtoShapeError(root, at, `expected a string, got ${describeJson(v)}`);
    return v;
  }
  if (t === "bool") {
    if (typeof v !== "boolean") throw new ProtoShapeError(root, at, `expected true or false, got ${describeJson(v)}`);
    return v;
  }
  if (INT_TYPES.has(t)) {
    const n = typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n)) {
      throw new ProtoShapeError(root, at, `expected an integer, got ${describeJson(v)}`);
    }
    if (t.startsWith("u") || t.startsWith("fixed")) {
      if (n < 0) throw new ProtoShapeError(root, at, `expected a non-negative integer, got ${n}`);
    }
    const range = INT32_RANGE[t];
    if (range && (n < range[0] || n > range[1])) {
      throw new ProtoShapeError(root, at, `expected a 32-bit integer in ${range[0]}..${range[1]}, got ${n}`);
    }
    return n;
  }
  if (FLOAT_TYPES.has(t)) {
    const n = typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v)) ? Number(v) : v;
    if (typeof n !== "number") throw new ProtoShapeError(root, at, `expected a number, got ${describeJson(v)}`);
    return n;
  }
  if (t === "bytes") {
    if (v instanceof Uint8Array) return v;
    // Decoded here: protobufjs' own base64 reader rejects the URL-safe alphabet proto3 JSON allows.
    if (typeof v === "string" && /^[A-Za-z0-9+/=_-]*$/.test(v)) return new Uint8Array(Buffer.from(v, "base64"));
    throw new ProtoShapeError(root, at, `expected base64 bytes, got ${describeJson(v)}`);
  }
  return v;
}

const RESERVED_KEY = `the key "${PROTO_KEY}" is not allowed (it names the prototype of JavaScript objects); rename it`;

// Free-form JSON (Struct, ListValue, Value) may use any key but one: a `__proto__` entry would
// silently vanish on the way in, or replace the prototype of whatever object reads it.
function freeJson<T>(v: T, root: string, at: string): T {
  const bad = protoKeyPath(v, at);
  if (bad !== null) throw new ProtoShapeError(root, bad, RESERVED_KEY);
  return v;
}
