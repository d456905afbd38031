import { fileURLToPath } from "node:url";
import path from "node:path";
import protobuf from "protobufjs";
import { registerStructWrappers } from "./struct-json";
import { normalizeShape } from "./strict-shape";
import { fastEncode } from "./fast-encode";
import { fastDecode } from "./fast-decode";
import { ProtoShapeError } from "./proto-error";
import type { MessageName, MessageTypes } from "./types";

/** Encoders and decoders of one message type, on plain objects. */
export interface Codec<T> {
  /** Fully-qualified name, e.g. `machina.v1.QueryRequest`. */
  readonly typeName: string;
  /** Binary protobuf encoding. */
  encode(value: Partial<T>): Uint8Array;
  /** Binary protobuf decoding; throws ProtoShapeError on malformed bytes. */
  decode(bytes: Uint8Array): T;
  /** Strictly checks a parsed proto3-JSON value and fills defaults; throws ProtoShapeError. */
  fromJson(json: unknown): T;
  /** JSON-ready plain object (proto3 JSON names). */
  toJson(value: Partial<T>): T;
}

/** Folder holding `machina/v1/*.proto`; override with MACHINA_PROTOS_DIR (e.g. in images). */
export const PROTOS_DIR =
  process.env.MACHINA_PROTOS_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../protos");

const FILES = ["common", "fetch", "invoke", "pipeline", "data", "vertex", "dlq", "config"].map(
  (f) => `machina/v1/${f}.proto`,
);
const PACKAGE = "machina.v1";

let root: protobuf.Root | undefined;
const codecs = new Map<string, Codec<unknown>>();

function loadRoot(): protobuf.Root {
  if (root) return root;
  registerStructWrappers();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => (target.startsWith("google/protobuf/") ? target : path.join(PROTOS_DIR, target));
  r.loadSync(FILES, { keepCase: false });
  r.resolveAll();
  root = r;
  return r;
}

const OBJECT_OPTS: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  bytes: Array,
  defaults: true,
  arrays: true,
  objects: true,
};

/** The general path's plain object of a decoded message. */
function generalToPlain(type: protobuf.Type, m: protobuf.Message): Record<string, unknown> {
  return fixBytes(type, type.toObject(m, OBJECT_OPTS) as Record<string, unknown>);
}

/** Keys (in order) of the general path's plain object of an empty message: the fast decoder copies them. */
const emptyKeys = (type: protobuf.Type) => Object.keys(generalToPlain(type, type.create()));

function makeCodec<T>(type: protobuf.Type): Codec<T> {
  const toPlain = (m: protobuf.Message): T => generalToPlain(type, m) as T;
  return {
    typeName: type.fullName.slice(1),
    encode(value) {
      const v = value ?? {};
      // The shortcut takes plain, well-formed values; the general path everything else (and names what is wrong).
      return fastEncode(type, v) ?? type.encode(type.fromObject(normalizeShape(type, v))).finish();
    },
    decode(bytes) {
      // The shortcut takes well-formed bytes; the general path everything else (and says what is wrong).
      const fast = fastDecode(type, bytes, emptyKeys);
      if (fast !== null) return fast as T;
      try {
        return toPlain(type.decode(bytes));
      } catch (err) {
        throw new ProtoShapeError(type.name, "", `malformed protobuf (${(err as Error).message})`);
      }
    },
    fromJson(json) {
      return toPlain(type.fromObject(normalizeShape(type, json)));
    },
    toJson(value) {
      return toPlain(type.fromObject(normalizeShape(type, value ?? {})));
    },
  };
}

// bytes: Array turns Buffers into number[]; callers want Uint8Array.
function fixBytes(type: protobuf.Type, o: Record<string, unknown>): Record<string, unknown> {
  for (const f of type.fieldsArray) {
    if (f.type === "bytes" && Array.isArray(o[f.name])) o[f.name] = Uint8Array.from(o[f.name] as number[]);
  }
  return o;
}

/** The typed codec of a machina.v1 message. */
export function codec<N extends MessageName>(name: N): Codec<MessageTypes[N]> {
  let c = codecs.get(name);
  if (!c) {
    c = makeCodec<MessageTypes[N]>(loadRoot().lookupType(`${PACKAGE}.${name}`));
    codecs.set(name, c);
  }
  return c as Codec<MessageTypes[N]>;
}

/**
 * Binary encoding through the general path only (normalizeShape → fromObject → encode), which
 * `encode` takes whenever its shortcut is not sure; for tests that hold the two to the same bytes.
 */
export function encodeGeneral<N extends MessageName>(name: N, value: Partial<MessageTypes[N]>): Uint8Array {
  const type = loadRoot().lookupType(`${PACKAGE}.${name}`);
  return type.encode(type.fromObject(normalizeShape(type, value ?? {}))).finish();
}

/** Binary decoding through the general path only; see {@link encodeGeneral}. */
export function decodeGeneral<N extends MessageName>(name: N, bytes: Uint8Array): MessageTypes[N] {
  const type = loadRoot().lookupType(`${PACKAGE}.${name}`);
  return generalToPlain(type, type.decode(bytes)) as MessageTypes[N];
}

/** Names of every message declared in protos/machina/v1. */
export function messageNames(): string[] {
  const ns = loadRoot().lookup(PACKAGE) as protobuf.Namespace;
  return ns.nestedArray.filter((n) => n instanceof protobuf.Type).map((n) => n.name);
}
