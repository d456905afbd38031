import { componentError } from "@machina/config";
import { MachinaError } from "@machina/wire";
import type { JsonPathSelector } from "./json-path";
import type { PaginateInput } from "./paginate-schema";
import { compileValuePath, readPath, readValuePath } from "./value-path";

/**
 * A response path pagination reads: dot-path segments (`links.next` → ["links", "next"]), or a
 * compiled JSONPath (`$.links[?(@.rel == 'next')].href`), whose first match is the value.
 */
export type PagePath =
  readonly string[] | { readonly kind: "jsonpath"; readonly text: string; readonly selector: JsonPathSelector };

/** When paging stops, besides "no next page": shared by every pagination kind. */
export interface PageStops {
  /** Most pages per request or task, redeliveries included. */
  readonly maxPages: number;
  /** Stop at a page that yields no records. */
  readonly stopOnEmpty: boolean;
  /** Response path of the total item count; null when not declared. */
  readonly totalItems: PagePath | null;
  /** Response path of the total page count; null when not declared. */
  readonly totalPages: PagePath | null;
}

/** How the next page is found; one shape per `paginate.type`. */
export type PageKind =
  | {
      readonly type: "page";
      readonly param: string;
      readonly start: number;
      /** Response path of the next page number; null counts up by one. */
      readonly next: PagePath | null;
    }
  | {
      readonly type: "offset";
      readonly param: string;
      readonly start: number;
      readonly limit: number;
      /** Query parameter that carries `limit`; null when the page size is fixed upstream. */
      readonly limitParam: string | null;
    }
  | { readonly type: "cursor"; readonly param: string; readonly next: PagePath }
  | { readonly type: "next_url"; readonly next: PagePath }
  | { readonly type: "link_header" }
  | { readonly type: "header_cursor"; readonly param: string; readonly header: string };

/** A query's compiled `paginate`: how to find the next page, and when to stop. */
export type PaginateSpec = PageKind & PageStops;

/**
 * Compiles a validated `paginate` mapping of `origin` at config path `where`
 * (`queries.q.paginate`); a JSONPath that cannot be used is refused naming its field.
 */
export function paginateOf(v: PaginateInput, origin: string, where: string): PaginateSpec {
  const path = (text: string | undefined, key: string): PagePath | null =>
    text === undefined ? null : pagePathOf(text, origin, `${where}.${key}`);
  const stops: PageStops = {
    maxPages: v.max_pages,
    stopOnEmpty: v.stop_on_empty,
    totalItems: path(v.total_items, "total_items"),
    totalPages: path(v.total_pages, "total_pages"),
  };
  // The schema has checked which fields each kind requires, so the `?? ""` fallbacks never apply.
  const param = v.param ?? "";
  const next = path(v.next, "next");
  switch (v.type) {
    case "page":
      return { type: "page", param, start: v.start ?? 1, next, ...stops };
    case "offset":
      return {
        type: "offset",
        param,
        start: v.start ?? 0,
        limit: v.limit ?? 1,
        limitParam: v.limit_param ?? null,
        ...stops,
      };
    case "cursor":
      return { type: "cursor", param, next: next ?? [], ...stops };
    case "next_url":
      return { type: "next_url", next: next ?? [], ...stops };
    case "link_header":
      return { type: "link_header", ...stops };
    case "header_cursor":
      return { type: "header_cursor", param, header: v.header ?? "", ...stops };
  }
}

// A dot path compiles to its segments, as it always did (so existing progress fingerprints hold).
function pagePathOf(text: string, origin: string, where: string): PagePath {
  try {
    const p = compileValuePath(text, `${origin}: ${where}`);
    return p.kind === "dot" ? p.segments : p;
  } catch (err) {
    if (!(err instanceof MachinaError)) throw err;
    const prefix = `${origin}: ${where}: `;
    throw componentError(
      origin,
      where,
      err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message,
    );
  }
}

/** The path as written, for messages. */
export function pagePathText(p: PagePath): string {
  return Array.isArray(p) ? (p.length === 0 ? "." : p.join(".")) : (p as { text: string }).text;
}

/** The value at `p` in a response body: a JSONPath's first match; undefined when absent. */
export function readPagePath(body: unknown, p: PagePath): unknown {
  if (Array.isArray(p)) return readPath(body, p as readonly string[]);
  const jp = p as Exclude<PagePath, readonly string[]>;
  const v = readValuePath(jp, body);
  return jp.selector.definite ? v : (v as unknown[])[0];
}
