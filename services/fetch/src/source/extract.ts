import { protoKeyPath } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import type { ExtractSpec } from "./source-def";

/** Records grouped by entity type: `{ website: [{...}, {...}] }`. */
export type EntityRecords = Record<string, Record<string, unknown>[]>;

/** Reads the value at `path` (segments; numeric ones index lists); undefined when absent. */
export function readPath(body: unknown, path: readonly string[]): unknown {
  let v: unknown = body;
  for (const seg of path) {
    if (Array.isArray(v)) v = /^\d+$/.test(seg) ? v[Number(seg)] : undefined;
    else if (v !== null && typeof v === "object")
      v = Object.hasOwn(v, seg) ? (v as Record<string, unknown>)[seg] : undefined;
    else return undefined;
  }
  return v;
}

/**
 * Turns a response body into records per entity type: an object at an extract path is one
 * record, a list is one record per element, and an absent or null value is none. Every
 * declared type appears in the result, so consumers can tell "no records" from "not asked".
 */
export function extractRecords(
  body: unknown,
  specs: readonly ExtractSpec[],
  source: string,
  query: string,
): EntityRecords {
  const out: EntityRecords = {};
  for (const spec of specs) {
    // Types follow the name rule (compileSource), so `__proto__` never gets here and the
    // assignment below always makes an own key.
    const list = Object.hasOwn(out, spec.type) ? out[spec.type] : (out[spec.type] = []);
    const v = readPath(body, spec.path);
    if (v === undefined || v === null) continue;
    const items = Array.isArray(v) ? v : [v];
    items.forEach((item, i) => {
      if (item === null || typeof item !== "object" || Array.isArray(item)) {
        const at = spec.path.length === 0 ? "the body" : `path "${spec.path.join(".")}"`;
        throw new MachinaError(
          "UPSTREAM",
          `query ${source}.${query}: extract ${spec.name} expected an object or a list of objects at ${at}, got ${kind(item)}${Array.isArray(v) ? ` at index ${i}` : ""}; fix the extract path or check the upstream API version`,
          { retryable: false, details: { source, query, extract: spec.name, path: spec.path.join(".") } },
        );
      }
      // The mesh refuses this key in every message, so say here which record brought it.
      const bad = protoKeyPath(item);
      if (bad !== null) {
        throw new MachinaError(
          "UPSTREAM",
          `query ${source}.${query}: extract ${spec.name}: record ${i} has a "__proto__" key (at ${bad}), which the mesh cannot carry (it names the prototype of JavaScript objects); check the upstream API`,
          { retryable: false, details: { source, query, extract: spec.name, record: i, key: bad } },
        );
      }
      list.push(item as Record<string, unknown>);
    });
  }
  return out;
}

/** Appends every record of `more` to `into`, type by type. */
export function mergeRecords(into: EntityRecords, more: EntityRecords): EntityRecords {
  for (const [type, records] of Object.entries(more))
    (Object.hasOwn(into, type) ? into[type] : (into[type] = [])).push(...records);
  return into;
}

/** Total number of records across all types. */
export function countRecords(records: EntityRecords): number {
  let n = 0;
  for (const list of Object.values(records)) n += list.length;
  return n;
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string" ? "a string" : typeof v === "object" ? "an object" : `a ${typeof v}`;
}
