import type { PaginateInput } from "./paginate-schema";

/** When paging stops, besides "no next page": shared by every pagination kind. */
export interface PageStops {
  /** Most pages per request or task, redeliveries included. */
  readonly maxPages: number;
  /** Stop at a page that yields no records. */
  readonly stopOnEmpty: boolean;
  /** Response path of the total item count; null when not declared. */
  readonly totalItems: readonly string[] | null;
  /** Response path of the total page count; null when not declared. */
  readonly totalPages: readonly string[] | null;
}

/** How the next page is found; one shape per `paginate.type`. */
export type PageKind =
  | {
      readonly type: "page";
      readonly param: string;
      readonly start: number;
      /** Response path of the next page number; null counts up by one. */
      readonly next: readonly string[] | null;
    }
  | {
      readonly type: "offset";
      readonly param: string;
      readonly start: number;
      readonly limit: number;
      /** Query parameter that carries `limit`; null when the page size is fixed upstream. */
      readonly limitParam: string | null;
    }
  | { readonly type: "cursor"; readonly param: string; readonly next: readonly string[] }
  | { readonly type: "next_url"; readonly next: readonly string[] }
  | { readonly type: "link_header" }
  | { readonly type: "header_cursor"; readonly param: string; readonly header: string };

/** A query's compiled `paginate`: how to find the next page, and when to stop. */
export type PaginateSpec = PageKind & PageStops;

/** Compiles a validated `paginate` mapping; `split` turns a response path into segments. */
export function paginateOf(v: PaginateInput, split: (path: string) => string[]): PaginateSpec {
  const stops: PageStops = {
    maxPages: v.max_pages,
    stopOnEmpty: v.stop_on_empty,
    totalItems: v.total_items === undefined ? null : split(v.total_items),
    totalPages: v.total_pages === undefined ? null : split(v.total_pages),
  };
  // The schema has checked which fields each kind requires, so the `?? ""` fallbacks never apply.
  const param = v.param ?? "";
  const next = v.next === undefined ? null : split(v.next);
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
