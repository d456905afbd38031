import { MachinaError } from "@machina/wire";

/** Page size bounds of a paged computation: the default (for 0) and the most one page may ask. */
export interface PageBounds {
  default: number;
  max: number;
}

/** The request's `limit` of a paged computation: 0 means its default; outside 1..max BAD_REQUEST naming limit. */
export function pageLimit(origin: string, limit: number, bounds: PageBounds): number {
  if (limit === 0) return bounds.default;
  if (!Number.isInteger(limit) || limit < 1 || limit > bounds.max)
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: limit: expected an integer from 1 to ${bounds.max} (0 or absent means ${bounds.default}), got ${limit}`,
      { details: { field: "limit", limit, max: bounds.max } },
    );
  return limit;
}

/** A page token: base64url of the JSON text of where the previous page stopped. */
export function pageToken(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/**
 * The JSON text a `page` token carries (see {@link pageToken}); null for the first page. A token
 * this computation did not make is BAD_REQUEST naming page.
 */
export function pageAfter(origin: string, page: string): string | null {
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
