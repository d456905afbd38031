import protobuf from "protobufjs";
import * as fastPlan from "./fast-plan";
import type { FieldPlan, TypePlan } from "./fast-plan";
import { PROTO_KEY } from "./struct-json";

// The binary encoder of the hot path. The general one (normalizeShape → protobufjs fromObject →
// encode) copies the value twice and builds a Message per Struct value and a linked list of write
// operations; for a 230-byte reply that was ~10 KB of garbage and most of a responder's codec time.
// This one checks the plain object against the message type and writes it in two passes (sizes,
// then bytes into one buffer), with the same bytes as protobufjs (fields by number, map entries in
// key order, present values written even when default).
//
// It is only a shortcut: whatever it is not sure about (a snake_case key, a number as a string, a
// value of the wrong type, base64 text for bytes, a Date inside a Struct, a repeated number, ...)
// makes it return null, and the caller takes the general path, which accepts the same inputs and
// throws the same ProtoShapeErrors as before. So it must never accept what normalizeShape refuses.

// Module-level copies of the imports: they keep the hot switches on constants (see fast-plan.ts).
const { BAIL, Kind, LITTLE_ENDIAN, delimited, planOf, utf8Length, varintLength, writeDouble, writeNegative } = fastPlan;

// ---------------------------------------------------------------------------------------------
// Checks

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const UINT32_MAX = 4294967295;
const hasOwn = Object.prototype.hasOwnProperty;

/** A plain object literal (what the general path copies key by key); anything else takes it. */
function isLiteral(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object") return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// ---------------------------------------------------------------------------------------------
// Pass 1: check and size. Every length-delimited part pushes its length onto `sizes`, in the
// order pass 2 writes them (pre-order: a part's own slot first, then its children's).

class Sizer {
  sizes: number[] = [];

  message(plan: TypePlan, value: unknown): number {
    if (!isLiteral(value)) throw BAIL;
    const keys = Object.keys(value);
    for (let i = 0; i < keys.length; i++) {
      // Unknown (or snake_case) keys: the general path renames them or names the bad one.
      if (!plan.byName.has(keys[i])) throw BAIL;
    }
    let total = 0;
    for (const f of plan.ordered) {
      const v = value[f.name];
      if (v === null || v === undefined) continue;
      if (f.kind === Kind.Other) throw BAIL;
      if (f.map) {
        if (!isLiteral(v)) throw BAIL;
        for (const key in v) {
          if (!hasOwn.call(v, key)) continue;
          if (key === PROTO_KEY) throw BAIL;
          const slot = this.sizes.length;
          this.sizes.push(0);
          const entry = 1 + delimited(utf8Length(key)) + 1 + this.delimitedSingle(f, v[key]);
          this.sizes[slot] = entry;
          total += f.tag.length + delimited(entry);
        }
      } else if (f.repeated) {
        if (!Array.isArray(v)) throw BAIL;
        for (let i = 0; i < v.length; i++) total += f.tag.length + this.single(f, v[i]);
      } else {
        total += f.tag.length + this.single(f, v);
      }
    }
    return total;
  }

  /** Size of one value of field `f`, its length prefix included when it has one. */
  single(f: FieldPlan, v: unknown): number {
    switch (f.kind) {
      case Kind.String:
        if (typeof v !== "string") throw BAIL;
        return delimited(utf8Length(v));
      case Kind.Bool:
        if (typeof v !== "boolean") throw BAIL;
        return 1;
      case Kind.Int32:
        if (typeof v !== "number" || !Number.isInteger(v) || v < INT32_MIN || v > INT32_MAX) throw BAIL;
        return v < 0 ? 10 : varintLength(v);
      case Kind.Uint32:
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > UINT32_MAX) throw BAIL;
        return varintLength(v);
      case Kind.Int64:
        if (typeof v !== "number" || !Number.isSafeInteger(v)) throw BAIL;
        return v < 0 ? 10 : varintLength(v);
      case Kind.Uint64:
        if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw BAIL;
        return varintLength(v);
      case Kind.Double:
        if (typeof v !== "number") throw BAIL;
        return 8;
      case Kind.Bytes:
        if (!(v instanceof Uint8Array)) throw BAIL;
        return delimited(v.length);
      default:
        return this.delimitedSingle(f, v);
    }
  }

  /** A message-like value (message, Struct, Value, ListValue) with its length prefix. */
  delimitedSingle(f: FieldPlan, v: unknown): number {
    const slot = this.sizes.length;
    this.sizes.push(0);
    let len: number;
    switch (f.kind) {
      case Kind.Message:
        len = this.message(f.msg!, v);
        break;
      case Kind.Struct:
        len = this.struct(v);
        break;
      case Kind.ListValue:
        if (!Array.isArray(v)) throw BAIL;
        len = this.list(v);
        break;
      case Kind.Value:
        len = this.value(v);
        break;
      default:
        throw BAIL;
    }
    this.sizes[slot] = len;
    return delimited(len);
  }

  /** google.protobuf.Struct: `map<string, Value> fields = 1`. */
  struct(obj: unknown): number {
    if (!isLiteral(obj)) throw BAIL;
    let total = 0;
    for (const k in obj) {
      if (!hasOwn.call(obj, k)) continue;
      if (k === PROTO_KEY) throw BAIL;
      const v = obj[k];
      if (v === undefined) continue; // the general path leaves it out too
      const entrySlot = this.sizes.length;
      this.sizes.push(0);
      const valueSlot = this.sizes.length;
      this.sizes.push(0);
      const vlen = this.value(v);
      this.sizes[valueSlot] = vlen;
      const entry = 1 + delimited(utf8Length(k)) + 1 + delimited(vlen);
      this.sizes[entrySlot] = entry;
      total += 1 + delimited(entry);
    }
    return total;
  }

  /** google.protobuf.ListValue: `repeated Value values = 1`. */
  list(arr: unknown[]): number {
    let total = 0;
    for (let i = 0; i < arr.length; i++) {
      const slot = this.sizes.length;
      this.sizes.push(0);
      // In a list, undefined is a JSON null, as in the general path.
      const len = this.value(arr[i] === undefined ? null : arr[i]);
      this.sizes[slot] = len;
      total += 1 + delimited(len);
    }
    return total;
  }

  /** google.protobuf.Value: one of null (1), number (2), string (3), bool (4), struct (5), list (6). */
  value(v: unknown): number {
    if (v === null) return 2;
    switch (typeof v) {
      case "number":
        return 9;
      case "string":
        return 1 + delimited(utf8Length(v));
      case "boolean":
        return 2;
      case "object": {
        const slot = this.sizes.length;
        this.sizes.push(0);
        const len = Array.isArray(v) ? this.list(v) : this.struct(v);
        this.sizes[slot] = len;
        return 1 + delimited(len);
      }
      default:
        throw BAIL; // bigint, functions, symbols, undefined at the top: the general path decides
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pass 2: write, consuming `sizes` in the order pass 1 pushed them.

class Writer {
  pos = 0;
  next = 0;

  constructor(
    readonly buf: Buffer,
    readonly sizes: number[],
  ) {}

  bytes(b: Uint8Array): void {
    for (let i = 0; i < b.length; i++) this.buf[this.pos++] = b[i];
  }

  varint(n: number): void {
    // n: a non-negative safe integer
    while (n > 0x7f) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  string(s: string, len: number): void {
    this.varint(len);
    if (len === s.length) {
      for (let i = 0; i < len; i++) this.buf[this.pos++] = s.charCodeAt(i);
    } else if (s.length < 40) {
      // What protobufjs' Node writer does: its own UTF-8 writer for short strings, Buffer's for long.
      protobuf.util.utf8.write(s, this.buf, this.pos);
      this.pos += len;
    } else {
      this.pos += this.buf.write(s, this.pos, len, "utf8");
    }
  }

  message(plan: TypePlan, value: Record<string, unknown>): void {
    for (const f of plan.ordered) {
      const v = value[f.name];
      if (v === null || v === undefined) continue;
      if (f.map) {
        const m = v as Record<string, unknown>;
        for (const key in m) {
          if (!hasOwn.call(m, key)) continue;
          this.bytes(f.tag);
          this.varint(this.sizes[this.next++]);
          this.buf[this.pos++] = 10;
          this.string(key, utf8Length(key));
          this.buf[this.pos++] = 18;
          this.delimitedSingle(f, m[key]);
        }
      } else if (f.repeated) {
        const a = v as unknown[];
        for (let i = 0; i < a.length; i++) {
          this.bytes(f.tag);
          this.single(f, a[i]);
        }
      } else {
        this.bytes(f.tag);
        this.single(f, v);
      }
    }
  }

  single(f: FieldPlan, v: unknown): void {
    switch (f.kind) {
      case Kind.String:
        this.string(v as string, utf8Length(v as string));
        return;
      case Kind.Bool:
        this.buf[this.pos++] = v ? 1 : 0;
        return;
      case Kind.Int32:
      case Kind.Int64:
        if ((v as number) < 0) this.pos = writeNegative(this.buf, this.pos, v as number);
        else this.varint(v as number);
        return;
      case Kind.Uint32:
      case Kind.Uint64:
        this.varint(v as number);
        return;
      case Kind.Double:
        this.double(v as number);
        return;
      case Kind.Bytes: {
        const b = v as Uint8Array;
        this.varint(b.length);
        this.buf.set(b, this.pos);
        this.pos += b.length;
        return;
      }
      default:
        this.delimitedSingle(f, v);
    }
  }

  double(n: number): void {
    writeDouble(this.buf, this.pos, n);
    this.pos += 8;
  }

  delimitedSingle(f: FieldPlan, v: unknown): void {
    this.varint(this.sizes[this.next++]);
    switch (f.kind) {
      case Kind.Message:
        this.message(f.msg!, v as Record<string, unknown>);
        return;
      case Kind.Struct:
        this.struct(v as Record<string, unknown>);
        return;
      case Kind.ListValue:
        this.list(v as unknown[]);
        return;
      default:
        this.value(v);
    }
  }

  struct(obj: Record<string, unknown>): void {
    for (const k in obj) {
      if (!hasOwn.call(obj, k)) continue;
      const v = obj[k];
      if (v === undefined) continue;
      this.buf[this.pos++] = 10;
      this.varint(this.sizes[this.next++]);
      const vlen = this.sizes[this.next++];
      this.buf[this.pos++] = 10;
      this.string(k, utf8Length(k));
      this.buf[this.pos++] = 18;
      this.varint(vlen);
      this.value(v);
    }
  }

  list(arr: unknown[]): void {
    for (let i = 0; i < arr.length; i++) {
      this.buf[this.pos++] = 10;
      this.varint(this.sizes[this.next++]);
      this.value(arr[i] === undefined ? null : arr[i]);
    }
  }

  value(v: unknown): void {
    if (v === null) {
      this.buf[this.pos++] = 8;
      this.buf[this.pos++] = 0;
      return;
    }
    switch (typeof v) {
      case "number":
        this.buf[this.pos++] = 17;
        this.double(v);
        return;
      case "string":
        this.buf[this.pos++] = 26;
        this.string(v, utf8Length(v));
        return;
      case "boolean":
        this.buf[this.pos++] = 32;
        this.buf[this.pos++] = v ? 1 : 0;
        return;
      default: {
        const isList = Array.isArray(v);
        this.buf[this.pos++] = isList ? 50 : 42;
        this.varint(this.sizes[this.next++]);
        if (isList) this.list(v as unknown[]);
        else this.struct(v as Record<string, unknown>);
      }
    }
  }
}

/**
 * Encodes `value` as message `type` when it is plainly well-formed (see the top of this file);
 * null when the general path must decide.
 */
export function fastEncode(type: protobuf.Type, value: unknown): Uint8Array | null {
  if (!LITTLE_ENDIAN) return null;
  const plan = planOf(type);
  const sizer = new Sizer();
  let total: number;
  try {
    total = sizer.message(plan, value);
  } catch (err) {
    if (err === BAIL) return null;
    throw err;
  }
  const w = new Writer(Buffer.allocUnsafe(total), sizer.sizes);
  w.message(plan, value as Record<string, unknown>);
  if (w.pos !== total || w.next !== sizer.sizes.length) {
    throw new Error(`fast protobuf encoder of ${type.name} wrote ${w.pos} of ${total} bytes: a bug`);
  }
  return w.buf;
}
