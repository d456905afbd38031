import * as z from "zod";
import { closestWord, field, parseDocument } from "@machina/config";
import type { JsonObject, JsonValue } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import { nameProblem } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";

/** What a computation may use. */
export interface ComputeDeps {
  client: MeshClient;
  names: MeshNames;
}

/**
 * The request's paging, as compute.get carries it: `limit` rows per page (0: the computation's
 * default) and `page`, the `next` of the previous answer ("" for the first page). Computations
 * that do not page ignore it.
 */
export interface Paging {
  limit: number;
  page: string;
}

/** What a run answers: its rows and, for a paged computation, the next page's token ("" on the last). */
export interface ComputeResult {
  rows: JsonObject[];
  next: string;
}

/** A registered computation: args in, rows out. */
export interface Computation {
  description: string;
  /** Its args, declared with the `field` builders of component kinds; also the source of its docs. */
  args: z.ZodType;
  /**
   * Validates `args` (BAD_REQUEST naming `args.<field>`, before any I/O) and, for a paged
   * computation, `paging` (BAD_REQUEST naming `limit` or `page`), then runs.
   */
  run(args: JsonObject, deps: ComputeDeps, paging?: Paging): Promise<ComputeResult>;
}

/**
 * What a computation declares: its args schema and a run that gets the parsed args and the
 * request's paging; it answers rows, or rows and the next page's token when it pages.
 */
interface ComputationSpec<S extends z.ZodType> {
  description: string;
  args: S;
  run(args: z.output<S>, deps: ComputeDeps, paging: Paging): Promise<JsonObject[] | ComputeResult>;
}

// Args are parsed as the `args` field of the request, so a problem reads `args.key: …`, the path
// the caller wrote, in the same wording as a bad component file.
function defineComputation<S extends z.ZodType>(name: string, spec: ComputationSpec<S>): [string, Computation] {
  const problem = nameProblem(name);
  if (problem !== null) throw new Error(`computation ${problem}`);
  const request = field.object({ args: spec.args });
  const origin = `computation "${name}"`;
  return [
    name,
    {
      description: spec.description,
      args: spec.args,
      // async, so bad args reject the returned promise like a failed run instead of throwing.
      // The cast: TypeScript cannot resolve an object's output over a generic field schema.
      run: async (args, deps, paging = { limit: 0, page: "" }) => {
        const out = await spec.run(
          (parseDocument(request, { args }, origin) as { args: z.output<S> }).args,
          deps,
          paging,
        );
        return Array.isArray(out) ? { rows: out, next: "" } : out;
      },
    },
  ];
}

// A Map, not an object literal: the name comes from a subject token, and `constructor` or
// `toString` must be unknown names rather than Object.prototype members.
/** The computations this build registers (series, moving averages, top-N… come with later issues). */
export const COMPUTATIONS: ReadonlyMap<string, Computation> = new Map<string, Computation>([
  defineComputation("latest", {
    description: "Newest merged (clean) record of one entity: args {type, key: {<key fields>}}",
    args: field.object({
      // A name also keeps it a valid subject token for the data request below.
      type: field.name().describe('The entity type, e.g. "website"'),
      key: field.names(z.json()).describe('The entity key: its key fields and values, e.g. {"domain": "example.com"}'),
    }),
    async run({ type, key }, { client, names }) {
      const reply = await client.request(
        names.data("readone", "clean", type),
        "KeyRequest",
        { key: key as JsonObject },
        "RecordReply",
      );
      return [reply.record];
    },
  }),
  defineComputation("distinct", {
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
    async run({ type, field: name, as, where }, { client, names }, paging) {
      const origin = 'computation "distinct"';
      const limit = pageLimit(origin, paging.limit, DISTINCT_LIMIT);
      const after = pageAfter(origin, paging.page);
      const filters = Object.entries(where ?? {});
      await checkFields(client, names, type, [
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
      let page = "";
      do {
        const keys = await client.request(
          names.dataKeys(type),
          "KeysRequest",
          { limit: SCAN_BATCH, page },
          "KeysReply",
        );
        page = keys.next;
        if (keys.keys.length === 0) continue;
        const reply = await client.request(
          names.data("readone", "clean", type),
          "KeyRequest",
          { keys: keys.keys },
          "RecordReply",
        );
        for (const record of reply.records) {
          if (filters.every(([f, v]) => record[f] === v)) take(record[name]);
        }
      } while (page !== "");
      const sorted = [...found].sort(byText);
      const rows = sorted.slice(0, limit);
      const column = as ?? name;
      return {
        rows: rows.map((text) => ({ [column]: JSON.parse(text) as JsonValue })),
        next: sorted.length > limit ? Buffer.from(rows[rows.length - 1]).toString("base64url") : "",
      };
    },
  }),
]);

/** Entity keys read per data.keys page, and so records per bulk readone, while a computation scans a type. */
const SCAN_BATCH = 1000;

/** Rows per page of distinct: 0 means the default. */
const DISTINCT_LIMIT = { default: 100, max: 1000 };

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The request's `limit` of a paged computation: 0 means its default; outside 1..max BAD_REQUEST naming limit. */
function pageLimit(origin: string, limit: number, bounds: { default: number; max: number }): number {
  if (limit === 0) return bounds.default;
  if (!Number.isInteger(limit) || limit < 1 || limit > bounds.max)
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: limit: expected an integer from 1 to ${bounds.max} (0 or absent means ${bounds.default}), got ${limit}`,
      { details: { field: "limit", limit, max: bounds.max } },
    );
  return limit;
}

/**
 * The JSON text of the last value of the previous page, from the `page` token (base64url of that
 * text); null for the first page. A token this computation did not make is BAD_REQUEST naming page.
 */
function pageAfter(origin: string, page: string): string | null {
  if (page === "") return null;
  const bad = () =>
    new MachinaError(
      "BAD_REQUEST",
      `${origin}: page: "${page.length > 40 ? `${page.slice(0, 40)}…` : page}" is not a page token of this computation; ` +
        'pass the "next" of its previous answer, or "" for the first page',
      { details: { field: "page" } },
    );
  if (!/^[A-Za-z0-9_-]+$/.test(page)) throw bad();
  const bytes = Buffer.from(page, "base64url");
  if (bytes.toString("base64url") !== page) throw bad();
  const text = bytes.toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad();
  }
  if (value === null || JSON.stringify(value) !== text) throw bad();
  return text;
}

/**
 * Refuses fields the type does not declare (BAD_REQUEST naming where they were given, with the
 * nearest declared name), so a typo fails instead of answering no rows; an unknown type answers
 * data's NOT_FOUND.
 */
async function checkFields(
  client: MeshClient,
  names: MeshNames,
  type: string,
  given: [where: string, field: string][],
): Promise<void> {
  const schema = await client.request(names.dataSchema(type), "Empty", {}, "SchemaReply");
  const declared = Object.keys((schema.history[0]?.definition?.fields ?? {}) as JsonObject);
  for (const [where, f] of given) {
    if (declared.includes(f)) continue;
    const hint = closestWord(f, declared);
    throw new MachinaError(
      "BAD_REQUEST",
      `computation "distinct": ${where}: type ${type} has no field "${f}"${hint === null ? "" : ` (did you mean "${hint}"?)`}; its fields: ${declared.join(", ")}`,
      { details: { field: where, type, known: declared } },
    );
  }
}

/** The computation called `name`, or NOT_FOUND listing the registered ones. */
export function computationOf(name: string): Computation {
  const c = COMPUTATIONS.get(name);
  if (c === undefined) {
    const known = [...COMPUTATIONS.keys()];
    throw new MachinaError("NOT_FOUND", `unknown computation "${name}" (registered: ${known.join(", ")})`, {
      details: { name, known },
    });
  }
  return c;
}
