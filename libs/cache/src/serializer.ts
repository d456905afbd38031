import { deserialize as v8Deserialize, serialize as v8Serialize } from "node:v8";

/**
 * Encodes `value` with the structured clone algorithm (primitives, BigInt, NaN and -0, plain
 * objects, arrays with their holes and `undefined`s, Map, Set, Date, RegExp, typed arrays,
 * nested and cyclic graphs). Throws a DataCloneError for what cannot be cloned: functions,
 * symbols, class instances with private state. Class instances otherwise come back as plain
 * objects (their prototype is not stored).
 */
export function serialize(value: unknown): Buffer {
  return v8Serialize(value);
}

/** Decodes what {@link serialize} wrote; every call returns a fresh copy. */
export function deserialize(buf: Uint8Array): unknown {
  return v8Deserialize(buf);
}
