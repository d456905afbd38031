import assert from "node:assert/strict";
import type { ComponentDoc } from "@machina/config";
import { MachinaError } from "@machina/wire";

/** A component document as loadComponents gives it, from `origins` (default one file named after it). */
export function componentDoc(
  name: string,
  doc: Record<string, unknown>,
  origins = [`config/default/x/${name}.yaml`],
): ComponentDoc {
  return { name, origins, doc };
}

/** Runs `fn` and returns the BAD_REQUEST MachinaError it must throw. */
export function badRequest(fn: () => unknown): MachinaError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, "BAD_REQUEST");
    return err;
  }
  assert.fail("expected a BAD_REQUEST");
}
