import { MachinaError } from "@machina/wire";
import type { HttpRequest } from "../http";
import { pagePathText, readPagePath, type PagePath, type PaginateSpec } from "../source";
import { linkTarget } from "./link-header";
import { resolveNextUrl, type NextUrlScope } from "./next-url";
import { firstProgress, refKey, type PageProgress, type PageRef } from "./page-progress";

/** The source facts a walk needs: names for errors and the host next URLs must stay on. */
export type WalkScope = Omit<NextUrlScope, "from">;

/** What the walk needs to know of a fetched page. */
export interface PageAnswer {
  /** The request that fetched it, as {@link PageWalk.request} built it. */
  readonly request: HttpRequest;
  readonly body: unknown;
  readonly headers: Headers;
  /** Records extracted from it, all types together. */
  readonly records: number;
  /** Epoch ms it was answered. */
  readonly end: number;
}

/** Where paging stands after a page. */
export interface PageStep {
  /** This page's number, 1-based, counted across redeliveries. */
  readonly page: number;
  /** Epoch ms to stamp this page with: its answer time, later than the page before's. */
  readonly end: number;
  /** Progress to continue from, or null when this page was the last one to fetch. */
  readonly next: PageProgress | null;
  /** True when paging stopped at max_pages though the upstream named a next page. */
  readonly truncated: boolean;
}

/** One paginated fetch in progress: builds each page's request and decides what comes next. */
export interface PageWalk {
  /** The request of the next page, built over the query's rendered request. */
  request(base: HttpRequest): HttpRequest;
  /** Takes a fetched page into account. */
  advance(answer: PageAnswer): PageStep;
}

/** Starts walking the pages of `spec`, from the first page or from `resume`. */
export function startWalk(spec: PaginateSpec, scope: WalkScope, resume: PageProgress | null): PageWalk {
  let at = resume ?? firstProgress(spec);
  // Loops are caught within one delivery; across redeliveries max_pages still bounds them.
  const seen = new Set<string>([refKey(at.next)]);
  const label = `query ${scope.source}.${scope.query}`;

  const nextRef = (a: PageAnswer): PageRef | null => {
    const current = requestUrl(scope.baseUrl, a.request);
    switch (spec.type) {
      case "page": {
        if (spec.next !== null) {
          const v = valueText(readPagePath(a.body, spec.next));
          return v === null ? null : { kind: "params", params: { [spec.param]: v } };
        }
        const n = Number(paramOf(at.next, spec.param));
        return { kind: "params", params: { [spec.param]: String(n + 1) } };
      }
      case "offset": {
        const offset = Number(paramOf(at.next, spec.param)) + spec.limit;
        const total = spec.totalItems === null ? null : countAt(a.body, spec.totalItems);
        if (total !== null && offset >= total) return null;
        const params: Record<string, string> = { [spec.param]: String(offset) };
        if (spec.limitParam !== null) params[spec.limitParam] = String(spec.limit);
        return { kind: "params", params };
      }
      case "cursor": {
        const v = valueText(readPagePath(a.body, spec.next));
        return v === null ? null : { kind: "params", params: { [spec.param]: v } };
      }
      case "header_cursor": {
        const v = a.headers.get(spec.header)?.trim() ?? "";
        return v === "" ? null : { kind: "params", params: { [spec.param]: v } };
      }
      case "next_url": {
        const v = valueText(readPagePath(a.body, spec.next));
        const from = `response path ${pagePathText(spec.next)}`;
        return v === null ? null : { kind: "url", url: resolveNextUrl(v, current, { ...scope, from }) };
      }
      case "link_header": {
        const v = linkTarget(a.headers.get("link"));
        return v === null
          ? null
          : { kind: "url", url: resolveNextUrl(v, current, { ...scope, from: "the Link header" }) };
      }
    }
  };

  return {
    request(base) {
      const ref = at.next;
      if (ref.kind === "params") return { ...base, params: { ...base.params, ...ref.params } };
      // Tokens are a code query's; its progress never reaches a declarative walk (the fingerprints differ).
      if (ref.kind === "token")
        throw new MachinaError("INTERNAL", `${label}: resume progress holds a code query's page token`, {
          retryable: false,
        });
      // A next URL replaces path and params; its own query string is what the upstream asked for.
      return { ...base, path: new URL(ref.url).pathname, params: {}, url: ref.url };
    },
    advance(a) {
      const page = at.pages + 1;
      const items = at.items + a.records;
      const end = Math.max(a.end, at.lastEnd + 1);
      const done = (truncated: boolean): PageStep => ({ page, end, next: null, truncated });
      const ref = nextRef(a);
      if (ref === null) return done(false);
      if (spec.stopOnEmpty && a.records === 0) return done(false);
      const totalItems = spec.totalItems === null ? null : countAt(a.body, spec.totalItems);
      if (totalItems !== null && spec.type !== "offset" && items >= totalItems) return done(false);
      const totalPages = spec.totalPages === null ? null : countAt(a.body, spec.totalPages);
      if (totalPages !== null && page >= totalPages) return done(false);
      if (page >= spec.maxPages) return done(true);
      const key = refKey(ref);
      if (seen.has(key)) {
        throw new MachinaError(
          "UPSTREAM",
          `${label}: pagination loops (page ${page} names a next page that was already fetched: ${describeRef(ref)}); check paginate in ${scope.origin}`,
          { retryable: false, details: { source: scope.source, query: scope.query, page } },
        );
      }
      seen.add(key);
      at = { next: ref, pages: page, items, lastEnd: end };
      return { page, end, next: at, truncated: false };
    },
  };
}

/** The absolute URL a request goes to (before credentials), which relative next URLs resolve against. */
export function requestUrl(baseUrl: string, req: HttpRequest): string {
  const url = new URL(req.url ?? baseUrl + req.path);
  for (const [k, v] of Object.entries(req.params)) url.searchParams.set(k, v);
  return url.href;
}

// A next value as the text to send; null, absent, "" and false mean "no next page".
function valueText(v: unknown): string | null {
  if (v === undefined || v === null || v === "" || v === false) return null;
  return typeof v === "string" ? v : JSON.stringify(v);
}

// A count at a response path: a non-negative number, or digits in a string; anything else is none.
function countAt(body: unknown, path: PagePath): number | null {
  const v = readPagePath(body, path);
  const n = typeof v === "number" ? v : typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n : null;
}

function paramOf(ref: PageRef, param: string): string {
  return ref.kind === "params" ? (ref.params[param] ?? "0") : "0";
}

function describeRef(ref: PageRef): string {
  if (ref.kind === "url") return new URL(ref.url).pathname;
  if (ref.kind === "token") return String(ref.token).slice(0, 80);
  return Object.entries(ref.params)
    .map(([k, v]) => `${k}=${v.slice(0, 80)}`)
    .join("&");
}
