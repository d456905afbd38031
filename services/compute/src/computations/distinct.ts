import * as z from "zod";
import { field } from "@machina/config";
import type { JsonValue } from "@machina/protos";
import { defineComputation } from "./define";
import { pageAfter, pageLimit, pageToken } from "./paging";
import { checkFields } from "./type-fields";

/** Rows per page of distinct: 0 means the default. */
const DISTINCT_LIMIT = { default: 100, max: 1000 };

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** `distinct`: a ledger producer listing every distinct value of one field across a type. */
export const distinct = defineComputation("distinct", {
  description:
    "Ledger producer, paged: every distinct non-empty value of one field across the clean records of a type, " +
    "as rows {<as or field>: value} in ascending order of the value's JSON text; where keeps the records whose " +
    "fields equal all the values given. args {type, field, as?, where?}; limit (1-1000, default 100) and page " +
    "(the previous answer's next) page through the values. Each call scans every clean record of the type " +
    "(keys page by page, records in bulk, nothing but the distinct values held), so it costs a full scan per page",
  args: field.object({
    type: field.name().describe('The entity type, e.g. "business"'),
    field: field.name().describe('The field whose values are listed, e.g. "domain"'),
    as: field.name().optional().describe("The row field the values are put under; default the field's name"),
    where: field
      .names(z.union([z.string(), z.number(), z.boolean()]))
      .optional()
      .describe(
        'Equality filters: only records whose fields equal every value given count, e.g. {"city": "springfield"}',
      ),
  }),
  async run({ type, field: name, as, where }, { data }, paging) {
    const origin = 'computation "distinct"';
    const limit = pageLimit(origin, paging.limit, DISTINCT_LIMIT);
    const after = pageAfter(origin, paging.page);
    const filters = Object.entries(where ?? {});
    await checkFields(origin, data, type, [
      ["args.field", name],
      ...filters.map(([f]): [string, string] => [`args.where.${f}`, f]),
    ]);
    // The smallest limit + 1 values past the page's start, and how far a value may reach and
    // still be one of them: the set is cut back to limit + 1 whenever it doubles, so it stays
    // within 2 × (limit + 1) values however many distinct values the type has.
    const keep = limit + 1;
    let found = new Set<string>();
    let ceiling: string | null = null;
    const take = (value: unknown) => {
      if (value === null || value === undefined || value === "") return;
      const text = JSON.stringify(value);
      if ((after !== null && text <= after) || (ceiling !== null && text > ceiling) || found.has(text)) return;
      found.add(text);
      if (found.size >= 2 * keep) {
        const kept = [...found].sort(byText).slice(0, keep);
        found = new Set(kept);
        ceiling = kept[kept.length - 1];
      }
    };
    await data.scan(type, (records) => {
      for (const record of records) if (filters.every(([f, v]) => record[f] === v)) take(record[name]);
    });
    const sorted = [...found].sort(byText);
    const rows = sorted.slice(0, limit);
    const column = as ?? name;
    return {
      rows: rows.map((text) => ({ [column]: JSON.parse(text) as JsonValue })),
      next: sorted.length > limit ? pageToken(JSON.parse(rows[rows.length - 1])) : "",
    };
  },
});
