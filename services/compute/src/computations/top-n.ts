import { field } from "@machina/config";
import type { JsonObject, JsonValue } from "@machina/protos";
import { TopHeap } from "../kernels/top-heap";
import { defineComputation } from "./define";
import { numericValue } from "./numeric-value";
import { compileWhere, whereArg, whereFields } from "./predicate";
import { checkFields } from "./type-fields";

interface Candidate {
  value: number;
  record: JsonObject;
}

/** `top_n`: the n entities of a type with the highest (or lowest) value of a numeric field. */
export const top_n = defineComputation("top_n", {
  description:
    "The n entities of a type with the highest (order desc, the default) or lowest (asc) value of a numeric field " +
    "(booleans as 0/1, timestamps as epoch ms), from their newest clean records: args {type, field, n?, order?, " +
    "where?, fields?}. Rows, best first: the key fields, the fields asked (default every field) and the field itself; " +
    "ties go in ascending key order; entities without a value of the field are skipped. Each call scans every clean " +
    "record of the type, holding only the n best",
  args: field.object({
    type: field.name().describe('The entity type, e.g. "website"'),
    field: field.name().describe('The numeric field ranked by, e.g. "visits"'),
    n: field.int(1, 1000).default(10).describe("How many entities (1-1000, default 10)"),
    order: field.oneOf(["desc", "asc"]).default("desc").describe("desc: highest first (default); asc: lowest first"),
    where: whereArg().optional(),
    fields: field
      .list(field.name(), { min: 1, emptyHint: "name at least one field, or leave fields out for every field" })
      .optional()
      .describe("The fields each row carries besides the key fields and the ranked field; default every field"),
  }),
  async run({ type, field: name, n, order, where, fields: wanted }, { data }) {
    const origin = 'computation "top_n"';
    const declared = await checkFields(
      origin,
      data,
      type,
      [
        ["args.field", name],
        ...(wanted ?? []).map((f, i): [string, string] => [`args.fields[${i}]`, f]),
        ...whereFields(where),
      ],
      { numeric: ["args.field"] },
    );
    const test = compileWhere(origin, type, declared, where);
    const keyFields = await data.keyFields(type);
    const sign = order === "desc" ? -1 : 1;
    // a comes first: the better value, then the smaller key, so ties (and pages of equal values) are stable.
    const before = (a: Candidate, b: Candidate) =>
      a.value !== b.value ? sign * (a.value - b.value) < 0 : compareKeys(a.record, b.record, keyFields) < 0;
    const heap = new TopHeap<Candidate>(n, before);
    await data.scan(type, (records) => {
      for (const record of records) {
        if (!test(record)) continue;
        const value = numericValue(Object.hasOwn(record, name) ? record[name] : undefined);
        if (value !== null) heap.offer({ value, record });
      }
    });
    return heap.sorted().map(({ record }) => project(record, keyFields, wanted, name));
  },
});

// The key fields, the wanted fields and the ranked one, in that order; the whole record without `wanted`.
function project(
  record: JsonObject,
  keyFields: readonly string[],
  wanted: readonly string[] | undefined,
  name: string,
) {
  if (wanted === undefined) return record;
  const row: JsonObject = {};
  for (const f of [...keyFields, ...wanted, name]) row[f] = Object.hasOwn(record, f) ? record[f] : null;
  return row;
}

/** Orders two records by their key fields in declared order: numbers numerically, anything else by text. */
export function compareKeys(a: JsonObject, b: JsonObject, keyFields: readonly string[]): number {
  for (const f of keyFields) {
    const c = compareValues(a[f], b[f]);
    if (c !== 0) return c;
  }
  return 0;
}

function compareValues(a: JsonValue | undefined, b: JsonValue | undefined): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  const x = typeof a === "string" ? a : JSON.stringify(a ?? null);
  const y = typeof b === "string" ? b : JSON.stringify(b ?? null);
  return x < y ? -1 : x > y ? 1 : 0;
}
