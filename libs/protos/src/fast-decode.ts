import protobuf from "protobufjs";
import * as fastPlan from "./fast-plan";
import type { FieldPlan } from "./fast-plan";
import { PROTO_KEY } from "./struct-json";

// The binary decoder of the hot path. The general one (protobufjs decode → toObject with defaults →
// Struct wrappers → bytes fix-up) builds a Message per value, then a plain copy of it. This one
// reads the bytes straight into the plain object the general path would return: every default
// filled in, keys in the same order, Structs as plain JSON, bytes as Uint8Array, 64-bit integers as
// numbers.
//
// Like fast-encode.ts it is only a shortcut for well-formed input: a wire type it does not expect
// for a field, a truncated part, a packed repeated number, a map entry without its key or value, a
// Value with more than one kind, a `__proto__` key: it returns null and the caller takes the
// general path, which then decodes (or refuses) exactly as before.

// Module-level copies of the imports: they keep the hot switches on constants (see fast-plan.ts).
const { BAIL, Kind, LITTLE_ENDIAN, planOf, readDouble } = fastPlan;

/** A field as the decoder reads it: the shared plan's facts, and where its key goes. */
interface DecodeField extends Pick<FieldPlan, "name" | "kind" | "wire" | "repeated" | "map"> {
  /** Not among the defaults (proto3 `optional`): absent from the result unless on the wire. */
  optional: boolean;
  msg?: DecodePlan;
}

interface DecodePlan {
  /** Fields by number. */
  byId: Map<number, DecodeField>;
  /** Fields present by default, in the general path's key order. */
  defaults: DecodeField[];
  /** proto3 `optional` fields in number order (appended when present, as the general path does). */
  optionals: DecodeField[];
}

// The decoder's own layer over planOf(): the result's keys and their order come from `emptyKeys`,
// which only the decoder is given, so this layer is cached here rather than in fast-plan.ts.
const plans = new WeakMap<protobuf.Type, DecodePlan>();

/**
 * `emptyKeys`: the keys the general path returns for an empty message, in its order (codec.ts
 * computes them with the general path itself, so the two cannot drift apart).
 */
function decodePlanOf(type: protobuf.Type, emptyKeys: (t: protobuf.Type) => string[]): DecodePlan {
  let plan = plans.get(type);
  if (plan) return plan;
  plan = { byId: new Map(), defaults: [], optionals: [] };
  plans.set(type, plan); // before the fields: message types may nest themselves
  const keys = emptyKeys(type);
  const byName = new Map<string, DecodeField>();
  for (const f of planOf(type).ordered) {
    const fp: DecodeField = {
      name: f.name,
      kind: f.kind,
      wire: f.wire,
      repeated: f.repeated,
      map: f.map,
      optional: !keys.includes(f.name),
      msg: f.msg ? decodePlanOf(f.msg.type, emptyKeys) : undefined,
    };
    plan.byId.set(f.id, fp);
    byName.set(f.name, fp);
  }
  for (const k of keys) {
    const fp = byName.get(k);
    if (!fp) throw new Error(`fast protobuf decoder: ${type.name}.${k} is not a field`);
    plan.defaults.push(fp);
  }
  for (const fp of byName.values()) if (fp.optional) plan.optionals.push(fp);
  return plan;
}

function defaultOf(f: DecodeField): unknown {
  if (f.repeated) return [];
  if (f.map) return {};
  switch (f.kind) {
    case Kind.String:
      return "";
    case Kind.Bool:
      return false;
    case Kind.Bytes:
      return new Uint8Array(0);
    case Kind.Int32:
    case Kind.Uint32:
    case Kind.Int64:
    case Kind.Uint64:
    case Kind.Double:
      return 0;
    default:
      return null;
  }
}

class Reader {
  pos = 0;
  /** Low and high 32 bits of the last varint64 read. */
  lo = 0;
  hi = 0;

  constructor(
    readonly buf: Uint8Array,
    /** The same text decoding the general path uses for this kind of buffer. */
    readonly isBuffer: boolean,
  ) {}

  /** A varint into lo/hi (at most ten bytes). */
  varint64(end: number): void {
    let lo = 0;
    let hi = 0;
    let i = 0;
    let b: number;
    for (; i < 4; i++) {
      if (this.pos >= end) throw BAIL;
      b = this.buf[this.pos++];
      lo = (lo | ((b & 127) << (i * 7))) >>> 0;
      if (b < 128) {
        this.lo = lo;
        this.hi = 0;
        return;
      }
    }
    if (this.pos >= end) throw BAIL;
    b = this.buf[this.pos++];
    lo = (lo | ((b & 127) << 28)) >>> 0;
    hi = (b & 127) >> 4;
    if (b >= 128) {
      for (i = 0; i < 5; i++) {
        if (this.pos >= end) throw BAIL;
        b = this.buf[this.pos++];
        hi = (hi | ((b & 127) << (i * 7 + 3))) >>> 0;
        if (b < 128) break;
      }
      if (b! >= 128) throw BAIL;
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** A length or tag: a varint that must fit 32 bits. */
  uint32(end: number): number {
    this.varint64(end);
    if (this.hi !== 0) throw BAIL;
    return this.lo;
  }

  /** The end of a length-delimited part starting here. */
  delimited(end: number): number {
    const len = this.uint32(end);
    const stop = this.pos + len;
    if (stop > end) throw BAIL;
    return stop;
  }

  string(end: number): string {
    const stop = this.delimited(end);
    const start = this.pos;
    this.pos = stop;
    // What the general path's reader does: Buffer's own UTF-8 slice for Buffers (also the fastest
    // way to make a short string), protobufjs' UTF-8 reader for other byte arrays.
    return this.isBuffer
      ? (this.buf as unknown as { utf8Slice(start: number, end: number): string }).utf8Slice(start, stop)
      : protobuf.util.utf8.read(this.buf, start, stop);
  }

  double(end: number): number {
    if (this.pos + 8 > end) throw BAIL;
    const n = readDouble(this.buf, this.pos);
    this.pos += 8;
    return n;
  }

  skip(wire: number, end: number): void {
    switch (wire) {
      case 0:
        this.varint64(end);
        return;
      case 1:
        if (this.pos + 8 > end) throw BAIL;
        this.pos += 8;
        return;
      case 2:
        this.pos = this.delimited(end);
        return;
      case 5:
        if (this.pos + 4 > end) throw BAIL;
        this.pos += 4;
        return;
      default:
        throw BAIL; // groups and invalid wire types: the general path decides
    }
  }

  message(plan: DecodePlan, end: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const f of plan.defaults) out[f.name] = defaultOf(f);
    let optionals: DecodeField[] | undefined;
    let optionalValues: Map<DecodeField, unknown> | undefined;
    while (this.pos < end) {
      const tag = this.uint32(end);
      const id = tag >>> 3;
      const wire = tag & 7;
      if (id === 0) throw BAIL;
      const f = plan.byId.get(id);
      if (f === undefined) {
        this.skip(wire, end);
        continue;
      }
      if (wire !== f.wire || f.kind === Kind.Other) throw BAIL;
      if (f.map) {
        this.mapEntry(f, out[f.name] as Record<string, unknown>, end);
      } else if (f.repeated) {
        (out[f.name] as unknown[]).push(this.single(f, end));
      } else if (f.optional) {
        optionals ??= [];
        optionalValues ??= new Map();
        if (!optionalValues.has(f)) optionals.push(f);
        optionalValues.set(f, this.single(f, end));
      } else {
        out[f.name] = this.single(f, end);
      }
    }
    if (this.pos !== end) throw BAIL;
    if (optionals && optionalValues) {
      // appended in field order, after the defaults, as the general path does
      for (const f of plan.optionals) if (optionalValues.has(f)) out[f.name] = optionalValues.get(f);
    }
    return out;
  }

  mapEntry(f: DecodeField, into: Record<string, unknown>, end: number): void {
    const stop = this.delimited(end);
    let key: string | undefined;
    let value: unknown;
    let hasValue = false;
    while (this.pos < stop) {
      const tag = this.uint32(stop);
      if (tag === 10) key = this.string(stop);
      else if (tag === 18) {
        value = this.delimitedValue(f, stop);
        hasValue = true;
      } else throw BAIL;
    }
    if (key === undefined || !hasValue || key === PROTO_KEY) throw BAIL;
    into[key] = value;
  }

  single(f: DecodeField, end: number): unknown {
    switch (f.kind) {
      case Kind.String:
        return this.string(end);
      case Kind.Bool:
        this.varint64(end);
        return this.lo !== 0; // protobufjs reads a bool from the low 32 bits
      case Kind.Int32:
        this.varint64(end);
        return this.lo | 0;
      case Kind.Uint32:
        this.varint64(end);
        return this.lo >>> 0;
      case Kind.Int64:
        this.varint64(end);
        return new protobuf.util.LongBits(this.lo, this.hi).toNumber(false);
      case Kind.Uint64:
        this.varint64(end);
        return new protobuf.util.LongBits(this.lo, this.hi).toNumber(true);
      case Kind.Double:
        return this.double(end);
      case Kind.Bytes: {
        const stop = this.delimited(end);
        const b = new Uint8Array(stop - this.pos); // a copy, as the general path returns
        b.set(this.buf.subarray(this.pos, stop));
        this.pos = stop;
        return b;
      }
      default:
        return this.delimitedValue(f, end);
    }
  }

  delimitedValue(f: DecodeField, end: number): unknown {
    const stop = this.delimited(end);
    let v: unknown;
    switch (f.kind) {
      case Kind.Message:
        v = this.message(f.msg!, stop);
        break;
      case Kind.Struct:
        v = this.struct(stop);
        break;
      case Kind.ListValue:
        v = this.list(stop);
        break;
      case Kind.Value:
        v = this.value(stop);
        break;
      default:
        throw BAIL;
    }
    if (this.pos !== stop) throw BAIL;
    return v;
  }

  /** google.protobuf.Struct as a plain object. */
  struct(end: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    while (this.pos < end) {
      if (this.uint32(end) !== 10) throw BAIL;
      const stop = this.delimited(end);
      let key: string | undefined;
      let value: unknown;
      let hasValue = false;
      while (this.pos < stop) {
        const tag = this.uint32(stop);
        if (tag === 10) key = this.string(stop);
        else if (tag === 18 && !hasValue) {
          const vs = this.delimited(stop);
          value = this.value(vs);
          if (this.pos !== vs) throw BAIL;
          hasValue = true;
        } else throw BAIL;
      }
      if (key === undefined || !hasValue || key === PROTO_KEY) throw BAIL;
      out[key] = value;
    }
    return out;
  }

  /** google.protobuf.ListValue as an array. */
  list(end: number): unknown[] {
    const out: unknown[] = [];
    while (this.pos < end) {
      if (this.uint32(end) !== 10) throw BAIL;
      const stop = this.delimited(end);
      out.push(this.value(stop));
      if (this.pos !== stop) throw BAIL;
    }
    return out;
  }

  /** google.protobuf.Value as plain JSON; exactly one kind, or the general path decides. */
  value(end: number): unknown {
    if (this.pos >= end) throw BAIL; // an empty Value: the general path makes it null
    const tag = this.uint32(end);
    let v: unknown;
    switch (tag) {
      case 8:
        this.varint64(end);
        v = null;
        break;
      case 17:
        v = this.double(end);
        break;
      case 26:
        v = this.string(end);
        break;
      case 32:
        this.varint64(end);
        v = this.lo !== 0;
        break;
      case 42: {
        const stop = this.delimited(end);
        v = this.struct(stop);
        break;
      }
      case 50: {
        const stop = this.delimited(end);
        v = this.list(stop);
        break;
      }
      default:
        throw BAIL;
    }
    if (this.pos !== end) throw BAIL;
    return v;
  }
}

/**
 * Decodes `bytes` as message `type` when they are plainly well-formed (see the top of this file);
 * null when the general path must decide.
 */
export function fastDecode(
  type: protobuf.Type,
  bytes: Uint8Array,
  emptyKeys: (t: protobuf.Type) => string[],
): Record<string, unknown> | null {
  if (!LITTLE_ENDIAN) return null;
  const plan = decodePlanOf(type, emptyKeys);
  const r = new Reader(bytes, Buffer.isBuffer(bytes));
  try {
    return r.message(plan, bytes.length);
  } catch (err) {
    if (err === BAIL) return null;
    throw err;
  }
}
