import protobuf from "protobufjs";

// What the two hot-path shortcuts (fast-encode.ts, fast-decode.ts) both build on: which fields of a
// message type they handle and how each is on the wire, worked out once per type; the signal for
// "not sure, take the general path"; and the varint and double helpers of the wire format.
//
// The two copy these into module-level consts (`const { Kind, ... } = fastPlan`): V8 reads an
// imported binding through its module cell at every use, but folds a module-level const to its
// value, so `case Kind.String:` in their hot switches stays a constant. Imported directly, encode
// and decode of the bench payloads took 3-5% longer. (Hence Kind is a plain enum: a const enum
// cannot be copied.)

/** What a field holds, as the shortcuts see it. */
export enum Kind {
  String,
  Bool,
  Int32,
  Uint32,
  Int64,
  Uint64,
  Double,
  Bytes,
  Message,
  Struct,
  Value,
  ListValue,
  /** A type the shortcuts do not handle: a present value sends the message down the general path. */
  Other,
}

/** One field of a message type, as both shortcuts see it. */
export interface FieldPlan {
  /** The camelCase name protobufjs gives it. */
  name: string;
  /** Field number. */
  id: number;
  kind: Kind;
  /** Wire type of one value (of one entry, for a map). */
  wire: number;
  /** Encoded key (field number and wire type) as varint bytes. */
  tag: Uint8Array;
  repeated: boolean;
  /** map<string, V>: entries of key 1 (string) and value 2. */
  map: boolean;
  /** Plan of the message (or map value) type. */
  msg?: TypePlan;
}

/** One message type, as both shortcuts see it. */
export interface TypePlan {
  type: protobuf.Type;
  /** Fields by name (the camelCase names protobufjs gives them). */
  byName: Map<string, FieldPlan>;
  /** Fields in number order: the order protobufjs writes them. */
  ordered: FieldPlan[];
}

/** Thrown inside the shortcuts to say "not sure, take the general path"; never leaves them. */
export const BAIL: unique symbol = Symbol("bail");

const plans = new WeakMap<protobuf.Type, TypePlan>();

function kindOf(field: protobuf.Field): Kind {
  const resolved = field.resolve().resolvedType;
  if (resolved instanceof protobuf.Type) {
    switch (resolved.fullName) {
      case ".google.protobuf.Struct":
        return Kind.Struct;
      case ".google.protobuf.Value":
        return Kind.Value;
      case ".google.protobuf.ListValue":
        return Kind.ListValue;
      default:
        return Kind.Message;
    }
  }
  if (resolved) return Kind.Other; // enums: none in machina.v1 today
  switch (field.type) {
    case "string":
      return Kind.String;
    case "bool":
      return Kind.Bool;
    case "int32":
      return Kind.Int32;
    case "uint32":
      return Kind.Uint32;
    case "int64":
      return Kind.Int64;
    case "uint64":
      return Kind.Uint64;
    case "double":
      return Kind.Double;
    case "bytes":
      return Kind.Bytes;
    default:
      return Kind.Other;
  }
}

function wireType(kind: Kind): number {
  switch (kind) {
    case Kind.Bool:
    case Kind.Int32:
    case Kind.Uint32:
    case Kind.Int64:
    case Kind.Uint64:
      return 0;
    case Kind.Double:
      return 1;
    default:
      return 2;
  }
}

function varintBytes(n: number): Uint8Array {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** The plan of message `type`, worked out on first use. */
export function planOf(type: protobuf.Type): TypePlan {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = { type, byName: new Map(), ordered: [] };
  plans.set(type, plan); // before the fields: message types may nest themselves
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    const map = field instanceof protobuf.MapField;
    let kind = kindOf(field);
    // Packed repeated numbers, and maps with other than string keys, take the general path.
    if (field.repeated && wireType(kind) !== 2) kind = Kind.Other;
    if (map && (field as protobuf.MapField).keyType !== "string") kind = Kind.Other;
    const resolved = field.resolvedType;
    const wire = map ? 2 : wireType(kind);
    const fp: FieldPlan = {
      name: field.name,
      id: field.id,
      kind,
      wire,
      tag: varintBytes(((field.id << 3) | wire) >>> 0),
      repeated: field.repeated && !map,
      map,
      msg: kind === Kind.Message && resolved instanceof protobuf.Type ? planOf(resolved) : undefined,
    };
    plan.byName.set(field.name, fp);
    plan.ordered.push(fp);
  }
  return plan;
}

/** Bytes of non-negative safe integer `n` as a varint. */
export function varintLength(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let len = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) {
    len++;
    n = Math.floor(n / 128);
  }
  return len;
}

/** Writes negative int32/int64 `n` at `pos` as ten varint bytes (two's complement, as protobufjs); returns the end. */
export function writeNegative(buf: Uint8Array, pos: number, n: number): number {
  const bits = protobuf.util.LongBits.fromNumber(n);
  let lo = bits.lo >>> 0;
  let hi = bits.hi >>> 0;
  while (hi) {
    buf[pos++] = (lo & 127) | 128;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  while (lo > 127) {
    buf[pos++] = (lo & 127) | 128;
    lo >>>= 7;
  }
  buf[pos++] = lo;
  return pos;
}

/** Bytes of a length-delimited part of `len` bytes, its length prefix included. */
export const delimited = (len: number) => varintLength(len) + len;

/** Bytes of `s` as UTF-8 (three for a lone surrogate). */
export function utf8Length(s: string): number {
  let len = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) len += 1;
    else if (c < 0x800) len += 2;
    else if ((c & 0xfc00) === 0xd800 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      i++;
      len += 4;
    } else len += 3;
  }
  return len;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
/** Whether this machine is little-endian: doubles go through a Float64Array, whose bytes are protobuf's only then. */
export const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/** Writes `n` as 8 bytes at `pos` (on LITTLE_ENDIAN machines only). */
export function writeDouble(buf: Uint8Array, pos: number, n: number): void {
  f64[0] = n;
  for (let i = 0; i < 8; i++) buf[pos + i] = f64Bytes[i];
}

/** The double in the 8 bytes at `pos` (on LITTLE_ENDIAN machines only). */
export function readDouble(buf: Uint8Array, pos: number): number {
  for (let i = 0; i < 8; i++) f64Bytes[i] = buf[pos + i];
  return f64[0];
}
