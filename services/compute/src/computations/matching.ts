import { field } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { SCAN_BATCH } from "../reads/data-reads";
import { defineComputation } from "./define";
import { pageAfter, pageLimit, pageToken } from "./paging";
import { compileWhere, whereArg, whereFields } from "./predicate";
import { checkFields } from "./type-fields";

/** Rows per page of matching: 0 means the default. */
const MATCHING_LIMIT = { default: 100, max: 1000 };

/**
 * Where a page starts: the data.keys page token of the key page holding its first match ("" for
 * the first key page) and that match's offset inside it. Key pages are always read SCAN_BATCH
 * keys at a time, so the same token and offset name the same entity again.
 */
interface Position {
  keys: string;
  at: number;
}

/** `matching`: a ledger producer listing every entity of a type whose newest clean record matches a filter. */
export const matching = defineComputation("matching", {
  description:
    "Ledger producer, paged: every entity of a type whose newest clean record matches where, once, in data.keys order: " +
    "args {type, where, fields?}. Rows: the whole record, or its key fields and the fields asked. limit (1-1000, " +
    "default 100) and page (the previous answer's next) page through the matches; next is empty on the last page. " +
    "A page reads keys and records a thousand at a time from where the previous one stopped, until it has limit " +
    "matches and knows whether another follows",
  args: field.object({
    type: field.name().describe('The entity type, e.g. "business"'),
    where: whereArg().superRefine((w, ctx) => {
      if (Object.keys(w).length === 0)
        ctx.addIssue({ code: "custom", message: "give at least one condition", input: w });
    }),
    fields: field
      .list(field.name(), { min: 1, emptyHint: "name at least one field, or leave fields out for every field" })
      .optional()
      .describe("The fields each row carries besides the key fields; default every field"),
  }),
  async run({ type, where, fields: wanted }, { data }, paging) {
    const origin = 'computation "matching"';
    const limit = pageLimit(origin, paging.limit, MATCHING_LIMIT);
    const start = positionOf(origin, paging.page);
    const declared = await checkFields(origin, data, type, [
      ...whereFields(where),
      ...(wanted ?? []).map((f, i): [string, string] => [`args.fields[${i}]`, f]),
    ]);
    const test = compileWhere(origin, type, declared, where);
    const rows: JsonObject[] = [];
    let { keys: token, at } = start;
    for (;;) {
      const page = await data.keys(type, token, SCAN_BATCH);
      const keys = page.keys.slice(at);
      const records = aligned(keys, (await data.many(type, keys)).records);
      for (let i = 0; i < keys.length; i++) {
        const record = records[i];
        if (record === null || !test(record)) continue;
        // One match past the page tells whether there is a next page, and where it starts.
        if (rows.length === limit) return { rows, next: pageToken({ keys: token, at: at + i }) };
        rows.push(wanted === undefined ? record : project(record, keys[i], wanted));
      }
      if (page.next === "") return { rows, next: "" };
      token = page.next;
      at = 0;
    }
  },
});

// The record of each key, or null for one with none: data answers records in key order, the
// missing left out.
function aligned(keys: readonly JsonObject[], records: readonly JsonObject[]): (JsonObject | null)[] {
  let j = 0;
  return keys.map((key) => {
    const r = records[j];
    if (r === undefined || !Object.keys(key).every((f) => Object.hasOwn(r, f) && r[f] === key[f])) return null;
    j++;
    return r;
  });
}

function project(record: JsonObject, key: JsonObject, wanted: readonly string[]): JsonObject {
  const row: JsonObject = { ...key };
  for (const f of wanted) row[f] = Object.hasOwn(record, f) ? record[f] : null;
  return row;
}

function positionOf(origin: string, page: string): Position {
  const text = pageAfter(origin, page);
  if (text === null) return { keys: "", at: 0 };
  const p = JSON.parse(text) as Partial<Position> | null;
  if (
    typeof p === "object" &&
    p !== null &&
    typeof p.keys === "string" &&
    Number.isInteger(p.at) &&
    (p.at as number) >= 0 &&
    (p.at as number) < SCAN_BATCH
  )
    return { keys: p.keys, at: p.at as number };
  throw new MachinaError(
    "BAD_REQUEST",
    `${origin}: page: "${page.length > 40 ? `${page.slice(0, 40)}…` : page}" is not a page token of this computation; ` +
      'pass the "next" of its previous answer, or "" for the first page',
    { details: { field: "page" } },
  );
}
