import jsonpatch from "fast-json-patch";
import type { Operation } from "fast-json-patch";
import { MachinaError } from "@machina/wire";
import type { ChainOp, ConfigTree } from "./config-patch";

/**
 * Applies operations to a copy of `tree` (RFC 6902, all or nothing: a failing operation leaves
 * no partial change). Throws BAD_REQUEST naming the operation that could not apply.
 */
export function applyOps(tree: ConfigTree, ops: readonly ChainOp[]): ConfigTree {
  try {
    // Not mutating: the library clones first, so the caller's tree stays the state before the patch.
    return jsonpatch.applyPatch(tree, ops as Operation[], true, false, true).newDocument;
  } catch (err) {
    const e = err as { name?: string; index?: number; message?: string };
    const index = typeof e.index === "number" ? e.index : -1;
    const op = ops[index];
    const what = op ? `ops[${index}] (${op.op} ${op.path})` : "ops";
    const why = String(e.message ?? err).split("\n")[0];
    throw new MachinaError("BAD_REQUEST", `${what}: ${why}`, {
      retryable: false,
      details: { field: index < 0 ? "ops" : `ops[${index}]`, problem: e.name ?? "INVALID" },
    });
  }
}
