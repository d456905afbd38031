import * as z from "zod";
import { field } from "@machina/config";
import { describeValue, type JsonObject } from "@machina/protos";
import { FloatBuffer, percentiles as percentilesOf } from "../kernels/percentiles";
import { defineComputation } from "./define";
import { numericValue } from "./numeric-value";
import { compileWhere, whereArg, whereFields } from "./predicate";
import { checkFields } from "./type-fields";

const percent = z
  .number({ error: (iss) => `expected a number from 0 to 100, got ${describeValue(iss.input)}` })
  .min(0)
  .max(100);

/** The row field of percentile p: `p50`, `p99_9` for 99.9 (a name, so ledgers can carry it). */
export function percentileName(p: number): string {
  return `p${String(p).replace(".", "_")}`;
}

/** `stats`: count, range, mean, spread and percentiles of a numeric field across a type. */
export const stats = defineComputation("stats", {
  description:
    "Summary of a numeric field (booleans as 0/1, timestamps as epoch ms) across the newest clean records of a type: " +
    "args {type, field, where?, percentiles? (0-100, default [50, 90, 99])}. One row {count: records with a value, " +
    "missing: matching records without one, min, max, mean, stddev (population: divided by count), sum, p<P>...}; " +
    "percentiles interpolate linearly between the nearest ranks (numpy's default), p99.9 is p99_9. With no values " +
    "count is 0, sum 0 and the rest null. Each call scans every clean record of the type, holding 8 bytes a value",
  args: field.object({
    type: field.name().describe('The entity type, e.g. "website"'),
    field: field.name().describe('The numeric field summarized, e.g. "visits"'),
    where: whereArg().optional(),
    percentiles: field
      .list(percent, { min: 1, emptyHint: "name at least one percentile, or leave percentiles out for 50, 90, 99" })
      .max(100)
      .default([50, 90, 99])
      .describe("Which percentiles (0-100) the row carries; default [50, 90, 99]"),
  }),
  async run({ type, field: name, where, percentiles }, { data }) {
    const origin = 'computation "stats"';
    const declared = await checkFields(origin, data, type, [["args.field", name], ...whereFields(where)], {
      numeric: ["args.field"],
    });
    const test = compileWhere(origin, type, declared, where);
    const values = new FloatBuffer();
    let missing = 0;
    await data.scan(type, (records) => {
      for (const record of records) {
        if (!test(record)) continue;
        const v = numericValue(Object.hasOwn(record, name) ? record[name] : undefined);
        if (v === null) missing++;
        else values.push(v);
      }
    });
    const ps = [...new Set(percentiles)];
    return [summary(values.values(), missing, ps)];
  },
});

function summary(values: Float64Array, missing: number, ps: readonly number[]): JsonObject {
  const count = values.length;
  const row: JsonObject = { count, missing };
  if (count === 0) {
    Object.assign(row, { min: null, max: null, mean: null, stddev: null, sum: 0 });
    for (const p of ps) row[percentileName(p)] = null;
    return row;
  }
  let sum = 0;
  for (let i = 0; i < count; i++) sum += values[i];
  const mean = sum / count;
  // Two passes over the values (they are held anyway): no cancellation of a one-pass Σx² − n·mean².
  let squares = 0;
  for (let i = 0; i < count; i++) squares += (values[i] - mean) ** 2;
  // Sorts the values in place, so min and max are their ends.
  const at = percentilesOf(values, ps);
  Object.assign(row, {
    min: values[0],
    max: values[count - 1],
    mean,
    stddev: Math.sqrt(squares / count),
    sum,
  });
  ps.forEach((p, i) => (row[percentileName(p)] = at[i]));
  return row;
}
