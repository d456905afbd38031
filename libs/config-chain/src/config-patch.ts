import type { JsonValue, PatchOp } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { canonicalHash } from "./canonical-json";

/** The component tree a chain patches: `{ <service>: { <kind>: { <name>: component } } }`. */
export type ConfigTree = Record<string, Record<string, Record<string, unknown>>>;

/** One RFC 6902 operation, as hashed and stored: `value` only where the op takes one, `from` likewise. */
export interface ChainOp {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: JsonValue;
  from?: string;
}

/** A patch on the chain: what its hash covers, and the hash. */
export interface ChainPatch {
  /** SHA-256 (hex) of the canonical JSON of `{ parent, ops, author, createdAt }`. */
  hash: string;
  /** The head this patch was appended to: the root hash or the previous patch's hash. */
  parent: string;
  ops: ChainOp[];
  author: string;
  /** Epoch ms, set by the chain when the patch is appended. */
  createdAt: number;
}

const WITH_VALUE = new Set(["add", "replace", "test"]);
const WITH_FROM = new Set(["move", "copy"]);
const OPS = ["add", "remove", "replace", "move", "copy", "test"];

/**
 * Checks and normalises operations as a client (JSON or protobuf) sent them: a protobuf
 * PatchOp always has `value` and `from`, so only the fields the op uses are kept, or the same
 * patch would hash differently by encoding. Throws BAD_REQUEST naming the operation.
 */
export function normalizeOps(ops: readonly Partial<PatchOp>[]): ChainOp[] {
  if (ops.length === 0) throw badOp(-1, "a patch needs at least one operation");
  return ops.map((o, i) => {
    const op = o.op ?? "";
    if (!OPS.includes(op)) throw badOp(i, `unknown op "${op}"; expected one of ${OPS.join(", ")}`);
    const path = o.path ?? "";
    if (!path.startsWith("/"))
      throw badOp(i, `path "${path}" must be a JSON pointer into the document, e.g. /fetch/sources/<name>`);
    const out: ChainOp = { op: op as ChainOp["op"], path };
    if (WITH_VALUE.has(op)) out.value = (o.value ?? null) as JsonValue;
    if (WITH_FROM.has(op)) {
      if (!o.from?.startsWith("/")) throw badOp(i, `${op} needs "from", a JSON pointer into the document`);
      out.from = o.from;
    }
    return out;
  });
}

/** The hash of a patch: SHA-256 of the canonical form of its parent, ops, author and time. */
export function patchHash(p: Omit<ChainPatch, "hash">): string {
  return canonicalHash({ parent: p.parent, ops: p.ops, author: p.author, createdAt: p.createdAt });
}

/** The root hash: SHA-256 of the canonical JSON of the file config tree. */
export function rootHash(tree: ConfigTree): string {
  return canonicalHash(tree);
}

function badOp(index: number, message: string): MachinaError {
  return new MachinaError("BAD_REQUEST", index < 0 ? message : `ops[${index}]: ${message}`, {
    retryable: false,
    details: { field: index < 0 ? "ops" : `ops[${index}]` },
  });
}
