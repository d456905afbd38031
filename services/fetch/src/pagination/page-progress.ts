import type { PaginateSpec } from "../source";

/**
 * The request of a page: query parameters set over the query's own, a whole URL (next_url,
 * link_header), or the token a code query's module returned for its next page.
 */
export type PageRef =
  | { readonly kind: "params"; readonly params: Readonly<Record<string, string>> }
  | { readonly kind: "url"; readonly url: string }
  | { readonly kind: "token"; readonly token: string | number };

/**
 * How far a paginated fetch got: the next page's request and what the pages before it yielded.
 * It is all a redelivered FetchTask needs to continue where the last delivery stopped.
 */
export interface PageProgress {
  /** The request of page `pages + 1`. */
  readonly next: PageRef;
  /** Pages fetched and handed on before it. */
  readonly pages: number;
  /** Records those pages yielded (for `total_items`). */
  readonly items: number;
  /** Epoch ms the last of them was stamped with; the next page's stamp is later (0 before the first). */
  readonly lastEnd: number;
}

/** Progress before the first page: the query as declared, plus the first page number or offset. */
export function firstProgress(spec: PaginateSpec): PageProgress {
  const params: Record<string, string> = {};
  if (spec.type === "page") params[spec.param] = String(spec.start);
  else if (spec.type === "offset") {
    params[spec.param] = String(spec.start);
    if (spec.limitParam !== null) params[spec.limitParam] = String(spec.limit);
  }
  return { next: { kind: "params", params }, pages: 0, items: 0, lastEnd: 0 };
}

/** Checks a decoded JSON value has the shape of {@link PageProgress}; null when it does not. */
export function asProgress(v: unknown): PageProgress | null {
  if (v === null || typeof v !== "object") return null;
  const p = v as Record<string, unknown>;
  const count = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  if (!count(p.pages) || !count(p.items) || !count(p.lastEnd)) return null;
  const ref = p.next as Record<string, unknown> | null;
  if (ref === null || typeof ref !== "object") return null;
  let next: PageRef;
  if (ref.kind === "url" && typeof ref.url === "string") next = { kind: "url", url: ref.url };
  else if (ref.kind === "token" && (typeof ref.token === "string" || Number.isFinite(ref.token)))
    next = { kind: "token", token: ref.token as string | number };
  else if (ref.kind === "params" && ref.params !== null && typeof ref.params === "object") {
    const entries = Object.entries(ref.params as Record<string, unknown>);
    if (!entries.every(([, x]) => typeof x === "string")) return null;
    next = { kind: "params", params: Object.fromEntries(entries) as Record<string, string> };
  } else return null;
  return { next, pages: p.pages as number, items: p.items as number, lastEnd: p.lastEnd as number };
}

/** A stable text key of a page request, to notice an upstream that sends paging in a circle. */
export function refKey(ref: PageRef): string {
  if (ref.kind === "url") return `url ${ref.url}`;
  if (ref.kind === "token") return `token ${JSON.stringify(ref.token)}`;
  const keys = Object.keys(ref.params).sort();
  return `params ${JSON.stringify(keys.map((k) => [k, ref.params[k]]))}`;
}
