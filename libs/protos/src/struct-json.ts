import protobuf from "protobufjs";
import { isPlainObject } from "./plain-value";

// proto3's JSON mapping renders google.protobuf.Struct/Value/ListValue as plain JSON,
// but protobufjs only knows their message shape ({fields: {k: {stringValue}}}) and its
// generated converters reject plain values inside maps and lists. These wrappers build
// and read the messages directly, so every Struct field of every message has the natural
// JSON form and a person can type `"args": {"domain": "example.com"}` into `nats req`.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Msg = protobuf.Message & Record<string, unknown>;

interface Types {
  struct: protobuf.Type;
  value: protobuf.Type;
  list: protobuf.Type;
}

// Resolved once per root: a lookup per converted value showed up as a hot spot in profiles.
const typesByRoot = new WeakMap<protobuf.Root, Types>();

function typesFrom(t: protobuf.Type): Types {
  const root = t.root as protobuf.Root;
  let ts = typesByRoot.get(root);
  if (!ts) {
    ts = {
      struct: t.lookupType(".google.protobuf.Struct"),
      value: t.lookupType(".google.protobuf.Value"),
      list: t.lookupType(".google.protobuf.ListValue"),
    };
    typesByRoot.set(root, ts);
  }
  return ts;
}

function makeValue(ts: Types, v: unknown): protobuf.Message {
  if (v === null || v === undefined) return ts.value.create({ nullValue: 0 });
  switch (typeof v) {
    case "number":
      return ts.value.create({ numberValue: v });
    case "string":
      return ts.value.create({ stringValue: v });
    case "boolean":
      return ts.value.create({ boolValue: v });
    case "bigint":
      return ts.value.create({ numberValue: Number(v) });
    case "object":
      if (Array.isArray(v)) return ts.value.create({ listValue: makeList(ts, v) });
      if (v instanceof Date) return ts.value.create({ stringValue: v.toISOString() });
      return ts.value.create({ structValue: makeStruct(ts, v as Record<string, unknown>) });
    default:
      return ts.value.create({ nullValue: 0 });
  }
}

function makeStruct(ts: Types, obj: Record<string, unknown>): protobuf.Message {
  const fields: Record<string, protobuf.Message> = {};
  for (const [k, v] of Object.entries(obj)) {
    // Assigning this key would swap the prototype of `fields` and drop the entry; normalizeShape
    // refuses it with a path first, so reaching here is a bug.
    if (k === PROTO_KEY) throw new TypeError(`a Struct key "${PROTO_KEY}" cannot be encoded`);
    if (v !== undefined) fields[k] = makeValue(ts, v);
  }
  return ts.struct.create({ fields });
}

function makeList(ts: Types, arr: unknown[]): protobuf.Message {
  return ts.list.create({ values: arr.map((v) => makeValue(ts, v)) });
}

const own = (m: object, k: string) => Object.prototype.hasOwnProperty.call(m, k) && (m as Msg)[k] != null;

function readValue(m: Msg | null | undefined): Json {
  if (!m) return null;
  if (own(m, "structValue")) return readStruct(m.structValue as Msg);
  if (own(m, "listValue")) return readList(m.listValue as Msg);
  if (own(m, "stringValue")) return m.stringValue as string;
  if (own(m, "numberValue")) return m.numberValue as number;
  if (own(m, "boolValue")) return m.boolValue as boolean;
  return null;
}

function readStruct(m: Msg | null | undefined): { [k: string]: Json } {
  const out: { [k: string]: Json } = {};
  const fields = (m?.fields ?? {}) as Record<string, Msg>;
  for (const [k, v] of Object.entries(fields)) {
    // protobufjs decodes a binary `__proto__` entry as an own key; assigning it to `out` would
    // replace out's prototype, so values would be read through it. JSON input refuses the key too.
    if (k === PROTO_KEY) throw new TypeError(`a Struct key "${PROTO_KEY}" is not allowed`);
    out[k] = readValue(v);
  }
  return out;
}

function readList(m: Msg | null | undefined): Json[] {
  return ((m?.values ?? []) as Msg[]).map(readValue);
}

/** The one JSON object key that plain-object code cannot store: assigning it sets the prototype. */
export const PROTO_KEY = "__proto__";

/** Path (`a.b[2].__proto__`, below `path`) of the first `__proto__` key inside a JSON value, or null. */
export function protoKeyPath(v: unknown, path = ""): string | null {
  const hit = findProtoKey(v);
  if (hit === null) return null;
  return hit.reduce<string>((at, seg) => (typeof seg === "number" ? `${at}[${seg}]` : at ? `${at}.${seg}` : seg), path);
}

// Segments are collected on the way back out, so a clean value (the usual case) costs no strings.
function findProtoKey(v: unknown): (string | number)[] | null {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || v instanceof Date) return null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const hit = findProtoKey(v[i]);
      if (hit !== null) return [i, ...hit];
    }
    return null;
  }
  for (const k of Object.keys(v)) {
    if (k === PROTO_KEY) return [k];
    const hit = findProtoKey((v as Record<string, unknown>)[k]);
    if (hit !== null) return [k, ...hit];
  }
  return null;
}

/** Registers natural-JSON converters for Struct, Value and ListValue; idempotent. */
export function registerStructWrappers(): void {
  const w = protobuf.wrappers as Record<string, protobuf.IWrapper>;
  if (w[".google.protobuf.Struct"]) return;
  w[".google.protobuf.Struct"] = {
    fromObject(this: protobuf.Type, obj: { [k: string]: unknown }) {
      if (obj instanceof protobuf.Message) return obj;
      if (!isPlainObject(obj)) throw new TypeError("expected a JSON object");
      return makeStruct(typesFrom(this), obj);
    },
    toObject(this: protobuf.Type, message: protobuf.Message) {
      return readStruct(message as Msg);
    },
  };
  w[".google.protobuf.Value"] = {
    fromObject(this: protobuf.Type, obj: { [k: string]: unknown }) {
      if (obj instanceof protobuf.Message) return obj;
      return makeValue(typesFrom(this), obj) as protobuf.Message;
    },
    toObject(this: protobuf.Type, message: protobuf.Message) {
      return readValue(message as Msg) as never;
    },
  };
  w[".google.protobuf.ListValue"] = {
    fromObject(this: protobuf.Type, obj: { [k: string]: unknown }) {
      if (obj instanceof protobuf.Message) return obj;
      if (!Array.isArray(obj)) throw new TypeError("expected a JSON array");
      return makeList(typesFrom(this), obj);
    },
    toObject(this: protobuf.Type, message: protobuf.Message) {
      return readList(message as Msg) as never;
    },
  };
}
