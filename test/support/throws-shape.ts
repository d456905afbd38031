import assert from "node:assert/strict";
import { ProtoShapeError } from "@machina/protos";

/** Asserts that `fn` throws a ProtoShapeError at `path` whose message matches `re`. */
export function throwsShape(fn: () => unknown, path: string, re: RegExp): ProtoShapeError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ProtoShapeError, `expected ProtoShapeError, got ${String(caught)}`);
  assert.equal(caught.path, path);
  assert.match(caught.message, re);
  return caught;
}
