import * as z from "zod";
import { field } from "@machina/config";
import { HEADER_NAME, must } from "./schema-rules";

/** Pagination kinds a query may declare under `paginate.type`. */
export const PAGINATE_TYPES = ["page", "offset", "cursor", "next_url", "link_header", "header_cursor"] as const;

/** One of {@link PAGINATE_TYPES}. */
export type PaginateType = (typeof PAGINATE_TYPES)[number];

// Fields that only some kinds take. One flat mapping (not a union per kind) keeps the stop
// conditions, which every kind shares, in one place in the docs; the rules below say which kind
// takes which field, so a stray one is named instead of silently ignored.
const KIND_FIELD_NAMES = ["param", "next", "header", "start", "limit", "limit_param"] as const;
type KindField = (typeof KIND_FIELD_NAMES)[number];

const KIND_FIELDS: Readonly<Record<PaginateType, { required: KindField[]; optional: KindField[] }>> = {
  page: { required: ["param"], optional: ["start", "next"] },
  offset: { required: ["param", "limit"], optional: ["start", "limit_param"] },
  cursor: { required: ["param", "next"], optional: [] },
  next_url: { required: ["next"], optional: [] },
  link_header: { required: [], optional: [] },
  header_cursor: { required: ["param", "header"], optional: [] },
};

// What a missing required field is for, worded for the error message.
const REQUIRED_FOR: Readonly<Partial<Record<KindField, string>>> = {
  param: "the query parameter that carries the page position",
  next: "the response path of the next page",
  header: "the response header holding the next cursor",
  limit: "the page size the offset grows by",
};

const BODY_PATH = field.text();

/** `paginate` of a query: how further pages are asked for, and when paging stops. */
export const PAGINATE = field
  .object({
    type: field
      .oneOf(PAGINATE_TYPES)
      .describe(
        '`page`: a page number counted up from `start`; `offset`: an item offset grown by `limit` per page; `cursor`: the value at `next` in each response body; `next_url`: the URL at `next` in each response body; `link_header`: the `rel="next"` target of the RFC 8288 `Link` header; `header_cursor`: the value of the response header `header`.',
      ),
    param: field
      .text()
      .optional()
      .describe(
        "Query parameter that carries the page number, offset or cursor (page, offset, cursor, header_cursor; required there). The first cursor request carries none.",
      ),
    next: BODY_PATH.optional().describe(
      "Response path of the next page, dot-separated (`paging.next`) or a JSONPath (`$.links[?(@.rel == 'next')].href`; one with wildcards or filters uses its first match): its number (page, optional: without it the number counts up by one), its cursor (cursor, required) or its URL (next_url, required). Paging stops when the value is null, empty or absent. A next URL may be absolute or relative to the page it came from, must stay on the host of `manager.base_url` (another host is refused, so credentials never travel there) and is requested as given, its query string included.",
    ),
    header: field
      .text()
      .regex(HEADER_NAME, { error: must("an HTTP header name") })
      .optional()
      .describe(
        "Response header holding the next cursor (header_cursor, required); paging stops when it is absent or empty.",
      ),
    start: field.int(0).optional().describe("First page number (page; default 1) or first offset (offset; default 0)."),
    limit: field.int(1).optional().describe("Items per page (offset, required): the offset grows by this much."),
    limit_param: field
      .text()
      .optional()
      .describe("Query parameter that carries `limit` (offset); leave it out when the API's page size is fixed."),
    max_pages: field
      .int(1, 100_000)
      .default(100)
      .describe(
        "Most pages fetched for one request or task, counted across redeliveries; more are left unfetched and the fetch is marked truncated. Default 100.",
      ),
    stop_on_empty: field
      .flag()
      .default(true)
      .describe("Stop at a page that yields no records, whatever it says about a next page. Default true."),
    total_items: BODY_PATH.optional().describe(
      "Response path (dot path or JSONPath, as for `next`) of the total number of items: paging stops once that many records were fetched (offset: once the next offset reaches it). A page without a number there does not stop paging.",
    ),
    total_pages: BODY_PATH.optional().describe(
      "Response path (dot path or JSONPath, as for `next`) of the total number of pages: paging stops once that many pages were fetched. A page without a number there does not stop paging.",
    ),
  })
  .superRefine((v, ctx) => {
    const rules = KIND_FIELDS[v.type];
    const takes = new Set<KindField>([...rules.required, ...rules.optional]);
    for (const key of KIND_FIELD_NAMES) {
      if (v[key] === undefined) {
        if (rules.required.includes(key))
          ctx.addIssue({
            code: "custom",
            path: [key],
            message: `is required for ${v.type} pagination (${REQUIRED_FOR[key] ?? key})`,
            input: v[key],
          });
      } else if (!takes.has(key)) {
        const kinds = PAGINATE_TYPES.filter((t) => {
          const r = KIND_FIELDS[t];
          return r.required.includes(key) || r.optional.includes(key);
        });
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `only applies to ${orList(kinds)} pagination, not ${v.type}; remove it`,
          input: v[key],
        });
      }
    }
    // Counting pages or offsets up never runs out by itself: something has to say "last page".
    const counts = v.type === "offset" || (v.type === "page" && v.next === undefined);
    if (counts && !v.stop_on_empty && v.total_items === undefined && v.total_pages === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["stop_on_empty"],
        message: `${v.type} pagination then never learns it reached the last page; keep stop_on_empty, or give total_items or total_pages${v.type === "page" ? " or next" : ""}`,
        input: v.stop_on_empty,
      });
    if (v.limit_param !== undefined && v.limit_param === v.param)
      ctx.addIssue({
        code: "custom",
        path: ["limit_param"],
        message: "must differ from param (one carries the offset, the other the page size)",
        input: v.limit_param,
      });
  });

function orList(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

/** Query parameters `paginate` sets itself, which the query's own params must leave alone. */
export function paginateParams(p: { readonly param?: string; readonly limit_param?: string }): string[] {
  return [p.param, p.limit_param].filter((x): x is string => x !== undefined);
}

/** The parsed form of `paginate`, before compiling. */
export type PaginateInput = z.output<typeof PAGINATE>;
